//! Property test of the whole type matrix: random table schemas (every BigQuery type and
//! mode, parameterized types, STRUCT at depth, ARRAY of every element type, RANGE, column
//! names that are not identifiers) and random values (NULLs, extremes, empty strings and
//! arrays) go through the Loader API, in some input representation the user could have
//! (another string, binary, list, date, time or decimal layout, dictionaries, zoned
//! timestamps, durations, NULL arrays, shuffled columns and struct members), into the
//! embedded server, and must come back identical to the canonical values. Fixed seed and
//! case count, so CI runs the same cases every time.

#![cfg(feature = "server")]

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array, DurationNanosecondArray,
    Float64Array, Int64Array, IntervalMonthDayNanoArray, ListArray, RecordBatch, StringArray, StructArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, IntervalMonthDayNano, Schema, TimeUnit, i256};
use datafusion_bigquery::schema::{FieldElementType, Mode, TableFieldSchema, TableSchema, Type};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, Loader, RowFormat, TableRef, WireEncoding, schema, values};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Cases per run, and the seed: small and fixed so that CI runs in seconds, the same every time.
const CASES: u32 = 160;

/// Rows of the fan-out cases.
const FAN_OUT_ROWS: usize = 600;
const SEED: [u8; 32] = *b"datafusion-bigquery type matrix!";

/// One generated value, before it becomes Arrow.
#[derive(Debug, Clone)]
enum V {
    Null,
    I(i64),
    F(f64),
    B(bool),
    S(String),
    Y(Vec<u8>),
    D(i32),
    /// Microseconds: TIMESTAMP, DATETIME, TIME.
    T(i64),
    N(i128),
    Bn(i256),
    Iv(i32, i32, i64),
    /// STRUCT members, or RANGE start and end.
    St(Vec<V>),
    L(Vec<V>),
}

fn column(ty: Type) -> TableFieldSchema {
    TableFieldSchema {
        r#type: ty as i32,
        ..Default::default()
    }
}

