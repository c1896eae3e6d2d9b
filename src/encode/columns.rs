//! Writes canonical Arrow columns as proto2 fields, one row at a time, checking BigQuery's
//! rules on the way: REQUIRED fields, NULL array elements, each type's range, parameterized
//! NUMERIC/BIGNUMERIC digits, STRING/BYTES lengths, JSON text, RANGE bounds.

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Float64Array, Int64Array,
    IntervalMonthDayNanoArray, ListArray, PrimitiveArray, StringArray, StructArray, Time64MicrosecondArray,
    TimestampMicrosecondArray, TimestampNanosecondArray,
};
use arrow::datatypes::{Decimal128Type, Decimal256Type, DecimalType};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::value_error::ValueError;
use super::{ArrayNullElements, WireEncoding};
use crate::proto::TableFieldSchema;
use crate::proto::table_field_schema::{Mode, Type};
use crate::schema::{field_mode, field_type, is_picosecond_timestamp, nested_members};
use crate::values::{self, Unscaled};

/// How the writer treats things the options decide.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteOptions {
    pub(crate) encoding: WireEncoding,
    pub(crate) null_elements: ArrayNullElements,
}

/// One field of a message: a column of the row, or a member of a STRUCT or RANGE.
pub(crate) struct FieldWriter<'a> {
    name: &'a str,
    tag: u32,
    mode: Mode,
    /// The arrays of a REPEATED field; `values` are then its elements.
    list: Option<&'a ListArray>,
    values: Values<'a>,
    null_elements: ArrayNullElements,
}

