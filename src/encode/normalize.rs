//! Input Arrow columns -> the canonical Arrow type of their BigQuery column, exactly:
//! conversions that would lose a digit or overflow fail and name the row and value.

use arrow::array::{Array, ArrayRef};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::proto::table_field_schema::Type;

/// True if values of Arrow type `input` can be written to a BigQuery `ty` value.
pub(crate) fn compatible(input: &DataType, ty: Type) -> bool {
    use DataType as D;
    if let D::Dictionary(_, value) = input {
        return compatible(value, ty);
    }
    if matches!(input, D::Null) {
        return true;
    }
    match ty {
        Type::Int64 => input.is_integer(),
        Type::Double => input.is_floating() || input.is_integer(),
        Type::Bool => matches!(input, D::Boolean),
        Type::String | Type::Json | Type::Geography | Type::Interval => {
            matches!(input, D::Utf8 | D::LargeUtf8 | D::Utf8View)
        }
        Type::Bytes => matches!(
            input,
            D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)
        ),
        Type::Date => matches!(input, D::Date32 | D::Date64),
        Type::Timestamp => matches!(input, D::Timestamp(_, _)),
        Type::Datetime => matches!(input, D::Timestamp(_, None)),
        Type::Time => matches!(input, D::Time32(_) | D::Time64(_)),
        Type::Numeric | Type::Bignumeric => {
            input.is_integer()
                || matches!(
                    input,
                    D::Decimal32(_, _) | D::Decimal64(_, _) | D::Decimal128(_, _) | D::Decimal256(_, _)
                )
        }
        Type::Struct | Type::Range | Type::Unspecified => false,
    }
}

/// A conversion failure at one row of the column.
pub(crate) struct Rejected {
    pub(crate) row: usize,
    pub(crate) value: String,
    pub(crate) reason: String,
}

/// Casts `array` to `target`, failing on the first value that would overflow or lose digits.
pub(crate) fn to_canonical(array: &ArrayRef, target: &DataType) -> Result<ArrayRef, Rejected> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    if let Some(rejected) = first_lossy_value(array, target) {
        return Err(rejected);
    }
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    match cast_with_options(array, target, &safe) {
        Ok(cast) => match first_new_null(array, &cast) {
            Some(row) => Err(Rejected {
                row,
                value: display(array, row),
                reason: format!("does not fit {target}"),
            }),
            None => Ok(cast),
        },
        Err(e) => Err(Rejected {
            row: 0,
            value: String::new(),
            reason: e.to_string(),
        }),
    }
}

/// The first row that is valid in `input` but NULL after the cast (an overflow).
fn first_new_null(input: &ArrayRef, cast: &ArrayRef) -> Option<usize> {
    if cast.null_count() == input.null_count() {
        return None;
    }
    (0..input.len()).find(|&i| input.is_valid(i) && cast.is_null(i))
}

/// Finds a value whose cast would drop non-zero digits (decimal scale or time unit reduction),
/// which Arrow's cast would round or truncate silently.
fn first_lossy_value(array: &ArrayRef, target: &DataType) -> Option<Rejected> {
    let divisor: i128 = match (array.data_type(), target) {
        (DataType::Decimal128(_, s), DataType::Decimal128(_, t) | DataType::Decimal256(_, t))
        | (DataType::Decimal64(_, s), DataType::Decimal128(_, t) | DataType::Decimal256(_, t))
        | (DataType::Decimal32(_, s), DataType::Decimal128(_, t) | DataType::Decimal256(_, t))
            if s > t =>
        {
            10i128.checked_pow(u32::try_from(s - t).ok()?)?
        }
        (DataType::Timestamp(from, _), DataType::Timestamp(to, _))
        | (DataType::Time64(from), DataType::Time64(to))
        | (DataType::Time32(from), DataType::Time64(to)) => {
            let per_second = |u: &TimeUnit| match u {
                TimeUnit::Second => 1i128,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1_000_000,
                TimeUnit::Nanosecond => 1_000_000_000,
            };
            let (f, t) = (per_second(from), per_second(to));
            if f <= t {
                return None;
            }
            f / t
        }
        _ => return None,
    };
    // Decimal inputs: compare the unscaled integer; time inputs: the raw integer.
    let raw: ArrayRef = match array.data_type() {
        DataType::Timestamp(_, _) | DataType::Time64(_) | DataType::Time32(_) => {
            cast_with_options(array, &DataType::Int64, &CastOptions::default()).ok()?
        }
        _ => unscaled(array)?,
    };
    let raw = cast_with_options(&raw, &DataType::Decimal128(38, 0), &CastOptions::default()).ok()?;
    let raw = raw.as_any().downcast_ref::<arrow::array::Decimal128Array>()?;
    (0..raw.len())
        .find(|&i| raw.is_valid(i) && raw.value(i) % divisor != 0)
        .map(|row| Rejected {
            row,
            value: display(array, row),
            reason: format!("has more digits than {target} keeps; refusing to round"),
        })
}

/// The unscaled integers of a decimal array, as an Int-like decimal of scale 0.
fn unscaled(array: &ArrayRef) -> Option<ArrayRef> {
    let data = array.to_data();
    let as_scale_zero = match array.data_type() {
        DataType::Decimal32(p, _) => DataType::Decimal32(*p, 0),
        DataType::Decimal64(p, _) => DataType::Decimal64(*p, 0),
        DataType::Decimal128(p, _) => DataType::Decimal128(*p, 0),
        _ => return None,
    };
    let data = data.into_builder().data_type(as_scale_zero).build().ok()?;
    Some(arrow::array::make_array(data))
}

/// Renders one value for an error message.
pub(crate) fn display(array: &dyn Array, row: usize) -> String {
    ArrayFormatter::try_new(array, &FormatOptions::default())
        .map(|f| f.value(row).to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, TimestampNanosecondArray, UInt64Array};

    use super::*;

    #[test]
    fn overflow_names_the_row() {
        let input: ArrayRef = Arc::new(UInt64Array::from(vec![Some(1), None, Some(u64::MAX)]));
        let err = to_canonical(&input, &DataType::Int64).err().unwrap();
        assert_eq!(err.row, 2);
        assert_eq!(err.value, u64::MAX.to_string());
    }

    #[test]
    fn refuses_to_round_decimals_and_timestamps() {
        let input: ArrayRef = Arc::new(
            Decimal128Array::from(vec![15_000, 1_234_567_890_123])
                .with_precision_and_scale(20, 12)
                .unwrap(),
        );
        let err = to_canonical(&input, &DataType::Decimal128(38, 9)).err().unwrap();
        assert_eq!(err.row, 1);
        let exact: ArrayRef = Arc::new(
            Decimal128Array::from(vec![1_000, 2_000])
                .with_precision_and_scale(20, 12)
                .unwrap(),
        );
        assert!(to_canonical(&exact, &DataType::Decimal128(38, 9)).is_ok());
        let ns: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![1_000, 1_001]));
        let err = to_canonical(&ns, &DataType::Timestamp(TimeUnit::Microsecond, None))
            .err()
            .unwrap();
        assert_eq!(err.row, 1);
    }
}
