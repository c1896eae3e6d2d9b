//! Copy jobs on the store: one table's visible rows (and digest) into another, by the write
//! and create dispositions of the v2 REST API, all under the store's lock so that readers see
//! the destination wholly before or wholly after.

use super::catalog::{Refusal, TableMeta, rest_id, visible_rows};
use super::state::{Store, Table};
use crate::table_ref::TableRef;

/// What a copy does to a destination that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteDisposition {
    /// WRITE_APPEND: add the source's rows; the schemas must be equal.
    Append,
    /// WRITE_TRUNCATE: replace the rows and schema, keep the metadata.
    Truncate,
    /// WRITE_EMPTY: as WRITE_TRUNCATE, but only into a table without rows.
    Empty,
}

/// What a copy does when the destination is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CreateDisposition {
    /// CREATE_IF_NEEDED: create it with the source's schema, partitioning and clustering.
    IfNeeded,
    /// CREATE_NEVER: fail.
    Never,
}

/// One copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopySpec {
    pub(crate) source: TableRef,
    pub(crate) destination: TableRef,
    pub(crate) write: WriteDisposition,
    pub(crate) create: CreateDisposition,
}

impl Store {
    /// Runs a copy; a refusal is the job's error and changes nothing.
    pub(crate) fn copy_table(&mut self, spec: &CopySpec) -> Result<(), Refusal> {
        let (source, destination) = (&spec.source, &spec.destination);
        if source == destination {
            return Err(Refusal::Invalid(format!(
                "Source and destination are the same table: {}",
                rest_id(source)
            )));
        }
        let retention = self.retention;
        let from = self
            .table_mut(&source.resource_path())
            .map_err(|_| Refusal::table_not_found(source))?;
        let (schema, arrow, rows, digest) = (
            from.schema.clone(),
            from.arrow.clone(),
            from.visible.clone(),
            from.digest,
        );
        let meta = TableMeta {
            time_partitioning: from.meta.time_partitioning.clone(),
            range_partitioning: from.meta.range_partitioning.clone(),
            clustering: from.meta.clustering.clone(),
            ..TableMeta::new()
        };
        let path = destination.resource_path();
        let Ok(to) = self.table_mut(&path) else {
            if spec.create == CreateDisposition::Never {
                return Err(Refusal::table_not_found(destination));
            }
            let mut created = Table::new((*schema).clone(), meta);
            created.visible = rows;
            created.digest = digest;
            self.tables.insert(path, created);
            return Ok(());
        };
        match spec.write {
            WriteDisposition::Empty if visible_rows(to, retention) > 0 => {
                return Err(Refusal::table_exists(destination));
            }
            WriteDisposition::Append if to.schema != schema => {
                return Err(Refusal::Invalid(format!(
                    "Provided Schema does not match Table {}",
                    rest_id(destination)
                )));
            }
            WriteDisposition::Append => {
                to.visible.extend(rows);
                to.digest.merge(&digest);
            }
            WriteDisposition::Truncate | WriteDisposition::Empty => {
                to.schema = schema;
                to.arrow = arrow;
                to.visible = rows;
                to.digest = digest;
            }
        }
        to.meta.touch();
        Ok(())
    }
}