/// A column type with its parameters, no name or mode yet.
fn leaf_type() -> impl Strategy<Value = TableFieldSchema> {
    let plain = prop_oneof![
        Just(Type::Int64),
        Just(Type::Double),
        Just(Type::Bool),
        Just(Type::String),
        Just(Type::Bytes),
        Just(Type::Date),
        Just(Type::Datetime),
        Just(Type::Time),
        Just(Type::Timestamp),
        Just(Type::Numeric),
        Just(Type::Bignumeric),
        Just(Type::Geography),
        Just(Type::Json),
        Just(Type::Interval),
    ]
    .prop_map(column);
    let sized = (prop_oneof![Just(Type::String), Just(Type::Bytes)], 1i64..6).prop_map(|(ty, len)| {
        let mut c = column(ty);
        c.max_length = len;
        c
    });
    let numeric = (1i64..=29, 0i64..=9).prop_map(|(int_digits, scale)| {
        let mut c = column(Type::Numeric);
        c.precision = int_digits + scale;
        c.scale = scale;
        c
    });
    let bignumeric = (1i64..=20, 0i64..=18).prop_map(|(int_digits, scale)| {
        let mut c = column(Type::Bignumeric);
        c.precision = int_digits + scale;
        c.scale = scale;
        c
    });
    let range = prop_oneof![Just(Type::Date), Just(Type::Datetime), Just(Type::Timestamp)].prop_map(|element| {
        let mut c = column(Type::Range);
        c.range_element_type = Some(FieldElementType { r#type: element as i32 });
        c
    });
    prop_oneof![8 => plain, 1 => sized, 1 => numeric, 1 => bignumeric, 2 => range]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![3 => Just(Mode::Nullable), 1 => Just(Mode::Required), 2 => Just(Mode::Repeated)]
}

/// Names unique at their level, some of them not proto identifiers (and one colliding
/// with the names generated for those).
fn named(members: Vec<(TableFieldSchema, Mode, u8)>) -> Vec<TableFieldSchema> {
    const BASES: [&str; 7] = ["c", "C_", "with-dash", "with space", "ünï", "9lead", "_col"];
    members
        .into_iter()
        .enumerate()
        .map(|(i, (mut c, mode, base))| {
            c.name = format!("{}{}", BASES[usize::from(base) % BASES.len()], i);
            c.mode = mode as i32;
            c
        })
        .collect()
}

fn column_type() -> impl Strategy<Value = TableFieldSchema> {
    leaf_type().prop_recursive(3, 12, 3, |inner| {
        vec((inner, mode(), any::<u8>()), 1..4).prop_map(|members| {
            let mut s = column(Type::Struct);
            s.fields = named(members);
            s
        })
    })
}

fn table() -> impl Strategy<Value = TableSchema> {
    let top = prop_oneof![3 => leaf_type(), 2 => column_type()];
    vec((top, mode(), any::<u8>()), 1..6).prop_map(|columns| TableSchema { fields: named(columns) })
}

fn ty(c: &TableFieldSchema) -> Type {
    schema::field_type(c)
}

fn pow10(n: i64) -> i128 {
    10i128.pow(n as u32)
}

/// Values of one column (REPEATED: a whole array).
fn value(c: &TableFieldSchema) -> BoxedStrategy<V> {
    match schema::field_mode(c) {
        Mode::Repeated => vec(element(c), 0..4).prop_map(V::L).boxed(),
        Mode::Required => element(c),
        _ => prop_oneof![1 => Just(V::Null), 4 => element(c)].boxed(),
    }
}

/// One non-NULL value of the column's type.
fn element(c: &TableFieldSchema) -> BoxedStrategy<V> {
    let micros = || {
        prop_oneof![
            Just(values::MICROS_MIN),
            Just(values::MICROS_MAX),
            Just(0),
            values::MICROS_MIN..=values::MICROS_MAX
        ]
    };
    let days = || {
        prop_oneof![
            Just(values::DATE_MIN_DAYS),
            Just(values::DATE_MAX_DAYS),
            values::DATE_MIN_DAYS..=values::DATE_MAX_DAYS
        ]
    };
    let text = |max: usize| vec(any::<char>(), 0..=max).prop_map(String::from_iter);
    match ty(c) {
        Type::Int64 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), any::<i64>()]
            .prop_map(V::I)
            .boxed(),
        Type::Double => prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(f64::MIN_POSITIVE),
            any::<f64>()
        ]
        .prop_map(V::F)
        .boxed(),
        Type::Bool => any::<bool>().prop_map(V::B).boxed(),
        Type::String => {
            let max = if c.max_length > 0 { c.max_length as usize } else { 12 };
            text(max).prop_map(V::S).boxed()
        }
        Type::Json => (any::<i64>(), text(6), any::<bool>())
            .prop_map(|(n, s, b)| V::S(serde_json::json!({"n": n, "s": s, "b": [b, null]}).to_string()))
            .boxed(),
        Type::Geography => (-180i32..=180, -90i32..=90)
            .prop_map(|(x, y)| V::S(format!("POINT({x} {y})")))
            .boxed(),
        Type::Bytes => {
            let max = if c.max_length > 0 { c.max_length as usize } else { 10 };
            vec(any::<u8>(), 0..=max).prop_map(V::Y).boxed()
        }
        Type::Date => days().prop_map(V::D).boxed(),
        Type::Timestamp | Type::Datetime => micros().prop_map(V::T).boxed(),
        Type::Time => prop_oneof![Just(0), Just(values::MICROS_PER_DAY - 1), 0..values::MICROS_PER_DAY]
            .prop_map(V::T)
            .boxed(),
        Type::Numeric if c.precision > 0 => {
            let limit = pow10(c.precision) - 1;
            let step = pow10(9 - c.scale);
            prop_oneof![Just(limit), Just(-limit), -limit..=limit]
                .prop_map(move |k| V::N(k * step))
                .boxed()
        }
        Type::Numeric => {
            let max = values::NUMERIC_MAX_UNSCALED;
            prop_oneof![Just(max), Just(-max), Just(0), -max..=max]
                .prop_map(V::N)
                .boxed()
        }
        Type::Bignumeric if c.precision > 0 => {
            let limit = pow10(c.precision) - 1;
            let step = i256::from_i128(10).wrapping_pow((38 - c.scale) as u32);
            prop_oneof![Just(limit), Just(-limit), -limit..=limit]
                .prop_map(move |k| V::Bn(i256::from_i128(k).wrapping_mul(step)))
                .boxed()
        }
        Type::Bignumeric => prop_oneof![
            Just(i256::MAX),
            Just(i256::MIN),
            Just(i256::ZERO),
            (any::<u128>(), any::<i128>()).prop_map(|(low, high)| i256::from_parts(low, high))
        ]
        .prop_map(V::Bn)
        .boxed(),
        Type::Interval => {
            let max_micros = i64::MAX / 1000;
            (
                -values::INTERVAL_MAX_MONTHS..=values::INTERVAL_MAX_MONTHS,
                -values::INTERVAL_MAX_DAYS..=values::INTERVAL_MAX_DAYS,
                prop_oneof![Just(max_micros), Just(-max_micros), Just(0), -max_micros..=max_micros],
            )
                .prop_map(|(m, d, us)| V::Iv(m, d, us * 1000))
                .boxed()
        }
        Type::Range => {
            let is_date = matches!(schema::to_arrow_field(c).data_type(), DataType::Struct(f) if f[0].data_type() == &DataType::Date32);
            let (bounds, max) = if is_date {
                (days().prop_map(i64::from).boxed(), i64::from(values::DATE_MAX_DAYS))
            } else {
                (micros().boxed(), values::MICROS_MAX)
            };
            let wrap = move |v: i64| if is_date { V::D(v as i32) } else { V::T(v) };
            (bounds.clone(), bounds, any::<bool>(), any::<bool>())
                .prop_map(move |(a, b, has_start, has_end)| {
                    // The start must be before the end.
                    let (mut lo, mut hi) = (a.min(b), a.max(b));
                    if lo == hi {
                        if hi < max { hi += 1 } else { lo -= 1 }
                    }
                    let bound = |present: bool, v: i64| if present { wrap(v) } else { V::Null };
                    V::St(vec![bound(has_start, lo), bound(has_end, hi)])
                })
                .boxed()
        }
        Type::Struct => c.fields.iter().map(value).collect::<Vec<_>>().prop_map(V::St).boxed(),
        Type::Unspecified => unreachable!("generated columns have types"),
    }
}

