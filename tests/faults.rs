//! Exactly once under faults: every fault kind of the embedded server on multi-stream
//! inserts. After each run either the table holds exactly the input rows, or the INSERT failed
//! and the table is unchanged.

#![cfg(feature = "server")]

mod common;

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use common::{Fixture, error_text};
use datafusion_bigquery::EmbeddedServer;
use datafusion_bigquery::server::{AppendFault, Rpc, RpcFault};
use tonic::Code;

const SCHEMA: &str = "id:INT64:REQUIRED,name:STRING,amount:FLOAT64";

/// Fast retries for tests: the policy is the same, only the waits are short.
const RETRY_OPTIONS: &str = "'bigquery.retry_initial_backoff_ms' '1', 'bigquery.retry_max_backoff_ms' '20', \
                             'bigquery.retry_max_attempts' '8', 'bigquery.retry_throttle_backoff_ms' '5'";

fn insert_rows(n: u64) -> String {
    format!(
        "INSERT INTO dest SELECT value AS id, concat('name-', value) AS name, value * 0.5 AS amount FROM range({n})"
    )
}

async fn fixture(streams: usize, max_request_bytes: usize) -> Fixture {
    fixture_in("proto", streams, max_request_bytes).await
}

/// A fixture whose INSERTs send rows in `format` (`bigquery.row_format`).
async fn fixture_in(format: &str, streams: usize, max_request_bytes: usize) -> Fixture {
    Fixture::new(
        SCHEMA,
        &format!(
            "'bigquery.row_format' '{format}', 'bigquery.streams' '{streams}', \
             'bigquery.max_request_bytes' '{max_request_bytes}', {RETRY_OPTIONS}"
        ),
    )
    .await
}

/// Committed ids: (rows lost, rows duplicated, rows that are not input) against ids 0..n.
fn audit(f: &Fixture, n: u64) -> (u64, u64, u64) {
    let mut seen: BTreeMap<i64, u64> = BTreeMap::new();
    for batch in f.server.rows(&f.table).expect("table") {
        for id in batch.column(0).as_primitive::<Int64Type>().values() {
            *seen.entry(*id).or_default() += 1;
        }
    }
    let foreign = seen.keys().filter(|id| **id < 0 || **id as u64 >= n).count() as u64;
    let duplicated = seen.values().map(|c| c - 1).sum();
    let lost = n - seen.keys().filter(|id| **id >= 0 && (**id as u64) < n).count() as u64;
    (lost, duplicated, foreign)
}

