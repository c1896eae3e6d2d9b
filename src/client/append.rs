//! One AppendRows connection: a bidirectional gRPC stream to one write stream. Requests go
//! out as they are sent; responses come back one per request, in order.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tracing::Instrument;

use super::WriteClient;
use crate::error::{Error, Result};
use crate::proto::append_rows_request::{ProtoData, Rows};
use crate::proto::descriptor::DescriptorProto;
use crate::proto::{AppendRowsRequest, AppendRowsResponse, ProtoRows, ProtoSchema};

/// Requests buffered between the caller and the HTTP/2 stream.
const SEND_BUFFER: usize = 16;

/// An AppendRows connection to one write stream. The first request carries the writer schema;
/// every request names the stream (some servers require it).
pub struct AppendConnection {
    client: WriteClient,
    stream: String,
    open: Option<(mpsc::Sender<AppendRowsRequest>, Streaming<AppendRowsResponse>)>,
}

impl AppendConnection {
    pub(crate) fn new(client: WriteClient, stream: String) -> Self {
        Self {
            client,
            stream,
            open: None,
        }
    }

    /// The write stream this connection appends to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Sends rows at `offset` (`None` on the `_default` stream). Does not wait for the response.
    /// The writer schema goes with the first request of the connection, and with every request
    /// when `always_schema` is set (resends after a reconnect, where a server may refuse the
    /// first one for its offset before taking its schema).
    pub async fn send(
        &mut self,
        offset: Option<i64>,
        descriptor: &DescriptorProto,
        rows: Vec<Bytes>,
        always_schema: bool,
    ) -> Result<()> {
        let first = self.open.is_none() || always_schema;
        let request = AppendRowsRequest {
            write_stream: self.stream.clone(),
            offset,
            rows: Some(Rows::ProtoRows(ProtoData {
                writer_schema: first.then(|| ProtoSchema {
                    proto_descriptor: Some(descriptor.clone()),
                }),
                rows: Some(ProtoRows { serialized_rows: rows }),
            })),
            ..Default::default()
        };
        let failed = |message: String| Error::Append {
            stream: self.stream.clone(),
            offset: offset.unwrap_or(-1),
            code: tonic::Code::Unavailable,
            message,
        };
        tracing::trace!(stream = %self.stream, offset = offset.unwrap_or(-1), "AppendRows request");
        match &self.open {
            Some((sender, _)) => {
                if sender.send(request).await.is_err() {
                    return Err(failed("the AppendRows connection closed".into()));
                }
            }
            None => {
                let (sender, receiver) = mpsc::channel(SEND_BUFFER);
                sender
                    .send(request)
                    .await
                    .map_err(|_| failed("could not queue the first request".into()))?;
                let span = tracing::debug_span!("AppendRows", stream = %self.stream, offset = offset.unwrap_or(-1));
                let responses = async {
                    let call = self
                        .client
                        .request(ReceiverStream::new(receiver), &format!("write_stream={}", self.stream))
                        .await?;
                    self.client
                        .grpc
                        .clone()
                        .append_rows(call)
                        .await
                        .map_err(|s| Error::from_status("AppendRows", &self.stream, &s))
                }
                .instrument(span)
                .await?
                .into_inner();
                self.open = Some((sender, responses));
            }
        }
        Ok(())
    }

    /// Waits for the next response. An error here means the connection itself failed;
    /// a rejected request arrives as a response carrying `error`.
    pub async fn next_response(&mut self) -> Result<AppendRowsResponse> {
        let stream = self.stream.clone();
        let Some((_, responses)) = self.open.as_mut() else {
            return Err(Error::Internal(format!("no request was sent on {stream}")));
        };
        match responses.message().await {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(Error::Rpc {
                rpc: "AppendRows",
                entity: stream,
                code: tonic::Code::Unavailable,
                message: "the server closed the connection with requests unanswered".into(),
            }),
            Err(status) => Err(Error::from_status("AppendRows", &stream, &status)),
        }
    }

    /// Closes the request side; the server then ends the call.
    pub fn close(&mut self) {
        self.open = None;
    }
}
