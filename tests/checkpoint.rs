//! Checkpointed loads (`bigquery.checkpoint`), driven through the CLI against an embedded
//! server in this test process: the CLI is killed with SIGKILL at seeded random moments
//! (and once between a commit and its record) and rerun until it succeeds; every input row
//! lands exactly once, and resumed partitions skip the work already done. Also: a rerun after
//! success writes nothing, a second runner is refused, a plan that does not replay restarts,
//! and a changed input under an explicit load id is refused. With an S3-compatible server
//! (moto, started by scripts/test.sh), the same with sources and checkpoints on S3.

#![cfg(feature = "server")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::audit;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::{EmbeddedServer, TableRef, schema};

const BIN: &str = env!("CARGO_BIN_EXE_datafusion-bigquery");

/// Input rows of the crash test: 4 Parquet files.
const FILES: u64 = 4;
const ROWS_PER_FILE: u64 = 150_000;
const ROWS: u64 = FILES * ROWS_PER_FILE;

/// Lease time to live of the tests' loads: a killed run blocks a rerun this long.
const LEASE_TTL_MS: u64 = 400;

/// A fresh directory under the system's temporary one.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dfbq-checkpoint-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Writes `files` Parquet files of `rows_per_file` rows (ids from `first_id` on) into `dir`.
async fn parquet_files(dir: &Path, first_id: u64, files: u64, rows_per_file: u64) {
    let ctx = SessionContext::new();
    for i in 0..files {
        let first = first_id + i * rows_per_file;
        let sql = format!(
            "COPY (SELECT value + {first} AS id, concat('name-', value + {first}) AS name \
             FROM range({rows_per_file})) TO '{}' STORED AS PARQUET",
            dir.join(format!("part-{first:08}.parquet")).display()
        );
        common::run(&ctx, &sql).await.expect("write parquet");
    }
}

/// A server with `table` (`id` REQUIRED, `name`).
fn create_table(server: &EmbeddedServer, table: &str) -> TableRef {
    let table: TableRef = table.parse().expect("name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED,name:STRING").expect("schema"),
    );
    table
}

/// The SQL of a checkpointed load of `source` into `table`.
fn load_sql(source: &str, table: &TableRef, checkpoint: &str, extra_options: &str, select: &str) -> String {
    format!(
        "SET datafusion.execution.target_partitions = 4; \
         CREATE EXTERNAL TABLE src STORED AS PARQUET LOCATION '{source}'; \
         CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}' OPTIONS (\
           'bigquery.checkpoint' '{checkpoint}', 'bigquery.checkpoint_interval_ms' '100', \
           'bigquery.lease_ttl_ms' '{LEASE_TTL_MS}', 'bigquery.max_request_bytes' '200000'{extra_options}); \
         INSERT INTO dest {select};"
    )
}

/// A load of `files` Parquet files of `rows_per_file` rows into `demo.<name>.t`, with its
/// checkpoint folder and its SQL.
struct LocalLoad {
    source: PathBuf,
    checkpoints: PathBuf,
    table: TableRef,
    sql: String,
}

async fn local_load(
    server: &EmbeddedServer,
    name: &str,
    (files, rows_per_file): (u64, u64),
    extra_options: &str,
    select: &str,
) -> LocalLoad {
    let source = temp_dir(&format!("{name}-src"));
    parquet_files(&source, 0, files, rows_per_file).await;
    let checkpoints = temp_dir(&format!("{name}-checkpoints"));
    let table = create_table(server, &format!("demo.{name}.t"));
    let sql = load_sql(
        &format!("{}/", source.display()),
        &table,
        &checkpoints.display().to_string(),
        extra_options,
        select,
    );
    LocalLoad {
        source,
        checkpoints,
        table,
        sql,
    }
}

