//! End-to-end load benchmark: `INSERT INTO bq SELECT * FROM lineitem` against the embedded
//! server running in its own process in discard mode, then, in the same run, the same rows
//! through Google's official Python client (`google-cloud-bigquery-storage`'s
//! `AppendRowsStream`) against the same server. Prints rows/s, MB/s, CPU seconds and peak
//! RSS of each, and their ratios.
//!
//! ```text
//! cargo bench --bench e2e                                  # SF 1, 4 streams, with Python
//! cargo bench --bench e2e -- --sf 3 --streams 4 --no-python
//! ```
//!
//! lineitem is generated on the fly by tpchgen-arrow, one DataFusion partition per core, so
//! the source costs CPU too; the runner also times the source alone (`SELECT *` drained) to
//! show what is left for the load. The Python client reads the same rows from a Parquet file
//! the runner writes once under `target/bench-data/`; it needs a virtualenv with the client
//! (`scripts/bench-python.sh` makes `.venv/bench`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::{SchemaRef, UInt64Type};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_bigquery::{BigQueryOptions, register_bigquery};
use futures::StreamExt;

const TABLE: &str = "bench.tpch.lineitem";

/// Settings from the command line.
struct Settings {
    sf: f64,
    streams: usize,
    partitions: usize,
    python: bool,
    explain: bool,
    /// Also load with checkpoints recorded every 100 ms, and compare.
    checkpoint: bool,
}

impl Settings {
    fn from_args() -> Result<Self, String> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let mut settings = Settings {
            sf: 1.0,
            streams: 4,
            partitions: cores,
            python: true,
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
                "--no-python" => settings.python = false,
                "--explain" => settings.explain = true,
                "--checkpoint" => settings.checkpoint = true,
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
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The server in its own process, discarding rows.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start() -> Result<Self, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_datafusion-bigquery"))
            .args(["emulator", "--port", "0", "--discard", "--table"])
            .arg(format!("{TABLE}={}", common::LINEITEM_COLUMNS))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let stdout = child.stdout.take().ok_or("no server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the server's endpoint: {e}"))?;
        let endpoint = line.trim().to_string();
        if !endpoint.starts_with("http://") {
            return Err(format!("unexpected server output {endpoint:?}"));
        }
        Ok(Server { child, endpoint })
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

