//! Arrow rows (`arrow_rows`): checked canonical columns as one Arrow IPC record batch message
//! per request, in the types BigQuery takes (microsecond timestamps and times, Decimal128(38,
//! 9) and Decimal256(76, 38), Utf8, Binary, no dictionaries or views), with no field
//! metadata. An array is sent as a list with no NULL: a NULL array as an empty one, and NULL
//! elements left out when the options say so (otherwise they were refused by the checks).
//!
//! The IPC message shares the batch's buffers instead of copying them; the request's bytes
//! are written once, when the request is encoded.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, RecordBatchOptions, StructArray, UInt32Array};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimestampMicrosecondType};
use arrow::ipc::writer::StreamEncoder;
use bytes::Bytes;
use prost::Message;

use super::rows::{ArrowMessage, EncodedRows, Payload};
use super::settings::ArrayNullElements;
use crate::error::{Error, Result};
use crate::proto::{ArrowSchema, TableFieldSchema};
use crate::schema::{is_picosecond_timestamp, to_arrow_field};

/// Bytes of the IPC end-of-stream marker: the continuation marker and a zero length.
const END_OF_STREAM: [u8; 8] = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];

/// The Arrow wire form of a table's columns present in the input.
#[derive(Debug, Clone)]
pub(super) struct ArrowRows {
    schema: SchemaRef,
    null_elements: ArrayNullElements,
    /// The IPC schema message, as the stream encoder writes it before the first batch.
    schema_message: Bytes,
}

impl ArrowRows {
    /// The wire schema of `columns` (the table's columns the input fills, in table order).
    pub(super) fn new(columns: &[&TableFieldSchema], null_elements: ArrayNullElements) -> Result<Self, String> {
        if let Some(column) = columns.iter().find(|c| has_picoseconds(c)) {
            return Err(format!(
                "column {} is a TIMESTAMP with picosecond precision, which Arrow rows cannot carry \
                 (BigQuery reads Arrow timestamps as microseconds); use bigquery.row_format 'proto'",
                column.name
            ));
        }
        let fields: Vec<Field> = columns.iter().map(|c| without_metadata(&to_arrow_field(c))).collect();
        let schema = Arc::new(Schema::new(fields));
        let stream = StreamEncoder::try_new(&schema)
            .and_then(StreamEncoder::finish)
            .map_err(|e| format!("cannot write the Arrow schema: {e}"))?;
        let mut message: Vec<u8> = stream.iter().flat_map(|b| b.as_slice().iter().copied()).collect();
        if !message.ends_with(&END_OF_STREAM) {
            return Err("the Arrow stream encoder wrote no end-of-stream marker".into());
        }
        message.truncate(message.len() - END_OF_STREAM.len());
        Ok(Self {
            schema,
            null_elements,
            schema_message: Bytes::from(message),
        })
    }

    /// The encoded `ArrowSchema` (the IPC schema message as `serialized_schema`).
    pub(super) fn writer_schema(&self) -> Bytes {
        let message = ArrowSchema {
            serialized_schema: self.schema_message.clone(),
        };
        Bytes::from(message.encode_to_vec())
    }

    /// Requests of `num_rows` rows from checked canonical `columns` (by table column, `None`
    /// where the input lacks the column), each message under `budget` bytes.
    pub(super) fn encode(
        &self,
        table: &str,
        num_rows: usize,
        columns: Vec<Option<ArrayRef>>,
        first_row: u64,
        budget: usize,
    ) -> Result<Vec<EncodedRows>> {
        let arrays = columns
            .into_iter()
            .flatten()
            .zip(self.schema.fields())
            .map(|(array, field)| wire_array(field, &array, self.null_elements))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|message| Error::Internal(format!("table {table}: {message}")))?;
        let options = RecordBatchOptions::new().with_row_count(Some(num_rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|e| Error::Internal(format!("table {table}: Arrow rows: {e}")))?;
        let mut out = Vec::new();
        self.split(table, batch, first_row, budget, &mut out)?;
        Ok(out)
    }

    /// Encodes `batch` as one request, or halves of it when it is over `budget`.
    fn split(
        &self,
        table: &str,
        batch: RecordBatch,
        first_row: u64,
        budget: usize,
        out: &mut Vec<EncodedRows>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let message = self.message(&batch)?;
        if message.len <= budget {
            out.push(EncodedRows::new(batch.num_rows(), Payload::Arrow(message)));
            return Ok(());
        }
        if batch.num_rows() == 1 {
            return Err(Error::RowTooLarge {
                table: table.to_string(),
                row: first_row,
                bytes: message.len,
                limit: budget,
            });
        }
        let half = batch.num_rows() / 2;
        self.split(table, batch.slice(0, half), first_row, budget, out)?;
        self.split(
            table,
            batch.slice(half, batch.num_rows() - half),
            first_row + half as u64,
            budget,
            out,
        )
    }

