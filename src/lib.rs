//! Atomic loads of DataFusion query results into Google BigQuery through the Storage Write API.
//!
//! `INSERT INTO bq_table SELECT ...` runs each partition of the query as a worker with its own
//! PENDING write stream and explicit offsets ([`BigQueryWriteExec`]); when every worker
//! succeeded, one `BatchCommitWriteStreams` makes all rows visible at once
//! ([`BigQueryCommitExec`]). If anything fails, or the query is dropped, nothing is committed.
//! The same plan runs on a Ballista cluster (feature `ballista`, module `ballista`).
//!
//! ```no_run
//! # async fn example() -> datafusion::error::Result<()> {
//! use datafusion::prelude::SessionContext;
//! use datafusion_bigquery::{register_bigquery, BigQueryOptions};
//!
//! let ctx = SessionContext::new();
//! register_bigquery(&ctx, BigQueryOptions::from_env());
//! ctx.sql("CREATE EXTERNAL TABLE sales STORED AS BIGQUERY LOCATION 'my-project.my_dataset.sales'").await?;
//! ctx.sql("SET bigquery.streams = 8").await?;
//! ctx.sql("INSERT INTO sales SELECT * FROM staging WHERE amount > 0").await?.collect().await?;
//! # Ok(()) }
//! ```
//!
//! Layers, each usable without the ones above it: [`proto`] (the wire API), [`rpc`],
//! [`error`] and [`retry`] (what failed, and the one retry policy), [`client`] (channel pool,
//! credentials, deadlines, AppendRows with its watchdog) and [`rest`] (the v2 REST API:
//! tables and copy jobs), [`schema`], [`values`] and [`encode`] (types and rows, no I/O),
//! [`load`] (atomic loads over N streams, and the stream writer and commit as separate
//! halves), [`checkpoint`] (loads that resume, on [`object_storage`]) and [`tables`]
//! (creating destinations, overwrites), [`datafusion`] (the table, its two plan nodes, the
//! factory, the catalog, `SET bigquery.*`), `ballista` (codecs and cluster processes), and
//! `server` (feature `server`, on by default: the embedded server, which plays the real
//! service's behaviours on demand).

#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "ballista")]
pub mod ballista;
pub mod checkpoint;
pub mod client;
pub mod datafusion;
pub mod encode;
pub mod error;
pub mod load;
pub mod object_storage;
pub mod options;
pub mod proto;
pub mod rest;
pub mod retry;
pub mod rpc;
pub mod schema;
#[cfg(feature = "server")]
pub mod server;
pub mod table_ref;
pub mod tables;
pub mod values;

pub use crate::datafusion::{
    BigQueryCommitExec, BigQueryTable, BigQueryTableFactory, BigQueryWriteExec, register_bigquery,
    register_bigquery_catalog, register_bigquery_factory,
};
pub use client::WriteClient;
pub use error::{Error, Result};
pub use load::{LoadProgress, LoadSummary, Loader, ProgressSnapshot, StreamHandle, StreamWriter, commit};
pub use options::{ArrayNullElements, BigQueryOptions, MissingValues, RowFormat, WireEncoding};
#[cfg(feature = "server")]
pub use server::EmbeddedServer;
pub use table_ref::TableRef;
