//! Conformance of the type matrix against bqemulator (see `conformance_bqemulator.rs` for
//! how it runs and skips): every type it can store, including JSON, INTERVAL (as the text
//! it reports the column as), arrays of every scalar type, and non-canonical Arrow inputs
//! (unsigned and narrow integers, Float32, LargeUtf8, FixedSizeBinary, Date64, zoned
//! nanosecond timestamps, Time32, Decimal64, LargeList, FixedSizeList, dictionaries) that
//! the encoder converts exactly; NULL array elements dropped on request; bad values commit
//! nothing.
//!
//! What bqemulator 1.4.0 cannot check, and so is checked against the embedded server only
//! (`type_matrix.rs`, `types_sql.rs`): STRUCT (its rows fail with "Cannot cast STRUCTs of
//! different size", and its table_schema reports STRUCT as STRING), RANGE (reported as
//! STRING; a string row fails in its Arrow conversion), GEOGRAPHY (no spatial extension
//! offline), BIGNUMERIC (tables cannot be created), the packed NUMERIC/DATETIME/TIME forms
//! (crash or stored wrong: these tables use the text forms), the `column_name` field option
//! (ignored: the column stays NULL), STRING(L)/BYTES(L)/NUMERIC(P,S) limits (not reported in
//! its table_schema, not enforced), and negative INTERVAL day and time parts (stored
//! without their sign; the year-month part keeps it). INTERVAL is reported as STRING, so the client sends it as text.

#![cfg(feature = "server")]

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date64Array, Decimal64Builder, DictionaryArray, FixedSizeBinaryArray,
    FixedSizeListBuilder, Float32Builder, Int64Builder, LargeListBuilder, LargeStringArray, ListBuilder, RecordBatch,
    StringArray, Time32MillisecondBuilder, TimestampMillisecondBuilder, TimestampNanosecondBuilder, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Int8Type, Schema};
use datafusion::prelude::SessionContext;
use datafusion_bigquery::{
    BigQueryOptions, Loader, RowFormat, WireEncoding, register_bigquery, server::text_forms, values,
};
use serde_json::{Value, json};

mod common;

use common::bqemulator::{emulator, query};

/// A REST array cell from its elements.
fn array(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|v| json!({ "v": v })).collect())
}

