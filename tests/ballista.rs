//! INSERTs on Ballista (cargo feature `ballista`): a standalone cluster in-process, and a
//! cluster of one scheduler and two executor processes started from the built binary, one of
//! them killed while it writes. Every load lands exactly once, in one commit, or not at all.

#![cfg(all(feature = "ballista", feature = "server"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::audit;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::ballista::{Cluster, ballista_context_with};
use datafusion_bigquery::{BigQueryOptions, BigQueryTableFactory, EmbeddedServer, LoadProgress, TableRef, schema};

const BIN: &str = env!("CARGO_BIN_EXE_datafusion-bigquery");

/// Writes `files` Parquet files of `rows_per_file` rows each (ids 0.., name `n<id>`, and a
/// nullable `note` that is NULL at `null_at`) into a fresh directory.
async fn parquet_files(name: &str, files: u64, rows_per_file: u64, null_at: Option<u64>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dfbq-ballista-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let ctx = SessionContext::new();
    for i in 0..files {
        let first = i * rows_per_file;
        let note = match null_at {
            Some(at) => format!("CASE WHEN value + {first} = {at} THEN NULL ELSE 'x' END"),
            None => "'x'".to_string(),
        };
        let sql = format!(
            "COPY (SELECT value + {first} AS id, concat('n', value + {first}) AS name, {note} AS note \
             FROM range({rows_per_file})) TO '{}' STORED AS PARQUET",
            dir.join(format!("part-{i}.parquet")).display()
        );
        common::run(&ctx, &sql).await.expect("write parquet");
    }
    dir
}

/// A server with table `demo.ballista.t` (`id` REQUIRED, `name`, `note` REQUIRED when asked).
async fn new_server(note_required: bool) -> (EmbeddedServer, TableRef) {
    let server = EmbeddedServer::start().await.expect("server");
    let table: TableRef = "demo.ballista.t".parse().expect("name");
    let note = if note_required {
        "note:STRING:REQUIRED"
    } else {
        "note:STRING"
    };
    server.create_table(
        &table,
        schema::parse_inline_schema(&format!("id:INT64:REQUIRED,name:STRING,{note}")).expect("schema"),
    );
    (server, table)
}

/// Runs `INSERT INTO dest SELECT ... FROM src` and checks that ids 0..n landed exactly once.
async fn insert_lands_exactly_once(ctx: &SessionContext, server: &EmbeddedServer, table: &TableRef, n: u64) {
    let count = common::run(ctx, "INSERT INTO dest SELECT id, name, note FROM src")
        .await
        .unwrap_or_else(|e| panic!("insert: {}", common::error_text(&e)));
    assert_eq!(count, n);
    assert_eq!(audit(server, table, n), (0, 0, 0), "lost, duplicated, foreign");
}

/// Registers the Parquet files of `dir` as `src`.
async fn source(ctx: &SessionContext, dir: &Path) {
    common::run(
        ctx,
        &format!(
            "CREATE EXTERNAL TABLE src STORED AS PARQUET LOCATION '{}/'",
            dir.display()
        ),
    )
    .await
    .expect("source");
}

