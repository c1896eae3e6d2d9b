//! Decodes proto rows with the writer's descriptor (prost-reflect, independent of the
//! client's encoder) into Arrow columns of the table's canonical schema: every type,
//! STRUCT and RANGE as nested messages, REPEATED as lists. A writer field is matched to a
//! column by its `column_name` option when it has one, else by its name (ignoring case).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array, Float64Array,
    Int64Array, IntervalMonthDayNanoArray, ListArray, RecordBatch, StringArray, StructArray, Time64MicrosecondArray,
    TimestampMicrosecondArray, TimestampNanosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields, IntervalMonthDayNano, SchemaRef, TimeUnit, i256};
use bytes::Bytes;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use prost_types::{FileDescriptorProto, FileDescriptorSet};

use super::defaults::{DefaultRule, Interpretation};
use super::text_forms;
use super::wire_forms;
use crate::proto::descriptor::DescriptorProto;
use crate::proto::table_field_schema::{Mode, Type};
use crate::proto::{TableFieldSchema, TableSchema};
use crate::schema::{field_mode, field_type, nested_members, to_arrow_field, type_name};
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

/// One table column (or STRUCT/RANGE member) and the writer field that fills it.
struct Column {
    /// Path for messages, e.g. `s.x`.
    path: String,
    ty: Type,
    mode: Mode,
    field: Option<FieldDescriptor>,
    /// Canonical Arrow type of one value (of one element if REPEATED).
    element_type: DataType,
    /// The list's item field if REPEATED.
    item: Option<FieldRef>,
    /// STRUCT members or RANGE bounds.
    members: Vec<Column>,
    /// The column's default expression (top-level columns), applied to absent values when a
    /// request asks for it.
    default: Option<String>,
    /// REQUIRED in the table, checked after defaults were applied (`mode` is then NULLABLE).
    required_after_defaults: bool,
}

/// Real column names carried in `column_name` field options: (message full name, field number).
type ColumnNames = HashMap<(String, u32), String>;

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
        let mut names = ColumnNames::new();
        collect_column_names(descriptor, "", &mut names);
        let columns = plan(&message, &table.fields, &names, "")?;
        Ok(Self {
            message,
            columns,
            schema,
        })
    }

    /// Decodes serialized rows into one batch of the table's schema, absent values of columns
    /// with a default read as `missing` says.
    pub(crate) fn decode(&self, rows: &[Bytes], missing: &Interpretation) -> Result<RecordBatch, DecodeError> {
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
        let rows: Vec<Option<Cow<'_, Value>>> = messages
            .into_iter()
            .map(|m| Some(Cow::Owned(Value::Message(m))))
            .collect();
        let arrays = self
            .columns
            .iter()
            .map(|column| {
                let values =
                    member_values(column, &rows).map_err(|(index, message)| DecodeError::Row { index, message })?;
                let array =
                    decode_field(column, &values).map_err(|(index, message)| DecodeError::Row { index, message })?;
                apply_default(column, array, missing)
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| DecodeError::Schema(e.to_string()))
    }
}

/// Wraps a self-contained row descriptor in a file and resolves it.
fn message_descriptor(descriptor: &DescriptorProto) -> Result<MessageDescriptor, String> {
    // The same message on the wire; the standard type only drops the column_name option.
    let mut standard = prost_types::DescriptorProto::decode(descriptor.encode_to_vec().as_slice())
        .map_err(|e| format!("invalid writer schema: {e}"))?;
    // JSON names play no part in binary rows; naming each field's after the field keeps the
    // resolver from refusing distinct columns such as `a_b` and `aB` that share a JSON form.
    set_json_names(&mut standard);
    let name = standard.name.clone().unwrap_or_default();
    let file = FileDescriptorProto {
        name: Some("writer_schema.proto".into()),
        syntax: Some("proto2".into()),
        message_type: vec![standard],
        ..Default::default()
    };
    let pool = DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] })
        .map_err(|e| format!("invalid writer schema: {e}"))?;
    pool.get_message_by_name(&name)
        .ok_or_else(|| format!("writer schema has no message {name}"))
}

fn set_json_names(message: &mut prost_types::DescriptorProto) {
    for field in &mut message.field {
        field.json_name = field.name.clone();
    }
    message.nested_type.iter_mut().for_each(set_json_names);
}

fn collect_column_names(message: &DescriptorProto, parent: &str, names: &mut ColumnNames) {
    let full_name = if parent.is_empty() {
        message.name().to_string()
    } else {
        format!("{parent}.{}", message.name())
    };
    for field in &message.field {
        if let Some(column) = field.options.as_ref().and_then(|o| o.column_name.clone()) {
            names.insert((full_name.clone(), field.number() as u32), column);
        }
    }
    for nested in &message.nested_type {
        collect_column_names(nested, &full_name, names);
    }
}

