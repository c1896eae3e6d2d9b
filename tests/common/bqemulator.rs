//! The bqemulator side of the conformance suites: finding the emulator, creating tables and
//! reading rows back through its REST API.

use datafusion_bigquery::TableRef;
use serde_json::{Value, json};

/// Project of every conformance table.
pub const PROJECT: &str = "dfbq";

/// Where the emulator listens (gRPC, REST), or `None` (after deciding whether that is allowed):
/// with `DFBQ_REQUIRE_CONFORMANCE` or `CI` set, a missing emulator fails instead of skipping.
pub fn emulator() -> Option<(String, String)> {
    emulator_at("BQEMULATOR_GRPC", "BQEMULATOR_REST", "bqemulator")
}

/// [`emulator`] for the one whose endpoints are in the variables `grpc` and `rest`.
pub fn emulator_at(grpc: &str, rest: &str, what: &str) -> Option<(String, String)> {
    match (std::env::var(grpc), std::env::var(rest)) {
        (Ok(grpc), Ok(rest)) => Some((grpc, rest)),
        _ => {
            super::missing_server(what);
            None
        }
    }
}

/// Creates dataset `{prefix}_{pid}_{name}` and in it table `t` with `fields` (BigQuery JSON
/// schema fields) through REST.
pub fn create_table(rest: &str, prefix: &str, name: &str, fields: Value) -> TableRef {
    let dataset = format!("{prefix}_{}_{name}", std::process::id());
    let created = ureq::post(&format!("{rest}/bigquery/v2/projects/{PROJECT}/datasets"))
        .send_json(json!({"datasetReference": {"projectId": PROJECT, "datasetId": dataset}}));
    assert!(created.is_ok(), "create dataset: {created:?}");
    let created = ureq::post(&format!(
        "{rest}/bigquery/v2/projects/{PROJECT}/datasets/{dataset}/tables"
    ))
    .send_json(json!({
        "tableReference": {"projectId": PROJECT, "datasetId": dataset, "tableId": "t"},
        "schema": {"fields": fields}
    }));
    assert!(created.is_ok(), "create table: {created:?}");
    TableRef::new(PROJECT, &dataset, "t").expect("table name")
}

/// Runs a query through REST and returns all its rows (`rows[i].f[j].v`), following pages.
/// A query error (which bqemulator reports with HTTP 200) fails the test.
pub fn query(rest: &str, sql: &str) -> Vec<Vec<Value>> {
    let mut response = ureq::post(&format!("{rest}/bigquery/v2/projects/{PROJECT}/queries"))
        .send_json(json!({"query": sql, "useLegacySql": false}))
        .expect("query request");
    let mut body: Value = response.body_mut().read_json().expect("query response");
    let mut rows = Vec::new();
    loop {
        assert!(
            body.get("errors")
                .is_none_or(|e| e.as_array().is_none_or(Vec::is_empty)),
            "query failed: {body}"
        );
        for row in body["rows"].as_array().into_iter().flatten() {
            rows.push(
                row["f"]
                    .as_array()
                    .expect("cells")
                    .iter()
                    .map(|c| c["v"].clone())
                    .collect(),
            );
        }
        let Some(token) = body.get("pageToken").and_then(Value::as_str) else {
            break;
        };
        let job = body["jobReference"]["jobId"].as_str().expect("job id");
        let mut next = ureq::get(&format!(
            "{rest}/bigquery/v2/projects/{PROJECT}/queries/{job}?pageToken={token}"
        ))
        .call()
        .expect("next page");
        body = next.body_mut().read_json().expect("page");
    }
    rows
}
