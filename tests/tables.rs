//! Tables over the v2 REST API, against the embedded server AND bqemulator: created from
//! declared columns, checked against existing ones, reached through a catalog, overwritten
//! atomically. `scripts/test.sh` starts bqemulator (`BQEMULATOR_GRPC`, `BQEMULATOR_REST`);
//! with `CI` or `DFBQ_REQUIRE_CONFORMANCE` set its half cannot be skipped.

#![cfg(feature = "server")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::{
    BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, register_bigquery_catalog, schema,
};
use serde_json::{Value, json};

use common::bqemulator::{self, PROJECT};
use common::error_text;

/// Where a scenario runs.
enum Target {
    Embedded(EmbeddedServer),
    Emulator { grpc: String, rest: String },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Embedded(_) => "embedded server",
            Target::Emulator { .. } => "bqemulator",
        }
    }

    fn rest(&self) -> String {
        match self {
            Target::Embedded(server) => server.rest_endpoint(),
            Target::Emulator { rest, .. } => rest.clone(),
        }
    }

    fn options(&self) -> BigQueryOptions {
        let grpc = match self {
            Target::Embedded(server) => server.endpoint(),
            Target::Emulator { grpc, .. } => grpc.clone(),
        };
        let mut options = BigQueryOptions::default()
            .with_endpoint(grpc)
            .with_rest_endpoint(self.rest())
            .with_project(PROJECT);
        if matches!(self, Target::Emulator { .. }) {
            // bqemulator decodes only the text forms of NUMERIC, DATETIME and TIME.
            options.set("bigquery.wire_encoding", "text").expect("option");
        }
        options
    }

    /// A fresh dataset for one scenario.
    fn dataset(&self, scenario: &str) -> String {
        let dataset = format!("tables_{}_{scenario}", std::process::id());
        match self {
            Target::Embedded(server) => server.create_dataset(PROJECT, &dataset),
            Target::Emulator { rest, .. } => {
                let created = ureq::post(&format!("{rest}/bigquery/v2/projects/{PROJECT}/datasets"))
                    .send_json(json!({"datasetReference": {"projectId": PROJECT, "datasetId": dataset}}));
                assert!(created.is_ok(), "create dataset: {created:?}");
            }
        }
        dataset
    }

    /// tables.get's JSON, or `None` on 404.
    fn table_json(&self, table: &TableRef) -> Option<Value> {
        let url = format!(
            "{}/bigquery/v2/projects/{}/datasets/{}/tables/{}",
            self.rest(),
            table.project,
            table.dataset,
            table.table
        );
        match ureq::get(&url).call() {
            Ok(mut answer) => Some(answer.body_mut().read_json().expect("table JSON")),
            Err(ureq::Error::StatusCode(404)) => None,
            Err(e) => panic!("tables.get {table}: {e}"),
        }
    }

    /// Table ids of a dataset, through tables.list.
    fn table_ids(&self, dataset: &str) -> Vec<String> {
        let url = format!(
            "{}/bigquery/v2/projects/{PROJECT}/datasets/{dataset}/tables",
            self.rest()
        );
        let mut answer = ureq::get(&url).call().expect("tables.list");
        let body: Value = answer.body_mut().read_json().expect("list JSON");
        let mut ids: Vec<String> = body["tables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["tableReference"]["tableId"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids
    }

    /// Checks that `dataset` holds `t` and nothing else (no staging table left behind).
    fn assert_no_staging_table(&self, dataset: &str) {
        assert_eq!(
            self.table_ids(dataset),
            vec!["t".to_string()],
            "{}: no staging table",
            self.name()
        );
    }

    /// The visible `id` column (INT64), sorted.
    fn ids(&self, table: &TableRef) -> Vec<i64> {
        let mut ids: Vec<i64> = match self {
            Target::Embedded(server) => server
                .rows(table)
                .expect("table exists")
                .iter()
                .flat_map(|b| {
                    let column = b.column_by_name("id").expect("id column");
                    column.as_primitive::<Int64Type>().values().to_vec()
                })
                .collect(),
            Target::Emulator { rest, .. } => {
                bqemulator::query(rest, &format!("SELECT id FROM `{}`.`{}`", table.dataset, table.table))
                    .iter()
                    .map(|row| row[0].as_str().and_then(|s| s.parse().ok()).expect("id"))
                    .collect()
            }
        };
        ids.sort_unstable();
        ids
    }

    /// A session with the factory registered.
    fn session(&self) -> SessionContext {
        let ctx = SessionContext::new();
        register_bigquery(&ctx, self.options());
        ctx
    }
}

