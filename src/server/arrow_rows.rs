//! Arrow rows (`arrow_rows`) in the embedded server, written from the service's facts rather
//! than from the client's encoder: the IPC schema a connection's first request carries is
//! checked against the table as strictly as a proto writer schema (every field a column, in
//! an Arrow type BigQuery takes for that column's type); each request's IPC record batch is
//! converted to the table's canonical Arrow types and checked by BigQuery's rules (REQUIRED
//! fields, NULL array elements, each type's range, RANGE bounds in order).
//!
//! Accepted Arrow types: INT64 from Int8..Int64; FLOAT64 from Float32/64; BOOL; STRING, JSON
//! and GEOGRAPHY from Utf8; BYTES from Binary; DATE from Date32 or Int32 days; TIMESTAMP from
//! Timestamp(µs, UTC); DATETIME from Timestamp(µs) without zone; TIME from Time64(µs);
//! NUMERIC from Decimal128 of scale up to 9; BIGNUMERIC from Decimal256 of scale up to 38;
//! INTERVAL from Interval(MonthDayNano); RANGE and STRUCT from Struct (members by name);
//! REPEATED from List, a NULL list read as an empty one. BigQuery reads every timestamp as
//! microseconds whatever its unit, so other units are refused here rather than misread.

use std::ops::RangeInclusive;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Decimal256Array, ListArray, PrimitiveArray, RecordBatch, StructArray,
    UInt32Array, new_null_array,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer};
use arrow::compute::{cast, take};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Field, Fields, IntervalUnit, SchemaRef,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, i256,
};
use arrow::ipc::convert::try_schema_from_ipc_buffer;
use arrow::ipc::reader::StreamDecoder;
use bytes::Bytes;

use super::decode::DecodeError;
use super::defaults::{DefaultRule, Interpretation};
use super::digest::RowDigest;
use super::state::Digests;
use crate::encode::{EncodeOptions, MissingValues, RowEncoder};
use crate::proto::table_field_schema::{Mode, Type};
use crate::proto::{TableFieldSchema, TableSchema};
use crate::schema::{field_mode, field_type, is_picosecond_timestamp, nested_members, to_arrow_field, type_name};
use crate::values;

/// A value that breaks a rule: its index in the array being looked at, and why.
type Failure = (usize, String);

/// One table column and the writer field that fills it.
struct Plan {
    column: TableFieldSchema,
    /// Index of the writer schema's field, if it has one.
    source: Option<usize>,
    /// The column's default, applied to absent values when a request asks for it.
    default: Option<DefaultRule>,
}

/// Decodes the Arrow rows of one writer schema for one table.
pub(crate) struct ArrowDecoder {
    schema_message: Buffer,
    plans: Vec<Plan>,
    canonical: SchemaRef,
    /// Proto rows of the same values, for the digest (the same digest as proto loads).
    digest: RowEncoder,
}

