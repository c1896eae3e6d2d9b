//! One writer: batches in, a finalized PENDING stream out.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::client::{AppendConnection, WriteClient};
use crate::encode::{EncodedRows, RowEncoder};
use crate::error::{Error, Result};
use crate::proto::AppendRowsResponse;
use crate::proto::append_rows_response::Response;
use crate::proto::write_stream::Type as StreamType;
use crate::table_ref::TableRef;

/// A finalized PENDING stream, ready to be committed: plain data that can be saved or sent to
/// the process that commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHandle {
    /// The destination table.
    pub table: TableRef,
    /// The write stream's resource name.
    pub stream: String,
    /// Rows written to the stream (equal to the service's count at finalize).
    pub rows: u64,
    /// Encoded row bytes written.
    pub bytes: u64,
    /// AppendRows requests sent.
    pub requests: u64,
}

/// An open stream with its connection and the requests awaiting a response.
struct OpenStream {
    name: String,
    connection: AppendConnection,
    /// (offset, row count) of each request sent and not yet acknowledged, oldest first.
    in_flight: VecDeque<(i64, usize)>,
}

/// Writes batches to one PENDING stream, created on the first non-empty batch.
pub struct StreamWriter {
    client: WriteClient,
    table: TableRef,
    encoder: Arc<RowEncoder>,
    max_inflight: usize,
    open: Option<OpenStream>,
    rows: u64,
    bytes: u64,
    requests: u64,
}

impl StreamWriter {
    /// A writer for `table` that encodes with `encoder` and keeps up to `max_inflight`
    /// requests unacknowledged.
    pub fn new(client: WriteClient, table: TableRef, encoder: Arc<RowEncoder>, max_inflight: usize) -> Self {
        Self {
            client,
            table,
            encoder,
            max_inflight: max_inflight.max(1),
            open: None,
            rows: 0,
            bytes: 0,
            requests: 0,
        }
    }

    /// Encodes and appends a batch; `first_row` is the index of its first row in the whole
    /// input, for error messages.
    pub async fn write(&mut self, batch: &RecordBatch, first_row: u64) -> Result<()> {
        for rows in self.encoder.encode(batch, first_row)? {
            self.append(rows).await?;
        }
        Ok(())
    }

    async fn append(&mut self, rows: EncodedRows) -> Result<()> {
        if self.open.is_none() {
            let stream = self
                .client
                .create_write_stream(&self.table, StreamType::Pending)
                .await?;
            tracing::debug!(stream = %stream.name, "created pending stream");
            let connection = self.client.append_connection(&stream.name);
            self.open = Some(OpenStream {
                name: stream.name,
                connection,
                in_flight: VecDeque::new(),
            });
        }
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| Error::Internal("stream not open".into()))?;
        let offset = i64::try_from(self.rows).map_err(|_| Error::Internal("row count overflow".into()))?;
        let count = rows.len();
        self.bytes += rows.bytes as u64;
        open.connection
            .send(Some(offset), self.encoder.descriptor(), rows.rows)
            .await?;
        open.in_flight.push_back((offset, count));
        self.rows += count as u64;
        self.requests += 1;
        while open.in_flight.len() >= self.max_inflight {
            Self::acknowledge_oldest(open).await?;
        }
        Ok(())
    }

    /// Waits for the response to the oldest request in flight and checks it.
    async fn acknowledge_oldest(open: &mut OpenStream) -> Result<()> {
        let response = open.connection.next_response().await?;
        let (offset, _rows) = open
            .in_flight
            .pop_front()
            .ok_or_else(|| Error::Internal(format!("{}: a response with no request in flight", open.name)))?;
        check_response(&open.name, offset, response)
    }

    /// Waits for every response, finalizes the stream and checks its row count. Returns
    /// `None` if no row was ever written (no stream was created).
    pub async fn finish(mut self) -> Result<Option<StreamHandle>> {
        let Some(mut open) = self.open.take() else {
            return Ok(None);
        };
        while !open.in_flight.is_empty() {
            Self::acknowledge_oldest(&mut open).await?;
        }
        open.connection.close();
        let reported = self.client.finalize_write_stream(&open.name).await?;
        let sent = i64::try_from(self.rows).map_err(|_| Error::Internal("row count overflow".into()))?;
        if reported != sent {
            return Err(Error::RowCountMismatch {
                stream: open.name,
                sent,
                reported,
            });
        }
        Ok(Some(StreamHandle {
            table: self.table,
            stream: open.name,
            rows: self.rows,
            bytes: self.bytes,
            requests: self.requests,
        }))
    }
}

/// Checks one AppendRows response against the offset of its request.
fn check_response(stream: &str, offset: i64, response: AppendRowsResponse) -> Result<()> {
    let rejected = |code: tonic::Code, message: String| Error::Append {
        stream: stream.to_string(),
        offset,
        code,
        message,
    };
    if !response.row_errors.is_empty() {
        let shown: Vec<String> = response
            .row_errors
            .iter()
            .take(5)
            .map(|e| format!("row {} of the stream: {}", offset + e.index, e.message))
            .collect();
        let more = response.row_errors.len().saturating_sub(shown.len());
        let suffix = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        return Err(rejected(
            tonic::Code::InvalidArgument,
            format!("rows rejected: {}{suffix}", shown.join("; ")),
        ));
    }
    match response.response {
        Some(Response::Error(status)) => Err(rejected(tonic::Code::from(status.code), status.message)),
        Some(Response::AppendResult(result)) => match result.offset {
            Some(acked) if acked != offset => Err(rejected(
                tonic::Code::Internal,
                format!("the service acknowledged offset {acked}"),
            )),
            _ => Ok(()),
        },
        None => Err(rejected(tonic::Code::Internal, "empty response".into())),
    }
}
