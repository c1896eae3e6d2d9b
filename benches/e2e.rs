//! End-to-end load benchmark: lineitem into the embedded server running in its own process in
//! discard mode (a fresh server for each load), every load measured the same way in one run:
//!
//! - ours through the CLI (`datafusion-bigquery -c "INSERT INTO bq SELECT * FROM lineitem"`
//!   over a Parquet file), proto rows and Arrow rows, and, with `--baseline BINARY`, another
//!   build of the CLI on the same file (the same server);
//! - the Parquet source alone (read and drained in this process, nothing loaded);
//! - with `--peers`, two third-party Rust clients (`peers/`, built by `scripts/peers.sh`),
//!   first checked against a server that keeps rows (every row read back exactly), then timed;
//! - Google's official Python client (`google-cloud-bigquery-storage`'s `AppendRowsStream`;
//!   `scripts/bench-python.sh` makes its virtualenv), unless `--no-python`;
//! - with `--generated`, the INSERT in this process from lineitem generated on the fly by
//!   tpchgen-arrow (the generator's CPU counts), with `--checkpoint` also with checkpoints.
//!
//! ```text
//! cargo bench --bench e2e                                    # SF 1, 2 streams, CLI and Python
//! cargo bench --bench e2e -- --sf 10 --no-python             # another scale factor
//! cargo bench --bench e2e -- --peers --baseline /path/to/older/datafusion-bigquery --runs 3
//! cargo bench --bench e2e -- --generated --streams 4 --no-cli --no-python
//! ```
//!
//! Each line gives wall time, rows/s, MB/s of rows (as the server counts them: proto rows
//! without framing, Arrow rows as IPC messages), the client's and the server's CPU seconds and
//! the client's peak RSS; then the ratios (of the median runs, with `--runs N`).
//! The Parquet file is written once under `target/bench-data/`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, UInt64Type};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, schema};
use futures::StreamExt;

const TABLE: &str = "bench.tpch.lineitem";

/// Scale factor of the peers' read-back check.
const CHECK_SF: f64 = 0.01;

type Failure = Box<dyn std::error::Error>;

/// Settings from the command line.
struct Settings {
    sf: f64,
    streams: usize,
    partitions: usize,
    cli: bool,
    arrow: bool,
    python: bool,
    peers: bool,
    generated: bool,
    baseline: Option<PathBuf>,
    /// How many times each of our CLI loads runs (interleaved with the baseline's).
    runs: usize,
    explain: bool,
    /// Also load the generated data with checkpoints recorded every 100 ms, and compare.
    checkpoint: bool,
}

impl Settings {
    fn from_args() -> Result<Self, String> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let mut settings = Settings {
            sf: 1.0,
            streams: 2,
            partitions: cores,
            cli: true,
            arrow: true,
            python: true,
            peers: false,
            generated: false,
            baseline: None,
            runs: 1,
            explain: false,
            checkpoint: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--sf" => settings.sf = value("--sf")?.parse().map_err(|e| format!("--sf: {e}"))?,
                "--streams" => settings.streams = value("--streams")?.parse().map_err(|e| format!("--streams: {e}"))?,
                "--partitions" => {
                    settings.partitions = value("--partitions")?
                        .parse()
                        .map_err(|e| format!("--partitions: {e}"))?
                }
                "--baseline" => settings.baseline = Some(PathBuf::from(value("--baseline")?)),
                "--runs" => settings.runs = value("--runs")?.parse().map_err(|e| format!("--runs: {e}"))?,
                "--no-cli" => settings.cli = false,
                "--no-arrow" => settings.arrow = false,
                "--no-python" => settings.python = false,
                "--peers" => settings.peers = true,
                "--generated" => settings.generated = true,
                "--explain" => settings.explain = true,
                "--checkpoint" => {
                    settings.checkpoint = true;
                    settings.generated = true;
                }
                // What `cargo bench` passes to every bench target.
                "--bench" => {}
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(settings)
    }
}

/// One partition of lineitem, generated on demand.
#[derive(Debug)]
struct LineitemPart {
    schema: SchemaRef,
    sf: f64,
    part: i32,
    parts: i32,
}

impl PartitionStream for LineitemPart {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = common::lineitem_part(self.sf, self.part, self.parts, 8192).map(Ok);
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(batches),
        ))
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the parenthesized command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Peak resident set size of this process in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Current resident set size of this process in MiB (`VmRSS`).
fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// A memory figure of `/proc/self/status`, in MiB.
fn status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_field_mib(&s, key))
        .unwrap_or(f64::NAN)
}

