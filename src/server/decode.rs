//! Decodes proto rows with the writer's descriptor (prost-reflect, independent of the
//! client's encoder) into Arrow columns of the table's schema.

use std::sync::Arc;

use arrow::array::{ArrayRef, ListArray, RecordBatch, new_empty_array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, SchemaRef};
use bytes::Bytes;
use datafusion::common::ScalarValue;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

use crate::proto::TableSchema;
use crate::proto::table_field_schema::{Mode, Type};
use crate::schema::{field_mode, field_type, to_arrow_field, type_name};
use crate::values;

/// A rejected writer schema or row.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The writer schema has a field the table lacks.
    ExtraField(String),
    /// The writer schema does not fit the table.
    Schema(String),
    /// One row is invalid.
    Row { index: usize, message: String },
}

/// One table column and the writer field that fills it.
struct Column {
    name: String,
    ty: Type,
    mode: Mode,
    field: Option<FieldDescriptor>,
    element_type: DataType,
}

/// Decodes the rows of one writer schema for one table.
pub(crate) struct RowDecoder {
    message: MessageDescriptor,
    columns: Vec<Column>,
    schema: SchemaRef,
}

impl RowDecoder {
    /// Checks the writer's descriptor against the table and plans the decoding.
    pub(crate) fn new(
        descriptor: &DescriptorProto,
        table: &TableSchema,
        schema: SchemaRef,
    ) -> Result<Self, DecodeError> {
        let message = message_descriptor(descriptor).map_err(DecodeError::Schema)?;
        for field in message.fields() {
            if !table.fields.iter().any(|c| c.name.eq_ignore_ascii_case(field.name())) {
                return Err(DecodeError::ExtraField(field.name().to_string()));
            }
        }
        let mut columns = Vec::with_capacity(table.fields.len());
        for column in &table.fields {
            let field = message.fields().find(|f| f.name().eq_ignore_ascii_case(&column.name));
            let (ty, mode) = (field_type(column), field_mode(column));
            if let Some(f) = &field {
                check_kind(column.name.as_str(), ty, mode, f)?;
            } else if mode == Mode::Required {
                return Err(DecodeError::Schema(format!(
                    "writer schema lacks REQUIRED column {}",
                    column.name
                )));
            }
            let arrow = to_arrow_field(column);
            let element_type = match (mode, arrow.data_type()) {
                (Mode::Repeated, DataType::List(item)) => item.data_type().clone(),
                (_, t) => t.clone(),
            };
            columns.push(Column {
                name: column.name.clone(),
                ty,
                mode,
                field,
                element_type,
            });
        }
        Ok(Self {
            message,
            columns,
            schema,
        })
    }

    /// Decodes serialized rows into one batch of the table's schema.
    pub(crate) fn decode(&self, rows: &[Bytes]) -> Result<RecordBatch, DecodeError> {
        let messages = rows
            .iter()
            .enumerate()
            .map(|(index, row)| {
                DynamicMessage::decode(self.message.clone(), row.clone()).map_err(|e| DecodeError::Row {
                    index,
                    message: format!("cannot parse row: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let arrays = self
            .columns
            .iter()
            .map(|column| self.decode_column(column, &messages))
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| DecodeError::Schema(e.to_string()))
    }

    fn decode_column(&self, column: &Column, messages: &[DynamicMessage]) -> Result<ArrayRef, DecodeError> {
        let null = ScalarValue::try_from(&column.element_type).map_err(|e| DecodeError::Schema(e.to_string()))?;
        let row_error = |index: usize, message: String| DecodeError::Row {
            index,
            message: format!("column {}: {message}", column.name),
        };
        if column.mode == Mode::Repeated {
            let mut elements = Vec::new();
            let mut offsets = vec![0i32];
            for (index, message) in messages.iter().enumerate() {
                if let Some(field) = &column.field
                    && let Value::List(items) = message.get_field(field).as_ref()
                {
                    for item in items {
                        elements
                            .push(to_scalar(column.ty, &column.element_type, item).map_err(|m| row_error(index, m))?);
                    }
                }
                offsets.push(i32::try_from(elements.len()).map_err(|_| row_error(index, "too many elements".into()))?);
            }
            let values = if elements.is_empty() {
                new_empty_array(&column.element_type)
            } else {
                ScalarValue::iter_to_array(elements).map_err(|e| DecodeError::Schema(e.to_string()))?
            };
            let item = Arc::new(Field::new("item", column.element_type.clone(), false));
            let list = ListArray::try_new(item, OffsetBuffer::new(offsets.into()), values, None)
                .map_err(|e| DecodeError::Schema(e.to_string()))?;
            return Ok(Arc::new(list));
        }
        let mut scalars = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let present = column.field.as_ref().filter(|f| message.has_field(f));
            match present {
                Some(field) => {
                    let value = message.get_field(field);
                    scalars.push(
                        to_scalar(column.ty, &column.element_type, value.as_ref()).map_err(|m| row_error(index, m))?,
                    );
                }
                None if column.mode == Mode::Required => {
                    return Err(row_error(index, "REQUIRED field is missing".into()));
                }
                None => scalars.push(null.clone()),
            }
        }
        if scalars.is_empty() {
            return Ok(new_empty_array(&column.element_type));
        }
        ScalarValue::iter_to_array(scalars).map_err(|e| DecodeError::Schema(e.to_string()))
    }
}

/// Wraps a self-contained row descriptor in a file and resolves it.
fn message_descriptor(descriptor: &DescriptorProto) -> Result<MessageDescriptor, String> {
    let name = descriptor.name.clone().unwrap_or_default();
    let file = FileDescriptorProto {
        name: Some("writer_schema.proto".into()),
        syntax: Some("proto2".into()),
        message_type: vec![descriptor.clone()],
        ..Default::default()
    };
    let pool = DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] })
        .map_err(|e| format!("invalid writer schema: {e}"))?;
    pool.get_message_by_name(&name)
        .ok_or_else(|| format!("writer schema has no message {name}"))
}

