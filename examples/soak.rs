//! Soak test: a long INSERT into the embedded server with a fault injected every few
//! seconds (connection cuts, drains, throttling, transient errors, an ambiguous commit). It
//! checks that every row landed exactly once and reports throughput, faults, and peak memory.
//! Not part of CI.
//!
//! ```text
//! cargo run --release --example soak -- [ROWS] [STREAMS] [FAULT_EVERY_MS]
//! cargo run --release --example soak -- 5000000 4 2000
//! ```
//!
//! The embedded server runs in the same process and keeps every committed row, so the peak
//! resident memory includes the table itself; the report separates that part out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::server::{AppendFault, Rpc, RpcFault};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, schema};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let rows = args.first().copied().unwrap_or(5_000_000);
    let streams = args.get(1).copied().unwrap_or(4);
    let fault_every = Duration::from_millis(args.get(2).copied().unwrap_or(2_000));

    let server = Arc::new(EmbeddedServer::start().await?);
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
                AppendFault::TooLarge,
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

    let mut seen = vec![false; rows as usize];
    let (mut committed, mut duplicated, mut foreign, mut retained) = (0u64, 0u64, 0u64, 0usize);
    for batch in server.rows(&table).unwrap_or_default() {
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
    let stats = server.stats();
    let peak = peak_rss_bytes();
    println!("rows requested     {rows}");
    println!("INSERT returned    {count}");
    println!("rows committed     {committed} (lost {lost}, duplicated {duplicated}, foreign {foreign})");
    println!("streams            {streams}");
    println!("faults injected    {}", stats.faults_injected);
    println!("AppendRows sent    {}", stats.append_requests);
    println!(
        "elapsed            {:.1} s ({:.0} rows/s)",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    println!("peak RSS           {:.0} MiB", peak as f64 / 1048576.0);
    println!(
        "table held by the in-process server {:.0} MiB",
        retained as f64 / 1048576.0
    );
    println!(
        "peak RSS minus the table            {:.0} MiB",
        (peak.saturating_sub(retained as u64)) as f64 / 1048576.0
    );
    let exact = count == rows && committed == rows && lost == 0 && duplicated == 0 && foreign == 0;
    println!("exactly once       {}", if exact { "yes" } else { "NO" });
    if exact {
        Ok(())
    } else {
        Err("the load was not exactly once".into())
    }
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