    /// One IPC record batch message of `batch` (in the wire schema): the stream encoder's
    /// output without its leading schema message.
    pub(super) fn message(&self, batch: &RecordBatch) -> Result<ArrowMessage> {
        let failed = |e: arrow::error::ArrowError| Error::Internal(format!("cannot write Arrow rows: {e}"));
        let mut encoder = StreamEncoder::try_new(&self.schema).map_err(failed)?;
        let pieces = encoder.encode(batch).map_err(failed)?;
        let pieces = skip_prefix(pieces, self.schema_message.len());
        let len = pieces.iter().map(Buffer::len).sum();
        if pieces
            .first()
            .is_none_or(|first| !first.as_slice().starts_with(&END_OF_STREAM[..4]))
        {
            return Err(Error::Internal(
                "the Arrow stream encoder wrote an unexpected message".into(),
            ));
        }
        Ok(ArrowMessage {
            pieces: pieces.into(),
            len,
            batch: batch.clone(),
        })
    }
}

/// True if the column, or a member of it at any depth, is a TIMESTAMP with picosecond
/// precision.
fn has_picoseconds(column: &TableFieldSchema) -> bool {
    is_picosecond_timestamp(column) || column.fields.iter().any(has_picoseconds)
}

/// `pieces` without their first `n` bytes.
fn skip_prefix(pieces: Vec<Buffer>, mut n: usize) -> Vec<Buffer> {
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        if n >= piece.len() {
            n -= piece.len();
        } else {
            out.push(piece.slice(n));
            n = 0;
        }
    }
    out
}

/// The field without metadata, at any depth.
fn without_metadata(field: &Field) -> Field {
    let data_type = match field.data_type() {
        DataType::Struct(fields) => DataType::Struct(strip(fields)),
        DataType::List(item) => DataType::List(Arc::new(without_metadata(item))),
        other => other.clone(),
    };
    Field::new(field.name(), data_type, field.is_nullable())
}

fn strip(fields: &Fields) -> Fields {
    fields.iter().map(|f| Arc::new(without_metadata(f))).collect()
}

/// A checked canonical array in the exact type of its wire `field`: lists rebuilt without
/// NULL arrays (and NULL elements, when they are dropped), structs and time zones relabeled.
fn wire_array(field: &FieldRef, array: &ArrayRef, null_elements: ArrayNullElements) -> Result<ArrayRef, String> {
    match field.data_type() {
        DataType::List(item) => {
            let list = array
                .as_list_opt::<i32>()
                .ok_or_else(|| format!("column {}: expected a list, got {}", field.name(), array.data_type()))?;
            let (offsets, values) = without_nulls(list, null_elements)?;
            let values = wire_array(item, &values, null_elements)?;
            ListArray::try_new(item.clone(), offsets, values, None)
                .map(|a| Arc::new(a) as ArrayRef)
                .map_err(|e| format!("column {}: {e}", field.name()))
        }
        DataType::Struct(fields) => {
            let array = array
                .as_struct_opt()
                .ok_or_else(|| format!("column {}: expected a struct, got {}", field.name(), array.data_type()))?;
            let children = fields
                .iter()
                .zip(array.columns())
                .map(|(f, child)| wire_array(f, child, null_elements))
                .collect::<Result<Vec<_>, _>>()?;
            StructArray::try_new(fields.clone(), children, array.nulls().cloned())
                .map(|a| Arc::new(a) as ArrayRef)
                .map_err(|e| format!("column {}: {e}", field.name()))
        }
        DataType::Timestamp(_, tz) if array.data_type() != field.data_type() => array
            .as_primitive_opt::<TimestampMicrosecondType>()
            .map(|a| Arc::new(a.clone().with_timezone_opt(tz.clone())) as ArrayRef)
            .ok_or_else(|| {
                format!(
                    "column {}: expected microseconds, got {}",
                    field.name(),
                    array.data_type()
                )
            }),
        wanted if array.data_type() != wanted => Err(format!(
            "column {}: expected {wanted}, got {}",
            field.name(),
            array.data_type()
        )),
        _ => Ok(array.clone()),
    }
}

/// A list's offsets and values with every NULL array made empty and, with
/// [`ArrayNullElements::Drop`], every NULL element left out.
fn without_nulls(list: &ListArray, null_elements: ArrayNullElements) -> Result<(OffsetBuffer<i32>, ArrayRef), String> {
    let values = list.values();
    let drop_elements = null_elements == ArrayNullElements::Drop && values.null_count() > 0;
    if list.null_count() == 0 && !drop_elements {
        return Ok((list.offsets().clone(), values.clone()));
    }
    let mut keep = Vec::with_capacity(values.len());
    let mut lengths = Vec::with_capacity(list.len());
    for row in 0..list.len() {
        let before = keep.len();
        if list.is_valid(row) {
            let range = list.value_offsets()[row] as usize..list.value_offsets()[row + 1] as usize;
            let indices = range.filter(|i| !drop_elements || values.is_valid(*i));
            for i in indices {
                keep.push(u32::try_from(i).map_err(|_| "a list with more than 2^32 elements".to_string())?);
            }
        }
        lengths.push(keep.len() - before);
    }
    let values = take(values.as_ref(), &UInt32Array::from(keep), None).map_err(|e| e.to_string())?;
    Ok((OffsetBuffer::from_lengths(lengths), values))
}
