//! Column defaults: what the service writes for an absent (NULL) value when a request asks
//! for the DEFAULT_VALUE interpretation (`default_missing_value_interpretation`, or per column
//! in `missing_value_interpretations`). The embedded server evaluates literal defaults
//! (numbers, strings, TRUE, FALSE, NULL) and CURRENT_TIMESTAMP(), CURRENT_DATE() and
//! CURRENT_DATETIME(); a table whose default is another expression refuses such requests.

use std::collections::HashMap;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Scalar, StringArray, TimestampMicrosecondArray,
    TimestampNanosecondArray, new_null_array,
};
use arrow::compute::{CastOptions, cast, cast_with_options, is_not_null, kernels::zip::zip};
use arrow::datatypes::{DataType, TimeUnit};

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

/// The value of a default expression, as a one-value array of the column's Arrow type.
pub(crate) fn evaluate(expression: &str, ty: &DataType) -> Result<ArrayRef, String> {
    let text = expression.trim();
    let unsupported = || format!("default expression {text} is not supported by the embedded server");
    let cast_to = |value: ArrayRef| cast(&value, ty).map_err(|e| format!("default {text}: {e}"));
    let upper = text.to_ascii_uppercase();
    let now = chrono::Utc::now();
    match upper.as_str() {
        "NULL" => Ok(new_null_array(ty, 1)),
        "TRUE" | "FALSE" => cast_to(Arc::new(BooleanArray::from(vec![upper == "TRUE"]))),
        "CURRENT_TIMESTAMP()" | "CURRENT_TIMESTAMP" => match ty {
            DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
                let nanos = now.timestamp_nanos_opt().ok_or_else(unsupported)?;
                Ok(Arc::new(
                    TimestampNanosecondArray::from(vec![nanos]).with_timezone_opt(tz.clone()),
                ))
            }
            DataType::Timestamp(_, tz) => Ok(Arc::new(
                TimestampMicrosecondArray::from(vec![now.timestamp_micros()]).with_timezone_opt(tz.clone()),
            )),
            _ => Err(unsupported()),
        },
        "CURRENT_DATETIME()" | "CURRENT_DATETIME" => Ok(Arc::new(TimestampMicrosecondArray::from(vec![
            now.naive_utc().and_utc().timestamp_micros(),
        ]))),
        "CURRENT_DATE()" | "CURRENT_DATE" => {
            let days = (now.date_naive() - chrono::NaiveDate::default()).num_days();
            cast_to(Arc::new(Date32Array::from(vec![
                i32::try_from(days).map_err(|_| unsupported())?,
            ])))
        }
        _ => {
            let quoted = ['\'', '"']
                .iter()
                .find_map(|q| text.strip_prefix(*q).and_then(|t| t.strip_suffix(*q)));
            match quoted {
                Some(inner) => cast_to(Arc::new(StringArray::from(vec![inner]))),
                // A number: parsed as the column's type by Arrow's cast from text.
                None if text.parse::<f64>().is_ok() => {
                    let cast = cast_with_options(
                        &(Arc::new(StringArray::from(vec![text])) as ArrayRef),
                        ty,
                        &CastOptions {
                            safe: false,
                            ..CastOptions::default()
                        },
                    );
                    cast.map_err(|e| format!("default {text}: {e}"))
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

/// Replaces the NULLs of `array` with `default`, a one-value array of its type.
pub(crate) fn fill(array: &ArrayRef, default: &ArrayRef) -> Result<ArrayRef, String> {
    if array.null_count() == 0 {
        return Ok(array.clone());
    }
    let present = is_not_null(array.as_ref()).map_err(|e| e.to_string())?;
    zip(&present, array, &Scalar::new(default.clone())).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn literal_defaults_and_the_interpretation() {
        let value = |text: &str, ty: &DataType| evaluate(text, ty).unwrap();
        assert_eq!(
            value("42", &DataType::Int64).as_primitive::<Int64Type>().values(),
            &[42]
        );
        assert_eq!(value("'open'", &DataType::Utf8).as_string::<i32>().value(0), "open");
        assert!(value("TRUE", &DataType::Boolean).as_boolean().value(0));
        assert!(value("NULL", &DataType::Int64).is_null(0));
        assert!(evaluate("GENERATE_UUID()", &DataType::Utf8).is_err());
        assert!(
            evaluate("1.5", &DataType::Int64).is_err(),
            "not an INT64: refused, not truncated"
        );
        let filled = fill(
            &(Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef),
            &(Arc::new(Int64Array::from(vec![7])) as ArrayRef),
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
