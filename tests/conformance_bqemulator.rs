//! Conformance against bqemulator, a Storage Write server no one here wrote (see
//! `scripts/bqemulator.sh`). `scripts/test.sh` starts it and sets `BQEMULATOR_GRPC` and
//! `BQEMULATOR_REST`; with `DFBQ_REQUIRE_CONFORMANCE` or `CI` set, a missing emulator fails
//! the suite instead of skipping it.
//!
//! bqemulator decodes only the text forms of NUMERIC, DATETIME and TIME, so the tables here
//! use `'bigquery.wire_encoding' 'text'`; the packed forms are checked against the protocol's
//! test vectors and the embedded server. It cannot create BIGNUMERIC tables and has no
//! GEOGRAPHY without DuckDB's spatial extension, so those are left out.

#![cfg(feature = "server")]

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    ListBuilder, RecordBatch, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use base64::Engine;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::{
    BigQueryOptions, Loader, RowFormat, TableRef, WireEncoding, register_bigquery, schema, server::text_forms, values,
};
use serde_json::{Value, json};

mod common;

use common::Lcg;
use common::bqemulator::{self, PROJECT, emulator, query};

const SCHEMA: &str = "id:INT64:REQUIRED,f:FLOAT64,b:BOOL,s:STRING,by:BYTES,d:DATE,ts:TIMESTAMP,n:NUMERIC,\
                      dt:DATETIME,tm:TIME,arr:INT64:REPEATED,tags:STRING:REPEATED";

/// Creates a fresh dataset and a table with `SCHEMA` through the REST API.
fn create_table(rest: &str, name: &str) -> TableRef {
    let fields: Vec<Value> = schema::parse_inline_schema(SCHEMA)
        .expect("schema")
        .fields
        .iter()
        .map(|f| {
            let ty = schema::type_name(schema::field_type(f));
            let mode = format!("{:?}", schema::field_mode(f)).to_uppercase();
            json!({"name": f.name, "type": ty, "mode": mode})
        })
        .collect();
    bqemulator::create_table(rest, "conf", name, Value::Array(fields))
}

fn count(rest: &str, table: &TableRef) -> u64 {
    let rows = query(rest, &format!("SELECT COUNT(*) FROM {}.t", table.dataset));
    rows[0][0].as_str().and_then(|s| s.parse().ok()).expect("count")
}