/// Starts the CLI on `sql` against `endpoint`.
fn spawn_cli(endpoint: &str, sql: &str, env: &[(String, String)]) -> Child {
    Command::new(BIN)
        .args(["--endpoint", endpoint, "-c", sql])
        .env_remove("BIGQUERY_STORAGE_EMULATOR_HOST")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the CLI")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The number after `label` in `text` (`1,234 label` → 1234), if any.
fn number_before(text: &str, label: &str) -> Option<u64> {
    let end = text.find(label)?;
    let digits: String = text[..end]
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What one seeded crash run did.
struct CrashRun {
    kills: u64,
    rows_appended: u64,
    skipped: u64,
}

/// Loads `source` into a fresh table, killing the CLI `kills` times at random moments (the
/// first kill between the commit and its record when `kill_after_commit`), rerunning until a
/// run succeeds; checks that every row landed once and a further rerun writes nothing.
async fn crash_run(
    server: &EmbeddedServer,
    seed: u64,
    source: &str,
    checkpoint: &str,
    env: &[(String, String)],
    kill_after_commit: bool,
) -> CrashRun {
    let table = create_table(server, &format!("demo.crash.t{seed}"));
    let sql = load_sql(source, &table, checkpoint, "", "SELECT id, name FROM src");
    let endpoint = server.endpoint();
    let mut random = common::Lcg(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 1);
    let planned_kills = 1 + random.below(3);
    let before = server.stats();
    let mut kills = 0;
    let mut skipped_reported = 0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts < 20, "seed {seed}: no success after {attempts} runs");
        let mut child = spawn_cli(&endpoint, &sql, env);
        if kills < planned_kills {
            if kill_after_commit && kills == 0 {
                // Held after the commit was applied: the CLI dies before writing its record.
                let gate = server.hold_commit_replies();
                tokio::time::timeout(Duration::from_secs(60), gate.arrived())
                    .await
                    .expect("the commit arrives");
                child.kill().expect("kill");
                let _ = child.wait();
                server.stop_holding_commit_replies();
                gate.release();
                kills += 1;
                tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS + 200)).await;
                // The run after it must find the commit from the streams.
                let output = spawn_cli(&endpoint, &sql, env).wait_with_output().expect("rerun");
                let (stdout, stderr) = text(&output);
                assert!(output.status.success(), "seed {seed}: {stderr}");
                assert!(
                    stdout.contains("Already committed at") && stdout.contains("record rebuilt from the streams"),
                    "seed {seed}: {stdout}"
                );
                break;
            }
            let delay = Duration::from_millis(50 + random.below(1_500));
            let started = Instant::now();
            let exited = loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    break Some(status);
                }
                if started.elapsed() >= delay {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            if exited.is_none() {
                child.kill().expect("kill");
                let _ = child.wait();
                kills += 1;
                tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS + 200)).await;
                continue;
            }
            // It finished before the kill: that is a success like any other.
            let output = child.wait_with_output().expect("output");
            let (stdout, stderr) = text(&output);
            assert!(output.status.success(), "seed {seed}: {stderr}");
            skipped_reported += number_before(&stdout, "input rows not sent again").unwrap_or(0);
            break;
        }
        let output = child.wait_with_output().expect("output");
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "seed {seed}: {stderr}");
        assert!(stdout.contains(&format!("| {ROWS}")), "seed {seed}: {stdout}");
        skipped_reported += number_before(&stdout, "input rows not sent again").unwrap_or(0);
        break;
    }
    if audit(server, &table, ROWS) != (0, 0, 0) {
        use arrow::array::AsArray;
        let mut seen = std::collections::BTreeMap::<i64, u64>::new();
        for batch in server.rows(&table).expect("table") {
            for id in batch.column(0).as_primitive::<arrow::datatypes::Int64Type>().values() {
                *seen.entry(*id).or_default() += 1;
            }
        }
        let dups: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).map(|(i, _)| *i).collect();
        let lost: Vec<_> = (0..ROWS as i64).filter(|i| !seen.contains_key(i)).collect();
        eprintln!(
            "seed {seed}: duplicated ids {:?}..{:?}, lost ids {:?}..{:?}",
            dups.first(),
            dups.last(),
            lost.first(),
            lost.last()
        );
    }
    assert_eq!(
        audit(server, &table, ROWS),
        (0, 0, 0),
        "seed {seed}: (lost, duplicated, foreign)"
    );
    let after = server.stats();

    // Run again: nothing is written, the earlier commit is reported.
    let output = spawn_cli(&endpoint, &sql, env).wait_with_output().expect("rerun");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "seed {seed}: {stderr}");
    assert!(stdout.contains("Already committed at"), "seed {seed}: {stdout}");
    assert_eq!(
        server.stats().rows_appended,
        after.rows_appended,
        "seed {seed}: a rerun wrote rows"
    );
    assert_eq!(server.stats().streams_created, after.streams_created);
    assert_eq!(audit(server, &table, ROWS), (0, 0, 0));
    CrashRun {
        kills,
        rows_appended: after.rows_appended - before.rows_appended,
        skipped: skipped_reported,
    }
}

