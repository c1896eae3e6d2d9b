//! BigQuery table schema -> Arrow schema.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, IntervalUnit, Schema, TimeUnit};

use super::{field_mode, field_type, type_name};
use crate::proto::table_field_schema::{Mode, Type};
use crate::proto::{TableFieldSchema, TableSchema};

/// Field metadata key naming the BigQuery type where the Arrow type alone does not
/// (STRING, JSON and GEOGRAPHY are all Utf8): `JSON` or `GEOGRAPHY`.
pub const BIGQUERY_TYPE_METADATA_KEY: &str = "bigquery.type";

/// Time zone of TIMESTAMP columns.
const UTC: &str = "UTC";

/// Maps a table schema to Arrow: REQUIRED -> non-nullable, REPEATED -> List of
/// non-null items (a NULL list is written as an empty array), STRUCT -> Struct,
/// `RANGE<T>` -> `Struct{start: T, end: T}`, INTERVAL -> `Interval(MonthDayNano)`.
///
/// ```
/// use datafusion_bigquery::schema::{field, table_schema, to_arrow_schema};
/// use datafusion_bigquery::schema::{Mode, Type};
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
    if matches!(ty, Type::Json | Type::Geography) {
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
        Type::String | Type::Json | Type::Geography | Type::Unspecified => DataType::Utf8,
        Type::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
        Type::Bytes => DataType::Binary,
        Type::Date => DataType::Date32,
        Type::Timestamp if super::is_picosecond_timestamp(column) => {
            DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()))
        }
        Type::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        Type::Datetime => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::Time => DataType::Time64(TimeUnit::Microsecond),
        Type::Numeric => DataType::Decimal128(38, 9),
        Type::Bignumeric => DataType::Decimal256(76, 38),
        Type::Struct => DataType::Struct(Fields::from(
            column.fields.iter().map(to_arrow_field).collect::<Vec<_>>(),
        )),
        Type::Range => {
            // A RANGE without a valid element type is refused by the row descriptor builder.
            let bound = super::descriptor::range_element(column).unwrap_or(Type::Date);
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

/// The same type with every nested field nullable (struct members, list items, map
/// entries), for data that has yet to be checked against REQUIRED and REPEATED rules.
pub(crate) fn nullable_everywhere(data_type: &DataType) -> DataType {
    let relax = |f: &Arc<Field>| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(nullable_everywhere(f.data_type()))
                .with_nullable(true),
        )
    };
    match data_type {
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(relax).collect()),
        DataType::List(item) => DataType::List(relax(item)),
        DataType::LargeList(item) => DataType::LargeList(relax(item)),
        DataType::FixedSizeList(item, n) => DataType::FixedSizeList(relax(item), *n),
        DataType::ListView(item) => DataType::ListView(relax(item)),
        DataType::LargeListView(item) => DataType::LargeListView(relax(item)),
        other => other.clone(),
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

    #[test]
    fn maps_nested_types() {
        use crate::proto::table_field_schema::FieldElementType;
        let mut s = field("s", Type::Struct, Mode::Repeated);
        s.fields = vec![
            field("x", Type::Int64, Mode::Required),
            field("i", Type::Interval, Mode::Nullable),
        ];
        let mut r = field("r", Type::Range, Mode::Required);
        r.range_element_type = Some(FieldElementType {
            r#type: Type::Datetime as i32,
        });
        let arrow = to_arrow_schema(&TableSchema { fields: vec![s, r] });
        let DataType::List(item) = arrow.field(0).data_type() else {
            panic!()
        };
        assert!(!item.is_nullable());
        let DataType::Struct(members) = item.data_type() else {
            panic!()
        };
        assert!(!members[0].is_nullable());
        assert_eq!(members[1].data_type(), &DataType::Interval(IntervalUnit::MonthDayNano));
        let bound = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(
            arrow.field(1).data_type(),
            &DataType::Struct(Fields::from(vec![
                Field::new("start", bound.clone(), true),
                Field::new("end", bound, true),
            ]))
        );
        assert!(!arrow.field(1).is_nullable());
        let relaxed = nullable_everywhere(arrow.field(0).data_type());
        let DataType::List(item) = &relaxed else { panic!() };
        let DataType::Struct(members) = item.data_type() else {
            panic!()
        };
        assert!(item.is_nullable() && members[0].is_nullable());
    }
}
