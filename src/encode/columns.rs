//! Writes the values of canonical Arrow columns as proto2 fields, one row at a time.

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array, Float64Array,
    Int64Array, ListArray, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::options::WireEncoding;
use crate::proto::table_field_schema::Type;
use crate::values;

/// Why one value could not be written.
pub(crate) enum ValueError {
    /// A NULL where the column is REQUIRED.
    NullInRequired,
    /// A NULL element inside an array.
    NullElement(usize),
    /// The value is outside the BigQuery type's range.
    OutOfRange(String),
}

/// The values of one column of one batch, downcast once.
pub(crate) enum Values<'a> {
    Int64(&'a Int64Array),
    Float64(&'a Float64Array),
    Bool(&'a BooleanArray),
    Utf8(&'a StringArray),
    Binary(&'a BinaryArray),
    Date(&'a Date32Array),
    Timestamp(&'a TimestampMicrosecondArray),
    Datetime(&'a TimestampMicrosecondArray, WireEncoding),
    Time(&'a Time64MicrosecondArray, WireEncoding),
    Numeric(&'a Decimal128Array, WireEncoding),
    BigNumeric(&'a Decimal256Array, WireEncoding),
    /// A REPEATED column: the list and its element values.
    List(&'a ListArray, Box<Values<'a>>),
}

impl<'a> Values<'a> {
    /// Wraps a canonical array (the type [`crate::schema::to_arrow_field`] gives the column).
    pub(crate) fn new(array: &'a ArrayRef, ty: Type, repeated: bool, encoding: WireEncoding) -> Option<Self> {
        if repeated {
            let list = array.as_list_opt::<i32>()?;
            let element = Self::new(list.values(), ty, false, encoding)?;
            return Some(Values::List(list, Box::new(element)));
        }
        Some(match ty {
            Type::Int64 => Values::Int64(array.as_primitive_opt()?),
            Type::Double => Values::Float64(array.as_primitive_opt()?),
            Type::Bool => Values::Bool(array.as_boolean_opt()?),
            Type::String | Type::Json | Type::Geography | Type::Interval => Values::Utf8(array.as_string_opt()?),
            Type::Bytes => Values::Binary(array.as_binary_opt()?),
            Type::Date => Values::Date(array.as_primitive_opt()?),
            Type::Timestamp => Values::Timestamp(array.as_primitive_opt()?),
            Type::Datetime => Values::Datetime(array.as_primitive_opt()?, encoding),
            Type::Time => Values::Time(array.as_primitive_opt()?, encoding),
            Type::Numeric => Values::Numeric(array.as_primitive_opt()?, encoding),
            Type::Bignumeric => Values::BigNumeric(array.as_primitive_opt()?, encoding),
            Type::Struct | Type::Range | Type::Unspecified => return None,
        })
    }

    fn array(&self) -> &dyn Array {
        match self {
            Values::Int64(a) => *a,
            Values::Float64(a) => *a,
            Values::Bool(a) => *a,
            Values::Utf8(a) => *a,
            Values::Binary(a) => *a,
            Values::Date(a) => *a,
            Values::Timestamp(a) | Values::Datetime(a, _) => *a,
            Values::Time(a, _) => *a,
            Values::Numeric(a, _) => *a,
            Values::BigNumeric(a, _) => *a,
            Values::List(a, _) => *a,
        }
    }

    /// Appends field `tag` for row `row` to `buf`; writes nothing for NULL.
    pub(crate) fn write(&self, row: usize, tag: u32, required: bool, buf: &mut Vec<u8>) -> Result<(), ValueError> {
        if self.array().is_null(row) {
            // A NULL array is stored as an empty one; a NULL scalar is an absent field.
            return if required && !matches!(self, Values::List(..)) {
                Err(ValueError::NullInRequired)
            } else {
                Ok(())
            };
        }
        match self {
            Values::List(list, element) => {
                let offsets = list.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                for i in start..end {
                    if element.array().is_null(i) {
                        return Err(ValueError::NullElement(i - start));
                    }
                    element.write(i, tag, true, buf)?;
                }
                Ok(())
            }
            scalar => scalar.write_scalar(row, tag, buf),
        }
    }

    fn write_scalar(&self, row: usize, tag: u32, buf: &mut Vec<u8>) -> Result<(), ValueError> {
        match self {
            Values::Int64(a) => varint(buf, tag, a.value(row) as u64),
            Values::Float64(a) => {
                encode_key(tag, WireType::SixtyFourBit, buf);
                buf.extend_from_slice(&a.value(row).to_le_bytes());
            }
            Values::Bool(a) => varint(buf, tag, u64::from(a.value(row))),
            Values::Utf8(a) => bytes(buf, tag, a.value(row).as_bytes()),
            Values::Binary(a) => bytes(buf, tag, a.value(row)),
            Values::Date(a) => {
                let days = a.value(row);
                if !(values::DATE_MIN_DAYS..=values::DATE_MAX_DAYS).contains(&days) {
                    return Err(ValueError::OutOfRange(
                        "is outside DATE's range 0001-01-01..9999-12-31".into(),
                    ));
                }
                // int32 fields carry negative values sign-extended to 64 bits.
                varint(buf, tag, i64::from(days) as u64);
            }
            Values::Timestamp(a) => {
                let micros = a.value(row);
                if !(values::MICROS_MIN..=values::MICROS_MAX).contains(&micros) {
                    return Err(ValueError::OutOfRange(
                        "is outside TIMESTAMP's range 0001-01-01..9999-12-31".into(),
                    ));
                }
                varint(buf, tag, micros as u64);
            }
            Values::Datetime(a, encoding) => {
                let micros = a.value(row);
                let out_of_range =
                    || ValueError::OutOfRange("is outside DATETIME's range 0001-01-01..9999-12-31".into());
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
                let micros = a.value(row);
                let out_of_range =
                    || ValueError::OutOfRange("is outside TIME's range 00:00:00..23:59:59.999999".into());
                match encoding {
                    WireEncoding::Packed => {
                        varint(buf, tag, values::pack_time(micros).ok_or_else(out_of_range)? as u64)
                    }
                    WireEncoding::Text => {
                        bytes(buf, tag, values::time_text(micros).ok_or_else(out_of_range)?.as_bytes())
                    }
                }
            }
            Values::Numeric(a, encoding) => {
                let unscaled = a.value(row);
                if !(-values::NUMERIC_MAX_UNSCALED..=values::NUMERIC_MAX_UNSCALED).contains(&unscaled) {
                    return Err(ValueError::OutOfRange(
                        "is outside NUMERIC's range (29 integer digits)".into(),
                    ));
                }
                match encoding {
                    WireEncoding::Packed => bytes(buf, tag, &values::pack_numeric(unscaled)),
                    WireEncoding::Text => bytes(
                        buf,
                        tag,
                        values::decimal_text(unscaled, values::NUMERIC_SCALE).as_bytes(),
                    ),
                }
            }
            Values::BigNumeric(a, encoding) => {
                let unscaled = a.value(row);
                match encoding {
                    WireEncoding::Packed => bytes(buf, tag, &values::pack_bignumeric(unscaled)),
                    WireEncoding::Text => bytes(
                        buf,
                        tag,
                        values::decimal_text(unscaled, values::BIGNUMERIC_SCALE).as_bytes(),
                    ),
                }
            }
            Values::List(..) => unreachable!("lists are written element by element"),
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
