//! End-to-end tests of the `datafusion-bigquery` binary against the embedded server.

#![cfg(feature = "server")]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use datafusion_bigquery::{EmbeddedServer, TableRef, schema};

const BIN: &str = env!("CARGO_BIN_EXE_datafusion-bigquery");
const ORDERS_SCHEMA: &str = "id:INT64:REQUIRED,name:STRING";
const CREATE_ORDERS: &str = "CREATE EXTERNAL TABLE orders STORED AS BIGQUERY LOCATION 'demo.sales.orders'";
const INSERT_100: &str = "INSERT INTO orders SELECT value AS id, concat('n', value) AS name FROM range(100)";

/// Runs the binary with `args` and `stdin`, without inheriting emulator settings.
fn run(args: &[&str], stdin: &str) -> Output {
    run_with_env(args, &[], stdin)
}

/// Runs the binary with `args`, `stdin` and only the given emulator and project variables.
fn run_with_env(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("BIGQUERY_STORAGE_EMULATOR_HOST")
        .env_remove("BIGQUERY_EMULATOR_HOST")
        .env_remove("GOOGLE_CLOUD_PROJECT");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("binary finishes")
}

/// Runs the binary with an in-process emulator holding `demo.sales.orders`.
fn run_with_orders(extra: &[&str], stdin: &str) -> Output {
    let mut args = vec![
        "--emulator",
        "--emulator-table",
        "demo.sales.orders=id:INT64:REQUIRED,name:STRING",
    ];
    args.extend_from_slice(extra);
    run(&args, stdin)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn first_stderr_line(output: &Output) -> String {
    stderr(output).lines().next().unwrap_or_default().to_string()
}

/// The cells of every row of the printed tables, header rows included.
fn cells(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

fn assert_failure(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("datafusion-bigquery-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn orders() -> TableRef {
    "demo.sales.orders".parse().expect("valid table name")
}

/// Starts an embedded server in this process holding `demo.sales.orders`.
async fn server_with_orders() -> EmbeddedServer {
    let server = EmbeddedServer::start().await.expect("server starts");
    server.create_table(&orders(), schema::parse_inline_schema(ORDERS_SCHEMA).expect("schema"));
    server
}

/// Runs the binary on a blocking thread so that an in-process server keeps serving.
async fn run_async(args: Vec<String>) -> Output {
    run_async_with_env(args, Vec::new()).await
}

/// [`run_async`] with environment variables.
async fn run_async_with_env(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_with_env(&args, &env, "")
    })
    .await
    .expect("runner thread")
}

/// The summary lines an INSERT printed on stdout.
fn summaries(output: &Output) -> Vec<String> {
    stdout(output)
        .lines()
        .filter(|line| line.starts_with("Committed "))
        .map(str::to_string)
        .collect()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

#[test]
fn insert_prints_the_row_count() {
    let output = run_with_orders(&["-c", CREATE_ORDERS, "-c", INSERT_100], "");
    assert_success(&output);
    assert_eq!(cells(&stdout(&output)), vec![vec!["count"], vec!["100"]]);
}

#[test]
fn insert_prints_a_summary_after_its_count() {
    let insert = "INSERT INTO orders SELECT value AS id, 'x' AS name FROM range(30000)";
    let output = run_with_orders(
        &[
            "--streams",
            "3",
            "-c",
            CREATE_ORDERS,
            "-c",
            insert,
            "-c",
            "SELECT 1 AS x",
        ],
        "",
    );
    assert_success(&output);
    let printed = summaries(&output);
    assert_eq!(
        printed.len(),
        1,
        "one INSERT, one summary; a SELECT has none: {printed:?}"
    );
    let summary = &printed[0];
    assert!(
        summary.starts_with("Committed 30,000 rows to demo.sales.orders: 3 streams, "),
        "{summary}"
    );
    assert!(
        summary.contains(" MB, commit at 20"),
        "commit time as RFC 3339: {summary}"
    );
    assert!(
        summary.contains("Z (") && summary.contains(" ms), elapsed "),
        "{summary}"
    );
    assert!(summary.ends_with(" rows/s"), "{summary}");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let count_at = lines.iter().position(|l| l.contains("30000")).expect("count row");
    let summary_at = lines.iter().position(|l| l.starts_with("Committed")).expect("summary");
    assert_eq!(summary_at, count_at + 2, "the summary follows the count's table");
    assert!(
        stderr(&output).is_empty(),
        "no progress line when stderr is not a terminal"
    );

    let quiet = run_with_orders(&["--quiet", "-c", CREATE_ORDERS, "-c", insert], "");
    assert_success(&quiet);
    assert!(summaries(&quiet).is_empty(), "{}", stdout(&quiet));
    assert_eq!(cells(&stdout(&quiet)), vec![vec!["count"], vec!["30000"]]);
}

#[test]
fn an_empty_insert_says_nothing_was_committed() {
    let insert = "INSERT INTO orders SELECT value AS id, 'x' AS name FROM range(0)";
    let output = run_with_orders(&["-c", CREATE_ORDERS, "-c", insert], "");
    assert_success(&output);
    assert_eq!(
        summaries(&output)
            .iter()
            .map(|s| s.split(", elapsed").next().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec!["Committed 0 rows to demo.sales.orders: 0 streams, 0.00 MB, nothing to commit"]
    );
}

#[test]
fn csv_format_prints_headers_and_rows_only() {
    let select = "SELECT value AS id, CASE WHEN value = 1 THEN NULL ELSE concat('a,', value) END AS name FROM range(3)";
    let output = run_with_orders(
        &["--format", "csv", "-c", CREATE_ORDERS, "-c", INSERT_100, "-c", select],
        "",
    );
    assert_success(&output);
    assert_eq!(stdout(&output), "count\n100\nid,name\n0,\"a,0\"\n1,\n2,\"a,2\"\n");
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
}

#[test]
fn json_formats_print_objects() {
    let select = "SELECT value AS id, CASE WHEN value = 1 THEN NULL ELSE 'x' END AS name FROM range(2)";
    let output = run_with_orders(
        &["--format", "json", "-c", CREATE_ORDERS, "-c", INSERT_100, "-c", select],
        "",
    );
    assert_success(&output);
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each statement prints one JSON document"))
        .collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!([{"count": 100}]),
            serde_json::json!([{"id": 0, "name": "x"}, {"id": 1, "name": null}]),
        ]
    );

    let output = run(
        &[
            "--format",
            "ndjson",
            "-c",
            "SELECT value AS n FROM range(3) WHERE value > 0",
        ],
        "",
    );
    assert_success(&output);
    assert_eq!(stdout(&output), "{\"n\":1}\n{\"n\":2}\n");
}

#[test]
fn rust_log_shows_a_span_per_rpc_on_stderr() {
    let output = run_with_env(
        &[
            "--emulator",
            "--emulator-table",
            &format!("demo.sales.orders={ORDERS_SCHEMA}"),
            "-c",
            CREATE_ORDERS,
            "-c",
            INSERT_100,
        ],
        &[("RUST_LOG", "datafusion_bigquery=debug")],
        "",
    );
    assert_success(&output);
    let log = stderr(&output);
    for rpc in [
        "GetWriteStream{",
        "CreateWriteStream{",
        "AppendRows{",
        "FinalizeWriteStream{",
        "BatchCommitWriteStreams{",
    ] {
        assert!(log.contains(rpc), "no {rpc} span in:\n{log}");
    }
    assert!(!log.contains('\u{1b}'), "no colours when stderr is not a terminal");
    assert_eq!(cells(&stdout(&output)), vec![vec!["count"], vec!["100"]]);
    // Without RUST_LOG, stderr stays empty.
    let quiet = run_with_orders(&["-c", CREATE_ORDERS, "-c", INSERT_100], "");
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));
}

