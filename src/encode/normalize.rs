//! Input Arrow columns -> the canonical Arrow type of their BigQuery column, exactly.
//!
//! A [`Conversion`] is planned once per input schema from the input's Arrow type and the
//! table column ([`Conversion::plan`]), and applied to every batch ([`Conversion::apply`]).
//! Planning refuses Arrow types that cannot map and structs with missing or extra fields;
//! applying refuses any value that would lose a digit or overflow, naming its index. Values
//! under a NULL struct or list are not looked at. BigQuery's own ranges and rules (DATE
//! range, NUMERIC digits, REQUIRED, ...) are checked where the values are written
//! (`columns.rs`); this module only changes Arrow representations.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, IntervalMonthDayNanoArray, ListArray, PrimitiveArray, StructArray, UInt64Array,
    make_array, new_null_array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{cast, take};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Field, Fields, Float64Type, Int64Type,
    IntervalDayTimeType, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, i256,
};

use super::value_error::ValueError;
use crate::proto::TableFieldSchema;
use crate::proto::table_field_schema::{Mode, Type};
use crate::schema::{
    describe_column, field_mode, field_type, is_picosecond_timestamp, nested_members, nullable_everywhere,
    to_arrow_field,
};
use crate::values;

/// Why an input type cannot feed a column (found while planning).
#[derive(Debug)]
pub(crate) enum Mismatch {
    /// The Arrow type cannot be written to the BigQuery type.
    Type {
        path: String,
        arrow_type: String,
        bigquery_type: String,
    },
    /// An input struct lacks a member of the STRUCT (or `start`/`end` of a RANGE).
    MissingField { path: String, column_type: String },
    /// An input struct has a member the STRUCT lacks.
    ExtraField { path: String, column_type: String },
}

/// How one input array becomes canonical.
#[derive(Debug, Clone)]
pub(crate) enum Conversion {
    /// Nothing to do: the writer reads the input as it is.
    Same,
    /// The input type is `Null`: every value NULL, as an array of this type.
    AllNull(DataType),
    /// Unpack a dictionary, then convert its values.
    Dictionary(Box<Conversion>),
    /// An Arrow cast that cannot lose anything (widening, another string or binary layout).
    Widen(DataType),
    /// UInt64 -> Int64, failing above `i64::MAX`.
    UInt64ToInt64,
    /// Int64/UInt64 -> Float64, failing where the integer has no exact double.
    IntegerToFloat64,
    /// Integers and decimals (of scale `from_scale`) -> decimal `to`, rescaled exactly.
    Decimal { from_scale: i8, to: DataType },
    /// Timestamp of another unit -> microseconds, with the given zone label.
    Timestamp { tz: Option<Arc<str>> },
    /// Timestamp of a coarser unit -> nanoseconds (picosecond TIMESTAMP columns).
    TimestampNanos { tz: Option<Arc<str>> },
    /// Time32/Time64 of another unit -> Time64(µs).
    Time,
    /// Date64 (milliseconds) -> Date32, failing on a time of day.
    Date64,
    /// Interval of another unit, Duration, or text -> Interval(MonthDayNano).
    Interval,
    /// Struct members, each from an input member: (input index, name, conversion).
    Struct(Vec<(usize, String, Conversion)>),
    /// List-like (List, LargeList, FixedSizeList, ListView, LargeListView, Map) -> List.
    List(Box<Conversion>),
}

