//! INSERTs planned against the input's own types. DataFusion casts every input column to the
//! table's Arrow type before the insert; where that cast only widens (no value changes, and a
//! value it would refuse is outside BigQuery's range, which the encoder refuses too) and the
//! encoder reads the input type exactly, the cast is taken out, so the workers encode the
//! source columns as they are: no cast and no copy of the data.

use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::error::Result;
use datafusion::physical_expr::expressions::CastExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

use crate::load::Loader;
use crate::values;

/// `input` without the widening casts of its top projection, if the loader's encoder takes
/// the columns in their own types; otherwise `input` as it is.
pub(crate) fn without_widening_casts(input: Arc<dyn ExecutionPlan>, loader: &Loader) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(projection) = input.downcast_ref::<ProjectionExec>() else {
        return Ok(input);
    };
    let source_schema = projection.input().schema();
    let mut changed = false;
    let mut exprs = Vec::with_capacity(projection.expr().len());
    for item in projection.expr() {
        let inner = item.expr.downcast_ref::<CastExpr>().and_then(|cast| {
            let from = cast.expr().data_type(&source_schema).ok()?;
            widens(&from, cast.cast_type()).then(|| cast.expr().clone())
        });
        match inner {
            Some(expr) => {
                changed = true;
                exprs.push(ProjectionExpr {
                    expr,
                    alias: item.alias.clone(),
                });
            }
            None => exprs.push(item.clone()),
        }
    }
    if !changed {
        return Ok(input);
    }
    let stripped: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(exprs, projection.input().clone())?);
    match loader.check_input(&stripped.schema()) {
        Ok(()) => Ok(stripped),
        Err(reason) => {
            tracing::debug!(table = %loader.table(), %reason, "keeping DataFusion's casts of the INSERT's input");
            Ok(input)
        }
    }
}

/// True if every value of `from` converts to `to` exactly (or is refused by the encoder too).
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (Dictionary(_, values), to) => values.as_ref() == to || widens(values, to),
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Int64) => true,
        (Float16 | Float32, Float64) => true,
        (LargeUtf8 | Utf8View, Utf8) => true,
        (LargeBinary | BinaryView | FixedSizeBinary(_), Binary) => true,
        (Decimal32(p, s) | Decimal64(p, s), Decimal128(38, target)) => fits(*p, *s, *target),
        (Decimal128(p, s), Decimal128(38, target)) => fits(*p, *s, *target),
        (Decimal128(p, s) | Decimal256(p, s), Decimal256(76, target)) => fits(*p, *s, *target),
        (Timestamp(unit, from_zone), Timestamp(TimeUnit::Microsecond, to_zone)) => {
            *unit != TimeUnit::Nanosecond && from_zone.is_some() == to_zone.is_some()
        }
        (Time32(_), Time64(TimeUnit::Microsecond)) => true,
        _ => false,
    }
}

/// True if a decimal of precision `p` and scale `s` fits a column of scale `target` (NUMERIC
/// keeps 29 integer digits, BIGNUMERIC 38) without rounding or overflow.
fn fits(p: u8, s: i8, target: i8) -> bool {
    let integer_digits = match target {
        values::NUMERIC_SCALE => 29,
        _ => 38,
    };
    s >= 0 && s <= target && i16::from(p) - i16::from(s) <= integer_digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lossless_casts_are_taken_out() {
        use DataType::*;
        assert!(widens(&Int32, &Int64));
        assert!(widens(&Utf8View, &Utf8));
        assert!(widens(&Decimal128(15, 2), &Decimal128(38, 9)));
        assert!(widens(&Decimal128(38, 9), &Decimal256(76, 38)));
        assert!(widens(
            &Timestamp(TimeUnit::Millisecond, Some("+01:00".into())),
            &Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        ));
        assert!(widens(&Dictionary(Box::new(Int32), Box::new(Utf8)), &Utf8));
        // Rounding, overflow, other meanings: DataFusion's cast stays.
        assert!(!widens(&Int64, &Float64));
        assert!(!widens(&UInt64, &Int64));
        assert!(!widens(&Decimal128(38, 0), &Decimal128(38, 9)), "30 integer digits");
        assert!(!widens(&Decimal128(20, 12), &Decimal128(38, 9)), "12 fractional digits");
        assert!(!widens(
            &Timestamp(TimeUnit::Nanosecond, None),
            &Timestamp(TimeUnit::Microsecond, None)
        ));
        assert!(widens(
            &Timestamp(TimeUnit::Second, None),
            &Timestamp(TimeUnit::Microsecond, None)
        ));
        assert!(!widens(
            &Timestamp(TimeUnit::Millisecond, None),
            &Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        ));
        assert!(!widens(&Utf8, &Int64));
        assert!(!widens(&Float64, &Decimal128(38, 9)));
    }
}
