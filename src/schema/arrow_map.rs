//! BigQuery table schema -> Arrow schema.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};

use super::{field_mode, field_type, type_name};
use crate::proto::table_field_schema::{Mode, Type};
use crate::proto::{TableFieldSchema, TableSchema};

/// Field metadata key naming the BigQuery type where the Arrow type alone does not
/// (JSON, GEOGRAPHY, INTERVAL are all Utf8).
pub const BIGQUERY_TYPE_METADATA_KEY: &str = "bigquery.type";

/// Time zone of TIMESTAMP columns.
const UTC: &str = "UTC";

/// Maps a table schema to Arrow: REQUIRED -> non-nullable, REPEATED -> List of
/// non-null items (a NULL list is written as an empty array).
///
/// ```
/// use datafusion_bigquery::schema::{field, table_schema, to_arrow_schema};
/// use datafusion_bigquery::proto::table_field_schema::{Mode, Type};
/// let schema = to_arrow_schema(&table_schema(vec![field("n", Type::Numeric, Mode::Required)]));
/// assert_eq!(schema.field(0).data_type(), &arrow::datatypes::DataType::Decimal128(38, 9));
/// assert!(!schema.field(0).is_nullable());
/// ```
pub fn to_arrow_schema(schema: &TableSchema) -> Schema {
    Schema::new(schema.fields.iter().map(to_arrow_field).collect::<Vec<_>>())
}

/// Maps one column.
pub fn to_arrow_field(column: &TableFieldSchema) -> Field {
    let element = element_type(column);
    let mut metadata = HashMap::new();
    let ty = field_type(column);
    if matches!(ty, Type::Json | Type::Geography | Type::Interval) {
        metadata.insert(BIGQUERY_TYPE_METADATA_KEY.to_string(), type_name(ty).to_string());
    }
    match field_mode(column) {
        Mode::Repeated => {
            let item = Field::new("item", element, false).with_metadata(metadata);
            Field::new(&column.name, DataType::List(Arc::new(item)), true)
        }
        mode => Field::new(&column.name, element, mode != Mode::Required).with_metadata(metadata),
    }
}

/// The Arrow type of one value of the column (the element type for REPEATED columns).
fn element_type(column: &TableFieldSchema) -> DataType {
    match field_type(column) {
        Type::Int64 => DataType::Int64,
        Type::Double => DataType::Float64,
        Type::Bool => DataType::Boolean,
        Type::String | Type::Json | Type::Geography | Type::Interval | Type::Unspecified => DataType::Utf8,
        Type::Bytes => DataType::Binary,
        Type::Date => DataType::Date32,
        Type::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        Type::Datetime => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::Time => DataType::Time64(TimeUnit::Microsecond),
        Type::Numeric => DataType::Decimal128(38, 9),
        Type::Bignumeric => DataType::Decimal256(76, 38),
        Type::Struct => DataType::Struct(Fields::from(
            column.fields.iter().map(to_arrow_field).collect::<Vec<_>>(),
        )),
        Type::Range => {
            let bound = column
                .range_element_type
                .as_ref()
                .and_then(|e| Type::try_from(e.r#type).ok())
                .unwrap_or(Type::Date);
            let bound_column = TableFieldSchema {
                r#type: bound as i32,
                ..Default::default()
            };
            let bound_type = element_type(&bound_column);
            DataType::Struct(Fields::from(vec![
                Field::new("start", bound_type.clone(), true),
                Field::new("end", bound_type, true),
            ]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::field;

    #[test]
    fn maps_issue_types() {
        let schema = TableSchema {
            fields: vec![
                field("i", Type::Int64, Mode::Required),
                field("ts", Type::Timestamp, Mode::Nullable),
                field("dt", Type::Datetime, Mode::Nullable),
                field("t", Type::Time, Mode::Nullable),
                field("tags", Type::String, Mode::Repeated),
                field("j", Type::Json, Mode::Nullable),
            ],
        };
        let arrow = to_arrow_schema(&schema);
        assert!(!arrow.field(0).is_nullable());
        assert_eq!(
            arrow.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            arrow.field(2).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(arrow.field(3).data_type(), &DataType::Time64(TimeUnit::Microsecond));
        match arrow.field(4).data_type() {
            DataType::List(item) => {
                assert_eq!(item.data_type(), &DataType::Utf8);
                assert!(!item.is_nullable());
            }
            other => panic!("{other}"),
        }
        assert_eq!(
            arrow
                .field(5)
                .metadata()
                .get(BIGQUERY_TYPE_METADATA_KEY)
                .map(String::as_str),
            Some("JSON")
        );
    }
}
