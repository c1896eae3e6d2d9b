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
//! Where to start: [`register_bigquery`] (SQL), [`Loader`] (Rust without SQL),
//! [`BigQueryOptions`] (every setting), [`Error`], and [`EmbeddedServer`] (a local Storage
//! Write server for tests, examples and benchmarks).
//!
//! Layers, each using only the ones before it:
//!
//! 1. The wire API (generated types, internal), [`rpc`] (the calls' names), [`error`] and
//!    [`retry`] (what failed, typed, and the one retry policy).
//! 2. [`schema`] (table schemas and their Arrow form) and the row encoders (proto rows and
//!    Arrow rows, with BigQuery's value rules; internal, no I/O).
//! 3. [`client`] (channel pool, credentials, deadlines, AppendRows with its watchdog, sending
//!    the encoders' rows) and [`rest`] (the v2 REST API: tables and copy jobs).
//! 4. [`options`] (every setting), [`load`] (atomic loads over N streams, the stream writer
//!    and the commit as separate halves), [`checkpoint`] (loads that resume, their
//!    checkpoints on object storage) and [`tables`] (creating destinations, overwrites).
//! 5. [`datafusion`] (the table, its two plan nodes, the factory, the catalog,
//!    `SET bigquery.*`) and `ballista` (feature `ballista`: codecs and cluster processes).
//! 6. `server` (feature `server`, on by default: the embedded server, which plays the real
//!    service's behaviours on demand). It shares the wire types, the schema layer and the
//!    value ranges, not the client; its decoder reads values by its own code, and it digests
//!    Arrow rows in their proto form through the encoder, so that both formats of the same
//!    rows give one digest.

#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "ballista")]
pub mod ballista;
pub mod checkpoint;
pub mod client;
pub mod datafusion;
// Internal: the row encoders (proto and Arrow rows). Public for this crate's own tests and
// benchmarks only; not part of the API.
#[doc(hidden)]
pub mod encode;
pub mod error;
pub mod load;
pub(crate) mod object_storage;
pub mod options;
// Internal: the generated wire types of the Storage Write API. The table schema types are
// re-exported by `schema`; the rest is not part of the API.
#[doc(hidden)]
pub mod proto;
pub mod rest;
pub mod retry;
pub mod rpc;
pub mod schema;
#[cfg(feature = "server")]
pub mod server;
pub mod table_ref;
pub mod tables;
// Internal: BigQuery's value ranges and wire forms. Public for this crate's own tests only;
// not part of the API.
#[doc(hidden)]
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
