//! A loopback TCP proxy that cuts connections: the network failures tests put between the
//! client and a server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy that forwards loopback TCP connections and cuts each one after it has carried
/// `cut_after` bytes from the client, until `max_cuts` connections were cut.
pub struct CuttingProxy {
    addr: SocketAddr,
    /// Connections cut so far (may count past the limit; cap it with `min`).
    pub cuts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    /// Starts forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr, cut_after: u64, max_cuts: u64) -> Self {
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

    /// The proxy's plaintext endpoint.
    pub fn endpoint(&self) -> String {
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
