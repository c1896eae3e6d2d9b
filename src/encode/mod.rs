//! Arrow record batches -> the rows of AppendRows requests, as proto2 messages (`proto_rows`)
//! or Arrow IPC record batches (`arrow_rows`), split into requests under a byte limit.
//!
//! The encoder is planned once per load from the table schema and the input schema, then
//! applied to every batch. Input columns are matched to table columns by name (exact, then
//! case-insensitive, as BigQuery does) and converted exactly to the column's canonical Arrow
//! type where needed (`normalize`); every value is checked against BigQuery's rules column
//! by column (`kernels`, `columns`). Proto rows are then written straight into one buffer
//! per batch, each already framed as it travels (`framed`); Arrow rows are the canonical
//! columns as one IPC message (`arrow_rows`). Every failure names the table, the column
//! path, the row and the value.

mod arrow_rows;
mod columns;
mod framed;
mod kernels;
mod normalize;
mod rows;
mod settings;
mod value_error;

pub(crate) use rows::Payload;
pub use rows::{EncodedRows, WriterSchema};
pub use settings::{
    ArrayNullElements, DEFAULT_MAX_REQUEST_BYTES, EncodeOptions, MissingValues, RowFormat, SERVICE_MAX_REQUEST_BYTES,
    WireEncoding,
};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::Schema;
use bytes::Bytes;
use prost::Message;

use crate::error::{Error, Result};
use crate::proto::descriptor::DescriptorProto;
use crate::proto::table_field_schema::Mode;
use crate::proto::{ProtoSchema, TableFieldSchema, TableSchema};
use crate::schema::{field_mode, field_type, row_descriptor, type_name};
use arrow_rows::ArrowRows;
use columns::WriteOptions;
use kernels::{ColumnKernel, Prewritten};
use normalize::{Conversion, Mismatch};
use value_error::ValueError;

/// Bytes reserved in every request for the stream name, offset, and framing.
const REQUEST_OVERHEAD: usize = 1024;

/// How one table column is filled.
#[derive(Debug, Clone)]
struct ColumnPlan {
    column: TableFieldSchema,
    tag: u32,
    /// The input column and how it becomes canonical, or `None` when the input lacks this
    /// (nullable) column.
    input: Option<(usize, Conversion)>,
}

/// The wire format and what it needs.
#[derive(Debug, Clone)]
enum Wire {
    Proto,
    Arrow(ArrowRows),
}

/// Encodes batches of one input schema for one table.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use datafusion_bigquery::encode::{EncodeOptions, RowEncoder};
/// use datafusion_bigquery::schema::{field, table_schema};
/// use datafusion_bigquery::schema::{Mode, Type};
///
/// let schema = table_schema(vec![field("id", Type::Int64, Mode::Required)]);
/// let input = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
/// let encoder = RowEncoder::new("p.d.t", &schema, &input, &EncodeOptions::default()).unwrap();
/// let batch = RecordBatch::try_new(input, vec![Arc::new(Int64Array::from(vec![1, 150]))]).unwrap();
/// let requests = encoder.encode(&batch, 0).unwrap();
/// assert_eq!(requests[0].proto_rows()[1].as_ref(), &[0x08, 0x96, 0x01]); // field 1, varint 150
/// ```
#[derive(Debug, Clone)]
pub struct RowEncoder {
    table: String,
    columns: Vec<ColumnPlan>,
    write: WriteOptions,
    descriptor: DescriptorProto,
    writer_schema: WriterSchema,
    wire: Wire,
    row_budget: usize,
}

