//! The library API without SQL: every type of the INSERT issue round-trips exactly through
//! the embedded server in both wire encodings, and the two halves of a load (write, commit)
//! work apart.

#![cfg(feature = "server")]

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array, Float64Array, Int64Array,
    ListArray, RecordBatch, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{Int64Type, i256};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, Error, Loader, TableRef, WireEncoding, schema, values};
use futures::stream;

const SCHEMA: &str = "id:INT64:REQUIRED,f:FLOAT64,b:BOOL,s:STRING,by:BYTES,d:DATE,ts:TIMESTAMP,n:NUMERIC,\
                      dt:DATETIME,t:TIME,bn:BIGNUMERIC,j:JSON,xs:INT64:REPEATED,ss:STRING:REPEATED";

fn sample(schema: arrow::datatypes::SchemaRef) -> RecordBatch {
    let max_numeric = values::NUMERIC_MAX_UNSCALED;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![i64::MIN, 0, i64::MAX, 7])),
        Arc::new(Float64Array::from(vec![
            Some(f64::NAN),
            Some(f64::INFINITY),
            None,
            Some(-0.1),
        ])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true)])),
        Arc::new(StringArray::from(vec![
            Some(""),
            Some("héllo, 世界"),
            None,
            Some("x".repeat(1000).as_str()),
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&b""[..]),
            Some(&[0u8, 255, 1][..]),
            None,
            Some(&b"abc"[..]),
        ])),
        Arc::new(Date32Array::from(vec![
            Some(values::DATE_MIN_DAYS),
            Some(values::DATE_MAX_DAYS),
            None,
            Some(-1),
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(values::MICROS_MIN), Some(values::MICROS_MAX), None, Some(-1)])
                .with_timezone("UTC"),
        ),
        Arc::new(
            Decimal128Array::from(vec![Some(max_numeric), Some(-max_numeric), None, Some(1_500_000_000)])
                .with_precision_and_scale(38, 9)
                .expect("decimal"),
        ),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(values::MICROS_MIN),
            Some(values::MICROS_MAX),
            None,
            Some(1_480_774_287_123_456),
        ])),
        Arc::new(Time64MicrosecondArray::from(vec![
            Some(0),
            Some(values::MICROS_PER_DAY - 1),
            None,
            Some(51_087_123_456),
        ])),
        Arc::new(
            Decimal256Array::from(vec![Some(i256::MAX), Some(i256::MIN), None, Some(i256::from_i128(-15))])
                .with_precision_and_scale(76, 38)
                .expect("decimal256"),
        ),
        Arc::new(StringArray::from(vec![
            Some(r#"{"a":[1,2]}"#),
            Some("null"),
            None,
            Some("3"),
        ])),
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), Some(-2), Some(i64::MAX)]),
            Some(vec![]),
            Some(vec![]),
            Some(vec![Some(0)]),
        ])),
        Arc::new({
            let mut builder = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
            for row in [vec!["a", ""], vec![], vec!["z"], vec![]] {
                for s in row {
                    builder.values().append_value(s);
                }
                builder.append(true);
            }
            builder.finish()
        }),
    ];
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(array, field)| match field.data_type() {
            // Lists carry the table's item field (non-null items).
            dt @ arrow::datatypes::DataType::List(_) => arrow::compute::cast(&array, dt).expect("list cast"),
            _ => array,
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("batch")
}