/// The embedded server, and bqemulator when it runs (required in CI).
async fn targets() -> Vec<Target> {
    let mut targets = vec![Target::Embedded(EmbeddedServer::start().await.expect("server"))];
    if let Some((grpc, rest)) = bqemulator::emulator() {
        targets.push(Target::Emulator { grpc, rest });
    }
    targets
}

async fn run(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<u64> {
    common::run(ctx, sql).await
}

fn table(dataset: &str, name: &str) -> TableRef {
    TableRef::new(PROJECT, dataset, name).expect("table name")
}

/// Columns of (nearly) every type, in SQL, and the BigQuery schema they must create.
/// bqemulator has no BIGNUMERIC tables, so its list leaves that column out, and its
/// tables.get answers leave out precision and scale (its `_field_to_rest` writes name, type,
/// mode, description, fields and rangeElementType only).
fn declared_columns(embedded: bool) -> (String, Value) {
    let mut sql = vec![
        "id BIGINT NOT NULL",
        "small SMALLINT",
        "f DOUBLE",
        "r REAL",
        "ok BOOLEAN NOT NULL",
        "s VARCHAR",
        "raw BYTEA",
        "d DATE",
        "dt TIMESTAMP",
        "ts TIMESTAMP WITH TIME ZONE",
        "t TIME",
        "price DECIMAL(10, 2)",
        "iv INTERVAL",
        "tags VARCHAR[]",
        "st STRUCT<x BIGINT, y VARCHAR>",
    ];
    let mut fields = vec![
        json!({"name": "id", "type": "INTEGER", "mode": "REQUIRED"}),
        json!({"name": "small", "type": "INTEGER", "mode": "NULLABLE"}),
        json!({"name": "f", "type": "FLOAT", "mode": "NULLABLE"}),
        json!({"name": "r", "type": "FLOAT", "mode": "NULLABLE"}),
        json!({"name": "ok", "type": "BOOLEAN", "mode": "REQUIRED"}),
        json!({"name": "s", "type": "STRING", "mode": "NULLABLE"}),
        json!({"name": "raw", "type": "BYTES", "mode": "NULLABLE"}),
        json!({"name": "d", "type": "DATE", "mode": "NULLABLE"}),
        json!({"name": "dt", "type": "DATETIME", "mode": "NULLABLE"}),
        json!({"name": "ts", "type": "TIMESTAMP", "mode": "NULLABLE"}),
        json!({"name": "t", "type": "TIME", "mode": "NULLABLE"}),
        if embedded {
            json!({"name": "price", "type": "NUMERIC", "mode": "NULLABLE", "precision": "10", "scale": "2"})
        } else {
            json!({"name": "price", "type": "NUMERIC", "mode": "NULLABLE"})
        },
        json!({"name": "iv", "type": "INTERVAL", "mode": "NULLABLE"}),
        json!({"name": "tags", "type": "STRING", "mode": "REPEATED"}),
        json!({"name": "st", "type": "RECORD", "mode": "NULLABLE", "fields": [
            {"name": "x", "type": "INTEGER", "mode": "NULLABLE"},
            {"name": "y", "type": "STRING", "mode": "NULLABLE"},
        ]}),
    ];
    if embedded {
        sql.push("big DECIMAL(40, 5)");
        fields.push(json!({"name": "big", "type": "BIGNUMERIC", "mode": "NULLABLE", "precision": "40", "scale": "5"}));
    }
    (sql.join(", "), json!({ "fields": fields }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_is_created_from_declared_columns_of_every_type() {
    for target in targets().await {
        let embedded = matches!(target, Target::Embedded(_));
        let dataset = target.dataset("types");
        let dest = table(&dataset, "typed");
        let (columns, expected) = declared_columns(embedded);
        let ctx = target.session();
        // DataFusion gives `TIMESTAMP WITH TIME ZONE` the session's zone; with none set it
        // would be zoneless (DATETIME).
        run(&ctx, "SET datafusion.execution.time_zone = 'UTC'")
            .await
            .expect("time zone");
        run(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE typed ({columns}) STORED AS BIGQUERY LOCATION '{dest}' \
                 OPTIONS ('bigquery.create' 'if_needed', 'bigquery.description' 'every type', \
                 'bigquery.labels' 'suite=tables')"
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: create: {}", target.name(), error_text(&e)));
        let answer = target.table_json(&dest).expect("the table exists");
        let created = schema::parse_json_schema(&answer["schema"].to_string()).expect("schema JSON");
        let wanted = schema::parse_json_schema(&expected.to_string()).expect("expected JSON");
        assert_eq!(created, wanted, "{}: {}", target.name(), answer["schema"]);
        if embedded {
            assert_eq!(answer["schema"], expected, "the REST JSON itself");
        }
        assert_eq!(answer["description"], "every type", "{}", target.name());
        assert_eq!(answer["labels"]["suite"], "tables", "{}", target.name());
        // bqemulator's Storage Write side cannot commit rows of a table with a STRUCT column
        // (DuckDB: "Type STRUCT does not match with STRUCT(x BIGINT, y VARCHAR)"); the other
        // scenarios load tables it created.
        if embedded {
            let count = run(
                &ctx,
                "INSERT INTO typed (id, ok, s, tags, st) VALUES (7, true, 'seven', ['a', 'b'], named_struct('x', 1, 'y', 'one'))",
            )
            .await
            .unwrap_or_else(|e| panic!("{}: insert: {}", target.name(), error_text(&e)));
            assert_eq!(count, 1, "{}", target.name());
            assert_eq!(target.ids(&dest), vec![7], "{}", target.name());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_if_needed_checks_an_existing_table() {
    for target in targets().await {
        let dataset = target.dataset("existing");
        let dest = table(&dataset, "t");
        let ctx = target.session();
        let create = |name: &str, columns: &str| {
            format!(
                "CREATE EXTERNAL TABLE {name} ({columns}) STORED AS BIGQUERY LOCATION '{dest}' \
                 OPTIONS ('bigquery.create' 'if_needed')"
            )
        };
        run(&ctx, &create("first", "id BIGINT NOT NULL, note VARCHAR"))
            .await
            .unwrap_or_else(|e| panic!("{}: {}", target.name(), error_text(&e)));
        run(&ctx, "INSERT INTO first VALUES (1, 'a')").await.expect("insert");
        // The same columns again: the table is used as it is, rows and all.
        run(&ctx, &create("again", "id BIGINT NOT NULL, note VARCHAR"))
            .await
            .unwrap_or_else(|e| panic!("{}: {}", target.name(), error_text(&e)));
        run(&ctx, "INSERT INTO again VALUES (2, 'b')").await.expect("insert");
        assert_eq!(target.ids(&dest), vec![1, 2], "{}", target.name());
        // Other columns: refused, naming the column.
        let err = run(&ctx, &create("wrong", "id BIGINT NOT NULL, note DOUBLE"))
            .await
            .expect_err("a mismatching declaration fails");
        let text = error_text(&err);
        assert!(
            text.contains(&format!(
                "table {dest}, column note: declared FLOAT64, but the table's column is STRING"
            )),
            "{}: {text}",
            target.name()
        );
        let err = run(&ctx, &create("loose", "id BIGINT, note VARCHAR"))
            .await
            .expect_err("a mode mismatch fails");
        assert!(
            error_text(&err).contains("column id: declared NULLABLE"),
            "{}",
            error_text(&err)
        );
        // Without 'if_needed' a missing table is not created.
        let missing = table(&dataset, "absent");
        let err = run(
            &ctx,
            &format!("CREATE EXTERNAL TABLE absent (id BIGINT) STORED AS BIGQUERY LOCATION '{missing}'"),
        )
        .await
        .expect_err("never creates");
        assert!(error_text(&err).contains("not found"), "{}", error_text(&err));
        assert!(target.table_json(&missing).is_none(), "{}", target.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_inserts_without_create() {
    for target in targets().await {
        let dataset = target.dataset("catalog");
        let dest = table(&dataset, "sales");
        let ctx = target.session();
        run(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE setup (id BIGINT NOT NULL, amount DOUBLE) STORED AS BIGQUERY \
                 LOCATION '{dest}' OPTIONS ('bigquery.create' 'if_needed')"
            ),
        )
        .await
        .expect("create");
        let session = SessionContext::new();
        register_bigquery_catalog(&session, "bq", PROJECT, target.options())
            .await
            .unwrap_or_else(|e| panic!("{}: catalog: {e}", target.name()));
        let count = run(
            &session,
            &format!("INSERT INTO bq.{dataset}.sales SELECT value AS id, value * 1.5 AS amount FROM range(100)"),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {}", target.name(), error_text(&e)));
        assert_eq!(count, 100);
        assert_eq!(target.ids(&dest), (0..100).collect::<Vec<i64>>(), "{}", target.name());
        // DataFrame::write_table reaches the same table.
        let frame = session.sql("SELECT 100 AS id, 0.5 AS amount").await.expect("frame");
        frame
            .write_table(
                &format!("bq.{dataset}.sales"),
                datafusion::dataframe::DataFrameWriteOptions::new(),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: write_table: {}", target.name(), error_text(&e)));
        assert_eq!(target.ids(&dest).len(), 101, "{}", target.name());
        // SHOW TABLES lists the dataset's tables.
        let listing =
            SessionContext::new_with_config(datafusion::prelude::SessionConfig::new().with_information_schema(true));
        register_bigquery_catalog(&listing, "bq", PROJECT, target.options())
            .await
            .expect("catalog");
        let shown = listing
            .sql(&format!(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'bq' AND table_schema = '{dataset}'"
            ))
            .await
            .expect("query")
            .collect()
            .await
            .expect("collect");
        let names: Vec<String> = shown
            .iter()
            .flat_map(|b| {
                let column = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
                column
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(names, vec!["sales".to_string()], "{}", target.name());
        // An unknown table is named.
        let err = run(&session, &format!("INSERT INTO bq.{dataset}.nope VALUES (1, 1.0)"))
            .await
            .expect_err("unknown table");
        assert!(error_text(&err).contains("nope"), "{}", error_text(&err));
    }
}

/// Creates `dataset.t` (partitioned by day on `day`, clustered by `id`, described,
/// labelled) holding ids 0..n through the factory.
async fn seeded_table(target: &Target, dataset: &str, n: usize) -> (TableRef, SessionContext) {
    let dest = table(dataset, "t");
    let ctx = target.session();
    run(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE dest (id BIGINT NOT NULL, note VARCHAR, day DATE) STORED AS BIGQUERY \
             LOCATION '{dest}' OPTIONS ('bigquery.create' 'if_needed', 'bigquery.description' 'kept', \
             'bigquery.labels' 'owner=sales', 'bigquery.time_partitioning' 'DAY', \
             'bigquery.partition_field' 'day', 'bigquery.clustering' 'id')"
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: create: {}", target.name(), error_text(&e)));
    run(
        &ctx,
        &format!(
            "INSERT INTO dest SELECT value AS id, concat('old-', value) AS note, DATE '2026-01-01' AS day FROM range({n})"
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: seed: {}", target.name(), error_text(&e)));
    (dest, ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_replaces_the_rows_and_keeps_the_metadata() {
    for target in targets().await {
        let dataset = target.dataset("overwrite");
        let (dest, ctx) = seeded_table(&target, &dataset, 50).await;
        let before = target.table_json(&dest).expect("table");
        let count = run(
            &ctx,
            "INSERT OVERWRITE dest SELECT value + 1000 AS id, 'new' AS note, DATE '2026-02-01' AS day FROM range(30)",
        )
        .await
        .unwrap_or_else(|e| panic!("{}: overwrite: {}", target.name(), error_text(&e)));
        assert_eq!(count, 30, "{}", target.name());
        assert_eq!(
            target.ids(&dest),
            (1000..1030).collect::<Vec<i64>>(),
            "{}",
            target.name()
        );
        let after = target.table_json(&dest).expect("table");
        for key in ["schema", "description", "labels", "timePartitioning", "clustering"] {
            assert_eq!(after[key], before[key], "{}: {key} is kept", target.name());
        }
        assert!(
            after.get("expirationTime").is_none_or(Value::is_null),
            "{}",
            target.name()
        );
        target.assert_no_staging_table(&dataset);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_overwrite_leaves_the_old_rows_and_no_staging_table() {
    for target in targets().await {
        let dataset = target.dataset("failing");
        let (dest, ctx) = seeded_table(&target, &dataset, 20).await;
        let err = run(
            &ctx,
            "INSERT OVERWRITE dest SELECT CASE WHEN value = 7 THEN NULL ELSE value END AS id, 'new' AS note, \
             DATE '2026-02-01' AS day FROM range(10)",
        )
        .await
        .expect_err("a NULL in a REQUIRED column fails");
        let text = error_text(&err);
        assert!(
            text.contains("column id") && text.contains("NULL in a REQUIRED column"),
            "{text}"
        );
        assert_eq!(
            target.ids(&dest),
            (0..20).collect::<Vec<i64>>(),
            "{}: old rows",
            target.name()
        );
        target.assert_no_staging_table(&dataset);
        // An overwrite needs an existing table; one deleted since it was registered is named.
        let gone = table(&dataset, "gone");
        run(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE gone (id BIGINT NOT NULL) STORED AS BIGQUERY LOCATION '{gone}' \
                 OPTIONS ('bigquery.create' 'if_needed')"
            ),
        )
        .await
        .expect("create");
        let deleted = ureq::delete(&format!(
            "{}/bigquery/v2/projects/{PROJECT}/datasets/{dataset}/tables/gone",
            target.rest()
        ))
        .call();
        assert!(deleted.is_ok(), "delete: {deleted:?}");
        let err = run(&ctx, "INSERT OVERWRITE gone VALUES (1)")
            .await
            .expect_err("no table to overwrite");
        assert!(
            error_text(&err).contains(&format!("table {gone} not found")),
            "{}: {}",
            target.name(),
            error_text(&err)
        );
        target.assert_no_staging_table(&dataset);
        let err = run(&ctx, "REPLACE INTO dest VALUES (1, 'x', DATE '2026-01-01')")
            .await
            .expect_err("REPLACE INTO is refused");
        assert!(error_text(&err).contains("REPLACE INTO"), "{}", error_text(&err));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_copy_leaves_the_old_rows_and_no_staging_table() {
    use datafusion_bigquery::rpc::RestCall;
    use datafusion_bigquery::server::RestFault;
    let target = Target::Embedded(EmbeddedServer::start().await.expect("server"));
    let Target::Embedded(server) = &target else {
        unreachable!()
    };
    let dataset = target.dataset("copy_fails");
    let (dest, ctx) = seeded_table(&target, &dataset, 20).await;
    server.inject_rest_fault(
        RestCall::JobsInsert,
        1,
        RestFault::FailJob {
            reason: "backendError".into(),
        },
    );
    let err = run(
        &ctx,
        "INSERT OVERWRITE dest SELECT value AS id, 'new' AS note, DATE '2026-02-01' AS day FROM range(5)",
    )
    .await
    .expect_err("the copy job fails");
    assert!(error_text(&err).contains("backendError"), "{}", error_text(&err));
    assert_eq!(target.ids(&dest), (0..20).collect::<Vec<i64>>(), "old rows");
    target.assert_no_staging_table(&dataset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_sees_an_empty_or_mixed_table_during_an_overwrite() {
    let server = Arc::new(EmbeddedServer::start().await.expect("server"));
    let dataset = format!("tables_{}_reader", std::process::id());
    server.create_dataset(PROJECT, &dataset);
    let dest = table(&dataset, "t");
    server.create_table(
        &dest,
        schema::parse_inline_schema("id:INT64:REQUIRED,gen:INT64:REQUIRED").expect("schema"),
    );
    let ctx = SessionContext::new();
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_rest_endpoint(server.rest_endpoint())
        .with_streams(4);
    register_bigquery(&ctx, options);
    run(
        &ctx,
        &format!("CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{dest}'"),
    )
    .await
    .expect("create");
    const ROWS: i64 = 20_000;
    run(
        &ctx,
        &format!("INSERT INTO dest SELECT value AS id, 0 AS gen FROM range({ROWS})"),
    )
    .await
    .expect("seed");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (server, dest, done) = (server.clone(), dest.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) {
                let batches = server.rows(&dest).expect("table");
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                let mut generations = std::collections::BTreeSet::new();
                for b in &batches {
                    let column = b.column_by_name("gen").expect("gen");
                    generations.extend(column.as_primitive::<Int64Type>().values().iter().copied());
                }
                assert_eq!(
                    rows as i64, ROWS,
                    "a read saw {rows} rows (generations {generations:?})"
                );
                assert_eq!(generations.len(), 1, "a read saw a mixed table: {generations:?}");
                seen.extend(generations);
                reads += 1;
            }
            (seen, reads)
        })
    };
    for generation in 1..=3 {
        let count = run(
            &ctx,
            &format!("INSERT OVERWRITE dest SELECT value AS id, {generation} AS gen FROM range({ROWS})"),
        )
        .await
        .unwrap_or_else(|e| panic!("overwrite {generation}: {}", error_text(&e)));
        assert_eq!(count as i64, ROWS);
    }
    done.store(true, Ordering::Release);
    let (seen, reads) = reader.join().expect("the reader's checks held");
    assert!(reads > 10, "the reader read {reads} times");
    assert!(seen.len() >= 2, "the reader saw the overwrites happen: {seen:?}");
    assert_eq!(
        server
            .rows(&dest)
            .expect("table")
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>() as i64,
        ROWS
    );
    let json = server.table_json(&dest).expect("table");
    assert_eq!(json["numRows"], ROWS.to_string());
}
