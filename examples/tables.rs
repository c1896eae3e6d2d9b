//! Tables: no cloud account needed.
//!
//! Creates a destination from declared columns (partitioned, clustered, labelled), loads it,
//! reaches it again through a catalog with no CREATE statement, and overwrites its rows
//! atomically, all against the embedded server's Storage Write and REST ports.
//!
//! ```text
//! cargo run --example tables
//! ```

use datafusion::prelude::SessionContext;
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, register_bigquery_catalog};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = EmbeddedServer::start().await?;
    server.create_dataset("demo-project", "shop");
    println!(
        "embedded server: Storage Write {}, REST {}",
        server.endpoint(),
        server.rest_endpoint()
    );
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_rest_endpoint(server.rest_endpoint());

    // 1. CREATE: the table does not exist yet; its columns make it.
    let ctx = SessionContext::new();
    register_bigquery(&ctx, options.clone());
    ctx.sql(
        "CREATE EXTERNAL TABLE sales (id BIGINT NOT NULL, region VARCHAR, amount DECIMAL(12, 2), sold_on DATE)
         STORED AS BIGQUERY LOCATION 'demo-project.shop.sales'
         OPTIONS ('bigquery.create' 'if_needed', 'bigquery.time_partitioning' 'DAY',
                  'bigquery.partition_field' 'sold_on', 'bigquery.clustering' 'region',
                  'bigquery.labels' 'team=growth')",
    )
    .await?;
    ctx.sql(
        "INSERT INTO sales SELECT value AS id, concat('r', value % 4) AS region,
                CAST(value AS DECIMAL(12, 2)) AS amount, DATE '2026-11-30' AS sold_on FROM range(1000)",
    )
    .await?
    .collect()
    .await?;
    let table: TableRef = "demo-project.shop.sales".parse()?;
    let created = server.table_json(&table).ok_or("the table was not created")?;
    println!("created {table}: {}", created["schema"]);
    println!("rows after the INSERT: {}", server.row_count(&table).unwrap_or(0));

    // 2. CATALOG: datasets are schemas, tables are looked up on use.
    let session = SessionContext::new();
    register_bigquery_catalog(&session, "bq", "demo-project", options).await?;

    // 3. OVERWRITE: a staging table, one commit, one copy job; readers see old or new rows.
    let replaced = session
        .sql(
            "INSERT OVERWRITE bq.shop.sales SELECT value AS id, 'all' AS region,
                    CAST(1 AS DECIMAL(12, 2)) AS amount, DATE '2026-12-01' AS sold_on FROM range(10)",
        )
        .await?
        .collect()
        .await?;
    datafusion::arrow::util::pretty::print_batches(&replaced)?;
    let after = server.table_json(&table).ok_or("the table is gone")?;
    println!(
        "rows after the overwrite: {}; labels {}, clustering {}, tables in the dataset: {:?}",
        server.row_count(&table).unwrap_or(0),
        after["labels"],
        after["clustering"],
        server.table_names("demo-project", "shop")
    );
    Ok(())
}
