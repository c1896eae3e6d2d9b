//! An atomic overwrite: the new rows go to a staging table (the destination's schema,
//! partitioning, clustering, description and labels, and an expiration), committed there
//! with the usual pending streams and one commit; then one copy job with WRITE_TRUNCATE
//! replaces the destination's rows; then the staging table is deleted, also after a failure.
//! Readers see the old rows until the copy job completes, then the new ones.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::millis_from_now;
use crate::error::{Error, Result};
use crate::rest::{CopyJob, RestClient, TableReference, WriteDisposition};
use crate::table_ref::TableRef;

/// Infix of staging tables' names: `<table>_overwrite_<run>`.
const STAGING_INFIX: &str = "_overwrite_";

/// The fields of the destination's resource the staging table takes, as the service wrote
/// them: a copy with WRITE_TRUNCATE takes the source's schema (policy tags, collations and
/// rounding modes included) and constraints, so the staging table must carry the
/// destination's; its encryption key too. Everything else (ids, etags, statistics, the
/// expiration) is the destination's own.
const STAGING_FIELDS: &[&str] = &[
    "schema",
    "description",
    "friendlyName",
    "labels",
    "timePartitioning",
    "rangePartitioning",
    "clustering",
    "requirePartitionFilter",
    "encryptionConfiguration",
    "tableConstraints",
    "defaultCollation",
    "defaultRoundingMode",
];

/// An overwrite planned for a destination; plain data that travels with a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Overwrite {
    /// The table whose rows are replaced.
    pub destination: TableRef,
    /// Where the new rows are written first.
    pub staging: TableRef,
    /// The copy job's id (client-chosen, so that a retried insert is safe).
    pub job_id: String,
    /// The staging table's resource: the destination's schema, partitioning, clustering,
    /// labels, constraints and encryption (an allow-list), renamed, with an expiration.
    pub staging_table: serde_json::Value,
    /// The destination's expiration before the overwrite (ms since the epoch, as the
    /// service wrote it), which the copy must not change.
    pub destination_expiration: Option<String>,
}

impl Overwrite {
    /// Plans the overwrite of `destination`, whose resource tables.get answered `resource`;
    /// `run` makes the names unique.
    pub(crate) fn plan(
        destination: &TableRef,
        resource: &serde_json::Value,
        run: &str,
        staging_expiration: Duration,
    ) -> Result<Self> {
        if let Some(kind) = resource.get("type").and_then(serde_json::Value::as_str)
            && kind != "TABLE"
        {
            return Err(Error::Schema {
                table: destination.to_string(),
                message: format!("is a {kind}; only tables can be overwritten"),
            });
        }
        // Table ids are at most 1024 characters.
        let keep = 1024usize.saturating_sub(STAGING_INFIX.len() + run.len());
        let mut staging_id: String = destination.table.chars().take(keep).collect();
        staging_id.push_str(STAGING_INFIX);
        staging_id.push_str(run);
        let staging = TableRef::new(&destination.project, &destination.dataset, &staging_id)?;
        let mut staging_table = serde_json::Map::new();
        for field in STAGING_FIELDS {
            if let Some(value) = resource.get(*field) {
                staging_table.insert((*field).to_string(), value.clone());
            }
        }
        staging_table.insert(
            "tableReference".into(),
            serde_json::to_value(TableReference::from(&staging)).map_err(|e| Error::Internal(e.to_string()))?,
        );
        staging_table.insert(
            "expirationTime".into(),
            serde_json::Value::from(millis_from_now(staging_expiration).to_string()),
        );
        Ok(Self {
            job_id: format!("dfbq_overwrite_{run}"),
            destination: destination.clone(),
            staging,
            staging_table: serde_json::Value::Object(staging_table),
            destination_expiration: resource.get("expirationTime").and_then(|e| {
                e.as_str()
                    .map(str::to_string)
                    .or_else(|| e.as_i64().map(|n| n.to_string()))
            }),
        })
    }

