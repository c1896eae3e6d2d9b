//! Arrow schema -> BigQuery table schema, for tables created from declared columns or a
//! query's schema: each Arrow type gets the BigQuery type that holds every one of its values.

use arrow::datatypes::{DataType, Field, Schema};

use super::{BIGQUERY_TYPE_METADATA_KEY, field, parse_type_name};
use crate::proto::table_field_schema::{Mode, Type};
use crate::proto::{TableFieldSchema, TableSchema};

/// Largest integer digits of a parameterized NUMERIC (P - S <= 29), and its largest scale.
const NUMERIC_MAX_INTEGER_DIGITS: i64 = 29;
const NUMERIC_MAX_SCALE: i64 = 9;
/// The same bounds for BIGNUMERIC.
const BIGNUMERIC_MAX_INTEGER_DIGITS: i64 = 38;
const BIGNUMERIC_MAX_SCALE: i64 = 38;

/// Maps an Arrow schema to the BigQuery columns that hold it: non-nullable -> REQUIRED,
/// lists -> REPEATED, Struct -> RECORD, Map -> REPEATED RECORD{key, value},
/// `Decimal(p, s)` -> NUMERIC(p, s) when it fits (s <= 9, p - s <= 29), else
/// BIGNUMERIC(p, s), zoned timestamps -> TIMESTAMP, zoneless -> DATETIME, UInt64 -> NUMERIC
/// (INT64 cannot hold its top half), Utf8 with metadata `bigquery.type` = JSON or GEOGRAPHY
/// -> that type. The error names the column that has no BigQuery type.
///
/// ```
/// use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
/// use datafusion_bigquery::schema::{from_arrow_schema, to_json_schema};
/// let arrow = Schema::new(vec![
///     Field::new("id", DataType::Int64, false),
///     Field::new("price", DataType::Decimal128(10, 2), true),
///     Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
/// ]);
/// let json = to_json_schema(&from_arrow_schema(&arrow).unwrap());
/// assert_eq!(json["fields"][0]["mode"], "REQUIRED");
/// assert_eq!(json["fields"][1]["type"], "NUMERIC");
/// assert_eq!(json["fields"][1]["precision"], "10");
/// assert_eq!(json["fields"][2]["type"], "TIMESTAMP");
/// ```
pub fn from_arrow_schema(schema: &Schema) -> Result<TableSchema, String> {
    Ok(TableSchema {
        fields: schema
            .fields()
            .iter()
            .map(|f| from_arrow_field(f, ""))
            .collect::<Result<_, _>>()?,
    })
}

/// Maps one Arrow field; `parent` is the path of the enclosing column, for errors.
fn from_arrow_field(arrow: &Field, parent: &str) -> Result<TableFieldSchema, String> {
    let path = if parent.is_empty() {
        arrow.name().clone()
    } else {
        format!("{parent}.{}", arrow.name())
    };
    let data_type = unwrap_dictionary(arrow.data_type());
    if let Some(item) = list_item(data_type) {
        let item_type = unwrap_dictionary(item.data_type());
        if list_item(item_type).is_some() {
            return Err(format!(
                "column {path}: Arrow {} is a list of lists; BigQuery arrays cannot hold arrays \
                 (wrap the inner list in a struct)",
                arrow.data_type()
            ));
        }
        let mut column = value_column(arrow.name(), item_type, item, &path)?;
        column.mode = Mode::Repeated as i32;
        return Ok(column);
    }
    if let DataType::Map(entries, _) = data_type {
        let mut column = value_column(arrow.name(), entries.data_type(), entries, &path)?;
        column.mode = Mode::Repeated as i32;
        return Ok(column);
    }
    let mut column = value_column(arrow.name(), data_type, arrow, &path)?;
    if !arrow.is_nullable() {
        column.mode = Mode::Required as i32;
    }
    Ok(column)
}

