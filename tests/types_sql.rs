//! Nested and special types through SQL: `INSERT ... SELECT` of STRUCTs, arrays of STRUCTs,
//! RANGE, INTERVAL, JSON, parameterized NUMERIC and a column whose name is not an identifier,
//! read back from the embedded server; bad nested input fails naming the path and commits
//! nothing; NULL array elements fail or are dropped as the table's options say.

#![cfg(feature = "server")]

mod common;

use arrow::util::pretty::pretty_format_batches;
use common::{Fixture, error_text};

const SCHEMA: &str = r#"[
  {"name": "id", "type": "INT64", "mode": "REQUIRED"},
  {"name": "s", "type": "STRUCT", "fields": [
    {"name": "a", "type": "INT64"},
    {"name": "b", "type": "STRING", "mode": "REQUIRED"},
    {"name": "inner", "type": "RECORD", "fields": [{"name": "xs", "type": "INT64", "mode": "REPEATED"}]}
  ]},
  {"name": "items", "type": "STRUCT", "mode": "REPEATED", "fields": [
    {"name": "k", "type": "STRING"}, {"name": "v", "type": "FLOAT64"}
  ]},
  {"name": "period", "type": "RANGE", "rangeElementType": {"type": "DATE"}},
  {"name": "wait", "type": "INTERVAL"},
  {"name": "doc", "type": "JSON"},
  {"name": "unit price", "type": "NUMERIC", "precision": "6", "scale": "2"},
  {"name": "tags", "type": "STRING", "mode": "REPEATED"}
]"#;