impl RowEncoder {
    /// Plans the encoding of batches with schema `input` into rows of `schema`; `table`
    /// names the table in errors.
    pub fn new(table: &str, schema: &TableSchema, input: &Schema, options: &EncodeOptions) -> Result<Self> {
        let relaxed = defaults_apply(schema, options.missing_values);
        let schema = &relaxed;
        let table_name = table.to_string();
        let schema_error = |message: String| Error::Schema {
            table: table_name.clone(),
            message,
        };
        let descriptor = row_descriptor(schema, options.wire_encoding).map_err(&schema_error)?;
        let find = |name: &str| {
            schema
                .fields
                .iter()
                .position(|c| c.name == name)
                .or_else(|| schema.fields.iter().position(|c| c.name.eq_ignore_ascii_case(name)))
        };
        let mut used = vec![None; schema.fields.len()];
        for (i, f) in input.fields().iter().enumerate() {
            let Some(col) = find(f.name()) else {
                let known: Vec<&str> = schema.fields.iter().map(|c| c.name.as_str()).collect();
                return Err(schema_error(format!(
                    "input column '{}' is not a column of the table (columns: {})",
                    f.name(),
                    known.join(", ")
                )));
            };
            if used[col].replace(i).is_some() {
                return Err(schema_error(format!(
                    "column '{}' appears twice in the input",
                    schema.fields[col].name
                )));
            }
        }
        let mut columns = Vec::with_capacity(schema.fields.len());
        for (i, column) in schema.fields.iter().enumerate() {
            let input = match used[i] {
                Some(index) => {
                    let conversion = Conversion::plan(input.field(index).data_type(), column, &column.name)
                        .map_err(|m| mismatch_error(&table_name, m))?;
                    Some((index, conversion))
                }
                None if field_mode(column) == Mode::Required => {
                    return Err(schema_error(format!(
                        "REQUIRED column '{}' ({}) is missing from the input",
                        column.name,
                        type_name(field_type(column))
                    )));
                }
                None => None,
            };
            columns.push(ColumnPlan {
                column: column.clone(),
                tag: u32::try_from(i + 1).map_err(|_| schema_error("too many columns".into()))?,
                input,
            });
        }
        let (wire, writer_schema) = match options.row_format {
            RowFormat::Proto => {
                let encoded = ProtoSchema {
                    proto_descriptor: Some(descriptor.clone()),
                }
                .encode_to_vec();
                (Wire::Proto, WriterSchema::Proto(Bytes::from(encoded)))
            }
            RowFormat::Arrow | RowFormat::Auto => {
                let present: Vec<&TableFieldSchema> = columns
                    .iter()
                    .filter(|c| c.input.is_some())
                    .map(|c| &c.column)
                    .collect();
                let arrow = ArrowRows::new(&present, options.array_null_elements).map_err(&schema_error)?;
                let schema = WriterSchema::Arrow(arrow.writer_schema());
                (Wire::Arrow(arrow), schema)
            }
        };
        let schema_len = writer_schema.encoded().len();
        let row_budget = options
            .max_request_bytes
            .checked_sub(schema_len + REQUEST_OVERHEAD)
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                schema_error(format!(
                    "max_request_bytes {} is too small for the writer schema ({schema_len} bytes)",
                    options.max_request_bytes
                ))
            })?;
        Ok(Self {
            table: table_name,
            columns,
            write: WriteOptions {
                // Arrow rows are checked by the proto writer's rules, in the packed form.
                encoding: match options.row_format {
                    RowFormat::Proto => options.wire_encoding,
                    RowFormat::Arrow | RowFormat::Auto => WireEncoding::Packed,
                },
                null_elements: options.array_null_elements,
            },
            descriptor,
            writer_schema,
            wire,
            row_budget,
        })
    }

    /// The proto2 descriptor of the rows (sent as `writer_schema` of proto rows).
    pub fn descriptor(&self) -> &DescriptorProto {
        &self.descriptor
    }

    /// The writer schema sent on each connection's first request, encoded.
    pub fn writer_schema(&self) -> &WriterSchema {
        &self.writer_schema
    }

    /// The format of the rows this encoder writes: proto or Arrow.
    pub fn row_format(&self) -> RowFormat {
        match self.wire {
            Wire::Proto => RowFormat::Proto,
            Wire::Arrow(_) => RowFormat::Arrow,
        }
    }

    /// Encodes a batch whose first row is row `first_row` of the whole input (used in errors),
    /// split into groups that each fit one request.
    ///
    /// Column at a time (the `kernels` module): every column adds its fields' sizes to each
    /// row's length, checking its values; for proto rows, the batch's buffer is then
    /// allocated once at its exact size, and every column writes its field into each row's
    /// slot. When several values are invalid, the error names the first row, and in it the
    /// first column.
    pub fn encode(&self, batch: &RecordBatch, first_row: u64) -> Result<Vec<EncodedRows>> {
        match &self.wire {
            Wire::Proto => self.encode_proto(batch, first_row),
            Wire::Arrow(arrow) => {
                let columns = self.canonical_columns(batch, first_row)?;
                self.check(&columns, batch.num_rows(), first_row)?;
                arrow.encode(&self.table, batch.num_rows(), columns, first_row, self.row_budget)
            }
        }
    }

    /// Rows `start..start + len` of `rows` (made by this encoder) as rows of their own.
    pub fn slice(&self, rows: &EncodedRows, start: usize, len: usize) -> Result<EncodedRows> {
        let out_of_range = || Error::Internal(format!("rows {start}+{len} of a request of {} rows", rows.len()));
        if start.checked_add(len).is_none_or(|end| end > rows.len()) {
            return Err(out_of_range());
        }
        match rows.payload() {
            Payload::Proto(bytes) => {
                let from = framed::offset_of(bytes, start).ok_or_else(out_of_range)?;
                let to = framed::offset_of(bytes, start + len).ok_or_else(out_of_range)?;
                Ok(EncodedRows::new(len, Payload::Proto(bytes.slice(from..to))))
            }
            Payload::Arrow(message) => match &self.wire {
                Wire::Arrow(arrow) => Ok(EncodedRows::new(
                    len,
                    Payload::Arrow(arrow.message(&message.batch.slice(start, len))?),
                )),
                Wire::Proto => Err(Error::Internal("Arrow rows given to a proto encoder".into())),
            },
        }
    }

    /// The proto path: checked, measured and written column at a time, from the input's
    /// own types where a kernel reads them.
    fn encode_proto(&self, batch: &RecordBatch, first_row: u64) -> Result<Vec<EncodedRows>> {
        let num_rows = batch.num_rows();
        let mut columns: Vec<Box<dyn ColumnKernel + '_>> = Vec::with_capacity(self.columns.len());
        let mut failures = Vec::new();
        for plan in &self.columns {
            let Some((index, conversion)) = &plan.input else {
                continue;
            };
            let input = batch.column(*index);
            let canonical = || self.convert(plan, conversion, input, first_row);
            match self.kernel(plan, input, canonical)? {
                Ok(kernel) => columns.push(kernel),
                Err(failure) => failures.push(failure),
            }
        }
        let lens = self.lengths(&columns, failures, num_rows, first_row)?;

        // Each row framed in place: its key and length, then its fields.
        let total: usize = lens.iter().map(|len| framed::framed_len(*len)).sum();
        let mut buf = vec![0u8; total];
        let mut pos = Vec::with_capacity(num_rows);
        let mut at = 0;
        for len in &lens {
            let start = framed::put_header(&mut buf, at, *len);
            pos.push(start);
            at = start + len;
        }
        for column in &columns {
            column.write(&mut buf, &mut pos);
        }
        let all = Bytes::from(buf);

        let mut groups = Vec::new();
        let (mut group_start, mut group_rows, mut at) = (0usize, 0usize, 0usize);
        for (row, len) in lens.into_iter().enumerate() {
            let framed = framed::framed_len(len);
            if framed > self.row_budget {
                return Err(self.too_large(first_row + row as u64, framed));
            }
            if at + framed - group_start > self.row_budget {
                groups.push(EncodedRows::new(group_rows, Payload::Proto(all.slice(group_start..at))));
                (group_start, group_rows) = (at, 0);
            }
            group_rows += 1;
            at += framed;
        }
        if group_rows > 0 {
            groups.push(EncodedRows::new(group_rows, Payload::Proto(all.slice(group_start..at))));
        }
        Ok(groups)
    }

    /// Every input column of `batch` in its canonical type, by table column (`None` where
    /// the input lacks the column).
    fn canonical_columns(&self, batch: &RecordBatch, first_row: u64) -> Result<Vec<Option<ArrayRef>>> {
        self.columns
            .iter()
            .map(|plan| {
                plan.input
                    .as_ref()
                    .map(|(index, conversion)| self.convert(plan, conversion, batch.column(*index), first_row))
                    .transpose()
            })
            .collect()
    }

    /// Checks canonical columns against BigQuery's rules (as the proto path does) without
    /// measuring or writing them.
    fn check(&self, columns: &[Option<ArrayRef>], num_rows: usize, first_row: u64) -> Result<()> {
        let mut kernels: Vec<Box<dyn ColumnKernel + '_>> = Vec::with_capacity(columns.len());
        let mut failures = Vec::new();
        for (plan, array) in self.columns.iter().zip(columns) {
            let Some(array) = array else {
                continue;
            };
            match self.kernel(plan, array, || Ok(array.clone()))? {
                Ok(kernel) => kernels.push(kernel),
                Err(failure) => failures.push(failure),
            }
        }
        let mut scratch = vec![0usize; num_rows];
        for kernel in &kernels {
            if let Err(failure) = kernel.check(&mut scratch) {
                failures.push(failure);
            }
        }
        self.first_failure(failures, first_row)
    }

    /// The kernel of `plan`'s column over `array`: a direct one where `kernels` reads the
    /// array's type, else its rows written beforehand from the array in its canonical type
    /// (`canonical`), or the first value that cannot be written.
    fn kernel<'a>(
        &self,
        plan: &'a ColumnPlan,
        array: &'a ArrayRef,
        canonical: impl FnOnce() -> Result<ArrayRef>,
    ) -> Result<std::result::Result<Box<dyn ColumnKernel + 'a>, ValueError>> {
        if let Some(kernel) = kernels::plan(&plan.column, plan.tag, array, self.write) {
            return Ok(Ok(kernel));
        }
        let prewritten = Prewritten::new(&plan.column, plan.tag, &canonical()?, self.write).map_err(Error::Internal)?;
        Ok(prewritten.map(|p| Box::new(p) as Box<dyn ColumnKernel>))
    }

    /// Each row's encoded length; the first failure (by row, then column) as an error.
    fn lengths(
        &self,
        columns: &[Box<dyn ColumnKernel + '_>],
        mut failures: Vec<ValueError>,
        num_rows: usize,
        first_row: u64,
    ) -> Result<Vec<usize>> {
        let mut lens = vec![0usize; num_rows];
        for column in columns {
            if let Err(failure) = column.measure(&mut lens) {
                failures.push(failure);
            }
        }
        self.first_failure(failures, first_row).map(|()| lens)
    }

    /// The failure of the first row (then of its first column) as an error, if any.
    fn first_failure(&self, failures: Vec<ValueError>, first_row: u64) -> Result<()> {
        match failures.into_iter().min_by_key(|f| f.row) {
            Some(first) => Err(first.into_error(&self.table, first_row)),
            None => Ok(()),
        }
    }

    /// `input` converted to the canonical type of `plan`'s column.
    fn convert(
        &self,
        plan: &ColumnPlan,
        conversion: &Conversion,
        input: &ArrayRef,
        first_row: u64,
    ) -> Result<ArrayRef> {
        conversion
            .apply(input)
            .map_err(|e| e.within(&plan.column.name, None).into_error(&self.table, first_row))
    }

    fn too_large(&self, row: u64, bytes: usize) -> Error {
        Error::RowTooLarge {
            table: self.table.clone(),
            row,
            bytes,
            limit: self.row_budget,
        }
    }
}

