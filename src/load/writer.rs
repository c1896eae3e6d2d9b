//! One writer: batches in, a finalized PENDING stream out.
//!
//! Every request keeps its offset until acknowledged. When the connection breaks or a
//! request fails transiently, the writer reconnects and resends every unacknowledged request
//! with its original offset: ALREADY_EXISTS then means those rows are in (not a duplicate),
//! OUT_OF_RANGE means a gap and fails the writer. Finalize's row count must equal the rows sent.

use super::budget::InFlightBudget;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};
use tonic::Code;

use super::LoadProgress;
use super::format::FormatChoice;
use super::resync::{EndSearch, Probe, Step};
use crate::client::RequestTemplate;
use crate::client::{AppendConnection, WriteClient, trace_id};
use crate::encode::{EncodedRows, RowEncoder};
use crate::error::{Error, RESOURCE_QUOTA_EXCEEDED, Result, ServiceStatus, StorageErrorCode};
use crate::options::BigQueryOptions;
use crate::proto::AppendRowsResponse;
use crate::proto::append_rows_response::Response;
use crate::proto::write_stream::Type as StreamType;
use crate::retry::{Backoff, is_free_reconnect, is_size_refusal, with_retries};
use crate::rpc::Rpc;
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
    /// AppendRows requests sent (resends not counted).
    pub requests: u64,
    /// Reconnects after transient failures.
    pub retries: u64,
}

/// A request sent and not yet acknowledged.
struct Pending {
    offset: i64,
    /// Index of the request's first row in the whole input, for error messages.
    first_input_row: u64,
    rows: EncodedRows,
    /// When the request was first sent, for the append latency.
    sent_at: Instant,
}

/// What one response says about its request.
enum Outcome {
    /// The rows are in the stream (accepted now or by an earlier send).
    Written,
    /// The request was refused for its size: split it and send again.
    TooLarge(Error),
    /// Failed; retry or give up according to the error's disposition.
    Failed(Error),
}

/// An open stream with its connection and the requests awaiting a response.
struct OpenStream {
    name: String,
    connection: AppendConnection,
    in_flight: VecDeque<Pending>,
    in_flight_bytes: usize,
}

/// Writes batches to one PENDING stream, created on the first non-empty batch.
pub struct StreamWriter {
    client: WriteClient,
    table: TableRef,
    encoder: Arc<RowEncoder>,
    options: BigQueryOptions,
    open: Option<OpenStream>,
    /// Accounts the bytes in flight to a DataFusion memory pool, when there is one.
    budget: Option<Box<dyn InFlightBudget>>,
    /// Counts streams, acknowledged rows and bytes, and retries as they happen.
    progress: LoadProgress,
    backoff: Backoff,
    rows: u64,
    bytes: u64,
    requests: u64,
    retries: u64,
    /// Rows acknowledged: the stream holds at least offsets `0..acknowledged`.
    acknowledged: u64,
    /// Bytes of the rows this writer had acknowledged.
    acknowledged_bytes: u64,
    /// While resuming a stream: the replayed rows not yet known to be in it.
    resync: Option<Resync>,
    /// A resumed stream found finalized, with its row count: the input is only counted.
    sealed: Option<u64>,
    /// Arrow rows with `bigquery.row_format = auto`, until the stream has taken rows.
    fallback: Option<Fallback>,
    /// Changes when the writer starts over in another format; a batch being appended stops.
    generation: u64,
}

/// What a writer needs to fall back from Arrow to proto rows if the service refuses Arrow
/// before taking any row: the proto encoder, the load's shared choice, and every batch
/// written so far (none acknowledged yet), with the index of its first row.
struct Fallback {
    proto: Arc<RowEncoder>,
    choice: FormatChoice,
    batches: Vec<(RecordBatch, u64)>,
}

/// A resumed stream whose end is being looked for, and the replayed rows from its checkpoint.
struct Resync {
    search: EndSearch,
    /// Encoded groups of replayed rows: (offset of the first row, rows, its input row).
    replayed: VecDeque<(u64, EncodedRows, u64)>,
    /// Offset after the last replayed row.
    available: u64,
}

