//! Soak test: one long load into the embedded server while it plays the real service's
//! awkward behaviours (connections closed when idle and after a number of requests) and a
//! fault is injected every few seconds (cuts, drains, throttling, transient errors, a hung
//! response, an ambiguous commit). The input stalls now and then for longer than the idle
//! close and the retry budget. At the end it checks that every row landed exactly once and
//! reports throughput, faults, reconnects and resident memory minute by minute. Not part of CI.
//!
//! ```text
//! cargo run --release --example soak -- --minutes 20 --discard
//! cargo run --release --example soak -- --rows 5000000 --fault-every-ms 500
//! ```
//!
//! `--rows N` loads N rows as fast as it can; `--minutes M` loads for M minutes at `--rate`
//! rows per second. By default the in-process server keeps every committed row and the check
//! reads every id back (the resident memory then includes the table). With `--discard` it
//! keeps only a digest of the rows (count, bytes, sum of row hashes), compared with the digest
//! of the rows serialized here by hand, so the memory reported is the client's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use clap::Parser;
use datafusion_bigquery::server::{AppendFault, CloseMode, ConnectionLimit, Retention, RowDigest, Rpc, RpcFault};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, Loader, TableRef, schema};

/// Rows per generated batch.
const BATCH_ROWS: usize = 8192;

#[derive(Parser, Debug)]
struct Args {
    /// Load this many rows as fast as possible (ignored with --minutes).
    #[arg(long, default_value_t = 5_000_000)]
    rows: u64,
    /// Load for this many minutes at --rate rows per second instead.
    #[arg(long)]
    minutes: Option<f64>,
    /// Rows per second with --minutes.
    #[arg(long, default_value_t = 400_000)]
    rate: u64,
    /// Parallel write streams.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// A fault every this many milliseconds.
    #[arg(long, default_value_t = 2_000)]
    fault_every_ms: u64,
    /// The server closes connections idle this long.
    #[arg(long, default_value_t = 3.0)]
    idle_close_secs: f64,
    /// The server ends every connection after this many requests (abruptly).
    #[arg(long, default_value_t = 300)]
    close_after_requests: u64,
    /// The input stalls every this many seconds...
    #[arg(long, default_value_t = 45.0)]
    stall_every_secs: f64,
    /// ... for this long: longer than the idle close and the retry budget.
    #[arg(long, default_value_t = 6.0)]
    stall_secs: f64,
    /// The server keeps a digest of the rows, not the rows.
    #[arg(long)]
    discard: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let retention = if args.discard {
        Retention::Discard
    } else {
        Retention::Keep
    };
    let server = Arc::new(
        EmbeddedServer::builder()
            .retention(retention)
            .idle_close(Duration::from_secs_f64(args.idle_close_secs))
            .connection_limit(ConnectionLimit {
                requests: Some(args.close_after_requests),
                bytes: None,
                close: CloseMode::Abrupt,
            })
            .start()
            .await?,
    );
    let table: TableRef = "soak.data.rows".parse()?;
    server.create_table(&table, schema::parse_inline_schema("id:INT64:REQUIRED,payload:STRING")?);
    let mut options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_streams(args.streams)
        .with_append_response_timeout(Duration::from_secs(2));
    // A retry budget shorter than the stalls: a failure right after one must still be retried.
    for (key, value) in [
        ("retry_initial_backoff_ms", "20"),
        ("retry_max_attempts", "20"),
        ("retry_timeout_ms", "3000"),
        ("retry_throttle_backoff_ms", "200"),
    ] {
        options.set(key, value)?;
    }
    let loader = Loader::connect(table.clone(), options).await?;

    let done = Arc::new(AtomicBool::new(false));
    let injector = tokio::spawn(inject_faults(
        server.clone(),
        done.clone(),
        Duration::from_millis(args.fault_every_ms),
    ));
    server.inject_rpc_fault(
        Rpc::BatchCommitWriteStreams,
        1,
        RpcFault::ApplyThenFail(tonic::Code::Unavailable),
    );
    let memory = tokio::spawn(sample_memory(done.clone()));