async fn fixture(options: &str) -> Fixture {
    let path = std::env::temp_dir().join(format!("dfbq-types-sql-{}.json", std::process::id()));
    std::fs::write(&path, SCHEMA).expect("schema file");
    Fixture::new(path.to_str().expect("path"), options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_and_special_types_round_trip_through_sql() {
    let f = fixture("").await;
    let count = f
        .run(
            r#"INSERT INTO dest
               SELECT 1, named_struct('a', 7, 'b', 'x', 'inner', named_struct('xs', make_array(1, 2))),
                      make_array(named_struct('k', 'p', 'v', 1.5), named_struct('k', '', 'v', -0.25)),
                      named_struct('start', DATE '2024-01-01', 'end', DATE '2024-02-01'),
                      INTERVAL '1 month 2 days 3 hours 4.5 seconds',
                      '{"a": [1, null]}',
                      1234.5,
                      make_array('t', '')
               UNION ALL
               SELECT 2, NULL, NULL, named_struct('start', NULL, 'end', DATE '2024-02-01'), NULL, NULL, NULL, NULL"#,
        )
        .await
        .expect("insert");
    assert_eq!(count, 2);
    let text = pretty_format_batches(&f.committed("id").await)
        .expect("format")
        .to_string();
    let expected = [
        "| id | s                                  | items                                    | period                                 | wait                                  | doc              | unit price     | tags  |",
        "| 1  | {a: 7, b: x, inner: {xs: [1, 2]}}  | [{k: p, v: 1.5}, {k: , v: -0.25}]        | {start: 2024-01-01, end: 2024-02-01}   | 1 mons 2 days 3 hours 4.500000000 secs | {\"a\": [1, null]} | 1234.500000000 | [t, ] |",
        "| 2  |                                    | []                                       | {start: , end: 2024-02-01}             |                                       |                  |                | []    |",
    ];
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in expected {
        assert!(squash(&text).contains(&squash(line)), "{line}\nnot in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_nested_values_name_their_path_and_commit_nothing() {
    let f = fixture("").await;
    let cases = [
        (
            "INSERT INTO dest (id, s) VALUES (1, named_struct('a', 1, 'b', 'ok', 'inner', NULL)), \
             (2, named_struct('a', 2, 'b', NULL, 'inner', NULL))",
            "column s.b, row 1: NULL in a REQUIRED column",
        ),
        (
            "INSERT INTO dest (id, \"unit price\") VALUES (1, 1.5), (2, 10000)",
            "column unit price, row 1: value 10000.000000000 has more integer digits",
        ),
        (
            "INSERT INTO dest (id, period) VALUES \
             (1, named_struct('start', DATE '2024-02-01', 'end', DATE '2024-01-01'))",
            "column period, row 0: value {start: 2024-02-01, end: 2024-01-01} has a start that is not before its end",
        ),
        (
            "INSERT INTO dest (id, doc) VALUES (1, '{\"a\": 1'), (2, 'nope')",
            "column doc, row 0: value {\"a\": 1 is not valid JSON text",
        ),
        (
            "INSERT INTO dest (id, wait) VALUES (1, INTERVAL '1 nanosecond')",
            "column wait, row 0",
        ),
    ];
    for (sql, expected) in cases {
        let err = f.run(sql).await.expect_err(sql);
        let text = error_text(&err);
        assert!(
            text.contains(expected) && text.contains("demo.tests.dest"),
            "{sql}\n{text}"
        );
    }
    assert_eq!(f.visible_rows(), 0);
    assert_eq!(f.server.stats().commits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_array_elements_fail_unless_the_table_drops_them() {
    let sql = "INSERT INTO dest (id, tags, s) VALUES \
               (1, make_array('a', NULL, 'b'), named_struct('a', 1, 'b', 'x', 'inner', named_struct('xs', make_array(NULL, 5))))";
    let f = fixture("").await;
    let err = f.run(sql).await.expect_err("NULL element");
    let text = error_text(&err);
    assert!(
        text.contains("column s.inner.xs, row 0: value [, 5] has a NULL element at index 0"),
        "{text}"
    );
    assert_eq!(f.visible_rows(), 0);

    let f = fixture("'bigquery.array_null_elements' 'drop'").await;
    assert_eq!(f.run(sql).await.expect("insert"), 1);
    let text = pretty_format_batches(&f.committed("id").await)
        .expect("format")
        .to_string();
    assert!(
        text.contains("[a, b]") && text.contains("{a: 1, b: x, inner: {xs: [5]}}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_named_like_a_nested_message_loads() {
    // The STRUCT column `s` would get the nested message `s_0`, which is also a column.
    let path = std::env::temp_dir().join(format!("dfbq-collision-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"[{"name": "s", "type": "STRUCT", "fields": [{"name": "x", "type": "INT64"}]},
            {"name": "s_0", "type": "INT64"}]"#,
    )
    .expect("schema file");
    let f = Fixture::new(path.to_str().expect("path"), "").await;
    let count = f
        .run("INSERT INTO dest VALUES (named_struct('x', 1), 10), (named_struct('x', 2), 20)")
        .await
        .unwrap_or_else(|e| panic!("insert: {}", error_text(&e)));
    assert_eq!(count, 2);
    let text = pretty_format_batches(&f.committed("s_0").await)
        .expect("format")
        .to_string();
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in ["| {x: 1} | 10 |", "| {x: 2} | 20 |"] {
        assert!(squash(&text).contains(line), "{line}\nnot in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picosecond_timestamps_keep_every_nanosecond() {
    let path = std::env::temp_dir().join(format!("dfbq-picos-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"[{"name": "id", "type": "INT64"}, {"name": "ts", "type": "TIMESTAMP", "timestampPrecision": "12"}]"#,
    )
    .expect("schema file");
    let f = Fixture::new(path.to_str().expect("path"), "").await;
    let count = f
        .run(
            "INSERT INTO dest VALUES (1, TIMESTAMP '2024-05-06 07:08:09.123456789'), \
             (2, TIMESTAMP '1999-12-31 23:59:59.000000001'), (3, NULL)",
        )
        .await
        .unwrap_or_else(|e| panic!("insert: {}", error_text(&e)));
    assert_eq!(count, 3);
    let text = pretty_format_batches(&f.committed("id").await)
        .expect("format")
        .to_string();
    for line in [
        "| 1  | 2024-05-06T07:08:09.123456789Z |",
        "| 2  | 1999-12-31T23:59:59.000000001Z |",
        "| 3  |                                |",
    ] {
        assert!(text.contains(line), "{line}\nnot in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_values_take_the_column_default_when_asked() {
    let path = std::env::temp_dir().join(format!("dfbq-defaults-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"[{"name": "id", "type": "INT64", "mode": "REQUIRED"},
            {"name": "status", "type": "STRING", "mode": "REQUIRED", "defaultValueExpression": "'open'"},
            {"name": "score", "type": "INT64", "defaultValueExpression": "5"}]"#,
    )
    .expect("schema file");
    let schema = path.to_str().expect("path");
    let f = Fixture::new(schema, "'bigquery.missing_values' 'default'").await;
    let count = f
        .run("INSERT INTO dest (id) VALUES (1)")
        .await
        .unwrap_or_else(|e| panic!("insert: {}", error_text(&e)));
    assert_eq!(count, 1);
    f.run("INSERT INTO dest VALUES (2, 'closed', NULL), (3, NULL, 9)")
        .await
        .unwrap_or_else(|e| panic!("insert: {}", error_text(&e)));
    let text = pretty_format_batches(&f.committed("id").await)
        .expect("format")
        .to_string();
    for line in [
        "| 1  | open   | 5     |",
        "| 2  | closed | 5     |",
        "| 3  | open   | 9     |",
    ] {
        assert!(text.contains(line), "{line}\nnot in\n{text}");
    }

    // By default NULL is NULL: the REQUIRED column refuses it, naming it, and nothing lands.
    let g = Fixture::new(schema, "").await;
    let err = g
        .run("INSERT INTO dest (id) VALUES (1)")
        .await
        .expect_err("NULL in REQUIRED");
    assert!(
        error_text(&err).contains("column status, row 0: NULL in a REQUIRED column"),
        "{}",
        error_text(&err)
    );
    assert_eq!(g.visible_rows(), 0);
}