impl ArrowDecoder {
    /// Checks the writer's IPC schema (`ArrowSchema.serialized_schema`) against the table.
    pub(crate) fn new(
        serialized_schema: &Bytes,
        table: &TableSchema,
        canonical: SchemaRef,
    ) -> Result<Self, DecodeError> {
        let writer = try_schema_from_ipc_buffer(serialized_schema)
            .map_err(|e| DecodeError::Schema(format!("cannot read the Arrow writer schema: {e}")))?;
        let mut sources = vec![None; table.fields.len()];
        for (index, field) in writer.fields().iter().enumerate() {
            let Some(at) = table
                .fields
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(field.name()))
            else {
                return Err(DecodeError::ExtraField(field.name().clone()));
            };
            if sources[at].replace(index).is_some() {
                return Err(DecodeError::Schema(format!(
                    "column {} appears twice in the writer schema",
                    field.name()
                )));
            }
            accepts(&table.fields[at], field.data_type(), &table.fields[at].name).map_err(DecodeError::Schema)?;
        }
        let mut plans = Vec::with_capacity(table.fields.len());
        let mut present = Vec::new();
        for (column, source) in table.fields.iter().zip(sources) {
            let default = (!column.default_value_expression.is_empty()).then(|| DefaultRule {
                column: column.name.clone(),
                expression: column.default_value_expression.clone(),
                arrow_type: to_arrow_field(column).data_type().clone(),
                required: field_mode(column) == Mode::Required,
            });
            if source.is_none() && default.is_none() && field_mode(column) == Mode::Required {
                return Err(DecodeError::Schema(format!(
                    "writer schema lacks REQUIRED field {}",
                    column.name
                )));
            }
            if source.is_some() {
                present.push(to_arrow_field(column));
            }
            plans.push(Plan {
                column: column.clone(),
                source,
                default,
            });
        }
        let options = EncodeOptions {
            missing_values: MissingValues::Default,
            max_request_bytes: crate::encode::SERVICE_MAX_REQUEST_BYTES - 1,
            ..EncodeOptions::default()
        };
        let digest = RowEncoder::new("the table", table, &arrow::datatypes::Schema::new(present), &options)
            .map_err(|e| DecodeError::Schema(e.to_string()))?;
        Ok(Self {
            schema_message: Buffer::from(serialized_schema.clone()),
            plans,
            canonical,
            digest,
        })
    }

    /// Decodes one IPC record batch message into the table's canonical columns (absent values
    /// of columns with a default read as `missing` says), and the digest of its rows.
    pub(crate) fn decode(
        &self,
        message: &Bytes,
        missing: &Interpretation,
        digests: Digests,
    ) -> Result<(RecordBatch, RowDigest), DecodeError> {
        let batch = self.read(message)?;
        let rows = batch.num_rows();
        let mut present = Vec::new();
        let mut arrays = Vec::with_capacity(self.plans.len());
        for plan in &self.plans {
            let array = match plan.source {
                Some(index) => {
                    let array = canonical(&plan.column, batch.column(index), &plan.column.name).map_err(row_error)?;
                    let nullable_by_default = plan.default.is_some();
                    check(&plan.column, &array, &plan.column.name, None, nullable_by_default).map_err(row_error)?;
                    present.push(array.clone());
                    array
                }
                None => new_null_array(self.canonical.field(arrays.len()).data_type(), rows),
            };
            let array = match &plan.default {
                Some(rule) => rule.apply(array, missing).map_err(|(index, message)| match index {
                    Some(index) => DecodeError::Row { index, message },
                    None => DecodeError::Schema(message),
                })?,
                None => array,
            };
            arrays.push(array);
        }
        let digest = match digests {
            Digests::On => self.digest(&present, rows)?,
            Digests::Off => {
                let mut counted = RowDigest::default();
                counted.count(rows as u64, message.len() as u64);
                counted
            }
        };
        let batch =
            RecordBatch::try_new(self.canonical.clone(), arrays).map_err(|e| DecodeError::Schema(e.to_string()))?;
        Ok((batch, digest))
    }

    /// The record batch of `message`, in the writer's schema.
    fn read(&self, message: &Bytes) -> Result<RecordBatch, DecodeError> {
        let unreadable = |e: arrow::error::ArrowError| DecodeError::Schema(format!("cannot read the Arrow rows: {e}"));
        let mut decoder = StreamDecoder::new();
        let mut schema = self.schema_message.clone();
        decoder.decode(&mut schema).map_err(unreadable)?;
        let mut rows = Buffer::from(message.clone());
        let batch = decoder
            .decode(&mut rows)
            .map_err(unreadable)?
            .ok_or_else(|| DecodeError::Schema("the Arrow rows hold no record batch message".into()))?;
        if !rows.is_empty() {
            return Err(DecodeError::Schema(format!(
                "{} bytes follow the Arrow record batch message",
                rows.len()
            )));
        }
        Ok(batch)
    }

    /// The digest of the present columns' values, as the same rows in proto form.
    fn digest(&self, present: &[ArrayRef], rows: usize) -> Result<RowDigest, DecodeError> {
        let schema = self.digest_schema(present);
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(schema, present.to_vec(), &options)
            .map_err(|e| DecodeError::Schema(e.to_string()))?;
        let mut digest = RowDigest::default();
        let requests = self
            .digest
            .encode(&batch, 0)
            .map_err(|e| DecodeError::Schema(e.to_string()))?;
        for request in &requests {
            request.for_each_proto_row(|row| digest.add(row));
        }
        Ok(digest)
    }

    fn digest_schema(&self, present: &[ArrayRef]) -> SchemaRef {
        let fields: Vec<Field> = self
            .plans
            .iter()
            .filter(|p| p.source.is_some())
            .zip(present)
            .map(|(plan, array)| Field::new(&plan.column.name, array.data_type().clone(), true))
            .collect();
        Arc::new(arrow::datatypes::Schema::new(fields))
    }
}

