//! Column defaults: what the service writes for an absent (NULL) value when a request asks
//! for the DEFAULT_VALUE interpretation (`default_missing_value_interpretation`, or per column
//! in `missing_value_interpretations`). The embedded server evaluates literal defaults
//! (numbers, strings, TRUE, FALSE, NULL) and CURRENT_TIMESTAMP(), CURRENT_DATE() and
//! CURRENT_DATETIME(); a table whose default is another expression refuses such requests.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef};
use arrow::compute::{is_not_null, kernels::zip::zip};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;

use crate::proto::append_rows_request::MissingValueInterpretation;

/// How one request wants absent values read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interpretation {
    default: i32,
    per_column: HashMap<String, i32>,
}

impl Interpretation {
    pub(crate) fn new(default: i32, per_column: &HashMap<String, i32>) -> Self {
        Self {
            default,
            per_column: per_column.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect(),
        }
    }

    /// True if absent values of `column` take its default.
    pub(crate) fn takes_default(&self, column: &str) -> bool {
        let chosen = self
            .per_column
            .get(&column.to_ascii_lowercase())
            .copied()
            .unwrap_or(self.default);
        chosen == MissingValueInterpretation::DefaultValue as i32
    }
}

/// The value of a default expression, as a scalar of the column's Arrow type.
pub(crate) fn evaluate(expression: &str, ty: &DataType) -> Result<ScalarValue, String> {
    let text = expression.trim();
    let unsupported = || format!("default expression {text} is not supported by the embedded server");
    let cast = |value: ScalarValue| value.cast_to(ty).map_err(|e| format!("default {text}: {e}"));
    let upper = text.to_ascii_uppercase();
    let now = chrono::Utc::now();
    match upper.as_str() {
        "NULL" => ScalarValue::try_from(ty).map_err(|e| e.to_string()),
        "TRUE" => cast(ScalarValue::Boolean(Some(true))),
        "FALSE" => cast(ScalarValue::Boolean(Some(false))),
        "CURRENT_TIMESTAMP()" | "CURRENT_TIMESTAMP" => match ty {
            DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
                Ok(ScalarValue::TimestampNanosecond(now.timestamp_nanos_opt(), tz.clone()))
            }
            DataType::Timestamp(_, tz) => Ok(ScalarValue::TimestampMicrosecond(
                Some(now.timestamp_micros()),
                tz.clone(),
            )),
            _ => Err(unsupported()),
        },
        "CURRENT_DATETIME()" | "CURRENT_DATETIME" => Ok(ScalarValue::TimestampMicrosecond(
            Some(now.naive_utc().and_utc().timestamp_micros()),
            None,
        )),
        "CURRENT_DATE()" | "CURRENT_DATE" => {
            let days = (now.date_naive() - chrono::NaiveDate::default()).num_days();
            cast(ScalarValue::Date32(i32::try_from(days).ok()))
        }
        _ => {
            let quoted = ['\'', '"']
                .iter()
                .find_map(|q| text.strip_prefix(*q).and_then(|t| t.strip_suffix(*q)));
            match quoted {
                Some(inner) => cast(ScalarValue::Utf8(Some(inner.to_string()))),
                None if text.parse::<f64>().is_ok() => {
                    ScalarValue::try_from_string(text.to_string(), ty).map_err(|e| format!("default {text}: {e}"))
                }
                None => Err(unsupported()),
            }
        }
    }
}

/// The default of one top-level column, and whether it is REQUIRED once defaults are applied
/// (such a column may be absent from the writer schema and the rows).
#[derive(Debug, Clone)]
pub(crate) struct DefaultRule {
    pub(crate) column: String,
    pub(crate) expression: String,
    pub(crate) arrow_type: DataType,
    pub(crate) required: bool,
}

impl DefaultRule {
    /// Fills the NULLs of `array` with the default when the request asks for it, then checks
    /// a REQUIRED column; a failure names the first row left NULL.
    pub(crate) fn apply(&self, array: ArrayRef, missing: &Interpretation) -> Result<ArrayRef, (Option<usize>, String)> {
        let array = if missing.takes_default(&self.column) {
            let value = evaluate(&self.expression, &self.arrow_type).map_err(|e| (None, e))?;
            fill(&array, &value).map_err(|e| (None, e))?
        } else {
            array
        };
        if self.required
            && let Some(index) = (0..array.len()).find(|i| array.is_null(*i))
        {
            return Err((Some(index), format!("REQUIRED field {} is missing", self.column)));
        }
        Ok(array)
    }
}

/// Replaces the NULLs of `array` with `default`.
pub(crate) fn fill(array: &ArrayRef, default: &ScalarValue) -> Result<ArrayRef, String> {
    if array.null_count() == 0 {
        return Ok(array.clone());
    }
    let defaults = default.to_array_of_size(array.len()).map_err(|e| e.to_string())?;
    let present = is_not_null(array.as_ref()).map_err(|e| e.to_string())?;
    zip(&present, array, &defaults).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn literal_defaults_and_the_interpretation() {
        assert_eq!(evaluate("42", &DataType::Int64), Ok(ScalarValue::Int64(Some(42))));
        assert_eq!(
            evaluate("'open'", &DataType::Utf8),
            Ok(ScalarValue::Utf8(Some("open".into())))
        );
        assert_eq!(
            evaluate("TRUE", &DataType::Boolean),
            Ok(ScalarValue::Boolean(Some(true)))
        );
        assert!(evaluate("GENERATE_UUID()", &DataType::Utf8).is_err());
        let filled = fill(
            &(Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef),
            &ScalarValue::Int64(Some(7)),
        )
        .unwrap();
        assert_eq!(filled.as_primitive::<Int64Type>().values(), &[1, 7]);
        let per_column = HashMap::from([("Status".to_string(), MissingValueInterpretation::NullValue as i32)]);
        let asked = Interpretation::new(MissingValueInterpretation::DefaultValue as i32, &per_column);
        assert!(asked.takes_default("other"));
        assert!(!asked.takes_default("status"));
        assert!(!Interpretation::default().takes_default("x"));
    }
}