/// Registers the Parquet source and the BigQuery destination on a Ballista session, the
/// destination with `options` (`OPTIONS (...)`, or empty).
async fn tables(ctx: &SessionContext, dir: &Path, table: &TableRef, options: &str) {
    source(ctx, dir).await;
    common::run(
        ctx,
        &format!("CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}' {options}"),
    )
    .await
    .expect("destination");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_insert_from_parquet_lands_exactly_once_in_one_commit() {
    const FILES: u64 = 4;
    const ROWS: u64 = 30_000;
    let dir = parquet_files("standalone", FILES, ROWS, None).await;
    let (server, table) = new_server(false).await;
    let progress = LoadProgress::new();
    let factory = BigQueryTableFactory::new(BigQueryOptions::default().with_endpoint(server.endpoint()))
        .with_progress(progress.clone());
    let ctx = ballista_context_with(&Cluster::Standalone, factory)
        .await
        .expect("standalone cluster");
    tables(&ctx, &dir, &table, "").await;
    insert_lands_exactly_once(&ctx, &server, &table, FILES * ROWS).await;
    let stats = server.stats();
    assert_eq!(stats.commits, 1);
    assert!(stats.streams_created >= 2, "{} streams", stats.streams_created);
    // The writers ran in decoded plans on the executor: the client's own counters saw none.
    assert_eq!(progress.snapshot().streams, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_in_a_required_column_met_on_an_executor_commits_nothing() {
    let dir = parquet_files("null", 4, 10_000, Some(25_000)).await;
    let (server, table) = new_server(true).await;
    let ctx = ballista_context_with(
        &Cluster::Standalone,
        BigQueryTableFactory::new(BigQueryOptions::default().with_endpoint(server.endpoint())),
    )
    .await
    .expect("standalone cluster");
    tables(&ctx, &dir, &table, "").await;
    let err = common::run(&ctx, "INSERT INTO dest SELECT id, name, note FROM src")
        .await
        .expect_err("NULL in a REQUIRED column");
    let text = common::error_text(&err);
    assert!(
        text.contains("column note") && text.contains("NULL in a REQUIRED column"),
        "{text}"
    );
    assert_eq!(server.row_count(&table), Some(0));
    assert_eq!(server.stats().commits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_on_a_cluster_is_overwritten_atomically() {
    const FILES: u64 = 4;
    const ROWS: u64 = 5_000;
    let dir = parquet_files("overwrite", FILES, ROWS, None).await;
    let server = EmbeddedServer::start().await.expect("server");
    let table: TableRef = "demo.ballista_overwrite.t".parse().expect("name");
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_rest_endpoint(server.rest_endpoint());
    let ctx = ballista_context_with(&Cluster::Standalone, BigQueryTableFactory::new(options))
        .await
        .expect("standalone cluster");
    source(&ctx, &dir).await;
    common::run(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE dest (id BIGINT NOT NULL, name VARCHAR, note VARCHAR) STORED AS BIGQUERY \
             LOCATION '{table}' OPTIONS ('bigquery.create' 'if_needed', 'bigquery.labels' 'kept=yes')"
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("create: {}", common::error_text(&e)));
    let seeded = common::run(&ctx, "INSERT INTO dest SELECT id + 1000000 AS id, name, note FROM src")
        .await
        .unwrap_or_else(|e| panic!("seed: {}", common::error_text(&e)));
    assert_eq!(seeded, FILES * ROWS);
    let count = common::run(&ctx, "INSERT OVERWRITE dest SELECT id, name, note FROM src")
        .await
        .unwrap_or_else(|e| panic!("overwrite: {}", common::error_text(&e)));
    assert_eq!(count, FILES * ROWS);
    assert_eq!(
        audit(&server, &table, FILES * ROWS),
        (0, 0, 0),
        "lost, duplicated, foreign"
    );
    assert_eq!(
        server.table_names("demo", "ballista_overwrite"),
        vec!["t".to_string()],
        "no staging table"
    );
    let json = server.table_json(&table).expect("table");
    assert_eq!(json["labels"]["kept"], "yes");
}

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something listens on `port`.
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scheduler and two executors, each its own process of the built binary. Executors send a
/// heartbeat every second and are taken as lost after 6 s without one; a task may fail 4
/// times before its job does.
struct LocalCluster {
    scheduler_port: u16,
    _scheduler: Process,
    executors: Vec<Process>,
}

impl LocalCluster {
    fn start() -> Self {
        let scheduler_port = free_port();
        let scheduler = Process(
            Command::new(BIN)
                .args([
                    "ballista",
                    "scheduler",
                    "--bind",
                    &format!("127.0.0.1:{scheduler_port}"),
                    "--executor-timeout-secs",
                    "6",
                    "--task-max-failures",
                    "4",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("scheduler starts"),
        );
        wait_for_port(scheduler_port);
        let executors = (0..2)
            .map(|_| {
                let (flight, grpc) = (free_port(), free_port());
                let child = Command::new(BIN)
                    .args([
                        "ballista",
                        "executor",
                        "--scheduler",
                        &format!("127.0.0.1:{scheduler_port}"),
                        "--bind",
                        &format!("127.0.0.1:{flight}"),
                        "--grpc-port",
                        &grpc.to_string(),
                        "--concurrent-tasks",
                        "2",
                        "--heartbeat-secs",
                        "1",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("executor starts");
                wait_for_port(flight);
                Process(child)
            })
            .collect();
        Self {
            scheduler_port,
            _scheduler: scheduler,
            executors,
        }
    }

    async fn session(&self, server: &EmbeddedServer) -> SessionContext {
        let factory = BigQueryTableFactory::new(BigQueryOptions::default().with_endpoint(server.endpoint()));
        let url = format!("df://127.0.0.1:{}", self.scheduler_port);
        ballista_context_with(&Cluster::Remote(url), factory)
            .await
            .expect("remote session")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_two_executors_loads_a_million_rows_exactly_once_even_when_one_is_killed() {
    const FILES: u64 = 8;
    const ROWS: u64 = 125_000;
    let dir = parquet_files("cluster", FILES, ROWS, None).await;

    // A whole cluster, once without faults.
    let cluster = LocalCluster::start();
    let (server, table) = new_server(false).await;
    let ctx = cluster.session(&server).await;
    tables(&ctx, &dir, &table, "").await;
    insert_lands_exactly_once(&ctx, &server, &table, FILES * ROWS).await;
    assert_eq!(server.stats().commits, 1);
    drop(ctx);
    drop(cluster);

    // Again on a fresh cluster, killing one executor (SIGKILL) once it is writing.
    let mut cluster = LocalCluster::start();
    let (server, table) = new_server(false).await;
    server.delay_appends(Duration::from_millis(20));
    let ctx = cluster.session(&server).await;
    tables(&ctx, &dir, &table, "").await;
    let insert =
        tokio::spawn(async move { common::run(&ctx, "INSERT INTO dest SELECT id, name, note FROM src").await });
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.stats().rows_appended == 0 {
        assert!(Instant::now() < deadline, "no executor started writing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = cluster.executors.remove(0);
    drop(victim);
    let streams_before_kill = server.stats().streams_created;
    let outcome = tokio::time::timeout(Duration::from_secs(300), insert)
        .await
        .expect("the load ends in bounded time")
        .expect("task");
    let stats = server.stats();
    println!(
        "ballista kill: {} streams created ({} before the kill), {} commits, outcome {:?}",
        stats.streams_created,
        streams_before_kill,
        stats.commits,
        outcome.as_ref().map_err(common::error_text)
    );
    let (lost, duplicated, foreign) = audit(&server, &table, FILES * ROWS);
    match outcome {
        Ok(count) => {
            assert_eq!(count, FILES * ROWS);
            assert_eq!((lost, duplicated, foreign), (0, 0, 0), "exactly once after the kill");
            assert_eq!(stats.commits, 1);
        }
        Err(_) => {
            assert_eq!(server.row_count(&table), Some(0), "a failed load commits nothing");
            assert_eq!(stats.commits, 0);
        }
    }
}

/// Checkpoints on a cluster: the executors record their streams in a shared folder; when one
/// executor is killed mid-load, the tasks run again elsewhere resume their predecessors'
/// streams (finalized ones are reused) instead of writing new ones, and every row lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpointed_load_on_a_cluster_resumes_the_killed_executors_streams() {
    const FILES: u64 = 8;
    const ROWS: u64 = 125_000;
    let dir = parquet_files("checkpointed", FILES, ROWS, None).await;
    let checkpoints = std::env::temp_dir().join(format!("dfbq-ballista-{}-checkpoints", std::process::id()));
    let _ = std::fs::remove_dir_all(&checkpoints);
    let mut cluster = LocalCluster::start();
    let (server, table) = new_server(false).await;
    server.delay_appends(Duration::from_millis(20));
    let ctx = cluster.session(&server).await;
    let options = format!(
        "OPTIONS ('bigquery.checkpoint' '{}', 'bigquery.checkpoint_interval_ms' '100', \
         'bigquery.lease_ttl_ms' '20000')",
        checkpoints.display()
    );
    tables(&ctx, &dir, &table, &options).await;
    let insert =
        tokio::spawn(async move { common::run(&ctx, "INSERT INTO dest SELECT id, name, note FROM src").await });
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.stats().rows_appended < FILES * ROWS / 4 {
        assert!(Instant::now() < deadline, "the executors did not write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(cluster.executors.remove(0));
    let count = tokio::time::timeout(Duration::from_secs(300), insert)
        .await
        .expect("the load ends in bounded time")
        .expect("task")
        .unwrap_or_else(|e| panic!("insert: {}", common::error_text(&e)));
    assert_eq!(count, FILES * ROWS);
    assert_eq!(
        audit(&server, &table, FILES * ROWS),
        (0, 0, 0),
        "lost, duplicated, foreign"
    );
    let stats = server.stats();
    let loads = datafusion_bigquery::checkpoint::CheckpointStore::open(&checkpoints.display().to_string())
        .expect("folder")
        .list()
        .await
        .expect("list");
    let [load] = loads.as_slice() else {
        panic!("one load expected, found {}", loads.len());
    };
    let commit = load.commit.as_ref().expect("the commit is recorded");
    assert_eq!(commit.rows, FILES * ROWS);
    println!(
        "ballista checkpointed kill: {} partitions, {} streams created, {} rows appended for {} input rows",
        load.partitions.len(),
        stats.streams_created,
        stats.rows_appended,
        FILES * ROWS
    );
    // One stream per partition: the retried tasks took their predecessors' streams over (one
    // more if a task was killed before its first checkpoint).
    assert!(
        stats.streams_created as usize <= load.partitions.len() + 1,
        "{} streams for {} partitions",
        stats.streams_created,
        load.partitions.len()
    );
    assert_eq!(commit.streams.len(), load.partitions.len());
    assert!(
        stats.rows_appended < FILES * ROWS + FILES * ROWS / 10,
        "{} rows appended",
        stats.rows_appended
    );
}