/// The canonical array of `values` of Arrow type `data_type` (one value per entry).
fn build(data_type: &DataType, values: &[&V]) -> ArrayRef {
    macro_rules! prim {
        ($array:ty, $variant:ident) => {
            Arc::new(
                values
                    .iter()
                    .map(|v| match v {
                        V::$variant(x) => Some(x.clone()),
                        _ => None,
                    })
                    .collect::<$array>(),
            )
        };
    }
    match data_type {
        DataType::Int64 => prim!(Int64Array, I),
        DataType::Float64 => prim!(Float64Array, F),
        DataType::Boolean => prim!(BooleanArray, B),
        DataType::Utf8 => prim!(StringArray, S),
        DataType::Binary => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    V::Y(x) => Some(x.as_slice()),
                    _ => None,
                })
                .collect::<BinaryArray>(),
        ),
        DataType::Date32 => prim!(Date32Array, D),
        DataType::Timestamp(_, _) => {
            let array: ArrayRef = prim!(TimestampMicrosecondArray, T);
            cast(&array, data_type).expect("zone label")
        }
        DataType::Time64(_) => prim!(Time64MicrosecondArray, T),
        DataType::Decimal128(p, s) => {
            let array: Decimal128Array = values
                .iter()
                .map(|v| match v {
                    V::N(x) => Some(*x),
                    _ => None,
                })
                .collect();
            Arc::new(array.with_precision_and_scale(*p, *s).expect("decimal"))
        }
        DataType::Decimal256(p, s) => {
            let array: Decimal256Array = values
                .iter()
                .map(|v| match v {
                    V::Bn(x) => Some(*x),
                    _ => None,
                })
                .collect();
            Arc::new(array.with_precision_and_scale(*p, *s).expect("decimal"))
        }
        DataType::Interval(_) => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    V::Iv(m, d, n) => Some(IntervalMonthDayNano::new(*m, *d, *n)),
                    _ => None,
                })
                .collect::<IntervalMonthDayNanoArray>(),
        ),
        DataType::Struct(fields) => {
            let children = (0..fields.len())
                .map(|j| {
                    let members: Vec<&V> = values
                        .iter()
                        .map(|v| match v {
                            V::St(m) => &m[j],
                            _ => &V::Null,
                        })
                        .collect();
                    build(fields[j].data_type(), &members)
                })
                .collect();
            let nulls = NullBuffer::from(values.iter().map(|v| matches!(v, V::St(_))).collect::<Vec<_>>());
            Arc::new(StructArray::try_new(fields.clone(), children, Some(nulls)).expect("struct"))
        }
        DataType::List(item) => {
            let mut offsets = vec![0i32];
            let mut elements = Vec::new();
            for v in values {
                if let V::L(items) = v {
                    elements.extend(items.iter());
                }
                offsets.push(elements.len() as i32);
            }
            let array = build(item.data_type(), &elements);
            Arc::new(ListArray::try_new(item.clone(), OffsetBuffer::new(offsets.into()), array, None).expect("list"))
        }
        other => panic!("no canonical type {other}"),
    }
}