    let plan = Plan::from(&args);
    let started = Instant::now();
    let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let result = loader
        .load(batch_schema(), input(plan, started, produced.clone()))
        .await;
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    injector.abort();
    let samples = memory.await.unwrap_or_default();
    let summary = result?;
    let rows = produced.load(Ordering::SeqCst);

    let check = if args.discard {
        check_digest(&server, &table, rows)
    } else {
        check_ids(&server, &table, rows)
    };
    let stats = server.stats();
    let peak = status_kib("VmHWM:") * 1024;
    println!("rows produced       {rows}");
    println!("rows loaded         {}", summary.rows);
    println!(
        "server              {}",
        if args.discard { "discards rows" } else { "keeps rows" }
    );
    println!("rows committed      {}", check.summary);
    println!("streams             {}", args.streams);
    println!("faults injected     {}", stats.faults_injected);
    println!(
        "connections closed  {} by the server (idle, or after {} requests)",
        stats.connections_closed, args.close_after_requests
    );
    println!("requests refused    {} for a quota", stats.throttled);
    println!("client reconnects   {}", summary.retries);
    println!("AppendRows sent     {}", stats.append_requests);
    println!(
        "elapsed             {:.1} s ({:.0} rows/s, stalls included)",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    let series: Vec<String> = samples
        .iter()
        .map(|kib| format!("{:.0}", *kib as f64 / 1024.0))
        .collect();
    println!("RSS each minute     {} MiB", series.join(" "));
    println!("peak RSS            {:.0} MiB", peak as f64 / 1048576.0);
    if !args.discard {
        println!(
            "table held by the in-process server {:.0} MiB",
            check.retained as f64 / 1048576.0
        );
    }
    let exact = summary.rows == rows && check.exact;
    println!("exactly once        {}", if exact { "yes" } else { "NO" });
    if exact {
        Ok(())
    } else {
        Err("the load was not exactly once".into())
    }
}

/// One fault every `every`, aimed at the next AppendRows requests.
async fn inject_faults(server: Arc<EmbeddedServer>, done: Arc<AtomicBool>, every: Duration) {
    let kinds = [
        AppendFault::Cut,
        AppendFault::CutAfter,
        AppendFault::Drain,
        AppendFault::Fail(tonic::Code::Unavailable),
        AppendFault::Throttle,
        AppendFault::Fail(tonic::Code::Aborted),
        AppendFault::Hang,
    ];
    let mut planned = 0usize;
    while !done.load(Ordering::SeqCst) {
        tokio::time::sleep(every).await;
        let next = server.stats().append_requests + 2;
        server.inject_append_fault(next, kinds[planned % kinds.len()]);
        planned += 1;
    }
}

/// Resident memory (KiB) once a minute until `done`.
async fn sample_memory(done: Arc<AtomicBool>) -> Vec<u64> {
    let mut samples = Vec::new();
    let mut last = Instant::now();
    while !done.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if last.elapsed() >= Duration::from_secs(60) {
            samples.push(status_kib("VmRSS:"));
            last = Instant::now();
        }
    }
    samples.push(status_kib("VmRSS:"));
    samples
}

/// How the input is produced.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Stop after this many rows, or ...
    rows: Option<u64>,
    /// ... after this long, producing `rate` rows per second.
    duration: Option<Duration>,
    rate: u64,
    stall_every: Duration,
    stall: Duration,
}

impl From<&Args> for Plan {
    fn from(args: &Args) -> Self {
        Self {
            rows: args.minutes.is_none().then_some(args.rows),
            duration: args.minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
            rate: args.rate.max(1),
            stall_every: Duration::from_secs_f64(args.stall_every_secs),
            stall: Duration::from_secs_f64(args.stall_secs),
        }
    }
}

fn batch_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, true),
    ]))
}