impl Resync {
    /// The one row at `offset`, with its input row.
    fn row_at(&self, encoder: &RowEncoder, offset: u64) -> Result<Option<(EncodedRows, u64)>> {
        let Some((start, rows, input_row)) = self
            .replayed
            .iter()
            .find(|(start, rows, _)| (*start..*start + rows.len() as u64).contains(&offset))
        else {
            return Ok(None);
        };
        let index = usize::try_from(offset - start).map_err(|_| Error::Internal("offset overflow".into()))?;
        Ok(Some((encoder.slice(rows, index, 1)?, input_row + (offset - start))))
    }
}

impl StreamWriter {
    /// A writer for `table` that encodes with `encoder`, with the flow-control and retry
    /// settings of `options`.
    pub fn new(client: WriteClient, table: TableRef, encoder: Arc<RowEncoder>, options: BigQueryOptions) -> Self {
        let backoff = Backoff::new(&options.retry);
        Self {
            client,
            table,
            encoder,
            options,
            open: None,
            budget: None,
            progress: LoadProgress::default(),
            backoff,
            rows: 0,
            bytes: 0,
            requests: 0,
            retries: 0,
            acknowledged: 0,
            acknowledged_bytes: 0,
            resync: None,
            sealed: None,
            fallback: None,
            generation: 0,
        }
    }

    /// With `bigquery.row_format = auto` (this writer's encoder writes Arrow rows): if the
    /// service refuses them before the stream has taken any row, the writer sends its rows
    /// again as proto rows encoded by `proto`, and tells `choice`, so that the load's next
    /// writers start with proto rows.
    pub(crate) fn with_fallback(mut self, proto: Arc<RowEncoder>, choice: FormatChoice) -> Self {
        self.fallback = Some(Fallback {
            proto,
            choice,
            batches: Vec::new(),
        });
        self
    }

    /// The same writer continuing an open PENDING `stream` that holds at least
    /// `acknowledged_rows` rows, written by an earlier attempt from the same input. Give it
    /// the input from row `acknowledged_rows` on: it finds where the stream really ends with
    /// one-row appends of those rows, then appends the rest. A stream that cannot take them
    /// (finalized, gone) fails the writer with [`Error::StreamNotResumable`].
    pub fn resume(mut self, stream: String, acknowledged_rows: u64) -> Self {
        let connection = self.new_connection(&stream);
        self.open = Some(OpenStream {
            name: stream,
            connection,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
        });
        self.rows = acknowledged_rows;
        self.acknowledged = acknowledged_rows;
        // The stream already holds rows: its format is settled.
        self.fallback = None;
        self.resync = Some(Resync {
            search: EndSearch::new(acknowledged_rows),
            replayed: VecDeque::new(),
            available: acknowledged_rows,
        });
        self
    }

    /// The stream written to, once there is one.
    pub fn stream_name(&self) -> Option<&str> {
        self.open.as_ref().map(|o| o.name.as_str())
    }

    /// Rows the stream holds for sure: every offset below this was acknowledged.
    pub fn acknowledged_rows(&self) -> u64 {
        self.acknowledged
    }

    /// Encoded bytes acknowledged for this writer's requests.
    pub fn acknowledged_bytes(&self) -> u64 {
        self.acknowledged_bytes
    }

