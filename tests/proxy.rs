//! Loads through a loopback TCP proxy that cuts connections mid-stream. The unary RPCs share
//! the HTTP/2 connection with AppendRows, so they are cut too. Every load must land exactly
//! once.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, schema};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy that forwards loopback TCP connections and cuts each one after it has carried
/// `cut_after` bytes from the client, until `max_cuts` connections were cut.
struct CuttingProxy {
    addr: SocketAddr,
    cuts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    async fn start(upstream: SocketAddr, cut_after: u64, max_cuts: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cuts = Arc::new(AtomicU64::new(0));
        let counter = cuts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        forward(client, server, cut_after, max_cuts, counter).await;
                    }
                });
            }
        });
        Self { addr, cuts, task }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways; drops both sockets once the client sent `cut_after` bytes (while cuts remain).
async fn forward(client: TcpStream, server: TcpStream, cut_after: u64, max_cuts: u64, cuts: Arc<AtomicU64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0u64;
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            sent += n as u64;
            if sent > cut_after && cuts.fetch_add(1, Ordering::SeqCst) < max_cuts {
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_through_a_connection_cutting_proxy_land_exactly_once() {
    let server = EmbeddedServer::start().await.expect("server");
    let table: TableRef = "demo.proxy.t".parse().expect("name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED,payload:STRING").expect("schema"),
    );
    let proxy = CuttingProxy::start(server.local_addr(), 256 * 1024, 12).await;

    let ctx = SessionContext::new();
    register_bigquery(&ctx, BigQueryOptions::default().with_endpoint(proxy.endpoint()));
    common::run(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}' OPTIONS ('bigquery.streams' '3', \
             'bigquery.max_request_bytes' '65536', 'bigquery.retry_initial_backoff_ms' '5', \
             'bigquery.retry_max_backoff_ms' '50', 'bigquery.retry_max_attempts' '20')"
        ),
    )
    .await
    .expect("create");
    const ROWS: u64 = 100_000;
    let count = common::run(
        &ctx,
        &format!("INSERT INTO dest SELECT value AS id, repeat('x', 40) AS payload FROM range({ROWS})"),
    )
    .await
    .unwrap_or_else(|e| panic!("insert through the proxy: {}", common::error_text(&e)));
    assert_eq!(count, ROWS);

    let cuts = proxy.cuts.load(Ordering::SeqCst).min(12);
    assert!(cuts >= 5, "the proxy cut only {cuts} connections");
    let mut ids = BTreeSet::new();
    let mut total = 0u64;
    for batch in server.rows(&table).expect("table") {
        for id in batch.column(0).as_primitive::<Int64Type>().values() {
            ids.insert(*id);
            total += 1;
        }
    }
    println!(
        "proxy: {cuts} connections cut, {total} rows committed, {} distinct",
        ids.len()
    );
    assert_eq!(total, ROWS, "no row duplicated");
    assert_eq!(ids.len() as u64, ROWS, "no row lost");
    assert_eq!(server.stats().commits, 1);
}