/// The error for an input type that does not fit its column.
fn mismatch_error(table: &str, mismatch: Mismatch) -> Error {
    match mismatch {
        Mismatch::Type {
            path,
            arrow_type,
            bigquery_type,
        } => Error::UnsupportedType {
            table: table.to_string(),
            column: path,
            arrow_type,
            bigquery_type,
        },
        Mismatch::MissingField { path, column_type } => Error::Schema {
            table: table.to_string(),
            message: format!("column {path}: the input struct lacks this member of {column_type}"),
        },
        Mismatch::ExtraField { path, column_type } => Error::Schema {
            table: table.to_string(),
            message: format!("column {path}: the input struct has a member that {column_type} lacks"),
        },
    }
}

/// The schema the encoder writes: when NULL takes a column's default
/// ([`MissingValues::Default`]), a REQUIRED top-level column that has a default may be left
/// out (absent on the wire), so it is encoded as NULLABLE and the service fills it in.
fn defaults_apply(schema: &TableSchema, rule: MissingValues) -> TableSchema {
    let mut schema = schema.clone();
    if rule == MissingValues::Default {
        for column in &mut schema.fields {
            if field_mode(column) == Mode::Required && !column.default_value_expression.is_empty() {
                column.mode = Mode::Nullable as i32;
            }
        }
    }
    schema
}

#[cfg(test)]
mod tests;