async fn round_trip(encoding: WireEncoding) {
    let server = EmbeddedServer::start().await.expect("server");
    let table: TableRef = "demo.types.all".parse().expect("name");
    server.create_table(&table, schema::parse_inline_schema(SCHEMA).expect("schema"));
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_streams(2)
        .with_wire_encoding(encoding);
    let loader = Loader::connect(table.clone(), options).await.expect("connect");
    let batch = sample(loader.arrow_schema());
    let input = vec![Ok::<_, std::io::Error>(batch.clone()), Ok(batch.slice(1, 2))];
    let summary = loader.load(batch.schema(), stream::iter(input)).await.expect("load");
    assert_eq!(summary.rows, 6);
    assert_eq!(summary.streams, 2);
    assert!(summary.commit_time.is_some());

    let committed = server.rows(&table).expect("table");
    let committed = concat_batches(&batch.schema(), &committed).expect("concat");
    // Two streams commit in stream order: the first batch went to stream 1, the slice to stream 2.
    let expected = concat_batches(&batch.schema(), &[batch.clone(), batch.slice(1, 2)]).expect("concat");
    assert_eq!(committed.num_rows(), expected.num_rows());
    for (i, field) in batch.schema().fields().iter().enumerate() {
        // NaN != NaN under PartialEq: compare floats by bits.
        if field.name() == "f" {
            let bits = |b: &RecordBatch| -> Vec<Option<u64>> {
                b.column(i)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("f64")
                    .iter()
                    .map(|v| v.map(f64::to_bits))
                    .collect()
            };
            assert_eq!(bits(&committed), bits(&expected), "column f");
            continue;
        }
        assert_eq!(
            committed.column(i).as_ref(),
            expected.column(i).as_ref(),
            "column {} ({encoding:?})",
            field.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_issue_type_round_trips_packed() {
    round_trip(WireEncoding::Packed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_issue_type_round_trips_as_text() {
    round_trip(WireEncoding::Text).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_and_commit_are_separate_halves() {
    let server = EmbeddedServer::start().await.expect("server");
    let table: TableRef = "demo.halves.t".parse().expect("name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED").expect("schema"),
    );
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_streams(3);
    let loader = Loader::connect(table.clone(), options).await.expect("connect");
    let batches: Vec<_> = (0..6)
        .map(|i| {
            let ids = Int64Array::from_iter_values(i * 1000..(i + 1) * 1000);
            Ok::<_, std::io::Error>(RecordBatch::try_new(loader.arrow_schema(), vec![Arc::new(ids)]).expect("batch"))
        })
        .collect();
    let handles = loader
        .write_streams(&loader.arrow_schema(), stream::iter(batches))
        .await
        .expect("write");
    assert_eq!(handles.len(), 3);
    assert_eq!(handles.iter().map(|h| h.rows).sum::<u64>(), 6000);
    assert_eq!(
        server.row_count(&table),
        Some(0),
        "finalized but uncommitted rows are invisible"
    );

    // Handles are plain data: they survive serialization, e.g. to commit elsewhere.
    let saved = serde_json::to_string(&handles).expect("serialize");
    let restored: Vec<datafusion_bigquery::StreamHandle> = serde_json::from_str(&saved).expect("deserialize");

    // A handle of another table is the caller's mistake, named, and nothing is committed.
    let mut mixed = restored.clone();
    mixed[1].table = "demo.halves.other".parse().expect("name");
    let foreign = loader.commit(&mixed).await.expect_err("a foreign handle");
    assert!(
        matches!(&foreign, Error::ForeignStream { belongs_to, .. } if belongs_to == "demo.halves.other"),
        "{foreign}"
    );
    assert_eq!(server.row_count(&table), Some(0));

    let time = loader.commit(&restored).await.expect("commit");
    assert!(time.is_some());
    assert_eq!(server.row_count(&table), Some(6000));

    let again = loader.commit(&restored).await.expect_err("second commit");
    assert!(
        matches!(&again, Error::CommitRejected { errors, .. } if errors[0].contains("STREAM_ALREADY_COMMITTED")),
        "{again}"
    );
    assert_eq!(server.row_count(&table), Some(6000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_out_of_range_fail_before_any_stream_is_created() {
    let server = EmbeddedServer::start().await.expect("server");
    let table: TableRef = "demo.range.t".parse().expect("name");
    server.create_table(&table, schema::parse_inline_schema("n:NUMERIC").expect("schema"));
    let loader = Loader::connect(
        table.clone(),
        BigQueryOptions::default().with_endpoint(server.endpoint()),
    )
    .await
    .expect("connect");
    let too_big = Decimal128Array::from(vec![Some(1), Some(values::NUMERIC_MAX_UNSCALED + 1)])
        .with_precision_and_scale(38, 9)
        .expect("decimal");
    let batch = RecordBatch::try_new(loader.arrow_schema(), vec![Arc::new(too_big)]).expect("batch");
    let err = loader
        .load(batch.schema(), stream::iter(vec![Ok::<_, std::io::Error>(batch)]))
        .await
        .expect_err("must fail");
    let text = err.to_string();
    assert!(
        text.contains("column n, row 1") && text.contains("outside NUMERIC's range"),
        "{text}"
    );
    assert_eq!(server.stats().streams_created, 0);
    assert_eq!(server.row_count(&table), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_batches_takes_an_iterator_in_another_arrow_layout() {
    use arrow::array::{AsArray, Int32Array, LargeStringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let server = EmbeddedServer::start().await.expect("server starts");
    let table: TableRef = "demo.api.people".parse().expect("table name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED,name:STRING").expect("schema"),
    );
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_streams(2);
    let loader = Loader::connect(table.clone(), options).await.expect("connect");

    // Int32 and LargeUtf8, not the canonical Int64 and Utf8: converted exactly.
    let layout = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("name", DataType::LargeUtf8, true),
    ]));
    let batches = (0..5).map(|b| {
        let ids: Vec<i32> = (b * 100..(b + 1) * 100).collect();
        let names: Vec<Option<String>> = ids.iter().map(|i| (i % 3 != 0).then(|| format!("p{i}"))).collect();
        RecordBatch::try_new(
            layout.clone(),
            vec![Arc::new(Int32Array::from(ids)), Arc::new(LargeStringArray::from(names))],
        )
        .expect("batch")
    });
    let summary = loader.load_batches(batches).await.expect("load");
    assert_eq!((summary.rows, summary.streams), (500, 2));
    assert!(summary.commit_time.is_some());

    let committed = server.rows(&table).expect("table");
    let all = concat_batches(&committed[0].schema(), &committed).expect("concat");
    let mut ids: Vec<i64> = all.column(0).as_primitive::<Int64Type>().values().to_vec();
    ids.sort_unstable();
    assert_eq!(ids, (0..500).collect::<Vec<i64>>());
    assert_eq!(all.column(1).null_count(), 167, "ids divisible by 3 have no name");

    let empty = loader.load_batches(Vec::new()).await.expect("an empty load");
    assert_eq!((empty.rows, empty.streams, empty.commit_time), (0, 0, None));
}

/// `Loader::load_resumable`: a load whose input fails half-way resumes where its checkpoints
/// say, lands every row once, and a third run writes nothing.
#[tokio::test]
async fn a_resumable_load_resumes_after_a_failure_and_then_reports_its_commit() {
    use arrow::array::AsArray;
    use datafusion_bigquery::load::CheckpointReport;
    let server = EmbeddedServer::start().await.expect("server");
    let table: TableRef = "demo.api.resumable".parse().expect("name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED").expect("schema"),
    );
    let folder = std::env::temp_dir().join(format!("dfbq-resumable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    let mut options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_max_request_bytes(4096);
    options
        .set("bigquery.checkpoint", &folder.display().to_string())
        .expect("option");
    options.set("bigquery.checkpoint_interval_ms", "1").expect("option");
    options.set("bigquery.lease_ttl_ms", "200").expect("option");
    let loader = Loader::connect(table.clone(), options).await.expect("connect");
    let schema = loader.arrow_schema();
    // 3 partitions of 10 batches of 500 rows; ids by partition.
    let batches = |partition: usize, fail_after: Option<usize>| {
        let schema = schema.clone();
        let items: Vec<Result<RecordBatch, String>> = (0..10)
            .map(|b| {
                if fail_after.is_some_and(|n| b >= n) {
                    return Err("the source went away".to_string());
                }
                let first = (partition * 5_000 + b * 500) as i64;
                let ids = Int64Array::from_iter_values(first..first + 500);
                Ok(RecordBatch::try_new(schema.clone(), vec![Arc::new(ids) as ArrayRef]).expect("batch"))
            })
            .collect();
        stream::iter(items)
    };
    // Partition 1 fails after 6 batches; the others finish.
    let failed = loader
        .load_resumable("resumable-1", schema.clone(), 3, |p| batches(p, (p == 1).then_some(6)))
        .await;
    assert!(failed.unwrap_err().to_string().contains("the source went away"));
    assert_eq!(server.row_count(&table), Some(0), "nothing committed");
    let appended = server.stats().rows_appended;
    // The failure stopped every partition; their checkpoints say how far each got.
    let recorded: u64 = datafusion_bigquery::checkpoint::CheckpointStore::open(&folder.display().to_string())
        .and_then(|store| store.load("resumable-1"))
        .expect("folder")
        .partitions()
        .await
        .expect("checkpoints")
        .iter()
        .map(|p| p.acknowledged_rows)
        .sum();
    assert!(recorded > 0, "no progress recorded");

    let (summary, report) = loader
        .load_resumable("resumable-1", schema.clone(), 3, |p| batches(p, None))
        .await
        .expect("resumed");
    assert_eq!(summary.rows, 15_000);
    assert!(matches!(report, CheckpointReport::Committed { .. }));
    // Every partition resumed after the rows acknowledged before the failure: those were not
    // sent again (partition 1's last 2,000 rows, at least, were).
    let resent = server.stats().rows_appended - appended;
    assert!(
        (2_000..=15_000 - recorded).contains(&resent),
        "{resent} rows sent again, {recorded} were recorded"
    );
    let ids = server.rows(&table).expect("rows");
    let mut seen: Vec<i64> = ids
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..15_000).collect::<Vec<i64>>());

    let (again, report) = loader
        .load_resumable("resumable-1", schema.clone(), 3, |p| batches(p, None))
        .await
        .expect("rerun");
    assert_eq!(again.rows, 15_000);
    assert!(
        matches!(report, CheckpointReport::AlreadyCommitted { rows: 15_000, .. }),
        "{report:?}"
    );
    assert_eq!(server.row_count(&table), Some(15_000));
}

/// A stream an earlier attempt finalized without recording it (its checkpoint says open) is
/// found finalized on resume, checked against the partition's row count, and committed as
/// it is: nothing is written again.
#[tokio::test]
async fn a_stream_finalized_but_recorded_open_is_committed_as_it_is() {
    use datafusion_bigquery::rpc::Rpc;
    use datafusion_bigquery::server::RpcFault;
    let server = EmbeddedServer::start().await.expect("server");
    let table: TableRef = "demo.api.sealed".parse().expect("name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED").expect("schema"),
    );
    let folder = std::env::temp_dir().join(format!("dfbq-sealed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    let mut options = BigQueryOptions::default().with_endpoint(server.endpoint());
    options
        .set("bigquery.checkpoint", &folder.display().to_string())
        .expect("option");
    let loader = Loader::connect(table.clone(), options).await.expect("connect");
    let schema = loader.arrow_schema();
    let batches = |partition: usize| {
        let first = partition as i64 * 1_000;
        let ids = Int64Array::from_iter_values(first..first + 1_000);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids) as ArrayRef]).expect("batch");
        stream::iter(vec![Ok::<_, String>(batch)])
    };
    // Both streams are finalized and recorded; the commit is refused for good.
    server.inject_rpc_fault(
        Rpc::BatchCommitWriteStreams,
        1,
        RpcFault::Fail(tonic::Code::InvalidArgument),
    );
    assert!(
        loader
            .load_resumable("sealed", schema.clone(), 2, batches)
            .await
            .is_err()
    );
    // Make the checkpoints say what a crash right after finalize leaves: open, half acknowledged.
    for entry in std::fs::read_dir(folder.join("sealed")).expect("folder") {
        let path = entry.expect("entry").path();
        if !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("partition-"))
        {
            continue;
        }
        let mut checkpoint: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        checkpoint["finalized"] = serde_json::Value::Bool(false);
        checkpoint["acknowledged_rows"] = serde_json::json!(500);
        std::fs::write(&path, serde_json::to_vec(&checkpoint).expect("json")).expect("write");
    }
    let before = server.stats();
    let (summary, _) = loader
        .load_resumable("sealed", schema.clone(), 2, batches)
        .await
        .expect("resumed");
    assert_eq!(summary.rows, 2_000);
    let after = server.stats();
    assert_eq!(after.streams_created, before.streams_created, "no new stream");
    assert_eq!(after.rows_appended, before.rows_appended, "no row written again");
    assert_eq!(server.row_count(&table), Some(2_000));
}
