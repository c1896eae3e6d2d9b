//! tables.get, tables.insert, tables.patch, tables.delete and tables.list.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Rest;
use super::errors::RestError;
use super::pages::PageRequest;
use super::resource::{stored_resource, table_list_entry, table_resource};
use super::table_body::{insert_target, json_object, new_meta, patch as parse_patch, schema};
use crate::rpc::RestCall;
use crate::server::catalog::Refusal;
use crate::server::state::Store;
use crate::table_ref::TableRef;

/// A table named by a request path; a name the store cannot hold is absent.
fn named(project: &str, dataset: &str, table: &str) -> Result<TableRef, RestError> {
    TableRef::new(project, dataset, table)
        .map_err(|_| RestError::not_found(format!("Not found: Table {project}:{dataset}.{table}")))
}

/// The Table resource of a table, or 404.
fn resource_of(store: &Store, table: &TableRef) -> Result<Json<Value>, RestError> {
    table_resource(store, table)
        .map(Json)
        .ok_or_else(|| Refusal::table_not_found(table).into())
}

/// `GET .../tables/{table}`.
pub(crate) async fn get(
    State(rest): State<Rest>,
    Path((project, dataset, table)): Path<(String, String, String)>,
) -> Result<Json<Value>, RestError> {
    rest.admit(RestCall::TablesGet).await?;
    let table = named(&project, &dataset, &table)?;
    resource_of(&rest.shared.store(), &table)
}

/// `POST .../tables`.
pub(crate) async fn insert(
    State(rest): State<Rest>,
    Path((project, dataset)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, RestError> {
    rest.admit(RestCall::TablesInsert).await?;
    let body = json_object(&body)?;
    let table = insert_target(&project, &dataset, &body)?;
    let schema = schema(&body)?;
    let meta = new_meta(&body)?;
    let mut store = rest.shared.store();
    store.insert_table(&table, schema, meta)?;
    resource_of(&store, &table)
}

/// `PATCH .../tables/{table}`.
pub(crate) async fn patch(
    State(rest): State<Rest>,
    Path((project, dataset, table)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, RestError> {
    rest.admit(RestCall::TablesPatch).await?;
    let table = named(&project, &dataset, &table)?;
    let changes = parse_patch(&json_object(&body)?)?;
    let mut store = rest.shared.store();
    store.patch_table(&table, changes)?;
    stored_resource(&store, &table)
        .map(Json)
        .ok_or_else(|| Refusal::table_not_found(&table).into())
}

/// `DELETE .../tables/{table}`: 204 without a body.
pub(crate) async fn delete(
    State(rest): State<Rest>,
    Path((project, dataset, table)): Path<(String, String, String)>,
) -> Result<StatusCode, RestError> {
    rest.admit(RestCall::TablesDelete).await?;
    let table = named(&project, &dataset, &table)?;
    rest.shared.store().delete_table(&table)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../tables?maxResults=&pageToken=`, sorted by table id.
pub(crate) async fn list(
    State(rest): State<Rest>,
    Path((project, dataset)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, RestError> {
    rest.admit(RestCall::TablesList).await?;
    let page = PageRequest::from_query(&query)?;
    let mut store = rest.shared.store();
    let ids = store.table_ids(&project, &dataset);
    let (items, next) = page.page(&ids);
    let tables: Vec<Value> = items
        .iter()
        .filter_map(|id| {
            let table = TableRef::new(&project, &dataset, id).ok()?;
            let t = store.live(&table.resource_path())?;
            Some(table_list_entry(&table, t))
        })
        .collect();
    let mut out = json!({ "kind": "bigquery#tableList", "tables": tables, "totalItems": ids.len() });
    if let Some(next) = next {
        out["nextPageToken"] = next.into();
    }
    Ok(Json(out))
}
