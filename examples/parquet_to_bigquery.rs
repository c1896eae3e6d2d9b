//! A Parquet file into a BigQuery table with SQL; no cloud account needed.
//!
//! Writes a small Parquet file of sales to a temporary directory, starts the embedded Storage
//! Write server with a `demo.shop.sales` table, and loads the file with one
//! `INSERT INTO ... SELECT` over 2 streams, converting types on the way (the file's amounts
//! are floats in cents, the table's are NUMERIC).
//!
//! ```text
//! cargo run --example parquet_to_bigquery
//! ```
//!
//! Against real BigQuery, drop the server and the `endpoint`, and point LOCATION at your table
//! (see the `real_bigquery` example for credentials).

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, schema};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A Parquet file, as another tool would have left it.
    let dir = std::env::temp_dir().join(format!("datafusion-bigquery-parquet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("sales.parquet");
    let file_name = file.to_str().ok_or("the temporary path is not UTF-8")?;
    SessionContext::new()
        .sql(
            "SELECT value AS sale_id,
                    concat('store-', value % 12) AS store,
                    CAST(value % 5000 AS DOUBLE) AS amount_cents,
                    to_timestamp_seconds(1700000000 + value * 60) AS sold_at
             FROM range(25000)",
        )
        .await?
        .write_parquet(
            file_name,
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
    println!("wrote {} ({} bytes)", file.display(), std::fs::metadata(&file)?.len());

    // 2. The destination: a table in the embedded Storage Write server.
    let server = EmbeddedServer::start().await?;
    let table: TableRef = "demo.shop.sales".parse()?;
    server.create_table(
        &table,
        schema::parse_inline_schema("sale_id:INT64:REQUIRED,store:STRING,amount:NUMERIC,sold_at:TIMESTAMP")?,
    );

    // 3. One session that reads Parquet and writes BigQuery.
    let ctx = SessionContext::new();
    register_bigquery(&ctx, BigQueryOptions::default().with_endpoint(server.endpoint()));
    ctx.register_parquet("sales_file", file_name, ParquetReadOptions::default())
        .await?;
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE sales STORED AS BIGQUERY LOCATION '{table}' OPTIONS ('bigquery.streams' '2')"
    ))
    .await?;
    let inserted = ctx
        .sql(
            "INSERT INTO sales
             SELECT sale_id, store, CAST(amount_cents AS DECIMAL(20, 2)) / 100 AS amount, sold_at
             FROM sales_file",
        )
        .await?
        .collect()
        .await?;
    datafusion::arrow::util::pretty::print_batches(&inserted)?;

    // 4. What the server holds now.
    let committed: usize = server
        .rows(&table)
        .unwrap_or_default()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    println!("{committed} rows committed to {table}");
    std::fs::remove_dir_all(&dir)?;
    if committed != 25_000 {
        return Err(format!("expected 25000 committed rows, found {committed}").into());
    }
    Ok(())
}
