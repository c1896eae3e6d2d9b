//! INSERT INTO ... SELECT against the embedded server: atomicity, failure, cancellation,
//! request splitting and bad input.

#![cfg(feature = "server")]

mod common;

use std::time::Duration;

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::Int64Type;
use common::{Fixture, error_text};

const SCHEMA: &str = "id:INT64:REQUIRED,name:STRING,amount:FLOAT64";

fn insert_rows(n: usize) -> String {
    format!(
        "INSERT INTO dest SELECT value AS id, concat('name-', value) AS name, value * 0.5 AS amount FROM range({n})"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_stream_insert_is_invisible_until_one_commit() {
    let f = Fixture::new(SCHEMA, "'bigquery.streams' '4'").await;
    let gate = f.server.hold_commits();
    let ctx = f.ctx.clone();
    let insert = tokio::spawn(async move { common::run(&ctx, &insert_rows(50_000)).await });

    gate.arrived().await;
    assert_eq!(f.visible_rows(), 0, "no row is visible before the commit");
    assert_eq!(
        f.server.invisible_row_count(&f.table),
        50_000,
        "all rows are appended and pending"
    );
    assert_eq!(f.server.stats().streams_created, 4);
    assert_eq!(f.server.stats().commits, 0);
    gate.release();

    let count = insert.await.expect("task").expect("insert succeeds");
    assert_eq!(count, 50_000);
    assert_eq!(f.visible_rows(), 50_000);
    assert_eq!(f.server.stats().commits, 1, "one BatchCommitWriteStreams");

    let batches = f.committed("id").await;
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, (0..50_000).collect::<Vec<i64>>(), "every row exactly once");
    let names: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(1)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(names[49_999], "name-49999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_insert_uses_one_stream() {
    let f = Fixture::new(SCHEMA, "'bigquery.streams' '4'").await;
    let count = f
        .run("INSERT INTO dest VALUES (1, 'a', 1.5), (2, NULL, NULL), (3, 'c', -0.0)")
        .await
        .expect("insert");
    assert_eq!(count, 3);
    assert_eq!(f.server.stats().streams_created, 1);
    assert_eq!(f.visible_rows(), 3);
    let batches = f.committed("id").await;
    assert!(batches[0].column(1).is_null(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_writer_leaves_the_table_unchanged() {
    let f = Fixture::new(SCHEMA, "'bigquery.streams' '4'").await;
    f.run("INSERT INTO dest VALUES (-1, 'before', 0)")
        .await
        .expect("first insert");
    f.server.fail_append(4, tonic::Code::PermissionDenied);
    let err = f.run(&insert_rows(40_000)).await.expect_err("insert fails");
    let text = error_text(&err);
    assert!(
        text.contains("injected fault") && text.contains("PermissionDenied"),
        "{text}"
    );
    assert_eq!(f.visible_rows(), 1, "only the earlier row is visible");
    assert_eq!(f.server.stats().commits, 1, "the failed insert committed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_query_commits_nothing() {
    let f = Fixture::new(SCHEMA, "'bigquery.streams' '2'").await;
    f.server.delay_appends(Duration::from_millis(100));
    let ctx = f.ctx.clone();
    let insert = tokio::spawn(async move { common::run(&ctx, &insert_rows(100_000)).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while f.server.stats().rows_appended == 0 {
        assert!(tokio::time::Instant::now() < deadline, "appends never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    insert.abort();
    assert!(insert.await.expect_err("aborted").is_cancelled());
    f.server.delay_appends(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.server.stats().commits, 0);
    assert_eq!(f.visible_rows(), 0);
    // What was appended waits, invisible, in streams that are never committed, and the
    // dropped writers append no more.
    let appended = f.server.stats().rows_appended;
    assert_eq!(f.server.invisible_row_count(&f.table) as u64, appended);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        f.server.stats().rows_appended,
        appended,
        "writers stopped with the query"
    );
    assert!(appended < 100_000, "the load was cut short: {appended} rows appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_split_at_the_byte_limit() {
    let f = Fixture::new(SCHEMA, "'bigquery.streams' '2', 'bigquery.max_request_bytes' '16384'").await;
    let count = f.run(&insert_rows(20_000)).await.expect("insert");
    assert_eq!(count, 20_000);
    let stats = f.server.stats();
    assert!(
        stats.largest_append_bytes <= 16_384,
        "largest request {} bytes",
        stats.largest_append_bytes
    );
    assert!(
        stats.append_requests >= 20_000 * 20 / 16_384,
        "{} requests",
        stats.append_requests
    );
    assert_eq!(f.visible_rows(), 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_in_required_column_names_column_and_commits_nothing() {
    let f = Fixture::new(SCHEMA, "").await;
    let err = f
        .run("INSERT INTO dest VALUES (1, 'a', 1.0), (NULL, 'b', 2.0)")
        .await
        .expect_err("must fail");
    let text = error_text(&err);
    assert!(
        text.contains("column id") && text.contains("REQUIRED") && text.contains("demo.tests.dest"),
        "{text}"
    );
    assert_eq!(f.visible_rows(), 0);
    assert_eq!(f.server.stats().commits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_column_the_table_lacks_is_named() {
    let f = Fixture::new(SCHEMA, "").await;
    let err = f
        .run("INSERT INTO dest (id, nope) VALUES (1, 2)")
        .await
        .expect_err("must fail");
    assert!(error_text(&err).contains("nope"), "{}", error_text(&err));
    let err = f
        .run("INSERT INTO dest SELECT 1 AS id, 'x' AS name, 1.0 AS amount, 5 AS extra")
        .await
        .expect_err("must fail");
    assert!(
        error_text(&err).to_lowercase().contains("column"),
        "{}",
        error_text(&err)
    );
    assert_eq!(f.visible_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_table_is_named() {
    let f = Fixture::new(SCHEMA, "").await;
    let err = f
        .run("CREATE EXTERNAL TABLE missing STORED AS BIGQUERY LOCATION 'demo.tests.missing'")
        .await
        .expect_err("must fail");
    let text = error_text(&err);
    assert!(
        text.contains("demo.tests.missing") && text.contains("not found"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_named() {
    let f = Fixture::new(SCHEMA, "").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let sql = format!(
        "CREATE EXTERNAL TABLE far STORED AS BIGQUERY LOCATION 'demo.tests.dest' OPTIONS ('bigquery.endpoint' 'http://127.0.0.1:{port}')"
    );
    let err = f.run(&sql).await.expect_err("must fail");
    let text = error_text(&err);
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}")) && text.contains("cannot connect"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_into_is_refused_clearly() {
    let f = Fixture::new(SCHEMA, "").await;
    let err = f
        .run("REPLACE INTO dest VALUES (1, 'a', 1.0)")
        .await
        .expect_err("must fail");
    assert!(
        error_text(&err).contains("REPLACE INTO BigQuery table demo.tests.dest is not supported"),
        "{}",
        error_text(&err)
    );
    assert_eq!(f.visible_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_options_are_refused() {
    let server = datafusion_bigquery::EmbeddedServer::start().await.expect("server");
    let ctx = datafusion::prelude::SessionContext::new();
    datafusion_bigquery::register_bigquery(
        &ctx,
        datafusion_bigquery::BigQueryOptions::default().with_endpoint(server.endpoint()),
    );
    let err = common::run(
        &ctx,
        "CREATE EXTERNAL TABLE t STORED AS BIGQUERY LOCATION 'a.b.c' OPTIONS ('bigquery.strems' '4')",
    )
    .await
    .expect_err("must fail");
    assert!(error_text(&err).contains("bigquery.strems"), "{}", error_text(&err));
    let _ = Int64Array::from(vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_bytes_are_accounted_to_the_memory_pool() {
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};

    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use std::sync::Arc;

    let server = datafusion_bigquery::EmbeddedServer::start().await.expect("server");
    let table: datafusion_bigquery::TableRef = "demo.tests.pool".parse().expect("name");
    server.create_table(
        &table,
        datafusion_bigquery::schema::parse_inline_schema(SCHEMA).expect("schema"),
    );
    // Room for about four requests of 64 KiB across all writers: they must wait for
    // acknowledgements instead of sending more.
    let pool = Arc::new(RecordingPool {
        inner: GreedyMemoryPool::new(300 * 1024),
        consumers: Default::default(),
    });
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool.clone())
        .build_arc()
        .expect("runtime");
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    datafusion_bigquery::register_bigquery(
        &ctx,
        datafusion_bigquery::BigQueryOptions::default().with_endpoint(server.endpoint()),
    );
    common::run(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}' \
             OPTIONS ('bigquery.streams' '4', 'bigquery.max_request_bytes' '65536')"
        ),
    )
    .await
    .expect("create");
    let count = common::run(&ctx, &insert_rows(60_000))
        .await
        .expect("insert under a small pool");
    assert_eq!(count, 60_000);
    assert_eq!(server.row_count(&table), Some(60_000));
    assert_eq!(pool.reserved(), 0, "every reservation is released");
    let consumers = pool.consumers.lock().expect("lock").clone();
    assert_eq!(
        consumers
            .iter()
            .filter(|c| c.starts_with("BigQueryWriteExec[demo.tests.pool"))
            .count(),
        4,
        "{consumers:?}"
    );
}

/// A pool that remembers who registered with it.
#[derive(Debug)]
struct RecordingPool {
    inner: datafusion::execution::memory_pool::GreedyMemoryPool,
    consumers: std::sync::Mutex<Vec<String>>,
}

impl std::fmt::Display for RecordingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordingPool")
    }
}

impl datafusion::execution::memory_pool::MemoryPool for RecordingPool {
    fn name(&self) -> &str {
        "RecordingPool"
    }
    fn register(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.consumers.lock().expect("lock").push(consumer.name().to_string());
        self.inner.register(consumer);
    }
    fn grow(&self, reservation: &datafusion::execution::memory_pool::MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
    }
    fn shrink(&self, reservation: &datafusion::execution::memory_pool::MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
    }
    fn try_grow(
        &self,
        reservation: &datafusion::execution::memory_pool::MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        self.inner.try_grow(reservation, additional)
    }
    fn reserved(&self) -> usize {
        self.inner.reserved()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_input_partition_is_a_worker_with_its_own_stream_and_one_commit() {
    let f = Fixture::new("id:INT64:REQUIRED,name:STRING", "").await;
    f.run("SET datafusion.execution.target_partitions = 4")
        .await
        .expect("set");
    let sql = "INSERT INTO dest SELECT value AS id, concat('n', value) AS name FROM range(40000)";
    let explain = f
        .ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .expect("plan")
        .collect()
        .await
        .expect("explain");
    let plan = arrow::util::pretty::pretty_format_batches(&explain)
        .expect("format")
        .to_string();
    let commit = plan.find("BigQueryCommitExec").expect("commit node");
    let coalesce = plan.find("CoalescePartitionsExec").expect("coalesce");
    let write = plan
        .find("BigQueryWriteExec: table=demo.tests.dest, streams=4")
        .unwrap_or_else(|| panic!("4 workers in:\n{plan}"));
    assert!(commit < coalesce && coalesce < write, "{plan}");
    assert_eq!(f.run(sql).await.expect("insert"), 40_000);
    let stats = f.server.stats();
    assert_eq!((stats.streams_created, stats.commits), (4, 1));
    assert_eq!(f.visible_rows(), 40_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_bigquery_options_in_the_session_under_the_tables_own() {
    let f = Fixture::new(SCHEMA, "").await;
    // Set after the table was created, it applies to the next load.
    f.run("SET bigquery.streams = 3").await.expect("set");
    assert_eq!(f.run(&insert_rows(40_000)).await.expect("insert"), 40_000);
    assert_eq!(f.server.stats().streams_created, 3);
    let bad = f.run("SET bigquery.max_request_bytes = 25000000").await;
    assert!(
        common::error_text(&bad.expect_err("above the service's limit")).contains("20 MB"),
        "refused at SET"
    );

    // A table's OPTIONS still win over the session's.
    f.ctx
        .sql(&format!(
            "CREATE EXTERNAL TABLE pinned STORED AS BIGQUERY LOCATION '{}' OPTIONS ('bigquery.streams' '2')",
            f.table
        ))
        .await
        .expect("create");
    let before = f.server.stats().streams_created;
    let sql = insert_rows(40_000).replace("INSERT INTO dest", "INSERT INTO pinned");
    assert_eq!(f.run(&sql).await.expect("insert"), 40_000);
    assert_eq!(f.server.stats().streams_created - before, 2);
}

/// The physical plan of `sql` as text.
async fn physical_plan(f: &Fixture, sql: &str) -> String {
    let batches = f
        .ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain")
        .collect()
        .await
        .expect("plan");
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string();
    text.split("physical_plan").nth(1).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widening_casts_are_left_to_the_encoder_and_lossy_ones_stay() {
    let f = Fixture::new(
        "id:INT64:REQUIRED,name:STRING,price:NUMERIC,ratio:FLOAT64",
        "'bigquery.streams' '2'",
    )
    .await;
    let source = "SELECT CAST(value AS INT) AS id, arrow_cast(concat('n', value), 'Utf8View') AS name, \
                  CAST(value AS DECIMAL(12, 2)) / 8 AS price, CAST(value AS BIGINT) AS ratio FROM range(5000)";
    let insert = format!("INSERT INTO dest {source}");
    let plan = physical_plan(&f, &insert).await;
    assert!(plan.contains("BigQueryWriteExec"), "{plan}");
    // Int32 -> Int64, Utf8View -> Utf8 and Decimal128(p, 2) -> Decimal128(38, 9) are read by the
    // encoder as they are; BIGINT -> DOUBLE may round, so DataFusion's cast stays.
    for widening in ["AS Int64)", "AS Decimal128(38, 9))", "AS Utf8) as name"] {
        assert!(!plan.contains(widening), "no CAST(... {widening}: {plan}");
    }
    assert!(plan.contains("CAST(value@0 AS Float64) as ratio"), "{plan}");
    assert_eq!(f.run(&insert).await.expect("insert"), 5000);
    let batches = f.committed("id").await;
    let prices = batches[0].column(2).as_primitive::<arrow::datatypes::Decimal128Type>();
    // 4999 / 8 = 624.875, at NUMERIC's scale 9.
    let last = batches.last().expect("rows");
    let last_price = last.column(2).as_primitive::<arrow::datatypes::Decimal128Type>();
    assert_eq!(last_price.value(last.num_rows() - 1), 624_875_000_000);
    assert_eq!(prices.value(1), 125_000_000);
    assert_eq!(last.column(1).as_string::<i32>().value(last.num_rows() - 1), "n4999");
}
