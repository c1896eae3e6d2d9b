//! BigQuery table schemas: parsing the `bq` JSON and inline forms, mapping to Arrow, and
//! building the proto2 row descriptor. Pure functions, no I/O.

mod arrow_map;
mod compare;
mod descriptor;
mod from_arrow;
mod json;
mod text;

pub(crate) use arrow_map::nullable_everywhere;
pub use arrow_map::{BIGQUERY_TYPE_METADATA_KEY, to_arrow_field, to_arrow_schema};
pub(crate) use compare::check_declared;
pub use descriptor::describe_column;
pub(crate) use descriptor::{nested_members, row_descriptor};
pub use from_arrow::from_arrow_schema;
pub use json::to_json_schema;
pub(crate) use text::number_or_text;
pub use text::{parse_inline_schema, parse_json_schema, parse_schema_arg};

/// One column of a [`TableSchema`] (or a member of a STRUCT or RANGE column).
pub use crate::proto::TableFieldSchema;
/// A table's schema, as the Storage Write API and the v2 REST API describe it.
pub use crate::proto::TableSchema;
/// A column's type, mode, and the element type of a RANGE.
pub use crate::proto::table_field_schema::{FieldElementType, Mode, Type};

/// Builds a field; a shorthand for code and tests.
///
/// ```
/// use datafusion_bigquery::schema::{Mode, Type, field};
/// let id = field("id", Type::Int64, Mode::Required);
/// assert_eq!(id.name, "id");
/// ```
pub fn field(name: &str, ty: Type, mode: Mode) -> TableFieldSchema {
    TableFieldSchema {
        name: name.to_string(),
        r#type: ty as i32,
        mode: mode as i32,
        ..Default::default()
    }
}

/// Builds a table schema from fields.
pub fn table_schema(fields: Vec<TableFieldSchema>) -> TableSchema {
    TableSchema { fields }
}

/// The field's type; unknown numbers read as `TYPE_UNSPECIFIED`.
pub fn field_type(field: &TableFieldSchema) -> Type {
    Type::try_from(field.r#type).unwrap_or(Type::Unspecified)
}

/// True for a TIMESTAMP column with picosecond precision (`timestamp_precision = 12`),
/// which travels as text and maps to nanosecond Arrow timestamps.
pub(crate) fn is_picosecond_timestamp(field: &TableFieldSchema) -> bool {
    field_type(field) == Type::Timestamp && field.timestamp_precision == Some(12)
}

/// The field's mode; unspecified reads as NULLABLE, as the service does.
pub fn field_mode(field: &TableFieldSchema) -> Mode {
    match Mode::try_from(field.mode) {
        Ok(Mode::Required) => Mode::Required,
        Ok(Mode::Repeated) => Mode::Repeated,
        _ => Mode::Nullable,
    }
}

/// The SQL name of a type, as `bq` prints it.
pub fn type_name(ty: Type) -> &'static str {
    match ty {
        Type::Unspecified => "TYPE_UNSPECIFIED",
        Type::String => "STRING",
        Type::Int64 => "INT64",
        Type::Double => "FLOAT64",
        Type::Struct => "STRUCT",
        Type::Bytes => "BYTES",
        Type::Bool => "BOOL",
        Type::Timestamp => "TIMESTAMP",
        Type::Date => "DATE",
        Type::Time => "TIME",
        Type::Datetime => "DATETIME",
        Type::Geography => "GEOGRAPHY",
        Type::Numeric => "NUMERIC",
        Type::Bignumeric => "BIGNUMERIC",
        Type::Interval => "INTERVAL",
        Type::Json => "JSON",
        Type::Range => "RANGE",
    }
}

/// Parses a type name, accepting the legacy aliases (`INTEGER`, `FLOAT`, `BOOLEAN`, `RECORD`, ...).
pub(crate) fn parse_type_name(name: &str) -> Option<Type> {
    let upper = name.trim().to_ascii_uppercase();
    Some(match upper.as_str() {
        "STRING" => Type::String,
        "INT64" | "INTEGER" | "INT" => Type::Int64,
        "FLOAT64" | "FLOAT" | "DOUBLE" => Type::Double,
        "STRUCT" | "RECORD" => Type::Struct,
        "BYTES" => Type::Bytes,
        "BOOL" | "BOOLEAN" => Type::Bool,
        "TIMESTAMP" => Type::Timestamp,
        "DATE" => Type::Date,
        "TIME" => Type::Time,
        "DATETIME" => Type::Datetime,
        "GEOGRAPHY" => Type::Geography,
        "NUMERIC" | "DECIMAL" => Type::Numeric,
        "BIGNUMERIC" | "BIGDECIMAL" => Type::Bignumeric,
        "INTERVAL" => Type::Interval,
        "JSON" => Type::Json,
        "RANGE" => Type::Range,
        _ => return None,
    })
}

/// Parses a mode name.
pub(crate) fn parse_mode_name(name: &str) -> Option<Mode> {
    match name.trim().to_ascii_uppercase().as_str() {
        "NULLABLE" | "" => Some(Mode::Nullable),
        "REQUIRED" => Some(Mode::Required),
        "REPEATED" => Some(Mode::Repeated),
        _ => None,
    }
}
