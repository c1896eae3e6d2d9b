use std::sync::Arc;

use arrow::array::{
    Date32Array, Decimal128Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};

use super::*;
use crate::encode::WireEncoding;
use crate::options::BigQueryOptions;
use crate::proto::table_field_schema::Type;
use crate::schema::field;
use arrow::array::{Array, ArrayRef};

fn encoder(schema: &TableSchema, input: &Schema, options: &BigQueryOptions) -> Result<RowEncoder> {
    RowEncoder::new("p.d.t", schema, input, &options.encode_options())
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
    assert_eq!(rows[0].proto_rows()[0].as_ref(), first.as_slice());
    assert_eq!(
        rows[0].proto_rows()[1].as_ref(),
        &[0x08, 0x02],
        "NULLs are absent fields"
    );

    let text = encoder(
        &schema,
        &input,
        &BigQueryOptions::default().with_wire_encoding(WireEncoding::Text),
    )
    .unwrap();
    let rows = text.encode(&batch, 0).unwrap();
    assert!(rows[0].proto_rows()[0].ends_with(b"1.500000000"));
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
    assert_eq!(rows[0].proto_rows()[0].as_ref(), &[0x08, 1, 0x08, 2]);
    assert!(rows[0].proto_rows()[1].is_empty() && rows[0].proto_rows()[2].is_empty());
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
        assert!(g.bytes() <= e.row_budget, "{} > {}", g.bytes(), e.row_budget);
        assert_eq!(g.bytes(), g.proto_rows().iter().map(|r| 2 + r.len()).sum::<usize>());
    }
    let huge = "y".repeat(10_000);
    let batch = RecordBatch::try_new(input, vec![Arc::new(StringArray::from(vec![huge.as_str()]))]).unwrap();
    assert!(matches!(e.encode(&batch, 0), Err(Error::RowTooLarge { .. })));
}

fn batch_of(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

fn encode_one(schema: &TableSchema, batch: &RecordBatch, options: &BigQueryOptions) -> Result<Vec<EncodedRows>> {
    encoder(schema, &batch.schema(), options)?.encode(batch, 0)
}

fn struct_field(name: &str, mode: Mode, members: Vec<TableFieldSchema>) -> TableFieldSchema {
    let mut s = field(name, Type::Struct, mode);
    s.fields = members;
    s
}

#[test]
fn structs_are_nested_messages() {
    use arrow::array::StructArray;
    let schema = TableSchema {
        fields: vec![struct_field(
            "s",
            Mode::Nullable,
            vec![
                field("x", Type::Int64, Mode::Nullable),
                struct_field("inner", Mode::Nullable, vec![field("y", Type::Bool, Mode::Required)]),
            ],
        )],
    };
    let inner = StructArray::from(vec![(
        Arc::new(Field::new("y", DataType::Boolean, true)),
        Arc::new(arrow::array::BooleanArray::from(vec![Some(true), None, None])) as ArrayRef,
    )]);
    let s = StructArray::try_new(
        vec![
            Field::new("x", DataType::Int64, true),
            Field::new("inner", inner.data_type().clone(), true),
        ]
        .into(),
        vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(inner)],
        Some(vec![true, false, true].into()),
    )
    .unwrap();
    let batch = batch_of(vec![("s", Arc::new(s))]);
    let err = encode_one(&schema, &batch, &BigQueryOptions::default())
        .unwrap_err()
        .to_string();
    // Row 1 is a NULL struct: its NULL `y` does not count. Row 2's does.
    assert_eq!(err, "table p.d.t, column s.inner.y, row 2: NULL in a REQUIRED column");
    let rows = encode_one(&schema, &batch.slice(0, 2), &BigQueryOptions::default()).unwrap();
    // s { x: 1, inner { y: true } }
    assert_eq!(rows[0].proto_rows()[0].as_ref(), &[0x0a, 6, 0x08, 1, 0x12, 2, 0x08, 1]);
    assert!(rows[0].proto_rows()[1].is_empty(), "a NULL struct is an absent field");
}