/// Runs an insert of `n` rows and checks it landed exactly once.
async fn assert_exactly_once(f: &Fixture, n: u64) {
    let count = f
        .run(&insert_rows(n))
        .await
        .unwrap_or_else(|e| panic!("insert failed: {}", error_text(&e)));
    assert_eq!(count, n);
    assert_eq!(audit(f, n), (0, 0, 0), "lost, duplicated, foreign");
    assert_eq!(f.server.stats().commits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_resumed_from_its_offsets() {
    let f = fixture(3, 16 * 1024).await;
    f.server.inject_append_fault(5, AppendFault::Cut);
    f.server.inject_append_fault(12, AppendFault::Cut);
    assert_exactly_once(&f, 30_000).await;
    assert_eq!(f.server.stats().faults_injected, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_a_cut_are_not_duplicated() {
    // The server keeps the rows of request 4 but the client never hears back: the resend
    // gets ALREADY_EXISTS, which means "in", not "twice".
    let f = fixture(2, 16 * 1024).await;
    f.server.inject_append_fault(4, AppendFault::CutAfter);
    f.server.inject_append_fault(9, AppendFault::CutAfter);
    assert_exactly_once(&f, 30_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_servers_throttling_and_transient_errors_are_retried() {
    let f = fixture(4, 16 * 1024).await;
    f.server.inject_append_fault(3, AppendFault::Drain);
    f.server
        .inject_append_fault(6, AppendFault::Fail(Code::ResourceExhausted));
    f.server.inject_append_fault(8, AppendFault::Fail(Code::Unavailable));
    f.server.inject_append_fault(10, AppendFault::Fail(Code::Internal));
    f.server.inject_append_fault(13, AppendFault::Fail(Code::Aborted));
    assert_exactly_once(&f, 40_000).await;
    assert_eq!(f.server.stats().faults_injected, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_rows_land_exactly_once_through_every_fault_kind() {
    let faults = [
        AppendFault::Cut,
        AppendFault::CutAfter,
        AppendFault::Drain,
        AppendFault::Throttle,
        AppendFault::Fail(Code::Unavailable),
        AppendFault::Fail(Code::Aborted),
    ];
    for fault in faults {
        let f = fixture_in("arrow", 3, 16 * 1024).await;
        f.server.inject_append_fault(2, fault);
        f.server.inject_append_fault(7, fault);
        assert_exactly_once(&f, 20_000).await;
        let stats = f.server.stats();
        assert_eq!(stats.faults_injected, 2, "{fault:?}");
        assert_eq!(
            stats.arrow_requests, stats.append_requests,
            "{fault:?}: Arrow rows only"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_for_its_size_is_split() {
    for format in ["proto", "arrow"] {
        refused_for_its_size_and_split(format).await;
    }
}

async fn refused_for_its_size_and_split(format: &str) {
    // A server that keeps the old 10 MiB limit, a client configured for 16 MB requests: each
    // refused request over 10 MB is split in two and sent again.
    let f = Fixture::with_server(
        EmbeddedServer::builder().max_request_bytes(10 * 1024 * 1024),
        SCHEMA,
        &format!(
            "'bigquery.row_format' '{format}', 'bigquery.streams' '1', 'bigquery.max_request_bytes' '16000000', \
             {RETRY_OPTIONS}"
        ),
    )
    .await;
    const ROWS: u64 = 24_000;
    let count = f
        .run(&format!(
            "INSERT INTO dest SELECT value AS id, repeat('x', 1500) AS name, 0.5 AS amount FROM range({ROWS})"
        ))
        .await
        .unwrap_or_else(|e| panic!("insert failed: {}", error_text(&e)));
    assert_eq!(count, ROWS);
    assert_eq!(audit(&f, ROWS), (0, 0, 0), "lost, duplicated, foreign");
    let stats = f.server.stats();
    assert!(
        stats.largest_append_bytes > 10 * 1024 * 1024,
        "a request over the server's limit was sent and refused"
    );
    assert!(
        stats.append_requests > ROWS / 8192 + 1,
        "{format}: refused requests were split: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_rpcs_are_retried() {
    let f = fixture(3, 64 * 1024).await;
    f.server
        .inject_rpc_fault(Rpc::CreateWriteStream, 1, RpcFault::Fail(Code::Unavailable));
    f.server
        .inject_rpc_fault(Rpc::FinalizeWriteStream, 2, RpcFault::Fail(Code::DeadlineExceeded));
    f.server
        .inject_rpc_fault(Rpc::FinalizeWriteStream, 3, RpcFault::ApplyThenFail(Code::Unavailable));
    f.server
        .inject_rpc_fault(Rpc::BatchCommitWriteStreams, 1, RpcFault::Fail(Code::Unavailable));
    assert_exactly_once(&f, 30_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_commit_is_neither_doubled_nor_lost() {
    let f = fixture(3, 64 * 1024).await;
    // Applied, then reported as a transport failure: the client must find it applied.
    f.server.inject_rpc_fault(
        Rpc::BatchCommitWriteStreams,
        1,
        RpcFault::ApplyThenFail(Code::Unavailable),
    );
    assert_exactly_once(&f, 20_000).await;
    // A second commit attempt would have been refused as already committed; there was none.
    assert_eq!(f.server.stats().commits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_applied_then_refused_permanently_is_found_applied() {
    // INTERNAL is not retried on BatchCommitWriteStreams (service config), but the commit
    // went through: the streams' commit times prove it, and the load succeeds once.
    let f = fixture(2, 64 * 1024).await;
    f.server
        .inject_rpc_fault(Rpc::BatchCommitWriteStreams, 1, RpcFault::ApplyThenFail(Code::Internal));
    assert_exactly_once(&f, 10_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refused_permanently_commits_nothing() {
    let f = fixture(2, 64 * 1024).await;
    f.server
        .inject_rpc_fault(Rpc::BatchCommitWriteStreams, 1, RpcFault::Fail(Code::Internal));
    let err = f.run(&insert_rows(10_000)).await.expect_err("INTERNAL is not retried");
    assert!(
        error_text(&err).contains("BatchCommitWriteStreams"),
        "{}",
        error_text(&err)
    );
    assert_eq!(f.visible_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_are_not_retried_and_commit_nothing() {
    for (fault, code) in [
        (AppendFault::Fail(Code::InvalidArgument), "InvalidArgument"),
        (AppendFault::Fail(Code::OutOfRange), "OutOfRange"),
        (AppendFault::Fail(Code::PermissionDenied), "PermissionDenied"),
    ] {
        let f = fixture(2, 16 * 1024).await;
        f.server.inject_append_fault(3, fault);
        let err = f.run(&insert_rows(20_000)).await.expect_err("must fail");
        assert!(error_text(&err).contains(code), "{}", error_text(&err));
        assert_eq!(f.visible_rows(), 0);
        assert_eq!(f.server.stats().commits, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_errors_name_input_rows_and_commit_nothing() {
    let f = fixture(1, 16 * 1024).await;
    f.server.inject_append_fault(1, AppendFault::RowError);
    let err = f.run(&insert_rows(5_000)).await.expect_err("must fail");
    let text = error_text(&err);
    assert!(text.contains("input row 1: value rejected"), "{text}");
    assert_eq!(f.visible_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_give_up_and_commit_nothing() {
    let f = fixture(1, 16 * 1024).await;
    for n in 2..40 {
        f.server.inject_append_fault(n, AppendFault::Fail(Code::Unavailable));
    }
    let err = f.run(&insert_rows(20_000)).await.expect_err("retries exhausted");
    assert!(error_text(&err).contains("Unavailable"), "{}", error_text(&err));
    assert_eq!(f.visible_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_fault_suite() {
    const RUNS: u64 = 50;
    let mut rng = common::Lcg(0x5eed);
    let (mut faults, mut failed, mut lost, mut duplicated, mut foreign, mut rows_total) = (0, 0, 0, 0, 0, 0);
    for run in 0..RUNS {
        let n = 3_000 + rng.below(20_000);
        let streams = 1 + rng.below(4) as usize;
        let format = if run % 2 == 0 { "proto" } else { "arrow" };
        let f = fixture_in(format, streams, 8 * 1024 + rng.below(24 * 1024) as usize).await;
        let requests = (n * 25 / (8 * 1024)).max(2);
        let mut fatal = false;
        for _ in 0..1 + rng.below(4) {
            let at = 1 + rng.below(requests);
            match rng.below(12) {
                0 => f.server.inject_append_fault(at, AppendFault::Cut),
                1 => f.server.inject_append_fault(at, AppendFault::CutAfter),
                2 => f.server.inject_append_fault(at, AppendFault::Drain),
                3 => f.server.inject_append_fault(at, AppendFault::Throttle),
                4 => f
                    .server
                    .inject_append_fault(at, AppendFault::Fail(Code::ResourceExhausted)),
                5 => f.server.inject_append_fault(at, AppendFault::Fail(Code::Unavailable)),
                6 => f.server.inject_rpc_fault(
                    Rpc::CreateWriteStream,
                    1 + rng.below(streams as u64),
                    RpcFault::Fail(Code::Unavailable),
                ),
                7 => f.server.inject_rpc_fault(
                    Rpc::FinalizeWriteStream,
                    1 + rng.below(streams as u64),
                    RpcFault::ApplyThenFail(Code::Unavailable),
                ),
                8 => f.server.inject_rpc_fault(
                    Rpc::BatchCommitWriteStreams,
                    1,
                    RpcFault::ApplyThenFail(Code::Unavailable),
                ),
                9 => f
                    .server
                    .inject_rpc_fault(Rpc::BatchCommitWriteStreams, 1, RpcFault::Fail(Code::DeadlineExceeded)),
                10 => {
                    f.server.inject_append_fault(at, AppendFault::Fail(Code::Aborted));
                    f.server
                        .delay_appends(std::time::Duration::from_millis(1 + rng.below(3)));
                }
                _ => {
                    // A permanent error: the insert must fail and leave the table unchanged.
                    f.server
                        .inject_append_fault(at.min(2), AppendFault::Fail(Code::InvalidArgument));
                    fatal = true;
                }
            }
        }
        let result = f.run(&insert_rows(n)).await;
        let (l, d, x) = audit(&f, n);
        faults += f.server.stats().faults_injected;
        match result {
            Ok(count) => {
                assert!(
                    !fatal || f.server.stats().faults_injected == 0 || count == n,
                    "run {run}"
                );
                assert_eq!(count, n, "run {run}: returned count");
                lost += l;
                duplicated += d;
                foreign += x;
                rows_total += n;
            }
            Err(e) => {
                assert!(
                    fatal,
                    "run {run}: only permanent faults may fail an insert: {}",
                    error_text(&e)
                );
                failed += 1;
                // Unchanged: nothing committed at all.
                duplicated += d;
                foreign += x + (n - l);
            }
        }
    }
    println!(
        "fault suite: runs={RUNS} faults_injected={faults} inserts_failed={failed} rows_committed={rows_total} \
         rows_lost={lost} rows_duplicated={duplicated} rows_partially_committed={foreign}"
    );
    assert!(faults >= RUNS, "faults fired: {faults}");
    assert_eq!((lost, duplicated, foreign), (0, 0, 0));
}
