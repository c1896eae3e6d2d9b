//! DataFusion integration: a write-only [`BigQueryTable`], its [`BigQuerySink`], and the
//! [`BigQueryTableFactory`] behind `CREATE EXTERNAL TABLE ... STORED AS BIGQUERY`.
//! Thin: every load goes through [`crate::Loader`].

mod factory;
mod sink;
mod table;

pub use factory::{register_bigquery, BigQueryTableFactory, FACTORY_NAME};
pub use sink::BigQuerySink;
pub use table::BigQueryTable;
