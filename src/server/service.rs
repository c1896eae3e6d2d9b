//! The `BigQueryWrite` gRPC service of the embedded server.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::arrow_rows::ArrowDecoder;
use super::behaviour::{
    Behaviour, CloseMode, allocation_quota, arrow_rows_refused, every, idle_close_status, stream_creation_quota,
    throughput_quota,
};
use super::decode::{DecodeError, RowDecoder};
use super::defaults::Interpretation;
use super::digest::RowDigest;
use super::faults::{AppendFault, ClientsSeen, Counters, Faults, Rpc, RpcFault};
use super::state::{Digests, Rejection, Retention, Store, split_stream_name};
use crate::proto::append_rows_request::Rows;
use crate::proto::append_rows_response::{AppendResult, Response as AppendOutcome};
use crate::proto::big_query_write_server::BigQueryWrite;
use crate::proto::storage_error::StorageErrorCode;
use crate::proto::write_stream::Type as StreamType;
use crate::proto::*;

/// Shared state of the server.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) counters: Counters,
    pub(crate) faults: Faults,
    pub(crate) behaviour: Behaviour,
    pub(crate) clients: Mutex<ClientsSeen>,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves the store consistent enough for tests to read.
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The service; cheap to clone.
#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) shared: Arc<Shared>,
    pub(crate) retention: Retention,
    pub(crate) digests: Digests,
}

/// Requires the routing header to start with `key=`.
fn check_routing<T>(request: &Request<T>, key: &str) -> Result<(), Status> {
    let value = request
        .metadata()
        .get("x-goog-request-params")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if value.split('&').any(|part| part.starts_with(&format!("{key}="))) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "missing x-goog-request-params routing header with {key}="
        )))
    }
}

/// Per-connection state of AppendRows.
#[derive(Default)]
struct Connection {
    stream: String,
    decoder: Option<Decoder>,
}

/// The decoder bound to a connection by the writer schema it was sent.
enum Decoder {
    Proto(descriptor::DescriptorProto, Arc<RowDecoder>),
    Arrow(bytes::Bytes, Arc<ArrowDecoder>),
}

/// The rejection of a writer schema or of rows that do not fit the table.
fn decode_rejection(stream: &str, error: DecodeError) -> Rejection {
    match error {
        DecodeError::ExtraField(field) => Rejection::storage(
            Code::InvalidArgument,
            StorageErrorCode::SchemaMismatchExtraFields,
            stream,
            format!("writer schema field {field} is not a column of the table"),
        ),
        DecodeError::Row { index, message } => {
            Rejection::new(Code::InvalidArgument, format!("row {index} of the request: {message}"))
        }
        DecodeError::Schema(m) => Rejection::new(Code::InvalidArgument, m),
    }
}

impl Service {
    /// Answers one request; `injected` replaces the outcome with an injected error.
    fn handle_append(
        &self,
        connection: &mut Connection,
        request: AppendRowsRequest,
        injected: Option<Rejection>,
    ) -> AppendRowsResponse {
        let counters = &self.shared.counters;
        let size = request.encoded_len();
        counters.largest_append_bytes.fetch_max(size as u64, Ordering::SeqCst);

        if !request.write_stream.is_empty() {
            connection.stream = request.write_stream.clone();
        }
        if !request.trace_id.is_empty()
            && let Ok(mut clients) = self.shared.clients.lock()
        {
            clients.trace_ids.insert(request.trace_id.clone());
        }
        let stream = connection.stream.clone();
        let outcome = match (self.bind_writer_schema(connection, &request), injected) {
            (Err(rejection), _) => Err(rejection),
            (Ok(()), Some(rejection)) => Err(rejection),
            (Ok(()), None) => self.append(connection, request, size),
        };
        AppendRowsResponse {
            response: Some(match outcome {
                Ok(offset) => AppendOutcome::AppendResult(AppendResult { offset }),
                Err(rejection) => AppendOutcome::Error(rejection.to_rpc_status()),
            }),
            write_stream: stream,
            ..Default::default()
        }
    }