    /// Accounts the bytes this writer keeps in flight to `budget`; when its pool refuses
    /// more, the writer waits for acknowledgements before sending.
    pub fn with_budget(mut self, budget: Box<dyn InFlightBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Reports streams created, rows and bytes acknowledged and retries to `progress`.
    pub fn with_progress(mut self, progress: LoadProgress) -> Self {
        self.progress = progress;
        self
    }

    /// Takes `bytes` from the budget, waiting for acknowledgements while its pool refuses.
    async fn reserve(&mut self, bytes: usize) -> Result<()> {
        loop {
            let Some(budget) = &self.budget else {
                return Ok(());
            };
            if budget.try_take(bytes) {
                return Ok(());
            }
            if self.open.as_ref().is_none_or(|o| o.in_flight.is_empty()) {
                // Nothing to wait for: one request must be allowed to make progress.
                budget.take(bytes);
                return Ok(());
            }
            self.acknowledge_oldest().await?;
        }
    }

    fn release(&self, bytes: usize) {
        if let Some(budget) = &self.budget {
            budget.give_back(bytes);
        }
    }

    /// Encodes and appends a batch; `first_row` is the index of its first row in the whole
    /// input, for error messages.
    pub async fn write(&mut self, batch: &RecordBatch, first_row: u64) -> Result<()> {
        if let Some(sealed) = self.sealed {
            self.rows += batch.num_rows() as u64;
            if self.rows > sealed {
                return Err(self.not_resumable(format!("it was finalized with {sealed} rows, the partition has more")));
            }
            return Ok(());
        }
        if let Some(fallback) = &mut self.fallback {
            fallback.batches.push((batch.clone(), first_row));
        }
        let generation = self.generation;
        let mut next_input_row = first_row;
        for rows in self.encoder.encode(batch, first_row)? {
            if self.generation != generation {
                // The writer started over in another format, this batch included.
                break;
            }
            let first_input_row = next_input_row;
            next_input_row += rows.len() as u64;
            if let Some(resync) = &mut self.resync {
                let start = resync.available;
                resync.available += rows.len() as u64;
                resync.replayed.push_back((start, rows, first_input_row));
                continue;
            }
            self.append(rows, first_input_row).await?;
        }
        self.resync_step(false).await
    }

    /// Goes on looking for a resumed stream's end with the rows replayed so far; once found,
    /// appends the replayed rows past it.
    async fn resync_step(&mut self, input_done: bool) -> Result<()> {
        loop {
            let Some(resync) = &mut self.resync else {
                return Ok(());
            };
            let step = resync.search.next(resync.available, input_done);
            let step = match step {
                Ok(step) => step,
                Err(reason) => return Err(self.not_resumable(reason)),
            };
            let offset = match step {
                Step::NeedInput => return Ok(()),
                Step::Found(end) => return self.resume_at(end).await,
                Step::Probe(offset) => offset,
            };
            let (row, input_row) = resync
                .row_at(&self.encoder, offset)?
                .ok_or_else(|| Error::Internal(format!("no replayed row at offset {offset}")))?;
            let said = self.probe(offset, row, input_row).await?;
            if said == Probe::Finalized {
                return self.seal().await;
            }
            let resync = self
                .resync
                .as_mut()
                .ok_or_else(|| Error::Internal("resync ended early".into()))?;
            let found = resync.search.record(offset, said);
            if let Some(end) = found.map_err(|reason| self.not_resumable(reason))? {
                return self.resume_at(end).await;
            }
        }
    }

    /// The resumed stream was finalized by an earlier attempt that died before recording it:
    /// it is whole if it holds exactly as many rows as the partition has. From here on the
    /// input is only counted, and [`StreamWriter::finish`] compares.
    async fn seal(&mut self) -> Result<()> {
        let Some(resync) = self.resync.take() else {
            return Ok(());
        };
        let name = self.open_stream()?.name.clone();
        let client = &self.client;
        // Finalizing again tells its row count; a service that refuses leaves a new stream.
        let reported = with_retries(&self.options.retry, Rpc::FinalizeWriteStream, || {
            client.finalize_write_stream(&name)
        })
        .await
        .map_err(|e| self.not_resumable(format!("it is finalized, and finalizing it again failed: {e}")))?;
        let rows = u64::try_from(reported).map_err(|_| self.not_resumable(format!("it reports {reported} rows")))?;
        tracing::debug!(stream = %name, rows, "resumed stream was finalized; counting the partition's rows");
        self.sealed = Some(rows);
        self.rows = resync.available;
        if self.rows > rows {
            return Err(self.not_resumable(format!("it was finalized with {rows} rows, the partition has more")));
        }
        Ok(())
    }

    fn not_resumable(&self, reason: String) -> Error {
        Error::StreamNotResumable {
            stream: self.stream_name().unwrap_or_default().to_string(),
            reason,
        }
    }

    /// Ends the resync: the stream holds offsets below `end`; the replayed rows from `end` on
    /// are appended as usual.
    async fn resume_at(&mut self, end: u64) -> Result<()> {
        let Some(resync) = self.resync.take() else {
            return Ok(());
        };
        tracing::debug!(
            stream = self.stream_name().unwrap_or_default(),
            end,
            "resumed stream's end found"
        );
        self.rows = end;
        self.acknowledged = end;
        for (start, rows, first_input_row) in resync.replayed {
            let len = rows.len() as u64;
            if start + len <= end {
                continue;
            }
            let (rows, first_input_row) = if start < end {
                let skip = usize::try_from(end - start).map_err(|_| Error::Internal("offset overflow".into()))?;
                let tail = self.encoder.slice(&rows, skip, rows.len() - skip)?;
                (tail, first_input_row + (end - start))
            } else {
                (rows, first_input_row)
            };
            self.append(rows, first_input_row).await?;
        }
        Ok(())
    }

    /// Appends the one row at `offset` alone and says what the stream answered; transient
    /// failures are retried on a new connection.
    async fn probe(&mut self, offset: u64, row: EncodedRows, input_row: u64) -> Result<Probe> {
        let at = i64::try_from(offset).map_err(|_| Error::Internal("offset overflow".into()))?;
        loop {
            let encoder = self.encoder.clone();
            let open = self.open_stream()?;
            let sent_at = Instant::now();
            let received = match open
                .connection
                .send(Some(at), encoder.writer_schema(), &row, true)
                .await
            {
                Ok(()) => open.connection.next_response().await,
                Err(e) => Err(e),
            };
            let name = open.name.clone();
            let failure = match received.map(|response| probe_outcome(&name, at, input_row, response)) {
                Ok(Ok(Probe::Written)) => {
                    self.requests += 1;
                    self.acknowledged_bytes += row.bytes() as u64;
                    self.progress.acknowledged(1, row.bytes() as u64, sent_at.elapsed());
                    self.backoff.reset();
                    return Ok(Probe::Written);
                }
                Ok(Ok(said)) => {
                    // The refusal may have ended the call: the next probe goes on a new one.
                    let fresh = self.new_connection(&name);
                    let open = self.open_stream()?;
                    open.connection.close();
                    open.connection = fresh;
                    return Ok(said);
                }
                Ok(Err(e)) | Err(e) => e,
            };
            if matches!(failure, Error::StreamNotResumable { .. }) {
                return Err(failure);
            }
            let Some(delay) = self.backoff.next_delay(failure.disposition()) else {
                return Err(failure);
            };
            tracing::warn!(stream = %name, error = %failure, ?delay, "retrying a resume probe");
            tokio::time::sleep(delay).await;
            self.retries += 1;
            self.progress.retried();
            let fresh = self.new_connection(&name);
            let open = self.open_stream()?;
            open.connection.close();
            open.connection = fresh;
        }
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    async fn append(&mut self, rows: EncodedRows, first_input_row: u64) -> Result<()> {
        if self.open.is_none() {
            let (client, table) = (&self.client, &self.table);
            let stream = with_retries(&self.options.retry, Rpc::CreateWriteStream, || {
                client.create_write_stream(table, StreamType::Pending)
            })
            .await?;
            tracing::debug!(stream = %stream.name, "created pending stream");
            self.progress.stream_created();
            let connection = self.new_connection(&stream.name);
            self.open = Some(OpenStream {
                name: stream.name,
                connection,
                in_flight: VecDeque::new(),
                in_flight_bytes: 0,
            });
        }
        self.reserve(rows.bytes()).await?;
        let offset = i64::try_from(self.rows).map_err(|_| Error::Internal("row count overflow".into()))?;
        self.rows += rows.len() as u64;
        self.bytes += rows.bytes() as u64;
        self.requests += 1;
        let pending = Pending {
            offset,
            first_input_row,
            rows,
            sent_at: Instant::now(),
        };
        let encoder = self.encoder.clone();
        let generation = self.generation;
        // Take the answers that arrived meanwhile: they free memory, and a call the server
        // closed (idle for 600 s, or aged) is noticed before anything is sent into it.
        self.acknowledge_ready().await?;
        if self.generation != generation {
            // Started over in another format, these rows included.
            self.release(pending.rows.bytes());
            return Ok(());
        }
        let open = self.open_stream()?;
        let sent = open
            .connection
            .send(Some(pending.offset), encoder.writer_schema(), &pending.rows, false)
            .await;
        open.in_flight_bytes += pending.rows.bytes();
        open.in_flight.push_back(pending);
        if let Err(e) = sent {
            self.recover(e).await?;
        }
        let (max_requests, max_bytes) = (
            self.options.max_inflight_requests.max(1),
            self.options.max_inflight_bytes,
        );
        loop {
            let open = self.open_stream()?;
            let over_requests = open.in_flight.len() >= max_requests;
            let over_bytes = open.in_flight.len() > 1 && open.in_flight_bytes > max_bytes;
            if !(over_requests || over_bytes) {
                return Ok(());
            }
            self.acknowledge_oldest().await?;
        }
    }

    /// A connection to `stream` on the next channel of the pool, under the watchdog.
    fn new_connection(&self, stream: &str) -> AppendConnection {
        self.client
            .append_connection(stream, self.options.append_response_timeout)
            .with_template(RequestTemplate {
                trace_id: trace_id(self.options.trace_id.as_deref()),
                missing_values: self.options.missing_values.interpretation(),
            })
    }

    fn open_stream(&mut self) -> Result<&mut OpenStream> {
        self.open
            .as_mut()
            .ok_or_else(|| Error::Internal("stream not open".into()))
    }

    /// Handles every response that has already arrived, without waiting for more.
    async fn acknowledge_ready(&mut self) -> Result<()> {
        loop {
            let open = self.open_stream()?;
            let Some(received) = open.connection.try_next_response() else {
                return Ok(());
            };
            self.handle(received).await?;
        }
    }

    /// Waits until the oldest request in flight is acknowledged, reconnecting as needed.
    async fn acknowledge_oldest(&mut self) -> Result<()> {
        loop {
            let open = self.open_stream()?;
            if open.in_flight.is_empty() {
                return Ok(());
            }
            let received = open.connection.next_response().await;
            if self.handle(received).await? {
                return Ok(());
            }
        }
    }

    /// Handles what the connection gave for the oldest request in flight; true if it was
    /// acknowledged, false if it must be waited for again (after a reconnect or a split).
    async fn handle(&mut self, received: Result<AppendRowsResponse>) -> Result<bool> {
        let open = self.open_stream()?;
        let outcome = match (received, open.in_flight.front()) {
            (Ok(response), Some(oldest)) => check_response(
                &open.name,
                oldest.offset,
                oldest.first_input_row,
                oldest.rows.bytes(),
                response,
            ),
            (Ok(_), None) => {
                return Err(Error::Protocol {
                    rpc: Rpc::AppendRows,
                    entity: open.name.clone(),
                    message: "a response arrived with no request in flight".into(),
                });
            }
            (Err(e), _) => Outcome::Failed(e),
        };
        match outcome {
            Outcome::Written => {
                let Some(done) = open.in_flight.pop_front() else {
                    return Ok(true);
                };
                let bytes = done.rows.bytes();
                open.in_flight_bytes -= bytes;
                // The service took rows in this format: no falling back any more.
                self.fallback = None;
                self.acknowledged = u64::try_from(done.offset).unwrap_or(0) + done.rows.len() as u64;
                self.acknowledged_bytes += bytes as u64;
                self.progress
                    .acknowledged(done.rows.len() as u64, bytes as u64, done.sent_at.elapsed());
                self.release(bytes);
                self.backoff.reset();
                Ok(true)
            }
            Outcome::TooLarge(e) => {
                // Splitting is progress of its own: the halves cost no attempt.
                self.split_oldest(e)?;
                self.reconnect_and_resend().await?;
                Ok(false)
            }
            Outcome::Failed(e) if self.fallback.is_some() && self.acknowledged == 0 && is_format_refusal(&e) => {
                self.fall_back(e).await?;
                Ok(false)
            }
            Outcome::Failed(e) => {
                self.recover(e).await?;
                Ok(false)
            }
        }
    }

    /// The service refused Arrow rows before taking any: the writer sends everything again,
    /// from offset 0, as proto rows, and the load's next writers start with proto rows.
    async fn fall_back(&mut self, refusal: Error) -> Result<()> {
        let Some(fallback) = self.fallback.take() else {
            return Err(refusal);
        };
        if fallback.choice.fall_back() {
            tracing::warn!(
                table = %self.table,
                error = %refusal,
                "the service refused Arrow rows; sending proto rows (bigquery.row_format = auto)"
            );
        }
        self.encoder = fallback.proto;
        self.generation += 1;
        let mut requests = VecDeque::new();
        let mut offset = 0u64;
        for (batch, first_row) in &fallback.batches {
            let mut input_row = *first_row;
            for rows in self.encoder.encode(batch, *first_row)? {
                let len = rows.len() as u64;
                requests.push_back(Pending {
                    offset: i64::try_from(offset).map_err(|_| Error::Internal("row count overflow".into()))?,
                    first_input_row: input_row,
                    rows,
                    sent_at: Instant::now(),
                });
                offset += len;
                input_row += len;
            }
        }
        let bytes: usize = requests.iter().map(|p| p.rows.bytes()).sum();
        let open = self.open_stream()?;
        let old_bytes = std::mem::replace(&mut open.in_flight_bytes, bytes);
        open.in_flight = requests;
        let count = open.in_flight.len() as u64;
        self.release(old_bytes);
        if let Some(budget) = &self.budget {
            budget.take(bytes);
        }
        self.rows = offset;
        self.bytes = bytes as u64;
        self.requests = count;
        self.reconnect_and_resend().await
    }

    /// Splits the oldest request in two (same rows, same offsets in total).
    fn split_oldest(&mut self, cause: Error) -> Result<()> {
        let encoder = self.encoder.clone();
        let open = self.open_stream()?;
        let Some(oldest) = open.in_flight.pop_front() else {
            return Err(cause);
        };
        if oldest.rows.len() < 2 {
            return Err(cause);
        }
        let half = oldest.rows.len() / 2;
        let first = encoder.slice(&oldest.rows, 0, half)?;
        let second = encoder.slice(&oldest.rows, half, oldest.rows.len() - half)?;
        // Arrow halves are messages of their own, so their sizes need not add up.
        let (before, after) = (oldest.rows.bytes(), first.bytes() + second.bytes());
        open.in_flight_bytes = open.in_flight_bytes - before + after;
        let tail = Pending {
            offset: oldest.offset + half as i64,
            first_input_row: oldest.first_input_row + half as u64,
            rows: second,
            sent_at: oldest.sent_at,
        };
        let head = Pending {
            offset: oldest.offset,
            first_input_row: oldest.first_input_row,
            rows: first,
            sent_at: oldest.sent_at,
        };
        open.in_flight.push_front(tail);
        open.in_flight.push_front(head);
        if let Some(budget) = &self.budget {
            budget.give_back(before);
            budget.take(after);
        }
        Ok(())
    }

    /// Handles a failure: fatal errors end the writer; a connection the server closed after
    /// serving it (or while idle) is reopened at once; other transient failures reconnect
    /// and resend after a backoff, within the retry budget.
    async fn recover(&mut self, error: Error) -> Result<()> {
        let mut last = error;
        loop {
            let open = self.open_stream()?;
            let stream = open.name.clone();
            let closed_by_server = matches!(
                last,
                Error::Rpc {
                    rpc: Rpc::AppendRows,
                    ..
                } | Error::Disconnected { .. }
            ) && last.is_retryable();
            if closed_by_server && is_free_reconnect(open.connection.answered(), open.in_flight.len()) {
                tracing::debug!(%stream, reason = %last, "AppendRows connection closed by the server; reopening");
            } else {
                let Some(delay) = self.backoff.next_delay(last.disposition()) else {
                    return Err(last);
                };
                tracing::warn!(%stream, error = %last, ?delay, "reconnecting AppendRows");
                tokio::time::sleep(delay).await;
            }
            self.retries += 1;
            self.progress.retried();
            match self.reconnect_and_resend().await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
    }

    /// Opens a new connection and resends every unacknowledged request with its offset.
    async fn reconnect_and_resend(&mut self) -> Result<()> {
        let encoder = self.encoder.clone();
        let name = self.open_stream()?.name.clone();
        let fresh = self.new_connection(&name);
        let open = self.open_stream()?;
        open.connection.close();
        open.connection = fresh;
        for pending in &open.in_flight {
            open.connection
                .send(Some(pending.offset), encoder.writer_schema(), &pending.rows, true)
                .await?;
        }
        Ok(())
    }

    /// Waits for every response, finalizes the stream and checks its row count. Returns
    /// `None` if no row was ever written (no stream was created).
    pub async fn finish(mut self) -> Result<Option<StreamHandle>> {
        self.resync_step(true).await?;
        if let Some(sealed) = self.sealed {
            if self.rows != sealed {
                return Err(self.not_resumable(format!(
                    "it was finalized with {sealed} rows, the partition has {}",
                    self.rows
                )));
            }
            let mut open = self
                .open
                .take()
                .ok_or_else(|| Error::Internal("stream not open".into()))?;
            open.connection.close();
            return Ok(Some(StreamHandle {
                table: self.table,
                stream: open.name,
                rows: sealed,
                bytes: self.acknowledged_bytes,
                requests: self.requests,
                retries: self.retries,
            }));
        }
        if self.open.is_none() {
            return Ok(None);
        }
        while !self.open_stream()?.in_flight.is_empty() {
            self.acknowledge_oldest().await?;
        }
        let mut open = self
            .open
            .take()
            .ok_or_else(|| Error::Internal("stream not open".into()))?;
        open.connection.close();
        let client = &self.client;
        let name = open.name.as_str();
        let reported = with_retries(&self.options.retry, Rpc::FinalizeWriteStream, || {
            client.finalize_write_stream(name)
        })
        .await?;
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
            retries: self.retries,
        }))
    }
}