impl Conversion {
    /// Plans the conversion of `input` into values of `column` (REPEATED: the whole array).
    /// `path` names the column in errors.
    pub(crate) fn plan(input: &DataType, column: &TableFieldSchema, path: &str) -> Result<Self, Mismatch> {
        if field_mode(column) != Mode::Repeated {
            return plan_value(input, column, path);
        }
        let mismatch = || Mismatch::Type {
            path: path.to_string(),
            arrow_type: input.to_string(),
            bigquery_type: describe_column(column),
        };
        Ok(match input {
            DataType::Null => Conversion::AllNull(canonical_type(column)),
            DataType::Dictionary(_, values) => Conversion::Dictionary(Box::new(Self::plan(values, column, path)?)),
            DataType::List(item)
            | DataType::LargeList(item)
            | DataType::FixedSizeList(item, _)
            | DataType::ListView(item)
            | DataType::LargeListView(item) => {
                let element = plan_value(item.data_type(), column, &format!("{path}[]"))?;
                match (input, &element) {
                    (DataType::List(_), Conversion::Same) => Conversion::Same,
                    _ => Conversion::List(Box::new(element)),
                }
            }
            DataType::Map(entries, _) => {
                // A map is an array of key/value structs: its key feeds the STRUCT's first
                // member, its value the second.
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(mismatch());
                };
                if field_type(column) != Type::Struct || column.fields.len() != 2 || kv.len() != 2 {
                    return Err(mismatch());
                }
                let members = column
                    .fields
                    .iter()
                    .zip(kv.iter())
                    .enumerate()
                    .map(|(i, (member, input))| {
                        let conversion = plan_value(input.data_type(), member, &format!("{path}[].{}", member.name))?;
                        Ok((i, member.name.clone(), conversion))
                    })
                    .collect::<Result<Vec<_>, Mismatch>>()?;
                Conversion::List(Box::new(Conversion::Struct(members)))
            }
            _ => return Err(mismatch()),
        })
    }

    /// Converts one array; `Same` returns it as is.
    pub(crate) fn apply(&self, array: &ArrayRef) -> Result<ArrayRef, ValueError> {
        match self {
            Conversion::Same => Ok(array.clone()),
            Conversion::AllNull(data_type) => Ok(new_null_array(data_type, array.len())),
            Conversion::Dictionary(values) => {
                let dictionary = array
                    .as_any_dictionary_opt()
                    .ok_or_else(|| ValueError::unconvertible(array, "expected a dictionary"))?;
                let unpacked = take(dictionary.values().as_ref(), dictionary.keys(), None)
                    .map_err(|e| ValueError::unconvertible(array, &e.to_string()))?;
                values.apply(&unpacked)
            }
            Conversion::Widen(to) => cast(array, to).map_err(|e| ValueError::unconvertible(array, &e.to_string())),
            Conversion::UInt64ToInt64 => {
                let input = array.as_primitive::<arrow::datatypes::UInt64Type>();
                map::<_, Int64Type>(input, |v| {
                    i64::try_from(v).map_err(|_| "is above INT64's maximum".into())
                })
            }
            Conversion::IntegerToFloat64 => {
                let exact = |v: i128| {
                    let f = v as f64;
                    if f as i128 == v && f.is_finite() {
                        Ok(f)
                    } else {
                        Err(values::NO_EXACT_FLOAT64.to_string())
                    }
                };
                match array.data_type() {
                    DataType::UInt64 => {
                        map::<_, Float64Type>(array.as_primitive::<arrow::datatypes::UInt64Type>(), |v| {
                            exact(i128::from(v))
                        })
                    }
                    _ => map::<_, Float64Type>(array.as_primitive::<Int64Type>(), |v| exact(i128::from(v))),
                }
            }
            Conversion::Decimal { from_scale, to } => decimal(array, *from_scale, to),
            Conversion::Timestamp { tz } => timestamp_in::<TimestampMicrosecondType>(array, tz),
            Conversion::TimestampNanos { tz } => timestamp_in::<TimestampNanosecondType>(array, tz),
            Conversion::Time => match array.data_type() {
                DataType::Time32(TimeUnit::Second) => {
                    map::<_, Time64MicrosecondType>(array.as_primitive::<Time32SecondType>(), |v| {
                        to_micros(i64::from(v), 1)
                    })
                }
                DataType::Time32(TimeUnit::Millisecond) => {
                    map::<_, Time64MicrosecondType>(array.as_primitive::<Time32MillisecondType>(), |v| {
                        to_micros(i64::from(v), 1_000)
                    })
                }
                DataType::Time64(TimeUnit::Nanosecond) => {
                    map::<_, Time64MicrosecondType>(array.as_primitive::<Time64NanosecondType>(), |v| {
                        to_micros(v, 1_000_000_000)
                    })
                }
                _ => Err(ValueError::unconvertible(array, "expected a time")),
            },
            Conversion::Date64 => map::<_, Date32Type>(array.as_primitive::<Date64Type>(), |ms| {
                const MS_PER_DAY: i64 = 86_400_000;
                if ms.rem_euclid(MS_PER_DAY) != 0 {
                    return Err(values::DATE_WITH_TIME.into());
                }
                i32::try_from(ms.div_euclid(MS_PER_DAY)).map_err(|_| values::DATE_OUT_OF_RANGE.into())
            }),
            Conversion::Interval => interval(array),
            Conversion::Struct(members) => {
                // A slice of a struct slices its children; a contiguous copy lets the
                // struct's NULLs be laid over them (they start where the slice starts).
                let contiguous;
                let array = if sliced(&array.to_data()) {
                    let all = arrow::array::UInt32Array::from_iter_values(0..array.len() as u32);
                    contiguous = take(array.as_ref(), &all, None)
                        .map_err(|e| ValueError::unconvertible(array, &e.to_string()))?;
                    &contiguous
                } else {
                    array
                };
                let input = array
                    .as_struct_opt()
                    .ok_or_else(|| ValueError::unconvertible(array, "expected a struct"))?;
                let nulls = array.logical_nulls();
                let mut fields = Vec::with_capacity(members.len());
                let mut children = Vec::with_capacity(members.len());
                for (index, name, conversion) in members {
                    let child = with_parent_nulls(input.column(*index), nulls.as_ref())
                        .map_err(|e| ValueError::unconvertible(array, &e))?;
                    let converted = conversion.apply(&child).map_err(|r| r.within(name, None))?;
                    fields.push(Field::new(name, converted.data_type().clone(), true));
                    children.push(converted);
                }
                StructArray::try_new(Fields::from(fields), children, nulls)
                    .map(|s| Arc::new(s) as ArrayRef)
                    .map_err(|e| ValueError::unconvertible(array, &e.to_string()))
            }
            Conversion::List(element) => {
                let (offsets, values, nulls) = compact_list(array)?;
                let converted = element.apply(&values).map_err(|r| {
                    // Report the element by its row and its index within the row.
                    let row = offsets.partition_point(|&o| o as usize <= r.row).saturating_sub(1);
                    let element = r.row - offsets[row] as usize;
                    r.within("", Some(element)).at_row(row)
                })?;
                let item = Arc::new(Field::new("item", converted.data_type().clone(), true));
                ListArray::try_new(item, offsets, converted, nulls)
                    .map(|l| Arc::new(l) as ArrayRef)
                    .map_err(|e| ValueError::unconvertible(array, &e.to_string()))
            }
        }
    }
}