#[test]
fn bad_values_name_table_path_row_and_value() {
    let mut name = field("name", Type::String, Mode::Nullable);
    name.max_length = 3;
    let mut price = field("price", Type::Numeric, Mode::Nullable);
    price.precision = 5;
    price.scale = 2;
    let mut big = field("big", Type::Bignumeric, Mode::Nullable);
    big.precision = 40;
    big.scale = 38;
    let schema = TableSchema {
        fields: vec![
            field("i", Type::Int64, Mode::Nullable),
            name,
            price,
            big,
            field("ts", Type::Timestamp, Mode::Nullable),
            field("iv", Type::Interval, Mode::Nullable),
        ],
    };
    let options = BigQueryOptions::default();
    let check = |column: &str, array: ArrayRef, expected: &str| {
        let batch = batch_of(vec![(column, array)]);
        let err = encode_one(&schema, &batch, &options).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
        assert!(
            err.starts_with(&format!("table p.d.t, column {column}, row 1: value")),
            "{err}"
        );
    };
    check(
        "i",
        Arc::new(arrow::array::UInt64Array::from(vec![1, u64::MAX])),
        "18446744073709551615 is above INT64's maximum",
    );
    check(
        "name",
        Arc::new(StringArray::from(vec!["äöü", "abcd"])),
        "abcd is longer than STRING(3)",
    );
    check(
        "price",
        Arc::new(
            Decimal128Array::from(vec![99_999, 100_000])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        "1000.000000000 has more integer digits",
    );
    check(
        "price",
        Arc::new(
            Decimal128Array::from(vec![10, 1])
                .with_precision_and_scale(10, 3)
                .unwrap(),
        ),
        "0.001000000 has more fractional digits",
    );
    check(
        "big",
        Arc::new(
            Decimal128Array::from(vec![99, 100])
                .with_precision_and_scale(10, 0)
                .unwrap(),
        ),
        "has more integer digits than the column's BIGNUMERIC(P, S)",
    );
    check(
        "ts",
        Arc::new(arrow::array::TimestampSecondArray::from(vec![0, 253_402_300_800])),
        "+10000-01-01T00:00:00Z is outside TIMESTAMP's range",
    );
    check(
        "iv",
        Arc::new(arrow::array::DurationNanosecondArray::from(vec![1_000, 1_001])),
        "sub-microsecond",
    );
}

#[test]
fn array_null_elements_fail_or_are_dropped() {
    let schema = TableSchema {
        fields: vec![struct_field(
            "s",
            Mode::Nullable,
            vec![field("xs", Type::Int64, Mode::Repeated)],
        )],
    };
    let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1)]),
        Some(vec![Some(1), None, Some(3)]),
    ]);
    let s = arrow::array::StructArray::from(vec![(
        Arc::new(Field::new("xs", list.data_type().clone(), true)),
        Arc::new(list) as ArrayRef,
    )]);
    let batch = batch_of(vec![("s", Arc::new(s))]);
    let err = encode_one(&schema, &batch, &BigQueryOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column s.xs, row 1") && err.contains("NULL element at index 1"),
        "{err}"
    );
    let drop = BigQueryOptions::default().with_array_null_elements(crate::options::ArrayNullElements::Drop);
    let rows = encode_one(&schema, &batch, &drop).unwrap();
    assert_eq!(rows[0].proto_rows()[1].as_ref(), &[0x0a, 4, 0x08, 1, 0x08, 3]);
}

