//! Table schemas written by people: the `bq` JSON format and `name:TYPE[:MODE],...`.

use serde::Deserialize;

use super::{field, parse_mode_name, parse_type_name};
use crate::proto::table_field_schema::Type;
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
}

/// Parses a schema in the `bq` JSON format: `[{"name": .., "type": .., "mode": ..}, ...]`
/// or `{"fields": [...]}`.
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
    out.fields = f.fields.into_iter().map(json_field).collect::<Result<_, _>>()?;
    if ty == Type::Struct && out.fields.is_empty() {
        return Err(format!("column {}: STRUCT needs 'fields'", out.name));
    }
    Ok(out)
}

/// Parses `name:TYPE[:MODE],...`, e.g. `id:INT64:REQUIRED,name:STRING,tags:STRING:REPEATED`.
pub fn parse_inline_schema(spec: &str) -> Result<TableSchema, String> {
    let mut fields = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let pieces: Vec<&str> = part.split(':').collect();
        let (name, ty, mode) = match pieces.as_slice() {
            [name, ty] => (name, ty, "NULLABLE"),
            [name, ty, mode] => (name, ty, *mode),
            _ => return Err(format!("'{part}': expected name:TYPE[:MODE]")),
        };
        let ty = parse_type_name(ty).ok_or_else(|| format!("column {name}: unknown type '{ty}'"))?;
        if ty == Type::Struct {
            return Err(format!("column {name}: STRUCT columns need a JSON schema file"));
        }
        let mode = parse_mode_name(mode).ok_or_else(|| format!("column {name}: unknown mode '{mode}'"))?;
        fields.push(field(name.trim(), ty, mode));
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
}