/// The column's canonical Arrow type, with every nested field nullable (REQUIRED and
/// NULL elements are checked when writing, where they can be reported by path and row).
pub(crate) fn canonical_type(column: &TableFieldSchema) -> DataType {
    nullable_everywhere(to_arrow_field(column).data_type())
}

/// Plans one value of `column` (the element of a REPEATED column).
fn plan_value(input: &DataType, column: &TableFieldSchema, path: &str) -> Result<Conversion, Mismatch> {
    use DataType as D;
    let ty = field_type(column);
    let mismatch = || Mismatch::Type {
        path: path.to_string(),
        arrow_type: input.to_string(),
        bigquery_type: describe_column(column),
    };
    let element_type = || {
        let mut element = column.clone();
        element.mode = Mode::Nullable as i32;
        canonical_type(&element)
    };
    let small_integer = matches!(input, D::Int8 | D::Int16 | D::Int32 | D::UInt8 | D::UInt16 | D::UInt32);
    Ok(match (ty, input) {
        (_, D::Null) => Conversion::AllNull(element_type()),
        (_, D::Dictionary(_, values)) => Conversion::Dictionary(Box::new(plan_value(values, column, path)?)),
        (Type::Int64, D::Int64) => Conversion::Same,
        (Type::Int64, _) if small_integer => Conversion::Widen(D::Int64),
        (Type::Int64, D::UInt64) => Conversion::UInt64ToInt64,
        (Type::Double, D::Float64) => Conversion::Same,
        (Type::Double, D::Float16 | D::Float32) => Conversion::Widen(D::Float64),
        (Type::Double, _) if small_integer => Conversion::Widen(D::Float64),
        (Type::Double, D::Int64 | D::UInt64) => Conversion::IntegerToFloat64,
        (Type::Bool, D::Boolean) => Conversion::Same,
        (Type::String | Type::Json | Type::Geography, D::Utf8) => Conversion::Same,
        (Type::String | Type::Json | Type::Geography, D::LargeUtf8 | D::Utf8View) => Conversion::Widen(D::Utf8),
        (Type::Bytes, D::Binary) => Conversion::Same,
        (Type::Bytes, D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)) => Conversion::Widen(D::Binary),
        (Type::Date, D::Date32) => Conversion::Same,
        (Type::Date, D::Date64) => Conversion::Date64,
        (Type::Timestamp, D::Timestamp(TimeUnit::Nanosecond, _)) if is_picosecond_timestamp(column) => Conversion::Same,
        (Type::Timestamp, D::Timestamp(_, _)) if is_picosecond_timestamp(column) => {
            let D::Timestamp(_, tz) = element_type() else {
                return Err(mismatch());
            };
            Conversion::TimestampNanos { tz }
        }
        (Type::Timestamp, D::Timestamp(TimeUnit::Microsecond, _)) => Conversion::Same,
        (Type::Datetime, D::Timestamp(TimeUnit::Microsecond, None)) => Conversion::Same,
        (Type::Timestamp, D::Timestamp(_, _)) | (Type::Datetime, D::Timestamp(_, None)) => {
            let D::Timestamp(_, tz) = element_type() else {
                return Err(mismatch());
            };
            Conversion::Timestamp { tz }
        }
        (Type::Time, D::Time64(TimeUnit::Microsecond)) => Conversion::Same,
        (Type::Time, D::Time32(_) | D::Time64(_)) => Conversion::Time,
        (Type::Numeric, D::Decimal128(_, values::NUMERIC_SCALE))
        | (Type::Bignumeric, D::Decimal256(_, values::BIGNUMERIC_SCALE)) => Conversion::Same,
        (Type::Numeric | Type::Bignumeric, _) if input.is_integer() => Conversion::Decimal {
            from_scale: 0,
            to: element_type(),
        },
        (
            Type::Numeric | Type::Bignumeric,
            D::Decimal32(_, s) | D::Decimal64(_, s) | D::Decimal128(_, s) | D::Decimal256(_, s),
        ) => Conversion::Decimal {
            from_scale: *s,
            to: element_type(),
        },
        (Type::Interval, D::Interval(IntervalUnit::MonthDayNano)) => Conversion::Same,
        (Type::Interval, D::Interval(_) | D::Duration(_) | D::Utf8 | D::LargeUtf8 | D::Utf8View) => {
            Conversion::Interval
        }
        (Type::Struct | Type::Range, D::Struct(input_fields)) => {
            let members = nested_members(column).map_err(|_| mismatch())?;
            plan_struct(input_fields, &members, column, path)?
        }
        _ => return Err(mismatch()),
    })
}

