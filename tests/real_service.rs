//! The real service's awkward behaviours, each played by a switch of the embedded server,
//! and what the client does about them: the retry clock, idle and aged connections, hung
//! responses and deadlines, quotas, tables not yet visible, the per-connection stream cap,
//! typed errors and the client's identity. Every load lands exactly once or commits nothing.

#![cfg(feature = "server")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use common::{Fixture, audit, error_text};
use datafusion_bigquery::error::{Rpc, StorageErrorCode};
use datafusion_bigquery::server::{AppendFault, CloseMode, ConnectionLimit, RpcFault};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, Error, Loader, TableRef, schema};
use futures::StreamExt;

const SCHEMA: &str = "id:INT64:REQUIRED,name:STRING";

/// Fast retries for tests: the same policy with short waits.
const FAST: &str = "'bigquery.retry_initial_backoff_ms' '1', 'bigquery.retry_max_backoff_ms' '20', \
                    'bigquery.retry_max_attempts' '6'";

fn insert(n: u64) -> String {
    format!("INSERT INTO dest SELECT value AS id, concat('name-', value) AS name FROM range({n})")
}

async fn assert_lands(f: &Fixture, n: u64) {
    let count = f
        .run(&insert(n))
        .await
        .unwrap_or_else(|e| panic!("insert failed: {}", error_text(&e)));
    assert_eq!(count, n);
    assert_eq!(audit(&f.server, &f.table, n), (0, 0, 0), "lost, duplicated, foreign");
    assert_eq!(f.server.stats().commits, 1);
}

/// A server with `builder`'s switches, table `demo.real.t`, and a loader for it.
async fn loader_on(
    builder: datafusion_bigquery::server::ServerBuilder,
    options: &[(&str, &str)],
) -> (EmbeddedServer, Loader) {
    let server = builder.start().await.expect("server");
    let table: TableRef = "demo.real.t".parse().expect("name");
    server.create_table(&table, schema::parse_inline_schema(SCHEMA).expect("schema"));
    let mut opts = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_streams(1);
    for (key, value) in options {
        opts.set(key, value).expect("option");
    }
    let loader = Loader::connect(table, opts).await.expect("loader");
    (server, loader)
}

/// Batches of `rows` ids each, starting at `first`.
fn batch(first: i64, rows: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (first..first + rows).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("name-{i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(names))],
    )
    .expect("batch")
}