fn text_options(grpc: &str) -> BigQueryOptions {
    BigQueryOptions::default()
        .with_endpoint(grpc)
        .with_wire_encoding(WireEncoding::Text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_interval_and_arrays_of_every_scalar_from_any_arrow_layout() {
    let Some((grpc, rest)) = emulator() else { return };
    for format in [RowFormat::Proto, RowFormat::Arrow] {
        every_scalar_from_any_arrow_layout(&grpc, &rest, format).await;
    }
}

async fn every_scalar_from_any_arrow_layout(grpc: &str, rest: &str, format: RowFormat) {
    let table = common::bqemulator::create_table(
        rest,
        "types",
        &format!("matrix_{}", format.as_str()),
        json!([
            {"name": "id", "type": "INT64", "mode": "REQUIRED"},
            {"name": "j", "type": "JSON"},
            {"name": "iv", "type": "INTERVAL"},
            {"name": "bs", "type": "BOOL", "mode": "REPEATED"},
            {"name": "fs", "type": "FLOAT64", "mode": "REPEATED"},
            {"name": "ys", "type": "BYTES", "mode": "REPEATED"},
            {"name": "ds", "type": "DATE", "mode": "REPEATED"},
            {"name": "tss", "type": "TIMESTAMP", "mode": "REPEATED"},
            {"name": "ns", "type": "NUMERIC", "mode": "REPEATED"},
            {"name": "dts", "type": "DATETIME", "mode": "REPEATED"},
            {"name": "tms", "type": "TIME", "mode": "REPEATED"},
            {"name": "js", "type": "JSON", "mode": "REPEATED"},
            {"name": "ss", "type": "STRING", "mode": "REPEATED"}
        ]),
    );
    let loader = Loader::connect(table.clone(), text_options(grpc).with_row_format(format))
        .await
        .expect("connect");

    // Three rows; every column in a layout other than the canonical one.
    let id: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2, 3]));
    let j: ArrayRef = Arc::new(LargeStringArray::from(vec![
        Some(r#"{"a":[1,2.5,null],"s":"ü \" \\"}"#),
        Some("[]"),
        None,
    ]));
    let iv: ArrayRef = Arc::new(StringArray::from(vec![
        values::interval_text(14, 3, 14_706_789_000_000),
        values::interval_text(-120_000, 3_660_000, 0),
        None,
    ]));
    let mut bs = LargeListBuilder::new(BooleanBuilder::new());
    bs.values().append_slice(&[true, false]);
    bs.append(true);
    bs.append(false); // a NULL array is stored as an empty one
    bs.append(true);
    let mut fs = FixedSizeListBuilder::new(Float32Builder::new(), 2);
    fs.values().append_slice(&[1.5, -0.25, f32::INFINITY, 3.0, 0.0, -1e30]);
    for _ in 0..3 {
        fs.append(true);
    }
    let ys = Arc::new(
        FixedSizeBinaryArray::try_from_iter([b"abc", b"\0\xff\x01", b"xyz"].into_iter()).expect("fixed binary"),
    );
    let mut ys_list = ListBuilder::new(arrow::array::BinaryBuilder::new());
    for row in 0..3 {
        ys_list.values().append_value(ys.value(row));
        ys_list.append(true);
    }
    let ds = Date64Array::from(vec![
        i64::from(values::DATE_MIN_DAYS) * 86_400_000,
        0,
        i64::from(values::DATE_MAX_DAYS) * 86_400_000,
    ]);
    let mut ds_list = ListBuilder::new(arrow::array::Date64Builder::new());
    for day in ds.values() {
        ds_list.values().append_value(*day);
        ds_list.append(true);
    }
    let mut tss = ListBuilder::new(TimestampNanosecondBuilder::new().with_timezone("+01:00"));
    tss.values().append_value(1_704_164_645_123_456_000);
    tss.values().append_value(-1_000);
    tss.append(true);
    tss.append(true);
    tss.append(true);
    let mut ns = ListBuilder::new(
        Decimal64Builder::new()
            .with_precision_and_scale(18, 4)
            .expect("decimal"),
    );
    ns.values().append_value(12_500);
    ns.values().append_value(-1);
    ns.append(true);
    ns.append(true);
    ns.append(true);
    let mut dts = ListBuilder::new(TimestampMillisecondBuilder::new());
    dts.values().append_value(1_704_164_645_123);
    dts.append(true);
    dts.append(true);
    dts.append(true);
    let mut tms = ListBuilder::new(Time32MillisecondBuilder::new());
    tms.values().append_value(3_723_500);
    tms.values().append_value(86_399_999);
    tms.append(true);
    tms.append(true);
    tms.append(true);
    let mut js = ListBuilder::new(arrow::array::StringBuilder::new());
    js.values().append_value(r#"{"k":true}"#);
    js.values().append_value("1");
    js.append(true);
    js.append(true);
    js.append(true);
    let dictionary: DictionaryArray<Int8Type> = vec!["x", "y", "x"].into_iter().collect();
    let mut ss = ListBuilder::new(Int64Builder::new());
    for _ in 0..3 {
        ss.append(true);
    }
    let ss_values: ArrayRef = Arc::new(dictionary);
    let ss = {
        // Each row holds one dictionary-encoded string.
        let offsets = arrow::buffer::OffsetBuffer::from_lengths([1, 1, 1]);
        let item = Arc::new(Field::new("item", ss_values.data_type().clone(), true));
        arrow::array::ListArray::new(item, offsets, ss_values, None)
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", id),
        ("j", j),
        ("iv", iv),
        ("bs", Arc::new(bs.finish())),
        ("fs", Arc::new(fs.finish())),
        ("ys", Arc::new(ys_list.finish())),
        ("ds", Arc::new(ds_list.finish())),
        ("tss", Arc::new(tss.finish())),
        ("ns", Arc::new(ns.finish())),
        ("dts", Arc::new(dts.finish())),
        ("tms", Arc::new(tms.finish())),
        ("js", Arc::new(js.finish())),
        ("ss", Arc::new(ss)),
    ];
    // bqemulator reports INTERVAL columns as STRING, and pyarrow cannot cast the text it is
    // then sent in Arrow rows to its interval type: Arrow rows leave the column out (NULL).
    let interval_sent = format == RowFormat::Proto;
    let columns: Vec<(&str, ArrayRef)> = columns
        .into_iter()
        .filter(|(name, _)| interval_sent || *name != "iv")
        .collect();
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).expect("batch");
    let summary = loader
        .load(schema, futures::stream::iter(vec![Ok::<_, std::io::Error>(batch)]))
        .await
        .expect("load");
    assert_eq!(summary.rows, 3);

    let rows = query(
        rest,
        &format!(
            "SELECT id, j, iv, bs, fs, ys, ds, tss, ns, dts, tms, js, ss FROM {}.t ORDER BY id",
            table.dataset
        ),
    );
    assert_eq!(rows.len(), 3);
    let expected = [
        vec![
            json!("1"),
            json!(r#"{"a":[1,2.5,null],"s":"ü \" \\"}"#),
            json!("1-2 3 4:5:6.789"),
            array(&["true", "false"]),
            array(&["1.5", "-0.25"]),
            array(&["YWJj"]),
            array(&["0001-01-01"]),
            array(&["1704164645123456", "-1"]),
            array(&["1.250000000", "-0.000100000"]),
            array(&["2024-01-02T03:04:05.123000"]),
            array(&["01:02:03.500000", "23:59:59.999000"]),
            array(&[r#"{"k":true}"#, "1"]),
            array(&["x"]),
        ],
        vec![
            json!("2"),
            json!("[]"),
            json!("-10000-0 3660000 0:0:0"),
            array(&[]),
            array(&["inf", "3.0"]),
            array(&["AP8B"]),
            array(&["1970-01-01"]),
            array(&[]),
            array(&[]),
            array(&[]),
            array(&[]),
            array(&[]),
            array(&["y"]),
        ],
        vec![
            json!("3"),
            Value::Null,
            Value::Null,
            array(&[]),
            array(&["0.0", "-1.0000000150474662e+30"]),
            array(&["eHl6"]),
            array(&["9999-12-31"]),
            array(&[]),
            array(&[]),
            array(&[]),
            array(&[]),
            array(&[]),
            array(&["x"]),
        ],
    ];
    let names = [
        "id", "j", "iv", "bs", "fs", "ys", "ds", "tss", "ns", "dts", "tms", "js", "ss",
    ];
    for (row, mut expected) in rows.iter().zip(expected) {
        if !interval_sent {
            expected[2] = Value::Null;
        }
        for (column, (actual, expected)) in row.iter().zip(expected).enumerate() {
            assert_eq!(
                normalize(actual),
                normalize(&expected),
                "{format:?}: row {}, column {}",
                row[0],
                names[column]
            );
        }
    }
}

/// bqemulator's float text (`inf`, `1e+30`, `3`) and DATETIME text (no fraction for whole
/// seconds), in one form.
fn normalize(cell: &Value) -> Value {
    match cell {
        Value::Array(items) => Value::Array(items.iter().map(|i| json!({"v": normalize(&i["v"])})).collect()),
        Value::String(s) => {
            if let Ok(f) = s.parse::<f64>()
                && (s.contains('.') || s.contains('e') || s.contains("inf"))
            {
                return json!(format!("{f:?}"));
            }
            if let Some(micros) = text_forms::parse_datetime_text(s).filter(|_| s.contains('T')) {
                return json!(values::datetime_text(micros));
            }
            cell.clone()
        }
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_array_elements_are_dropped_on_request_and_bad_values_commit_nothing() {
    let Some((grpc, rest)) = emulator() else { return };
    let table = common::bqemulator::create_table(
        &rest,
        "types",
        "nulls",
        json!([
            {"name": "id", "type": "INT64", "mode": "REQUIRED"},
            {"name": "xs", "type": "INT64", "mode": "REPEATED"},
            {"name": "ts", "type": "TIMESTAMP"}
        ]),
    );
    let ctx = SessionContext::new();
    register_bigquery(&ctx, text_options(&grpc));
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE strict STORED AS BIGQUERY LOCATION '{table}'"
    ))
    .await
    .expect("create strict");
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE lenient STORED AS BIGQUERY LOCATION '{table}' \
         OPTIONS ('bigquery.array_null_elements' 'drop')"
    ))
    .await
    .expect("create lenient");
    let insert = "(id, xs) VALUES (1, make_array(1, NULL, 3))";
    let err = ctx
        .sql(&format!("INSERT INTO strict {insert}"))
        .await
        .expect("plan")
        .collect()
        .await
        .expect_err("NULL element");
    assert!(err.to_string().contains("column xs, row 0"), "{err}");
    let sql = "INSERT INTO strict (id, ts) SELECT 1, arrow_cast(253402300800000000, 'Timestamp(Microsecond, None)')";
    let err = ctx.sql(sql).await.expect("plan").collect().await.expect_err(sql);
    assert!(
        err.to_string().contains("column ts, row 0") && err.to_string().contains("outside TIMESTAMP's range"),
        "{err}"
    );
    // Through the Loader API no SQL cast runs first: the encoder itself refuses the value.
    let loader = Loader::connect(table.clone(), text_options(&grpc))
        .await
        .expect("connect");
    let ids: ArrayRef = Arc::new(arrow::array::UInt64Array::from(vec![1, u64::MAX]));
    let batch = RecordBatch::try_from_iter([("id", ids)]).expect("batch");
    let err = loader
        .load(
            batch.schema(),
            futures::stream::iter(vec![Ok::<_, std::io::Error>(batch)]),
        )
        .await
        .expect_err("UInt64 above INT64");
    assert!(err.to_string().contains("column id, row 1"), "{err}");
    let count = |ctx_rest: &str| query(ctx_rest, &format!("SELECT COUNT(*) FROM {}.t", table.dataset));
    assert_eq!(count(&rest)[0][0], json!("0"), "nothing committed");

    ctx.sql(&format!("INSERT INTO lenient {insert}"))
        .await
        .expect("plan")
        .collect()
        .await
        .expect("NULL elements dropped");
    let rows = query(&rest, &format!("SELECT id, xs FROM {}.t", table.dataset));
    assert_eq!(rows, vec![vec![json!("1"), array(&["1", "3"])]]);
    let _ = DataType::Null;
}