    /// A response rejecting the request's second row (an injected row error).
    fn row_error_response(&self, connection: &Connection) -> AppendRowsResponse {
        AppendRowsResponse {
            response: Some(AppendOutcome::Error(
                Rejection::new(Code::InvalidArgument, "rows rejected (injected fault)").to_rpc_status(),
            )),
            row_errors: vec![RowError {
                index: 1,
                code: row_error::RowErrorCode::FieldsError as i32,
                message: "value rejected (injected fault)".into(),
            }],
            write_stream: connection.stream.clone(),
            ..Default::default()
        }
    }

    /// Binds the writer schema a request carries to the connection (before anything else,
    /// so that a request refused for its offset still sets up the connection).
    fn bind_writer_schema(&self, connection: &mut Connection, request: &AppendRowsRequest) -> Result<(), Rejection> {
        if matches!(request.rows, Some(Rows::ArrowRows(_))) && self.shared.behaviour.refuse_arrow_rows {
            return Err(arrow_rows_refused());
        }
        let name = connection.stream.clone();
        let table = || {
            let store = self.shared.store();
            let (table_path, _) = split_stream_name(&name)
                .ok_or_else(|| Rejection::new(Code::InvalidArgument, format!("not a write stream name: {name}")))?;
            let table = store.table(table_path)?;
            Ok::<_, Rejection>((table.schema.clone(), table.arrow.clone()))
        };
        match &request.rows {
            Some(Rows::ProtoRows(data)) => {
                let Some(descriptor) = data.writer_schema.as_ref().and_then(|s| s.proto_descriptor.as_ref()) else {
                    return Ok(());
                };
                if matches!(&connection.decoder, Some(Decoder::Proto(known, _)) if known == descriptor) {
                    return Ok(());
                }
                let (schema, arrow) = table()?;
                let decoder = RowDecoder::new(descriptor, &schema, arrow).map_err(|e| decode_rejection(&name, e))?;
                connection.decoder = Some(Decoder::Proto(descriptor.clone(), Arc::new(decoder)));
            }
            Some(Rows::ArrowRows(data)) => {
                let Some(serialized) = data.writer_schema.as_ref().map(|s| &s.serialized_schema) else {
                    return Ok(());
                };
                if matches!(&connection.decoder, Some(Decoder::Arrow(known, _)) if known == serialized) {
                    return Ok(());
                }
                let (schema, arrow) = table()?;
                let decoder = ArrowDecoder::new(serialized, &schema, arrow).map_err(|e| decode_rejection(&name, e))?;
                connection.decoder = Some(Decoder::Arrow(serialized.clone(), Arc::new(decoder)));
            }
            None => {}
        }
        Ok(())
    }