/// The values of one field, downcast once per batch.
enum Values<'a> {
    Int64(&'a Int64Array),
    Float64(&'a Float64Array),
    Bool(&'a BooleanArray),
    /// STRING (with its maximum length in characters), JSON, GEOGRAPHY.
    Text {
        array: &'a StringArray,
        max_chars: Option<usize>,
        json: bool,
    },
    Bytes {
        array: &'a BinaryArray,
        max_len: Option<usize>,
    },
    Date(&'a Date32Array),
    Timestamp(&'a TimestampMicrosecondArray),
    /// TIMESTAMP with picosecond precision: nanoseconds, written as text.
    TimestampPicos(&'a TimestampNanosecondArray),
    Datetime(&'a TimestampMicrosecondArray, WireEncoding),
    Time(&'a Time64MicrosecondArray, WireEncoding),
    Numeric(Decimals<'a, Decimal128Type>),
    BigNumeric(Decimals<'a, Decimal256Type>),
    Interval(&'a IntervalMonthDayNanoArray),
    /// STRUCT, or RANGE (`range`: its two bounds must be in order).
    Message {
        array: &'a StructArray,
        fields: Vec<FieldWriter<'a>>,
        range: bool,
    },
}

impl<'a> FieldWriter<'a> {
    /// Plans the writing of a canonical array (from [`super::normalize`]) as field `tag`.
    pub(crate) fn new(
        column: &'a TableFieldSchema,
        tag: u32,
        array: &'a ArrayRef,
        options: WriteOptions,
    ) -> Result<Self, String> {
        let mode = field_mode(column);
        let (list, element) = if mode == Mode::Repeated {
            let list = array
                .as_list_opt::<i32>()
                .ok_or_else(|| format!("column {} is {}, not a list", column.name, array.data_type()))?;
            (Some(list), list.values())
        } else {
            (None, array)
        };
        Ok(FieldWriter {
            name: &column.name,
            tag,
            mode,
            list,
            values: Values::new(column, element, options).map_err(|e| format!("column {}: {e}", column.name))?,
            null_elements: options.null_elements,
        })
    }

    /// Appends this field of row `row` to `buf`; writes nothing for NULL.
    pub(crate) fn write(&self, row: usize, buf: &mut Vec<u8>) -> Result<(), ValueError> {
        let Some(list) = self.list else {
            if self.values.array().is_null(row) {
                return match self.mode {
                    Mode::Required => Err(ValueError::null_in_required(row).within(self.name, None)),
                    _ => Ok(()),
                };
            }
            return self
                .values
                .write(row, self.tag, buf)
                .map_err(|e| e.within(self.name, None));
        };
        // A NULL array is stored as an empty one.
        if list.is_null(row) {
            return Ok(());
        }
        let offsets = list.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        for i in start..end {
            if self.values.array().is_null(i) {
                match self.null_elements {
                    ArrayNullElements::Drop => continue,
                    ArrayNullElements::Error => {
                        let reason = format!(
                            "has a NULL element at index {}; BigQuery arrays cannot hold NULL \
                             (OPTIONS ('bigquery.array_null_elements' 'drop') leaves them out)",
                            i - start
                        );
                        return Err(ValueError::invalid(list, row, reason).within(self.name, None));
                    }
                }
            }
            self.values
                .write(i, self.tag, buf)
                .map_err(|e| e.within(self.name, Some(i - start)).at_row(row))?;
        }
        Ok(())
    }
}

impl<'a> Values<'a> {
    fn new(column: &'a TableFieldSchema, array: &'a ArrayRef, options: WriteOptions) -> Result<Self, String> {
        let wrong = || format!("expected a canonical array, got {}", array.data_type());
        let encoding = options.encoding;
        let max_length = usize::try_from(column.max_length).ok().filter(|n| *n > 0);
        Ok(match field_type(column) {
            Type::Int64 => Values::Int64(array.as_primitive_opt().ok_or_else(wrong)?),
            Type::Double => Values::Float64(array.as_primitive_opt().ok_or_else(wrong)?),
            Type::Bool => Values::Bool(array.as_boolean_opt().ok_or_else(wrong)?),
            ty @ (Type::String | Type::Json | Type::Geography) => Values::Text {
                array: array.as_string_opt().ok_or_else(wrong)?,
                max_chars: max_length.filter(|_| ty == Type::String),
                json: ty == Type::Json,
            },
            Type::Bytes => Values::Bytes {
                array: array.as_binary_opt().ok_or_else(wrong)?,
                max_len: max_length,
            },
            Type::Date => Values::Date(array.as_primitive_opt().ok_or_else(wrong)?),
            Type::Timestamp if is_picosecond_timestamp(column) => {
                Values::TimestampPicos(array.as_primitive_opt().ok_or_else(wrong)?)
            }
            Type::Timestamp => Values::Timestamp(array.as_primitive_opt().ok_or_else(wrong)?),
            Type::Datetime => Values::Datetime(array.as_primitive_opt().ok_or_else(wrong)?, encoding),
            Type::Time => Values::Time(array.as_primitive_opt().ok_or_else(wrong)?, encoding),
            Type::Numeric => Values::Numeric(Decimals::new(column, array, encoding)?),
            Type::Bignumeric => Values::BigNumeric(Decimals::new(column, array, encoding)?),
            Type::Interval => Values::Interval(array.as_primitive_opt().ok_or_else(wrong)?),
            Type::Range => Self::range(column, array.as_struct_opt().ok_or_else(wrong)?, options)?,
            Type::Struct => {
                let array = array.as_struct_opt().ok_or_else(wrong)?;
                if column.fields.len() != array.num_columns() {
                    return Err(wrong());
                }
                let fields = column
                    .fields
                    .iter()
                    .zip(array.columns())
                    .enumerate()
                    .map(|(j, (member, child))| FieldWriter::new(member, j as u32 + 1, child, options))
                    .collect::<Result<Vec<_>, _>>()?;
                Values::Message {
                    array,
                    fields,
                    range: false,
                }
            }
            Type::Unspecified => return Err("column has no type".into()),
        })
    }

    /// A RANGE: a message {start = 1, end = 2} of its element type.
    fn range(column: &'a TableFieldSchema, array: &'a StructArray, options: WriteOptions) -> Result<Self, String> {
        let members = nested_members(column)?;
        if array.num_columns() != 2 {
            return Err(format!("RANGE expects start and end, got {}", array.data_type()));
        }
        let bound_type = field_type(&members[0]);
        let bound = |name: &'static str, tag: u32, child: &'a ArrayRef| -> Result<FieldWriter<'a>, String> {
            let element = TableFieldSchema {
                r#type: bound_type as i32,
                ..Default::default()
            };
            Ok(FieldWriter {
                name,
                tag,
                mode: Mode::Nullable,
                list: None,
                values: Values::new_bound(&element, child, options)?,
                null_elements: options.null_elements,
            })
        };
        Ok(Values::Message {
            array,
            fields: vec![bound("start", 1, array.column(0))?, bound("end", 2, array.column(1))?],
            range: true,
        })
    }

    /// A RANGE bound: DATE, DATETIME or TIMESTAMP, which borrow nothing from the column.
    fn new_bound(element: &TableFieldSchema, array: &'a ArrayRef, options: WriteOptions) -> Result<Self, String> {
        let wrong = || format!("expected a canonical RANGE bound, got {}", array.data_type());
        Ok(match field_type(element) {
            Type::Date => Values::Date(array.as_primitive_opt().ok_or_else(wrong)?),
            Type::Timestamp => Values::Timestamp(array.as_primitive_opt().ok_or_else(wrong)?),
            Type::Datetime => Values::Datetime(array.as_primitive_opt().ok_or_else(wrong)?, options.encoding),
            _ => return Err(wrong()),
        })
    }

    fn array(&self) -> &dyn Array {
        match self {
            Values::Int64(a) => *a,
            Values::Float64(a) => *a,
            Values::Bool(a) => *a,
            Values::Text { array, .. } => *array,
            Values::Bytes { array, .. } => *array,
            Values::Date(a) => *a,
            Values::Timestamp(a) | Values::Datetime(a, _) => *a,
            Values::TimestampPicos(a) => *a,
            Values::Time(a, _) => *a,
            Values::Numeric(d) => d.array,
            Values::BigNumeric(d) => d.array,
            Values::Interval(a) => *a,
            Values::Message { array, .. } => *array,
        }
    }

    /// The value of a RANGE bound as one comparable integer.
    fn bound(&self, i: usize) -> Option<i64> {
        match self {
            Values::Date(a) => Some(i64::from(a.value(i))),
            Values::Timestamp(a) | Values::Datetime(a, _) => Some(a.value(i)),
            _ => None,
        }
    }

    /// Writes the (non-NULL) value at `i` as field `tag`.
    fn write(&self, i: usize, tag: u32, buf: &mut Vec<u8>) -> Result<(), ValueError> {
        let invalid = |reason: &str| ValueError::invalid(self.array(), i, reason);
        match self {
            Values::Int64(a) => varint(buf, tag, a.value(i) as u64),
            Values::Float64(a) => {
                encode_key(tag, WireType::SixtyFourBit, buf);
                buf.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Values::Bool(a) => varint(buf, tag, u64::from(a.value(i))),
            Values::Text { array, max_chars, json } => {
                let text = array.value(i);
                if let Some(max) = max_chars
                    && text.len() > *max
                    && text.chars().count() > *max
                {
                    return Err(invalid(&format!("is longer than STRING({max})'s {max} characters")));
                }
                if *json && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
                    return Err(invalid("is not valid JSON text"));
                }
                bytes(buf, tag, text.as_bytes());
            }
            Values::Bytes { array, max_len } => {
                let value = array.value(i);
                if let Some(max) = max_len
                    && value.len() > *max
                {
                    return Err(invalid(&format!("is longer than BYTES({max})'s {max} bytes")));
                }
                bytes(buf, tag, value);
            }
            Values::Date(a) => {
                let days = a.value(i);
                if !(values::DATE_MIN_DAYS..=values::DATE_MAX_DAYS).contains(&days) {
                    return Err(invalid(values::DATE_OUT_OF_RANGE));
                }
                // int32 fields carry negative values sign-extended to 64 bits.
                varint(buf, tag, i64::from(days) as u64);
            }
            Values::Timestamp(a) => {
                let micros = a.value(i);
                if !(values::MICROS_MIN..=values::MICROS_MAX).contains(&micros) {
                    return Err(invalid(values::TIMESTAMP_OUT_OF_RANGE));
                }
                varint(buf, tag, micros as u64);
            }
            Values::TimestampPicos(a) => {
                // Every nanosecond timestamp (1677..2262) is inside TIMESTAMP's range.
                let text =
                    values::timestamp_picos_text(a.value(i)).ok_or_else(|| invalid("is not a valid timestamp"))?;
                bytes(buf, tag, text.as_bytes());
            }
            Values::Datetime(a, encoding) => {
                let micros = a.value(i);
                let out_of_range = || invalid(values::DATETIME_OUT_OF_RANGE);
                match encoding {
                    WireEncoding::Packed => {
                        varint(buf, tag, values::pack_datetime(micros).ok_or_else(out_of_range)? as u64)
                    }
                    WireEncoding::Text => bytes(
                        buf,
                        tag,
                        values::datetime_text(micros).ok_or_else(out_of_range)?.as_bytes(),
                    ),
                }
            }
            Values::Time(a, encoding) => {
                let micros = a.value(i);
                let out_of_range = || invalid(values::TIME_OUT_OF_RANGE);
                match encoding {
                    WireEncoding::Packed => {
                        varint(buf, tag, values::pack_time(micros).ok_or_else(out_of_range)? as u64)
                    }
                    WireEncoding::Text => {
                        bytes(buf, tag, values::time_text(micros).ok_or_else(out_of_range)?.as_bytes())
                    }
                }
            }
            Values::Numeric(d) => d.write(i, tag, buf)?,
            Values::BigNumeric(d) => d.write(i, tag, buf)?,
            Values::Interval(a) => {
                let v = a.value(i);
                let text = values::interval_text(v.months, v.days, v.nanoseconds).ok_or_else(|| {
                    invalid(if v.nanoseconds % 1_000 != 0 {
                        values::SUB_MICROSECOND
                    } else {
                        values::INTERVAL_OUT_OF_RANGE
                    })
                })?;
                bytes(buf, tag, text.as_bytes());
            }
            Values::Message { fields, range, .. } => {
                if *range {
                    let (start, end) = (&fields[0].values, &fields[1].values);
                    if start.array().is_valid(i) && end.array().is_valid(i) && start.bound(i) >= end.bound(i) {
                        return Err(invalid("has a start that is not before its end"));
                    }
                }
                message(buf, tag, |buf| fields.iter().try_for_each(|f| f.write(i, buf)))?;
            }
        }
        Ok(())
    }
}

/// NUMERIC or BIGNUMERIC values, with the column's parameters.
pub(crate) struct Decimals<'a, T: DecimalType>
where
    T::Native: Unscaled,
{
    array: &'a PrimitiveArray<T>,
    encoding: WireEncoding,
    /// NUMERIC(P, S) / BIGNUMERIC(P, S): see [`Unscaled::digit_limits`].
    digits: Option<(T::Native, T::Native)>,
}

impl<'a, T: DecimalType> Decimals<'a, T>
where
    T::Native: Unscaled,
{
    fn new(column: &TableFieldSchema, array: &'a ArrayRef, encoding: WireEncoding) -> Result<Self, String> {
        let array = array
            .as_primitive_opt::<T>()
            .ok_or_else(|| format!("expected a canonical array, got {}", array.data_type()))?;
        let digits = match column.precision {
            0 => None,
            p => Some(
                T::Native::digit_limits(p, column.scale)
                    .ok_or_else(|| format!("invalid {} precision or scale", T::Native::TYPE_NAME))?,
            ),
        };
        Ok(Decimals {
            array,
            encoding,
            digits,
        })
    }

    /// Writes the value at `i` as field `tag`, in range and within the column's digits.
    fn write(&self, i: usize, tag: u32, buf: &mut Vec<u8>) -> Result<(), ValueError> {
        let unscaled = self.array.value(i);
        let invalid = |reason: &str| ValueError::invalid(self.array, i, reason);
        if !unscaled.in_range() {
            return Err(invalid(T::Native::OUT_OF_RANGE));
        }
        if let Some((limit, step)) = self.digits {
            let name = T::Native::TYPE_NAME;
            if !unscaled.below(limit) {
                return Err(invalid(&values::beyond_parameter_integer_digits(name)));
            }
            if !unscaled.multiple_of(step) {
                return Err(invalid(&values::beyond_parameter_fraction_digits(name)));
            }
        }
        match self.encoding {
            WireEncoding::Packed => bytes(buf, tag, &unscaled.packed()),
            WireEncoding::Text => bytes(buf, tag, values::decimal_text(unscaled, T::Native::SCALE).as_bytes()),
        }
        Ok(())
    }
}

fn varint(buf: &mut Vec<u8>, tag: u32, value: u64) {
    encode_key(tag, WireType::Varint, buf);
    encode_varint(value, buf);
}

fn bytes(buf: &mut Vec<u8>, tag: u32, value: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(value.len() as u64, buf);
    buf.extend_from_slice(value);
}

/// Writes a nested message as field `tag`: its fields go straight into `buf` after a one-byte
/// length placeholder, moved forward in the rare case the length needs more bytes.
fn message<E>(buf: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
    encode_key(tag, WireType::LengthDelimited, buf);
    let at = buf.len();
    buf.push(0);
    let start = buf.len();
    body(buf)?;
    let len = buf.len() - start;
    let len_bytes = encoded_len_varint(len as u64);
    if len_bytes > 1 {
        buf.resize(buf.len() + len_bytes - 1, 0);
        buf.copy_within(start..start + len, start + len_bytes - 1);
    }
    let mut slot = &mut buf[at..at + len_bytes];
    encode_varint(len as u64, &mut slot);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_message_lengths_of_any_size() {
        for len in [0usize, 1, 127, 128, 300, 20_000] {
            let mut buf = vec![0xAA];
            message::<()>(&mut buf, 3, |b| {
                b.extend(std::iter::repeat_n(7u8, len));
                Ok(())
            })
            .unwrap();
            let mut expected = vec![0xAA, 0x1A];
            encode_varint(len as u64, &mut expected);
            expected.extend(std::iter::repeat_n(7u8, len));
            assert_eq!(buf, expected, "{len}");
        }
    }
}
