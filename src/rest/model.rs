//! The REST resources the crate reads and writes: a table's metadata and a job's state.
//! Only the fields it uses; the rest of an answer is ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::proto::TableSchema;
use crate::table_ref::TableRef;

/// `TableReference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReference {
    /// The project.
    pub project_id: String,
    /// The dataset.
    pub dataset_id: String,
    /// The table.
    pub table_id: String,
}

impl From<&TableRef> for TableReference {
    fn from(table: &TableRef) -> Self {
        Self {
            project_id: table.project.clone(),
            dataset_id: table.dataset.clone(),
            table_id: table.table.clone(),
        }
    }
}

/// `timePartitioning`: by a DATE, TIMESTAMP or DATETIME column, or by ingestion time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimePartitioning {
    /// `DAY`, `HOUR`, `MONTH` or `YEAR`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The partitioning column; none partitions by ingestion time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// How long a partition is kept, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "int_text")]
    pub expiration_ms: Option<i64>,
}

/// `clustering`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clustering {
    /// The clustering columns, in order.
    pub fields: Vec<String>,
}

/// A table's metadata (`Table`), as tables.get answers and tables.insert takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// Which table.
    pub table_reference: TableReference,
    /// Its columns.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "schema_json")]
    pub schema: Option<TableSchema>,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// When it is deleted, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "int_text")]
    pub expiration_time: Option<i64>,
    /// Partitioning by time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_partitioning: Option<TimePartitioning>,
    /// Partitioning by an integer range, kept as the API wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_partitioning: Option<serde_json::Value>,
    /// Clustering columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clustering: Option<Clustering>,
    /// Rows in the table (answers only).
    #[serde(default, skip_serializing, with = "int_text")]
    pub num_rows: Option<i64>,
    /// `TABLE`, `VIEW`, `EXTERNAL`, ... (answers only).
    #[serde(default, rename = "type", skip_serializing)]
    pub kind: Option<String>,
}

/// A job's state, as jobs.insert and jobs.get answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Which job, and where it runs.
    #[serde(default)]
    pub job_reference: Option<JobReference>,
    /// Its status.
    #[serde(default)]
    pub status: JobStatus,
}

/// `JobReference`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReference {
    /// The job's id.
    #[serde(default)]
    pub job_id: String,
    /// Where it runs (`US`, `EU`, a region).
    #[serde(default)]
    pub location: Option<String>,
}

/// `JobStatus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// `PENDING`, `RUNNING` or `DONE`.
    #[serde(default)]
    pub state: String,
    /// Set iff a finished job failed.
    #[serde(default)]
    pub error_result: Option<ErrorProto>,
    /// Every error the job met.
    #[serde(default)]
    pub errors: Vec<ErrorProto>,
}

/// `ErrorProto`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorProto {
    /// `notFound`, `invalid`, ...
    #[serde(default)]
    pub reason: String,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
}

/// Integers travel as strings; accept numbers too.
mod int_text {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        crate::schema::number_or_text(d)
    }
}

/// Schemas travel in the `bq` JSON form.
mod schema_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::proto::TableSchema;

    pub(super) fn serialize<S: Serializer>(value: &Option<TableSchema>, s: S) -> Result<S::Ok, S::Error> {
        value.as_ref().map(crate::schema::to_json_schema).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TableSchema>, D::Error> {
        match Option::<serde_json::Value>::deserialize(d)? {
            None => Ok(None),
            Some(json) => crate::schema::parse_json_schema(&json.to_string())
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_answer_and_writes_integers_as_text() {
        let answer = r#"{"kind":"bigquery#table","tableReference":{"projectId":"p","datasetId":"d","tableId":"t"},
            "schema":{"fields":[{"name":"id","type":"INTEGER","mode":"REQUIRED"}]},
            "labels":{"team":"a"},"expirationTime":"1700000000000","numRows":"12","type":"TABLE",
            "timePartitioning":{"type":"DAY","field":"day"},"clustering":{"fields":["id"]},"etag":"x"}"#;
        let table: Table = serde_json::from_str(answer).unwrap();
        assert_eq!(table.table_reference.table_id, "t");
        assert_eq!(table.schema.as_ref().map(|s| s.fields.len()), Some(1));
        assert_eq!(table.expiration_time, Some(1_700_000_000_000));
        assert_eq!(table.num_rows, Some(12));
        assert_eq!(
            table.time_partitioning.as_ref().and_then(|p| p.field.as_deref()),
            Some("day")
        );
        let written = serde_json::to_value(&table).unwrap();
        assert_eq!(written["expirationTime"], "1700000000000");
        assert!(written.get("numRows").is_none());
        assert_eq!(written["schema"]["fields"][0]["type"], "INTEGER");
    }
}