    fn append(
        &self,
        connection: &mut Connection,
        request: AppendRowsRequest,
        size: usize,
    ) -> Result<Option<i64>, Rejection> {
        if connection.stream.is_empty() {
            return Err(Rejection::new(
                Code::InvalidArgument,
                "the first request must name write_stream",
            ));
        }
        let limit = self.shared.behaviour.max_request_bytes;
        if size >= limit {
            return Err(Rejection::new(
                Code::InvalidArgument,
                format!("AppendRows request of {size} bytes is larger than the limit of {limit} bytes"),
            ));
        }
        let missing = Interpretation::new(
            request.default_missing_value_interpretation,
            &request.missing_value_interpretations,
        );
        let name = connection.stream.clone();
        let offset = request.offset;
        self.shared.store().check_append(&name, offset)?;
        let no_schema = || {
            Rejection::new(
                Code::InvalidArgument,
                "the first request of a connection must carry writer_schema, in the format of its rows",
            )
        };
        let (batch, digest) = match (request.rows, &connection.decoder) {
            (Some(Rows::ProtoRows(data)), Some(Decoder::Proto(_, decoder))) => {
                let rows = data.rows.map(|r| r.serialized_rows).unwrap_or_default();
                let mut digest = RowDigest::default();
                match self.digests {
                    Digests::On => digest.add_all(rows.iter().map(|row| row.as_ref())),
                    Digests::Off => digest.count(rows.len() as u64, rows.iter().map(|row| row.len() as u64).sum()),
                }
                let batch = match self.retention {
                    Retention::Discard => None,
                    Retention::Keep => Some(
                        decoder
                            .decode(&rows, &missing)
                            .map_err(|e| decode_rejection(&name, e))?,
                    ),
                };
                (batch, digest)
            }
            (Some(Rows::ArrowRows(data)), Some(Decoder::Arrow(_, decoder))) => {
                let message = data.rows.map(|r| r.serialized_record_batch).unwrap_or_default();
                // Discarded rows are decoded and checked all the same.
                let (batch, digest) = decoder
                    .decode(&message, &missing, self.digests)
                    .map_err(|e| decode_rejection(&name, e))?;
                ((self.retention == Retention::Keep).then_some(batch), digest)
            }
            (None, _) => return Err(Rejection::new(Code::InvalidArgument, "the request carries no rows")),
            _ => return Err(no_schema()),
        };
        let at = self.shared.store().append(&name, offset, batch, digest)?;
        let counters = &self.shared.counters;
        counters.rows_appended.fetch_add(digest.rows, Ordering::SeqCst);
        counters.row_bytes_appended.fetch_add(digest.bytes, Ordering::SeqCst);
        Ok(offset.map(|_| at))
    }
}

type AppendStream = Pin<Box<dyn Stream<Item = Result<AppendRowsResponse, Status>> + Send + 'static>>;

impl Service {
    /// Runs a unary call's `work` under the faults planned for `rpc`.
    async fn unary<T>(&self, rpc: Rpc, work: impl FnOnce() -> Result<T, Status>) -> Result<Response<T>, Status> {
        let injected = |code| Status::new(code, format!("injected fault on {rpc:?}"));
        match self.shared.faults.rpc_fault(rpc) {
            Some(RpcFault::Fail(code)) => Err(injected(code)),
            Some(RpcFault::ApplyThenFail(code)) => {
                let _ = work();
                Err(injected(code))
            }
            Some(RpcFault::StreamQuota) => {
                self.shared.counters.throttled.fetch_add(1, Ordering::SeqCst);
                Err(stream_creation_quota("the table").to_status())
            }
            Some(RpcFault::Hang) => {
                // The client's deadline drops this call, and this future with it.
                std::future::pending::<()>().await;
                Err(injected(Code::Internal))
            }
            None => work().map(Response::new),
        }
    }