    /// Creates the staging table unless it exists (each process of a distributed plan
    /// calls this; the first creates it).
    pub(crate) async fn create_staging(&self, rest: &RestClient) -> Result<()> {
        if rest
            .insert_table_json(&self.staging, &self.staging_table)
            .await?
            .is_some()
        {
            tracing::debug!(staging = %self.staging, destination = %self.destination, "created staging table");
        }
        Ok(())
    }

    /// Replaces the destination's rows with the staging table's, in one copy job.
    pub(crate) async fn replace(&self, rest: &RestClient) -> Result<()> {
        rest.run_copy(&CopyJob {
            job_id: self.job_id.clone(),
            source: self.staging.clone(),
            destination: self.destination.clone(),
            write_disposition: WriteDisposition::Truncate,
        })
        .await?;
        tracing::info!(destination = %self.destination, job = %self.job_id, "rows replaced");
        // The copy replaces rows, and must leave the destination's own expiration alone.
        let after = rest.get_table(&self.destination).await?;
        let expiration = after.and_then(|t| t.expiration_time);
        let before = self
            .destination_expiration
            .as_deref()
            .and_then(|e| e.parse::<i64>().ok());
        if expiration != before {
            tracing::warn!(destination = %self.destination, ?expiration, "the copy changed the expiration; restoring it");
            let value = self.destination_expiration.clone().map(serde_json::Value::from);
            rest.patch_table(&self.destination, &serde_json::json!({ "expirationTime": value }))
                .await?;
        }
        Ok(())
    }

    /// Deletes the staging table; a failure is logged (the table expires anyway).
    pub(crate) async fn drop_staging(&self, rest: &RestClient) {
        match rest.delete_table(&self.staging).await {
            Ok(_) => tracing::debug!(staging = %self.staging, "staging table deleted"),
            Err(e) => tracing::warn!(
                staging = %self.staging,
                error = %e,
                "the staging table could not be deleted; it expires by itself"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staging_table_takes_the_destinations_schema_and_settings_as_written() {
        let destination: TableRef = "p.d.sales".parse().unwrap();
        let resource = serde_json::json!({
            "kind": "bigquery#table", "id": "p:d.sales", "etag": "abc", "numRows": "10", "type": "TABLE",
            "tableReference": {"projectId": "p", "datasetId": "d", "tableId": "sales"},
            "schema": {"fields": [{"name": "id", "type": "INTEGER", "mode": "REQUIRED",
                                   "policyTags": {"names": ["projects/p/locations/us/taxonomies/1/policyTags/2"]}}]},
            "description": "daily", "labels": {"team": "a"}, "expirationTime": "1900000000000",
            "encryptionConfiguration": {"kmsKeyName": "k"},
            "tableConstraints": {"primaryKey": {"columns": ["id"]}},
        });
        let plan = Overwrite::plan(&destination, &resource, "0123abcd", Duration::from_secs(60)).unwrap();
        assert_eq!(plan.staging.to_string(), "p.d.sales_overwrite_0123abcd");
        let staging = &plan.staging_table;
        assert_eq!(staging["schema"], resource["schema"], "policy tags and all");
        for kept in ["description", "labels", "encryptionConfiguration", "tableConstraints"] {
            assert_eq!(staging[kept], resource[kept], "{kept}");
        }
        for dropped in ["etag", "id", "numRows", "kind", "type"] {
            assert!(staging.get(dropped).is_none(), "{dropped}");
        }
        assert_eq!(staging["tableReference"]["tableId"], "sales_overwrite_0123abcd");
        assert_ne!(staging["expirationTime"], resource["expirationTime"]);
        assert_eq!(plan.destination_expiration.as_deref(), Some("1900000000000"));
        let view = serde_json::json!({"type": "VIEW"});
        assert!(Overwrite::plan(&destination, &view, "x", Duration::from_secs(1)).is_err());
    }
}
