//! An in-process Storage Write server for examples, tests and benchmarks: PENDING, COMMITTED,
//! BUFFERED and `_default` streams, offsets, finalize and atomic batch commit, with rows
//! decoded by the writer's schema and kept as Arrow, or, in discard mode, validated and
//! digested without being kept. Binds 127.0.0.1.
//!
//! A second port serves a subset of the BigQuery v2 REST API over the same tables: tables
//! (get, insert, patch, delete, list), datasets.list, and copy jobs (jobs.insert, jobs.get).

mod arrow_rows;
mod behaviour;
mod catalog;
mod copy;
mod decode;
mod defaults;
mod digest;
mod faults;
mod rest;
mod service;
mod state;
#[doc(hidden)]
pub mod text_forms;
mod wire_forms;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

pub use behaviour::{CloseMode, ConnectionLimit, DEFAULT_MAX_REQUEST_BYTES};
pub use digest::RowDigest;
pub use faults::{AppendFault, ClientsSeen, CommitGate, RestCall, RestFault, Rpc, RpcFault, ServerStats};
pub use state::{Digests, Retention};

use crate::error::{Error, Result};
use crate::proto::TableSchema;
use crate::proto::big_query_write_server::BigQueryWriteServer;
use crate::table_ref::TableRef;
use behaviour::Behaviour;
use service::{Service, Shared};
use state::Store;

/// HTTP/2 receive window of each AppendRows stream.
const RECEIVE_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Settings of an [`EmbeddedServer`] before it starts.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion_bigquery::Result<()> {
/// use datafusion_bigquery::EmbeddedServer;
/// use datafusion_bigquery::server::Retention;
/// let server = EmbeddedServer::builder().port(0).retention(Retention::Discard).start().await?;
/// assert_eq!(server.retention(), Retention::Discard);
/// # Ok(()) }
/// ```
///
/// The real service's awkward behaviours are switches here, all off by default:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion_bigquery::Result<()> {
/// use std::time::Duration;
/// use datafusion_bigquery::EmbeddedServer;
/// use datafusion_bigquery::server::{CloseMode, ConnectionLimit};
/// let server = EmbeddedServer::builder()
///     .idle_close(Duration::from_secs(2))
///     .connection_limit(ConnectionLimit { requests: Some(50), bytes: None, close: CloseMode::Abrupt })
///     .max_concurrent_streams(100)
///     .throttle_every(25)
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    port: u16,
    rest_port: u16,
    retention: Retention,
    digests: Digests,
    behaviour: Behaviour,
}

impl ServerBuilder {
    /// Port on 127.0.0.1; 0 (the default) picks a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Port of the v2 REST API on 127.0.0.1; 0 (the default) picks a free one.
    pub fn rest_port(mut self, port: u16) -> Self {
        self.rest_port = port;
        self
    }

    /// What the server keeps of appended rows (default: [`Retention::Keep`]).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Counts rows without digesting them: the tables' [`RowDigest`]s then hold the rows and
    /// bytes but no checksum (always 0). Rows are still checked as before; for benchmarks,
    /// where the server's own work should be as small for Arrow rows (digested in their proto
    /// form, which takes encoding them) as for proto rows.
    pub fn without_digests(mut self) -> Self {
        self.digests = Digests::Off;
        self
    }

    /// Ends an AppendRows connection that carried no request for `idle` with ABORTED
    /// "Closing the stream because it has been inactive for N seconds", as the service does
    /// after 600 s.
    pub fn idle_close(mut self, idle: Duration) -> Self {
        self.behaviour.idle_close = Some(idle);
        self
    }

    /// Ends every AppendRows connection after it carried some requests or bytes, gracefully
    /// or abruptly, as the service may end long-lived connections at any time.
    pub fn connection_limit(mut self, limit: ConnectionLimit) -> Self {
        self.behaviour.connection_limit = Some(limit);
        self
    }