    fn create(&self, request: CreateWriteStreamRequest) -> Result<WriteStream, Status> {
        let kind = request
            .write_stream
            .and_then(|s| StreamType::try_from(s.r#type).ok())
            .unwrap_or(StreamType::Unspecified);
        let behaviour = &self.shared.behaviour;
        let number = self.shared.counters.create_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if every(behaviour.stream_quota_every, number) {
            self.shared.counters.throttled.fetch_add(1, Ordering::SeqCst);
            return Err(stream_creation_quota(&request.parent).to_status());
        }
        let mut store = self.shared.store();
        if let Some(delay) = behaviour.table_visibility_delay
            && store
                .tables
                .get(&request.parent)
                .is_some_and(|t| t.created.elapsed() < delay)
        {
            // Table metadata reaches the Storage Write API some time after a create.
            return Err(Rejection::storage(
                Code::NotFound,
                StorageErrorCode::TableNotFound,
                &request.parent,
                format!("Table {} not found", request.parent),
            )
            .to_status());
        }
        let stream = store.create_stream(&request.parent, kind).map_err(|r| r.to_status())?;
        self.shared.counters.streams_created.fetch_add(1, Ordering::SeqCst);
        Ok(stream)
    }

    fn commit(&self, request: BatchCommitWriteStreamsRequest) -> Result<BatchCommitWriteStreamsResponse, Status> {
        let outcome = self
            .shared
            .store()
            .batch_commit(&request.parent, &request.write_streams)
            .map_err(|r| r.to_status())?;
        Ok(match outcome {
            Ok(time) => {
                self.shared.counters.commits.fetch_add(1, Ordering::SeqCst);
                BatchCommitWriteStreamsResponse {
                    commit_time: Some(time),
                    stream_errors: Vec::new(),
                }
            }
            Err(stream_errors) => BatchCommitWriteStreamsResponse {
                commit_time: None,
                stream_errors,
            },
        })
    }

    /// Serves one AppendRows connection: reads requests, answers each in order, applies the
    /// faults planned for them and the behaviours switched on (idle close, connection limit,
    /// throttling).
    async fn serve_appends(
        self,
        mut incoming: Streaming<AppendRowsRequest>,
        responses: mpsc::Sender<Result<AppendRowsResponse, Status>>,
    ) {
        let behaviour = &self.shared.behaviour;
        let mut connection = Connection::default();
        let (mut requests, mut bytes) = (0u64, 0u64);
        let mut hung = false;
        loop {
            let next = match behaviour.idle_close {
                Some(idle) if !hung => match tokio::time::timeout(idle, incoming.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.shared.counters.connections_closed.fetch_add(1, Ordering::SeqCst);
                        let _ = responses.send(Err(idle_close_status(idle))).await;
                        break;
                    }
                },
                _ => incoming.next().await,
            };
            let Some(Ok(request)) = next else { break };
            let delay = self.shared.faults.append_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let number = self.shared.counters.append_requests.fetch_add(1, Ordering::SeqCst) + 1;
            if matches!(request.rows, Some(Rows::ArrowRows(_))) {
                self.shared.counters.arrow_requests.fetch_add(1, Ordering::SeqCst);
            }
            if hung {
                continue;
            }
            requests += 1;
            bytes += request.encoded_len() as u64;
            let limit = behaviour.connection_limit.filter(|l| l.reached(requests, bytes));
            if limit.is_some_and(|l| l.close == CloseMode::Abrupt) {
                self.shared.counters.connections_closed.fetch_add(1, Ordering::SeqCst);
                let _ = responses
                    .send(Err(Status::unavailable(
                        "the connection is being closed (connection limit)",
                    )))
                    .await;
                break;
            }
            let reset = || Err(Status::unavailable("connection reset (injected fault)"));
            let quota = |this: &Self, rejection: Rejection| {
                this.shared.counters.throttled.fetch_add(1, Ordering::SeqCst);
                Some(rejection)
            };
            let response = match self.shared.faults.append_fault(number) {
                Some(AppendFault::Cut) => {
                    let _ = responses.send(reset()).await;
                    break;
                }
                Some(AppendFault::Drain) => break,
                Some(AppendFault::CutAfter) => {
                    let _ = self.handle_append(&mut connection, request, None);
                    let _ = responses.send(reset()).await;
                    break;
                }
                Some(AppendFault::Hang) => {
                    hung = true;
                    continue;
                }
                Some(AppendFault::Fail(code)) => {
                    self.handle_append(&mut connection, request, Some(Rejection::new(code, "injected fault")))
                }
                Some(AppendFault::RowError) => {
                    if !request.write_stream.is_empty() {
                        connection.stream = request.write_stream.clone();
                    }
                    let _ = self.bind_writer_schema(&mut connection, &request);
                    self.row_error_response(&connection)
                }
                Some(AppendFault::Throttle) => {
                    let rejection = quota(&self, throughput_quota(&request.write_stream));
                    self.handle_append(&mut connection, request, rejection)
                }
                Some(AppendFault::QuotaExceeded) => {
                    let rejection = quota(&self, allocation_quota(&request.write_stream));
                    self.handle_append(&mut connection, request, rejection)
                }
                None if every(behaviour.throttle_every, number) => {
                    let rejection = quota(&self, throughput_quota(&request.write_stream));
                    self.handle_append(&mut connection, request, rejection)
                }
                None => self.handle_append(&mut connection, request, None),
            };
            if responses.send(Ok(response)).await.is_err() {
                break;
            }
            if limit.is_some() {
                // Graceful: the request that reached the limit was answered; end cleanly.
                self.shared.counters.connections_closed.fetch_add(1, Ordering::SeqCst);
                break;
            }
        }
    }
}

#[tonic::async_trait]
impl BigQueryWrite for Service {
    async fn create_write_stream(
        &self,
        request: Request<CreateWriteStreamRequest>,
    ) -> Result<Response<WriteStream>, Status> {
        check_routing(&request, "parent")?;
        self.unary(Rpc::CreateWriteStream, || self.create(request.into_inner()))
            .await
    }