/// Batches of ids 0, 1, 2, ... with `payload-<id>`, paced and stalled as planned; counts
/// what it produced into `produced`.
fn input(
    plan: Plan,
    started: Instant,
    produced: Arc<std::sync::atomic::AtomicU64>,
) -> impl futures::Stream<Item = Result<RecordBatch, arrow::error::ArrowError>> + Send + Unpin {
    let schema = batch_schema();
    let mut next_stall = plan.stall_every;
    Box::pin(futures::stream::unfold(0u64, move |next| {
        let schema = schema.clone();
        let produced = produced.clone();
        let now = started.elapsed();
        let finished = match (plan.rows, plan.duration) {
            (Some(rows), _) => next >= rows,
            (None, Some(duration)) => now >= duration,
            (None, None) => true,
        };
        let stall = plan.duration.is_some() && now >= next_stall;
        if stall {
            next_stall = now + plan.stall + plan.stall_every;
        }
        async move {
            if finished {
                return None;
            }
            if stall {
                tokio::time::sleep(plan.stall).await;
            } else if plan.duration.is_some() {
                // Pace to `rate` rows per second over the time spent producing.
                let due = Duration::from_secs_f64(next as f64 / plan.rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
                }
            }
            let len = plan
                .rows
                .map_or(BATCH_ROWS as u64, |r| (r - next).min(BATCH_ROWS as u64));
            let ids: Vec<i64> = (next..next + len).map(|i| i as i64).collect();
            let payloads: Vec<String> = ids.iter().map(|i| format!("payload-{i}")).collect();
            let batch = RecordBatch::try_new(
                schema,
                vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(payloads))],
            );
            produced.fetch_add(len, Ordering::SeqCst);
            Some((batch, next + len))
        }
    }))
}

/// The outcome of comparing the committed rows with the input.
struct Check {
    summary: String,
    exact: bool,
    /// Bytes of Arrow memory the server holds for the table.
    retained: usize,
}

/// Reads every committed id back: each of `0..rows` exactly once, nothing else.
fn check_ids(server: &EmbeddedServer, table: &TableRef, rows: u64) -> Check {
    let mut seen = vec![false; rows as usize];
    let (mut committed, mut duplicated, mut foreign, mut retained) = (0u64, 0u64, 0u64, 0usize);
    for batch in server.rows(table).unwrap_or_default() {
        retained += batch.columns().iter().map(|c| c.get_array_memory_size()).sum::<usize>();
        for id in batch.column(0).as_primitive::<Int64Type>().values() {
            committed += 1;
            match usize::try_from(*id).ok().and_then(|i| seen.get_mut(i)) {
                Some(slot) if *slot => duplicated += 1,
                Some(slot) => *slot = true,
                None => foreign += 1,
            }
        }
    }
    let lost = seen.iter().filter(|s| !**s).count();
    Check {
        summary: format!("{committed} (lost {lost}, duplicated {duplicated}, foreign {foreign})"),
        exact: committed == rows && lost == 0 && duplicated == 0 && foreign == 0,
        retained,
    }
}

/// Compares the server's digest of the committed rows with the digest of the rows the load
/// should produce, serialized here by hand: field 1 `id` as a varint, field 2 `payload` as a
/// length-delimited string.
fn check_digest(server: &EmbeddedServer, table: &TableRef, rows: u64) -> Check {
    let mut expected = RowDigest::default();
    let mut row = Vec::with_capacity(32);
    for id in 0..rows {
        row.clear();
        row.push(0x08);
        put_varint(&mut row, id);
        let payload = format!("payload-{id}");
        row.push(0x12);
        put_varint(&mut row, payload.len() as u64);
        row.extend_from_slice(payload.as_bytes());
        expected.add(&row);
    }
    let actual = server.table_digest(table).unwrap_or_default();
    Check {
        summary: format!(
            "{} ({} bytes; digest {} the input's)",
            actual.rows,
            actual.bytes,
            if actual == expected { "equals" } else { "DIFFERS FROM" }
        ),
        exact: actual == expected,
        retained: 0,
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A line of `/proc/self/status` in KiB (`VmRSS:`, `VmHWM:`), 0 where /proc is unavailable.
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .unwrap_or(0)
}