fn row_error((index, message): Failure) -> DecodeError {
    DecodeError::Row { index, message }
}

/// Checks that Arrow type `arrow` can fill `column` (its whole value when REPEATED).
fn accepts(column: &TableFieldSchema, arrow: &DataType, path: &str) -> Result<(), String> {
    let refuse = || {
        format!(
            "column {path} ({}{}) cannot be written from Arrow type {arrow}",
            if field_mode(column) == Mode::Repeated {
                "ARRAY of "
            } else {
                ""
            },
            type_name(field_type(column))
        )
    };
    if field_mode(column) == Mode::Repeated {
        let DataType::List(item) = arrow else {
            return Err(refuse());
        };
        return accepts_value(column, item.data_type(), path).map_err(|_| refuse());
    }
    accepts_value(column, arrow, path).map_err(|e| e.unwrap_or_else(refuse))
}

/// Checks one value's type; `Err(None)` when the type itself is wrong.
fn accepts_value(column: &TableFieldSchema, arrow: &DataType, path: &str) -> Result<(), Option<String>> {
    let utc = |tz: &Option<Arc<str>>| tz.as_deref().is_some_and(|z| matches!(z, "UTC" | "+00:00" | "Z"));
    let ok = match field_type(column) {
        Type::Int64 => matches!(
            arrow,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
        ),
        Type::Double => matches!(arrow, DataType::Float32 | DataType::Float64),
        Type::Bool => matches!(arrow, DataType::Boolean),
        Type::String | Type::Json | Type::Geography => matches!(arrow, DataType::Utf8),
        Type::Bytes => matches!(arrow, DataType::Binary),
        Type::Date => matches!(arrow, DataType::Date32 | DataType::Int32),
        Type::Timestamp if is_picosecond_timestamp(column) => {
            return Err(Some(format!(
                "column {path} is a TIMESTAMP with picosecond precision, which Arrow rows cannot carry"
            )));
        }
        Type::Timestamp => matches!(arrow, DataType::Timestamp(TimeUnit::Microsecond, tz) if utc(tz)),
        Type::Datetime => matches!(arrow, DataType::Timestamp(TimeUnit::Microsecond, None)),
        Type::Time => matches!(arrow, DataType::Time64(TimeUnit::Microsecond)),
        Type::Numeric => matches!(arrow, DataType::Decimal128(_, s) if (0..=values::NUMERIC_SCALE).contains(s)),
        Type::Bignumeric => {
            matches!(arrow, DataType::Decimal256(_, s) if (0..=values::BIGNUMERIC_SCALE).contains(s))
        }
        Type::Interval => matches!(arrow, DataType::Interval(IntervalUnit::MonthDayNano)),
        Type::Struct | Type::Range => {
            let DataType::Struct(fields) = arrow else {
                return Err(None);
            };
            let members = nested_members(column).map_err(Some)?;
            for field in fields {
                let Some(member) = members.iter().find(|m| m.name.eq_ignore_ascii_case(field.name())) else {
                    return Err(Some(format!(
                        "column {path}: member {} is not in the table",
                        field.name()
                    )));
                };
                accepts(member, field.data_type(), &format!("{path}.{}", member.name)).map_err(Some)?;
            }
            if let Some(missing) = members.iter().find(|m| {
                field_mode(m) == Mode::Required && !fields.iter().any(|f| f.name().eq_ignore_ascii_case(&m.name))
            }) {
                return Err(Some(format!(
                    "column {path}: REQUIRED member {} is missing",
                    missing.name
                )));
            }
            true
        }
        Type::Unspecified => false,
    };
    if ok { Ok(()) } else { Err(None) }
}