/// True if `error` is the service refusing the request's format (Arrow rows): a plain
/// INVALID_ARGUMENT or UNIMPLEMENTED with no row errors and no `StorageError`.
fn is_format_refusal(error: &Error) -> bool {
    match error {
        Error::Append { status, row_errors, .. } => {
            row_errors.is_empty()
                && status.storage_error_code().is_none()
                && matches!(status.code(), Code::InvalidArgument | Code::Unimplemented)
        }
        _ => false,
    }
}

/// What one response to a resume probe says about the stream's end.
fn probe_outcome(stream: &str, offset: i64, input_row: u64, response: AppendRowsResponse) -> Result<Probe> {
    if let Some(Response::Error(status)) = &response.response
        && response.row_errors.is_empty()
    {
        let status = ServiceStatus::from_rpc_status(status);
        let storage = status.storage_error_code();
        if status.code() == Code::AlreadyExists || storage == Some(StorageErrorCode::OffsetAlreadyExists) {
            return Ok(Probe::Exists);
        }
        if status.code() == Code::OutOfRange || storage == Some(StorageErrorCode::OffsetOutOfRange) {
            return Ok(Probe::Beyond);
        }
        if storage == Some(StorageErrorCode::StreamFinalized) {
            return Ok(Probe::Finalized);
        }
        let gone = storage == Some(StorageErrorCode::StreamNotFound) || status.code() == Code::NotFound;
        if gone {
            return Err(Error::StreamNotResumable {
                stream: stream.to_string(),
                reason: status.to_string(),
            });
        }
    }
    match check_response(stream, offset, input_row, 0, response) {
        Outcome::Written => Ok(Probe::Written),
        Outcome::TooLarge(e) | Outcome::Failed(e) => Err(e),
    }
}