/// A memory figure (`VmHWM:`, `VmRSS:`) of a `/proc/<pid>/status` text, in MiB.
fn status_field_mib(status: &str, key: &str) -> Option<f64> {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
}

/// The server in its own process, discarding rows and counting them without digests (digests
/// of Arrow rows take encoding them as proto rows, a cost of the server, not of the client).
struct Server {
    child: Child,
    endpoint: String,
    /// The server's stdout, kept open: it prints more lines after the endpoint, and a closed
    /// pipe would end it.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    /// Starts `datafusion-bigquery emulator --discard` with `extra` flags.
    fn start(extra: &[&str]) -> Result<Self, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_datafusion-bigquery"))
            .args(["emulator", "--port", "0", "--discard", "--no-digests", "--table"])
            .arg(format!("{TABLE}={}", common::LINEITEM_COLUMNS))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no server stdout")?);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the server's endpoint: {e}"))?;
        let endpoint = line.trim().to_string();
        if !endpoint.starts_with("http://") {
            return Err(format!("unexpected server output {endpoint:?}"));
        }
        Ok(Server {
            child,
            endpoint,
            _stdout: stdout,
        })
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.child.id().to_string())
    }

    /// Stops the server; returns the rows and row bytes it reports having received.
    fn stop(mut self) -> Result<(u64, u64), String> {
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let mut report = String::new();
        if let Some(stderr) = self.child.stderr.take() {
            let _ = BufReader::new(stderr).read_line(&mut report);
        }
        let _ = self.child.wait();
        // "received N AppendRows requests, R rows (B bytes of rows); C commits"
        let words: Vec<&str> = report.split_whitespace().collect();
        let number = |i: usize| words.get(i).and_then(|w| w.trim_start_matches('(').parse::<u64>().ok());
        match (number(4), number(6)) {
            (Some(rows), Some(bytes)) => Ok((rows, bytes)),
            _ => Err(format!("unexpected server report {report:?}")),
        }
    }
}

/// What one load measured.
#[derive(Clone)]
struct Measured {
    name: String,
    rows: u64,
    bytes: u64,
    elapsed: Duration,
    client_cpu: f64,
    server_cpu: f64,
    peak_rss_mib: f64,
}

impl Measured {
    fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_per_million_rows(&self) -> f64 {
        self.client_cpu / (self.rows as f64 / 1e6)
    }

    fn print(&self) {
        println!(
            "{:<44} {:>10} rows {:>8.2} s {:>11.0} rows/s {:>7.1} MB/s  client CPU {:>7.2} s  server CPU {:>6.2} s  peak RSS {:>6.0} MiB",
            self.name,
            self.rows,
            self.elapsed.as_secs_f64(),
            self.rows_per_second(),
            self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64(),
            self.client_cpu,
            self.server_cpu,
            self.peak_rss_mib
        );
    }
}

/// Runs `load` against a fresh discarding server (started with `extra` flags); checks that the
/// server received the rows the load reports, and adds the server's figures.
fn against_server(
    extra: &[&str],
    load: impl FnOnce(&Server) -> Result<Measured, Failure>,
) -> Result<Measured, Failure> {
    let server = Server::start(extra)?;
    let mut measured = load(&server)?;
    measured.server_cpu = server.cpu_seconds();
    let (rows, bytes) = server.stop()?;
    if rows != measured.rows {
        return Err(format!(
            "the server received {rows} rows, {} reported {}",
            measured.name, measured.rows
        )
        .into());
    }
    measured.bytes = bytes;
    measured.print();
    Ok(measured)
}

/// A command run to its end: wall time and CPU seconds (from `wait4`), peak RSS and stdout.
///
/// The peak RSS is the child's `VmHWM`, read every 10 ms while it runs: `wait4`'s `ru_maxrss`
/// would carry this process's own RSS, which a child inherits at `fork` and keeps through
/// `exec`.
fn run_measured(command: &mut Command) -> Result<(Duration, f64, f64, String), Failure> {
    use std::io::Read;
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut err = child.stderr.take().ok_or("no stderr")?;
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let watcher = std::thread::spawn(move || {
        let mut peak = 0.0f64;
        // VmHWM is gone once the process has exited (a zombie has no memory).
        while let Some(hwm) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| status_field_mib(&s, "VmHWM:"))
        {
            peak = peak.max(hwm);
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    });
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child, which
    // nothing else waits for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    let stderr = stderr.join().unwrap_or_default();
    let peak = watcher.join().unwrap_or(f64::NAN);
    if waited != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{command:?} failed ({status}): {stderr}").into());
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    Ok((elapsed, cpu, peak, stdout))
}