/// `array` (of a type [`accepts`] took) in the canonical Arrow type of `column`.
fn canonical(column: &TableFieldSchema, array: &ArrayRef, path: &str) -> Result<ArrayRef, Failure> {
    let canonical_type = to_arrow_field(column).data_type().clone();
    if field_mode(column) != Mode::Repeated {
        return canonical_value(column, array, &canonical_type, path);
    }
    let (DataType::List(item), Some(list)) = (&canonical_type, array.as_list_opt::<i32>()) else {
        return Err((0, format!("column {path}: expected a list, got {}", array.data_type())));
    };
    let row_of = |element: usize| {
        list.value_offsets()
            .partition_point(|&o| o as usize <= element)
            .saturating_sub(1)
    };
    let values = canonical_value(column, list.values(), item.data_type(), path).map_err(|(i, m)| (row_of(i), m))?;
    // A NULL list is an empty one; NULL elements do not exist in BigQuery arrays.
    let mut keep = Vec::with_capacity(values.len());
    let mut lengths = Vec::with_capacity(list.len());
    for row in 0..list.len() {
        let before = keep.len();
        if list.is_valid(row) {
            for i in list.value_offsets()[row] as usize..list.value_offsets()[row + 1] as usize {
                if values.is_null(i) {
                    return Err((row, format!("column {path}: NULL array element")));
                }
                keep.push(u32::try_from(i).map_err(|_| (row, "too many elements".to_string()))?);
            }
        }
        lengths.push(keep.len() - before);
    }
    let values = take(values.as_ref(), &UInt32Array::from(keep), None).map_err(|e| (0, e.to_string()))?;
    ListArray::try_new(item.clone(), OffsetBuffer::from_lengths(lengths), values, None)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| (0, format!("column {path}: {e}")))
}

/// One value's array in the canonical type `target`.
fn canonical_value(
    column: &TableFieldSchema,
    array: &ArrayRef,
    target: &DataType,
    path: &str,
) -> Result<ArrayRef, Failure> {
    let cast_to = |t: &DataType| cast(array, t).map_err(|e| (0, format!("column {path}: {e}")));
    match (field_type(column), array.data_type()) {
        (Type::Struct | Type::Range, DataType::Struct(_)) => canonical_struct(column, array.as_struct(), target, path),
        (_, given) if given == target => Ok(array.clone()),
        (Type::Numeric, DataType::Decimal128(_, scale)) => {
            let factor = 10i128.pow(u32::try_from(values::NUMERIC_SCALE - scale).unwrap_or(0));
            let input: &Decimal128Array = array.as_primitive();
            let mut out = Vec::with_capacity(input.len());
            for (i, v) in input.values().iter().enumerate() {
                match v.checked_mul(factor) {
                    Some(v) => out.push(v),
                    None if input.is_null(i) => out.push(0),
                    None => return Err((i, format!("column {path}: value out of NUMERIC's range"))),
                }
            }
            let out = PrimitiveArray::<Decimal128Type>::new(out.into(), input.nulls().cloned())
                .with_precision_and_scale(38, values::NUMERIC_SCALE)
                .map_err(|e| (0, e.to_string()))?;
            Ok(Arc::new(out))
        }
        (Type::Bignumeric, DataType::Decimal256(_, scale)) => {
            let exponent = u32::try_from(values::BIGNUMERIC_SCALE - scale).unwrap_or(0);
            let factor = i256::from_i128(10)
                .checked_pow(exponent)
                .ok_or((0, "scale".to_string()))?;
            let input: &Decimal256Array = array.as_primitive();
            let mut out = Vec::with_capacity(input.len());
            for (i, v) in input.values().iter().enumerate() {
                match v.checked_mul(factor) {
                    Some(v) => out.push(v),
                    None if input.is_null(i) => out.push(i256::ZERO),
                    None => return Err((i, format!("column {path}: value out of BIGNUMERIC's range"))),
                }
            }
            let out = PrimitiveArray::<Decimal256Type>::new(out.into(), input.nulls().cloned())
                .with_precision_and_scale(76, values::BIGNUMERIC_SCALE)
                .map_err(|e| (0, e.to_string()))?;
            Ok(Arc::new(out))
        }
        (Type::Timestamp, DataType::Timestamp(..)) => Ok(Arc::new(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone_opt(match target {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                }),
        )),
        // Widening integers and floats, Int32 days as Date32.
        _ => cast_to(target),
    }
}