/// Ten seeded runs against the embedded server, checkpoints on the local file system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_killed_at_random_moments_resumes_and_lands_every_row_exactly_once() {
    let server = EmbeddedServer::start().await.expect("server");
    let source = temp_dir("crash-src");
    parquet_files(&source, 0, FILES, ROWS_PER_FILE).await;
    let checkpoints = temp_dir("crash-checkpoints");
    let (mut kills, mut appended, mut skipped) = (0, 0, 0);
    for seed in 0..10 {
        let run = crash_run(
            &server,
            seed,
            &format!("{}/", source.display()),
            &checkpoints.display().to_string(),
            &[],
            seed == 0,
        )
        .await;
        kills += run.kills;
        appended += run.rows_appended;
        skipped += run.skipped;
    }
    let loads = 10 * ROWS;
    eprintln!(
        "{kills} kills over 10 loads of {ROWS} rows: {appended} rows appended in all ({:.3} per input row), \
         {skipped} rows not sent again by resumed runs",
        appended as f64 / loads as f64
    );
    assert!(kills >= 10, "{kills} kills");
    assert!(skipped > 0, "resumed runs skipped nothing");
    // Starting over after each kill would append about half an input per kill again.
    let resent = appended.saturating_sub(loads);
    assert!(
        resent < kills * ROWS / 10,
        "{resent} rows re-sent after {kills} kills: resuming did not save the work"
    );
}

/// A second runner of a load is refused while the first holds its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runner_is_refused_while_the_first_runs() {
    let server = EmbeddedServer::start().await.expect("server");
    let LocalLoad { table, sql, .. } = local_load(&server, "second", (2, 1_000), "", "SELECT id, name FROM src").await;
    let gate = server.hold_commits();
    let first = spawn_cli(&server.endpoint(), &sql, &[]);
    tokio::time::timeout(Duration::from_secs(60), gate.arrived())
        .await
        .expect("the first runner commits");
    // Past the lease's time to live: the first runner keeps renewing it.
    tokio::time::sleep(Duration::from_millis(2 * LEASE_TTL_MS)).await;
    let second = spawn_cli(&server.endpoint(), &sql, &[])
        .wait_with_output()
        .expect("second");
    let (_, stderr) = text(&second);
    assert!(!second.status.success());
    assert!(stderr.contains("is being run by another process"), "{stderr}");
    gate.release();
    let first = first.wait_with_output().expect("first");
    assert!(first.status.success(), "{}", text(&first).1);
    assert_eq!(audit(&server, &table, 2_000), (0, 0, 0));
}