    /// Caps the concurrent streams (calls) of each HTTP/2 connection
    /// (SETTINGS_MAX_CONCURRENT_STREAMS; Google's front ends allow about 100).
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.behaviour.max_concurrent_streams = Some(streams.max(1));
        self
    }

    /// Refuses AppendRows requests of `bytes` or more with INVALID_ARGUMENT (default: the
    /// service's 20 MB; 10 MiB plays the older limit that bqemulator keeps).
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.behaviour.max_request_bytes = bytes;
        self
    }

    /// Refuses every `n`-th AppendRows request with the AppendRows throughput quota
    /// (RESOURCE_EXHAUSTED, in the response, the connection staying open).
    pub fn throttle_every(mut self, n: u64) -> Self {
        self.behaviour.throttle_every = Some(n);
        self
    }

    /// Refuses every `n`-th CreateWriteStream call with the stream-creation quota.
    pub fn stream_quota_every(mut self, n: u64) -> Self {
        self.behaviour.stream_quota_every = Some(n);
        self
    }

    /// Refuses every request carrying Arrow rows with INVALID_ARGUMENT (no row errors, no
    /// `StorageError`), as a service that does not take the format would.
    pub fn refuse_arrow_rows(mut self) -> Self {
        self.behaviour.refuse_arrow_rows = true;
        self
    }

    /// Serves AppendRows calls that lack the `x-goog-request-params` routing header, routing
    /// them by their first request's `write_stream`, as the real service mostly does (with
    /// intermittent "Cannot route on empty project id" failures: googleapis/google-cloud-python
    /// issue #16650). By default such calls are refused, so a client that forgets the header
    /// is found out; some third-party clients never send it.
    pub fn accept_unrouted_appends(mut self) -> Self {
        self.behaviour.accept_unrouted_appends = true;
        self
    }

    /// Answers CreateWriteStream with NOT_FOUND (StorageError TABLE_NOT_FOUND) for a table
    /// until `delay` after it was created, as the Storage Write API sees new tables late.
    /// GetWriteStream sees the table at once.
    pub fn table_visibility_delay(mut self, delay: Duration) -> Self {
        self.behaviour.table_visibility_delay = Some(delay);
        self
    }

    /// Binds and starts serving.
    pub async fn start(self) -> Result<EmbeddedServer> {
        EmbeddedServer::start_with(self).await
    }
}

/// A running embedded server; stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion_bigquery::Result<()> {
/// use datafusion_bigquery::{schema, EmbeddedServer, TableRef};
/// let server = EmbeddedServer::start().await?;
/// let table: TableRef = "demo.sales.orders".parse()?;
/// server.create_table(&table, schema::parse_inline_schema("id:INT64:REQUIRED,note:STRING").unwrap());
/// assert!(server.endpoint().starts_with("http://127.0.0.1:"));
/// assert_eq!(server.row_count(&table), Some(0));
/// # Ok(()) }
/// ```
pub struct EmbeddedServer {
    addr: SocketAddr,
    rest_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Turns true when the REST listener is to stop.
    rest_stop: watch::Sender<bool>,
    rest_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedServer")
            .field("addr", &self.addr)
            .field("rest_addr", &self.rest_addr)
            .finish_non_exhaustive()
    }
}

impl EmbeddedServer {
    /// Starts on a free port of 127.0.0.1, keeping every committed row.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// Starts on the given port of 127.0.0.1 (0 picks a free one), keeping every committed row.
    pub async fn start_on(port: u16) -> Result<Self> {
        Self::builder().port(port).start().await
    }