/// `rows` generated rows in batches of `per_batch`, with NULLs, empties and extremes.
fn generate(schema: &SchemaRef, rows: usize, per_batch: usize) -> Vec<RecordBatch> {
    let mut rng = Lcg(42);
    let mut batches = Vec::new();
    let mut start = 0;
    while start < rows {
        let end = (start + per_batch).min(rows);
        let (mut id, mut f, mut b, mut s, mut by) = (
            Int64Builder::new(),
            Float64Builder::new(),
            BooleanBuilder::new(),
            StringBuilder::new(),
            BinaryBuilder::new(),
        );
        let (mut d, mut ts, mut n) = (
            Date32Builder::new(),
            TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            Decimal128Builder::new(),
        );
        let (mut dt, mut tm) = (TimestampMicrosecondBuilder::new(), Time64MicrosecondBuilder::new());
        let (mut arr, mut tags) = (
            ListBuilder::new(Int64Builder::new()),
            ListBuilder::new(StringBuilder::new()),
        );
        for i in start..end {
            let extreme = i % 500;
            id.append_value(i as i64);
            match i % 101 {
                0 => f.append_null(),
                1 => f.append_value(f64::NAN),
                2 => f.append_value(f64::INFINITY),
                3 => f.append_value(f64::NEG_INFINITY),
                _ => f.append_value(rng.range(-1_000_000, 1_000_000) as f64 / 7.0),
            }
            if i % 5 == 0 {
                b.append_null()
            } else {
                b.append_value(rng.below(2) == 0)
            }
            match i % 11 {
                0 => s.append_null(),
                1 => s.append_value(""),
                2 => s.append_value("quote \" backslash \\ newline \n tab \t"),
                _ => s.append_value(format!("row {i} ünïcödé 世界 {}", rng.wide())),
            }
            if i % 9 == 0 {
                by.append_null()
            } else {
                let len = rng.below(9) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
                by.append_value(bytes);
            }
            match extreme {
                1 => d.append_value(values::DATE_MIN_DAYS),
                2 => d.append_value(values::DATE_MAX_DAYS),
                3 => d.append_null(),
                _ => d.append_value(rng.range(values::DATE_MIN_DAYS.into(), values::DATE_MAX_DAYS.into()) as i32),
            }
            match extreme {
                1 => ts.append_value(values::MICROS_MIN),
                2 => ts.append_value(values::MICROS_MAX),
                4 => ts.append_null(),
                _ => ts.append_value(rng.range(values::MICROS_MIN, values::MICROS_MAX)),
            }
            match extreme {
                1 => n.append_value(values::NUMERIC_MAX_UNSCALED),
                2 => n.append_value(-values::NUMERIC_MAX_UNSCALED),
                5 => n.append_null(),
                6 => n.append_value(1),
                _ => n.append_value(i128::from(rng.wide() as i64) * i128::from(rng.below(1 << 40) as i64) - 7),
            }
            match extreme {
                1 => dt.append_value(values::MICROS_MIN),
                2 => dt.append_value(values::MICROS_MAX),
                7 => dt.append_null(),
                8 => dt.append_value(0),
                _ => dt.append_value(rng.range(values::MICROS_MIN, values::MICROS_MAX)),
            }
            match extreme {
                1 => tm.append_value(0),
                2 => tm.append_value(values::MICROS_PER_DAY - 1),
                9 => tm.append_null(),
                _ => tm.append_value(rng.range(0, values::MICROS_PER_DAY - 1)),
            }
            if i % 13 == 0 {
                arr.append_null();
            } else {
                for _ in 0..rng.below(4) {
                    arr.values().append_value(rng.wide() as i64 - (1 << 52));
                }
                arr.append(true);
            }
            for _ in 0..rng.below(3) {
                tags.values().append_value(format!("t{}", rng.below(1000)));
            }
            tags.append(true);
        }
        let decimal = n.finish().with_precision_and_scale(38, 9).expect("decimal");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(f.finish()),
            Arc::new(b.finish()),
            Arc::new(s.finish()),
            Arc::new(by.finish()),
            Arc::new(d.finish()),
            Arc::new(ts.finish()),
            Arc::new(decimal),
            Arc::new(dt.finish()),
            Arc::new(tm.finish()),
            Arc::new(arr.finish()),
            Arc::new(tags.finish()),
        ];
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(a, field)| arrow::compute::cast(&a, field.data_type()).expect("cast to the table's types"))
            .collect();
        batches.push(RecordBatch::try_new(schema.clone(), columns).expect("batch"));
        start = end;
    }
    batches
}

/// Renders the value at `row` of `column` the way the REST API returns it, for comparison.
fn expected_cell(batch: &RecordBatch, column: usize, row: usize) -> Value {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::*;
    let array = batch.column(column);
    if array.is_null(row) {
        return if matches!(array.data_type(), DataType::List(_)) {
            json!([])
        } else {
            Value::Null
        };
    }
    let text = |s: String| Value::String(s);
    match array.data_type() {
        DataType::Int64 => text(array.as_primitive::<Int64Type>().value(row).to_string()),
        DataType::Float64 => text(format!("{:?}", array.as_primitive::<Float64Type>().value(row))),
        DataType::Boolean => text(array.as_boolean().value(row).to_string()),
        DataType::Utf8 => text(array.as_string::<i32>().value(row).to_string()),
        DataType::Binary => text(base64::engine::general_purpose::STANDARD.encode(array.as_binary::<i32>().value(row))),
        DataType::Date32 => text(
            values::datetime_text(i64::from(array.as_primitive::<Date32Type>().value(row)) * values::MICROS_PER_DAY)
                .expect("date")[..10]
                .trim_start_matches('+')
                .to_string(),
        ),
        DataType::Timestamp(_, Some(_)) => {
            text(array.as_primitive::<TimestampMicrosecondType>().value(row).to_string())
        }
        DataType::Timestamp(_, None) => {
            text(values::datetime_text(array.as_primitive::<TimestampMicrosecondType>().value(row)).expect("datetime"))
        }
        DataType::Time64(_) => {
            text(values::time_text(array.as_primitive::<Time64MicrosecondType>().value(row)).expect("time"))
        }
        DataType::Decimal128(_, _) => text(values::decimal_text(
            array.as_primitive::<Decimal128Type>().value(row),
            9,
        )),
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            let single = RecordBatch::try_from_iter([("x", list.clone())]).expect("list batch");
            Value::Array(
                (0..list.len())
                    .map(|i| json!({"v": expected_cell(&single, 0, i)}))
                    .collect(),
            )
        }
        other => panic!("unexpected type {other}"),
    }
}