#[test]
fn ranges_intervals_maps_and_dictionaries() {
    use arrow::array::{IntervalMonthDayNanoArray, MapBuilder, StructArray};
    use arrow::datatypes::IntervalMonthDayNano;
    let mut r = field("r", Type::Range, Mode::Nullable);
    r.range_element_type = Some(crate::proto::table_field_schema::FieldElementType {
        r#type: Type::Date as i32,
    });
    let schema = TableSchema {
        fields: vec![
            r,
            field("iv", Type::Interval, Mode::Nullable),
            struct_field(
                "m",
                Mode::Repeated,
                vec![
                    field("key", Type::String, Mode::Required),
                    field("value", Type::Int64, Mode::Nullable),
                ],
            ),
            field("d", Type::String, Mode::Nullable),
        ],
    };
    let range = StructArray::from(vec![
        (
            Arc::new(Field::new("start", DataType::Date32, true)),
            Arc::new(Date32Array::from(vec![Some(1), None])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("end", DataType::Date32, true)),
            Arc::new(Date32Array::from(vec![Some(2), Some(5)])) as ArrayRef,
        ),
    ]);
    let interval = IntervalMonthDayNanoArray::from(vec![
        IntervalMonthDayNano::new(14, 3, 14_706_789_000_000),
        IntervalMonthDayNano::new(0, 0, 0),
    ]);
    let mut map = MapBuilder::new(
        None,
        arrow::array::StringBuilder::new(),
        arrow::array::Int64Builder::new(),
    );
    map.keys().append_value("k");
    map.values().append_value(7);
    map.append(true).unwrap();
    map.append(false).unwrap();
    let dictionary: arrow::array::DictionaryArray<arrow::datatypes::Int8Type> = vec!["a", "a"].into_iter().collect();
    let batch = batch_of(vec![
        ("r", Arc::new(range.clone())),
        ("iv", Arc::new(interval)),
        ("m", Arc::new(map.finish())),
        ("d", Arc::new(dictionary)),
    ]);
    let rows = encode_one(&schema, &batch, &BigQueryOptions::default()).unwrap();
    let mut first = vec![0x0a, 4, 0x08, 1, 0x10, 2, 0x12, 15];
    first.extend(b"1-2 3 4:5:6.789");
    first.extend([0x1a, 5, 0x0a, 1, b'k', 0x10, 7, 0x22, 1, b'a']);
    assert_eq!(rows[0].proto_rows()[0].as_ref(), first.as_slice());
    let unordered = StructArray::try_new(
        range.fields().clone(),
        vec![range.column(1).clone(), range.column(0).clone()],
        None,
    )
    .unwrap();
    let batch = batch_of(vec![("r", Arc::new(unordered))]);
    let err = encode_one(&schema, &batch, &BigQueryOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column r, row 0") && err.contains("start that is not before its end"),
        "{err}"
    );
}

#[test]
fn types_and_structs_that_cannot_map_are_named() {
    let schema = TableSchema {
        fields: vec![struct_field(
            "s",
            Mode::Nullable,
            vec![struct_field(
                "inner",
                Mode::Nullable,
                vec![field("x", Type::Date, Mode::Nullable)],
            )],
        )],
    };
    let inner = |members: Vec<Field>| {
        DataType::Struct(vec![Field::new("inner", DataType::Struct(members.into()), true)].into())
    };
    let plan = |data_type: DataType| {
        encoder(
            &schema,
            &Schema::new(vec![Field::new("s", data_type, true)]),
            &BigQueryOptions::default(),
        )
        .unwrap_err()
        .to_string()
    };
    let err = plan(inner(vec![Field::new("x", DataType::Float32, true)]));
    assert_eq!(
        err,
        "table p.d.t, column s.inner.x: cannot write Arrow Float32 to BigQuery DATE"
    );
    let err = plan(inner(vec![]));
    assert!(err.contains("column s.inner.x: the input struct lacks"), "{err}");
    let err = plan(inner(vec![
        Field::new("x", DataType::Date32, true),
        Field::new("z", DataType::Date32, true),
    ]));
    assert!(err.contains("column s.inner.z: the input struct has a member"), "{err}");
}