/// Matches an input struct's members to the STRUCT's by name (exactly, then ignoring case).
fn plan_struct(
    input: &Fields,
    members: &[TableFieldSchema],
    column: &TableFieldSchema,
    path: &str,
) -> Result<Conversion, Mismatch> {
    let column_type = describe_column(column);
    let find = |name: &str| {
        input
            .iter()
            .position(|f| f.name() == name)
            .or_else(|| input.iter().position(|f| f.name().eq_ignore_ascii_case(name)))
    };
    let mut used = vec![false; input.len()];
    let mut planned = Vec::with_capacity(members.len());
    for member in members {
        let member_path = format!("{path}.{}", member.name);
        let index = find(&member.name)
            .filter(|i| !used[*i])
            .ok_or_else(|| Mismatch::MissingField {
                path: member_path.clone(),
                column_type: column_type.clone(),
            })?;
        used[index] = true;
        let conversion = Conversion::plan(input[index].data_type(), member, &member_path)?;
        planned.push((index, member.name.clone(), conversion));
    }
    if let Some(extra) = used.iter().position(|u| !u) {
        return Err(Mismatch::ExtraField {
            path: format!("{path}.{}", input[extra].name()),
            column_type,
        });
    }
    let identity = planned
        .iter()
        .enumerate()
        .all(|(i, (index, name, c))| *index == i && input[i].name() == name && matches!(c, Conversion::Same));
    Ok(if identity {
        Conversion::Same
    } else {
        Conversion::Struct(planned)
    })
}

/// Maps the valid values of a primitive array; the first failure names its index.
fn map<I, O>(
    input: &PrimitiveArray<I>,
    f: impl Fn(I::Native) -> Result<O::Native, String>,
) -> Result<ArrayRef, ValueError>
where
    I: ArrowPrimitiveType,
    O: ArrowPrimitiveType,
{
    let mut out = Vec::with_capacity(input.len());
    for (i, v) in input.values().iter().enumerate() {
        if input.is_null(i) {
            out.push(O::Native::default());
            continue;
        }
        out.push(f(*v).map_err(|reason| ValueError::invalid(input, i, reason))?);
    }
    Ok(Arc::new(PrimitiveArray::<O>::new(out.into(), input.nulls().cloned())))
}

/// A time value in `per_second` units -> microseconds, exactly.
fn to_micros(v: i64, per_second: i64) -> Result<i64, String> {
    rescale(v, per_second, 1_000_000)
}

/// A count of `1/from` seconds as a count of `1/to` seconds, exactly: a value that would
/// overflow or lose digits is refused.
fn rescale(v: i64, from: i64, to: i64) -> Result<i64, String> {
    if to >= from {
        return v.checked_mul(to / from).ok_or_else(|| match to {
            1_000_000_000 => "is outside the nanosecond timestamps Arrow holds (1677..2262)".to_string(),
            _ => "overflows microseconds".to_string(),
        });
    }
    let divisor = from / to;
    if v % divisor == 0 {
        Ok(v / divisor)
    } else {
        Err(values::SUB_MICROSECOND.into())
    }
}

/// A timestamp array of any unit in `O`'s unit, exactly, labelled with the zone `tz`.
fn timestamp_in<O>(array: &ArrayRef, tz: &Option<Arc<str>>) -> Result<ArrayRef, ValueError>
where
    O: arrow::datatypes::ArrowTimestampType,
{
    let per_second = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let to = per_second(&O::UNIT);
    let out = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            map::<_, O>(array.as_primitive::<TimestampSecondType>(), |v| rescale(v, 1, to))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            map::<_, O>(array.as_primitive::<TimestampMillisecondType>(), |v| {
                rescale(v, 1_000, to)
            })
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            map::<_, O>(array.as_primitive::<TimestampMicrosecondType>(), |v| {
                rescale(v, 1_000_000, to)
            })
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            map::<_, O>(array.as_primitive::<TimestampNanosecondType>(), |v| {
                rescale(v, 1_000_000_000, to)
            })
        }
        _ => return Err(ValueError::unconvertible(array, "expected a timestamp")),
    }?;
    let out = out.as_primitive::<O>().clone();
    Ok(Arc::new(out.with_timezone_opt(tz.clone())))
}