/// The NULLABLE column of one value of `data_type` (`metadata_of` carries the
/// `bigquery.type` metadata, if any).
fn value_column(name: &str, data_type: &DataType, metadata_of: &Field, path: &str) -> Result<TableFieldSchema, String> {
    let unsupported = || format!("column {path}: Arrow {data_type} has no BigQuery type");
    let simple = |ty: Type| Ok(field(name, ty, Mode::Nullable));
    match unwrap_dictionary(data_type) {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => simple(Type::Int64),
        DataType::UInt64 => {
            let mut column = field(name, Type::Numeric, Mode::Nullable);
            column.precision = 20;
            column.scale = 0;
            Ok(column)
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => simple(Type::Double),
        DataType::Boolean => simple(Type::Bool),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            match metadata_of.metadata().get(BIGQUERY_TYPE_METADATA_KEY) {
                Some(named) => match parse_type_name(named) {
                    Some(ty @ (Type::Json | Type::Geography | Type::String)) => simple(ty),
                    _ => Err(format!(
                        "column {path}: metadata {BIGQUERY_TYPE_METADATA_KEY} = '{named}' does not name a \
                         BigQuery type of text (JSON, GEOGRAPHY, STRING)"
                    )),
                },
                None => simple(Type::String),
            }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            simple(Type::Bytes)
        }
        DataType::Date32 | DataType::Date64 => simple(Type::Date),
        DataType::Timestamp(_, Some(_)) => simple(Type::Timestamp),
        DataType::Timestamp(_, None) => simple(Type::Datetime),
        DataType::Time32(_) | DataType::Time64(_) => simple(Type::Time),
        DataType::Interval(_) | DataType::Duration(_) => simple(Type::Interval),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            decimal(name, i64::from(*p), i64::from(*s), path)
        }
        DataType::Decimal256(p, s) => decimal(name, i64::from(*p), i64::from(*s), path),
        DataType::Struct(members) => {
            let mut column = field(name, Type::Struct, Mode::Nullable);
            column.fields = members
                .iter()
                .map(|m| from_arrow_field(m, path))
                .collect::<Result<_, _>>()?;
            if column.fields.is_empty() {
                return Err(format!("column {path}: a struct without members has no BigQuery type"));
            }
            Ok(column)
        }
        _ => Err(unsupported()),
    }
}

/// NUMERIC(p, s) when it fits, else BIGNUMERIC(p, s).
fn decimal(name: &str, precision: i64, scale: i64, path: &str) -> Result<TableFieldSchema, String> {
    let integer_digits = precision - scale;
    let ty = if scale < 0 {
        return Err(format!(
            "column {path}: Decimal({precision}, {scale}) has a negative scale; BigQuery scales are 0 to 38"
        ));
    } else if scale <= NUMERIC_MAX_SCALE && integer_digits <= NUMERIC_MAX_INTEGER_DIGITS {
        Type::Numeric
    } else if scale <= BIGNUMERIC_MAX_SCALE && integer_digits <= BIGNUMERIC_MAX_INTEGER_DIGITS {
        Type::Bignumeric
    } else {
        return Err(format!(
            "column {path}: Decimal({precision}, {scale}) fits neither NUMERIC (scale <= 9, 29 integer digits) \
             nor BIGNUMERIC (scale <= 38, 38 integer digits)"
        ));
    };
    let mut column = field(name, ty, Mode::Nullable);
    column.precision = precision.max(1);
    column.scale = scale;
    Ok(column)
}

fn unwrap_dictionary(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, values) => unwrap_dictionary(values),
        other => other,
    }
}

