//! The Storage Write API client: a pool of channels, credentials, identity and routing
//! headers, deadlines, and one method per RPC. Knows nothing of DataFusion.

mod append;
mod auth;
mod identity;
mod request;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::Request;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tracing::Instrument;

pub(crate) use append::AppendConnection;
pub(crate) use append::RequestTemplate;
pub(crate) use auth::Credentials;
pub(crate) use identity::quota_project_from_environment;
pub use identity::{USER_AGENT, trace_id};

use crate::error::{Error, Result};
use crate::proto::big_query_write_client::BigQueryWriteClient;
use crate::proto::write_stream::Type as StreamType;
use crate::proto::{
    BatchCommitWriteStreamsRequest, BatchCommitWriteStreamsResponse, CreateWriteStreamRequest,
    FinalizeWriteStreamRequest, GetWriteStreamRequest, TableSchema, WriteStream, WriteStreamView,
};
use crate::rpc::Rpc;
use crate::table_ref::TableRef;

/// Largest response accepted (table schemas can be large).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Header through which the service routes a call to the right table or stream.
const ROUTING_HEADER: &str = "x-goog-request-params";

/// Header naming the project billed for quota, when the credentials name one.
const QUOTA_PROJECT_HEADER: &str = "x-goog-user-project";

/// Default size of the channel pool: Go's managedwriter pools up to 4 connections.
pub const DEFAULT_CONNECTIONS: usize = 4;

/// Deadline of CreateWriteStream (Google's service config for BigQueryWrite).
pub const CREATE_WRITE_STREAM_DEADLINE: Duration = Duration::from_secs(1200);

/// Deadline of GetWriteStream, FinalizeWriteStream, BatchCommitWriteStreams and FlushRows
/// (Google's service config).
pub const UNARY_DEADLINE: Duration = Duration::from_secs(600);

/// HTTP/2 keepalive towards Google's front ends: Java's client pings every minute.
const GOOGLE_KEEPALIVE: Duration = Duration::from_secs(60);

/// HTTP/2 keepalive towards other servers: grpc-core's default policy refuses pings more
/// often than every 5 minutes (`GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS`) and
/// sends GOAWAY `too_many_pings` after two strikes; stay clear of it.
const OTHER_KEEPALIVE: Duration = Duration::from_secs(330);

/// How much later than the client's deadline the server's `grpc-timeout` expires.
const GRPC_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// How long a keepalive ping may go unanswered before the connection is taken as dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How a client connects.
///
/// ```
/// use datafusion_bigquery::client::ClientConfig;
/// let config = ClientConfig::new("http://127.0.0.1:9060").with_connections(2);
/// assert_eq!(config.connections, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientConfig {
    /// The endpoint: `https://` (TLS, Application Default Credentials) or `http://`
    /// (plaintext, no credentials).
    pub endpoint: String,
    /// HTTP/2 connections in the pool (`bigquery.connections`); each AppendRows connection
    /// keeps one of them for its life.
    pub connections: usize,
    /// The project billed for quota (`x-goog-user-project`); by default the credentials'
    /// quota project, if they name one.
    pub quota_project: Option<String>,
}

impl ClientConfig {
    /// Defaults for an endpoint.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            connections: DEFAULT_CONNECTIONS,
            quota_project: None,
        }
    }

    /// Sets the pool size (at least 1).
    pub fn with_connections(mut self, connections: usize) -> Self {
        self.connections = connections.max(1);
        self
    }
}

/// A connected Storage Write API client; cheap to clone (the pool of channels is shared).
#[derive(Clone)]
pub struct WriteClient {
    endpoint: String,
    channels: Arc<[Channel]>,
    /// Round robin of unary calls over the pool.
    next_channel: Arc<AtomicUsize>,
    /// Round robin of AppendRows connections, apart, so that they spread evenly.
    next_append_channel: Arc<AtomicUsize>,
    credentials: Credentials,
    quota_project: Option<AsciiMetadataValue>,
    /// Overrides every unary deadline (`bigquery.rpc_timeout_ms`).
    rpc_timeout: Option<Duration>,
}