/// Puts a REST cell in the canonical form `expected_cell` produces.
fn normalize(column: &str, cell: &Value) -> Value {
    let Some(s) = cell.as_str() else {
        return match cell {
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| json!({"v": normalize(column, &i["v"])})).collect())
            }
            other => other.clone(),
        };
    };
    let text = |s: String| Value::String(s);
    match column {
        "f" => text(match s {
            "nan" => "NaN".into(),
            "inf" => "inf".into(),
            "-inf" => "-inf".into(),
            _ => format!("{:?}", s.parse::<f64>().expect("float")),
        }),
        // DATETIME comes back with 'T' and without a fraction for whole seconds.
        "dt" => text(values::datetime_text(text_forms::parse_datetime_text(s).expect("datetime")).expect("datetime")),
        "tm" => text(values::time_text(text_forms::parse_time_text(s).expect("time")).expect("time")),
        // Tiny NUMERICs come back in exponent form (1E-9).
        "n" => text(values::decimal_text(parse_numeric(s), 9)),
        _ => cell.clone(),
    }
}

fn parse_numeric(s: &str) -> i128 {
    if let Some((mantissa, exponent)) = s.split_once(['E', 'e']) {
        let exponent: i8 = exponent.parse().expect("exponent");
        let unscaled = text_forms::parse_decimal_i128(mantissa, 9 + exponent.max(-9)).expect("mantissa");
        return unscaled;
    }
    text_forms::parse_decimal_i128(s, 9).expect("numeric")
}

fn session(grpc: &str) -> SessionContext {
    let ctx = SessionContext::new();
    register_bigquery(&ctx, BigQueryOptions::default().with_endpoint(grpc));
    ctx
}

