//! The one error of a value the encoder cannot convert or write, from the kernel or
//! conversion that meets it up to the public [`Error`]: the path from the column down to the
//! failing field, the row, the value and why.

use arrow::array::Array;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::Error;

/// A value that cannot be converted or written.
#[derive(Debug)]
pub(crate) struct ValueError {
    /// The path below the column (`""`, `x`, `[2].y`), or from the column down once the
    /// column's own name is added (`s.inner[2].x`).
    pub(crate) path: String,
    /// The row of the batch; while the error travels up through a list, the index of the
    /// element in the list's values, until the list turns it into its row.
    pub(crate) row: usize,
    pub(crate) kind: ValueErrorKind,
}

/// What is wrong with the value.
#[derive(Debug)]
pub(crate) enum ValueErrorKind {
    /// A NULL where the field is REQUIRED.
    NullInRequired,
    /// A value BigQuery cannot hold (or the encoder cannot convert exactly).
    Invalid { value: String, reason: String },
}

impl ValueError {
    /// The value at `index` of `array` is invalid for `reason`.
    pub(crate) fn invalid(array: &dyn Array, index: usize, reason: impl Into<String>) -> Self {
        ValueError {
            path: String::new(),
            row: index,
            kind: ValueErrorKind::Invalid {
                value: display(array, index),
                reason: reason.into(),
            },
        }
    }

    /// A NULL at `row` where the field is REQUIRED.
    pub(crate) fn null_in_required(row: usize) -> Self {
        ValueError {
            path: String::new(),
            row,
            kind: ValueErrorKind::NullInRequired,
        }
    }

    /// An array the encoder cannot convert for a reason of its own (not the value's).
    pub(crate) fn unconvertible(array: &dyn Array, message: &str) -> Self {
        ValueError {
            path: String::new(),
            row: 0,
            kind: ValueErrorKind::Invalid {
                value: format!("of type {}", array.data_type()),
                reason: format!("cannot be converted: {message}"),
            },
        }
    }

    /// Adds the field the error passed through (`""` for a list's elements), with the
    /// element's index within its array if any: `x` becomes `s.x`, `inner[2].x` or `[2].x`.
    pub(crate) fn within(mut self, name: &str, element: Option<usize>) -> Self {
        let mut prefix = name.to_string();
        if let Some(k) = element {
            prefix.push_str(&format!("[{k}]"));
        }
        if !prefix.is_empty() && !self.path.is_empty() && !self.path.starts_with('[') {
            prefix.push('.');
        }
        self.path.insert_str(0, &prefix);
        self
    }

    /// The same error, at `row`.
    pub(crate) fn at_row(mut self, row: usize) -> Self {
        self.row = row;
        self
    }

    /// The value as text (`""` for a NULL in a REQUIRED field).
    #[cfg(test)]
    pub(crate) fn value(&self) -> &str {
        match &self.kind {
            ValueErrorKind::NullInRequired => "",
            ValueErrorKind::Invalid { value, .. } => value,
        }
    }

    /// Why the value is refused.
    #[cfg(test)]
    pub(crate) fn reason(&self) -> &str {
        match &self.kind {
            ValueErrorKind::NullInRequired => "is NULL in a REQUIRED field",
            ValueErrorKind::Invalid { reason, .. } => reason,
        }
    }

    /// The public error, for a path that starts with the column's name, in a batch whose
    /// first row is row `first_row` of the load.
    pub(crate) fn into_error(self, table: &str, first_row: u64) -> Error {
        let (table, column, row) = (table.to_string(), self.path, first_row + self.row as u64);
        match self.kind {
            ValueErrorKind::NullInRequired => Error::NullInRequired { table, column, row },
            ValueErrorKind::Invalid { value, reason } => Error::InvalidValue {
                table,
                column,
                row,
                value,
                reason,
            },
        }
    }
}

/// The value at `row` of `array` as text, for error messages.
pub(crate) fn display(array: &dyn Array, row: usize) -> String {
    ArrayFormatter::try_new(array, &FormatOptions::default())
        .map(|f| f.value(row).to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;

    #[test]
    fn paths_read_from_the_column_down() {
        let leaf = ValueError::null_in_required(0);
        let path = |e: ValueError| e.path;
        assert_eq!(
            path(
                ValueError::null_in_required(0)
                    .within("x", None)
                    .within("inner", Some(2))
                    .within("s", None)
            ),
            "s.inner[2].x"
        );
        assert_eq!(
            path(leaf.within("x", None).within("", Some(3)).within("items", None)),
            "items[3].x"
        );
        assert_eq!(
            path(ValueError::null_in_required(0).within("", Some(1)).within("a", None)),
            "a[1]"
        );
    }

    #[test]
    fn names_table_column_row_and_value() {
        let array = Int64Array::from(vec![1, 2, 3]);
        let err = ValueError::invalid(&array, 2, "is out of range")
            .within("n", None)
            .into_error("p.d.t", 100);
        match err {
            Error::InvalidValue {
                table,
                column,
                row,
                value,
                reason,
            } => assert_eq!(
                (table.as_str(), column.as_str(), row, value.as_str(), reason.as_str()),
                ("p.d.t", "n", 102, "3", "is out of range")
            ),
            other => panic!("{other:?}"),
        }
        let null = ValueError::null_in_required(4)
            .within("id", None)
            .into_error("p.d.t", 0);
        assert!(
            matches!(null, Error::NullInRequired { row: 4, ref column, .. } if column == "id"),
            "{null:?}"
        );
    }
}
