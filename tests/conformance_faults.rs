//! Faults against bqemulator, a server no one here wrote: a load through a loopback proxy
//! that aborts connections must end, landing exactly once or committing nothing, within a
//! bounded time. bqemulator serves AppendRows on a small thread pool that aborted calls can
//! exhaust, after which it stops answering: exactly the server a client must not hang on.
//! `scripts/test.sh` starts a bqemulator of its own for this suite (`BQEMULATOR_FAULTS_GRPC`,
//! `BQEMULATOR_FAULTS_REST`), so that one it wore out serves no other test.

#![cfg(feature = "server")]

use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use datafusion_bigquery::{BigQueryOptions, register_bigquery};
use serde_json::json;

mod common;

use common::bqemulator::{self, query};
use common::proxy::CuttingProxy;

/// Where the suite's own emulator listens, or `None` (after deciding whether that is allowed).
fn emulator() -> Option<(String, String)> {
    bqemulator::emulator_at(
        "BQEMULATOR_FAULTS_GRPC",
        "BQEMULATOR_FAULTS_REST",
        "the fault suite's bqemulator",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_through_a_cutting_proxy_never_hangs() {
    let Some((grpc, rest)) = emulator() else { return };
    let table = bqemulator::create_table(
        &rest,
        "faults",
        "cuts",
        json!([{"name": "id", "type": "INT64", "mode": "REQUIRED"}, {"name": "payload", "type": "STRING"}]),
    );
    let upstream = grpc.trim_start_matches("http://").parse().expect("emulator address");
    let proxy = CuttingProxy::start(upstream, 256 * 1024, 12).await;

    let ctx = SessionContext::new();
    register_bigquery(&ctx, BigQueryOptions::default().with_endpoint(proxy.endpoint()));
    common::run(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}' OPTIONS ('bigquery.streams' '2', \
             'bigquery.max_request_bytes' '262144', 'bigquery.append_response_timeout_ms' '10000', \
             'bigquery.rpc_timeout_ms' '10000', 'bigquery.retry_initial_backoff_ms' '50', \
             'bigquery.retry_max_backoff_ms' '500', 'bigquery.retry_timeout_ms' '30000')"
        ),
    )
    .await
    .expect("create");
    const ROWS: u64 = 150_000;
    let started = Instant::now();
    let result = common::run(
        &ctx,
        &format!("INSERT INTO dest SELECT value AS id, repeat('x', 40) AS payload FROM range({ROWS})"),
    )
    .await;
    let elapsed = started.elapsed();
    let cuts = proxy.cuts.load(std::sync::atomic::Ordering::SeqCst).min(12);
    let rows = query(
        &rest,
        &format!("SELECT COUNT(*), COUNT(DISTINCT id) FROM {}.t", table.dataset),
    );
    let (committed, distinct): (u64, u64) = (
        rows[0][0].as_str().and_then(|s| s.parse().ok()).expect("count"),
        rows[0][1].as_str().and_then(|s| s.parse().ok()).expect("distinct"),
    );
    println!(
        "bqemulator through the proxy: {cuts} cuts, {:.1} s, {} ({committed} rows committed)",
        elapsed.as_secs_f64(),
        match &result {
            Ok(_) => "landed".to_string(),
            Err(e) => format!("failed: {}", common::error_text(e)),
        }
    );
    assert!(cuts >= 2, "the proxy cut only {cuts} connections");
    assert!(elapsed < Duration::from_secs(240), "bounded: {elapsed:?}");
    match result {
        Ok(count) => {
            assert_eq!(count, ROWS);
            assert_eq!((committed, distinct), (ROWS, ROWS), "exactly once");
        }
        Err(_) => assert_eq!(committed, 0, "a failed load commits nothing"),
    }
}