/// A plan whose partitions do not replay (a sort) starts over after a kill, still exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_does_not_replay_restarts_and_stays_exact() {
    let server = EmbeddedServer::start().await.expect("server");
    let LocalLoad { table, sql, .. } = local_load(
        &server,
        "sorted",
        (FILES, ROWS_PER_FILE),
        "",
        "SELECT id, name FROM src ORDER BY name",
    )
    .await;
    let mut child = spawn_cli(&server.endpoint(), &sql, &[]);
    // Killed once some rows were acknowledged.
    let started = Instant::now();
    while server.stats().rows_appended < ROWS / 10 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS + 200)).await;
    let output = spawn_cli(&server.endpoint(), &sql, &[])
        .wait_with_output()
        .expect("rerun");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("partitions do not replay"), "{stdout}");
    assert_eq!(audit(&server, &table, ROWS), (0, 0, 0));
}

/// Under an explicit load id, a changed input is refused and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_input_under_an_explicit_load_id_is_refused() {
    let server = EmbeddedServer::start().await.expect("server");
    let LocalLoad {
        source,
        checkpoints,
        table,
        sql,
    } = local_load(
        &server,
        "changed",
        (2, 1_000),
        ", 'bigquery.load_id' 'nightly-2026-12-01'",
        "SELECT id, name FROM src",
    )
    .await;
    let output = spawn_cli(&server.endpoint(), &sql, &[])
        .wait_with_output()
        .expect("first");
    assert!(output.status.success(), "{}", text(&output).1);
    parquet_files(&source, 2_000, 1, 1_000).await;
    let appended = server.stats().rows_appended;
    let output = spawn_cli(&server.endpoint(), &sql, &[])
        .wait_with_output()
        .expect("second");
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("load nightly-2026-12-01 was started over a different input"),
        "{stderr}"
    );
    assert_eq!(server.stats().rows_appended, appended, "nothing written");
    assert_eq!(audit(&server, &table, 2_000), (0, 0, 0));

    let listed = Command::new(BIN)
        .args(["checkpoints", "list", &checkpoints.display().to_string()])
        .output()
        .expect("list");
    let (stdout, _) = text(&listed);
    assert!(
        stdout.starts_with("nightly-2026-12-01\tdemo.changed.t\tcommitted 2000 rows at "),
        "{stdout}"
    );
    let deleted = Command::new(BIN)
        .args([
            "checkpoints",
            "delete",
            &checkpoints.display().to_string(),
            "nightly-2026-12-01",
        ])
        .output()
        .expect("delete");
    assert!(deleted.status.success(), "{}", text(&deleted).1);
    // With the checkpoints gone, the changed input is a new load.
    let output = spawn_cli(&server.endpoint(), &sql, &[])
        .wait_with_output()
        .expect("third");
    assert!(output.status.success(), "{}", text(&output).1);
    assert_eq!(server.row_count(&table), Some(5_000));
}

/// The S3-compatible server scripts/test.sh starts (moto), or `None` (after deciding whether
/// that is allowed: with `DFBQ_REQUIRE_CONFORMANCE` or `CI` set, a missing one fails).
fn s3_endpoint() -> Option<String> {
    if let Ok(endpoint) = std::env::var("DFBQ_S3_ENDPOINT") {
        return Some(endpoint);
    }
    common::missing_server("the S3 server (DFBQ_S3_ENDPOINT)");
    None
}