/// Integers and decimals -> Decimal128/Decimal256 at the target scale, exactly.
fn decimal(array: &ArrayRef, from_scale: i8, to: &DataType) -> Result<ArrayRef, ValueError> {
    let (to_scale, wide) = match to {
        DataType::Decimal128(_, s) => (*s, false),
        DataType::Decimal256(_, s) => (*s, true),
        _ => return Err(ValueError::unconvertible(array, "expected a decimal target")),
    };
    let type_name = if wide { "BIGNUMERIC" } else { "NUMERIC" };
    let shift = i32::from(to_scale) - i32::from(from_scale);
    // The common case: a Decimal128 to a Decimal128 of a larger scale, whose precision leaves
    // room for every value: one multiplication per value, which cannot overflow (the slots
    // under NULLs may hold anything, hence the wrapping product).
    if let (DataType::Decimal128(precision, _), false) = (array.data_type(), wide)
        && shift >= 0
        && i32::from(*precision) + shift <= 38
    {
        let factor = 10i128.pow(shift.unsigned_abs());
        let out = array
            .as_primitive::<Decimal128Type>()
            .unary::<_, Decimal128Type>(|v| v.wrapping_mul(factor))
            .with_data_type(to.clone());
        return Ok(Arc::new(out));
    }
    let value =
        unscaled_values(array).ok_or_else(|| ValueError::unconvertible(array, "expected an integer or decimal"))?;
    let factor = i256::from_i128(10).checked_pow(shift.unsigned_abs());
    let rescale = |v: i256| -> Result<i256, String> {
        let too_large = || values::too_large_for(type_name);
        if v == i256::ZERO {
            return Ok(v);
        }
        if shift >= 0 {
            return factor.and_then(|f| v.checked_mul(f)).ok_or_else(too_large);
        }
        match factor {
            Some(f) if v.wrapping_rem(f) == i256::ZERO => Ok(v.wrapping_div(f)),
            _ => Err(values::too_many_fraction_digits(type_name, to_scale)),
        }
    };
    let mut narrow = Vec::new();
    let mut wide_values = Vec::new();
    for i in 0..array.len() {
        if array.is_null(i) {
            narrow.push(0i128);
            wide_values.push(i256::ZERO);
            continue;
        }
        let v = rescale(value(i)).map_err(|reason| ValueError::invalid(array.as_ref(), i, reason))?;
        if wide {
            wide_values.push(v);
        } else {
            narrow.push(
                v.to_i128()
                    .ok_or_else(|| ValueError::invalid(array.as_ref(), i, values::too_large_for(type_name)))?,
            );
        }
    }
    let nulls = array.logical_nulls();
    let out: ArrayRef = if wide {
        Arc::new(PrimitiveArray::<Decimal256Type>::new(wide_values.into(), nulls).with_data_type(to.clone()))
    } else {
        Arc::new(PrimitiveArray::<Decimal128Type>::new(narrow.into(), nulls).with_data_type(to.clone()))
    };
    Ok(out)
}

/// Reads the unscaled value at an index of any integer or decimal array.
fn unscaled_values(array: &ArrayRef) -> Option<Box<dyn Fn(usize) -> i256 + '_>> {
    use arrow::datatypes::*;
    fn get<T: ArrowPrimitiveType>(
        array: &ArrayRef,
        to_i256: impl Fn(T::Native) -> i256 + 'static,
    ) -> Box<dyn Fn(usize) -> i256 + '_> {
        let a = array.as_primitive::<T>();
        Box::new(move |i| to_i256(a.value(i)))
    }
    let small = |v: i64| i256::from_i128(i128::from(v));
    Some(match array.data_type() {
        DataType::Int8 => get::<Int8Type>(array, move |v| small(i64::from(v))),
        DataType::Int16 => get::<Int16Type>(array, move |v| small(i64::from(v))),
        DataType::Int32 => get::<Int32Type>(array, move |v| small(i64::from(v))),
        DataType::Int64 => get::<Int64Type>(array, small),
        DataType::UInt8 => get::<UInt8Type>(array, move |v| small(i64::from(v))),
        DataType::UInt16 => get::<UInt16Type>(array, move |v| small(i64::from(v))),
        DataType::UInt32 => get::<UInt32Type>(array, move |v| small(i64::from(v))),
        DataType::UInt64 => get::<UInt64Type>(array, |v| i256::from_i128(i128::from(v))),
        DataType::Decimal32(_, _) => get::<Decimal32Type>(array, move |v| small(i64::from(v))),
        DataType::Decimal64(_, _) => get::<Decimal64Type>(array, small),
        DataType::Decimal128(_, _) => get::<Decimal128Type>(array, i256::from_i128),
        DataType::Decimal256(_, _) => get::<Decimal256Type>(array, |v| v),
        _ => return None,
    })
}

