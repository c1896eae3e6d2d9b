//! Table schemas written by people: the `bq` JSON format and `name:TYPE[:MODE],...`.

use serde::Deserialize;

use super::{field, parse_mode_name, parse_type_name};
use crate::proto::table_field_schema::{FieldElementType, Type};
use crate::proto::{TableFieldSchema, TableSchema};

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonSchema {
    Fields(Vec<JsonField>),
    Wrapped { fields: Vec<JsonField> },
}

#[derive(Deserialize)]
struct JsonField {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    fields: Vec<JsonField>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "maxLength", deserialize_with = "number_or_text")]
    max_length: Option<i64>,
    #[serde(default, deserialize_with = "number_or_text")]
    precision: Option<i64>,
    #[serde(default, deserialize_with = "number_or_text")]
    scale: Option<i64>,
    #[serde(default, rename = "rangeElementType")]
    range_element_type: Option<JsonElementType>,
    #[serde(default, rename = "timestampPrecision", deserialize_with = "number_or_text")]
    timestamp_precision: Option<i64>,
    #[serde(default, rename = "defaultValueExpression")]
    default_value_expression: Option<String>,
}

#[derive(Deserialize)]
struct JsonElementType {
    #[serde(rename = "type")]
    ty: String,
}

/// `bq` writes these numbers as strings (`"maxLength": "10"`); accept both.
pub(crate) fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Number(i64),
        Text(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Number(n)) => Ok(Some(n)),
        Some(N::Text(t)) => t.trim().parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Parses a schema in the `bq` JSON format: `[{"name": .., "type": .., "mode": ..}, ...]`
/// or `{"fields": [...]}`, with `fields` (STRUCT), `maxLength`, `precision`, `scale`,
/// `rangeElementType` (`{"type": "DATE"}`), `timestampPrecision` (6 or 12) and
/// `defaultValueExpression`.
pub fn parse_json_schema(json: &str) -> Result<TableSchema, String> {
    let parsed: JsonSchema = serde_json::from_str(json).map_err(|e| format!("invalid JSON schema: {e}"))?;
    let fields = match parsed {
        JsonSchema::Fields(f) | JsonSchema::Wrapped { fields: f } => f,
    };
    Ok(TableSchema {
        fields: fields.into_iter().map(json_field).collect::<Result<_, _>>()?,
    })
}

fn json_field(f: JsonField) -> Result<TableFieldSchema, String> {
    let ty = parse_type_name(&f.ty).ok_or_else(|| format!("column {}: unknown type '{}'", f.name, f.ty))?;
    let mode = parse_mode_name(f.mode.as_deref().unwrap_or(""))
        .ok_or_else(|| format!("column {}: unknown mode '{}'", f.name, f.mode.unwrap_or_default()))?;
    let mut out = field(&f.name, ty, mode);
    out.description = f.description.unwrap_or_default();
    out.max_length = f.max_length.unwrap_or_default();
    out.precision = f.precision.unwrap_or_default();
    out.scale = f.scale.unwrap_or_default();
    out.timestamp_precision = f.timestamp_precision;
    out.default_value_expression = f.default_value_expression.unwrap_or_default();
    if let Some(p) = out.timestamp_precision
        && (ty != Type::Timestamp || !matches!(p, 6 | 12))
    {
        return Err(format!(
            "column {}: timestampPrecision is 6 or 12, on TIMESTAMP columns only",
            out.name
        ));
    }
    out.fields = f.fields.into_iter().map(json_field).collect::<Result<_, _>>()?;
    if ty == Type::Struct && out.fields.is_empty() {
        return Err(format!("column {}: STRUCT needs 'fields'", out.name));
    }
    if let Some(element) = f.range_element_type {
        let element_type = parse_type_name(&element.ty)
            .ok_or_else(|| format!("column {}: unknown range element type '{}'", out.name, element.ty))?;
        out.range_element_type = Some(FieldElementType {
            r#type: element_type as i32,
        });
    }
    if ty == Type::Range {
        super::descriptor::range_element(&out)?;
    }
    Ok(out)
}

