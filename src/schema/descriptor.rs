//! BigQuery table schema -> self-contained proto2 `DescriptorProto` for rows.

use prost_types::field_descriptor_proto::{Label, Type as ProtoType};
use prost_types::{DescriptorProto, FieldDescriptorProto};

use super::{field_mode, field_type, type_name};
use crate::options::WireEncoding;
use crate::proto::table_field_schema::{Mode, Type};
use crate::proto::{TableFieldSchema, TableSchema};

/// Name of the top-level row message.
pub const ROW_MESSAGE_NAME: &str = "Row";

/// True if `name` can be used as a proto field name as is.
pub fn is_proto_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Builds the row descriptor: field `i + 1` is column `i`; STRUCT and RANGE columns become
/// nested messages inside the row message, so the descriptor is self-contained.
///
/// ```
/// use datafusion_bigquery::schema::{field, row_descriptor, table_schema};
/// use datafusion_bigquery::proto::table_field_schema::{Mode, Type};
/// use datafusion_bigquery::WireEncoding;
/// let d = row_descriptor(&table_schema(vec![field("id", Type::Int64, Mode::Required)]), WireEncoding::Packed).unwrap();
/// assert_eq!(d.field[0].number, Some(1));
/// ```
pub fn row_descriptor(schema: &TableSchema, encoding: WireEncoding) -> Result<DescriptorProto, String> {
    let mut row = DescriptorProto {
        name: Some(ROW_MESSAGE_NAME.into()),
        ..Default::default()
    };
    let mut nested = Vec::new();
    let path = format!(".{ROW_MESSAGE_NAME}");
    for (i, column) in schema.fields.iter().enumerate() {
        row.field
            .push(field_descriptor(column, i, &path, encoding, &mut nested)?);
    }
    row.nested_type = nested;
    Ok(row)
}

/// One field; nested messages are appended to `nested` (all kept flat inside the row message).
fn field_descriptor(
    column: &TableFieldSchema,
    index: usize,
    row_path: &str,
    encoding: WireEncoding,
    nested: &mut Vec<DescriptorProto>,
) -> Result<FieldDescriptorProto, String> {
    if !is_proto_identifier(&column.name) {
        return Err(format!(
            "column name '{}' is not supported yet: only [A-Za-z_][A-Za-z0-9_]* names",
            column.name
        ));
    }
    let label = match field_mode(column) {
        Mode::Required => Label::Required,
        Mode::Repeated => Label::Repeated,
        _ => Label::Optional,
    };
    let number = i32::try_from(index + 1).map_err(|_| "too many columns".to_string())?;
    let mut out = FieldDescriptorProto {
        name: Some(column.name.clone()),
        number: Some(number),
        label: Some(label as i32),
        ..Default::default()
    };
    let proto_type = match field_type(column) {
        Type::Int64 | Type::Timestamp => ProtoType::Int64,
        Type::Double => ProtoType::Double,
        Type::Bool => ProtoType::Bool,
        Type::String | Type::Json | Type::Geography | Type::Interval => ProtoType::String,
        Type::Bytes => ProtoType::Bytes,
        Type::Date => ProtoType::Int32,
        Type::Datetime | Type::Time => match encoding {
            WireEncoding::Packed => ProtoType::Int64,
            WireEncoding::Text => ProtoType::String,
        },
        Type::Numeric | Type::Bignumeric => match encoding {
            WireEncoding::Packed => ProtoType::Bytes,
            WireEncoding::Text => ProtoType::String,
        },
        Type::Struct | Type::Range => {
            let message_name = format!("{}_{}", column.name, nested.len());
            let mut message = DescriptorProto {
                name: Some(message_name.clone()),
                ..Default::default()
            };
            let members = nested_members(column);
            for (j, member) in members.iter().enumerate() {
                message
                    .field
                    .push(field_descriptor(member, j, row_path, encoding, nested)?);
            }
            nested.push(message);
            out.type_name = Some(format!("{row_path}.{message_name}"));
            ProtoType::Message
        }
        Type::Unspecified => return Err(format!("column {} has no type", column.name)),
    };
    out.r#type = Some(proto_type as i32);
    Ok(out)
}

/// The members of a STRUCT, or `start`/`end` of a RANGE.
fn nested_members(column: &TableFieldSchema) -> Vec<TableFieldSchema> {
    if field_type(column) == Type::Struct {
        return column.fields.clone();
    }
    let bound = column
        .range_element_type
        .as_ref()
        .map(|e| e.r#type)
        .unwrap_or(Type::Date as i32);
    ["start", "end"]
        .iter()
        .map(|name| TableFieldSchema {
            name: (*name).into(),
            r#type: bound,
            mode: Mode::Nullable as i32,
            ..Default::default()
        })
        .collect()
}

/// Describes a column's type for messages, e.g. `ARRAY<STRING>` or `INT64 NOT NULL`.
pub fn describe_column(column: &TableFieldSchema) -> String {
    let ty = type_name(field_type(column));
    match field_mode(column) {
        Mode::Repeated => format!("ARRAY<{ty}>"),
        Mode::Required => format!("{ty} NOT NULL"),
        _ => ty.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::field;

    #[test]
    fn labels_types_and_encodings() {
        let schema = TableSchema {
            fields: vec![
                field("id", Type::Int64, Mode::Required),
                field("amount", Type::Numeric, Mode::Nullable),
                field("at", Type::Datetime, Mode::Nullable),
                field("tags", Type::String, Mode::Repeated),
            ],
        };
        let packed = row_descriptor(&schema, WireEncoding::Packed).unwrap();
        assert_eq!(packed.field[0].label, Some(Label::Required as i32));
        assert_eq!(packed.field[1].r#type, Some(ProtoType::Bytes as i32));
        assert_eq!(packed.field[2].r#type, Some(ProtoType::Int64 as i32));
        assert_eq!(packed.field[3].label, Some(Label::Repeated as i32));
        let text = row_descriptor(&schema, WireEncoding::Text).unwrap();
        assert_eq!(text.field[1].r#type, Some(ProtoType::String as i32));
        assert_eq!(text.field[2].r#type, Some(ProtoType::String as i32));
    }

    #[test]
    fn struct_becomes_nested_message() {
        let mut s = field("s", Type::Struct, Mode::Nullable);
        s.fields = vec![field("x", Type::Int64, Mode::Nullable)];
        let d = row_descriptor(&TableSchema { fields: vec![s] }, WireEncoding::Packed).unwrap();
        assert_eq!(d.nested_type.len(), 1);
        assert_eq!(d.field[0].type_name.as_deref(), Some(".Row.s_0"));
    }

    #[test]
    fn rejects_names_that_are_not_identifiers() {
        let err = row_descriptor(
            &TableSchema {
                fields: vec![field("a-b", Type::Int64, Mode::Nullable)],
            },
            WireEncoding::Packed,
        );
        assert!(err.unwrap_err().contains("a-b"));
        assert!(is_proto_identifier("_a1") && !is_proto_identifier("1a") && !is_proto_identifier(""));
    }
}