/// The item field of any of Arrow's list types.
fn list_item(data_type: &DataType) -> Option<&Field> {
    match data_type {
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::FixedSizeList(item, _)
        | DataType::ListView(item)
        | DataType::LargeListView(item) => Some(item.as_ref()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Fields, IntervalUnit, TimeUnit};

    use super::*;
    use crate::schema::{field_mode, field_type, to_arrow_schema};

    fn one(data_type: DataType, nullable: bool) -> Result<TableFieldSchema, String> {
        from_arrow_schema(&Schema::new(vec![Field::new("c", data_type, nullable)])).map(|s| s.fields[0].clone())
    }

    #[test]
    fn maps_every_canonical_type_back_to_its_bigquery_type() {
        let mut json = field("j", Type::Json, Mode::Nullable);
        json.description = String::new();
        let mut numeric = field("n", Type::Numeric, Mode::Required);
        numeric.precision = 38;
        numeric.scale = 9;
        let mut big = field("b", Type::Bignumeric, Mode::Nullable);
        big.precision = 76;
        big.scale = 38;
        let mut record = field("s", Type::Struct, Mode::Repeated);
        record.fields = vec![field("x", Type::Int64, Mode::Required)];
        let bigquery = TableSchema {
            fields: vec![
                field("i", Type::Int64, Mode::Required),
                field("f", Type::Double, Mode::Nullable),
                field("o", Type::Bool, Mode::Nullable),
                field("t", Type::String, Mode::Repeated),
                json,
                field("g", Type::Geography, Mode::Nullable),
                field("y", Type::Bytes, Mode::Nullable),
                field("d", Type::Date, Mode::Nullable),
                field("ts", Type::Timestamp, Mode::Nullable),
                field("dt", Type::Datetime, Mode::Nullable),
                field("tm", Type::Time, Mode::Nullable),
                numeric,
                big,
                field("iv", Type::Interval, Mode::Nullable),
                record,
            ],
        };
        let back = from_arrow_schema(&to_arrow_schema(&bigquery)).unwrap();
        assert_eq!(back, bigquery);
    }

    #[test]
    fn decimals_choose_numeric_or_bignumeric() {
        let n = one(DataType::Decimal128(10, 2), true).unwrap();
        assert_eq!((field_type(&n), n.precision, n.scale), (Type::Numeric, 10, 2));
        let wide = one(DataType::Decimal128(38, 10), true).unwrap();
        assert_eq!(field_type(&wide), Type::Bignumeric);
        let integers = one(DataType::Decimal256(38, 0), true).unwrap();
        assert_eq!(field_type(&integers), Type::Bignumeric);
        assert!(
            one(DataType::Decimal256(76, 0), true)
                .unwrap_err()
                .contains("fits neither")
        );
        assert!(
            one(DataType::Decimal128(5, -2), true)
                .unwrap_err()
                .contains("negative scale")
        );
        let unsigned = one(DataType::UInt64, false).unwrap();
        assert_eq!(
            (field_type(&unsigned), field_mode(&unsigned)),
            (Type::Numeric, Mode::Required)
        );
    }

    #[test]
    fn lists_maps_and_refusals_name_the_column() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        assert_eq!(field_mode(&one(list.clone(), false).unwrap()), Mode::Repeated);
        let nested = DataType::List(Arc::new(Field::new("item", list, true)));
        assert!(one(nested, true).unwrap_err().starts_with("column c: "));
        let entries = Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Float64, true),
            ])),
            false,
        );
        let map = one(DataType::Map(Arc::new(entries), false), true).unwrap();
        assert_eq!((field_type(&map), field_mode(&map)), (Type::Struct, Mode::Repeated));
        assert_eq!(field_mode(&map.fields[0]), Mode::Required);
        let inner = DataType::Struct(Fields::from(vec![Field::new("u", DataType::Null, true)]));
        assert_eq!(
            one(inner, true).unwrap_err(),
            "column c.u: Arrow Null has no BigQuery type"
        );
        let zoneless = one(DataType::Timestamp(TimeUnit::Nanosecond, None), true).unwrap();
        assert_eq!(field_type(&zoneless), Type::Datetime);
        let interval = one(DataType::Interval(IntervalUnit::YearMonth), true).unwrap();
        assert_eq!(field_type(&interval), Type::Interval);
    }
}