/// Checks one AppendRows response against the offset of its request.
fn check_response(
    stream: &str,
    offset: i64,
    first_input_row: u64,
    request_bytes: usize,
    response: AppendRowsResponse,
) -> Outcome {
    let failed = |status: ServiceStatus, row_errors: Vec<String>| {
        if status.code() == Code::ResourceExhausted && status.error_reason() == Some(RESOURCE_QUOTA_EXCEEDED) {
            return Error::QuotaExceeded {
                rpc: Rpc::AppendRows,
                entity: stream.to_string(),
                quota: status.quota(),
                status,
            };
        }
        Error::Append {
            stream: stream.to_string(),
            offset,
            status,
            row_errors,
        }
    };
    let local = |code: Code, message: &str| ServiceStatus::from(tonic::Status::new(code, message));
    if !response.row_errors.is_empty() {
        let mut shown: Vec<String> = response
            .row_errors
            .iter()
            .take(5)
            .map(|e| format!("input row {}: {}", first_input_row as i64 + e.index, e.message))
            .collect();
        let more = response.row_errors.len().saturating_sub(shown.len());
        if more > 0 {
            shown.push(format!("and {more} more"));
        }
        let status = match &response.response {
            Some(Response::Error(status)) => ServiceStatus::from_rpc_status(status),
            _ => local(Code::InvalidArgument, "rows rejected"),
        };
        return Outcome::Failed(failed(status, shown));
    }
    match response.response {
        Some(Response::Error(status)) => {
            let status = ServiceStatus::from_rpc_status(&status);
            let storage = status.storage_error_code();
            // Rows at this offset were written by an earlier send whose answer was lost.
            if status.code() == Code::AlreadyExists || storage == Some(StorageErrorCode::OffsetAlreadyExists) {
                return Outcome::Written;
            }
            if is_size_refusal(status.code(), storage, request_bytes) {
                Outcome::TooLarge(failed(status, Vec::new()))
            } else {
                Outcome::Failed(failed(status, Vec::new()))
            }
        }
        Some(Response::AppendResult(result)) => match result.offset {
            // A protocol violation, not a transient failure: never retried.
            Some(acked) if acked != offset => Outcome::Failed(failed(
                local(Code::DataLoss, &format!("the service acknowledged offset {acked}")),
                Vec::new(),
            )),
            _ => Outcome::Written,
        },
        None => Outcome::Failed(failed(local(Code::Internal, "empty response"), Vec::new())),
    }
}
