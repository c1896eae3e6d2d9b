//! Loading through `gcloud-bigquery` (yoshidan/google-cloud-rust): its
//! `pending_storage_writer`, which creates the PENDING streams and commits them all in one
//! BatchCommitWriteStreams. Rows are proto2 messages (`LineItemRow`, encoded with prost);
//! each `append_rows` call takes a list of requests and streams them over one AppendRows
//! call, so the requests of a call are all in flight together.

use crate::columns::{Kind, LINEITEM, lineitem_descriptor};
use crate::convert::{cast_columns, target_schema};
use crate::pipeline::{Packer, Request, Requests, produce};
use crate::source::Source;
use crate::{LoadArgs, TablePath};
use anyhow::{Context, Result, bail, ensure};
use arrow::array::{Array, AsArray, Date32Array, Int64Array, StringArray};
use arrow::datatypes::{Date32Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::future::try_join_all;
use gcloud_bigquery::client::{Client, ClientConfig};
use gcloud_bigquery::storage_write::AppendRowsRequestBuilder;
use gcloud_bigquery::storage_write::stream::pending::PendingStream;
use gcloud_googleapis::cloud::bigquery::storage::v1::AppendRowsResponse;
use gcloud_googleapis::cloud::bigquery::storage::v1::append_rows_response::Response;
use prost::Message;
use prost_types::DescriptorProto;

/// Bytes counted per row on top of its message when sizing a request (as the Python baseline).
const ROW_OVERHEAD: usize = 8;

/// A client whose gRPC channel goes to `endpoint` (`http://HOST:PORT`) through the crate's
/// emulator configuration: plaintext, no credentials. Its REST side is pointed at the same
/// address and never used.
pub async fn connect(endpoint: &str) -> Result<Client> {
    let host = endpoint
        .strip_prefix("http://")
        .context("gcloud-bigquery: the endpoint must be http://HOST:PORT")?
        .trim_end_matches('/');
    let config = ClientConfig::new_with_emulator(host, endpoint.to_string());
    Client::new(config)
        .await
        .with_context(|| format!("gcloud-bigquery: cannot connect to {endpoint}"))
}

/// Loads every row of `source` over `args.streams` PENDING streams, finalizes them and commits
/// them together; returns the rows committed.
pub async fn load(client: &Client, args: &LoadArgs, source: &Source) -> Result<u64> {
    let table = TablePath::parse(&args.table)?.resource();
    let target = target_schema(&source.schema(), Kind::proto_source_type)?;
    let descriptor = lineitem_descriptor();
    let mut writer = client.pending_storage_writer(&table);
    let mut streams = Vec::with_capacity(args.streams);
    for _ in 0..args.streams {
        let stream = writer
            .create_write_stream()
            .await
            .with_context(|| format!("gcloud-bigquery: cannot create a PENDING stream on {table}"))?;
        streams.push(stream);
    }
    let loads = streams.iter().zip(source.shares(args.streams)).map(|(stream, share)| {
        let packer = ProtoPacker::new(target.clone(), args.request_bytes);
        let requests = produce(source, share, packer, args.in_flight);
        write_stream(stream, requests, &descriptor, args.in_flight)
    });
    let rows: u64 = try_join_all(loads).await?.into_iter().sum();
    let committed = writer
        .commit()
        .await
        .with_context(|| format!("gcloud-bigquery: cannot commit the streams of {table}"))?;
    ensure!(
        committed.stream_errors.is_empty() && committed.commit_time.is_some(),
        "gcloud-bigquery: the commit failed: {:?}",
        committed.stream_errors
    );
    Ok(rows)
}

/// Sends `requests` in calls of up to `per_call` requests at consecutive offsets, checks every
/// answer, then finalizes the stream; returns its row count.
async fn write_stream(
    stream: &PendingStream,
    mut requests: Requests<Vec<Vec<u8>>>,
    descriptor: &DescriptorProto,
    per_call: usize,
) -> Result<u64> {
    let mut offset = 0u64;
    loop {
        let call = next_requests(&mut requests, per_call.max(1)).await?;
        if call.is_empty() {
            break;
        }
        let sent = call.len();
        let builders = call
            .into_iter()
            .map(|request| {
                let builder =
                    AppendRowsRequestBuilder::new(descriptor.clone(), request.payload).with_offset(offset as i64);
                offset += request.rows;
                builder
            })
            .collect();
        let mut answers = stream
            .append_rows(builders)
            .await
            .context("gcloud-bigquery: cannot open an AppendRows call")?;
        let mut answered = 0;
        while let Some(answer) = answers
            .message()
            .await
            .context("gcloud-bigquery: an AppendRows call failed")?
        {
            check_answer(&answer)?;
            answered += 1;
        }
        ensure!(
            answered == sent,
            "gcloud-bigquery: {sent} requests sent, {answered} answered"
        );
    }
    let finalized = stream
        .finalize()
        .await
        .context("gcloud-bigquery: cannot finalize a stream")?;
    ensure!(
        finalized == offset as i64,
        "gcloud-bigquery: finalize reported {finalized} rows, {offset} were sent"
    );
    Ok(offset)
}

/// Up to `count` requests, waiting for each; fewer only when the producer has finished.
async fn next_requests(requests: &mut Requests<Vec<Vec<u8>>>, count: usize) -> Result<Vec<Request<Vec<Vec<u8>>>>> {
    let mut call = Vec::with_capacity(count);
    while call.len() < count {
        match requests.recv().await {
            Some(request) => call.push(request?),
            None => break,
        }
    }
    Ok(call)
}

/// Fails on an answer that reports an error or rejected rows.
fn check_answer(answer: &AppendRowsResponse) -> Result<()> {
    if let Some(Response::Error(status)) = &answer.response {
        bail!(
            "gcloud-bigquery: an append failed: {} ({})",
            status.message,
            status.code
        );
    }
    ensure!(
        answer.row_errors.is_empty(),
        "gcloud-bigquery: {} rows rejected, first: {:?}",
        answer.row_errors.len(),
        answer.row_errors.first()
    );
    Ok(())
}

/// One lineitem row as a proto2 message: NUMERIC as its decimal string, DATE as days since
/// the epoch; an absent field is NULL.
#[derive(Clone, PartialEq, Message)]
pub struct LineItemRow {
    #[prost(int64, optional, tag = "1")]
    pub l_orderkey: Option<i64>,
    #[prost(int64, optional, tag = "2")]
    pub l_partkey: Option<i64>,
    #[prost(int64, optional, tag = "3")]
    pub l_suppkey: Option<i64>,
    #[prost(int64, optional, tag = "4")]
    pub l_linenumber: Option<i64>,
    #[prost(string, optional, tag = "5")]
    pub l_quantity: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub l_extendedprice: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub l_discount: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub l_tax: Option<String>,
    #[prost(string, optional, tag = "9")]
    pub l_returnflag: Option<String>,
    #[prost(string, optional, tag = "10")]
    pub l_linestatus: Option<String>,
    #[prost(int32, optional, tag = "11")]
    pub l_shipdate: Option<i32>,
    #[prost(int32, optional, tag = "12")]
    pub l_commitdate: Option<i32>,
    #[prost(int32, optional, tag = "13")]
    pub l_receiptdate: Option<i32>,
    #[prost(string, optional, tag = "14")]
    pub l_shipinstruct: Option<String>,
    #[prost(string, optional, tag = "15")]
    pub l_shipmode: Option<String>,
    #[prost(string, optional, tag = "16")]
    pub l_comment: Option<String>,
}

/// The columns of one batch, cast and typed, in `LINEITEM` order.
enum Column<'a> {
    Int(&'a Int64Array),
    Text(&'a StringArray),
    Date(&'a Date32Array),
}

/// Typed views of a batch's columns.
struct Columns<'a>(Vec<Column<'a>>);

impl<'a> Columns<'a> {
    /// Views `arrays`, cast to `Kind::proto_source_type` in `LINEITEM` order.
    fn new(arrays: &'a [arrow::array::ArrayRef]) -> Result<Self> {
        let columns = arrays
            .iter()
            .zip(LINEITEM)
            .map(|(array, (name, kind))| {
                let column = match kind {
                    Kind::Int64 => array.as_primitive_opt::<Int64Type>().map(Column::Int),
                    Kind::Numeric | Kind::String => array.as_string_opt::<i32>().map(Column::Text),
                    Kind::Date => array.as_primitive_opt::<Date32Type>().map(Column::Date),
                };
                column.with_context(|| format!("column {name} has an unexpected type"))
            })
            .collect::<Result<_>>()?;
        Ok(Self(columns))
    }

    /// Value of INT64 column `c` in row `r`.
    fn int(&self, c: usize, r: usize) -> Option<i64> {
        match self.0[c] {
            Column::Int(a) => a.is_valid(r).then(|| a.value(r)),
            _ => None,
        }
    }

    /// Value of STRING or NUMERIC column `c` in row `r`.
    fn text(&self, c: usize, r: usize) -> Option<String> {
        match self.0[c] {
            Column::Text(a) => a.is_valid(r).then(|| a.value(r).to_string()),
            _ => None,
        }
    }

    /// Value of DATE column `c` in row `r`.
    fn date(&self, c: usize, r: usize) -> Option<i32> {
        match self.0[c] {
            Column::Date(a) => a.is_valid(r).then(|| a.value(r)),
            _ => None,
        }
    }

    /// Row `r` as a message.
    fn row(&self, r: usize) -> LineItemRow {
        LineItemRow {
            l_orderkey: self.int(0, r),
            l_partkey: self.int(1, r),
            l_suppkey: self.int(2, r),
            l_linenumber: self.int(3, r),
            l_quantity: self.text(4, r),
            l_extendedprice: self.text(5, r),
            l_discount: self.text(6, r),
            l_tax: self.text(7, r),
            l_returnflag: self.text(8, r),
            l_linestatus: self.text(9, r),
            l_shipdate: self.date(10, r),
            l_commitdate: self.date(11, r),
            l_receiptdate: self.date(12, r),
            l_shipinstruct: self.text(13, r),
            l_shipmode: self.text(14, r),
            l_comment: self.text(15, r),
        }
    }
}

/// Packs rows, serialized one message each, into requests of about `request_bytes`.
struct ProtoPacker {
    target: SchemaRef,
    request_bytes: usize,
    pending: Vec<Vec<u8>>,
    pending_bytes: usize,
}

impl ProtoPacker {
    /// A packer that casts batches to `target` first.
    fn new(target: SchemaRef, request_bytes: usize) -> Self {
        Self {
            target,
            request_bytes,
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    /// The pending rows as one request, leaving none pending.
    fn take(&mut self) -> Option<Request<Vec<Vec<u8>>>> {
        if self.pending.is_empty() {
            return None;
        }
        self.pending_bytes = 0;
        let payload = std::mem::take(&mut self.pending);
        let rows = payload.len() as u64;
        Some(Request { payload, rows })
    }
}

impl Packer for ProtoPacker {
    type Payload = Vec<Vec<u8>>;

    fn push(&mut self, batch: RecordBatch) -> Result<Vec<Request<Vec<Vec<u8>>>>> {
        let arrays = cast_columns(&batch, &self.target)?;
        let columns = Columns::new(&arrays)?;
        let mut ready = Vec::new();
        for r in 0..batch.num_rows() {
            let row = columns.row(r).encode_to_vec();
            if self.pending_bytes + row.len() + ROW_OVERHEAD > self.request_bytes
                && let Some(request) = self.take()
            {
                ready.push(request);
            }
            self.pending_bytes += row.len() + ROW_OVERHEAD;
            self.pending.push(row);
        }
        Ok(ready)
    }

    fn finish(&mut self) -> Result<Option<Request<Vec<Vec<u8>>>>> {
        Ok(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_matches_the_message() {
        let descriptor = lineitem_descriptor();
        assert_eq!(descriptor.field.len(), 16);
        let row = LineItemRow {
            l_orderkey: Some(1),
            l_quantity: Some("17.00".into()),
            l_shipdate: Some(9000),
            ..Default::default()
        };
        let bytes = row.encode_to_vec();
        // Field 1 varint 1; field 5 length-delimited "17.00"; field 11 varint 9000.
        assert_eq!(&bytes[..2], &[0x08, 0x01]);
        assert_eq!(&bytes[2..4], &[0x2a, 5]);
        assert_eq!(&bytes[4..9], b"17.00");
        assert_eq!(bytes[9], 0x58);
    }
}