/// `INSERT INTO bq SELECT * FROM lineitem` from `parquet` through the CLI `binary`, with
/// `options` on the BigQuery table.
fn cli_insert(name: &str, binary: &Path, server: &Server, parquet: &Path, options: &str) -> Result<Measured, Failure> {
    let (elapsed, cpu, rss, stdout) = run_measured(
        Command::new(binary)
            .args(["--quiet", "--format", "csv", "--endpoint", &server.endpoint])
            .arg("-c")
            .arg(format!(
                "CREATE EXTERNAL TABLE lineitem STORED AS PARQUET LOCATION '{}'",
                parquet.display()
            ))
            .arg("-c")
            .arg(format!(
                "CREATE EXTERNAL TABLE bq STORED AS BIGQUERY LOCATION '{TABLE}' OPTIONS ({options})"
            ))
            .args(["-c", "INSERT INTO bq SELECT * FROM lineitem"]),
    )?;
    // CSV: the header `count`, then the number.
    let rows = stdout
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .next_back()
        .ok_or_else(|| format!("{name}: no count in {stdout:?}"))?;
    Ok(Measured {
        name: name.to_string(),
        rows,
        bytes: 0,
        elapsed,
        client_cpu: cpu,
        server_cpu: 0.0,
        peak_rss_mib: rss,
    })
}

/// A `key=value` line's number.
fn field(text: &str, key: &str) -> Result<f64, String> {
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .ok_or(format!("no {key} in {text:?}"))
}

/// A client that reports `rows=… seconds=…` on stdout, measured as a whole process as ours
/// are (the times it reports of itself start later: at its first stream).
fn reporting_client(name: &str, command: &mut Command) -> Result<Measured, Failure> {
    let (elapsed, cpu, rss, stdout) = run_measured(command).map_err(|e| format!("{name}: {e}"))?;
    println!("  ({name} reports {} s of its own)", field(&stdout, "seconds")?);
    Ok(Measured {
        name: name.to_string(),
        rows: field(&stdout, "rows")? as u64,
        bytes: 0,
        elapsed,
        client_cpu: cpu,
        server_cpu: 0.0,
        peak_rss_mib: rss,
    })
}

/// The peers binary (`scripts/peers.sh` builds it).
fn peers_binary() -> Result<PathBuf, Failure> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/target/release/peers");
    if path.exists() {
        Ok(path)
    } else {
        Err("no peers/target/release/peers: run scripts/peers.sh first".into())
    }
}

/// Loads `parquet` with a peer client (`google-cloud-bigquery` or `gcloud-bigquery`).
fn peer_load(client: &str, endpoint: &str, parquet: &Path, streams: usize) -> Result<Measured, Failure> {
    reporting_client(
        &format!("{client} x{streams}"),
        Command::new(peers_binary()?)
            .args(["load", "--client", client, "--endpoint", endpoint, "--table", TABLE])
            .arg("--parquet")
            .arg(parquet)
            .args(["--streams", &streams.to_string()]),
    )
}