    type AppendRowsStream = AppendStream;

    async fn append_rows(
        &self,
        request: Request<Streaming<AppendRowsRequest>>,
    ) -> Result<Response<Self::AppendRowsStream>, Status> {
        if !self.shared.behaviour.accept_unrouted_appends {
            check_routing(&request, "write_stream")?;
        }
        if let Some(agent) = request.metadata().get("user-agent").and_then(|v| v.to_str().ok())
            && let Ok(mut clients) = self.shared.clients.lock()
        {
            clients.user_agents.insert(agent.to_string());
        }
        let (responses, outgoing) = mpsc::channel(64);
        let peer = request.remote_addr();
        let service = self.clone();
        tokio::spawn(async move {
            service.shared.counters.append_call(peer, true);
            let shared = service.shared.clone();
            service.serve_appends(request.into_inner(), responses).await;
            shared.counters.append_call(peer, false);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(outgoing))))
    }

    async fn get_write_stream(&self, request: Request<GetWriteStreamRequest>) -> Result<Response<WriteStream>, Status> {
        check_routing(&request, "name")?;
        let request = request.into_inner();
        let full = request.view == WriteStreamView::Full as i32;
        self.unary(Rpc::GetWriteStream, || {
            self.shared
                .store()
                .describe_stream(&request.name, full)
                .map_err(|r| r.to_status())
        })
        .await
    }

    async fn finalize_write_stream(
        &self,
        request: Request<FinalizeWriteStreamRequest>,
    ) -> Result<Response<FinalizeWriteStreamResponse>, Status> {
        check_routing(&request, "name")?;
        let name = request.into_inner().name;
        self.unary(Rpc::FinalizeWriteStream, || {
            let row_count = self.shared.store().finalize(&name).map_err(|r| r.to_status())?;
            Ok(FinalizeWriteStreamResponse { row_count })
        })
        .await
    }

    async fn batch_commit_write_streams(
        &self,
        request: Request<BatchCommitWriteStreamsRequest>,
    ) -> Result<Response<BatchCommitWriteStreamsResponse>, Status> {
        check_routing(&request, "parent")?;
        if let Some(gate) = self.shared.faults.commit_gate() {
            gate.pass().await;
        }
        let answer = self
            .unary(Rpc::BatchCommitWriteStreams, || self.commit(request.into_inner()))
            .await;
        if let Some(gate) = self.shared.faults.commit_reply_gate() {
            gate.pass().await;
        }
        answer
    }

    async fn flush_rows(&self, request: Request<FlushRowsRequest>) -> Result<Response<FlushRowsResponse>, Status> {
        check_routing(&request, "write_stream")?;
        let request = request.into_inner();
        let offset = request
            .offset
            .ok_or_else(|| Status::invalid_argument("offset is required"))?;
        let offset = self
            .shared
            .store()
            .flush(&request.write_stream, offset)
            .map_err(|r| r.to_status())?;
        Ok(Response::new(FlushRowsResponse { offset }))
    }
}