/// An input that pauses `pause` before each batch after the first.
fn slow_input(
    batches: usize,
    rows: i64,
    pause: Duration,
) -> impl futures::Stream<Item = Result<RecordBatch, std::io::Error>> + Send + Unpin {
    Box::pin(futures::stream::iter(0..batches).then(move |i| async move {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        Ok(batch(i as i64 * rows, rows))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_stalls_longer_than_the_retry_budget_then_meets_a_transient_error_lands() {
    // The budget is 300 ms; the input stalls 800 ms after the first batch is acknowledged,
    // and the first request after the stall fails. The budget starts at that failure.
    let (server, loader) = loader_on(
        EmbeddedServer::builder(),
        &[
            ("retry_timeout_ms", "300"),
            ("retry_initial_backoff_ms", "5"),
            ("retry_max_backoff_ms", "20"),
        ],
    )
    .await;
    server.inject_append_fault(2, AppendFault::Fail(tonic::Code::Unavailable));
    let summary = loader
        .load(loader.arrow_schema(), slow_input(3, 1000, Duration::from_millis(800)))
        .await
        .expect("lands");
    assert_eq!(summary.rows, 3000);
    assert_eq!(audit(&server, loader.table(), 3000), (0, 0, 0));
    assert_eq!(server.stats().faults_injected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_across_several_idle_closes_lands_and_costs_no_retry() {
    // One attempt in all: any counted retry would fail the load. The server closes every
    // connection idle for 200 ms; the input pauses 450 ms between batches.
    let (server, loader) = loader_on(
        EmbeddedServer::builder().idle_close(Duration::from_millis(200)),
        &[("retry_max_attempts", "1")],
    )
    .await;
    let summary = loader
        .load(loader.arrow_schema(), slow_input(5, 500, Duration::from_millis(450)))
        .await
        .expect("lands");
    assert_eq!(summary.rows, 2500);
    assert_eq!(audit(&server, loader.table(), 2500), (0, 0, 0));
    let closed = server.stats().connections_closed;
    assert!(closed >= 4, "the server closed {closed} idle connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aged_connections_closed_gracefully_or_abruptly_are_reopened_for_free() {
    for close in [CloseMode::Graceful, CloseMode::Abrupt] {
        let limit = ConnectionLimit {
            requests: Some(3),
            bytes: None,
            close,
        };
        let f = Fixture::with_server(
            EmbeddedServer::builder().connection_limit(limit),
            SCHEMA,
            "'bigquery.streams' '2', 'bigquery.max_request_bytes' '8192', 'bigquery.retry_max_attempts' '1'",
        )
        .await;
        assert_lands(&f, 20_000).await;
        let closed = f.server.stats().connections_closed;
        // About 50 requests, a connection ending every 3.
        assert!(closed >= 10, "{close:?}: {closed} connections closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_response_is_detected_by_the_watchdog_and_resent() {
    let f = Fixture::with_server(
        EmbeddedServer::builder(),
        SCHEMA,
        &format!("'bigquery.streams' '2', 'bigquery.max_request_bytes' '16384', 'bigquery.append_response_timeout_ms' '400', {FAST}"),
    )
    .await;
    f.server.inject_append_fault(4, AppendFault::Hang);
    let started = Instant::now();
    assert_lands(&f, 20_000).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the watchdog waited its time"
    );
    assert_eq!(f.server.stats().faults_injected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_ends_the_load_with_an_error_and_commits_nothing() {
    let f = Fixture::with_server(
        EmbeddedServer::builder(),
        SCHEMA,
        &format!("'bigquery.streams' '1', 'bigquery.max_request_bytes' '16384', 'bigquery.append_response_timeout_ms' '300', {FAST}"),
    )
    .await;
    for n in 2..200 {
        f.server.inject_append_fault(n, AppendFault::Hang);
    }
    let started = Instant::now();
    let err = f
        .run(&insert(20_000))
        .await
        .expect_err("a silent server fails the load");
    let text = error_text(&err);
    assert!(text.contains("no response from the server to AppendRows"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded: {:?}",
        started.elapsed()
    );
    assert_eq!(f.visible_rows(), 0);
    assert_eq!(f.server.stats().commits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_have_deadlines_and_a_hung_one_is_retried() {
    let f = Fixture::with_server(
        EmbeddedServer::builder(),
        SCHEMA,
        &format!("'bigquery.streams' '2', 'bigquery.rpc_timeout_ms' '300', {FAST}"),
    )
    .await;
    f.server.inject_rpc_fault(Rpc::FinalizeWriteStream, 1, RpcFault::Hang);
    f.server.inject_rpc_fault(Rpc::CreateWriteStream, 2, RpcFault::Hang);
    assert_lands(&f, 10_000).await;

    // A commit that never answers fails the load once the budget is spent, committing nothing.
    let g = Fixture::with_server(
        EmbeddedServer::builder(),
        SCHEMA,
        &format!("'bigquery.streams' '2', 'bigquery.rpc_timeout_ms' '200', {FAST}"),
    )
    .await;
    for n in 1..=10 {
        g.server
            .inject_rpc_fault(Rpc::BatchCommitWriteStreams, n, RpcFault::Hang);
    }
    let err = g.run(&insert(5_000)).await.expect_err("no commit answered");
    assert!(
        error_text(&err).contains("no response from the server to BatchCommitWriteStreams"),
        "{}",
        error_text(&err)
    );
    assert_eq!(g.visible_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throughput_quota_is_retried_with_the_longer_backoff() {
    let f = Fixture::with_server(
        EmbeddedServer::builder(),
        SCHEMA,
        &format!("'bigquery.streams' '1', 'bigquery.max_request_bytes' '16384', 'bigquery.retry_throttle_backoff_ms' '100', {FAST}"),
    )
    .await;
    for n in [2, 3, 6] {
        f.server.inject_append_fault(n, AppendFault::Throttle);
    }
    let started = Instant::now();
    assert_lands(&f, 10_000).await;
    // Three throttles of at least half the 100 ms throttle backoff each (jitter); the usual
    // backoff is 1 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(f.server.stats().throttled, 3);

    // The same switch on every 7th request of a whole load.
    let g = Fixture::with_server(
        EmbeddedServer::builder().throttle_every(7),
        SCHEMA,
        &format!("'bigquery.streams' '3', 'bigquery.max_request_bytes' '8192', 'bigquery.retry_throttle_backoff_ms' '2', {FAST}"),
    )
    .await;
    assert_lands(&g, 20_000).await;
    assert!(g.server.stats().throttled >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_quota_fails_naming_the_quota_and_commits_nothing() {
    let f = Fixture::new(
        SCHEMA,
        &format!("'bigquery.streams' '2', 'bigquery.max_request_bytes' '16384', {FAST}"),
    )
    .await;
    f.server.inject_append_fault(3, AppendFault::QuotaExceeded);
    let err = f.run(&insert(20_000)).await.expect_err("not retried");
    let text = error_text(&err);
    assert!(
        text.contains("exceeded a quota (Concurrent AppendRows connections per project and region)"),
        "{text}"
    );
    assert_eq!(f.visible_rows(), 0);
    assert_eq!(f.server.stats().commits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_creation_quota_backs_off_and_lands() {
    let f = Fixture::new(
        SCHEMA,
        &format!("'bigquery.streams' '2', 'bigquery.retry_quota_backoff_ms' '100', {FAST}"),
    )
    .await;
    f.server
        .inject_rpc_fault(Rpc::CreateWriteStream, 1, RpcFault::StreamQuota);
    f.server
        .inject_rpc_fault(Rpc::CreateWriteStream, 2, RpcFault::StreamQuota);
    let started = Instant::now();
    assert_lands(&f, 10_000).await;
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(f.server.stats().streams_created, 2);

    let g = Fixture::with_server(
        EmbeddedServer::builder().stream_quota_every(2),
        SCHEMA,
        &format!("'bigquery.streams' '4', 'bigquery.retry_quota_backoff_ms' '10', {FAST}"),
    )
    .await;
    assert_lands(&g, 40_000).await;
    assert!(g.server.stats().throttled >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_shortly_after_a_table_was_created_is_waited_out() {
    let f = Fixture::with_server(
        EmbeddedServer::builder().table_visibility_delay(Duration::from_millis(1200)),
        SCHEMA,
        &format!("'bigquery.streams' '2', 'bigquery.retry_not_found_timeout_ms' '10000', {FAST}"),
    )
    .await;
    assert_lands(&f, 10_000).await;

    // Waited out only for its bounded time: then the table is reported missing.
    let g = Fixture::with_server(
        EmbeddedServer::builder().table_visibility_delay(Duration::from_secs(60)),
        SCHEMA,
        &format!("'bigquery.streams' '1', 'bigquery.retry_not_found_timeout_ms' '500', {FAST}"),
    )
    .await;
    let started = Instant::now();
    let err = g.run(&insert(1_000)).await.expect_err("the table never shows up");
    assert!(error_text(&err).contains("not found"), "{}", error_text(&err));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(g.visible_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_connections_keeps_streams_under_the_per_connection_cap() {
    // Three concurrent streams per connection at most; four writers over a pool of four
    // channels use one each.
    let f = Fixture::with_server(
        EmbeddedServer::builder().max_concurrent_streams(3),
        SCHEMA,
        &format!("'bigquery.streams' '4', 'bigquery.connections' '4', 'bigquery.max_request_bytes' '16384', {FAST}"),
    )
    .await;
    assert_lands(&f, 40_000).await;
    assert_eq!(
        f.server.stats().peak_append_calls_per_connection,
        1,
        "spread over the pool"
    );
    // The same load on one connection puts several streams on it.
    let one = Fixture::new(
        SCHEMA,
        &format!("'bigquery.streams' '4', 'bigquery.connections' '1', 'bigquery.max_request_bytes' '16384', {FAST}"),
    )
    .await;
    assert_lands(&one, 40_000).await;
    assert!(one.server.stats().peak_append_calls_per_connection > 1);

    // On a single connection not every writer gets a stream at once: the others wait their
    // turn within their deadlines, and the load ends in bounded time, landing whole or
    // committing nothing.
    let g = Fixture::with_server(
        EmbeddedServer::builder().max_concurrent_streams(2),
        SCHEMA,
        &format!(
            "'bigquery.streams' '4', 'bigquery.connections' '1', 'bigquery.max_request_bytes' '16384', \
             'bigquery.rpc_timeout_ms' '300', 'bigquery.append_response_timeout_ms' '300', {FAST}"
        ),
    )
    .await;
    let started = Instant::now();
    let result = g.run(&insert(100_000)).await;
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    match result {
        Ok(count) => {
            assert_eq!(count, 100_000);
            assert_eq!(audit(&g.server, &g.table, 100_000), (0, 0, 0));
        }
        Err(e) => {
            assert!(
                error_text(&e).contains("no response from the server"),
                "{}",
                error_text(&e)
            );
            assert_eq!(g.visible_rows(), 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_keep_the_service_status() {
    let server = EmbeddedServer::start().await.expect("server");
    let missing: TableRef = "demo.real.missing".parse().expect("name");
    let options = BigQueryOptions::default().with_endpoint(server.endpoint());
    let err = Loader::connect(missing, options).await.expect_err("no such table");
    assert!(
        matches!(
            err,
            Error::TableNotFound {
                rpc: Rpc::GetWriteStream,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), Some(tonic::Code::NotFound));
    assert_eq!(err.storage_error_code(), Some(StorageErrorCode::TableNotFound));
    let source = std::error::Error::source(&err).expect("the status is the source");
    assert!(source.to_string().contains("NotFound"), "{source}");
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_names_itself() {
    let f = Fixture::new(SCHEMA, "'bigquery.streams' '2', 'bigquery.trace_id' 'nightly:42'").await;
    assert_lands(&f, 1_000).await;
    let seen = f.server.clients_seen();
    assert!(
        seen.user_agents.iter().all(|a| a.starts_with("datafusion-bigquery/")),
        "{seen:?}"
    );
    assert!(!seen.user_agents.is_empty());
    let expected = format!("datafusion-bigquery:{} nightly:42", env!("CARGO_PKG_VERSION"));
    assert_eq!(seen.trace_ids.iter().collect::<Vec<_>>(), vec![&expected]);
}
