//! One AppendRows connection: a bidirectional gRPC stream to one write stream, on one channel
//! of the pool. Requests go out as they are sent; a reader task hands the responses back, one
//! per request, in order, and reports how the call ended. A watchdog bounds every wait: with
//! requests in flight and no response for the response timeout, the connection is reported
//! unresponsive.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::Instrument;

use super::WriteClient;
use super::request::{AppendCodec, AppendRequest};
use crate::encode::{EncodedRows, WriterSchema};
use crate::error::{Error, Result};
use crate::proto::AppendRowsResponse;
use crate::proto::append_rows_request::MissingValueInterpretation;
use crate::rpc::Rpc;

/// Requests buffered between the caller and the HTTP/2 stream.
const SEND_BUFFER: usize = 16;

/// What the reader task reports.
enum Event {
    Response(AppendRowsResponse),
    /// The call ended: cleanly (`None`) or with a status.
    Ended(Option<tonic::Status>),
}

/// An open call.
struct Open {
    sender: mpsc::Sender<AppendRequest>,
    events: mpsc::UnboundedReceiver<Event>,
    reader: JoinHandle<()>,
    /// When each unanswered request was handed to the connection, oldest first.
    unanswered: VecDeque<Instant>,
    /// When the connection last made progress (opened, or answered a request).
    last_progress: Instant,
}

impl Drop for Open {
    fn drop(&mut self) {
        // Ends the call (RST_STREAM CANCEL) even if the server never answers again.
        self.reader.abort();
    }
}

/// What every request of a connection carries besides its rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestTemplate {
    /// Sent on the first request of each connection.
    pub(crate) trace_id: String,
    /// `default_missing_value_interpretation` of every request (unset: NULL).
    pub(crate) missing_values: Option<MissingValueInterpretation>,
}

/// An AppendRows connection to one write stream. The first request carries the writer
/// schema and the trace id; every request names the stream (some servers require it).
pub struct AppendConnection {
    client: WriteClient,
    channel: Channel,
    stream: String,
    response_timeout: Duration,
    template: RequestTemplate,
    open: Option<Open>,
    /// Responses received on the latest call, kept after it ended.
    answered: u64,
}

impl AppendConnection {
    pub(crate) fn new(client: WriteClient, channel: Channel, stream: String, response_timeout: Duration) -> Self {
        Self {
            client,
            channel,
            stream,
            response_timeout,
            template: RequestTemplate::default(),
            open: None,
            answered: 0,
        }
    }

    /// Sets what every request carries besides rows.
    pub(crate) fn with_template(mut self, template: RequestTemplate) -> Self {
        self.template = template;
        self
    }

