//! Loads through a loopback TCP proxy that cuts connections mid-stream. The unary RPCs share
//! the HTTP/2 connection with AppendRows, so they are cut too. Every load must land exactly
//! once.

#![cfg(feature = "server")]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use common::proxy::CuttingProxy;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, schema};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_through_a_connection_cutting_proxy_land_exactly_once() {
    let server = EmbeddedServer::start().await.expect("server");
    let table: TableRef = "demo.proxy.t".parse().expect("name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED,payload:STRING").expect("schema"),
    );
    let proxy = CuttingProxy::start(server.local_addr(), 256 * 1024, 12).await;

    let ctx = SessionContext::new();
    register_bigquery(&ctx, BigQueryOptions::default().with_endpoint(proxy.endpoint()));
    common::run(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}' OPTIONS ('bigquery.streams' '3', \
             'bigquery.max_request_bytes' '65536', 'bigquery.retry_initial_backoff_ms' '5', \
             'bigquery.retry_max_backoff_ms' '50', 'bigquery.retry_max_attempts' '20')"
        ),
    )
    .await
    .expect("create");
    const ROWS: u64 = 100_000;
    let count = common::run(
        &ctx,
        &format!("INSERT INTO dest SELECT value AS id, repeat('x', 40) AS payload FROM range({ROWS})"),
    )
    .await
    .unwrap_or_else(|e| panic!("insert through the proxy: {}", common::error_text(&e)));
    assert_eq!(count, ROWS);

    let cuts = proxy.cuts.load(Ordering::SeqCst).min(12);
    assert!(cuts >= 5, "the proxy cut only {cuts} connections");
    let mut ids = BTreeSet::new();
    let mut total = 0u64;
    for batch in server.rows(&table).expect("table") {
        for id in batch.column(0).as_primitive::<Int64Type>().values() {
            ids.insert(*id);
            total += 1;
        }
    }
    println!(
        "proxy: {cuts} connections cut, {total} rows committed, {} distinct",
        ids.len()
    );
    assert_eq!(total, ROWS, "no row duplicated");
    assert_eq!(ids.len() as u64, ROWS, "no row lost");
    assert_eq!(server.stats().commits, 1);
}