#[test]
fn usage_errors_exit_2_naming_the_flag() {
    let output = run(&["--format", "xml", "-c", "SELECT 1"], "");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let first = first_stderr_line(&output);
    assert!(
        first.contains("invalid value 'xml'") && first.contains("--format"),
        "{first}"
    );
    assert!(stdout(&output).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_override_the_environment() {
    let server = server_with_orders().await;
    let endpoint = server.endpoint();
    // `sales.orders` needs a default project: the flag's, not the environment's.
    let create = "CREATE EXTERNAL TABLE orders STORED AS BIGQUERY LOCATION 'sales.orders'";
    let env = vec![
        ("GOOGLE_CLOUD_PROJECT".to_string(), "wrong-project".to_string()),
        // An endpoint where nothing listens, overridden by --endpoint.
        ("BIGQUERY_STORAGE_EMULATOR_HOST".to_string(), "127.0.0.1:9".to_string()),
    ];
    let args = strings(&[
        "--endpoint",
        &endpoint,
        "--project",
        "demo",
        "-c",
        create,
        "-c",
        INSERT_100,
    ]);
    let output = run_async_with_env(args, env.clone()).await;
    assert_success(&output);
    assert_eq!(server.row_count(&orders()), Some(100));

    // Without the flags, the environment decides: the endpoint where nothing listens.
    let output = run_async_with_env(strings(&["-c", create]), env).await;
    assert_failure(&output);
    let first = first_stderr_line(&output);
    assert!(
        first.starts_with("Error: cannot connect to the Storage Write API at http://127.0.0.1:9"),
        "{first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_overrides_defaults() {
    let server = server_with_orders().await;
    let host = server.endpoint().trim_start_matches("http://").to_string();
    let create = "CREATE EXTERNAL TABLE orders STORED AS BIGQUERY LOCATION 'sales.orders'";
    let env = vec![
        ("GOOGLE_CLOUD_PROJECT".to_string(), "demo".to_string()),
        ("BIGQUERY_STORAGE_EMULATOR_HOST".to_string(), host),
    ];
    let output = run_async_with_env(strings(&["-c", create, "-c", INSERT_100]), env).await;
    assert_success(&output);
    assert_eq!(server.row_count(&orders()), Some(100));

    // With neither, `dataset.table` has no project, and the error says how to give one.
    let output = run(&["-c", create], "");
    assert_failure(&output);
    let first = first_stderr_line(&output);
    assert!(first.starts_with("Error: invalid table name 'sales.orders'"), "{first}");
    assert!(first.contains("GOOGLE_CLOUD_PROJECT"), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_options_override_flags() {
    let server = server_with_orders().await;
    let create = "CREATE EXTERNAL TABLE orders STORED AS BIGQUERY LOCATION 'sales.orders' \
                  OPTIONS ('bigquery.project' 'demo', 'bigquery.streams' '3')";
    let insert = "INSERT INTO orders SELECT value AS id, 'x' AS name FROM range(30000)";
    let args = strings(&[
        "--endpoint",
        &server.endpoint(),
        "--project",
        "wrong-project",
        "--streams",
        "1",
        "-c",
        create,
        "-c",
        insert,
    ]);
    let output = run_async(args).await;
    assert_success(&output);
    assert_eq!(server.row_count(&orders()), Some(30_000));
    assert_eq!(
        server.stats().streams_created,
        3,
        "the table's 3 streams, not the flag's 1"
    );
    let summary = summaries(&output).join("\n");
    assert!(summary.contains(": 3 streams, "), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_commits_every_row_to_the_endpoint() {
    let server = server_with_orders().await;
    let args = [
        "--endpoint",
        &server.endpoint(),
        "--streams",
        "3",
        "-c",
        CREATE_ORDERS,
        "-c",
        INSERT_100,
    ];
    let output = run_async(args.iter().map(|a| a.to_string()).collect()).await;
    assert_success(&output);
    assert_eq!(server.row_count(&orders()), Some(100));
    assert_eq!(server.invisible_row_count(&orders()), 0);
}

#[test]
fn missing_table_fails_naming_the_table() {
    let create = "CREATE EXTERNAL TABLE t STORED AS BIGQUERY LOCATION 'demo.sales.nope'";
    let output = run_with_orders(&["-c", create, "-c", "SELECT 'not reached' AS x"], "");
    assert_failure(&output);
    let first = first_stderr_line(&output);
    assert!(first.starts_with("Error: table demo.sales.nope not found"), "{first}");
    assert!(
        !stdout(&output).contains("not reached"),
        "later statements must not run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_in_required_column_fails_naming_the_column_and_commits_nothing() {
    let server = server_with_orders().await;
    let insert =
        "INSERT INTO orders SELECT CASE WHEN value = 42 THEN NULL ELSE value END AS id, 'x' AS name FROM range(100)";
    let args = ["--endpoint", &server.endpoint(), "-c", CREATE_ORDERS, "-c", insert];
    let output = run_async(args.iter().map(|a| a.to_string()).collect()).await;
    assert_failure(&output);
    let first = first_stderr_line(&output);
    assert!(
        first.starts_with("Error: table demo.sales.orders, column id"),
        "{first}"
    );
    assert!(first.contains("NULL in a REQUIRED column"), "{first}");
    assert_eq!(server.row_count(&orders()), Some(0), "a failed load commits nothing");
}

#[test]
fn reads_statements_from_stdin() {
    let sql = format!("{CREATE_ORDERS};\n-- a comment; with a semicolon\n{INSERT_100};\nSELECT 'a;b' AS text;\n");
    let output = run_with_orders(&[], &sql);
    assert_success(&output);
    assert_eq!(
        cells(&stdout(&output)),
        vec![vec!["count"], vec!["100"], vec!["text"], vec!["a;b"]]
    );
}

#[test]
fn runs_files_and_commands_in_command_line_order() {
    let file = temp_path("create.sql");
    std::fs::write(&file, format!("{CREATE_ORDERS};\nSELECT 1 AS step;")).expect("write SQL file");
    let file = file.to_str().expect("utf-8 path");
    let output = run_with_orders(&["-f", file, "-c", INSERT_100, "-c", "SELECT 3 AS step"], "");
    let _ = std::fs::remove_file(file);
    assert_success(&output);
    assert_eq!(
        cells(&stdout(&output)),
        vec![
            vec!["step"],
            vec!["1"],
            vec!["count"],
            vec!["100"],
            vec!["step"],
            vec!["3"]
        ]
    );
}

#[test]
fn emulator_table_from_a_json_schema_file() {
    let file = temp_path("events.json");
    let json = r#"[{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}, {"name": "tags", "type": "STRING", "mode": "REPEATED"}]"#;
    std::fs::write(&file, json).expect("write schema");
    let table = format!("demo.logs.events={}", file.display());
    let create = "CREATE EXTERNAL TABLE events STORED AS BIGQUERY LOCATION 'demo.logs.events'";
    let insert = "INSERT INTO events SELECT value AS id, make_array('a', 'b') AS tags FROM range(7)";
    let output = run(
        &["--emulator", "--emulator-table", &table, "-c", create, "-c", insert],
        "",
    );
    assert_success(&output);
    assert_eq!(cells(&stdout(&output)), vec![vec!["count"], vec!["7"]]);

    let null_id = "INSERT INTO events SELECT NULL AS id, make_array('a') AS tags";
    let output = run(
        &["--emulator", "--emulator-table", &table, "-c", create, "-c", null_id],
        "",
    );
    let _ = std::fs::remove_file(&file);
    assert_failure(&output);
    assert!(
        first_stderr_line(&output).contains("column id"),
        "the JSON schema's REQUIRED mode applies: {}",
        stderr(&output)
    );
}

#[test]
fn emulator_table_needs_emulator() {
    let output = run(
        &["--emulator-table", "demo.sales.orders=id:INT64", "-c", "SELECT 1"],
        "",
    );
    assert_failure(&output);
    assert_eq!(first_stderr_line(&output), "Error: --emulator-table needs --emulator");
    assert!(stdout(&output).is_empty());
}

#[test]
fn bad_emulator_table_spec_names_the_flag() {
    let output = run(
        &[
            "--emulator",
            "--emulator-table",
            "demo.sales.orders=id:NOPE",
            "-c",
            "SELECT 1",
        ],
        "",
    );
    assert_failure(&output);
    let first = first_stderr_line(&output);
    assert!(
        first.starts_with("Error: --emulator-table 'demo.sales.orders=id:NOPE': column id: unknown type"),
        "{first}"
    );
}

#[test]
fn sql_errors_have_the_cause_on_the_first_line() {
    let output = run(&["-c", "SELECT * FROM missing_table"], "");
    assert_failure(&output);
    let first = first_stderr_line(&output);
    assert!(
        first.starts_with("Error: ") && first.contains("missing_table"),
        "{first}"
    );
    assert!(!first.contains("External error"), "{first}");
}

/// Kills the child process if a test fails before it has stopped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `emulator --port 0 --table demo.sales.orders=...` with `extra` flags; returns the
/// process and the endpoint it printed.
fn start_emulator(extra: &[&str]) -> (KillOnDrop, String) {
    let (child, lines) = start_emulator_lines(extra);
    (child, lines[0].clone())
}

/// As [`start_emulator`], returning the four lines it prints: the Storage Write endpoint, the
/// REST endpoint and the two environment variables.
fn start_emulator_lines(extra: &[&str]) -> (KillOnDrop, Vec<String>) {
    let table = format!("demo.sales.orders={ORDERS_SCHEMA}");
    let mut args = vec!["emulator", "--port", "0", "--table", &table];
    args.extend_from_slice(extra);
    let child = Command::new(BIN)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("emulator starts");
    let mut child = KillOnDrop(child);
    let mut out = BufReader::new(child.0.stdout.take().expect("stdout"));
    let lines = (0..4)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).expect("a line");
            line.trim().to_string()
        })
        .collect();
    (child, lines)
}

#[cfg(unix)]
#[test]
fn emulator_subcommand_prints_and_serves_the_rest_api() {
    let (_child, lines) = start_emulator_lines(&[]);
    let grpc = lines[0].trim_start_matches("http://");
    let rest = lines[1].trim_start_matches("http://");
    assert!(lines[0].starts_with("http://127.0.0.1:"), "{lines:?}");
    assert!(lines[1].starts_with("http://127.0.0.1:") && grpc != rest, "{lines:?}");
    assert_eq!(lines[2], format!("BIGQUERY_STORAGE_EMULATOR_HOST={grpc}"));
    assert_eq!(lines[3], format!("BIGQUERY_EMULATOR_HOST={rest}"));
    let url = format!("{}/bigquery/v2/projects/demo/datasets/sales/tables/orders", lines[1]);
    let mut answer = ureq::get(&url).call().expect("tables.get answers");
    let table: serde_json::Value = answer.body_mut().read_json().expect("a Table");
    assert_eq!(table["id"], "demo:sales.orders");
    assert_eq!(table["numRows"], "0");
}

#[cfg(unix)]
#[test]
fn emulator_subcommand_serves_until_sigterm() {
    let (mut child, endpoint) = start_emulator(&[]);
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint:?}");

    let output = run(&["--endpoint", &endpoint, "-c", CREATE_ORDERS, "-c", INSERT_100], "");
    let terminated = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    let status = child.0.wait().expect("emulator exits");
    assert_success(&output);
    assert_eq!(cells(&stdout(&output)), vec![vec!["count"], vec!["100"]]);
    assert!(terminated.success());
    assert!(status.success(), "emulator exit status after SIGTERM: {status:?}");
}

#[cfg(unix)]
#[test]
fn emulator_subcommand_plays_the_real_services_behaviours() {
    let (mut child, endpoint) = start_emulator(&[
        "--close-after-requests",
        "2",
        "--close-mode",
        "abrupt",
        "--throttle-every",
        "5",
    ]);
    let insert = "INSERT INTO orders SELECT value AS id, concat('n', value) AS name FROM range(20000)";
    let output = run(
        &[
            "--endpoint",
            &endpoint,
            "-o",
            "max_request_bytes=8192",
            "-o",
            "retry_throttle_backoff_ms=5",
            "-c",
            CREATE_ORDERS,
            "-c",
            insert,
        ],
        "",
    );
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    let mut log = String::new();
    let _ = child.0.wait();
    std::io::Read::read_to_string(&mut child.0.stderr.take().expect("stderr"), &mut log).expect("stderr");
    assert_success(&output);
    assert_eq!(cells(&stdout(&output))[1], vec!["20000"]);
    let closed = log
        .lines()
        .find_map(|l| l.strip_prefix("closed "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no report of closed connections in {log:?}"));
    assert!(closed >= 10, "{log}");
}

#[cfg(feature = "ballista")]
#[test]
fn ballista_standalone_runs_the_insert_on_an_in_process_cluster() {
    // Table functions such as range() do not travel to a cluster; VALUES and files do.
    let insert = "INSERT INTO orders VALUES (1, 'a'), (2, 'b'), (3, NULL)";
    let output = run_with_orders(&["--ballista", "standalone", "-c", CREATE_ORDERS, "-c", insert], "");
    assert_success(&output);
    assert_eq!(cells(&stdout(&output))[..2], vec![vec!["count"], vec!["3"]]);
    let help = stdout(&run(&["ballista", "executor", "--help"], ""));
    for flag in [
        "--scheduler",
        "--bind",
        "--grpc-port",
        "--concurrent-tasks",
        "--heartbeat-secs",
    ] {
        assert!(help.contains(flag), "{flag} missing from ballista executor --help");
    }
    assert!(stdout(&run(&["--help"], "")).contains("--ballista"));
}

#[test]
fn help_documents_every_flag() {
    let output = run(&["--help"], "");
    assert_success(&output);
    let help = stdout(&output);
    for flag in [
        "--command",
        "--file",
        "--endpoint",
        "--project",
        "--streams",
        "--option",
        "--emulator",
        "--emulator-table",
        "--format",
        "--quiet",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let output = run(&["emulator", "--help"], "");
    assert_success(&output);
    assert!(stdout(&output).contains("--port") && stdout(&output).contains("--table"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_inserts_and_overwrites_without_create_statements() {
    let server = server_with_orders().await;
    let output = run_async(strings(&[
        "--endpoint",
        &server.endpoint(),
        "--rest-endpoint",
        &server.rest_endpoint(),
        "--catalog",
        "bq=demo",
        "-c",
        "INSERT INTO bq.sales.orders SELECT value AS id, concat('n', value) AS name FROM range(10)",
        "-c",
        "INSERT OVERWRITE bq.sales.orders SELECT value + 100 AS id, 'new' AS name FROM range(3)",
    ]))
    .await;
    assert_success(&output);
    let counts: Vec<String> = cells(&stdout(&output))
        .into_iter()
        .flatten()
        .filter(|c| c != "count")
        .collect();
    assert_eq!(counts, vec!["10", "3"], "{}", stdout(&output));
    assert_eq!(server.row_count(&orders()), Some(3));
    assert_eq!(
        server.table_names("demo", "sales"),
        vec!["orders".to_string()],
        "no staging table"
    );
    let bad = run(&["--catalog", "bq", "-c", "SELECT 1"], "");
    assert_failure(&bad);
    assert!(
        stderr(&bad).contains("--catalog 'bq': expected NAME=PROJECT"),
        "{}",
        stderr(&bad)
    );
}
