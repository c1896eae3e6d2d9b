//! Tables and datasets as the v2 REST API writes them: the Table resource of tables.get and
//! the entries of tables.list and datasets.list.

use serde_json::{Map, Value, json};

use crate::schema::to_json_schema;
use crate::server::catalog::{rest_id, visible_rows};
use crate::server::digest::row_hash;
use crate::server::state::{Store, Table};
use crate::table_ref::TableRef;

/// `tableReference`.
pub(crate) fn table_reference(table: &TableRef) -> Value {
    json!({ "projectId": table.project, "datasetId": table.dataset, "tableId": table.table })
}

/// The Table resource of a live table, as tables.get answers it.
pub(crate) fn table_resource(store: &Store, table: &TableRef) -> Option<Value> {
    store.live(&table.resource_path())?;
    stored_resource(store, table)
}

/// The Table resource of a table held, expired or not: the answer of a tables.patch that
/// set an expiration time in the past.
pub(crate) fn stored_resource(store: &Store, table: &TableRef) -> Option<Value> {
    let t = store.tables.get(&table.resource_path())?;
    Some(render(table, t, visible_rows(t, store.retention)))
}

fn render(table: &TableRef, t: &Table, rows: u64) -> Value {
    let meta = &t.meta;
    let mut out = Map::new();
    out.insert("kind".into(), "bigquery#table".into());
    out.insert("id".into(), rest_id(table).into());
    out.insert("tableReference".into(), table_reference(table));
    out.insert("schema".into(), to_json_schema(&t.schema));
    if let Some(description) = &meta.description {
        out.insert("description".into(), description.clone().into());
    }
    if !meta.labels.is_empty() {
        out.insert("labels".into(), json!(meta.labels));
    }
    if let Some(expiration) = meta.expiration_ms {
        out.insert("expirationTime".into(), expiration.to_string().into());
    }
    if let Some(partitioning) = &meta.time_partitioning {
        out.insert("timePartitioning".into(), partitioning.clone());
    }
    if let Some(partitioning) = &meta.range_partitioning {
        out.insert("rangePartitioning".into(), partitioning.clone());
    }
    if let Some(fields) = &meta.clustering {
        out.insert("clustering".into(), json!({ "fields": fields }));
    }
    out.insert("numRows".into(), rows.to_string().into());
    out.insert("creationTime".into(), meta.creation_ms.to_string().into());
    out.insert("lastModifiedTime".into(), meta.modified_ms.to_string().into());
    out.insert("type".into(), "TABLE".into());
    // A hash of everything shown and of the change count: it changes on every change.
    let shown = Value::Object(out.clone()).to_string();
    let etag = row_hash(shown.as_bytes()) ^ row_hash(&meta.version.to_le_bytes());
    out.insert("etag".into(), format!("{etag:016x}").into());
    Value::Object(out)
}

/// An entry of tables.list.
pub(crate) fn table_list_entry(table: &TableRef, t: &Table) -> Value {
    let mut entry = json!({
        "kind": "bigquery#table",
        "id": rest_id(table),
        "tableReference": table_reference(table),
        "type": "TABLE",
        "creationTime": t.meta.creation_ms.to_string(),
    });
    if !t.meta.labels.is_empty() {
        entry["labels"] = json!(t.meta.labels);
    }
    entry
}

/// An entry of datasets.list.
pub(crate) fn dataset_list_entry(project: &str, dataset: &str) -> Value {
    json!({
        "kind": "bigquery#dataset",
        "id": format!("{project}:{dataset}"),
        "datasetReference": { "projectId": project, "datasetId": dataset },
    })
}