/// Another representation of a canonical top-level array, chosen by `pick`.
fn represent(array: &ArrayRef, column: &TableFieldSchema, pick: u8) -> ArrayRef {
    let options: Vec<DataType> = match (array.data_type(), ty(column)) {
        (DataType::Utf8, _) => vec![
            DataType::LargeUtf8,
            DataType::Utf8View,
            DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8)),
        ],
        (DataType::Binary, _) => vec![DataType::LargeBinary, DataType::BinaryView],
        (DataType::Int64, _) => vec![DataType::Dictionary(
            Box::new(DataType::Int32),
            Box::new(DataType::Int64),
        )],
        (DataType::Date32, _) => vec![DataType::Date64],
        (DataType::Time64(_), _) => vec![DataType::Time64(TimeUnit::Nanosecond)],
        (DataType::Timestamp(_, _), Type::Timestamp) => vec![
            DataType::Timestamp(TimeUnit::Microsecond, Some("+05:30".into())),
            DataType::Timestamp(TimeUnit::Microsecond, None),
        ],
        (DataType::Decimal128(_, _), _) => vec![DataType::Decimal256(76, 20)],
        (DataType::List(item), _) => vec![DataType::LargeList(item.clone())],
        (DataType::Interval(_), _) => {
            let durations: Option<Vec<Option<i64>>> = array
                .as_any()
                .downcast_ref::<IntervalMonthDayNanoArray>()
                .expect("interval")
                .iter()
                .map(|v| match v {
                    None => Some(None),
                    Some(v) if v.months == 0 && v.days == 0 => Some(Some(v.nanoseconds)),
                    Some(_) => None,
                })
                .collect();
            return match durations {
                Some(d) if pick % 2 == 1 => Arc::new(DurationNanosecondArray::from(d)),
                _ => array.clone(),
            };
        }
        (DataType::Struct(fields), _) if pick % 2 == 1 => {
            // The same members in reverse order: they are matched by name.
            let s = array.as_any().downcast_ref::<StructArray>().expect("struct");
            let reversed: Fields = fields.iter().rev().cloned().collect();
            let columns: Vec<ArrayRef> = s.columns().iter().rev().cloned().collect();
            return Arc::new(StructArray::try_new(reversed, columns, s.nulls().cloned()).expect("struct"));
        }
        _ => vec![],
    };
    match usize::from(pick) % (options.len() + 1) {
        0 => array.clone(),
        i => cast(array, &options[i - 1]).expect("exact representation"),
    }
}

/// The input: empty arrays become NULL arrays where `nulls` says so (BigQuery stores a NULL
/// array as an empty one), then another representation of each column, in shuffled order.
fn input_batch(expected: &RecordBatch, table: &TableSchema, picks: &[u8], order: &[usize]) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for &i in order {
        let (column, array) = (&table.fields[i], expected.column(i));
        let pick = picks[i % picks.len()];
        let array = match array.data_type() {
            DataType::List(item) if pick.is_multiple_of(3) => {
                let list = array.as_any().downcast_ref::<ListArray>().expect("list");
                let nulls = NullBuffer::from((0..list.len()).map(|r| list.value_length(r) > 0).collect::<Vec<_>>());
                let item: FieldRef = Arc::new(item.as_ref().clone().with_nullable(true));
                Arc::new(ListArray::new(
                    item,
                    list.offsets().clone(),
                    list.values().clone(),
                    Some(nulls),
                ))
            }
            _ => array.clone(),
        };
        let array = represent(&array, column, pick / 3);
        fields.push(Field::new(&column.name, array.data_type().clone(), true));
        columns.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("input batch")
}