/// Intervals of any unit, durations and interval text -> Interval(MonthDayNano), exactly.
fn interval(array: &ArrayRef) -> Result<ArrayRef, ValueError> {
    type Out = IntervalMonthDayNanoType;
    let nanos = |v: i64, per_second: i64| {
        v.checked_mul(1_000_000_000 / per_second)
            .map(|n| IntervalMonthDayNano::new(0, 0, n))
            .ok_or_else(|| values::INTERVAL_OUT_OF_RANGE.to_string())
    };
    match array.data_type() {
        DataType::Interval(IntervalUnit::YearMonth) => {
            map::<_, Out>(array.as_primitive::<IntervalYearMonthType>(), |m| {
                Ok(IntervalMonthDayNano::new(m, 0, 0))
            })
        }
        DataType::Interval(IntervalUnit::DayTime) => map::<_, Out>(array.as_primitive::<IntervalDayTimeType>(), |v| {
            Ok(IntervalMonthDayNano::new(
                0,
                v.days,
                i64::from(v.milliseconds) * 1_000_000,
            ))
        }),
        DataType::Duration(TimeUnit::Second) => {
            map::<_, Out>(array.as_primitive::<DurationSecondType>(), |v| nanos(v, 1))
        }
        DataType::Duration(TimeUnit::Millisecond) => {
            map::<_, Out>(array.as_primitive::<DurationMillisecondType>(), |v| nanos(v, 1_000))
        }
        DataType::Duration(TimeUnit::Microsecond) => {
            map::<_, Out>(array.as_primitive::<DurationMicrosecondType>(), |v| nanos(v, 1_000_000))
        }
        DataType::Duration(TimeUnit::Nanosecond) => {
            map::<_, Out>(array.as_primitive::<DurationNanosecondType>(), |v| {
                nanos(v, 1_000_000_000)
            })
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(array, &DataType::Utf8).map_err(|e| ValueError::unconvertible(array, &e.to_string()))?;
            let text = text.as_string::<i32>();
            let mut out = Vec::with_capacity(text.len());
            for i in 0..text.len() {
                if text.is_null(i) {
                    out.push(IntervalMonthDayNano::ZERO);
                    continue;
                }
                let (months, days, nanos) = values::parse_interval_text(text.value(i)).ok_or_else(|| {
                    ValueError::invalid(
                        text,
                        i,
                        "is not an INTERVAL literal '[-]Y-M [-]D [-]H:M:S[.ffffff]' within INTERVAL's range",
                    )
                })?;
                out.push(IntervalMonthDayNano::new(months, days, nanos));
            }
            Ok(Arc::new(IntervalMonthDayNanoArray::new(
                out.into(),
                text.nulls().cloned(),
            )))
        }
        _ => Err(ValueError::unconvertible(
            array,
            "expected an interval, duration or text",
        )),
    }
}

/// A list-like array as i32 offsets, values and nulls, where NULL lists are empty and the
/// values are exactly those of the valid lists (so nothing under a NULL list is converted).
fn compact_list(array: &ArrayRef) -> Result<(OffsetBuffer<i32>, ArrayRef, Option<NullBuffer>), ValueError> {
    let len = array.len();
    let nulls = array.logical_nulls();
    let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
    // (start, end) of each row's elements in `values`.
    let (values, ranges): (ArrayRef, Vec<(usize, usize)>) = match array.data_type() {
        DataType::List(_) => {
            let a = array.as_list::<i32>();
            let o = a.value_offsets();
            (
                a.values().clone(),
                (0..len).map(|i| (o[i] as usize, o[i + 1] as usize)).collect(),
            )
        }
        DataType::LargeList(_) => {
            let a = array.as_list::<i64>();
            let o = a.value_offsets();
            (
                a.values().clone(),
                (0..len).map(|i| (o[i] as usize, o[i + 1] as usize)).collect(),
            )
        }
        DataType::FixedSizeList(_, size) => {
            let a = array.as_fixed_size_list();
            let size = *size as usize;
            let first = a.value_offset(0).max(0) as usize;
            (
                a.values().clone(),
                (0..len).map(|i| (first + i * size, first + (i + 1) * size)).collect(),
            )
        }
        DataType::ListView(_) => {
            let a = array.as_list_view::<i32>();
            let (o, s) = (a.value_offsets(), a.value_sizes());
            (
                a.values().clone(),
                (0..len).map(|i| (o[i] as usize, (o[i] + s[i]) as usize)).collect(),
            )
        }
        DataType::LargeListView(_) => {
            let a = array.as_list_view::<i64>();
            let (o, s) = (a.value_offsets(), a.value_sizes());
            (
                a.values().clone(),
                (0..len).map(|i| (o[i] as usize, (o[i] + s[i]) as usize)).collect(),
            )
        }
        DataType::Map(_, _) => {
            let a = array.as_map();
            let o = a.value_offsets();
            (
                Arc::new(a.entries().clone()) as ArrayRef,
                (0..len).map(|i| (o[i] as usize, o[i + 1] as usize)).collect(),
            )
        }
        _ => return Err(ValueError::unconvertible(array, "expected a list")),
    };
    let mut offsets = Vec::with_capacity(len + 1);
    offsets.push(0i32);
    let mut total = 0usize;
    // The valid lists' elements are one contiguous run of `values` from `first`.
    let mut first = None;
    let mut contiguous = true;
    for (i, (start, end)) in ranges.iter().copied().enumerate() {
        if valid(i) && end > start {
            let run_start = *first.get_or_insert(start);
            contiguous &= start == run_start + total;
            total += end - start;
        }
        let offset = i32::try_from(total).map_err(|_| {
            ValueError::invalid(
                array.as_ref(),
                i,
                "makes this batch's lists hold more than 2^31 elements; use smaller batches",
            )
        })?;
        offsets.push(offset);
    }
    let compacted = if contiguous {
        values.slice(first.unwrap_or(0), total)
    } else {
        let indices: UInt64Array = ranges
            .iter()
            .enumerate()
            .filter(|(i, _)| valid(*i))
            .flat_map(|(_, (start, end))| (*start as u64)..(*end as u64))
            .collect();
        take(values.as_ref(), &indices, None).map_err(|e| ValueError::unconvertible(array, &e.to_string()))?
    };
    Ok((OffsetBuffer::new(offsets.into()), compacted, nulls))
}

