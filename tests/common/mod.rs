//! Helpers shared by the integration tests: an embedded server with one table and a
//! DataFusion session that knows it.

#![allow(dead_code)]

pub mod bqemulator;
pub mod proxy;

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use datafusion_bigquery::server::ServerBuilder;
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, TableRef, register_bigquery, schema};

/// A deterministic pseudo-random sequence (a 64-bit LCG): the same seed, the same draws.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next draw.
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A draw in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A 62-bit draw (two draws), for values that must reach across wide ranges.
    pub fn wide(&mut self) -> u64 {
        (self.next() << 31) ^ self.next()
    }

    /// A draw in `lo..=hi`, over the whole of a wide range.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.abs_diff(lo).saturating_add(1);
        lo.wrapping_add((self.wide() % span) as i64)
    }
}

/// A test server that is not running: with `DFBQ_REQUIRE_CONFORMANCE` or `CI` set that fails
/// the test, otherwise the skip is printed past the harness's capture so it is seen.
pub fn missing_server(what: &str) {
    let required = std::env::var_os("DFBQ_REQUIRE_CONFORMANCE").is_some() || std::env::var_os("CI").is_some();
    assert!(
        !required,
        "{what} is required here: run the tests through scripts/test.sh"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what} is not running, the test checks nothing (scripts/test.sh starts it)"
    );
}

/// A running server, a table in it, and a session with the table registered as `dest`.
pub struct Fixture {
    pub server: EmbeddedServer,
    pub table: TableRef,
    pub ctx: SessionContext,
}

impl Fixture {
    /// Starts a server, creates `demo.tests.dest` with `schema_spec`, and registers it as
    /// `dest` with `options` (`'bigquery.key' 'value', ...`, may be empty).
    pub async fn new(schema_spec: &str, options: &str) -> Fixture {
        Self::with_server(EmbeddedServer::builder(), schema_spec, options).await
    }

    /// [`Fixture::new`] on a server with the builder's settings (behaviours of the real service).
    pub async fn with_server(builder: ServerBuilder, schema_spec: &str, options: &str) -> Fixture {
        let server = builder.start().await.expect("server starts");
        let table: TableRef = "demo.tests.dest".parse().expect("table name");
        server.create_table(&table, schema::parse_schema_arg(schema_spec).expect("schema"));
        let ctx = SessionContext::new();
        let defaults = BigQueryOptions::default()
            .with_endpoint(server.endpoint())
            .with_rest_endpoint(server.rest_endpoint());
        register_bigquery(&ctx, defaults);
        let options = if options.is_empty() {
            String::new()
        } else {
            format!(" OPTIONS ({options})")
        };
        ctx.sql(&format!(
            "CREATE EXTERNAL TABLE dest STORED AS BIGQUERY LOCATION '{table}'{options}"
        ))
        .await
        .expect("create external table");
        Fixture { server, table, ctx }
    }

    /// Runs a statement to completion; returns the `count` of an INSERT.
    pub async fn run(&self, sql: &str) -> datafusion::error::Result<u64> {
        run(&self.ctx, sql).await
    }

    /// Visible rows of the destination.
    pub fn visible_rows(&self) -> usize {
        self.server.row_count(&self.table).expect("table exists")
    }

    /// The committed rows, as one batch (sorted by the first column when `sort`).
    pub async fn committed(&self, order_by: &str) -> Vec<RecordBatch> {
        let batches = self.server.rows(&self.table).expect("table exists");
        let ctx = SessionContext::new();
        let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| {
            std::sync::Arc::new(schema::to_arrow_schema(
                &schema::parse_inline_schema("x:INT64").expect("schema"),
            ))
        });
        let table = datafusion::datasource::MemTable::try_new(schema, vec![batches]).expect("mem table");
        ctx.register_table("committed", std::sync::Arc::new(table))
            .expect("register");
        ctx.sql(&format!("SELECT * FROM committed ORDER BY {order_by}"))
            .await
            .expect("query")
            .collect()
            .await
            .expect("collect")
    }
}

/// Runs a statement to completion; returns the `count` of an INSERT (0 otherwise).
pub async fn run(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<u64> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let count = batches
        .first()
        .filter(|b| b.num_columns() == 1 && b.schema().field(0).name() == "count")
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    Ok(count)
}

/// Committed ids (column 0, INT64) of `table` against 0..n: (lost, duplicated, foreign).
pub fn audit(server: &EmbeddedServer, table: &TableRef, n: u64) -> (u64, u64, u64) {
    use arrow::array::AsArray;
    let mut seen: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
    for batch in server.rows(table).expect("table") {
        for id in batch.column(0).as_primitive::<arrow::datatypes::Int64Type>().values() {
            *seen.entry(*id).or_default() += 1;
        }
    }
    let foreign = seen.keys().filter(|id| **id < 0 || **id as u64 >= n).count() as u64;
    let duplicated = seen.values().map(|c| c - 1).sum();
    let lost = n - seen.keys().filter(|id| **id >= 0 && (**id as u64) < n).count() as u64;
    (lost, duplicated, foreign)
}

/// A DataFusion error's full text, causes included.
pub fn error_text(err: &datafusion::error::DataFusionError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(" | ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