/// Matches the fields of `message` to `members`, recursively.
fn plan(
    message: &MessageDescriptor,
    members: &[TableFieldSchema],
    names: &ColumnNames,
    parent: &str,
) -> Result<Vec<Column>, DecodeError> {
    let column_name = |f: &FieldDescriptor| {
        names
            .get(&(message.full_name().to_string(), f.number()))
            .cloned()
            .unwrap_or_else(|| f.name().to_string())
    };
    let path = |name: &str| {
        if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}.{name}")
        }
    };
    for field in message.fields() {
        let name = column_name(&field);
        if !members.iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
            return Err(DecodeError::ExtraField(path(&name)));
        }
    }
    let mut columns = Vec::with_capacity(members.len());
    for member in members {
        let field = message
            .fields()
            .find(|f| column_name(f).eq_ignore_ascii_case(&member.name));
        let (ty, mut mode) = (field_type(member), field_mode(member));
        let default = (parent.is_empty() && !member.default_value_expression.is_empty())
            .then(|| member.default_value_expression.clone());
        let required_after_defaults = default.is_some() && mode == Mode::Required;
        if required_after_defaults {
            // May be absent from the writer schema and the rows: the default fills it in.
            mode = Mode::Nullable;
        }
        let member_path = path(&member.name);
        if let Some(f) = &field {
            check_kind(&member_path, ty, mode, f)?;
        } else if mode == Mode::Required {
            return Err(DecodeError::Schema(format!(
                "writer schema lacks REQUIRED field {member_path}"
            )));
        }
        let (element_type, item) = match (mode, to_arrow_field(member).data_type()) {
            (Mode::Repeated, DataType::List(item)) => (item.data_type().clone(), Some(item.clone())),
            (_, t) => (t.clone(), None),
        };
        let nested = match (&field, ty) {
            (Some(f), Type::Struct | Type::Range) => {
                let Kind::Message(inner) = f.kind() else {
                    return Err(DecodeError::Schema(format!(
                        "column {member_path} needs a message field"
                    )));
                };
                let inner_members = nested_members(member).map_err(DecodeError::Schema)?;
                plan(&inner, &inner_members, names, &member_path)?
            }
            _ => Vec::new(),
        };
        columns.push(Column {
            path: member_path,
            ty,
            mode,
            field,
            element_type,
            item,
            members: nested,
            default,
            required_after_defaults,
        });
    }
    Ok(columns)
}

/// Fills the NULLs of a top-level column with its default when the request asks for it, and
/// checks a REQUIRED column with a default once that is done.
fn apply_default(column: &Column, array: ArrayRef, missing: &Interpretation) -> Result<ArrayRef, DecodeError> {
    let Some(expression) = &column.default else {
        return Ok(array);
    };
    let rule = DefaultRule {
        column: column.path.clone(),
        expression: expression.clone(),
        arrow_type: column.element_type.clone(),
        required: column.required_after_defaults,
    };
    rule.apply(array, missing).map_err(|(index, message)| match index {
        Some(index) => DecodeError::Row { index, message },
        None => DecodeError::Schema(message),
    })
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
        Type::Struct | Type::Range => matches!(kind, Kind::Message(_)),
        Type::Unspecified => false,
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

/// A decoding failure: the index of the value in the array being decoded, and why.
type Failure = (usize, String);

/// The values of `column`'s field in each of `parents` (messages, or `None` where the parent
/// itself is NULL); a missing REQUIRED field fails.
fn member_values<'a>(
    column: &Column,
    parents: &'a [Option<Cow<'a, Value>>],
) -> Result<Vec<Option<Cow<'a, Value>>>, Failure> {
    parents
        .iter()
        .enumerate()
        .map(|(index, parent)| {
            let Some(Value::Message(message)) = parent.as_deref() else {
                return Ok(None);
            };
            match &column.field {
                Some(f) if message.has_field(f) => Ok(Some(message.get_field(f))),
                _ if column.mode == Mode::Required => {
                    Err((index, format!("REQUIRED field {} is missing", column.path)))
                }
                _ => Ok(None),
            }
        })
        .collect()
}

