//! Loading through `google-cloud-bigquery` (googleapis/google-cloud-rust): its `Write` client
//! with one `PendingWriter<Arrow>` per stream. Requests are Arrow IPC record batches; each
//! writer keeps several appends in flight (its futures are awaited oldest first), then is
//! finalized and committed.

use crate::columns::Kind;
use crate::convert::{cast_batch, target_schema};
use crate::pipeline::{Packer, Request, Requests, produce};
use crate::source::Source;
use crate::{LoadArgs, TablePath};
use anyhow::{Context, Result, ensure};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions, write_message};
use arrow::record_batch::RecordBatch;
use futures::future::try_join_all;
use google_cloud_auth::credentials::anonymous;
use google_cloud_bigquery::client::Write;
use google_cloud_bigquery::model::{ArrowRecordBatch, ArrowSchema};
use google_cloud_bigquery::write::PendingWriter;
use google_cloud_bigquery::write::format::Arrow;
use std::collections::VecDeque;

/// A `Write` client for `endpoint` (plaintext) with anonymous credentials.
pub async fn connect(endpoint: &str) -> Result<Write> {
    Write::builder()
        .with_endpoint(endpoint)
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .with_context(|| format!("google-cloud-bigquery: cannot build a Write client for {endpoint}"))
}

/// Loads every row of `source` over `args.streams` PENDING streams, finalizes and commits
/// them; returns the rows committed.
pub async fn load(client: &Write, args: &LoadArgs, source: &Source) -> Result<u64> {
    let table = TablePath::parse(&args.table)?.resource();
    let target = target_schema(&source.schema(), Kind::arrow_type)?;
    let schema = ArrowSchema::new().set_serialized_schema(serialized_schema(&target)?);
    let writers = try_join_all((0..args.streams).map(|_| create_writer(client, &table, schema.clone()))).await?;
    let loads = writers
        .into_iter()
        .zip(source.shares(args.streams))
        .map(|(writer, share)| {
            let packer = ArrowPacker::new(target.clone(), args.request_bytes);
            write_stream(writer, produce(source, share, packer, args.in_flight), args.in_flight)
        });
    let loaded = try_join_all(loads).await?;
    // The public API commits one writer's stream per call: there is no multi-stream commit.
    try_join_all(loaded.iter().map(|(writer, _)| commit(writer))).await?;
    Ok(loaded.iter().map(|(_, rows)| rows).sum())
}

/// Creates a PENDING stream on `table` and a writer of Arrow rows with `schema` for it.
async fn create_writer(client: &Write, table: &str, schema: ArrowSchema) -> Result<PendingWriter<Arrow>> {
    client
        .create_stream(table)
        .build_arrow(schema)
        .await
        .with_context(|| format!("google-cloud-bigquery: cannot create a PENDING stream on {table}"))
}

/// Appends every request of `requests` at consecutive offsets with at most `in_flight`
/// unanswered, then finalizes the stream; returns the writer and its row count.
async fn write_stream(
    writer: PendingWriter<Arrow>,
    mut requests: Requests<ArrowRecordBatch>,
    in_flight: usize,
) -> Result<(PendingWriter<Arrow>, u64)> {
    let mut flying = VecDeque::with_capacity(in_flight);
    let mut offset = 0u64;
    while let Some(request) = requests.recv().await {
        let request = request?;
        if flying.len() >= in_flight.max(1)
            && let Some(oldest) = flying.pop_front()
        {
            settle(&writer, oldest).await?;
        }
        flying.push_back(writer.append(request.payload).set_offset(offset as i64).send());
        offset += request.rows;
    }
    for append in flying {
        settle(&writer, append).await?;
    }
    let finalized = writer
        .finalize()
        .await
        .with_context(|| format!("google-cloud-bigquery: cannot finalize {}", writer.write_stream()))?;
    ensure!(
        finalized.row_count == offset as i64,
        "google-cloud-bigquery: finalize of {} reported {} rows, {offset} were sent",
        writer.write_stream(),
        finalized.row_count
    );
    Ok((writer, offset))
}

/// Waits for one append's answer.
async fn settle(writer: &PendingWriter<Arrow>, append: google_cloud_bigquery::write::AppendFuture) -> Result<()> {
    append
        .await
        .map(drop)
        .with_context(|| format!("google-cloud-bigquery: an append to {} failed", writer.write_stream()))
}

/// Commits the writer's finalized stream.
async fn commit(writer: &PendingWriter<Arrow>) -> Result<()> {
    writer
        .commit()
        .await
        .map(drop)
        .with_context(|| format!("google-cloud-bigquery: cannot commit {}", writer.write_stream()))
}

/// `schema` as an encapsulated Arrow IPC schema message.
fn serialized_schema(schema: &SchemaRef) -> Result<Vec<u8>> {
    let options = IpcWriteOptions::default();
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        &mut DictionaryTracker::new(false),
        &options,
    );
    let mut bytes = Vec::new();
    write_message(&mut bytes, encoded, &options).context("cannot serialize the Arrow schema")?;
    Ok(bytes)
}

/// Packs cast batches into record batches of about `request_bytes` of Arrow buffers each.
struct ArrowPacker {
    target: SchemaRef,
    request_bytes: usize,
    pending: Vec<RecordBatch>,
    pending_bytes: usize,
    generator: IpcDataGenerator,
    tracker: DictionaryTracker,
    context: IpcWriteContext,
    options: IpcWriteOptions,
}

impl ArrowPacker {
    /// A packer of batches of `target`.
    fn new(target: SchemaRef, request_bytes: usize) -> Self {
        Self {
            target,
            request_bytes,
            pending: Vec::new(),
            pending_bytes: 0,
            generator: IpcDataGenerator::default(),
            tracker: DictionaryTracker::new(false),
            context: IpcWriteContext::default(),
            options: IpcWriteOptions::default(),
        }
    }

    /// The pending batches as one request, leaving none pending.
    fn take(&mut self) -> Result<Option<Request<ArrowRecordBatch>>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let batch = concat_batches(&self.target, &self.pending).context("cannot join Arrow batches")?;
        self.pending.clear();
        self.pending_bytes = 0;
        let (dictionaries, encoded) = self
            .generator
            .encode(&batch, &mut self.tracker, &self.options, &mut self.context)
            .context("cannot encode an Arrow record batch")?;
        let mut bytes = Vec::with_capacity(encoded.arrow_data.len() + 1024);
        for message in dictionaries.into_iter().chain([encoded]) {
            write_message(&mut bytes, message, &self.options).context("cannot serialize an Arrow record batch")?;
        }
        Ok(Some(Request {
            payload: ArrowRecordBatch::new().set_serialized_record_batch(bytes),
            rows: batch.num_rows() as u64,
        }))
    }
}

impl Packer for ArrowPacker {
    type Payload = ArrowRecordBatch;

    fn push(&mut self, batch: RecordBatch) -> Result<Vec<Request<ArrowRecordBatch>>> {
        let batch = cast_batch(&batch, &self.target)?;
        let size = batch.get_array_memory_size();
        let mut ready = Vec::new();
        if self.pending_bytes + size > self.request_bytes
            && let Some(request) = self.take()?
        {
            ready.push(request);
        }
        self.pending_bytes += size;
        self.pending.push(batch);
        Ok(ready)
    }

    fn finish(&mut self) -> Result<Option<Request<ArrowRecordBatch>>> {
        self.take()
    }
}
