//! Loading Arrow batches from a Rust program, without SQL; no cloud account needed.
//!
//! Builds `RecordBatch`es in code and writes them to a table of the embedded Storage Write
//! server through [`Loader`], the same writer `INSERT INTO` uses: over 3 PENDING streams,
//! committed at once, while a task prints the progress counters.
//!
//! ```text
//! cargo run --example load_batches
//! ```
//!
//! For real BigQuery, use `BigQueryOptions::from_env()` and your table's name; the rest is
//! the same.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, LoadProgress, Loader, TableRef, schema};

const BATCHES: i64 = 50;
const ROWS_PER_BATCH: i64 = 4_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = EmbeddedServer::start().await?;
    let table: TableRef = "demo.metrics.readings".parse()?;
    server.create_table(
        &table,
        schema::parse_inline_schema("sensor_id:INT64:REQUIRED,site:STRING,celsius:FLOAT64")?,
    );

    // Connect: reads the table's schema from the service.
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_streams(3);
    let progress = LoadProgress::new();
    let loader = Loader::connect(table.clone(), options)
        .await?
        .with_progress(progress.clone());

    // Any iterator or stream of batches works; the columns may be any Arrow type that maps
    // exactly to the table's (Int32 into INT64, LargeUtf8 into STRING, ...).
    let schema = loader.arrow_schema();
    let batches = (0..BATCHES).map(move |b| -> Result<RecordBatch, arrow::error::ArrowError> {
        let ids: Vec<i64> = (b * ROWS_PER_BATCH..(b + 1) * ROWS_PER_BATCH).collect();
        let sites: Vec<String> = ids.iter().map(|id| format!("site-{}", id % 7)).collect();
        let celsius: Vec<f64> = ids.iter().map(|id| 15.0 + (*id % 200) as f64 / 10.0).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(sites)),
            Arc::new(Float64Array::from(celsius)),
        ];
        RecordBatch::try_new(schema.clone(), columns)
    });

    let watcher = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let now = progress.snapshot();
                println!("  ... {} rows acknowledged on {} streams", now.rows, now.streams);
            }
        })
    };
    let summary = loader
        .load(loader.arrow_schema(), futures::stream::iter(batches))
        .await?;
    watcher.abort();

    let commit_time = summary
        .commit_time
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
        .unwrap_or_else(|| "none (nothing to commit)".into());
    println!(
        "committed {} rows ({} bytes) over {} streams in {} requests, commit time {commit_time}",
        summary.rows, summary.bytes, summary.streams, summary.requests
    );
    let visible = server.row_count(&table).unwrap_or(0);
    println!("{visible} rows visible in {table}");
    if visible as u64 != summary.rows {
        return Err(format!("expected {} visible rows, found {visible}", summary.rows).into());
    }
    Ok(())
}