#[test]
fn column_names_that_are_not_identifiers_are_written_by_number() {
    let schema = TableSchema {
        fields: vec![field("unit price €", Type::Int64, Mode::Nullable)],
    };
    let batch = batch_of(vec![("unit price €", Arc::new(Int64Array::from(vec![5])) as ArrayRef)]);
    let e = encoder(&schema, &batch.schema(), &BigQueryOptions::default()).unwrap();
    assert_eq!(e.descriptor().field[0].name(), "_col1");
    assert_eq!(e.encode(&batch, 0).unwrap()[0].proto_rows()[0].as_ref(), &[0x08, 5]);
}

#[test]
fn picosecond_timestamps_travel_as_text_from_any_unit() {
    let mut ts = field("ts", Type::Timestamp, Mode::Nullable);
    ts.timestamp_precision = Some(12);
    let schema = TableSchema { fields: vec![ts] };
    let descriptor = crate::schema::row_descriptor(&schema, WireEncoding::Packed).unwrap();
    assert_eq!(
        descriptor.field[0].r#type,
        Some(crate::proto::descriptor::field_descriptor_proto::Type::String as i32)
    );
    // Microseconds (converted to nanoseconds first) and nanoseconds, with and without a zone.
    let micros: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_000_001]).with_timezone("UTC"));
    let nanos: ArrayRef = Arc::new(arrow::array::TimestampNanosecondArray::from(vec![-1]));
    for (array, text) in [
        (micros, "1970-01-01T00:00:01.000001000000+00:00"),
        (nanos, "1969-12-31T23:59:59.999999999000+00:00"),
    ] {
        let input = Arc::new(Schema::new(vec![Field::new("ts", array.data_type().clone(), true)]));
        let batch = RecordBatch::try_new(input.clone(), vec![array]).unwrap();
        let rows = encoder(&schema, &input, &BigQueryOptions::default())
            .unwrap()
            .encode(&batch, 0)
            .unwrap();
        let mut expected = vec![0x0a, text.len() as u8];
        expected.extend(text.as_bytes());
        assert_eq!(rows[0].proto_rows()[0].as_ref(), expected.as_slice(), "{text}");
    }
}

#[test]
fn a_slice_of_a_struct_that_needs_converting_encodes_like_its_rows() {
    use arrow::array::{BooleanArray, StructArray};
    let schema = TableSchema {
        fields: vec![struct_field(
            "s",
            Mode::Nullable,
            vec![
                field("b", Type::Bool, Mode::Nullable),
                struct_field(
                    "inner",
                    Mode::Nullable,
                    vec![
                        field("y", Type::Int64, Mode::Nullable),
                        field("t", Type::Bytes, Mode::Nullable),
                    ],
                ),
            ],
        )],
    };
    // Int32 and LargeBinary members: the struct goes through conversion, laying its NULLs
    // over its children.
    let inner = StructArray::try_new(
        vec![
            Field::new("y", DataType::Int32, true),
            Field::new("t", DataType::LargeBinary, true),
        ]
        .into(),
        vec![
            Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4), Some(5)])),
            Arc::new(arrow::array::LargeBinaryArray::from_opt_vec(vec![
                Some(b"a"),
                None,
                Some(b"c"),
                None,
                Some(b"e"),
            ])),
        ],
        Some(vec![true, true, false, true, true].into()),
    )
    .unwrap();
    let s = StructArray::try_new(
        vec![
            Field::new("b", DataType::Boolean, true),
            Field::new("inner", inner.data_type().clone(), true),
        ]
        .into(),
        vec![
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                Some(true),
                None,
            ])),
            Arc::new(inner),
        ],
        Some(vec![true, false, true, false, true].into()),
    )
    .unwrap();
    let whole = batch_of(vec![("s", Arc::new(s))]);
    let all = encode_one(&schema, &whole, &BigQueryOptions::default()).unwrap();
    for start in 1..4 {
        let tail = encode_one(&schema, &whole.slice(start, 5 - start), &BigQueryOptions::default()).unwrap();
        assert_eq!(
            &all[0].proto_rows()[start..],
            tail[0].proto_rows().as_slice(),
            "from row {start}"
        );
    }
}
