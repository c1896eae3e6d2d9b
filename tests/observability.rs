//! What a load reports while and after it runs: the sink's metrics in `EXPLAIN ANALYZE`, and
//! the shared progress counters of a factory and of the library API.

#![cfg(feature = "server")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::util::pretty::pretty_format_batches;
use common::Fixture;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::server::AppendFault;
use datafusion_bigquery::{
    BigQueryOptions, BigQueryTableFactory, EmbeddedServer, LoadProgress, Loader, TableRef, register_bigquery_factory,
    schema,
};

const SCHEMA: &str = "id:INT64:REQUIRED,name:STRING";

/// The value of `name=...` in a metrics list, as printed.
fn metric<'a>(plan: &'a str, name: &str) -> &'a str {
    let start = plan
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("{name} missing from:\n{plan}"))
        + name.len()
        + 1;
    let rest = &plan[start..];
    let end = rest.find([',', ']']).unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_shows_the_metrics_of_the_write_and_commit_nodes() {
    let f = Fixture::new(SCHEMA, "'bigquery.streams' '3', 'bigquery.max_request_bytes' '4096'").await;
    // The second request breaks its connection: one reconnect, the rows still land once.
    f.server.inject_append_fault(2, AppendFault::Cut);
    let batches = f
        .ctx
        .sql("EXPLAIN ANALYZE INSERT INTO dest SELECT value AS id, concat('name-', value) AS name FROM range(30000)")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("explain analyze runs the insert");
    let plan = pretty_format_batches(&batches).expect("format").to_string();
    let line = |node: &str| {
        plan.lines()
            .find(|line| line.contains(node))
            .unwrap_or_else(|| panic!("no {node} in:\n{plan}"))
    };
    let (write_line, commit_line) = (line("BigQueryWriteExec"), line("BigQueryCommitExec"));

    assert_eq!(f.visible_rows(), 30_000, "EXPLAIN ANALYZE runs the load");
    assert!(
        write_line.contains("BigQueryWriteExec: table=demo.tests.dest, streams=3"),
        "{write_line}"
    );
    assert!(
        commit_line.contains("BigQueryCommitExec: table=demo.tests.dest"),
        "{commit_line}"
    );
    assert_eq!(metric(write_line, "rows_written"), "30.00 K");
    assert_eq!(metric(write_line, "write_streams"), "3");
    assert_eq!(metric(write_line, "append_retries"), "1");
    let stats = f.server.stats();
    let requests: u64 = metric(write_line, "append_requests").parse().expect("a count");
    assert!(requests > 3, "requests are split under 4096 bytes: {requests}");
    assert!(
        stats.append_requests > requests,
        "the server also saw the resent requests ({} vs {requests})",
        stats.append_requests
    );
    for timing in ["append_latency", "append_latency_max", "bytes_written"] {
        let value = metric(write_line, timing);
        assert!(!value.is_empty() && !value.starts_with('0'), "{timing}={value}");
    }
    let commit = metric(commit_line, "commit_time");
    assert!(!commit.is_empty() && !commit.starts_with('0'), "commit_time={commit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_progress_counts_every_load_of_its_tables() {
    let server = EmbeddedServer::start().await.expect("server starts");
    let table: TableRef = "demo.tests.dest".parse().expect("table name");
    server.create_table(&table, schema::parse_inline_schema(SCHEMA).expect("schema"));
    let progress = LoadProgress::new();
    let ctx = SessionContext::new();
    let factory = BigQueryTableFactory::new(BigQueryOptions::default().with_endpoint(server.endpoint()))
        .with_progress(progress.clone());
    register_bigquery_factory(&ctx, factory);
    common::run(
        &ctx,
        "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION 'demo.tests.dest' OPTIONS ('bigquery.streams' '2')",
    )
    .await
    .expect("create");

    // Watch the counters while a slowed-down load runs: they grow before the commit.
    server.delay_appends(Duration::from_millis(20));
    let gate = server.hold_commits();
    let insert_ctx = ctx.clone();
    let insert = tokio::spawn(async move {
        common::run(
            &insert_ctx,
            "INSERT INTO dest SELECT value AS id, 'x' AS name FROM range(50000)",
        )
        .await
    });
    gate.arrived().await;
    let pending = progress.snapshot();
    assert_eq!((pending.rows, pending.streams, pending.loads), (50_000, 2, 0));
    assert_eq!(pending.last_commit_time, None);
    gate.release();
    assert_eq!(insert.await.expect("task").expect("insert"), 50_000);

    let before = progress.snapshot();
    assert_eq!((before.rows, before.loads), (50_000, 1));
    assert!(before.last_commit_time.is_some(), "the commit time is recorded");
    assert!(before.append_latency_max >= Duration::from_millis(20), "{before:?}");

    gate.release(); // the gate stays: let the next commit through too
    common::run(&ctx, "INSERT INTO dest VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await
        .expect("second insert");
    let second = progress.snapshot().since(&before);
    assert_eq!(
        (second.rows, second.streams, second.loads, second.requests),
        (3, 1, 1, 1)
    );
    assert_eq!(server.row_count(&table), Some(50_003));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_api_reports_progress_and_commit_time() {
    let server = EmbeddedServer::start().await.expect("server starts");
    let table: TableRef = "demo.tests.dest".parse().expect("table name");
    server.create_table(&table, schema::parse_inline_schema(SCHEMA).expect("schema"));
    let progress = LoadProgress::new();
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_streams(3);
    let loader = Loader::connect(table.clone(), options)
        .await
        .expect("connect")
        .with_progress(progress.clone());
    let batches: Vec<RecordBatch> = (0..6i64)
        .map(|b| {
            let ids: Vec<i64> = (b * 1000..(b + 1) * 1000).collect();
            let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
            RecordBatch::try_new(
                loader.arrow_schema(),
                vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(names))],
            )
            .expect("batch")
        })
        .collect();
    let input = futures::stream::iter(batches.into_iter().map(Ok::<_, std::io::Error>));
    let summary = loader.load(loader.arrow_schema(), input).await.expect("load");

    let seen = progress.snapshot();
    assert_eq!((summary.rows, summary.streams), (6_000, 3));
    assert_eq!((seen.rows, seen.bytes, seen.streams), (summary.rows, summary.bytes, 3));
    assert_eq!(seen.requests, summary.requests);
    assert_eq!(seen.last_commit_time, summary.commit_time, "the same commit time");
    assert_eq!(server.row_count(&table), Some(6_000));
}
