//! The store's tables as the v2 REST API sees them: their metadata (description, labels,
//! expiration, partitioning, clustering, times), datasets, and the rules of tables.insert,
//! tables.patch, tables.delete and the listings.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::state::{Retention, Store, Table};
use crate::proto::TableSchema;
use crate::schema::to_arrow_schema;
use crate::table_ref::TableRef;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A table's id as the REST API writes it in messages and `id` fields: `p:d.t`.
pub(crate) fn rest_id(table: &TableRef) -> String {
    format!("{}:{}.{}", table.project, table.dataset, table.table)
}

/// Why the store refused a REST request or a copy: the REST API's reason and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `notFound`.
    NotFound(String),
    /// `duplicate`.
    Duplicate(String),
    /// `invalid`.
    Invalid(String),
}

impl Refusal {
    /// The table is absent.
    pub(crate) fn table_not_found(table: &TableRef) -> Self {
        Refusal::NotFound(format!("Not found: Table {}", rest_id(table)))
    }

    /// The table exists already.
    pub(crate) fn table_exists(table: &TableRef) -> Self {
        Refusal::Duplicate(format!("Already Exists: Table {}", rest_id(table)))
    }

    /// The REST API's `reason`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Refusal::NotFound(_) => "notFound",
            Refusal::Duplicate(_) => "duplicate",
            Refusal::Invalid(_) => "invalid",
        }
    }

    /// The message.
    pub(crate) fn message(&self) -> &str {
        match self {
            Refusal::NotFound(m) | Refusal::Duplicate(m) | Refusal::Invalid(m) => m,
        }
    }
}

/// What the REST API shows of a table besides its schema and rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TableMeta {
    pub(crate) description: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    /// Milliseconds since the epoch after which the table no longer exists.
    pub(crate) expiration_ms: Option<i64>,
    /// `timePartitioning` as it was given.
    pub(crate) time_partitioning: Option<Value>,
    /// `rangePartitioning` as it was given.
    pub(crate) range_partitioning: Option<Value>,
    /// `clustering.fields`.
    pub(crate) clustering: Option<Vec<String>>,
    pub(crate) creation_ms: i64,
    pub(crate) modified_ms: i64,
    /// Counts the changes of the table (rows and metadata), for its etag.
    pub(crate) version: u64,
}

impl TableMeta {
    /// Default metadata of a table created now.
    pub(crate) fn new() -> Self {
        let now = now_ms();
        Self {
            creation_ms: now,
            modified_ms: now,
            ..Self::default()
        }
    }

    /// Records a change of the table.
    pub(crate) fn touch(&mut self) {
        self.modified_ms = now_ms().max(self.modified_ms);
        self.version += 1;
    }
}

/// A tables.patch: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TablePatch {
    pub(crate) schema: Option<TableSchema>,
    pub(crate) description: Option<Option<String>>,
    /// Replaces the labels.
    pub(crate) labels: Option<BTreeMap<String, String>>,
    pub(crate) expiration_ms: Option<Option<i64>>,
    pub(crate) time_partitioning: Option<Option<Value>>,
    pub(crate) range_partitioning: Option<Option<Value>>,
    pub(crate) clustering: Option<Option<Vec<String>>>,
}

/// Clustering names up to four top-level columns of the schema.
pub(crate) fn check_clustering(schema: &TableSchema, fields: &[String]) -> Result<(), Refusal> {
    if fields.is_empty() || fields.len() > 4 {
        return Err(Refusal::Invalid(format!(
            "clustering names 1 to 4 columns, not {}",
            fields.len()
        )));
    }
    match fields
        .iter()
        .find(|f| !schema.fields.iter().any(|c| c.name.eq_ignore_ascii_case(f)))
    {
        Some(missing) => Err(Refusal::Invalid(format!(
            "The field specified for clustering cannot be found in the schema: {missing}"
        ))),
        None => Ok(()),
    }
}