impl std::fmt::Debug for WriteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteClient")
            .field("endpoint", &self.endpoint)
            .field("connections", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl WriteClient {
    /// Connects to `endpoint` with the default pool. `https://` uses TLS with verified roots
    /// and Application Default Credentials; `http://` is plaintext and never carries a token,
    /// whatever the host (emulators). Every RPC runs in a `tracing` span named after it;
    /// tokens are never logged.
    pub async fn connect(endpoint: &str) -> Result<Self> {
        Self::connect_with(&ClientConfig::new(endpoint)).await
    }

    /// Connects with a configuration: the first channel at once (so a wrong endpoint fails
    /// here), the rest of the pool when first used.
    pub async fn connect_with(config: &ClientConfig) -> Result<Self> {
        Self::build(config, true).await
    }

    /// A client that connects, and finds credentials, at its first call: for plans made in
    /// one process and run in another. A wrong endpoint fails at the first call. Call it
    /// within a Tokio runtime (the channels' workers are spawned on it).
    pub fn connect_lazily(config: &ClientConfig) -> Result<Self> {
        // Nothing below awaits when `eager` is false.
        futures::executor::block_on(Self::build(config, false))
    }

    async fn build(config: &ClientConfig, eager: bool) -> Result<Self> {
        let endpoint = config.endpoint.as_str();
        let invalid = |reason: &str| Error::InvalidEndpoint {
            endpoint: endpoint.into(),
            reason: reason.into(),
        };
        let EndpointKind { secure, host } = endpoint_kind(endpoint)?;
        let mut builder = Endpoint::from_shared(endpoint.to_string())
            .map_err(|_| invalid("not a valid URI"))?
            .user_agent(USER_AGENT)
            .map_err(|_| invalid("user agent"))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(keepalive_interval(&host))
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(false);
        let (credentials, quota_project) = if secure {
            builder = builder
                .tls_config(ClientTlsConfig::new().with_webpki_roots().domain_name(host))
                .map_err(|e| invalid(&e.to_string()))?;
            let credentials = if eager {
                Credentials::application_default(endpoint).await?
            } else {
                Credentials::application_default_on_first_use(endpoint)
            };
            let quota = config
                .quota_project
                .clone()
                .or_else(identity::quota_project_from_environment);
            (credentials, quota)
        } else {
            (Credentials::None, None)
        };
        let quota_project = quota_project
            .map(|p| {
                AsciiMetadataValue::try_from(p.as_str()).map_err(|_| Error::InvalidOption {
                    key: "bigquery.quota_project".into(),
                    value: p.clone(),
                    reason: "not valid in a request header".into(),
                })
            })
            .transpose()?;
        let first = if eager {
            builder.connect().await.map_err(|source| Error::Connect {
                endpoint: endpoint.to_string(),
                source,
            })?
        } else {
            builder.connect_lazy()
        };
        let mut channels = vec![first];
        channels.extend((1..config.connections.max(1)).map(|_| builder.connect_lazy()));
        let channels: Arc<[_]> = channels.into();
        Ok(Self {
            endpoint: endpoint.to_string(),
            channels,
            next_channel: Arc::default(),
            next_append_channel: Arc::default(),
            credentials,
            quota_project,
            rpc_timeout: None,
        })
    }

    /// The same client (same pool) with every unary deadline set to `timeout`, or back to
    /// the service config's deadlines with `None`.
    pub fn with_rpc_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.rpc_timeout = timeout;
        self
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Channels in the pool.
    pub fn connections(&self) -> usize {
        self.channels.len()
    }

    /// The deadline of a unary RPC.
    pub fn deadline(&self, rpc: Rpc) -> Duration {
        self.rpc_timeout.unwrap_or(match rpc {
            Rpc::CreateWriteStream => CREATE_WRITE_STREAM_DEADLINE,
            _ => UNARY_DEADLINE,
        })
    }

    /// The next channel of the pool, round robin.
    fn channel(&self) -> BigQueryWriteClient<Channel> {
        let index = self.next_channel.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        BigQueryWriteClient::new(self.channels[index].clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(usize::MAX)
    }

    /// Wraps a message with the routing header, the quota project and, for the real service,
    /// the bearer token.
    pub(crate) async fn request<T>(&self, message: T, routing: &str) -> Result<Request<T>> {
        let mut request = Request::new(message);
        let value = MetadataValue::try_from(routing).map_err(|_| Error::InvalidTableName {
            name: routing.into(),
            reason: "not valid in a request header".into(),
        })?;
        let metadata = request.metadata_mut();
        metadata.insert(ROUTING_HEADER, value);
        if let Some(project) = &self.quota_project {
            metadata.insert(QUOTA_PROJECT_HEADER, project.clone());
        }
        self.credentials.authorize(metadata).await?;
        Ok(request)
    }

    /// Runs one unary call under its deadline (sent as `grpc-timeout` and enforced here).
    async fn unary<Req, Resp, F, Fut>(
        &self,
        rpc: Rpc,
        entity: &str,
        routing: String,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        F: FnOnce(BigQueryWriteClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let deadline = self.deadline(rpc);
        let attempt = async {
            let mut request = self.request(message, &routing).await?;
            // The server learns the deadline (and may stop working when it passes), with a
            // margin so that the client's own deadline below decides first: tonic servers
            // answer an expired `grpc-timeout` with CANCELLED, which is not retried.
            request.set_timeout(deadline + GRPC_TIMEOUT_MARGIN);
            call(self.channel(), request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| Error::from_status(rpc, entity, status))
        };
        let span = rpc_span(rpc, entity);
        match tokio::time::timeout(deadline, attempt.instrument(span)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Unresponsive {
                rpc,
                entity: entity.to_string(),
                waited: deadline,
                in_flight: 0,
            }),
        }
    }

    /// The table's schema, from its `_default` stream in the FULL view.
    pub async fn table_schema(&self, table: &TableRef) -> Result<TableSchema> {
        let name = table.default_stream();
        let message = GetWriteStreamRequest {
            name: name.clone(),
            view: WriteStreamView::Full as i32,
        };
        let stream = self
            .unary(
                Rpc::GetWriteStream,
                &name,
                format!("name={name}"),
                message,
                |mut grpc, r| async move { grpc.get_write_stream(r).await },
            )
            .await
            .map_err(|e| match e {
                // The `_default` stream exists for every table: not finding it means no table.
                Error::Rpc { rpc, status, .. } if status.code() == tonic::Code::NotFound => Error::TableNotFound {
                    table: table.to_string(),
                    rpc,
                    status,
                },
                other => name_table(other, table),
            })?;
        stream.table_schema.ok_or_else(|| Error::Schema {
            table: table.to_string(),
            message: "the service returned no table schema".into(),
        })
    }

    /// Creates a write stream of the given type on the table.
    pub async fn create_write_stream(&self, table: &TableRef, kind: StreamType) -> Result<WriteStream> {
        let parent = table.resource_path();
        let message = CreateWriteStreamRequest {
            parent: parent.clone(),
            write_stream: Some(WriteStream {
                r#type: kind as i32,
                ..Default::default()
            }),
        };
        self.unary(
            Rpc::CreateWriteStream,
            &parent,
            format!("parent={parent}"),
            message,
            |mut grpc, r| async move { grpc.create_write_stream(r).await },
        )
        .await
        .map_err(|e| name_table(e, table))
    }

    /// Finalizes a stream; returns the service's row count.
    pub async fn finalize_write_stream(&self, stream: &str) -> Result<i64> {
        let message = FinalizeWriteStreamRequest {
            name: stream.to_string(),
        };
        let response = self
            .unary(
                Rpc::FinalizeWriteStream,
                stream,
                format!("name={stream}"),
                message,
                |mut grpc, r| async move { grpc.finalize_write_stream(r).await },
            )
            .await?;
        Ok(response.row_count)
    }

    /// Commits finalized PENDING streams atomically.
    pub async fn batch_commit_write_streams(
        &self,
        table: &TableRef,
        streams: Vec<String>,
    ) -> Result<BatchCommitWriteStreamsResponse> {
        let parent = table.resource_path();
        let message = BatchCommitWriteStreamsRequest {
            parent: parent.clone(),
            write_streams: streams,
        };
        self.unary(
            Rpc::BatchCommitWriteStreams,
            &parent,
            format!("parent={parent}"),
            message,
            |mut grpc, r| async move { grpc.batch_commit_write_streams(r).await },
        )
        .await
        .map_err(|e| name_table(e, table))
    }

    /// Reads a stream's state (BASIC view: no schema).
    pub async fn get_write_stream(&self, stream: &str) -> Result<WriteStream> {
        let message = GetWriteStreamRequest {
            name: stream.to_string(),
            view: WriteStreamView::Basic as i32,
        };
        self.unary(
            Rpc::GetWriteStream,
            stream,
            format!("name={stream}"),
            message,
            |mut grpc, r| async move { grpc.get_write_stream(r).await },
        )
        .await
    }

    /// Opens an AppendRows connection for one stream on the next channel of the pool; it
    /// keeps that channel for its life. A connection with requests in flight and no response
    /// for `response_timeout` fails with [`Error::Unresponsive`].
    pub fn append_connection(&self, stream: &str, response_timeout: Duration) -> AppendConnection {
        let index = self.next_append_channel.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        let channel = self.channels[index].clone();
        AppendConnection::new(self.clone(), channel, stream.to_string(), response_timeout)
    }
}

/// The span of one call, named after its RPC (span names are static).
fn rpc_span(rpc: Rpc, entity: &str) -> tracing::Span {
    match rpc {
        Rpc::CreateWriteStream => tracing::debug_span!("CreateWriteStream", table = %entity),
        Rpc::AppendRows => tracing::debug_span!("AppendRows", stream = %entity),
        Rpc::GetWriteStream => tracing::debug_span!("GetWriteStream", stream = %entity),
        Rpc::FinalizeWriteStream => tracing::debug_span!("FinalizeWriteStream", stream = %entity),
        Rpc::BatchCommitWriteStreams => tracing::debug_span!("BatchCommitWriteStreams", table = %entity),
        Rpc::FlushRows => tracing::debug_span!("FlushRows", stream = %entity),
    }
}

/// A table-level "not found" names the table as the user wrote it.
fn name_table(error: Error, table: &TableRef) -> Error {
    match error {
        Error::TableNotFound { rpc, status, .. } => Error::TableNotFound {
            table: table.to_string(),
            rpc,
            status,
        },
        other => other,
    }
}

/// The keepalive interval for a host: Java's minute for Google's front ends, otherwise
/// longer than grpc-core servers' default minimum. Pings go only while calls are open.
fn keepalive_interval(host: &str) -> Duration {
    if host == "googleapis.com" || host.ends_with(".googleapis.com") {
        GOOGLE_KEEPALIVE
    } else {
        OTHER_KEEPALIVE
    }
}

/// What an endpoint URL says about its transport.
pub(crate) struct EndpointKind {
    /// `https://`: TLS with verified roots and Google credentials. `http://`: plaintext,
    /// never carrying a token, whatever the host (emulators).
    pub(crate) secure: bool,
    /// The host, for TLS's server name and keepalive rules.
    pub(crate) host: String,
}

/// Checks an endpoint (`https://host` or `http://host:port`) for every client, gRPC and REST,
/// so that the rule on which endpoints carry credentials has one home.
pub(crate) fn endpoint_kind(endpoint: &str) -> Result<EndpointKind> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: endpoint.into(),
        reason: reason.into(),
    };
    let uri: http::Uri = endpoint.parse().map_err(|_| invalid("not a URL"))?;
    let secure = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("expected http://host:port or https://host")),
    };
    let host = uri.host().ok_or_else(|| invalid("no host"))?.to_string();
    Ok(EndpointKind { secure, host })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_respects_grpc_core_servers_and_follows_java_at_google() {
        assert_eq!(keepalive_interval("bigquerystorage.googleapis.com"), GOOGLE_KEEPALIVE);
        assert!(keepalive_interval("127.0.0.1") > Duration::from_secs(300));
        assert!(keepalive_interval("evilgoogleapis.com") > Duration::from_secs(300));
    }

    #[tokio::test]
    async fn a_lazy_client_connects_at_its_first_call() {
        let client = WriteClient::connect_lazily(&ClientConfig::new("http://127.0.0.1:1")).expect("nothing to do yet");
        let err = client
            .with_rpc_timeout(Some(Duration::from_secs(5)))
            .get_write_stream("projects/p/datasets/d/tables/t/streams/s")
            .await
            .expect_err("nothing listens");
        assert!(err.is_retryable(), "{err}");
    }

    #[tokio::test]
    async fn an_endpoint_that_does_not_answer_is_named() {
        let client = WriteClient::connect_with(&ClientConfig::new("http://127.0.0.1:1").with_connections(2)).await;
        // Nothing listens on port 1: the first channel fails to connect, with the endpoint named.
        let err = client.expect_err("nothing listens");
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains("http://127.0.0.1:1"), "{err}");
        assert!(err.is_retryable());
    }
}
