//! An atomic overwrite: the new rows go to a staging table (the destination's schema,
//! partitioning, clustering, description and labels, and an expiration), committed there
//! with the usual pending streams and one commit; then one copy job with WRITE_TRUNCATE
//! replaces the destination's rows; then the staging table is deleted, also after a failure.
//! Readers see the old rows until the copy job completes, then the new ones.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::millis_from_now;
use crate::error::{Error, Result};
use crate::rest::{CopyJob, RestClient, Table, TableReference, WriteDisposition};
use crate::table_ref::TableRef;

/// Infix of staging tables' names: `<table>_overwrite_<run>`.
const STAGING_INFIX: &str = "_overwrite_";

/// An overwrite planned for a destination; plain data that travels with a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overwrite {
    /// The table whose rows are replaced.
    pub destination: TableRef,
    /// Where the new rows are written first.
    pub staging: TableRef,
    /// The copy job's id (client-chosen, so that a retried insert is safe).
    pub job_id: String,
    /// The staging table's resource (the destination's, renamed, with an expiration).
    pub staging_table: Table,
    /// The destination's expiration before the overwrite, which the copy must not change.
    pub destination_expiration: Option<i64>,
}

impl Overwrite {
    /// Plans the overwrite of the table `destination` describes (as tables.get answered);
    /// `run` makes the names unique.
    pub fn plan(destination: &Table, run: &str, staging_expiration: Duration) -> Result<Self> {
        let reference = &destination.table_reference;
        let dest = TableRef::new(&reference.project_id, &reference.dataset_id, &reference.table_id)?;
        if destination.kind.as_deref().is_some_and(|k| k != "TABLE") {
            return Err(Error::Schema {
                table: dest.to_string(),
                message: format!(
                    "is a {}; only tables can be overwritten",
                    destination.kind.as_deref().unwrap_or_default()
                ),
            });
        }
        // Table ids are at most 1024 characters.
        let mut staging_id: String = dest
            .table
            .chars()
            .take(1024 - STAGING_INFIX.len() - run.len())
            .collect();
        staging_id.push_str(STAGING_INFIX);
        staging_id.push_str(run);
        let staging = TableRef::new(&dest.project, &dest.dataset, &staging_id)?;
        let staging_table = Table {
            table_reference: TableReference::from(&staging),
            expiration_time: Some(millis_from_now(staging_expiration)),
            num_rows: None,
            kind: None,
            ..destination.clone()
        };
        Ok(Self {
            job_id: format!("dfbq_overwrite_{run}"),
            destination: dest,
            staging,
            staging_table,
            destination_expiration: destination.expiration_time,
        })
    }

    /// Creates the staging table unless it exists (each process of a distributed plan
    /// calls this; the first creates it).
    pub async fn create_staging(&self, rest: &RestClient) -> Result<()> {
        if rest.insert_table(&self.staging_table).await?.is_some() {
            tracing::debug!(staging = %self.staging, destination = %self.destination, "created staging table");
        }
        Ok(())
    }

    /// Replaces the destination's rows with the staging table's, in one copy job.
    pub async fn replace(&self, rest: &RestClient) -> Result<()> {
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
        if expiration != self.destination_expiration {
            tracing::warn!(destination = %self.destination, ?expiration, "the copy changed the expiration; restoring it");
            let value = self
                .destination_expiration
                .map(|e| serde_json::Value::from(e.to_string()));
            rest.patch_table(&self.destination, &serde_json::json!({ "expirationTime": value }))
                .await?;
        }
        Ok(())
    }

    /// Deletes the staging table; a failure is logged (the table expires anyway).
    pub async fn drop_staging(&self, rest: &RestClient) {
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
    use crate::schema::parse_inline_schema;

    #[test]
    fn the_staging_table_is_the_destination_renamed_with_an_expiration() {
        let destination = Table {
            table_reference: TableReference {
                project_id: "p".into(),
                dataset_id: "d".into(),
                table_id: "sales".into(),
            },
            schema: Some(parse_inline_schema("id:INT64:REQUIRED").unwrap()),
            description: Some("daily".into()),
            labels: [("team".to_string(), "a".to_string())].into(),
            num_rows: Some(10),
            kind: Some("TABLE".into()),
            ..Table::default()
        };
        let plan = Overwrite::plan(&destination, "0123abcd", Duration::from_secs(60)).unwrap();
        assert_eq!(plan.staging.to_string(), "p.d.sales_overwrite_0123abcd");
        assert_eq!(plan.staging_table.schema, destination.schema);
        assert_eq!(plan.staging_table.labels, destination.labels);
        assert!(plan.staging_table.expiration_time.is_some());
        assert_eq!(plan.staging_table.num_rows, None);
        let view = Table {
            kind: Some("VIEW".into()),
            ..destination
        };
        assert!(Overwrite::plan(&view, "x", Duration::from_secs(1)).is_err());
    }
}
