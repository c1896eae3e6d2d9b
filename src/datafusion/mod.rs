//! DataFusion integration: a write-only [`BigQueryTable`], its [`BigQuerySink`], and the
//! [`BigQueryTableFactory`] behind `CREATE EXTERNAL TABLE ... STORED AS BIGQUERY`.
//! Thin: every load goes through [`crate::Loader`].

mod factory;
mod sink;
mod table;

pub use factory::{BigQueryTableFactory, FACTORY_NAME, register_bigquery, register_bigquery_factory};
pub use sink::BigQuerySink;
pub use table::BigQueryTable;