/// True if an array or any array under it starts past its buffers' first value.
fn sliced(data: &arrow::array::ArrayData) -> bool {
    data.offset() != 0 || data.child_data().iter().any(sliced)
}

/// The child of a struct with the struct's NULLs added, so nothing under a NULL struct is
/// converted or checked.
fn with_parent_nulls(child: &ArrayRef, parent: Option<&NullBuffer>) -> Result<ArrayRef, String> {
    let Some(parent) = parent else {
        return Ok(child.clone());
    };
    if matches!(child.data_type(), DataType::Null) || parent.null_count() == 0 {
        return Ok(child.clone());
    }
    let nulls = NullBuffer::union(child.logical_nulls().as_ref(), Some(parent));
    let data = child
        .to_data()
        .into_builder()
        .nulls(nulls)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(make_array(data))
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        Date64Array, Decimal128Array, Decimal256Array, DictionaryArray, DurationSecondArray, FixedSizeListArray,
        Float64Array, Int32Array, Int64Array, StringArray, TimestampNanosecondArray, UInt64Array,
    };
    use arrow::datatypes::Int32Type;

    use super::*;
    use crate::schema::field;

    fn convert(input: ArrayRef, column: &TableFieldSchema) -> Result<ArrayRef, ValueError> {
        Conversion::plan(input.data_type(), column, &column.name)
            .unwrap_or_else(|m| panic!("{m:?}"))
            .apply(&input)
    }

    #[test]
    fn overflow_names_the_index() {
        let input: ArrayRef = Arc::new(UInt64Array::from(vec![Some(1), None, Some(u64::MAX)]));
        let err = convert(input, &field("i", Type::Int64, Mode::Nullable)).unwrap_err();
        assert_eq!(err.row, 2);
        assert_eq!(err.value(), u64::MAX.to_string());
        let big: ArrayRef = Arc::new(Int64Array::from(vec![1 << 53, (1 << 53) + 1]));
        let err = convert(big, &field("f", Type::Double, Mode::Nullable)).unwrap_err();
        assert_eq!(err.row, 1);
        let exact: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX - 2047]));
        let out = convert(exact, &field("f", Type::Double, Mode::Nullable)).unwrap();
        assert_eq!(out.as_primitive::<Float64Type>().value(0), (u64::MAX - 2047) as f64);
    }

    #[test]
    fn refuses_to_round_decimals_times_and_dates() {
        let numeric = field("n", Type::Numeric, Mode::Nullable);
        let input: ArrayRef = Arc::new(
            Decimal128Array::from(vec![15_000, 1_234_567_890_123])
                .with_precision_and_scale(20, 12)
                .unwrap(),
        );
        assert_eq!(convert(input, &numeric).unwrap_err().row, 1);
        let exact: ArrayRef = Arc::new(
            Decimal128Array::from(vec![1_000, -2_000])
                .with_precision_and_scale(20, 12)
                .unwrap(),
        );
        let out = convert(exact, &numeric).unwrap();
        assert_eq!(out.as_primitive::<Decimal128Type>().values().to_vec(), vec![1, -2]);
        let negative_scale: ArrayRef = Arc::new(
            Decimal256Array::from(vec![i256::from_i128(-7)])
                .with_precision_and_scale(5, -3)
                .unwrap(),
        );
        let out = convert(negative_scale, &field("b", Type::Bignumeric, Mode::Nullable)).unwrap();
        let expected = i256::from_i128(-7_000).wrapping_mul(i256::from_i128(10).wrapping_pow(38));
        assert_eq!(out.as_primitive::<Decimal256Type>().value(0), expected);
        let too_big: ArrayRef = Arc::new(
            Decimal256Array::from(vec![i256::MAX])
                .with_precision_and_scale(76, 0)
                .unwrap(),
        );
        assert!(convert(too_big, &numeric).unwrap_err().reason().contains("too large"));
        let ns: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![1_000, 1_001]));
        assert_eq!(
            convert(ns, &field("t", Type::Timestamp, Mode::Nullable))
                .unwrap_err()
                .row,
            1
        );
        let ms: ArrayRef = Arc::new(Date64Array::from(vec![-86_400_000, 1]));
        let err = convert(ms, &field("d", Type::Date, Mode::Nullable)).unwrap_err();
        assert_eq!((err.row, err.reason().contains("time of day")), (1, true));
    }

    #[test]
    fn durations_and_text_become_intervals() {
        let interval = field("i", Type::Interval, Mode::Nullable);
        let d: ArrayRef = Arc::new(DurationSecondArray::from(vec![Some(-90), None]));
        let out = convert(d, &interval).unwrap();
        let out = out.as_primitive::<IntervalMonthDayNanoType>();
        assert_eq!(out.value(0), IntervalMonthDayNano::new(0, 0, -90_000_000_000));
        assert!(out.is_null(1));
        let text: ArrayRef = Arc::new(StringArray::from(vec!["1-2 3 4:5:6.5", "soon"]));
        let err = convert(text, &interval).unwrap_err();
        assert_eq!((err.row, err.value()), (1, "soon"));
    }

    #[test]
    fn struct_members_match_by_name_and_nulls_hide_their_children() {
        let mut s = field("s", Type::Struct, Mode::Nullable);
        s.fields = vec![
            field("a", Type::Int64, Mode::Nullable),
            field("b", Type::Timestamp, Mode::Nullable),
        ];
        let b: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![1_000, 1_001]));
        let a: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
        let input = StructArray::try_new(
            Fields::from(vec![
                Field::new("B", b.data_type().clone(), false),
                Field::new("a", DataType::Int32, false),
            ]),
            vec![b, a],
            Some(NullBuffer::from(vec![true, false])),
        )
        .unwrap();
        // Row 1 is NULL: its sub-microsecond timestamp is never looked at.
        let out = convert(Arc::new(input.clone()), &s).unwrap();
        let out = out.as_struct();
        assert_eq!(out.column_names(), ["a", "b"]);
        assert!(out.is_null(1));
        let all_valid = StructArray::try_new(input.fields().clone(), input.columns().to_vec(), None).unwrap();
        let err = convert(Arc::new(all_valid), &s).unwrap_err();
        assert_eq!((err.row, err.path.as_str()), (1, "b"));
        let missing = DataType::Struct(Fields::from(vec![Field::new("a", DataType::Int64, true)]));
        assert!(matches!(
            Conversion::plan(&missing, &s, "s"),
            Err(Mismatch::MissingField { path, .. }) if path == "s.b"
        ));
        let extra = DataType::Struct(Fields::from(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("c", DataType::Int64, true),
        ]));
        assert!(matches!(
            Conversion::plan(&extra, &s, "s"),
            Err(Mismatch::ExtraField { path, .. }) if path == "s.c"
        ));
    }

    #[test]
    fn lists_are_compacted_and_elements_named_by_row() {
        let xs = field("xs", Type::Int64, Mode::Repeated);
        let values: ArrayRef = Arc::new(UInt64Array::from(vec![1, 2, u64::MAX, 4, 5, u64::MAX]));
        let item = Arc::new(Field::new("item", DataType::UInt64, true));
        // Row 1 is NULL and holds a value that would overflow: it is skipped.
        let fixed = FixedSizeListArray::try_new(item, 3, values, Some(NullBuffer::from(vec![true, false])));
        let fixed: ArrayRef = Arc::new(fixed.unwrap());
        let err = convert(fixed.clone(), &xs).unwrap_err();
        assert_eq!((err.row, err.path.as_str()), (0, "[2]"));
        let out = convert(fixed.slice(1, 1), &xs).unwrap();
        assert_eq!(out.as_list::<i32>().values().len(), 0);
        let dictionary: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::new(
            Int32Array::from(vec![1, 0, 1]),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ));
        let out = convert(dictionary, &field("s", Type::String, Mode::Nullable)).unwrap();
        assert_eq!(out.as_string::<i32>().value(0), "b");
        let float: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        assert!(Conversion::plan(float.data_type(), &xs, "xs").is_err());
    }
}
