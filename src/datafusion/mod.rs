//! DataFusion integration: a write-only [`BigQueryTable`], the two plan nodes of its INSERT
//! ([`BigQueryWriteExec`], one worker per partition, and [`BigQueryCommitExec`], the one
//! commit), and the [`BigQueryTableFactory`] behind `CREATE EXTERNAL TABLE ... STORED AS
//! BIGQUERY`. Thin: every load goes through [`crate::Loader`].

mod catalog;
pub(crate) mod checkpointed;
mod commit_exec;
mod factory;
mod fingerprint;
pub(crate) mod insert_mode;
mod memory;
mod object_stores;
pub(crate) mod overwriting;
mod session_options;
mod source_types;
mod table;
mod write_exec;

pub use catalog::{BigQueryCatalog, BigQueryDataset, register_bigquery_catalog};
pub use commit_exec::BigQueryCommitExec;
pub use factory::{BigQueryTableFactory, FACTORY_NAME, register_bigquery, register_bigquery_factory};
pub use object_stores::EnvObjectStoreRegistry;
pub use session_options::BigQuerySessionOptions;
pub use table::BigQueryTable;
pub use write_exec::BigQueryWriteExec;
