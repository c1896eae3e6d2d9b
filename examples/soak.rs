//! Soak test: a long INSERT into the embedded server with a fault injected every few
//! seconds (connection cuts, drains, throttling, transient errors, an ambiguous commit). It
//! checks that every row landed exactly once and reports throughput, faults, and peak memory.
//! Not part of CI.
//!
//! ```text
//! cargo run --release --example soak -- [ROWS] [STREAMS] [FAULT_EVERY_MS] [--discard]
//! cargo run --release --example soak -- 5000000 4 2000 --discard
//! ```
//!
//! The embedded server runs in the same process. By default it keeps every committed row, and
//! the check reads every id back; the peak resident memory then includes the table itself. With
//! `--discard` it keeps only a digest of the rows (count, bytes, sum of row hashes), which is
//! compared with the digest of the rows written out here by hand, so the peak resident memory
//! is the client's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::server::{AppendFault, Retention, RowDigest, Rpc, RpcFault};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, schema};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let discard = args.iter().any(|a| a == "--discard");
    args.retain(|a| a != "--discard");
    let args: Vec<u64> = args.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
    let rows = args.first().copied().unwrap_or(5_000_000);
    let streams = args.get(1).copied().unwrap_or(4);
    let fault_every = Duration::from_millis(args.get(2).copied().unwrap_or(2_000));

    let retention = if discard { Retention::Discard } else { Retention::Keep };
    let server = Arc::new(EmbeddedServer::builder().retention(retention).start().await?);
    let table: TableRef = "soak.data.rows".parse()?;
    server.create_table(&table, schema::parse_inline_schema("id:INT64:REQUIRED,payload:STRING")?);
    let ctx = SessionContext::new();
    register_bigquery(&ctx, BigQueryOptions::default().with_endpoint(server.endpoint()));
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}' OPTIONS ('bigquery.streams' '{streams}', \
         'bigquery.retry_initial_backoff_ms' '20', 'bigquery.retry_max_attempts' '20')"
    ))
    .await?;

    // One fault every few seconds, aimed at the next AppendRows requests.
    let done = Arc::new(AtomicBool::new(false));
    let injector = {
        let (server, done) = (server.clone(), done.clone());
        tokio::spawn(async move {
            let kinds = [
                AppendFault::Cut,
                AppendFault::CutAfter,
                AppendFault::Drain,
                AppendFault::Fail(tonic::Code::Unavailable),
                AppendFault::Fail(tonic::Code::ResourceExhausted),
                AppendFault::Throttle,
            ];
            let mut planned = 0u64;
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(fault_every).await;
                let next = server.stats().append_requests + 2;
                server.inject_append_fault(next, kinds[planned as usize % kinds.len()]);
                planned += 1;
            }
            planned
        })
    };
    server.inject_rpc_fault(
        Rpc::BatchCommitWriteStreams,
        1,
        RpcFault::ApplyThenFail(tonic::Code::Unavailable),
    );

    let started = Instant::now();
    let result = ctx
        .sql(&format!(
            "INSERT INTO dest SELECT value AS id, concat('payload-', value) AS payload FROM range({rows})"
        ))
        .await?
        .collect()
        .await?;
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    injector.abort();
    let count = result[0]
        .column(0)
        .as_primitive::<arrow::datatypes::UInt64Type>()
        .value(0);

    let check = if discard {
        check_digest(&server, &table, rows)
    } else {
        check_ids(&server, &table, rows)
    };
    let stats = server.stats();
    let peak = peak_rss_bytes();
    println!("rows requested     {rows}");
    println!("INSERT returned    {count}");
    println!(
        "server             {}",
        if discard { "discards rows" } else { "keeps rows" }
    );
    println!("rows committed     {}", check.summary);
    println!("streams            {streams}");
    println!("faults injected    {}", stats.faults_injected);
    println!("AppendRows sent    {}", stats.append_requests);
    println!(
        "elapsed            {:.1} s ({:.0} rows/s)",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    println!("peak RSS           {:.0} MiB", peak as f64 / 1048576.0);
    if !discard {
        println!(
            "table held by the in-process server {:.0} MiB",
            check.retained as f64 / 1048576.0
        );
        println!(
            "peak RSS minus the table            {:.0} MiB",
            (peak.saturating_sub(check.retained as u64)) as f64 / 1048576.0
        );
    }
    let exact = count == rows && check.exact;
    println!("exactly once       {}", if exact { "yes" } else { "NO" });
    if exact {
        Ok(())
    } else {
        Err("the load was not exactly once".into())
    }
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

/// Compares the server's digest of the committed rows with the digest of the rows the INSERT
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

/// Peak resident set size of this process (`VmHWM`), 0 where /proc is unavailable.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
                    .map(|kb| kb * 1024)
            })
        })
        .unwrap_or(0)
}