    /// Settings for a server with another port or retention.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    async fn start_with(settings: ServerBuilder) -> Result<Self> {
        let ServerBuilder {
            port,
            rest_port,
            retention,
            digests,
            behaviour,
        } = settings;
        let (listener, addr) = bind(port).await?;
        let (rest_listener, rest_addr) = bind(rest_port).await?;
        // Requests up to twice the limit are read, so that they are refused in a response
        // as the service does, not by ending the call.
        let max_decoding = behaviour.max_request_bytes.saturating_mul(2).max(1 << 20);
        let max_concurrent_streams = behaviour.max_concurrent_streams;
        let shared = Arc::new(Shared {
            store: std::sync::Mutex::new(Store::new(retention)),
            behaviour,
            ..Shared::default()
        });
        let service = BigQueryWriteServer::new(Service {
            shared: shared.clone(),
            retention,
            digests,
        })
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(usize::MAX);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                // Room for several 10 MB requests in flight per stream, as the service allows.
                .initial_stream_window_size(Some(RECEIVE_WINDOW_BYTES))
                .initial_connection_window_size(Some(4 * RECEIVE_WINDOW_BYTES))
                .max_concurrent_streams(max_concurrent_streams)
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stop.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "embedded server stopped");
            }
        });
        let (rest_stop, stopping) = watch::channel(false);
        let rest_task = tokio::spawn(rest::serve(rest_listener, shared.clone(), stopping));
        Ok(Self {
            addr,
            rest_addr,
            shared,
            shutdown: Some(shutdown),
            task: Some(task),
            rest_stop,
            rest_task: Some(rest_task),
        })
    }

    /// The plaintext endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The plaintext endpoint of the v2 REST API, `http://127.0.0.1:PORT` (its paths start
    /// with `/bigquery/v2`).
    pub fn rest_endpoint(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// Creates (or replaces) a table, with default metadata.
    pub fn create_table(&self, table: &TableRef, schema: TableSchema) {
        self.shared.store().create_table(table.resource_path(), schema);
    }

    /// Creates a dataset (without tables) for datasets.list; tables.insert accepts any
    /// dataset, created or not.
    pub fn create_dataset(&self, project: &str, dataset: &str) {
        self.shared
            .store()
            .datasets
            .insert((project.to_string(), dataset.to_string()));
    }

    /// The Table resource tables.get answers for a table, or `None` if it does not exist.
    pub fn table_json(&self, table: &TableRef) -> Option<serde_json::Value> {
        rest::table_resource(&self.shared.store(), table)
    }

    /// The ids of the tables of a dataset, sorted.
    pub fn table_names(&self, project: &str, dataset: &str) -> Vec<String> {
        self.shared.store().table_ids(project, dataset)
    }

    /// What the server keeps of appended rows.
    pub fn retention(&self) -> Retention {
        self.shared.store().retention
    }

    /// The committed (visible) rows of a table, or `None` if it does not exist; always empty
    /// when rows are discarded.
    pub fn rows(&self, table: &TableRef) -> Option<Vec<RecordBatch>> {
        self.shared
            .store()
            .live(&table.resource_path())
            .map(|t| t.visible.clone())
    }

    /// Number of visible rows of a table (counted, not kept, when rows are discarded).
    pub fn row_count(&self, table: &TableRef) -> Option<usize> {
        let store = self.shared.store();
        let t = store.live(&table.resource_path())?;
        Some(catalog::visible_rows(t, store.retention) as usize)
    }

    /// The digest of the rows made visible in a table by commits, COMMITTED streams and
    /// `_default`, as serialized on the wire; kept in both retention modes.
    pub fn table_digest(&self, table: &TableRef) -> Option<RowDigest> {
        self.shared.store().live(&table.resource_path()).map(|t| t.digest)
    }

    /// Rows appended to PENDING or BUFFERED streams of the table and not yet visible.
    pub fn invisible_row_count(&self, table: &TableRef) -> usize {
        let path = table.resource_path();
        let store = self.shared.store();
        store
            .streams
            .values()
            .filter(|s| s.table == path)
            .map(|s| match store.retention {
                Retention::Keep => s.pending.iter().map(RecordBatch::num_rows).sum::<usize>(),
                Retention::Discard => s.pending_digest.rows as usize,
            })
            .sum()
    }

    /// The server's counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.counters.snapshot(&self.shared.faults)
    }

    /// The user agents and trace ids of the AppendRows calls received so far.
    pub fn clients_seen(&self) -> ClientsSeen {
        self.shared.clients.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Answers the `n`-th AppendRows request (1-based, counted over all connections) with `code`.
    pub fn fail_append(&self, n: u64, code: tonic::Code) {
        self.inject_append_fault(n, AppendFault::Fail(code));
    }

    /// Plans a fault on the `n`-th AppendRows request (1-based, counted over all connections).
    pub fn inject_append_fault(&self, n: u64, fault: AppendFault) {
        if let Ok(mut faults) = self.shared.faults.append.lock() {
            faults.insert(n, fault);
        }
    }

    /// Plans a fault on the `n`-th call (1-based) of a unary RPC.
    pub fn inject_rpc_fault(&self, rpc: Rpc, n: u64, fault: RpcFault) {
        if let Ok(mut faults) = self.shared.faults.rpc.lock() {
            faults.insert((rpc, n), fault);
        }
    }

    /// Plans a fault on the `n`-th call (1-based) of a v2 REST API method.
    pub fn inject_rest_fault(&self, call: RestCall, n: u64, fault: RestFault) {
        if let Ok(mut faults) = self.shared.faults.rest.lock() {
            faults.insert((call, n), fault);
        }
    }

    /// Calls of a v2 REST API method received so far (with or without a fault).
    pub fn rest_calls(&self, call: RestCall) -> u64 {
        self.shared.faults.rest_calls(call)
    }

    /// Delays every AppendRows response by `delay`.
    pub fn delay_appends(&self, delay: Duration) {
        if let Ok(mut d) = self.shared.faults.append_delay.lock() {
            *d = delay;
        }
    }

    /// Holds every BatchCommitWriteStreams call at the returned gate until released.
    pub fn hold_commits(&self) -> Arc<CommitGate> {
        let gate = Arc::new(CommitGate::default());
        if let Ok(mut g) = self.shared.faults.commit_gate.lock() {
            *g = Some(gate.clone());
        }
        gate
    }

    /// Applies every BatchCommitWriteStreams call, then holds its answer at the returned gate
    /// until released: the rows are visible, the client does not know yet.
    pub fn hold_commit_replies(&self) -> Arc<CommitGate> {
        let gate = Arc::new(CommitGate::default());
        if let Ok(mut g) = self.shared.faults.commit_reply_gate.lock() {
            *g = Some(gate.clone());
        }
        gate
    }

    /// Answers commits at once again, after [`EmbeddedServer::hold_commit_replies`] (held
    /// answers still wait for their gate's release).
    pub fn stop_holding_commit_replies(&self) {
        if let Ok(mut g) = self.shared.faults.commit_reply_gate.lock() {
            *g = None;
        }
    }

    /// Stops both listeners and waits for them.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        self.rest_stop.send_replace(true);
        for task in [self.task.take(), self.rest_task.take()].into_iter().flatten() {
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        self.rest_stop.send_replace(true);
    }
}

/// Binds a port of 127.0.0.1 (0 picks a free one).
async fn bind(port: u16) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| Error::Server {
            message: format!("cannot bind 127.0.0.1:{port}"),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Server {
        message: "no local address".into(),
        source,
    })?;
    Ok((listener, addr))
}