/// Checks that a writer field can carry the column's values.
fn check_kind(column: &str, ty: Type, mode: Mode, field: &FieldDescriptor) -> Result<(), DecodeError> {
    if (mode == Mode::Repeated) != field.is_list() {
        return Err(DecodeError::Schema(format!(
            "column {column}: field {} has the wrong cardinality",
            field.name()
        )));
    }
    let kind = field.kind();
    let ok = match ty {
        Type::Int64 => matches!(
            kind,
            Kind::Int64
                | Kind::Int32
                | Kind::Sint64
                | Kind::Sint32
                | Kind::Uint32
                | Kind::Sfixed64
                | Kind::Sfixed32
                | Kind::Fixed32
        ),
        Type::Double => matches!(kind, Kind::Double | Kind::Float),
        Type::Bool => matches!(kind, Kind::Bool),
        Type::String | Type::Json | Type::Geography | Type::Interval => matches!(kind, Kind::String),
        Type::Bytes => matches!(kind, Kind::Bytes),
        Type::Date => matches!(kind, Kind::Int32 | Kind::Int64 | Kind::String),
        Type::Timestamp => matches!(kind, Kind::Int64 | Kind::String),
        Type::Datetime | Type::Time => matches!(kind, Kind::Int64 | Kind::String),
        Type::Numeric | Type::Bignumeric => matches!(kind, Kind::Bytes | Kind::String),
        Type::Struct | Type::Range | Type::Unspecified => false,
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::Schema(format!(
            "column {column} ({}) cannot be written from a {kind:?} field",
            type_name(ty)
        )))
    }
}

/// One proto value as a scalar of the column's element type.
fn to_scalar(ty: Type, arrow: &DataType, value: &Value) -> Result<ScalarValue, String> {
    let bad = || format!("value {value:?} is not a valid {}", type_name(ty));
    let int = || match value {
        Value::I64(v) => Some(*v),
        Value::I32(v) => Some(i64::from(*v)),
        Value::U32(v) => Some(i64::from(*v)),
        _ => None,
    };
    let text = || match value {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    };
    Ok(match ty {
        Type::Int64 => ScalarValue::Int64(Some(int().ok_or_else(bad)?)),
        Type::Double => ScalarValue::Float64(Some(match value {
            Value::F64(v) => *v,
            Value::F32(v) => f64::from(*v),
            _ => return Err(bad()),
        })),
        Type::Bool => ScalarValue::Boolean(Some(value.as_bool().ok_or_else(bad)?)),
        Type::String | Type::Json | Type::Geography | Type::Interval => {
            ScalarValue::Utf8(Some(text().ok_or_else(bad)?.to_string()))
        }
        Type::Bytes => ScalarValue::Binary(Some(value.as_bytes().ok_or_else(bad)?.to_vec())),
        Type::Date => {
            let days = match text() {
                Some(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(|d| (d - chrono::NaiveDate::default()).num_days())
                    .map_err(|_| bad())?,
                None => int().ok_or_else(bad)?,
            };
            let days = i32::try_from(days)
                .ok()
                .filter(|d| (values::DATE_MIN_DAYS..=values::DATE_MAX_DAYS).contains(d))
                .ok_or_else(bad)?;
            ScalarValue::Date32(Some(days))
        }
        Type::Timestamp => {
            let micros = match text() {
                Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| t.timestamp_micros())
                    .map_err(|_| bad())?,
                None => int().ok_or_else(bad)?,
            };
            if !(values::MICROS_MIN..=values::MICROS_MAX).contains(&micros) {
                return Err(bad());
            }
            ScalarValue::TimestampMicrosecond(Some(micros), timezone(arrow))
        }
        Type::Datetime => {
            let micros = match text() {
                Some(s) => values::parse_datetime_text(s),
                None => int().and_then(values::unpack_datetime),
            }
            .ok_or_else(bad)?;
            ScalarValue::TimestampMicrosecond(Some(micros), None)
        }
        Type::Time => {
            let micros = match text() {
                Some(s) => values::parse_time_text(s),
                None => int().and_then(values::unpack_time),
            }
            .ok_or_else(bad)?;
            ScalarValue::Time64Microsecond(Some(micros))
        }
        Type::Numeric => {
            let unscaled = match value {
                Value::String(s) => values::parse_decimal_i128(s, values::NUMERIC_SCALE),
                Value::Bytes(b) => values::unpack_numeric(b),
                _ => None,
            }
            .filter(|v| v.abs() <= values::NUMERIC_MAX_UNSCALED)
            .ok_or_else(bad)?;
            ScalarValue::Decimal128(Some(unscaled), 38, 9)
        }
        Type::Bignumeric => {
            let unscaled = match value {
                Value::String(s) => values::parse_decimal_i256(s, values::BIGNUMERIC_SCALE),
                Value::Bytes(b) => values::unpack_bignumeric(b),
                _ => None,
            }
            .ok_or_else(bad)?;
            ScalarValue::Decimal256(Some(unscaled), 76, 38)
        }
        Type::Struct | Type::Range | Type::Unspecified => return Err(bad()),
    })
}

fn timezone(arrow: &DataType) -> Option<Arc<str>> {
    match arrow {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    }
}
