//! Arrow record batches -> proto2 rows (`ProtoRows`), split into requests under a byte limit.
//!
//! The encoder is planned once per load from the table schema and the input schema, then
//! applied to every batch. Input columns are matched to table columns by name (exact, then
//! case-insensitive, as BigQuery does), converted exactly to the column's canonical Arrow type
//! (`normalize`), and written straight into one buffer per batch (`columns`); each row is a
//! slice of it. Every failure names the table, the column path, the row and the value.

mod columns;
mod kernels;
mod normalize;
mod settings;

pub use settings::{ArrayNullElements, EncodeOptions, MissingValues, WireEncoding};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use bytes::Bytes;
use prost::Message;

use crate::error::{Error, Result};
use crate::proto::descriptor::DescriptorProto;
use crate::proto::table_field_schema::Mode;
use crate::proto::{TableFieldSchema, TableSchema};
use crate::schema::{field_mode, field_type, row_descriptor, type_name};
use columns::{ValueError, ValueErrorKind, WriteOptions};
use kernels::{ColumnKernel, Prewritten};
use normalize::{Conversion, Mismatch};

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

/// Rows of one AppendRows request.
#[derive(Debug, Clone, Default)]
pub struct EncodedRows {
    /// One serialized proto2 message per row.
    pub rows: Vec<Bytes>,
    /// Size of the rows as they travel in `ProtoRows`, framing included.
    pub bytes: usize,
}

impl EncodedRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True if there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Encodes batches of one input schema for one table.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use datafusion_bigquery::encode::{EncodeOptions, RowEncoder};
/// use datafusion_bigquery::schema::{field, table_schema};
/// use datafusion_bigquery::proto::table_field_schema::{Mode, Type};
///
/// let schema = table_schema(vec![field("id", Type::Int64, Mode::Required)]);
/// let input = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
/// let encoder = RowEncoder::new("p.d.t", &schema, &input, &EncodeOptions::default()).unwrap();
/// let batch = RecordBatch::try_new(input, vec![Arc::new(Int64Array::from(vec![1, 150]))]).unwrap();
/// let requests = encoder.encode(&batch, 0).unwrap();
/// assert_eq!(requests[0].rows[1].as_ref(), &[0x08, 0x96, 0x01]); // field 1, varint 150
/// ```
#[derive(Debug, Clone)]
pub struct RowEncoder {
    table: String,
    columns: Vec<ColumnPlan>,
    write: WriteOptions,
    descriptor: DescriptorProto,
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
        let descriptor_len = descriptor.encoded_len();
        let row_budget = options
            .max_request_bytes
            .checked_sub(descriptor_len + REQUEST_OVERHEAD)
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                schema_error(format!(
                    "max_request_bytes {} is too small for the row descriptor ({descriptor_len} bytes)",
                    options.max_request_bytes
                ))
            })?;
        Ok(Self {
            table: table_name,
            columns,
            write: WriteOptions {
                encoding: options.wire_encoding,
                null_elements: options.array_null_elements,
            },
            descriptor,
            row_budget,
        })
    }

    /// The proto2 descriptor of the rows, sent as `writer_schema`.
    pub fn descriptor(&self) -> &DescriptorProto {
        &self.descriptor
    }

    /// Encodes a batch whose first row is row `first_row` of the whole input (used in errors),
    /// split into groups that each fit one request.
    ///
    /// Column at a time (the `kernels` module): every column adds its fields' sizes to each row's
    /// length, the batch's buffer is allocated once at its exact size, then every column
    /// writes its field into each row's slot. When several values are invalid, the error
    /// names the first row, and in it the first column.
    pub fn encode(&self, batch: &RecordBatch, first_row: u64) -> Result<Vec<EncodedRows>> {
        let num_rows = batch.num_rows();
        let mut columns: Vec<Box<dyn ColumnKernel + '_>> = Vec::with_capacity(self.columns.len());
        let mut failures = Vec::new();
        for plan in &self.columns {
            let Some((index, conversion)) = &plan.input else {
                continue;
            };
            let input = batch.column(*index);
            if let Some(kernel) = kernels::plan(&plan.column, plan.tag, input, self.write) {
                columns.push(kernel);
                continue;
            }
            let canonical = conversion.apply(input).map_err(|r| Error::InvalidValue {
                table: self.table.clone(),
                column: format!("{}{}", plan.column.name, r.path),
                row: first_row + r.index as u64,
                value: r.value,
                reason: r.reason,
            })?;
            match Prewritten::new(&plan.column, plan.tag, &canonical, self.write).map_err(Error::Internal)? {
                Ok(prewritten) => columns.push(Box::new(prewritten)),
                Err(failure) => failures.push(failure),
            }
        }
        let mut lens = vec![0usize; num_rows];
        for column in &columns {
            if let Err(failure) = column.measure(&mut lens) {
                failures.push(failure);
            }
        }
        if let Some(first) = failures.into_iter().min_by_key(|f| f.row) {
            return Err(self.value_error(first.error, first_row + first.row as u64));
        }

        let mut pos = Vec::with_capacity(num_rows);
        let mut total = 0usize;
        for len in &lens {
            pos.push(total);
            total += len;
        }
        let mut buf = vec![0u8; total];
        for column in &columns {
            column.write(&mut buf, &mut pos);
        }
        let all = Bytes::from(buf);

        let mut groups = vec![EncodedRows::default()];
        let mut start = 0;
        for (row, len) in lens.into_iter().enumerate() {
            let framed = 1 + prost::length_delimiter_len(len) + len;
            if framed > self.row_budget {
                return Err(Error::RowTooLarge {
                    table: self.table.clone(),
                    row: first_row + row as u64,
                    bytes: framed,
                    limit: self.row_budget,
                });
            }
            let group = groups.last_mut().filter(|g| g.bytes + framed <= self.row_budget);
            let group = match group {
                Some(g) => g,
                None => {
                    groups.push(EncodedRows::default());
                    groups.last_mut().ok_or_else(|| Error::Internal("no group".into()))?
                }
            };
            group.rows.push(all.slice(start..start + len));
            group.bytes += framed;
            start += len;
        }
        groups.retain(|g| !g.is_empty());
        Ok(groups)
    }

    fn value_error(&self, err: ValueError, row: u64) -> Error {
        let (table, column) = (self.table.clone(), err.path);
        match err.kind {
            ValueErrorKind::NullInRequired => Error::NullInRequired { table, column, row },
            ValueErrorKind::Invalid { value, reason } => Error::InvalidValue {
                table,
                column,
                row,
                value,
                reason,
            },
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
