use std::sync::Arc;

use arrow::array::{
    Date32Array, Decimal128Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};

use super::*;
use crate::options::WireEncoding;
use crate::proto::table_field_schema::Type;
use crate::schema::field;
use arrow::array::Array;

fn table() -> TableRef {
    "p.d.t".parse().unwrap()
}

fn encoder(schema: &TableSchema, input: &Schema, options: &BigQueryOptions) -> Result<RowEncoder> {
    RowEncoder::new(&table(), schema, input, options)
}

#[test]
fn writes_scalars_in_wire_format() {
    let schema = TableSchema {
        fields: vec![
            field("id", Type::Int64, Mode::Required),
            field("name", Type::String, Mode::Nullable),
            field("amount", Type::Numeric, Mode::Nullable),
        ],
    };
    let input = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("NAME", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(10, 1), true),
    ]));
    let batch = RecordBatch::try_new(
        input.clone(),
        vec![
            Arc::new(Int32Array::from(vec![-1, 2])),
            Arc::new(StringArray::from(vec![Some("ab"), None])),
            Arc::new(
                Decimal128Array::from(vec![Some(15), None])
                    .with_precision_and_scale(10, 1)
                    .unwrap(),
            ),
        ],
    )
    .unwrap();
    let e = encoder(&schema, &input, &BigQueryOptions::default()).unwrap();
    let rows = e.encode(&batch, 0).unwrap();
    assert_eq!(rows.len(), 1);
    let mut first = vec![0x08];
    first.extend([0xff; 9]);
    first.push(0x01); // -1 as a 10-byte varint
    first.extend([0x12, 2, b'a', b'b', 0x1a, 4, 0x00, 0x2f, 0x68, 0x59]);
    assert_eq!(rows[0].rows[0].as_ref(), first.as_slice());
    assert_eq!(rows[0].rows[1].as_ref(), &[0x08, 0x02], "NULLs are absent fields");

    let text = encoder(
        &schema,
        &input,
        &BigQueryOptions::default().with_wire_encoding(WireEncoding::Text),
    )
    .unwrap();
    let rows = text.encode(&batch, 0).unwrap();
    assert!(rows[0].rows[0].ends_with(b"1.500000000"));
}

#[test]
fn null_in_required_names_column_and_row() {
    let schema = TableSchema {
        fields: vec![field("id", Type::Int64, Mode::Required)],
    };
    let input = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let batch = RecordBatch::try_new(input.clone(), vec![Arc::new(Int64Array::from(vec![Some(1), None]))]).unwrap();
    let err = encoder(&schema, &input, &BigQueryOptions::default())
        .unwrap()
        .encode(&batch, 100)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "table p.d.t, column id, row 101: NULL in a REQUIRED column"
    );
}

#[test]
fn schema_mismatches_are_named() {
    let schema = TableSchema {
        fields: vec![
            field("id", Type::Int64, Mode::Required),
            field("d", Type::Date, Mode::Nullable),
        ],
    };
    let extra = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("zzz", DataType::Int64, true),
    ]);
    let err = encoder(&schema, &extra, &BigQueryOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("'zzz'") && err.contains("p.d.t"), "{err}");
    let missing = Schema::new(vec![Field::new("d", DataType::Date32, true)]);
    let err = encoder(&schema, &missing, &BigQueryOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("REQUIRED column 'id'"), "{err}");
    let wrong = Schema::new(vec![Field::new("id", DataType::Utf8, false)]);
    let err = encoder(&schema, &wrong, &BigQueryOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("column id") && err.contains("Utf8"), "{err}");
}

#[test]
fn out_of_range_values_are_rejected() {
    let schema = TableSchema {
        fields: vec![
            field("d", Type::Date, Mode::Nullable),
            field("ts", Type::Timestamp, Mode::Nullable),
        ],
    };
    let input = Arc::new(Schema::new(vec![
        Field::new("d", DataType::Date32, true),
        Field::new(
            "ts",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            true,
        ),
    ]));
    let e = encoder(&schema, &input, &BigQueryOptions::default()).unwrap();
    let batch = RecordBatch::try_new(
        input.clone(),
        vec![
            Arc::new(Date32Array::from(vec![0, 2_932_897])),
            Arc::new(TimestampMicrosecondArray::from(vec![0, 0])),
        ],
    )
    .unwrap();
    let err = e.encode(&batch, 0).unwrap_err().to_string();
    assert!(err.contains("column d, row 1") && err.contains("10000-01-01"), "{err}");
    let batch = RecordBatch::try_new(
        input,
        vec![
            Arc::new(Date32Array::from(vec![0])),
            Arc::new(TimestampMicrosecondArray::from(vec![crate::values::MICROS_MAX + 1])),
        ],
    )
    .unwrap();
    assert!(
        e.encode(&batch, 0)
            .unwrap_err()
            .to_string()
            .contains("column ts, row 0")
    );
}

#[test]
fn repeated_columns_write_each_element_and_reject_null_elements() {
    let schema = TableSchema {
        fields: vec![field("xs", Type::Int64, Mode::Repeated)],
    };
    let list =
        ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1), Some(2)]), None, Some(vec![])]);
    let input = Arc::new(Schema::new(vec![Field::new("xs", list.data_type().clone(), true)]));
    let e = encoder(&schema, &input, &BigQueryOptions::default()).unwrap();
    let batch = RecordBatch::try_new(input.clone(), vec![Arc::new(list)]).unwrap();
    let rows = e.encode(&batch, 0).unwrap();
    assert_eq!(rows[0].rows[0].as_ref(), &[0x08, 1, 0x08, 2]);
    assert!(rows[0].rows[1].is_empty() && rows[0].rows[2].is_empty());
    let with_null = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1), None])]);
    let batch = RecordBatch::try_new(input, vec![Arc::new(with_null)]).unwrap();
    let err = e.encode(&batch, 7).unwrap_err().to_string();
    assert!(
        err.contains("column xs, row 7") && err.contains("NULL element"),
        "{err}"
    );
}

#[test]
fn splits_requests_at_the_byte_limit() {
    let schema = TableSchema {
        fields: vec![field("s", Type::String, Mode::Nullable)],
    };
    let input = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let options = BigQueryOptions::default().with_max_request_bytes(4096);
    let e = encoder(&schema, &input, &options).unwrap();
    let value = "x".repeat(100);
    let batch = RecordBatch::try_new(
        input.clone(),
        vec![Arc::new(StringArray::from(vec![value.as_str(); 1000]))],
    )
    .unwrap();
    let groups = e.encode(&batch, 0).unwrap();
    assert!(groups.len() > 20, "{}", groups.len());
    assert_eq!(groups.iter().map(EncodedRows::len).sum::<usize>(), 1000);
    for g in &groups {
        assert!(g.bytes <= e.row_budget, "{} > {}", g.bytes, e.row_budget);
        assert_eq!(g.bytes, g.rows.iter().map(|r| 2 + r.len()).sum::<usize>());
    }
    let huge = "y".repeat(10_000);
    let batch = RecordBatch::try_new(input, vec![Arc::new(StringArray::from(vec![huge.as_str()]))]).unwrap();
    assert!(matches!(e.encode(&batch, 0), Err(Error::RowTooLarge { .. })));
}
