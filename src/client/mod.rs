//! The Storage Write API client: channel, credentials, routing header, and one method per RPC.
//! Knows nothing of DataFusion.

mod append;
mod auth;

use std::time::Duration;

use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tracing::Instrument;

pub use append::AppendConnection;
use auth::Credentials;

use crate::error::{Error, Result};
use crate::proto::big_query_write_client::BigQueryWriteClient;
use crate::proto::write_stream::Type as StreamType;
use crate::proto::{
    BatchCommitWriteStreamsRequest, BatchCommitWriteStreamsResponse, CreateWriteStreamRequest,
    FinalizeWriteStreamRequest, GetWriteStreamRequest, TableSchema, WriteStream, WriteStreamView,
};
use crate::table_ref::TableRef;

/// Largest response accepted (table schemas can be large).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Header through which the service routes a call to the right table or stream.
const ROUTING_HEADER: &str = "x-goog-request-params";

/// A connected Storage Write API client; cheap to clone (one shared HTTP/2 channel).
#[derive(Clone)]
pub struct WriteClient {
    endpoint: String,
    grpc: BigQueryWriteClient<Channel>,
    credentials: Credentials,
}

impl std::fmt::Debug for WriteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl WriteClient {
    /// Connects to `endpoint`. `https://` uses TLS with verified roots and Application Default
    /// Credentials; `http://` is plaintext and never carries a token, whatever the host
    /// (emulators). Every RPC runs in a `tracing` span named after it; tokens are never logged.
    pub async fn connect(endpoint: &str) -> Result<Self> {
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
        let mut channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|_| invalid("not a valid URI"))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let credentials = if secure {
            channel = channel
                .tls_config(ClientTlsConfig::new().with_webpki_roots().domain_name(host))
                .map_err(|e| invalid(&e.to_string()))?;
            Credentials::application_default(endpoint).await?
        } else {
            Credentials::None
        };
        let channel = channel.connect().await.map_err(|e| Error::Connect {
            endpoint: endpoint.to_string(),
            message: error_chain(&e),
        })?;
        let grpc = BigQueryWriteClient::new(channel)
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(usize::MAX);
        Ok(Self {
            endpoint: endpoint.to_string(),
            grpc,
            credentials,
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Wraps a message with the routing header and, for the real service, the bearer token.
    pub(crate) async fn request<T>(&self, message: T, routing: &str) -> Result<Request<T>> {
        let mut request = Request::new(message);
        let value = MetadataValue::try_from(routing).map_err(|_| Error::InvalidTableName {
            name: routing.into(),
            reason: "not valid in a request header".into(),
        })?;
        request.metadata_mut().insert(ROUTING_HEADER, value);
        self.credentials.authorize(request.metadata_mut()).await?;
        Ok(request)
    }

    /// The table's schema, from its `_default` stream in the FULL view.
    pub async fn table_schema(&self, table: &TableRef) -> Result<TableSchema> {
        let name = table.default_stream();
        let span = tracing::debug_span!("GetWriteStream", stream = %name);
        async {
            let request = self
                .request(
                    GetWriteStreamRequest {
                        name: name.clone(),
                        view: WriteStreamView::Full as i32,
                    },
                    &format!("name={name}"),
                )
                .await?;
            let stream = self
                .grpc
                .clone()
                .get_write_stream(request)
                .await
                .map_err(|s| self.status_error("GetWriteStream", table, &s))?;
            stream.into_inner().table_schema.ok_or_else(|| Error::Schema {
                table: table.to_string(),
                message: "the service returned no table schema".into(),
            })
        }
        .instrument(span)
        .await
    }

    /// Creates a write stream of the given type on the table.
    pub async fn create_write_stream(&self, table: &TableRef, kind: StreamType) -> Result<WriteStream> {
        let parent = table.resource_path();
        let span = tracing::debug_span!("CreateWriteStream", table = %parent);
        async {
            let message = CreateWriteStreamRequest {
                parent: parent.clone(),
                write_stream: Some(WriteStream {
                    r#type: kind as i32,
                    ..Default::default()
                }),
            };
            let request = self.request(message, &format!("parent={parent}")).await?;
            let stream = self
                .grpc
                .clone()
                .create_write_stream(request)
                .await
                .map_err(|s| self.status_error("CreateWriteStream", table, &s))?;
            Ok(stream.into_inner())
        }
        .instrument(span)
        .await
    }

    /// Finalizes a stream; returns the service's row count.
    pub async fn finalize_write_stream(&self, stream: &str) -> Result<i64> {
        let span = tracing::debug_span!("FinalizeWriteStream", stream = %stream);
        async {
            let request = self
                .request(
                    FinalizeWriteStreamRequest {
                        name: stream.to_string(),
                    },
                    &format!("name={stream}"),
                )
                .await?;
            let response = self
                .grpc
                .clone()
                .finalize_write_stream(request)
                .await
                .map_err(|s| Error::from_status("FinalizeWriteStream", stream, &s))?;
            Ok(response.into_inner().row_count)
        }
        .instrument(span)
        .await
    }

    /// Commits finalized PENDING streams atomically.
    pub async fn batch_commit_write_streams(
        &self,
        table: &TableRef,
        streams: Vec<String>,
    ) -> Result<BatchCommitWriteStreamsResponse> {
        let parent = table.resource_path();
        let span = tracing::debug_span!("BatchCommitWriteStreams", table = %parent, streams = streams.len());
        async {
            let request = self
                .request(
                    BatchCommitWriteStreamsRequest {
                        parent: parent.clone(),
                        write_streams: streams,
                    },
                    &format!("parent={parent}"),
                )
                .await?;
            let response = self
                .grpc
                .clone()
                .batch_commit_write_streams(request)
                .await
                .map_err(|s| self.status_error("BatchCommitWriteStreams", table, &s))?;
            Ok(response.into_inner())
        }
        .instrument(span)
        .await
    }

    /// Reads a stream's state (BASIC view: no schema).
    pub async fn get_write_stream(&self, stream: &str) -> Result<WriteStream> {
        let span = tracing::debug_span!("GetWriteStream", stream = %stream);
        async {
            let request = self
                .request(
                    GetWriteStreamRequest {
                        name: stream.to_string(),
                        view: WriteStreamView::Basic as i32,
                    },
                    &format!("name={stream}"),
                )
                .await?;
            let response = self
                .grpc
                .clone()
                .get_write_stream(request)
                .await
                .map_err(|s| Error::from_status("GetWriteStream", stream, &s))?;
            Ok(response.into_inner())
        }
        .instrument(span)
        .await
    }

    /// Opens an AppendRows connection for one stream.
    pub fn append_connection(&self, stream: &str) -> AppendConnection {
        AppendConnection::new(self.clone(), stream.to_string())
    }

    fn status_error(&self, rpc: &'static str, table: &TableRef, status: &tonic::Status) -> Error {
        if status.code() == tonic::Code::Unavailable && is_transport_failure(status) {
            return Error::Connect {
                endpoint: self.endpoint.clone(),
                message: status.message().to_string(),
            };
        }
        match Error::from_status(rpc, &table.resource_path(), status) {
            Error::TableNotFound { message, .. } => Error::TableNotFound {
                table: table.to_string(),
                message,
            },
            other => other,
        }
    }
}

/// True if a status reports that the connection failed rather than the service refusing.
fn is_transport_failure(status: &tonic::Status) -> bool {
    let message = status.message().to_ascii_lowercase();
    message.contains("transport") || message.contains("connect") || message.contains("connection")
}

/// An error and its sources on one line.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