/// Every row of a batch in Arrow's row format, sorted: equal for two batches holding the
/// same rows in any order.
fn sorted_rows(batch: &RecordBatch) -> Vec<Vec<u8>> {
    use arrow::row::{RowConverter, SortField};
    let fields = batch
        .schema()
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).expect("row converter");
    let rows = converter.convert_columns(batch.columns()).expect("rows");
    let mut out: Vec<Vec<u8>> = rows.iter().map(|r| r.as_ref().to_vec()).collect();
    out.sort();
    out
}

#[test]
fn random_schemas_and_values_round_trip_exactly() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(EmbeddedServer::start()).expect("server");
    let case = table().prop_flat_map(|table| {
        let rows = vec(table.fields.iter().map(value).collect::<Vec<_>>(), 0..8);
        let order = Just((0..table.fields.len()).collect::<Vec<_>>()).prop_shuffle();
        (Just(table), rows, vec(any::<u8>(), 1..8), order, 0..3u8)
    });
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    let number = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&case, |(table, rows, picks, order, form)| {
        let n = number.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Every fourth case repeats its rows to a few hundred and sends them as many small
        // batches over three streams with tiny requests: requests split, writers fan out,
        // and the committed rows come back as a permutation of the input's.
        let fan_out = n % 4 == 3 && !rows.is_empty();
        let rows: Vec<Vec<V>> = if fan_out {
            (0..FAN_OUT_ROWS).map(|i| rows[i % rows.len()].clone()).collect()
        } else {
            rows
        };
        let name: TableRef = format!("demo.matrix.t{n}").parse().expect("name");
        server.create_table(&name, table.clone());
        let arrow = Arc::new(schema::to_arrow_schema(&table));
        let columns = (0..table.fields.len())
            .map(|i| {
                build(
                    arrow.field(i).data_type(),
                    &rows.iter().map(|r| &r[i]).collect::<Vec<_>>(),
                )
            })
            .collect();
        let expected = RecordBatch::try_new(arrow.clone(), columns).expect("expected batch");
        let input = input_batch(&expected, &table, &picks, &order);
        // Proto rows in the packed or the text form, or Arrow rows.
        let (encoding, format) = match form {
            0 => (WireEncoding::Packed, RowFormat::Proto),
            1 => (WireEncoding::Text, RowFormat::Proto),
            _ => (WireEncoding::Packed, RowFormat::Arrow),
        };
        let mut options = BigQueryOptions::default()
            .with_endpoint(server.endpoint())
            .with_streams(if fan_out { 3 } else { 1 })
            .with_wire_encoding(encoding)
            .with_row_format(format);
        let arrow_before = server.stats().arrow_requests;
        if fan_out {
            options = options.with_max_request_bytes(32 * 1024);
        }
        let loaded = runtime.block_on(async {
            let loader = Loader::connect(name.clone(), options).await?;
            let slice = if fan_out { 25 } else { input.num_rows().max(1) };
            let batches: Vec<_> = (0..input.num_rows().max(1))
                .step_by(slice)
                .map(|start| Ok::<_, std::io::Error>(input.slice(start, slice.min(input.num_rows() - start))))
                .collect();
            loader.load(input.schema(), futures::stream::iter(batches)).await
        });
        let summary = loaded.map_err(|e| TestCaseError::fail(format!("{e}\ninput: {:?}", input.schema())))?;
        prop_assert_eq!(summary.rows, expected.num_rows() as u64);
        if format == RowFormat::Arrow && summary.rows > 0 {
            prop_assert!(server.stats().arrow_requests > arrow_before, "Arrow rows were sent");
        }
        if fan_out {
            prop_assert_eq!(summary.streams, 3);
            prop_assert!(summary.requests > 3, "requests split: {}", summary.requests);
        }
        let committed = server.rows(&name).expect("table");
        let committed = concat_batches(&arrow, &committed).expect("concat");
        prop_assert_eq!(committed.schema(), expected.schema());
        if fan_out {
            // Streams commit side by side: compare the rows as multisets.
            prop_assert_eq!(sorted_rows(&committed), sorted_rows(&expected), "rows of {:?}", table);
            return Ok(());
        }
        for i in 0..expected.num_columns() {
            prop_assert_eq!(
                committed.column(i).to_data(),
                expected.column(i).to_data(),
                "column {} ({}), input {}, {:?}",
                table.fields[i].name,
                schema::describe_column(&table.fields[i]),
                input
                    .schema()
                    .field_with_name(&table.fields[i].name)
                    .expect("field")
                    .data_type(),
                (encoding, format)
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