/// Parses `name:TYPE[:MODE],...`, e.g. `id:INT64:REQUIRED,name:STRING,tags:STRING:REPEATED,
/// period:RANGE<DATE>`.
pub fn parse_inline_schema(spec: &str) -> Result<TableSchema, String> {
    let mut fields = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let pieces: Vec<&str> = part.split(':').collect();
        let (name, ty, mode) = match pieces.as_slice() {
            [name, ty] => (name, ty, "NULLABLE"),
            [name, ty, mode] => (name, ty, *mode),
            _ => return Err(format!("'{part}': expected name:TYPE[:MODE]")),
        };
        let range_element = ty
            .trim()
            .strip_suffix('>')
            .and_then(|t| t.split_once('<'))
            .filter(|(range, _)| range.trim().eq_ignore_ascii_case("RANGE"))
            .map(|(_, element)| element);
        let unknown = || format!("column {name}: unknown type '{ty}'");
        let parsed = match range_element {
            Some(_) => Type::Range,
            None => parse_type_name(ty).ok_or_else(unknown)?,
        };
        if parsed == Type::Struct {
            return Err(format!("column {name}: STRUCT columns need a JSON schema file"));
        }
        let mode = parse_mode_name(mode).ok_or_else(|| format!("column {name}: unknown mode '{mode}'"))?;
        let mut column = field(name.trim(), parsed, mode);
        if let Some(element) = range_element {
            let element = parse_type_name(element).ok_or_else(unknown)?;
            column.range_element_type = Some(FieldElementType { r#type: element as i32 });
        }
        if parsed == Type::Range {
            super::descriptor::range_element(&column)?;
        }
        fields.push(column);
    }
    if fields.is_empty() {
        return Err("empty schema".into());
    }
    Ok(TableSchema { fields })
}

/// Parses a schema argument: a path to a `bq` JSON schema file if one exists there or it
/// ends in `.json`, else the inline form.
pub fn parse_schema_arg(arg: &str) -> Result<TableSchema, String> {
    let path = std::path::Path::new(arg);
    if path.is_file() || arg.ends_with(".json") {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read schema file {arg}: {e}"))?;
        parse_json_schema(&text).map_err(|e| format!("{arg}: {e}"))
    } else {
        parse_inline_schema(arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::table_field_schema::Mode;
    use crate::schema::{field_mode, field_type};

    #[test]
    fn inline_schema() {
        let s = parse_inline_schema("id:INTEGER:REQUIRED, name:STRING ,tags:STRING:REPEATED").unwrap();
        assert_eq!(s.fields.len(), 3);
        assert_eq!(field_type(&s.fields[0]), Type::Int64);
        assert_eq!(field_mode(&s.fields[0]), Mode::Required);
        assert_eq!(field_mode(&s.fields[1]), Mode::Nullable);
        assert_eq!(field_mode(&s.fields[2]), Mode::Repeated);
        assert!(parse_inline_schema("id:WHAT").unwrap_err().contains("unknown type"));
        assert!(parse_inline_schema("id").is_err());
        let r = parse_inline_schema("r:RANGE<timestamp>").unwrap();
        assert_eq!(
            r.fields[0].range_element_type.as_ref().map(|e| e.r#type),
            Some(Type::Timestamp as i32)
        );
        assert!(parse_inline_schema("r:RANGE").is_err());
        assert!(parse_inline_schema("r:RANGE<INT64>").is_err());
    }

    #[test]
    fn json_schema_both_shapes() {
        let list = r#"[{"name":"a","type":"NUMERIC","mode":"REQUIRED"},
                       {"name":"s","type":"RECORD","fields":[{"name":"x","type":"DATE"}]}]"#;
        let s = parse_json_schema(list).unwrap();
        assert_eq!(field_type(&s.fields[0]), Type::Numeric);
        assert_eq!(s.fields[1].fields[0].name, "x");
        let wrapped = r#"{"fields":[{"name":"a","type":"BOOL"}]}"#;
        assert_eq!(field_type(&parse_json_schema(wrapped).unwrap().fields[0]), Type::Bool);
        assert!(parse_json_schema(r#"[{"name":"a","type":"NOPE"}]"#).is_err());
    }

    #[test]
    fn json_schema_parameters_and_ranges() {
        let s = parse_json_schema(
            r#"[{"name":"n","type":"NUMERIC","precision":"10","scale":2},
                {"name":"s","type":"STRING","maxLength":5},
                {"name":"r","type":"RANGE","rangeElementType":{"type":"DATETIME"}}]"#,
        )
        .unwrap();
        assert_eq!((s.fields[0].precision, s.fields[0].scale), (10, 2));
        assert_eq!(s.fields[1].max_length, 5);
        assert_eq!(
            s.fields[2].range_element_type.as_ref().map(|e| e.r#type),
            Some(Type::Datetime as i32)
        );
        assert!(parse_json_schema(r#"[{"name":"r","type":"RANGE"}]"#).is_err());
    }
}
