//! Arrow record batches -> proto2 rows (`ProtoRows`), split into requests under a byte limit.
//!
//! The encoder is planned once per load from the table schema and the input schema, then
//! applied to every batch. Input columns are matched to table columns by name (exact, then
//! case-insensitive, as BigQuery does), converted exactly to the column's canonical Arrow type,
//! and written straight into one buffer per batch; each row is a slice of it.

mod columns;
mod normalize;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use bytes::Bytes;
use prost::Message;
use prost_types::DescriptorProto;

use crate::error::{Error, Result};
use crate::options::{BigQueryOptions, WireEncoding};
use crate::proto::TableSchema;
use crate::proto::table_field_schema::{Mode, Type};
use crate::schema::{field_mode, field_type, row_descriptor, to_arrow_field, type_name};
use crate::table_ref::TableRef;
use columns::{ValueError, Values};

/// Bytes reserved in every request for the stream name, offset, and framing.
const REQUEST_OVERHEAD: usize = 1024;

/// How one table column is filled.
#[derive(Debug, Clone)]
struct ColumnPlan {
    name: String,
    tag: u32,
    ty: Type,
    mode: Mode,
    /// Index of the input column, or `None` when the input lacks this (nullable) column.
    input: Option<usize>,
    /// Canonical Arrow type the input is converted to.
    target: DataType,
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
/// use datafusion_bigquery::encode::RowEncoder;
/// use datafusion_bigquery::schema::{field, table_schema};
/// use datafusion_bigquery::proto::table_field_schema::{Mode, Type};
/// use datafusion_bigquery::{BigQueryOptions, TableRef};
///
/// let table: TableRef = "p.d.t".parse().unwrap();
/// let schema = table_schema(vec![field("id", Type::Int64, Mode::Required)]);
/// let input = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
/// let encoder = RowEncoder::new(&table, &schema, &input, &BigQueryOptions::default()).unwrap();
/// let batch = RecordBatch::try_new(input, vec![Arc::new(Int64Array::from(vec![1, 150]))]).unwrap();
/// let requests = encoder.encode(&batch, 0).unwrap();
/// assert_eq!(requests[0].rows[1].as_ref(), &[0x08, 0x96, 0x01]); // field 1, varint 150
/// ```
#[derive(Debug, Clone)]
pub struct RowEncoder {
    table: String,
    columns: Vec<ColumnPlan>,
    encoding: WireEncoding,
    descriptor: DescriptorProto,
    row_budget: usize,
}

impl RowEncoder {
    /// Plans the encoding of batches with schema `input` into rows of `schema`.
    pub fn new(table: &TableRef, schema: &TableSchema, input: &Schema, options: &BigQueryOptions) -> Result<Self> {
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
            let ty = field_type(column);
            let mode = field_mode(column);
            // Lists are converted with nullable items; NULL elements are then reported by row.
            let target = match to_arrow_field(column).data_type() {
                DataType::List(item) => DataType::List(std::sync::Arc::new(item.as_ref().clone().with_nullable(true))),
                other => other.clone(),
            };
            if let Some(input_index) = used[i] {
                let input_type = input.field(input_index).data_type();
                let element_ok = match (mode, input_type) {
                    (Mode::Repeated, DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)) => {
                        normalize::compatible(f.data_type(), ty)
                    }
                    (Mode::Repeated, DataType::Null) => true,
                    (Mode::Repeated, _) => false,
                    (_, t) => normalize::compatible(t, ty),
                };
                if !element_ok || matches!(ty, Type::Struct | Type::Range) {
                    return Err(Error::UnsupportedType {
                        table: table_name.clone(),
                        column: column.name.clone(),
                        arrow_type: input_type.to_string(),
                        bigquery_type: crate::schema::describe_column(column),
                    });
                }
            } else if mode == Mode::Required {
                return Err(schema_error(format!(
                    "REQUIRED column '{}' ({}) is missing from the input",
                    column.name,
                    type_name(ty)
                )));
            }
            columns.push(ColumnPlan {
                name: column.name.clone(),
                tag: u32::try_from(i + 1).map_err(|_| schema_error("too many columns".into()))?,
                ty,
                mode,
                input: used[i],
                target,
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
            encoding: options.wire_encoding,
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
    pub fn encode(&self, batch: &RecordBatch, first_row: u64) -> Result<Vec<EncodedRows>> {
        let num_rows = batch.num_rows();
        let arrays = self.canonical_columns(batch, first_row)?;
        let mut writers = Vec::with_capacity(self.columns.len());
        for (plan, array) in self.columns.iter().zip(&arrays) {
            if let Some(array) = array {
                let values = Values::new(array, plan.ty, plan.mode == Mode::Repeated, self.encoding)
                    .ok_or_else(|| Error::Internal(format!("column {} is not {}", plan.name, plan.target)))?;
                writers.push((plan, values));
            }
        }
        let mut buf = Vec::with_capacity(num_rows * 16 * writers.len().max(1));
        let mut ends = Vec::with_capacity(num_rows);
        for row in 0..num_rows {
            for (plan, values) in &writers {
                values
                    .write(row, plan.tag, plan.mode == Mode::Required, &mut buf)
                    .map_err(|e| self.value_error(e, plan, values_array(batch, plan), row, first_row))?;
            }
            ends.push(buf.len());
        }
        let all = Bytes::from(buf);
        let mut groups = vec![EncodedRows::default()];
        let mut start = 0;
        for (row, end) in ends.into_iter().enumerate() {
            let len = end - start;
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
            group.rows.push(all.slice(start..end));
            group.bytes += framed;
            start = end;
        }
        groups.retain(|g| !g.is_empty());
        Ok(groups)
    }

    /// The input columns converted to each table column's canonical type (`None`: absent).
    fn canonical_columns(&self, batch: &RecordBatch, first_row: u64) -> Result<Vec<Option<ArrayRef>>> {
        self.columns
            .iter()
            .map(|plan| {
                let Some(index) = plan.input else { return Ok(None) };
                let array = batch.column(index);
                let converted = match (plan.mode, array.data_type()) {
                    (Mode::Repeated, DataType::Null) => arrow::array::new_null_array(&plan.target, array.len()),
                    _ => normalize::to_canonical(array, &plan.target).map_err(|r| Error::InvalidValue {
                        table: self.table.clone(),
                        column: plan.name.clone(),
                        row: first_row + r.row as u64,
                        value: r.value,
                        reason: r.reason,
                    })?,
                };
                Ok(Some(converted))
            })
            .collect()
    }

    fn value_error(
        &self,
        err: ValueError,
        plan: &ColumnPlan,
        input: Option<&ArrayRef>,
        row: usize,
        first_row: u64,
    ) -> Error {
        let (table, column, row_index) = (self.table.clone(), plan.name.clone(), first_row + row as u64);
        let value = || input.map(|a| normalize::display(a.as_ref(), row)).unwrap_or_default();
        match err {
            ValueError::NullInRequired => Error::NullInRequired {
                table,
                column,
                row: row_index,
            },
            ValueError::NullElement(i) => Error::InvalidValue {
                table,
                column,
                row: row_index,
                value: value(),
                reason: format!("has a NULL element at index {i}; BigQuery arrays cannot hold NULL"),
            },
            ValueError::OutOfRange(reason) => Error::InvalidValue {
                table,
                column,
                row: row_index,
                value: value(),
                reason,
            },
        }
    }
}

fn values_array<'a>(batch: &'a RecordBatch, plan: &ColumnPlan) -> Option<&'a ArrayRef> {
    plan.input.map(|i| batch.column(i))
}

#[cfg(test)]
mod tests;
