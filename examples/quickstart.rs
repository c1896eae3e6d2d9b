//! Quickstart: no cloud account needed.
//!
//! Starts the embedded Storage Write server, creates a table in it, loads one million
//! generated rows with `INSERT INTO ... SELECT` over 4 PENDING streams committed atomically,
//! and reads a sample back.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::sync::Arc;
use std::time::Instant;

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, schema};

const ROWS: u64 = 1_000_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A Storage Write server on 127.0.0.1, with one table.
    let server = EmbeddedServer::start().await?;
    let table: TableRef = "demo-project.shop.orders".parse()?;
    let orders = schema::parse_inline_schema(
        "order_id:INT64:REQUIRED,customer:STRING,amount:NUMERIC,ordered_at:TIMESTAMP,\
         ordered_on:DATE,priority:BOOL,tags:STRING:REPEATED",
    )?;
    server.create_table(&table, orders);
    println!("embedded Storage Write server at {}", server.endpoint());

    // 2. A DataFusion session that knows BigQuery tables.
    let ctx = SessionContext::new();
    register_bigquery(&ctx, BigQueryOptions::default().with_endpoint(server.endpoint()));
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE orders STORED AS BIGQUERY LOCATION '{table}' OPTIONS ('bigquery.streams' '4')"
    ))
    .await?;

    // 3. One INSERT: every row lands, or none does.
    let started = Instant::now();
    let inserted = ctx
        .sql(&format!(
            "INSERT INTO orders
             SELECT value AS order_id,
                    concat('customer-', value % 1000) AS customer,
                    CAST(value % 100000 AS DECIMAL(20, 2)) / 100 AS amount,
                    to_timestamp_micros(1700000000000000 + value * 1000000) AS ordered_at,
                    CAST(to_timestamp_micros(1700000000000000 + value * 1000000) AS DATE) AS ordered_on,
                    value % 7 = 0 AS priority,
                    CASE WHEN value % 3 = 0 THEN make_array('gift', 'express') ELSE make_array() END AS tags
             FROM range({ROWS})"
        ))
        .await?
        .collect()
        .await?;
    let elapsed = started.elapsed();
    datafusion::arrow::util::pretty::print_batches(&inserted)?;
    let stats = server.stats();
    println!(
        "committed {} rows over {} streams in {} AppendRows requests, {:.2} s ({:.0} rows/s)",
        stats.rows_appended,
        stats.streams_created,
        stats.append_requests,
        elapsed.as_secs_f64(),
        stats.rows_appended as f64 / elapsed.as_secs_f64()
    );

    // 4. Read back what the server committed.
    let committed = server.rows(&table).unwrap_or_default();
    let schema = committed.first().map(|b| b.schema()).ok_or("nothing was committed")?;
    let readback = SessionContext::new();
    readback.register_table("committed", Arc::new(MemTable::try_new(schema, vec![committed])?))?;
    readback
        .sql("SELECT count(*) AS rows, count(DISTINCT order_id) AS distinct_ids, sum(amount) AS total_amount FROM committed")
        .await?
        .show()
        .await?;
    readback
        .sql("SELECT * FROM committed ORDER BY order_id LIMIT 5")
        .await?
        .show()
        .await?;
    Ok(())
}