/// Sources and checkpoints on S3: the CLI reads `s3://` Parquet files, is killed and rerun,
/// and every row lands once; the checkpoints are in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_and_checkpoints_on_s3_resume_after_a_kill() {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = format!("dfbq-{}", std::process::id());
    let created = ureq::put(&format!("{endpoint}/{bucket}")).send_empty();
    assert!(created.is_ok(), "creating bucket {bucket}: {created:?}");
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_region("us-east-1")
        .with_bucket_name(&bucket)
        .build()
        .expect("S3 client");
    let local = temp_dir("s3-src");
    parquet_files(&local, 0, FILES, ROWS_PER_FILE).await;
    for entry in std::fs::read_dir(&local).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        let bytes = std::fs::read(&path).expect("read");
        store
            .put(&object_store::path::Path::from(format!("src/{name}")), bytes.into())
            .await
            .expect("upload");
    }

    let server = EmbeddedServer::start().await.expect("server");
    let run = crash_run(
        &server,
        100,
        &format!("s3://{bucket}/src/"),
        &format!("s3://{bucket}/checkpoints"),
        &env,
        false,
    )
    .await;
    assert!(run.kills >= 1);
    let files: Vec<_> = store
        .list(Some(&object_store::path::Path::from("checkpoints")))
        .try_collect()
        .await
        .expect("list");
    let names: Vec<String> = files.iter().map(|m| m.location.to_string()).collect();
    assert!(names.iter().any(|n| n.ends_with("/commit.json")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("/partition-00000-")), "{names:?}");
}

/// Once against bqemulator (a Storage Write server written independently of this crate): the
/// CLI is killed while its workers are part-way (their checkpoints say so), rerun, and every
/// row lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_load_resumes_against_bqemulator() {
    use common::bqemulator;
    // An emulator of its own (scripts/test.sh): the killed client's calls keep its threads.
    let Some((grpc, rest)) = bqemulator::emulator_at(
        "BQEMULATOR_CHECKPOINT_GRPC",
        "BQEMULATOR_CHECKPOINT_REST",
        "bqemulator (checkpoint)",
    ) else {
        return;
    };
    const ROWS_EACH: u64 = 25_000;
    let fields = serde_json::json!([
        {"name": "id", "type": "INT64", "mode": "REQUIRED"},
        {"name": "name", "type": "STRING", "mode": "NULLABLE"},
    ]);
    let table = bqemulator::create_table(&rest, "ckpt", "crash", fields);
    let source = temp_dir("bqemulator-src");
    parquet_files(&source, 0, FILES, ROWS_EACH).await;
    let checkpoints = temp_dir("bqemulator-checkpoints");
    // Two streams: bqemulator serves AppendRows calls on a small thread pool, and the calls
    // of a killed client hold their threads until it notices them gone.
    let sql = load_sql(
        &format!("{}/", source.display()),
        &table,
        &checkpoints.display().to_string(),
        ", 'bigquery.append_response_timeout_ms' '20000'",
        "SELECT id, name FROM src",
    )
    .replace("target_partitions = 4", "target_partitions = 2");
    let folder =
        datafusion_bigquery::checkpoint::CheckpointStore::open(&checkpoints.display().to_string()).expect("folder");
    let mut child = spawn_cli(&grpc, &sql, &[]);
    // Killed once a worker has recorded acknowledged rows and the load has not committed.
    let started = Instant::now();
    let mut part_way = false;
    while started.elapsed() < Duration::from_secs(120) && child.try_wait().expect("wait").is_none() {
        let loads = folder.list().await.unwrap_or_default();
        part_way = loads
            .iter()
            .any(|l| l.commit.is_none() && l.partitions.iter().any(|p| p.acknowledged_rows > 0 && !p.finalized));
        if part_way {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = child.kill();
    let ended = child.wait().expect("wait");
    assert!(part_way, "the load was not caught part-way (it ended: {ended:?})");
    tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS + 200)).await;
    let output = spawn_cli(&grpc, &sql, &[]).wait_with_output().expect("rerun");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let skipped = number_before(&stdout, "input rows not sent again").unwrap_or(0);
    assert!(skipped > 0, "the rerun skipped nothing: {stdout}");
    let rows = bqemulator::query(
        &rest,
        &format!(
            "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM {}.t",
            table.dataset
        ),
    );
    let cells: Vec<u64> = rows[0]
        .iter()
        .map(|v| v.as_str().and_then(|s| s.parse().ok()).expect("number"))
        .collect();
    let n = FILES * ROWS_EACH;
    assert_eq!(cells, vec![n, n, 0, n - 1], "count, distinct, min, max");
}
