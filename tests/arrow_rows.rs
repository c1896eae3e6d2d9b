//! Arrow rows (`bigquery.row_format`) against the embedded server: INSERTs land exactly once
//! and the same as proto rows, bad values are named, the same rows digest alike in both
//! formats, and `auto` falls back to proto rows when the service refuses Arrow.

#![cfg(feature = "server")]

mod common;

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use common::{Fixture, error_text};
use datafusion_bigquery::server::{Retention, RowDigest};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, Loader, RowFormat, TableRef, schema};
use futures::stream;

const SCHEMA: &str = "id:INT64:REQUIRED,name:STRING,amount:NUMERIC,day:DATE,at:TIMESTAMP,tags:STRING:REPEATED";

fn insert_rows(n: usize) -> String {
    format!(
        "INSERT INTO dest SELECT value AS id, concat('name-', value) AS name, \
         CAST(value AS DECIMAL(12, 2)) / 4 AS amount, CAST(value % 1000 AS INT) AS day, \
         to_timestamp_micros(value * 1000003) AS at, \
         CASE WHEN value % 3 = 0 THEN NULL ELSE make_array(concat('t', value), 'x') END AS tags \
         FROM range({n})"
    )
}

/// The committed rows of `f`'s table, by id, as text.
async fn committed_text(f: &Fixture) -> Vec<String> {
    let batches = f.committed("id").await;
    let formatted = arrow::util::pretty::pretty_format_batches(&batches).expect("format");
    formatted.to_string().lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_rows_insert_lands_exactly_once_as_proto_rows_do() {
    let arrow = Fixture::new(SCHEMA, "'bigquery.streams' '4', 'bigquery.row_format' 'arrow'").await;
    let gate = arrow.server.hold_commits();
    let ctx = arrow.ctx.clone();
    let insert = tokio::spawn(async move { common::run(&ctx, &insert_rows(30_000)).await });
    gate.arrived().await;
    assert_eq!(arrow.visible_rows(), 0, "no row is visible before the commit");
    assert_eq!(arrow.server.invisible_row_count(&arrow.table), 30_000);
    gate.release();
    let count = insert
        .await
        .expect("task")
        .unwrap_or_else(|e| panic!("{}", error_text(&e)));
    assert_eq!(count, 30_000);
    let stats = arrow.server.stats();
    assert_eq!(stats.streams_created, 4);
    assert_eq!(stats.commits, 1);
    assert!(stats.arrow_requests >= 4, "every request carried Arrow rows: {stats:?}");
    assert_eq!(
        stats.arrow_requests, stats.append_requests,
        "every request carried Arrow rows"
    );
    assert_eq!(common::audit(&arrow.server, &arrow.table, 30_000), (0, 0, 0));

    // The same INSERT as proto rows stores the same values, and digests alike.
    let proto = Fixture::new(SCHEMA, "'bigquery.streams' '2'").await;
    assert_eq!(proto.run(&insert_rows(30_000)).await.expect("proto insert"), 30_000);
    assert_eq!(proto.server.stats().arrow_requests, 0);
    let (a, p) = (committed_text(&arrow).await, committed_text(&proto).await);
    assert_eq!(a.len(), p.len());
    assert_eq!(a, p, "the same rows in both formats");
    assert!(a.iter().any(|line| line.contains("[t1, x]")), "arrays arrive: {}", a[3]);
    assert_eq!(
        arrow.server.table_digest(&arrow.table),
        proto.server.table_digest(&proto.table)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_in_arrow_rows_are_named_and_commit_nothing() {
    let f = Fixture::new(SCHEMA, "'bigquery.row_format' 'arrow'").await;
    let err = f
        .run("INSERT INTO dest (id, name) VALUES (1, 'a'), (NULL, 'b')")
        .await
        .expect_err("NULL in a REQUIRED column");
    assert!(
        error_text(&err).contains("table demo.tests.dest, column id, row 1: NULL in a REQUIRED column"),
        "{}",
        error_text(&err)
    );
    let err = f
        .run("INSERT INTO dest (id, day) VALUES (1, CAST('2020-01-01' AS DATE)), (2, CAST(-800000 AS DATE))")
        .await
        .expect_err("DATE out of range");
    assert!(
        error_text(&err).contains("column day, row 1") && error_text(&err).contains("outside DATE's range"),
        "{}",
        error_text(&err)
    );
    let err = f
        .run("INSERT INTO dest (id, tags) VALUES (1, make_array('a', NULL))")
        .await
        .expect_err("NULL array element");
    assert!(error_text(&err).contains("column tags, row 0"), "{}", error_text(&err));
    assert_eq!(f.visible_rows(), 0);
    assert_eq!(f.server.stats().commits, 0);

    // Dropped on request; a NULL array is an empty one.
    let f = Fixture::new(
        SCHEMA,
        "'bigquery.row_format' 'arrow', 'bigquery.array_null_elements' 'drop'",
    )
    .await;
    let count = f
        .run("INSERT INTO dest (id, tags) VALUES (1, make_array('a', NULL, 'b')), (2, NULL)")
        .await
        .unwrap_or_else(|e| panic!("{}", error_text(&e)));
    assert_eq!(count, 2);
    let batches = f.committed("id").await;
    let tags = batches[0].column(5).as_list::<i32>();
    assert_eq!(tags.value_length(0), 2);
    assert_eq!(tags.value_length(1), 0);
    assert!(!tags.is_null(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_proto_rows_when_arrow_is_refused() {
    let f = Fixture::with_server(
        EmbeddedServer::builder().refuse_arrow_rows(),
        SCHEMA,
        "'bigquery.streams' '3', 'bigquery.row_format' 'auto', 'bigquery.max_request_bytes' '65536'",
    )
    .await;
    let count = f
        .run(&insert_rows(20_000))
        .await
        .unwrap_or_else(|e| panic!("{}", error_text(&e)));
    assert_eq!(count, 20_000);
    assert_eq!(common::audit(&f.server, &f.table, 20_000), (0, 0, 0));
    assert_eq!(f.server.stats().commits, 1);
    // Each writer sent Arrow rows first and was refused; the next INSERT sends proto rows
    // at once.
    let stats = f.server.stats();
    assert!(stats.arrow_requests >= 3, "{stats:?}");
    assert!(stats.append_requests > stats.arrow_requests, "{stats:?}");
    assert_eq!(f.run(&insert_rows(10)).await.expect("second insert"), 10);
    let after = f.server.stats();
    assert_eq!(after.arrow_requests, stats.arrow_requests, "no Arrow rows tried again");
    assert_eq!(
        after.append_requests - stats.append_requests,
        1,
        "one request of proto rows"
    );

    // With 'arrow' the refusal is an error, and nothing is committed.
    let f = Fixture::with_server(
        EmbeddedServer::builder().refuse_arrow_rows(),
        SCHEMA,
        "'bigquery.row_format' 'arrow', 'bigquery.retry_max_attempts' '2'",
    )
    .await;
    let err = f.run(&insert_rows(100)).await.expect_err("refused");
    assert!(
        error_text(&err).contains("arrow_rows are not supported"),
        "{}",
        error_text(&err)
    );
    assert_eq!(f.visible_rows(), 0);
}

/// Loads the same 10,000 rows as `format` into a server that keeps or discards rows; returns
/// the table's digest.
async fn digest_of(format: RowFormat, retention: Retention) -> RowDigest {
    let server = EmbeddedServer::builder()
        .retention(retention)
        .start()
        .await
        .expect("server");
    let table: TableRef = "bench.digest.t".parse().expect("name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED,note:STRING").expect("schema"),
    );
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_streams(3)
        .with_row_format(format);
    let loader = Loader::connect(table.clone(), options).await.expect("connect");
    let input_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    let batches: Vec<RecordBatch> = (0..5)
        .map(|b| {
            let ids = arrow::array::Int32Array::from_iter_values(b * 2000..(b + 1) * 2000);
            let notes =
                StringArray::from_iter((b * 2000..(b + 1) * 2000).map(|i| (i % 3 != 0).then(|| format!("n{i}"))));
            RecordBatch::try_new(input_schema.clone(), vec![Arc::new(ids), Arc::new(notes)]).expect("batch")
        })
        .collect();
    let summary = loader
        .load(
            input_schema,
            stream::iter(batches.into_iter().map(Ok::<_, std::io::Error>)),
        )
        .await
        .expect("load");
    assert_eq!(summary.rows, 10_000);
    if retention == Retention::Keep {
        let ids: Vec<i64> = server
            .rows(&table)
            .expect("rows")
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids.len(), 10_000);
    }
    server.table_digest(&table).expect("digest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_rows_digest_alike_in_both_formats_kept_or_discarded() {
    let proto = digest_of(RowFormat::Proto, Retention::Keep).await;
    assert_eq!(proto.rows, 10_000);
    assert_eq!(digest_of(RowFormat::Arrow, Retention::Keep).await, proto);
    assert_eq!(digest_of(RowFormat::Arrow, Retention::Discard).await, proto);
    assert_eq!(digest_of(RowFormat::Proto, Retention::Discard).await, proto);
    // And a different row changes it.
    let mut other = proto;
    other.add(b"\x08\x01");
    assert_ne!(other, proto);
}
