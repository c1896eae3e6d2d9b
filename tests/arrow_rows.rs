//! Arrow rows (`bigquery.row_format`) against the embedded server: INSERTs land exactly once
//! and the same as proto rows (and digest alike), bad values are named, and `auto` falls back
//! to proto rows when the service refuses Arrow. (`tests/discard.rs` checks the digests of
//! both formats in both retentions.)

#![cfg(feature = "server")]

mod common;

use arrow::array::{Array, AsArray};
use common::{Fixture, error_text};
use datafusion_bigquery::EmbeddedServer;

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