/// The two peers, each into a server that keeps rows: every row must read back as the Parquet
/// file holds it.
async fn check_peers(settings: &Settings) -> Result<(), Failure> {
    let parquet = parquet_copy(CHECK_SF).await?;
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "lineitem",
        parquet.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await?;
    let order = "ORDER BY l_orderkey, l_linenumber";
    let expected = ctx
        .sql(&format!(
            "SELECT l_orderkey, l_partkey, l_suppkey, CAST(l_linenumber AS BIGINT) AS l_linenumber, \
             CAST(l_quantity AS DECIMAL(38, 9)) AS l_quantity, CAST(l_extendedprice AS DECIMAL(38, 9)) AS l_extendedprice, \
             CAST(l_discount AS DECIMAL(38, 9)) AS l_discount, CAST(l_tax AS DECIMAL(38, 9)) AS l_tax, \
             CAST(l_returnflag AS VARCHAR) AS l_returnflag, CAST(l_linestatus AS VARCHAR) AS l_linestatus, \
             l_shipdate, l_commitdate, l_receiptdate, CAST(l_shipinstruct AS VARCHAR) AS l_shipinstruct, \
             CAST(l_shipmode AS VARCHAR) AS l_shipmode, CAST(l_comment AS VARCHAR) AS l_comment FROM lineitem {order}"
        ))
        .await?
        .collect()
        .await?;
    let expected = arrow::util::pretty::pretty_format_batches(&expected)?.to_string();
    let table: TableRef = TABLE.parse()?;
    for client in ["google-cloud-bigquery", "gcloud-bigquery"] {
        let server = EmbeddedServer::builder().accept_unrouted_appends().start().await?;
        server.create_table(&table, schema::parse_inline_schema(common::LINEITEM_COLUMNS)?);
        let endpoint = server.endpoint().to_string();
        let path = parquet.clone();
        let streams = settings.streams;
        let measured = tokio::task::spawn_blocking(move || {
            peer_load(client, &endpoint, &path, streams).map_err(|e| e.to_string())
        })
        .await??;
        let committed: Vec<RecordBatch> = server.rows(&table).ok_or("no table")?;
        let read = SessionContext::new();
        let arrow = Arc::new(schema::to_arrow_schema(&schema::parse_inline_schema(
            common::LINEITEM_COLUMNS,
        )?));
        read.register_table(
            "t",
            Arc::new(datafusion::datasource::MemTable::try_new(arrow, vec![committed])?),
        )?;
        let actual = read.sql(&format!("SELECT * FROM t {order}")).await?.collect().await?;
        let actual = arrow::util::pretty::pretty_format_batches(&actual)?.to_string();
        if actual != expected {
            return Err(format!("{client}: the rows read back differ from the Parquet file's").into());
        }
        println!(
            "{client}: {} rows of lineitem SF {CHECK_SF} read back from the embedded server exactly as the Parquet file holds them",
            measured.rows
        );
    }
    Ok(())
}

/// A session with lineitem at `sf` generated on the fly over `partitions` partitions.
fn generated_session(sf: f64, partitions: usize) -> Result<SessionContext, Failure> {
    let config = SessionConfig::new().with_target_partitions(partitions);
    let ctx = SessionContext::new_with_config(config);
    let schema = common::lineitem_arrow_schema();
    let parts = partitions as i32;
    let partitions: Vec<Arc<dyn PartitionStream>> = (1..=parts)
        .map(|part| {
            Arc::new(LineitemPart {
                schema: schema.clone(),
                sf,
                part,
                parts,
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    ctx.register_table("lineitem", Arc::new(StreamingTable::try_new(schema, partitions)?))?;
    Ok(ctx)
}

/// A session with generated lineitem and `bq`, the lineitem table of the server.
async fn loading_session(
    settings: &Settings,
    endpoint: &str,
    checkpoint: Option<&Path>,
) -> Result<SessionContext, Failure> {
    let ctx = generated_session(settings.sf, settings.partitions)?;
    register_bigquery(&ctx, BigQueryOptions::default().with_endpoint(endpoint));
    let checkpoint = checkpoint
        .map(|dir| {
            format!(
                ", 'bigquery.checkpoint' '{}', 'bigquery.checkpoint_interval_ms' '100'",
                dir.display()
            )
        })
        .unwrap_or_default();
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE bq STORED AS BIGQUERY LOCATION '{TABLE}' OPTIONS ('bigquery.streams' '{}'{checkpoint})",
        settings.streams
    ))
    .await?;
    Ok(ctx)
}

/// `INSERT INTO bq SELECT * FROM lineitem` in this process, from generated lineitem.
async fn generated_insert(settings: &Settings, endpoint: &str, checkpoint: Option<&Path>) -> Result<Measured, Failure> {
    let ctx = loading_session(settings, endpoint, checkpoint).await?;
    let cpu0 = cpu_seconds("self");
    let started = Instant::now();
    let result = ctx
        .sql("INSERT INTO bq SELECT * FROM lineitem")
        .await?
        .collect()
        .await?;
    let elapsed = started.elapsed();
    let rows = result
        .first()
        .map(|b| b.column(0).as_primitive::<UInt64Type>().value(0))
        .unwrap_or(0);
    Ok(Measured {
        name: format!(
            "ours in process, generated x{}{}",
            settings.streams,
            if checkpoint.is_some() {
                ", checkpoints every 100 ms"
            } else {
                ""
            }
        ),
        rows,
        bytes: 0,
        elapsed,
        client_cpu: cpu_seconds("self") - cpu0,
        server_cpu: 0.0,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// The generated INSERT against a fresh discarding server, checked as [`against_server`] does.
async fn generated_against_server(settings: &Settings, checkpoint: Option<&Path>) -> Result<Measured, Failure> {
    let server = Server::start(&[])?;
    let mut measured = generated_insert(settings, &server.endpoint, checkpoint).await?;
    measured.server_cpu = server.cpu_seconds();
    let (rows, bytes) = server.stop()?;
    if rows != measured.rows {
        return Err(format!("the server received {rows} rows, the INSERT reported {}", measured.rows).into());
    }
    measured.bytes = bytes;
    measured.print();
    Ok(measured)
}

/// `EXPLAIN ANALYZE` of the generated INSERT: the plan, with the time and rows of every operator.
async fn explain(settings: &Settings, server: &Server) -> Result<(), Failure> {
    let ctx = loading_session(settings, &server.endpoint, None).await?;
    let plan = ctx
        .sql("EXPLAIN ANALYZE INSERT INTO bq SELECT * FROM lineitem")
        .await?
        .collect()
        .await?;
    println!("{}", arrow::util::pretty::pretty_format_batches(&plan)?);
    Ok(())
}

/// A source alone, drained in this process, nothing loaded.
async fn source_only(name: &str, ctx: SessionContext) -> Result<Measured, Failure> {
    let cpu0 = cpu_seconds("self");
    let started = Instant::now();
    let mut stream = ctx.sql("SELECT * FROM lineitem").await?.execute_stream().await?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows() as u64;
    }
    let measured = Measured {
        name: name.into(),
        rows,
        bytes: 0,
        elapsed: started.elapsed(),
        client_cpu: cpu_seconds("self") - cpu0,
        server_cpu: 0.0,
        peak_rss_mib: f64::NAN,
    };
    measured.print();
    Ok(measured)
}

/// Writes lineitem at `sf` to a Parquet file once.
async fn parquet_copy(sf: f64) -> Result<PathBuf, Failure> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("lineitem-sf{sf}.parquet"));
    if !path.exists() {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let ctx = generated_session(sf, cores)?;
        let partial = path.with_extension("partial");
        let options = datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true);
        ctx.sql("SELECT * FROM lineitem")
            .await?
            .write_parquet(&partial.to_string_lossy(), options, None)
            .await?;
        std::fs::rename(&partial, &path)?;
    }
    Ok(path)
}

/// The official Python client; it prints one `key=value` line.
fn python_client(endpoint: &str, parquet: &Path) -> Result<Measured, Failure> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bench/bin/python");
    if !python.exists() {
        return Err("no .venv/bench: run scripts/bench-python.sh first, or pass --no-python".into());
    }
    reporting_client(
        "python AppendRowsStream x1",
        Command::new(python)
            .arg(root.join("benches/python_client.py"))
            .args(["--endpoint", endpoint, "--table", TABLE, "--parquet"])
            .arg(parquet),
    )
}

