//! Table schemas as the v2 REST API writes them (`TableSchema` JSON): the inverse of
//! [`super::parse_json_schema`].

use serde_json::{Map, Value, json};

use super::{field_mode, field_type};
use crate::proto::table_field_schema::{Mode, Type};
use crate::proto::{TableFieldSchema, TableSchema};

/// The REST form of a schema, `{"fields": [...]}`, with the names `tables.get` answers
/// (`INTEGER`, `FLOAT`, `BOOLEAN`, `RECORD`) and integers as strings.
///
/// ```
/// use datafusion_bigquery::schema::{parse_inline_schema, parse_json_schema, to_json_schema};
/// let schema = parse_inline_schema("id:INT64:REQUIRED,tags:STRING:REPEATED").unwrap();
/// let json = to_json_schema(&schema);
/// assert_eq!(json["fields"][0]["type"], "INTEGER");
/// assert_eq!(json["fields"][1]["mode"], "REPEATED");
/// assert_eq!(parse_json_schema(&json.to_string()).unwrap(), schema);
/// ```
pub fn to_json_schema(schema: &TableSchema) -> Value {
    json!({ "fields": schema.fields.iter().map(to_json_field).collect::<Vec<_>>() })
}

/// The REST form of one column.
pub(super) fn to_json_field(column: &TableFieldSchema) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), Value::from(column.name.clone()));
    out.insert("type".into(), Value::from(rest_type_name(field_type(column))));
    let mode = match field_mode(column) {
        Mode::Required => "REQUIRED",
        Mode::Repeated => "REPEATED",
        _ => "NULLABLE",
    };
    out.insert("mode".into(), Value::from(mode));
    if !column.fields.is_empty() {
        let members = column.fields.iter().map(to_json_field).collect::<Vec<_>>();
        out.insert("fields".into(), Value::from(members));
    }
    if !column.description.is_empty() {
        out.insert("description".into(), Value::from(column.description.clone()));
    }
    if column.max_length > 0 {
        out.insert("maxLength".into(), Value::from(column.max_length.to_string()));
    }
    if column.precision > 0 {
        out.insert("precision".into(), Value::from(column.precision.to_string()));
        out.insert("scale".into(), Value::from(column.scale.to_string()));
    }
    if let Some(element) = &column.range_element_type {
        let ty = Type::try_from(element.r#type).unwrap_or(Type::Unspecified);
        out.insert("rangeElementType".into(), json!({ "type": rest_type_name(ty) }));
    }
    if let Some(precision) = column.timestamp_precision {
        out.insert("timestampPrecision".into(), Value::from(precision.to_string()));
    }
    if !column.default_value_expression.is_empty() {
        out.insert(
            "defaultValueExpression".into(),
            Value::from(column.default_value_expression.clone()),
        );
    }
    Value::Object(out)
}

/// The name of a type in REST answers (the legacy names where there are two).
pub(crate) fn rest_type_name(ty: Type) -> &'static str {
    match ty {
        Type::Int64 => "INTEGER",
        Type::Double => "FLOAT",
        Type::Bool => "BOOLEAN",
        Type::Struct => "RECORD",
        other => super::type_name(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::table_field_schema::FieldElementType;
    use crate::schema::{field, parse_json_schema};

    #[test]
    fn round_trips_parameters_nesting_and_ranges() {
        let mut numeric = field("n", Type::Numeric, Mode::Required);
        numeric.precision = 10;
        numeric.scale = 0;
        numeric.description = "ten digits".into();
        let mut text = field("s", Type::String, Mode::Nullable);
        text.max_length = 5;
        text.default_value_expression = "'x'".into();
        let mut record = field("r", Type::Struct, Mode::Repeated);
        record.fields = vec![field("d", Type::Date, Mode::Nullable)];
        let mut range = field("p", Type::Range, Mode::Nullable);
        range.range_element_type = Some(FieldElementType {
            r#type: Type::Timestamp as i32,
        });
        let mut pico = field("t", Type::Timestamp, Mode::Nullable);
        pico.timestamp_precision = Some(12);
        let schema = TableSchema {
            fields: vec![numeric, text, record, range, pico],
        };
        let json = to_json_schema(&schema);
        assert_eq!(json["fields"][0]["precision"], "10");
        assert_eq!(json["fields"][0]["scale"], "0");
        assert_eq!(json["fields"][2]["type"], "RECORD");
        assert_eq!(json["fields"][3]["rangeElementType"]["type"], "TIMESTAMP");
        assert_eq!(parse_json_schema(&json.to_string()).unwrap(), schema);
    }
}