    /// The write stream this connection appends to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Responses received on the latest call, also after it ended (0 before any).
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Requests sent on the current call and not yet answered.
    pub fn unanswered(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.unanswered.len())
    }

    /// When the watchdog gives up waiting on the current call.
    fn deadline(&self) -> Instant {
        let now = Instant::now();
        let since = self.open.as_ref().map_or(now, |o| match o.unanswered.front() {
            Some(oldest) => (*oldest).max(o.last_progress),
            None => now,
        });
        since + self.response_timeout
    }

    fn unresponsive(&self) -> Error {
        Error::Unresponsive {
            rpc: Rpc::AppendRows,
            entity: self.stream.clone(),
            waited: self.response_timeout,
            in_flight: self.unanswered(),
        }
    }

    /// The next response if one has already arrived, without waiting: `None` when none is
    /// waiting (or no call is open). An error means the call ended.
    pub fn try_next_response(&mut self) -> Option<Result<AppendRowsResponse>> {
        let open = self.open.as_mut()?;
        let event = match open.events.try_recv() {
            Ok(event) => Some(event),
            Err(mpsc::error::TryRecvError::Empty) => return None,
            Err(mpsc::error::TryRecvError::Disconnected) => None,
        };
        Some(self.take(event))
    }

    /// Accounts one event of the reader task.
    fn take(&mut self, event: Option<Event>) -> Result<AppendRowsResponse> {
        match event {
            Some(Event::Response(response)) => {
                if let Some(open) = self.open.as_mut() {
                    open.unanswered.pop_front();
                    open.last_progress = Instant::now();
                }
                self.answered += 1;
                Ok(response)
            }
            Some(Event::Ended(status)) => {
                let error = self.ended(status);
                self.open = None;
                Err(error)
            }
            None => {
                let error = self.ended(None);
                self.open = None;
                Err(error)
            }
        }
    }

    fn ended(&self, status: Option<tonic::Status>) -> Error {
        match status {
            Some(status) => Error::from_status(Rpc::AppendRows, &self.stream, status),
            None => Error::Disconnected {
                stream: self.stream.clone(),
                in_flight: self.unanswered(),
            },
        }
    }

    /// Sends rows at `offset` (`None` on the `_default` stream). Does not wait for the
    /// response. The writer schema goes with the first request of a call, and with every
    /// request when `always_schema` is set (resends after a reconnect, where a server may
    /// refuse the first one for its offset before taking its schema).
    pub async fn send(
        &mut self,
        offset: Option<i64>,
        schema: &WriterSchema,
        rows: &EncodedRows,
        always_schema: bool,
    ) -> Result<()> {
        let first = self.open.is_none();
        let request = AppendRequest {
            write_stream: self.stream.clone(),
            offset,
            writer_schema: (first || always_schema).then(|| schema.clone()),
            rows: rows.payload().clone(),
            trace_id: if first {
                self.template.trace_id.clone()
            } else {
                String::new()
            },
            missing_values: self.template.missing_values.map_or(0, |m| m as i32),
        };
        tracing::trace!(stream = %self.stream, offset = offset.unwrap_or(-1), "AppendRows request");
        if first {
            return self.open_with(request).await;
        }
        let deadline = self.deadline();
        let unresponsive = self.unresponsive();
        let Some(open) = self.open.as_mut() else {
            return Err(Error::Internal("AppendRows connection not open".into()));
        };
        match tokio::time::timeout_at(deadline.into(), open.sender.send(request)).await {
            Ok(Ok(())) => {
                open.unanswered.push_back(Instant::now());
                Ok(())
            }
            // The call ended; the reader reports how with the next response.
            Ok(Err(_)) => {
                open.unanswered.push_back(Instant::now());
                Ok(())
            }
            Err(_) => Err(unresponsive),
        }
    }

    /// Opens a call whose first request is `request`.
    async fn open_with(&mut self, request: AppendRequest) -> Result<()> {
        let (sender, receiver) = mpsc::channel(SEND_BUFFER);
        sender
            .try_send(request)
            .map_err(|_| Error::Internal("could not queue the first request".into()))?;
        let routing = format!("write_stream={}", self.stream);
        let call = match tokio::time::timeout(
            self.response_timeout,
            self.client.request(ReceiverStream::new(receiver), &routing),
        )
        .await
        {
            Ok(call) => call?,
            Err(_) => return Err(self.unresponsive()),
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(super::MAX_RESPONSE_BYTES)
            .max_encoding_message_size(usize::MAX);
        let span = tracing::debug_span!("AppendRows", stream = %self.stream);
        let reader = tokio::spawn(
            async move {
                let ended = match append_rows(&mut grpc, call).await {
                    Err(status) => Some(status),
                    Ok(response) => {
                        let mut responses = response.into_inner();
                        loop {
                            match responses.message().await {
                                Ok(Some(response)) => {
                                    if events_tx.send(Event::Response(response)).is_err() {
                                        return;
                                    }
                                }
                                Ok(None) => break None,
                                Err(status) => break Some(status),
                            }
                        }
                    }
                };
                tracing::debug!(status = ?ended.as_ref().map(|s| s.code()), "AppendRows call ended");
                let _ = events_tx.send(Event::Ended(ended));
            }
            .instrument(span),
        );
        let now = Instant::now();
        self.answered = 0;
        self.open = Some(Open {
            sender,
            events,
            reader,
            unanswered: VecDeque::from([now]),
            last_progress: now,
        });
        Ok(())
    }

    /// Waits for the next response, at most until the watchdog's deadline. An error means the
    /// call ended or went silent (the connection is then closed); a rejected request arrives
    /// as a response carrying `error`.
    pub async fn next_response(&mut self) -> Result<AppendRowsResponse> {
        let deadline = self.deadline();
        let unresponsive = self.unresponsive();
        let Some(open) = self.open.as_mut() else {
            return Err(Error::Internal(format!("no request was sent on {}", self.stream)));
        };
        let event = match tokio::time::timeout_at(deadline.into(), open.events.recv()).await {
            Ok(event) => event,
            Err(_) => {
                self.open = None;
                return Err(unresponsive);
            }
        };
        self.take(event)
    }

    /// Ends the current call, if any; the next request opens a new one.
    pub fn close(&mut self) {
        self.open = None;
    }
}

/// Starts an AppendRows call whose requests come from `call`, with [`AppendCodec`].
async fn append_rows(
    grpc: &mut tonic::client::Grpc<Channel>,
    call: tonic::Request<ReceiverStream<AppendRequest>>,
) -> std::result::Result<tonic::Response<tonic::codec::Streaming<AppendRowsResponse>>, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))?;
    let path = http::uri::PathAndQuery::from_static("/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows");
    let mut call = call;
    call.extensions_mut().insert(tonic::GrpcMethod::new(
        "google.cloud.bigquery.storage.v1.BigQueryWrite",
        "AppendRows",
    ));
    grpc.streaming(call, path, AppendCodec).await
}
