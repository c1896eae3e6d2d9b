//! The `BigQueryWrite` gRPC service of the embedded server.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::decode::{DecodeError, RowDecoder};
use super::faults::{Counters, Faults};
use super::state::{Rejection, Store, split_stream_name};
use crate::proto::append_rows_request::Rows;
use crate::proto::append_rows_response::{AppendResult, Response as AppendOutcome};
use crate::proto::big_query_write_server::BigQueryWrite;
use crate::proto::storage_error::StorageErrorCode;
use crate::proto::write_stream::Type as StreamType;
use crate::proto::*;

/// Largest AppendRows request accepted, as the public service (10 MiB).
pub(crate) const MAX_APPEND_BYTES: usize = 10 * 1024 * 1024;

/// Shared state of the server.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) counters: Counters,
    pub(crate) faults: Faults,
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
    decoder: Option<(descriptor::DescriptorProto, Arc<RowDecoder>)>,
}

impl Service {
    fn handle_append(&self, connection: &mut Connection, request: AppendRowsRequest) -> AppendRowsResponse {
        let counters = &self.shared.counters;
        let number = counters.append_requests.fetch_add(1, Ordering::SeqCst) + 1;
        let size = request.encoded_len();
        counters.largest_append_bytes.fetch_max(size as u64, Ordering::SeqCst);
        if !request.write_stream.is_empty() {
            connection.stream = request.write_stream.clone();
        }
        let stream = connection.stream.clone();
        let outcome = self.append(connection, request, size, number);
        AppendRowsResponse {
            response: Some(match outcome {
                Ok(offset) => AppendOutcome::AppendResult(AppendResult { offset }),
                Err(rejection) => AppendOutcome::Error(rejection.to_rpc_status()),
            }),
            write_stream: stream,
            ..Default::default()
        }
    }

    fn append(
        &self,
        connection: &mut Connection,
        request: AppendRowsRequest,
        size: usize,
        number: u64,
    ) -> Result<Option<i64>, Rejection> {
        if let Some(code) = self.shared.faults.append_failure(number) {
            return Err(Rejection::new(
                code,
                format!("injected fault on AppendRows request {number}"),
            ));
        }
        if connection.stream.is_empty() {
            return Err(Rejection::new(
                Code::InvalidArgument,
                "the first request must name write_stream",
            ));
        }
        if size > MAX_APPEND_BYTES {
            return Err(Rejection::new(
                Code::ResourceExhausted,
                format!("AppendRows request of {size} bytes exceeds the limit of {MAX_APPEND_BYTES}"),
            ));
        }
        let Some(Rows::ProtoRows(data)) = request.rows else {
            return Err(Rejection::new(Code::InvalidArgument, "only proto_rows are supported"));
        };
        let name = connection.stream.clone();
        let offset = request.offset;
        let (schema, arrow) = {
            let store = self.shared.store();
            store.check_append(&name, offset)?;
            let (table_path, _) = split_stream_name(&name).unwrap_or_default();
            let table = store.table(table_path)?;
            (table.schema.clone(), table.arrow.clone())
        };
        if let Some(descriptor) = data.writer_schema.and_then(|s| s.proto_descriptor) {
            let reuse = matches!(&connection.decoder, Some((known, _)) if *known == descriptor);
            if !reuse {
                let decoder = RowDecoder::new(&descriptor, &schema, arrow).map_err(|e| match e {
                    DecodeError::ExtraField(field) => Rejection::storage(
                        Code::InvalidArgument,
                        StorageErrorCode::SchemaMismatchExtraFields,
                        &name,
                        format!("writer schema field {field} is not a column of the table"),
                    ),
                    DecodeError::Schema(m) | DecodeError::Row { message: m, .. } => {
                        Rejection::new(Code::InvalidArgument, m)
                    }
                })?;
                connection.decoder = Some((descriptor, Arc::new(decoder)));
            }
        }
        let Some((_, decoder)) = &connection.decoder else {
            return Err(Rejection::new(
                Code::InvalidArgument,
                "the first request of a connection must carry writer_schema",
            ));
        };
        let rows = data.rows.map(|r| r.serialized_rows).unwrap_or_default();
        let batch = decoder.decode(&rows).map_err(|e| match e {
            DecodeError::Row { index, message } => {
                Rejection::new(Code::InvalidArgument, format!("row {index} of the request: {message}"))
            }
            DecodeError::Schema(m) | DecodeError::ExtraField(m) => Rejection::new(Code::InvalidArgument, m),
        })?;
        let count = batch.num_rows() as u64;
        let at = self.shared.store().append(&name, offset, batch)?;
        self.shared.counters.rows_appended.fetch_add(count, Ordering::SeqCst);
        Ok(offset.map(|_| at))
    }
}

type AppendStream = Pin<Box<dyn Stream<Item = Result<AppendRowsResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl BigQueryWrite for Service {
    async fn create_write_stream(
        &self,
        request: Request<CreateWriteStreamRequest>,
    ) -> Result<Response<WriteStream>, Status> {
        check_routing(&request, "parent")?;
        let request = request.into_inner();
        let kind = request
            .write_stream
            .and_then(|s| StreamType::try_from(s.r#type).ok())
            .unwrap_or(StreamType::Unspecified);
        let stream = self
            .shared
            .store()
            .create_stream(&request.parent, kind)
            .map_err(|r| r.to_status())?;
        self.shared.counters.streams_created.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(stream))
    }

    type AppendRowsStream = AppendStream;

    async fn append_rows(
        &self,
        request: Request<Streaming<AppendRowsRequest>>,
    ) -> Result<Response<Self::AppendRowsStream>, Status> {
        check_routing(&request, "write_stream")?;
        let mut incoming = request.into_inner();
        let (responses, outgoing) = mpsc::channel(64);
        let service = self.clone();
        tokio::spawn(async move {
            let mut connection = Connection::default();
            while let Some(next) = incoming.next().await {
                let Ok(request) = next else { break };
                let delay = service.shared.faults.append_delay();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let response = service.handle_append(&mut connection, request);
                if responses.send(Ok(response)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(outgoing))))
    }

    async fn get_write_stream(&self, request: Request<GetWriteStreamRequest>) -> Result<Response<WriteStream>, Status> {
        check_routing(&request, "name")?;
        let request = request.into_inner();
        let full = request.view == WriteStreamView::Full as i32;
        let stream = self
            .shared
            .store()
            .describe_stream(&request.name, full)
            .map_err(|r| r.to_status())?;
        Ok(Response::new(stream))
    }

    async fn finalize_write_stream(
        &self,
        request: Request<FinalizeWriteStreamRequest>,
    ) -> Result<Response<FinalizeWriteStreamResponse>, Status> {
        check_routing(&request, "name")?;
        let row_count = self
            .shared
            .store()
            .finalize(&request.into_inner().name)
            .map_err(|r| r.to_status())?;
        Ok(Response::new(FinalizeWriteStreamResponse { row_count }))
    }

    async fn batch_commit_write_streams(
        &self,
        request: Request<BatchCommitWriteStreamsRequest>,
    ) -> Result<Response<BatchCommitWriteStreamsResponse>, Status> {
        check_routing(&request, "parent")?;
        if let Some(gate) = self.shared.faults.commit_gate() {
            gate.pass().await;
        }
        let request = request.into_inner();
        let outcome = self
            .shared
            .store()
            .batch_commit(&request.parent, &request.write_streams)
            .map_err(|r| r.to_status())?;
        Ok(Response::new(match outcome {
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
        }))
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