/// A STRUCT or RANGE with its members matched by name, absent ones NULL.
fn canonical_struct(
    column: &TableFieldSchema,
    array: &StructArray,
    target: &DataType,
    path: &str,
) -> Result<ArrayRef, Failure> {
    let DataType::Struct(fields) = target else {
        return Err((0, format!("column {path}: not a struct type")));
    };
    let members = nested_members(column).map_err(|e| (0, e))?;
    let DataType::Struct(given) = array.data_type() else {
        return Err((0, format!("column {path}: not a struct")));
    };
    let children = members
        .iter()
        .zip(fields.iter())
        .map(|(member, field)| {
            let member_path = format!("{path}.{}", member.name);
            match given.iter().position(|f| f.name().eq_ignore_ascii_case(&member.name)) {
                Some(at) => canonical(member, array.column(at), &member_path),
                None => Ok(new_null_array(field.data_type(), array.len())),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nulls = array.nulls().cloned();
    // A REQUIRED member holding NULLs is refused by `check`, naming the row; Arrow's own
    // constructor would refuse it without, so such a struct is built with nullable members.
    let relaxed: Fields = fields
        .iter()
        .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
        .collect();
    StructArray::try_new(fields.clone(), children.clone(), nulls.clone())
        .or_else(|_| StructArray::try_new(relaxed, children, nulls))
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| (0, format!("column {path}: {e}")))
}

/// Checks BigQuery's rules on a canonical array of `column`: REQUIRED values present where
/// the parent is (`parent`: the validity of the enclosing values), each type's range, RANGE
/// bounds in order. `relaxed`: a top-level REQUIRED column with a default, checked later.
fn check(
    column: &TableFieldSchema,
    array: &ArrayRef,
    path: &str,
    parent: Option<&NullBuffer>,
    relaxed: bool,
) -> Result<(), Failure> {
    let mode = field_mode(column);
    if mode == Mode::Required && !relaxed && array.null_count() > 0 {
        let missing = array.nulls().and_then(|nulls| {
            nulls
                .iter()
                .enumerate()
                .position(|(i, valid)| !valid && parent.is_none_or(|p| p.is_valid(i)))
        });
        if let Some(i) = missing {
            return Err((i, format!("REQUIRED field {path} is missing")));
        }
    }
    if mode == Mode::Repeated {
        let list = array.as_list::<i32>();
        let row_of = |element: usize| {
            list.value_offsets()
                .partition_point(|&o| o as usize <= element)
                .saturating_sub(1)
        };
        let element = TableFieldSchema {
            mode: Mode::Nullable as i32,
            ..column.clone()
        };
        return check(&element, list.values(), path, None, false).map_err(|(i, m)| (row_of(i), m));
    }
    let valid = NullBuffer::union(array.nulls(), parent);
    let valid = valid.as_ref();
    let out_of_range = |i: usize, what: &str| (i, format!("column {path}: value out of {what}'s range"));
    match field_type(column) {
        Type::Date => {
            let values = array.as_primitive::<Date32Type>().values();
            if let Some(i) = outside(values, values::DATE_MIN_DAYS..=values::DATE_MAX_DAYS, valid) {
                return Err(out_of_range(i, "DATE"));
            }
        }
        ty @ (Type::Timestamp | Type::Datetime) => {
            let values = array.as_primitive::<TimestampMicrosecondType>().values();
            if let Some(i) = outside(values, values::MICROS_MIN..=values::MICROS_MAX, valid) {
                return Err(out_of_range(i, type_name(ty)));
            }
        }
        Type::Time => {
            let values = array.as_primitive::<Time64MicrosecondType>().values();
            if let Some(i) = outside(values, 0..=values::MICROS_PER_DAY - 1, valid) {
                return Err(out_of_range(i, "TIME"));
            }
        }
        Type::Numeric => {
            let values = array.as_primitive::<Decimal128Type>().values();
            let max = values::NUMERIC_MAX_UNSCALED;
            if let Some(i) = outside(values, -max..=max, valid) {
                return Err(out_of_range(i, "NUMERIC"));
            }
        }
        Type::Struct | Type::Range => {
            let array = array.as_struct();
            let members = nested_members(column).map_err(|e| (0, e))?;
            for (member, child) in members.iter().zip(array.columns()) {
                check(member, child, &format!("{path}.{}", member.name), valid, false)?;
            }
            if field_type(column) == Type::Range {
                let (start, end) = (array.column(0), array.column(1));
                let ordered = arrow::compute::kernels::cmp::lt(start, end).map_err(|e| (0, e.to_string()))?;
                let unordered = (0..ordered.len())
                    .find(|&i| ordered.is_valid(i) && !ordered.value(i) && valid.is_none_or(|v| v.is_valid(i)));
                if let Some(i) = unordered {
                    return Err((i, format!("column {path}: RANGE start is not before its end")));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The first value outside `range` where a value is present (`valid`).
fn outside<T: Copy + PartialOrd>(values: &[T], range: RangeInclusive<T>, valid: Option<&NullBuffer>) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .position(|(i, v)| !range.contains(v) && valid.is_none_or(|n| n.is_valid(i)))
}
