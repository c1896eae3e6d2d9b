//! BigQuery table schema -> self-contained proto2 row descriptor.
//!
//! Field `i + 1` of a message is member `i` of its column list. STRUCT and RANGE columns
//! become nested messages kept flat inside the row message (`.Row.<name>_<n>`), so the
//! descriptor is self-contained. A column whose name is not a proto identifier gets a
//! generated field name and carries its real name in the `column_name` field option.

use super::{field_mode, field_type, type_name};
use crate::encode::WireEncoding;
use crate::proto::descriptor::field_descriptor_proto::{Label, Type as ProtoType};
use crate::proto::descriptor::{DescriptorProto, FieldDescriptorProto, FieldOptions};
use crate::proto::table_field_schema::{Mode, Type};
use crate::proto::{TableFieldSchema, TableSchema};

/// Name of the top-level row message.
pub(super) const ROW_MESSAGE_NAME: &str = "Row";

/// True if `name` can be used as a proto field name as is.
pub(super) fn is_proto_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Builds the row descriptor.
pub(crate) fn row_descriptor(schema: &TableSchema, encoding: WireEncoding) -> Result<DescriptorProto, String> {
    let mut nested = Nested {
        messages: Vec::new(),
        // Nested messages live in the row message's scope, beside its fields.
        taken: field_names(&schema.fields).into_iter().collect(),
    };
    let path = format!(".{ROW_MESSAGE_NAME}");
    let mut row = message(ROW_MESSAGE_NAME.into(), &schema.fields, &path, encoding, &mut nested)?;
    row.nested_type = nested.messages;
    Ok(row)
}

/// The nested messages of a row descriptor, and every name already used in the row
/// message's scope (its fields and these messages).
struct Nested {
    messages: Vec<DescriptorProto>,
    taken: std::collections::HashSet<String>,
}

/// One message with a field per member; nested messages go to `nested`.
fn message(
    name: String,
    members: &[TableFieldSchema],
    row_path: &str,
    encoding: WireEncoding,
    nested: &mut Nested,
) -> Result<DescriptorProto, String> {
    let names = field_names(members);
    let mut out = DescriptorProto {
        name: Some(name),
        ..Default::default()
    };
    for (i, (member, field_name)) in members.iter().zip(names).enumerate() {
        out.field
            .push(field_descriptor(member, field_name, i, row_path, encoding, nested)?);
    }
    Ok(out)
}

/// The proto field name of each member: the column name if it is an identifier, else
/// `_col<number>`, made unique among the message's names and their JSON forms (which proto
/// parsers also require to be distinct), ignoring case.
fn field_names(members: &[TableFieldSchema]) -> Vec<String> {
    let key = |name: &str| json_name(name).to_ascii_lowercase();
    let mut taken: std::collections::HashSet<String> = members
        .iter()
        .filter(|m| is_proto_identifier(&m.name))
        .map(|m| key(&m.name))
        .collect();
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if is_proto_identifier(&m.name) {
                return m.name.clone();
            }
            let mut name = format!("_col{}", i + 1);
            while !taken.insert(key(&name)) {
                name.push('x');
            }
            name
        })
        .collect()
}

/// The JSON name protobuf derives from a field name: `_` dropped, the next letter upper-cased.
fn json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// The message name of a STRUCT or RANGE column: an identifier, distinct from every field
/// of the row message and every other nested message, whatever the columns are called.
fn message_name(column: &TableFieldSchema, index: usize, taken: &mut std::collections::HashSet<String>) -> String {
    let base: String = column
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    let mut name = if base.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        format!("{base}_{index}")
    } else {
        format!("_{base}_{index}")
    };
    while !taken.insert(name.clone()) {
        name.push('_');
    }
    name
}

fn field_descriptor(
    column: &TableFieldSchema,
    name: String,
    index: usize,
    row_path: &str,
    encoding: WireEncoding,
    nested: &mut Nested,
) -> Result<FieldDescriptorProto, String> {
    let label = match field_mode(column) {
        Mode::Required => Label::Required,
        Mode::Repeated => Label::Repeated,
        _ => Label::Optional,
    };
    let number = i32::try_from(index + 1).map_err(|_| "too many columns".to_string())?;
    let options = (name != column.name).then(|| FieldOptions {
        column_name: Some(column.name.clone()),
    });
    let mut out = FieldDescriptorProto {
        name: Some(name),
        number: Some(number),
        label: Some(label as i32),
        options,
        ..Default::default()
    };
    let proto_type = match field_type(column) {
        // Java's client sends picosecond timestamps as text (BQTableSchemaToProtoDescriptor).
        Type::Timestamp if super::is_picosecond_timestamp(column) => ProtoType::String,
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
            let members = nested_members(column)?;
            // Reserve the slot first so that the name's number is unique even with children.
            let slot = nested.messages.len();
            let message_name = message_name(column, slot, &mut nested.taken);
            nested.messages.push(DescriptorProto::default());
            let built = message(message_name.clone(), &members, row_path, encoding, nested)?;
            nested.messages[slot] = built;
            out.type_name = Some(format!("{row_path}.{message_name}"));
            ProtoType::Message
        }
        Type::Unspecified => return Err(format!("column {} has no type", column.name)),
    };
    out.r#type = Some(proto_type as i32);
    Ok(out)
}