    fn print(&self) {
        println!(
            "{:<28} {:>10} rows {:>9.2} s {:>11.0} rows/s {:>8.1} MB/s  client CPU {:>6.2} s  server CPU {:>6.2} s  peak RSS {:>6.0} MiB",
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

fn session(settings: &Settings) -> Result<SessionContext, Box<dyn std::error::Error>> {
    let config = SessionConfig::new().with_target_partitions(settings.partitions);
    let ctx = SessionContext::new_with_config(config);
    let schema = common::lineitem_arrow_schema();
    let parts = settings.partitions as i32;
    let partitions: Vec<Arc<dyn PartitionStream>> = (1..=parts)
        .map(|part| {
            Arc::new(LineitemPart {
                schema: schema.clone(),
                sf: settings.sf,
                part,
                parts,
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    ctx.register_table("lineitem", Arc::new(StreamingTable::try_new(schema, partitions)?))?;
    Ok(ctx)
}

/// A session with lineitem and `bq`, the lineitem table of the server.
async fn loading_session(
    settings: &Settings,
    server: &Server,
    checkpoint: Option<&Path>,
) -> Result<SessionContext, Box<dyn std::error::Error>> {
    let ctx = session(settings)?;
    register_bigquery(&ctx, BigQueryOptions::default().with_endpoint(server.endpoint.clone()));
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

/// `INSERT INTO bq SELECT * FROM lineitem` against the discarding server.
async fn insert(
    settings: &Settings,
    server: &Server,
    checkpoint: Option<&Path>,
) -> Result<Measured, Box<dyn std::error::Error>> {
    let ctx = loading_session(settings, server, checkpoint).await?;
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
            "datafusion-bigquery x{}{}",
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

/// `EXPLAIN ANALYZE` of the INSERT: the plan, with the time and rows of every operator.
async fn explain(settings: &Settings, server: &Server) -> Result<(), Box<dyn std::error::Error>> {
    let ctx = loading_session(settings, server, None).await?;
    let plan = ctx
        .sql("EXPLAIN ANALYZE INSERT INTO bq SELECT * FROM lineitem")
        .await?
        .collect()
        .await?;
    println!("{}", arrow::util::pretty::pretty_format_batches(&plan)?);
    Ok(())
}

/// The source alone: lineitem generated and drained, nothing loaded.
async fn source_only(settings: &Settings) -> Result<Measured, Box<dyn std::error::Error>> {
    let ctx = session(settings)?;
    let cpu0 = cpu_seconds("self");
    let started = Instant::now();
    let mut stream = ctx.sql("SELECT * FROM lineitem").await?.execute_stream().await?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows() as u64;
    }
    Ok(Measured {
        name: "source only (tpchgen-arrow)".into(),
        rows,
        bytes: 0,
        elapsed: started.elapsed(),
        client_cpu: cpu_seconds("self") - cpu0,
        server_cpu: 0.0,
        peak_rss_mib: f64::NAN,
    })
}

/// Writes lineitem at `sf` to a Parquet file once, for the Python client.
async fn parquet_copy(settings: &Settings) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("lineitem-sf{}.parquet", settings.sf));
    if !path.exists() {
        let ctx = session(settings)?;
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

/// The official Python client against the same server; it prints one `key=value` line.
fn python_client(server: &Server, parquet: &Path) -> Result<Measured, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bench/bin/python");
    if !python.exists() {
        return Err("no .venv/bench: run scripts/bench-python.sh first, or pass --no-python".into());
    }
    let output = Command::new(python)
        .arg(root.join("benches/python_client.py"))
        .args(["--endpoint", &server.endpoint, "--table", TABLE, "--parquet"])
        .arg(parquet)
        .output()
        .map_err(|e| format!("cannot run the Python client: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the Python client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| -> Result<f64, String> {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .ok_or(format!("the Python client did not report {key}: {text}"))
    };
    Ok(Measured {
        name: "python AppendRowsStream x1".into(),
        rows: field("rows")? as u64,
        bytes: field("bytes")? as u64,
        elapsed: Duration::from_secs_f64(field("seconds")?),
        client_cpu: field("cpu_seconds")?,
        server_cpu: 0.0,
        peak_rss_mib: field("peak_rss_mib")?,
    })
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_args()?;
    println!(
        "lineitem SF {} | {} writer streams | {} source partitions | {}",
        settings.sf,
        settings.streams,
        settings.partitions,
        machine()
    );

    common::init_generator();
    let before = rss_mib();
    println!("resident before loading (tpchgen's text pool and the runtime): {before:.0} MiB");

    let server = Server::start()?;
    if settings.explain {
        explain(&settings, &server).await?;
        server.stop()?;
        return Ok(());
    }
    let mut ours = insert(&settings, &server, None).await?;
    ours.server_cpu = server.cpu_seconds();
    let (rows, bytes) = server.stop()?;
    if rows != ours.rows {
        return Err(format!("the server received {rows} rows, the INSERT reported {}", ours.rows).into());
    }
    ours.bytes = bytes;
    ours.print();
    let source = source_only(&settings).await?;
    source.print();
    if settings.checkpoint {
        let dir = std::env::temp_dir().join(format!("dfbq-bench-checkpoints-{}", std::process::id()));
        let server = Server::start()?;
        let mut checkpointed = insert(&settings, &server, Some(&dir)).await?;
        checkpointed.server_cpu = server.cpu_seconds();
        let (rows, bytes) = server.stop()?;
        let _ = std::fs::remove_dir_all(&dir);
        if rows != checkpointed.rows {
            return Err(format!(
                "the server received {rows} rows, the INSERT reported {}",
                checkpointed.rows
            )
            .into());
        }
        checkpointed.bytes = bytes;
        checkpointed.print();
        println!(
            "ratio rows/s, with checkpoints / without: {:.3}",
            checkpointed.rows_per_second() / ours.rows_per_second()
        );
    }

    let theirs = if settings.python {
        let parquet = parquet_copy(&settings).await?;
        let server = Server::start()?;
        let mut measured = python_client(&server, &parquet)?;
        measured.server_cpu = server.cpu_seconds();
        let (rows, _) = server.stop()?;
        if rows != measured.rows {
            return Err(format!(
                "the server received {rows} rows, the Python client reported {}",
                measured.rows
            )
            .into());
        }
        measured.print();
        Some(measured)
    } else {
        None
    };

    println!(
        "source alone takes {:.0}% of the INSERT's wall time",
        100.0 * source.elapsed.as_secs_f64() / ours.elapsed.as_secs_f64()
    );
    println!(
        "INSERT peak RSS above the resident memory before loading: {:.0} MiB",
        ours.peak_rss_mib - before
    );
    if let Some(theirs) = theirs {
        println!(
            "ratio rows/s, datafusion-bigquery / python client: {:.1}x",
            ours.rows_per_second() / theirs.rows_per_second()
        );
        println!(
            "ratio client CPU per row, python client / datafusion-bigquery: {:.1}x",
            (theirs.client_cpu / theirs.rows as f64) / (ours.client_cpu / ours.rows as f64)
        );
    }
    Ok(())
}