/// The machine, as one line.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':').map(|(_, m)| m.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores, {model}")
}

/// The run of median rows/s, if there was any.
fn median(mut runs: Vec<Measured>) -> Option<Measured> {
    runs.sort_by(|a, b| a.rows_per_second().total_cmp(&b.rows_per_second()));
    let middle = runs.len() / 2;
    runs.into_iter().nth(middle)
}

/// `a / b` as a ratio, printed with its meaning.
fn ratio(what: &str, a: f64, b: f64) {
    println!("ratio {what}: {:.2}", a / b);
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let settings = Settings::from_args()?;
    println!(
        "lineitem SF {} | {} writer streams | {}",
        settings.sf,
        settings.streams,
        machine()
    );
    let streams = settings.streams;
    let ours_binary = PathBuf::from(env!("CARGO_BIN_EXE_datafusion-bigquery"));
    if settings.explain {
        common::init_generator();
        let server = Server::start(&[])?;
        explain(&settings, &server).await?;
        server.stop()?;
        return Ok(());
    }
    if settings.peers {
        check_peers(&settings).await?;
    }
    let parquet = parquet_copy(settings.sf).await?;
    println!("source: {}", parquet.display());

    // Each of our CLI loads `--runs` times, interleaved; the ratios use the medians.
    let mut ours_runs = Vec::new();
    let mut arrow_runs = Vec::new();
    let mut baseline_runs = Vec::new();
    for _ in 0..if settings.cli { settings.runs } else { 0 } {
        let options = format!("'bigquery.streams' '{streams}'");
        ours_runs.push(against_server(&[], |server| {
            cli_insert(
                &format!("ours, CLI, proto rows x{streams}"),
                &ours_binary,
                server,
                &parquet,
                &options,
            )
        })?);
        if settings.arrow {
            let options = format!("{options}, 'bigquery.row_format' 'arrow'");
            arrow_runs.push(against_server(&[], |server| {
                cli_insert(
                    &format!("ours, CLI, Arrow rows x{streams}"),
                    &ours_binary,
                    server,
                    &parquet,
                    &options,
                )
            })?);
        }
        if let Some(binary) = &settings.baseline {
            baseline_runs.push(against_server(&[], |server| {
                cli_insert(
                    &format!("baseline CLI ({}) x{streams}", binary.display()),
                    binary,
                    server,
                    &parquet,
                    &options,
                )
            })?);
        }
    }
    let (ours, ours_arrow, baseline) = (median(ours_runs), median(arrow_runs), median(baseline_runs));
    let parquet_ctx = SessionContext::new();
    parquet_ctx
        .register_parquet(
            "lineitem",
            parquet.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?;
    let source = source_only("source only (Parquet read and drained)", parquet_ctx).await?;

    let mut peers = Vec::new();
    if settings.peers {
        for client in ["google-cloud-bigquery", "gcloud-bigquery"] {
            peers.push(against_server(&["--accept-unrouted-appends"], |server| {
                peer_load(client, &server.endpoint, &parquet, streams)
            })?);
        }
    }
    let python = if settings.python {
        Some(against_server(&[], |server| python_client(&server.endpoint, &parquet))?)
    } else {
        None
    };

    let mut generated = None;
    if settings.generated {
        common::init_generator();
        let before = rss_mib();
        let measured = generated_against_server(&settings, None).await?;
        println!(
            "  (peak RSS above the resident memory before loading, tpchgen's text pool: {:.0} MiB)",
            measured.peak_rss_mib - before
        );
        let generated_source = source_only(
            "source only (tpchgen-arrow)",
            generated_session(settings.sf, settings.partitions)?,
        )
        .await?;
        if settings.checkpoint {
            let dir = std::env::temp_dir().join(format!("dfbq-bench-checkpoints-{}", std::process::id()));
            let checkpointed = generated_against_server(&settings, Some(&dir)).await;
            let _ = std::fs::remove_dir_all(&dir);
            ratio(
                "rows/s, with checkpoints / without",
                checkpointed?.rows_per_second(),
                measured.rows_per_second(),
            );
        }
        println!(
            "generated source alone: {:.2} CPU-s of the INSERT's {:.2}",
            generated_source.client_cpu, measured.client_cpu
        );
        generated = Some(measured);
    }

    println!();
    if let Some(ours) = &ours {
        println!(
            "source alone: {:.2} CPU-s, {:.0}% of the CLI INSERT's {:.2} CPU-s",
            source.client_cpu,
            100.0 * source.client_cpu / ours.client_cpu,
            ours.client_cpu
        );
        if let Some(arrow) = &ours_arrow {
            ratio(
                "rows/s, Arrow rows / proto rows",
                arrow.rows_per_second(),
                ours.rows_per_second(),
            );
            ratio(
                "client CPU per row, Arrow rows / proto rows",
                arrow.cpu_per_million_rows(),
                ours.cpu_per_million_rows(),
            );
        }
        if let Some(baseline) = &baseline {
            ratio(
                "rows/s, ours / baseline",
                ours.rows_per_second(),
                baseline.rows_per_second(),
            );
            ratio(
                "client CPU per row, ours / baseline",
                ours.cpu_per_million_rows(),
                baseline.cpu_per_million_rows(),
            );
        }
        if let Some(fastest) = peers
            .iter()
            .max_by(|a, b| a.rows_per_second().total_cmp(&b.rows_per_second()))
        {
            for peer in &peers {
                ratio(
                    &format!("rows/s, ours / {}", peer.name),
                    ours.rows_per_second(),
                    peer.rows_per_second(),
                );
            }
            ratio(
                &format!("client CPU per row, {} / ours", fastest.name),
                fastest.cpu_per_million_rows(),
                ours.cpu_per_million_rows(),
            );
        }
        if let Some(python) = &python {
            ratio(
                "rows/s, ours / python client",
                ours.rows_per_second(),
                python.rows_per_second(),
            );
            ratio(
                "client CPU per row, python client / ours",
                python.cpu_per_million_rows(),
                ours.cpu_per_million_rows(),
            );
        }
    }
    if let (Some(generated), Some(python)) = (&generated, &python) {
        ratio(
            "rows/s, ours in process (generated) / python client",
            generated.rows_per_second(),
            python.rows_per_second(),
        );
    }
    Ok(())
}