/// Visible rows of a table: kept rows, or the digest's count when rows are discarded.
pub(crate) fn visible_rows(table: &Table, retention: Retention) -> u64 {
    match retention {
        Retention::Keep => table.visible.iter().map(|b| b.num_rows() as u64).sum(),
        Retention::Discard => table.digest.rows,
    }
}

impl Store {
    /// tables.insert: a new table, refused if one of that name exists.
    pub(crate) fn insert_table(
        &mut self,
        table: &TableRef,
        schema: TableSchema,
        meta: TableMeta,
    ) -> Result<(), Refusal> {
        let path = table.resource_path();
        if self.table_mut(&path).is_ok() {
            return Err(Refusal::table_exists(table));
        }
        if let Some(fields) = &meta.clustering {
            check_clustering(&schema, fields)?;
        }
        self.tables.insert(path, Table::new(schema, meta));
        Ok(())
    }

    /// tables.patch: replaces the fields given.
    pub(crate) fn patch_table(&mut self, table: &TableRef, patch: TablePatch) -> Result<(), Refusal> {
        let retention = self.retention;
        let t = self
            .table_mut(&table.resource_path())
            .map_err(|_| Refusal::table_not_found(table))?;
        let schema = patch.schema.as_ref().unwrap_or(t.schema.as_ref());
        if let Some(Some(fields)) = &patch.clustering {
            check_clustering(schema, fields)?;
        } else if let (Some(fields), None) = (&t.meta.clustering, &patch.clustering) {
            check_clustering(schema, fields)?;
        }
        if let Some(schema) = patch.schema {
            if schema != *t.schema && (visible_rows(t, retention) > 0 || t.digest.rows > 0) {
                return Err(Refusal::Invalid(format!(
                    "the embedded server changes the schema of empty tables only; {} has rows",
                    rest_id(table)
                )));
            }
            t.arrow = Arc::new(to_arrow_schema(&schema));
            t.schema = Arc::new(schema);
        }
        let meta = &mut t.meta;
        if let Some(description) = patch.description {
            meta.description = description;
        }
        if let Some(labels) = patch.labels {
            meta.labels = labels;
        }
        if let Some(expiration) = patch.expiration_ms {
            meta.expiration_ms = expiration;
        }
        if let Some(partitioning) = patch.time_partitioning {
            meta.time_partitioning = partitioning;
        }
        if let Some(partitioning) = patch.range_partitioning {
            meta.range_partitioning = partitioning;
        }
        if let Some(clustering) = patch.clustering {
            meta.clustering = clustering;
        }
        meta.touch();
        Ok(())
    }

    /// tables.delete.
    pub(crate) fn delete_table(&mut self, table: &TableRef) -> Result<(), Refusal> {
        let path = table.resource_path();
        if self.table_mut(&path).is_err() {
            return Err(Refusal::table_not_found(table));
        }
        self.remove_table(&path);
        Ok(())
    }

    /// The live tables of a dataset, sorted by table id.
    pub(crate) fn table_ids(&mut self, project: &str, dataset: &str) -> Vec<String> {
        self.purge_expired();
        let prefix = format!("projects/{project}/datasets/{dataset}/tables/");
        let mut ids: Vec<String> = self
            .tables
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter(|id| !id.contains('/'))
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    }

    /// The datasets of a project, sorted: those created explicitly and those holding tables.
    pub(crate) fn dataset_ids(&mut self, project: &str) -> Vec<String> {
        self.purge_expired();
        let prefix = format!("projects/{project}/datasets/");
        let holding = self
            .tables
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter_map(|rest| rest.split_once("/tables/").map(|(d, _)| d.to_string()));
        let created = self
            .datasets
            .iter()
            .filter(|(p, _)| p == project)
            .map(|(_, d)| d.clone());
        holding.chain(created).collect::<BTreeSet<_>>().into_iter().collect()
    }
}