/// Decodes one field's values (lists for a REPEATED field).
fn decode_field(column: &Column, values: &[Option<Cow<'_, Value>>]) -> Result<ArrayRef, Failure> {
    let Some(item) = &column.item else {
        return decode_values(column, values);
    };
    let mut elements = Vec::new();
    let mut offsets = vec![0i32];
    for (index, value) in values.iter().enumerate() {
        if let Some(Value::List(items)) = value.as_deref() {
            elements.extend(items.iter().map(|v| Some(Cow::Borrowed(v))));
        }
        let end = i32::try_from(elements.len()).map_err(|_| (index, "too many elements".to_string()))?;
        offsets.push(end);
    }
    let array = decode_values(column, &elements).map_err(|(i, message)| {
        let row = offsets.partition_point(|&o| o as usize <= i).saturating_sub(1);
        (row, message)
    })?;
    if array.null_count() > 0 {
        return Err((0, format!("column {}: NULL array element", column.path)));
    }
    ListArray::try_new(item.clone(), OffsetBuffer::new(offsets.into()), array, None)
        .map(|l| Arc::new(l) as ArrayRef)
        .map_err(|e| (0, e.to_string()))
}

/// Decodes single values of the column's element type.
fn decode_values(column: &Column, values: &[Option<Cow<'_, Value>>]) -> Result<ArrayRef, Failure> {
    if let DataType::Struct(fields) = &column.element_type {
        return decode_struct(column, fields, values);
    }
    let read = |index: usize, value: &Value| {
        read_value(column.ty, &column.element_type, value).map_err(|m| (index, format!("column {}: {m}", column.path)))
    };
    // Each value read as `T` (`None` where absent), then one array of them.
    fn each<T>(
        values: &[Option<Cow<'_, Value>>],
        read: impl Fn(usize, &Value) -> Result<Read, Failure>,
        pick: impl Fn(Read) -> Option<T>,
    ) -> Result<Vec<Option<T>>, Failure> {
        values
            .iter()
            .enumerate()
            .map(|(index, value)| match value {
                Some(v) => read(index, v).and_then(|r| pick(r).map(Some).ok_or((index, "unexpected value".into()))),
                None => Ok(None),
            })
            .collect()
    }
    let tz = match &column.element_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let decimal_failure = |e: arrow::error::ArrowError| (0, format!("column {}: {e}", column.path));
    let array: ArrayRef = match &column.element_type {
        DataType::Int64 => Arc::new(Int64Array::from(each(values, read, Read::int)?)),
        DataType::Float64 => Arc::new(Float64Array::from(each(values, read, Read::float)?)),
        DataType::Boolean => Arc::new(BooleanArray::from(each(values, read, Read::bool)?)),
        DataType::Utf8 => Arc::new(StringArray::from(each(values, read, Read::text)?)),
        DataType::Binary => Arc::new(BinaryArray::from_iter(each(values, read, Read::bytes)?)),
        DataType::Date32 => Arc::new(Date32Array::from(each(values, read, Read::date)?)),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Arc::new(TimestampNanosecondArray::from(each(values, read, Read::int)?).with_timezone_opt(tz))
        }
        DataType::Timestamp(_, _) => {
            Arc::new(TimestampMicrosecondArray::from(each(values, read, Read::int)?).with_timezone_opt(tz))
        }
        DataType::Time64(_) => Arc::new(Time64MicrosecondArray::from(each(values, read, Read::int)?)),
        DataType::Decimal128(p, s) => Arc::new(
            Decimal128Array::from(each(values, read, Read::numeric)?)
                .with_precision_and_scale(*p, *s)
                .map_err(decimal_failure)?,
        ),
        DataType::Decimal256(p, s) => Arc::new(
            Decimal256Array::from(each(values, read, Read::bignumeric)?)
                .with_precision_and_scale(*p, *s)
                .map_err(decimal_failure)?,
        ),
        DataType::Interval(_) => Arc::new(IntervalMonthDayNanoArray::from(each(values, read, Read::interval)?)),
        other => return Err((0, format!("column {}: no values of {other}", column.path))),
    };
    Ok(array)
}

/// A STRUCT or RANGE: one child array per member, NULL where the message is absent.
fn decode_struct(column: &Column, fields: &Fields, values: &[Option<Cow<'_, Value>>]) -> Result<ArrayRef, Failure> {
    let children = column
        .members
        .iter()
        .map(|member| decode_field(member, &member_values(member, values)?))
        .collect::<Result<Vec<_>, _>>()?;
    if column.ty == Type::Range
        && let [start, end] = children.as_slice()
    {
        let ordered = arrow::compute::kernels::cmp::lt(start, end).map_err(|e| (0, e.to_string()))?;
        if let Some(index) = (0..ordered.len()).find(|&i| ordered.is_valid(i) && !ordered.value(i)) {
            return Err((
                index,
                format!("column {}: RANGE start is not before its end", column.path),
            ));
        }
    }
    let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    StructArray::try_new(fields.clone(), children, nulls)
        .map(|s| Arc::new(s) as ArrayRef)
        .map_err(|e| (0, format!("column {}: {e}", column.path)))
}

/// One value read from a proto field, in the form of its column's Arrow type.
enum Read {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    Date(i32),
    Numeric(i128),
    BigNumeric(i256),
    Interval(IntervalMonthDayNano),
}

impl Read {
    fn int(self) -> Option<i64> {
        if let Read::Int(v) = self { Some(v) } else { None }
    }
    fn float(self) -> Option<f64> {
        if let Read::Float(v) = self { Some(v) } else { None }
    }
    fn bool(self) -> Option<bool> {
        if let Read::Bool(v) = self { Some(v) } else { None }
    }
    fn text(self) -> Option<String> {
        if let Read::Text(v) = self { Some(v) } else { None }
    }
    fn bytes(self) -> Option<Vec<u8>> {
        if let Read::Bytes(v) = self { Some(v) } else { None }
    }
    fn date(self) -> Option<i32> {
        if let Read::Date(v) = self { Some(v) } else { None }
    }
    fn numeric(self) -> Option<i128> {
        if let Read::Numeric(v) = self { Some(v) } else { None }
    }
    fn bignumeric(self) -> Option<i256> {
        if let Read::BigNumeric(v) = self { Some(v) } else { None }
    }
    fn interval(self) -> Option<IntervalMonthDayNano> {
        if let Read::Interval(v) = self { Some(v) } else { None }
    }
}

/// One proto value of a column of type `ty` (Arrow type `arrow`), checked by BigQuery's
/// rules.
fn read_value(ty: Type, arrow: &DataType, value: &Value) -> Result<Read, String> {
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
        Type::Int64 => Read::Int(int().ok_or_else(bad)?),
        Type::Double => Read::Float(match value {
            Value::F64(v) => *v,
            Value::F32(v) => f64::from(*v),
            _ => return Err(bad()),
        }),
        Type::Bool => Read::Bool(value.as_bool().ok_or_else(bad)?),
        Type::String | Type::Json | Type::Geography => Read::Text(text().ok_or_else(bad)?.to_string()),
        Type::Bytes => Read::Bytes(value.as_bytes().ok_or_else(bad)?.to_vec()),
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
            Read::Date(days)
        }
        Type::Timestamp if matches!(arrow, DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, _)) => {
            // Picosecond precision: text, kept here as nanoseconds (Arrow's finest unit).
            let (seconds, picos) = text()
                .and_then(text_forms::parse_timestamp_picos_text)
                .ok_or_else(bad)?;
            if picos % 1000 != 0 {
                return Err(format!(
                    "{} has digits below nanoseconds, which the embedded server cannot keep",
                    bad()
                ));
            }
            let nanos = seconds
                .checked_mul(1_000_000_000)
                .and_then(|n| n.checked_add((picos / 1000) as i64))
                .ok_or_else(bad)?;
            Read::Int(nanos)
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
            Read::Int(micros)
        }
        Type::Datetime => {
            let micros = match text() {
                Some(s) => text_forms::parse_datetime_text(s),
                None => int().and_then(wire_forms::datetime),
            }
            .ok_or_else(bad)?;
            Read::Int(micros)
        }
        Type::Time => {
            let micros = match text() {
                Some(s) => text_forms::parse_time_text(s),
                None => int().and_then(wire_forms::time),
            }
            .ok_or_else(bad)?;
            Read::Int(micros)
        }
        Type::Numeric => {
            let unscaled = match value {
                Value::String(s) => text_forms::parse_decimal_i128(s, values::NUMERIC_SCALE),
                Value::Bytes(b) => wire_forms::numeric(b),
                _ => None,
            }
            .filter(|v| v.abs() <= values::NUMERIC_MAX_UNSCALED)
            .ok_or_else(bad)?;
            Read::Numeric(unscaled)
        }
        Type::Bignumeric => {
            let unscaled = match value {
                Value::String(s) => text_forms::parse_decimal_i256(s, values::BIGNUMERIC_SCALE),
                Value::Bytes(b) => wire_forms::bignumeric(b),
                _ => None,
            }
            .ok_or_else(bad)?;
            Read::BigNumeric(unscaled)
        }
        Type::Interval => {
            let (months, days, nanos) = text().and_then(values::parse_interval_text).ok_or_else(bad)?;
            Read::Interval(IntervalMonthDayNano::new(months, days, nanos))
        }
        Type::Struct | Type::Range | Type::Unspecified => return Err(bad()),
    })
}