/// The table options of each row format the suite checks: proto rows in their text forms
/// (what bqemulator decodes), and Arrow rows.
const FORMATS: [(&str, &str); 2] = [
    ("proto", "'bigquery.wire_encoding' 'text'"),
    ("arrow", "'bigquery.row_format' 'arrow'"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_select_over_three_streams_lands_every_row_exactly() {
    let Some((grpc, rest)) = emulator() else { return };
    for (format, options) in FORMATS {
        insert_select_lands_every_row_exactly(&grpc, &rest, format, options).await;
    }
}

async fn insert_select_lands_every_row_exactly(grpc: &str, rest: &str, format: &str, options: &str) {
    let table = create_table(rest, &format!("insert_{format}"));
    let ctx = session(grpc);
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}' \
         OPTIONS ('bigquery.streams' '3', {options})"
    ))
    .await
    .expect("create external table");
    let arrow_schema = Arc::new(schema::to_arrow_schema(
        &schema::parse_inline_schema(SCHEMA).expect("schema"),
    ));
    let batches = generate(&arrow_schema, 12_000, 2_000);
    let source = MemTable::try_new(arrow_schema.clone(), vec![batches.clone()]).expect("source");
    ctx.register_table("src", Arc::new(source)).expect("register");

    let result = ctx
        .sql("INSERT INTO dest SELECT * FROM src")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("insert");
    let inserted = result[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::UInt64Array>()
        .expect("count")
        .value(0);
    assert_eq!(inserted, 12_000);

    let names = ["id", "f", "b", "s", "by", "d", "ts", "n", "dt", "tm", "arr", "tags"];
    let select = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let rows = query(rest, &format!("SELECT {select} FROM {}.t ORDER BY id", table.dataset));
    assert_eq!(rows.len(), 12_000, "{format}: every row is visible once");
    let mut checked = 0;
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let id = checked;
            for (column, name) in names.iter().enumerate() {
                let expected = expected_cell(batch, column, row);
                let actual = normalize(name, &rows[id][column]);
                assert_eq!(actual, expected, "{format}: row id {id}, column {name}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalized_streams_stay_invisible_until_the_one_commit() {
    let Some((grpc, rest)) = emulator() else { return };
    for format in [RowFormat::Proto, RowFormat::Arrow] {
        invisible_until_the_one_commit(&grpc, &rest, format).await;
    }
}

async fn invisible_until_the_one_commit(grpc: &str, rest: &str, format: RowFormat) {
    let table = create_table(rest, &format!("halves_{}", format.as_str()));
    let options = BigQueryOptions::default()
        .with_endpoint(grpc)
        .with_streams(3)
        .with_wire_encoding(WireEncoding::Text)
        .with_row_format(format);
    let loader = Loader::connect(table.clone(), options).await.expect("connect");
    let batches = generate(&loader.arrow_schema(), 9_000, 3_000);
    let input = futures::stream::iter(batches.into_iter().map(Ok::<_, std::io::Error>));
    let handles = loader
        .write_streams(&loader.arrow_schema(), input)
        .await
        .expect("write");
    assert_eq!(handles.len(), 3, "three streams");
    assert_eq!(
        count(rest, &table),
        0,
        "{format:?}: finalized rows are invisible before the commit"
    );
    loader.commit(&handles).await.expect("commit");
    assert_eq!(count(rest, &table), 9_000);
    let again = loader.commit(&handles).await;
    assert!(again.is_err(), "a stream cannot be committed twice");
    assert_eq!(count(rest, &table), 9_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_commits_nothing() {
    let Some((grpc, rest)) = emulator() else { return };
    for (format, options) in FORMATS {
        bad_input_in_format_commits_nothing(&grpc, &rest, format, options).await;
    }
}

async fn bad_input_in_format_commits_nothing(grpc: &str, rest: &str, format: &str, options: &str) {
    let table = create_table(rest, &format!("bad_{format}"));
    let ctx = session(grpc);
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}' OPTIONS ({options}, 'bigquery.streams' '2')"
    ))
    .await
    .expect("create external table");
    let err = ctx
        .sql("INSERT INTO dest (id, s) SELECT CASE WHEN value = 9000 THEN NULL ELSE value END, 'x' FROM range(10000)")
        .await
        .expect("plan")
        .collect()
        .await
        .expect_err("NULL in REQUIRED id");
    // The input is repartitioned by the planner, so the row index is the order of arrival.
    assert!(
        err.to_string().contains("column id, row ") && err.to_string().contains("NULL in a REQUIRED column"),
        "{format}: {err}"
    );
    assert_eq!(count(rest, &table), 0);

    let missing = ctx
        .sql(&format!(
            "CREATE EXTERNAL TABLE nope STORED AS BIGQUERY LOCATION '{PROJECT}.{}.nope'",
            table.dataset
        ))
        .await;
    let err = missing.expect_err("unknown table");
    assert!(
        err.to_string().contains(&format!("{PROJECT}.{}.nope", table.dataset)) && err.to_string().contains("not found"),
        "{err}"
    );
}

#[cfg(feature = "ballista")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ballista_insert_lands_every_row_exactly_once() {
    use datafusion_bigquery::ballista::{Cluster, ballista_context};
    let Some((grpc, rest)) = emulator() else { return };
    let table = bqemulator::create_table(
        &rest,
        "conf",
        "ballista",
        json!([{"name": "id", "type": "INT64", "mode": "REQUIRED"}, {"name": "s", "type": "STRING"}]),
    );
    let ctx = ballista_context(&Cluster::Standalone, BigQueryOptions::default().with_endpoint(grpc))
        .await
        .expect("standalone cluster");
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}'"
    ))
    .await
    .expect("create external table");
    // The source is a Parquet file: table functions such as range() do not travel to a cluster.
    let file = std::env::temp_dir().join(format!("dfbq-conformance-ballista-{}.parquet", std::process::id()));
    SessionContext::new()
        .sql(&format!(
            "COPY (SELECT value AS id, concat('s', value) AS s FROM range(20000)) TO '{}' STORED AS PARQUET",
            file.display()
        ))
        .await
        .expect("plan")
        .collect()
        .await
        .expect("write parquet");
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE src STORED AS PARQUET LOCATION '{}'",
        file.display()
    ))
    .await
    .expect("source");
    let batches = ctx
        .sql("INSERT INTO dest SELECT id, s FROM src")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("insert on Ballista");
    let inserted = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::UInt64Array>()
        .expect("count")
        .value(0);
    assert_eq!(inserted, 20_000);
    let rows = query(
        &rest,
        &format!(
            "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM {}.t",
            table.dataset
        ),
    );
    let cells: Vec<&str> = rows[0].iter().map(|v| v.as_str().unwrap_or("")).collect();
    assert_eq!(cells, ["20000", "20000", "0", "19999"]);
}
