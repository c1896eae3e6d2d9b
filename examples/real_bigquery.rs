//! Loading into real BigQuery with Application Default Credentials.
//!
//! **Needs a Google Cloud account**, a project with the BigQuery API enabled and billing, and
//! a table to load into. Create one with the `bq` tool:
//!
//! ```text
//! bq mk --dataset my-project:demo
//! bq mk --table my-project:demo.events id:INTEGER,kind:STRING,created_at:TIMESTAMP
//! ```
//!
//! Credentials come from, in order: a service-account key file named by
//! `GOOGLE_APPLICATION_CREDENTIALS`, `gcloud auth application-default login`, the metadata
//! server on Google Cloud, and the `gcloud` CLI. Then:
//!
//! ```text
//! GOOGLE_CLOUD_PROJECT=my-project cargo run --example real_bigquery -- demo.events 10000
//! ```
//!
//! Without credentials or a project, it stops with a message that says what is missing.

use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::{BigQueryOptions, TableRef, register_bigquery};

#[tokio::main]
async fn main() {
    if let Err(message) = run().await {
        eprintln!("Error: {message}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let location = args
        .next()
        .ok_or("usage: real_bigquery [PROJECT.]DATASET.TABLE [ROWS]; the table needs columns id INT64, kind STRING, created_at TIMESTAMP")?;
    let rows: u64 = match args.next() {
        Some(n) => n.parse().map_err(|_| format!("ROWS '{n}' is not a number"))?,
        None => 1000,
    };

    // GOOGLE_CLOUD_PROJECT, and BIGQUERY_STORAGE_EMULATOR_HOST if set (then no account is used).
    let options = BigQueryOptions::from_env();
    let table = TableRef::parse_with_default_project(&location, options.project()).map_err(|e| e.to_string())?;
    println!("loading {rows} rows into {table} through {}", options.endpoint());

    let ctx = SessionContext::new();
    register_bigquery(&ctx, options);
    // Creating the table connects, obtains credentials and reads the table's schema.
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE events STORED AS BIGQUERY LOCATION '{table}'"
    ))
    .await
    .map_err(|e| cause(&e))?;
    let result = ctx
        .sql(&format!(
            "INSERT INTO events
             SELECT value AS id, concat('kind-', value % 5) AS kind, now() AS created_at
             FROM range({rows})"
        ))
        .await
        .map_err(|e| cause(&e))?
        .collect()
        .await
        .map_err(|e| cause(&e))?;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&result).map_err(|e| e.to_string())?;
    println!("{text}");
    println!("query it with: bq query --use_legacy_sql=false 'SELECT count(*) FROM `{table}`'");
    Ok(())
}

/// The crate's own error inside a DataFusion error (it names table, column and row), or the
/// DataFusion error itself.
fn cause(err: &DataFusionError) -> String {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(ours) = e.downcast_ref::<datafusion_bigquery::Error>() {
            return ours.to_string();
        }
        current = e.source();
    }
    err.to_string()
}