/// The members of a STRUCT, or the nullable `start`/`end` of a RANGE.
pub(crate) fn nested_members(column: &TableFieldSchema) -> Result<Vec<TableFieldSchema>, String> {
    if field_type(column) == Type::Struct {
        if column.fields.is_empty() {
            return Err(format!("STRUCT column {} has no fields", column.name));
        }
        return Ok(column.fields.clone());
    }
    let bound = range_element(column)?;
    Ok(["start", "end"]
        .iter()
        .map(|name| TableFieldSchema {
            name: (*name).into(),
            r#type: bound as i32,
            mode: Mode::Nullable as i32,
            ..Default::default()
        })
        .collect())
}

/// The element type of a RANGE column: DATE, DATETIME or TIMESTAMP.
pub(crate) fn range_element(column: &TableFieldSchema) -> Result<Type, String> {
    let element = column
        .range_element_type
        .as_ref()
        .and_then(|e| Type::try_from(e.r#type).ok());
    match element {
        Some(t @ (Type::Date | Type::Datetime | Type::Timestamp)) => Ok(t),
        Some(other) => Err(format!(
            "RANGE column {} has element type {}; only DATE, DATETIME and TIMESTAMP exist",
            column.name,
            type_name(other)
        )),
        None => Err(format!("RANGE column {} has no range_element_type", column.name)),
    }
}

/// Describes a column's type for messages, e.g. `ARRAY<STRING>`, `INT64 NOT NULL`,
/// `STRUCT<x INT64>`, `RANGE<DATE>`, `NUMERIC(10, 2)`, `STRING(5)`.
pub fn describe_column(column: &TableFieldSchema) -> String {
    let ty = describe_type(column);
    match field_mode(column) {
        Mode::Repeated => format!("ARRAY<{ty}>"),
        Mode::Required => format!("{ty} NOT NULL"),
        _ => ty,
    }
}

fn describe_type(column: &TableFieldSchema) -> String {
    let ty = field_type(column);
    let name = type_name(ty);
    match ty {
        Type::Struct => {
            let members: Vec<String> = column
                .fields
                .iter()
                .map(|f| format!("{} {}", f.name, describe_column(f)))
                .collect();
            format!("STRUCT<{}>", members.join(", "))
        }
        Type::Range => match range_element(column) {
            Ok(element) => format!("RANGE<{}>", type_name(element)),
            Err(_) => "RANGE".into(),
        },
        Type::Numeric | Type::Bignumeric if column.precision > 0 => {
            format!("{name}({}, {})", column.precision, column.scale)
        }
        Type::String | Type::Bytes if column.max_length > 0 => format!("{name}({})", column.max_length),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::field;

    #[test]
    fn columns_are_numbered_and_odd_names_carry_column_name() {
        let schema = crate::schema::table_schema(vec![
            field("id", Type::Int64, Mode::Required),
            field("unit price", Type::Double, Mode::Nullable),
        ]);
        let d = row_descriptor(&schema, WireEncoding::Packed).unwrap();
        assert_eq!(d.field[0].number, Some(1));
        assert_eq!(d.field[1].name(), "_col2");
        assert_eq!(d.field[1].options.as_ref().unwrap().column_name(), "unit price");
    }

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
        assert!(packed.field.iter().all(|f| f.options.is_none()));
        let text = row_descriptor(&schema, WireEncoding::Text).unwrap();
        assert_eq!(text.field[1].r#type, Some(ProtoType::String as i32));
        assert_eq!(text.field[2].r#type, Some(ProtoType::String as i32));
    }

    #[test]
    fn struct_and_range_become_nested_messages() {
        let mut inner = field("inner", Type::Struct, Mode::Repeated);
        inner.fields = vec![field("y", Type::Bool, Mode::Required)];
        let mut s = field("s", Type::Struct, Mode::Nullable);
        s.fields = vec![field("x", Type::Int64, Mode::Nullable), inner];
        let mut r = field("r", Type::Range, Mode::Nullable);
        r.range_element_type = Some(crate::proto::table_field_schema::FieldElementType {
            r#type: Type::Timestamp as i32,
        });
        let d = row_descriptor(&TableSchema { fields: vec![s, r] }, WireEncoding::Packed).unwrap();
        let names: Vec<&str> = d.nested_type.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["s_0", "inner_1", "r_2"]);
        assert_eq!(d.field[0].type_name(), ".Row.s_0");
        assert_eq!(d.nested_type[0].field[1].type_name(), ".Row.inner_1");
        assert_eq!(d.nested_type[0].field[1].label, Some(Label::Repeated as i32));
        assert_eq!(d.field[1].type_name(), ".Row.r_2");
        let range = &d.nested_type[2];
        assert_eq!(range.field[0].name(), "start");
        assert_eq!(range.field[1].number, Some(2));
        assert_eq!(range.field[1].r#type, Some(ProtoType::Int64 as i32));
    }

    #[test]
    fn nested_message_names_never_collide_with_columns() {
        let mut s = field("s", Type::Struct, Mode::Nullable);
        s.fields = vec![field("x", Type::Int64, Mode::Nullable)];
        let mut t = field("t", Type::Struct, Mode::Nullable);
        t.fields = vec![field("s_0", Type::Int64, Mode::Nullable)];
        let schema = TableSchema {
            fields: vec![
                s,
                field("s_0", Type::Int64, Mode::Nullable),
                field("t_1_", Type::Bool, Mode::Nullable),
                t,
            ],
        };
        let d = row_descriptor(&schema, WireEncoding::Packed).unwrap();
        let fields: Vec<&str> = d.field.iter().map(|f| f.name()).collect();
        let messages: Vec<&str> = d.nested_type.iter().map(|m| m.name()).collect();
        assert_eq!(fields, ["s", "s_0", "t_1_", "t"]);
        assert_eq!(messages, ["s_0_", "t_1"]);
        assert_eq!(d.field[0].type_name(), ".Row.s_0_");
        assert_eq!(d.field[3].type_name(), ".Row.t_1");
    }

    #[test]
    fn names_that_are_not_identifiers_travel_in_the_column_name_option() {
        let mut s = field("a b", Type::Struct, Mode::Nullable);
        s.fields = vec![field("ü", Type::Int64, Mode::Nullable)];
        let schema = TableSchema {
            fields: vec![
                field("a-b", Type::Int64, Mode::Nullable),
                field("_col1", Type::Int64, Mode::Nullable),
                field("1x", Type::Int64, Mode::Nullable),
                s,
            ],
        };
        let d = row_descriptor(&schema, WireEncoding::Packed).unwrap();
        let names: Vec<&str> = d.field.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["_col1x", "_col1", "_col3", "_col4"]);
        let option = |f: &FieldDescriptorProto| f.options.as_ref().map(|o| o.column_name().to_string());
        assert_eq!(option(&d.field[0]).as_deref(), Some("a-b"));
        assert_eq!(option(&d.field[1]), None);
        assert_eq!(option(&d.field[2]).as_deref(), Some("1x"));
        assert_eq!(d.field[3].type_name(), ".Row.a_b_0");
        assert_eq!(option(&d.nested_type[0].field[0]).as_deref(), Some("ü"));
        assert!(is_proto_identifier("_a1") && !is_proto_identifier("1a") && !is_proto_identifier(""));
    }

    #[test]
    fn the_option_is_on_the_wire_as_descriptor_proto_field_8() {
        use prost::Message;
        let schema = TableSchema {
            fields: vec![field("a-b", Type::Int64, Mode::Nullable)],
        };
        let bytes = row_descriptor(&schema, WireEncoding::Packed).unwrap().encode_to_vec();
        // The standard descriptor type reads the same message (it drops the extension).
        let standard = prost_types::DescriptorProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(standard.field[0].name(), "_col1");
        assert!(standard.field[0].options.is_some());
        // FieldOptions { 454943157: "a-b" }: key (454943157 << 3 | 2) as a varint, length, text.
        let mut option = Vec::new();
        prost::encoding::encode_key(454_943_157, prost::encoding::WireType::LengthDelimited, &mut option);
        option.extend([3, b'a', b'-', b'b']);
        assert!(bytes.windows(option.len()).any(|w| w == option.as_slice()));
    }

    #[test]
    fn describes_columns() {
        let mut n = field("n", Type::Numeric, Mode::Required);
        n.precision = 10;
        n.scale = 2;
        assert_eq!(describe_column(&n), "NUMERIC(10, 2) NOT NULL");
        let mut s = field("s", Type::Struct, Mode::Repeated);
        s.fields = vec![field("x", Type::String, Mode::Nullable)];
        assert_eq!(describe_column(&s), "ARRAY<STRUCT<x STRING>>");
    }
}
