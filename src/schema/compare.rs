//! Whether the columns declared for a table match the table's own.

use super::{field_mode, field_type, type_name};
use crate::proto::table_field_schema::{Mode, Type};
use crate::proto::{TableFieldSchema, TableSchema};

/// Where a declared schema differs from a table's: the column path and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnDifference {
    /// The column path (`s.inner.x`).
    pub column: String,
    /// How it differs.
    pub message: String,
}

/// Checks declared columns against a table's: every declared column exists (names compare
/// without case, as BigQuery's do) with the same type, mode and, for NUMERIC and
/// BIGNUMERIC, the same precision and scale (an unparameterized column counts as its
/// type's full range); the table's other columns must be NULLABLE or REPEATED, since rows
/// written without them leave them empty. Returns the first difference.
pub(crate) fn check_declared(declared: &TableSchema, table: &TableSchema) -> Result<(), ColumnDifference> {
    check_fields(&declared.fields, &table.fields, "")
}

fn check_fields(
    declared: &[TableFieldSchema],
    table: &[TableFieldSchema],
    parent: &str,
) -> Result<(), ColumnDifference> {
    let path = |name: &str| {
        if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}.{name}")
        }
    };
    for column in declared {
        let found = table.iter().find(|t| t.name.eq_ignore_ascii_case(&column.name));
        let Some(existing) = found else {
            return Err(ColumnDifference {
                column: path(&column.name),
                message: "declared, but the table has no such column".into(),
            });
        };
        let here = path(&column.name);
        let differs = |message: String| ColumnDifference {
            column: here.clone(),
            message,
        };
        let (declared_type, table_type) = (field_type(column), field_type(existing));
        if declared_type != table_type {
            return Err(differs(format!(
                "declared {}, but the table's column is {}",
                describe(column),
                describe(existing)
            )));
        }
        if field_mode(column) != field_mode(existing) {
            return Err(differs(format!(
                "declared {}, but the table's column is {}",
                mode_name(field_mode(column)),
                mode_name(field_mode(existing))
            )));
        }
        if matches!(declared_type, Type::Numeric | Type::Bignumeric) && digits(column) != digits(existing) {
            return Err(differs(format!(
                "declared {}, but the table's column is {}",
                describe(column),
                describe(existing)
            )));
        }
        if declared_type == Type::Struct {
            check_fields(&column.fields, &existing.fields, &here)?;
        }
    }
    if let Some(missing) = table.iter().find(|t| {
        field_mode(t) == Mode::Required
            && t.default_value_expression.is_empty()
            && !declared.iter().any(|d| d.name.eq_ignore_ascii_case(&t.name))
    }) {
        return Err(ColumnDifference {
            column: path(&missing.name),
            message: "the table's column is REQUIRED but not declared".into(),
        });
    }
    Ok(())
}

/// Precision and scale, an unparameterized column's being its type's full range.
fn digits(column: &TableFieldSchema) -> (i64, i64) {
    match (field_type(column), column.precision) {
        (_, p) if p > 0 => (p, column.scale),
        (Type::Bignumeric, _) => (76, 38),
        _ => (38, 9),
    }
}

fn describe(column: &TableFieldSchema) -> String {
    let ty = field_type(column);
    match ty {
        Type::Numeric | Type::Bignumeric if column.precision > 0 => {
            format!("{}({}, {})", type_name(ty), column.precision, column.scale)
        }
        _ => type_name(ty).to_string(),
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Required => "REQUIRED",
        Mode::Repeated => "REPEATED",
        _ => "NULLABLE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_and_differing_declarations() {
        let table = crate::schema::parse_inline_schema("id:INT64:REQUIRED,note:STRING").unwrap();
        assert!(
            check_declared(
                &crate::schema::parse_inline_schema("id:INT64:REQUIRED").unwrap(),
                &table
            )
            .is_ok()
        );
        let wrong = check_declared(
            &crate::schema::parse_inline_schema("id:STRING:REQUIRED").unwrap(),
            &table,
        )
        .unwrap_err();
        assert_eq!(wrong.column, "id");
    }
    use crate::schema::{field, parse_inline_schema};

    #[test]
    fn names_the_first_difference() {
        let table = parse_inline_schema("id:INT64:REQUIRED,n:NUMERIC,tags:STRING:REPEATED,extra:STRING").unwrap();
        let ok = parse_inline_schema("ID:INTEGER:REQUIRED,n:NUMERIC,tags:STRING:REPEATED").unwrap();
        assert_eq!(check_declared(&ok, &table), Ok(()));
        let mode = check_declared(&parse_inline_schema("id:INT64").unwrap(), &table).unwrap_err();
        assert_eq!(mode.column, "id");
        assert_eq!(mode.message, "declared NULLABLE, but the table's column is REQUIRED");
        let missing = check_declared(&parse_inline_schema("id:INT64:REQUIRED,zzz:DATE").unwrap(), &table).unwrap_err();
        assert_eq!(missing.column, "zzz");
        let required = check_declared(&parse_inline_schema("n:NUMERIC").unwrap(), &table).unwrap_err();
        assert_eq!(required.column, "id");
        let mut narrow = field("n", Type::Numeric, Mode::Nullable);
        narrow.precision = 10;
        narrow.scale = 2;
        let declared = TableSchema {
            fields: vec![field("id", Type::Int64, Mode::Required), narrow],
        };
        let digits = check_declared(&declared, &table).unwrap_err();
        assert_eq!(
            digits.message,
            "declared NUMERIC(10, 2), but the table's column is NUMERIC"
        );
        let mut full = field("n", Type::Numeric, Mode::Nullable);
        full.precision = 38;
        full.scale = 9;
        let declared = TableSchema {
            fields: vec![field("id", Type::Int64, Mode::Required), full],
        };
        assert_eq!(check_declared(&declared, &table), Ok(()));
    }

    #[test]
    fn compares_struct_members_by_path() {
        let mut table_struct = field("s", Type::Struct, Mode::Nullable);
        table_struct.fields = vec![field("x", Type::Int64, Mode::Nullable)];
        let mut declared_struct = field("s", Type::Struct, Mode::Nullable);
        declared_struct.fields = vec![field("x", Type::Double, Mode::Nullable)];
        let error = check_declared(
            &TableSchema {
                fields: vec![declared_struct],
            },
            &TableSchema {
                fields: vec![table_struct],
            },
        )
        .unwrap_err();
        assert_eq!(error.column, "s.x");
        assert_eq!(error.message, "declared FLOAT64, but the table's column is INT64");
    }
}
