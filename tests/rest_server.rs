//! The embedded server's v2 REST API over real HTTP: tables, datasets, copy jobs, expiration
//! and faults, and its store shared with the Storage Write side.

#![cfg(feature = "server")]

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use datafusion_bigquery::rpc::RestCall;
use datafusion_bigquery::server::{RestFault, Retention};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, Loader, TableRef, schema};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PROJECT: &str = "p";

/// A REST client of one embedded server.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn of(server: &EmbeddedServer) -> Self {
        Self {
            base: format!("{}/bigquery/v2/projects/{PROJECT}", server.rest_endpoint()),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request to `path` (under the project) and returns the status and JSON body
    /// (`Null` when empty).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("a JSON body")
        };
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn insert_table(&self, dataset: &str, table: Value) -> (StatusCode, Value) {
        self.call(Method::POST, &format!("/datasets/{dataset}/tables"), Some(table))
            .await
    }

    async fn copy(&self, job_id: &str, copy: Value) -> (StatusCode, Value) {
        let job = json!({
            "jobReference": {"projectId": PROJECT, "jobId": job_id},
            "configuration": {"copy": copy},
        });
        self.call(Method::POST, "/jobs", Some(job)).await
    }
}

/// A table body of `dataset.table` with `fields`.
fn table_body(dataset: &str, table: &str, fields: Value) -> Value {
    json!({
        "tableReference": {"projectId": PROJECT, "datasetId": dataset, "tableId": table},
        "schema": {"fields": fields},
    })
}

fn reference(dataset: &str, table: &str) -> Value {
    json!({"projectId": PROJECT, "datasetId": dataset, "tableId": table})
}

fn table(dataset: &str, table: &str) -> TableRef {
    TableRef::new(PROJECT, dataset, table).expect("a table name")
}

/// The `error.status` and `error.errors[0].reason` of an error body.
fn error_kind(body: &Value) -> (&str, &str) {
    (
        body["error"]["status"].as_str().unwrap_or_default(),
        body["error"]["errors"][0]["reason"].as_str().unwrap_or_default(),
    )
}

fn ms_from_now(delta: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    now + delta
}

/// Options for the embedded server that give up on a missing table at once (the client
/// waits for tables the Storage Write API does not see yet).
fn options(server: &EmbeddedServer) -> BigQueryOptions {
    let mut options = BigQueryOptions::default().with_endpoint(server.endpoint());
    options
        .set("bigquery.retry_not_found_timeout_ms", "100")
        .expect("a valid option");
    options
}

/// Loads rows `(id, name)` into a table over the Storage Write API.
async fn load(
    server: &EmbeddedServer,
    table: &TableRef,
    ids: &[i64],
    names: &[&str],
) -> datafusion_bigquery::Result<()> {
    let loader = Loader::connect(table.clone(), options(server)).await?;
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as _),
        ("name", Arc::new(StringArray::from(names.to_vec())) as _),
    ])
    .expect("a batch");
    loader.load_batches(vec![batch]).await.map(|_| ())
}

/// The visible rows of a table as one batch.
fn rows(server: &EmbeddedServer, table: &TableRef) -> RecordBatch {
    let batches = server.rows(table).expect("the table exists");
    let schema = batches.first().map(|b| b.schema()).expect("some rows");
    concat_batches(&schema, &batches).expect("one schema")
}

const ID_NAME: &str = r#"[{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}, {"name": "name", "type": "STRING"}]"#;

fn id_name() -> Value {
    serde_json::from_str(ID_NAME).expect("fields")
}

#[tokio::test]
async fn insert_and_get_round_trip_schema_and_metadata() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    let expiration = ms_from_now(3_600_000);
    let mut body = table_body(
        "d",
        "events",
        json!([
            {"name": "id", "type": "INT64", "mode": "REQUIRED"},
            {"name": "amount", "type": "NUMERIC", "precision": "10", "scale": "2"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"},
            {"name": "day", "type": "DATE"},
            {"name": "owner", "type": "RECORD", "fields": [
                {"name": "name", "type": "STRING", "description": "who"},
                {"name": "phones", "type": "RECORD", "mode": "REPEATED", "fields": [
                    {"name": "number", "type": "STRING", "mode": "REQUIRED"}
                ]}
            ]}
        ]),
    );
    body["description"] = json!("all the events");
    body["labels"] = json!({"team": "data", "env": "test"});
    body["expirationTime"] = json!(expiration.to_string());
    body["timePartitioning"] = json!({"type": "DAY", "field": "day"});
    body["clustering"] = json!({"fields": ["id"]});
    let (status, inserted) = api.insert_table("d", body).await;
    assert_eq!(status, StatusCode::OK, "{inserted}");
    let (status, got) = api.get("/datasets/d/tables/events").await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, inserted);
    assert_eq!(Some(&got), server.table_json(&table("d", "events")).as_ref());

    assert_eq!(got["kind"], "bigquery#table");
    assert_eq!(got["id"], "p:d.events");
    assert_eq!(got["tableReference"], reference("d", "events"));
    assert_eq!(got["type"], "TABLE");
    assert_eq!(got["numRows"], "0");
    assert_eq!(got["description"], "all the events");
    assert_eq!(got["labels"], json!({"env": "test", "team": "data"}));
    assert_eq!(got["expirationTime"], expiration.to_string());
    assert_eq!(got["timePartitioning"], json!({"type": "DAY", "field": "day"}));
    assert_eq!(got["clustering"], json!({"fields": ["id"]}));
    assert!(got.get("rangePartitioning").is_none(), "absent fields are omitted");
    assert!(got["etag"].as_str().is_some_and(|e| !e.is_empty()));
    let created: i64 = got["creationTime"].as_str().and_then(|t| t.parse().ok()).expect("ms");
    assert!((ms_from_now(-60_000)..=ms_from_now(0)).contains(&created), "{created}");

    let fields = &got["schema"]["fields"];
    assert_eq!(fields[0]["type"], "INTEGER");
    assert_eq!(fields[1]["precision"], "10");
    assert_eq!(fields[1]["scale"], "2");
    assert_eq!(fields[2]["mode"], "REPEATED");
    assert_eq!(fields[4]["type"], "RECORD");
    assert_eq!(fields[4]["fields"][0]["description"], "who");
    assert_eq!(fields[4]["fields"][1]["mode"], "REPEATED");
    assert_eq!(fields[4]["fields"][1]["fields"][0]["name"], "number");
    // What the Storage Write side sees is the same schema.
    let again = schema::parse_json_schema(&got["schema"].to_string()).expect("a schema");
    assert_eq!(schema::to_json_schema(&again), got["schema"]);
}

#[tokio::test]
async fn insert_refuses_duplicates_and_bad_schemas() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    let (status, _) = api.insert_table("d", table_body("d", "t", id_name())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.insert_table("d", table_body("d", "t", id_name())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_kind(&body), ("ALREADY_EXISTS", "duplicate"));
    assert_eq!(body["error"]["code"], 409);
    assert_eq!(body["error"]["message"], "Already Exists: Table p:d.t");

    let bad_type = table_body("d", "u", json!([{"name": "a", "type": "NOPE"}]));
    let no_schema = json!({"tableReference": reference("d", "v")});
    let twice = table_body(
        "d",
        "w",
        json!([{"name": "a", "type": "INT64"}, {"name": "a", "type": "INT64"}]),
    );
    for bad in [bad_type, no_schema, twice] {
        let (status, body) = api.insert_table("d", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
        assert_eq!(error_kind(&body), ("INVALID_ARGUMENT", "invalid"));
    }
    assert_eq!(server.table_names(PROJECT, "d"), ["t"]);
}

#[tokio::test]
async fn patch_replaces_labels_description_and_expiration() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    let mut body = table_body("d", "t", id_name());
    body["labels"] = json!({"a": "1", "b": "2"});
    body["description"] = json!("before");
    let (_, before) = api.insert_table("d", body).await;
    let expiration = ms_from_now(3_600_000).to_string();
    let patch = json!({
        "labels": {"a": "10", "b": null, "c": "3"},
        "description": "after",
        "expirationTime": expiration,
    });
    let (status, patched) = api.call(Method::PATCH, "/datasets/d/tables/t", Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["labels"], json!({"a": "10", "c": "3"}));
    assert_eq!(patched["description"], "after");
    assert_eq!(patched["expirationTime"], expiration);
    assert_eq!(patched["schema"], before["schema"], "fields not given stay");
    assert_ne!(patched["etag"], before["etag"]);

    let clear = json!({"expirationTime": null});
    let (status, cleared) = api.call(Method::PATCH, "/datasets/d/tables/t", Some(clear)).await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert!(cleared.get("expirationTime").is_none(), "{cleared}");
    assert_eq!(cleared["description"], "after");
    assert_ne!(cleared["etag"], patched["etag"]);

    let (status, body) = api
        .call(
            Method::PATCH,
            "/datasets/d/tables/nope",
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn delete_removes_the_table_for_rest_and_grpc() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    api.insert_table("d", table_body("d", "t", id_name())).await;
    let t = table("d", "t");
    load(&server, &t, &[1], &["one"])
        .await
        .expect("a load before the delete");
    let loader = Loader::connect(t.clone(), options(&server)).await.expect("connect");

    let (status, body) = api.call(Method::DELETE, "/datasets/d/tables/t", None).await;
    assert!(status == StatusCode::NO_CONTENT || status == StatusCode::OK, "{status}");
    assert_eq!(body, Value::Null);
    let (status, body) = api.get("/datasets/d/tables/t").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_kind(&body), ("NOT_FOUND", "notFound"));
    assert_eq!(body["error"]["message"], "Not found: Table p:d.t");
    let (status, _) = api.call(Method::DELETE, "/datasets/d/tables/t", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(server.rows(&t).is_none());

    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![2])) as _),
        ("name", Arc::new(StringArray::from(vec!["two"])) as _),
    ])
    .expect("a batch");
    let error = loader.load_batches(vec![batch]).await.expect_err("the table is gone");
    assert!(error.to_string().to_lowercase().contains("not found"), "{error}");
}

#[tokio::test]
async fn tables_list_pages_in_table_id_order() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    for id in ["e", "b", "d", "a", "c"] {
        let (status, _) = api.insert_table("d", table_body("d", id, id_name())).await;
        assert_eq!(status, StatusCode::OK);
    }
    api.insert_table("other", table_body("other", "z", id_name())).await;

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &token {
            Some(token) => format!("?maxResults=2&pageToken={token}"),
            None => "?maxResults=2".to_string(),
        };
        let (status, page) = api.get(&format!("/datasets/d/tables{query}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["kind"], "bigquery#tableList");
        assert_eq!(page["totalItems"], 5);
        let tables = page["tables"].as_array().expect("tables");
        assert!(tables.len() <= 2);
        for entry in tables {
            assert_eq!(entry["kind"], "bigquery#table");
            assert_eq!(entry["type"], "TABLE");
            let id = entry["tableReference"]["tableId"].as_str().expect("an id").to_string();
            assert_eq!(entry["id"], format!("p:d.{id}"));
            seen.push(id);
        }
        pages += 1;
        token = page["nextPageToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);
    assert_eq!(server.table_names(PROJECT, "d"), ["a", "b", "c", "d", "e"]);

    let (status, body) = api.get("/datasets/d/tables?maxResults=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn datasets_list_holds_created_datasets_and_those_with_tables() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    server.create_dataset(PROJECT, "empty");
    server.create_dataset("elsewhere", "hidden");
    server.create_table(
        &table("d2", "t"),
        schema::parse_inline_schema("id:INT64").expect("schema"),
    );
    api.insert_table("d1", table_body("d1", "t", id_name())).await;

    let (status, first) = api.get("/datasets?maxResults=2").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["kind"], "bigquery#datasetList");
    let ids = |page: &Value| -> Vec<String> {
        page["datasets"]
            .as_array()
            .expect("datasets")
            .iter()
            .map(|d| d["datasetReference"]["datasetId"].as_str().expect("an id").to_string())
            .collect()
    };
    assert_eq!(ids(&first), ["d1", "d2"]);
    assert_eq!(first["datasets"][0]["id"], "p:d1");
    assert_eq!(first["datasets"][0]["kind"], "bigquery#dataset");
    assert_eq!(first["datasets"][0]["datasetReference"]["projectId"], PROJECT);
    let token = first["nextPageToken"].as_str().expect("one more page");
    let (_, second) = api.get(&format!("/datasets?maxResults=2&pageToken={token}")).await;
    assert_eq!(ids(&second), ["empty"]);
    assert!(second.get("nextPageToken").is_none());
}

#[tokio::test]
async fn a_rest_table_is_written_over_grpc_and_copied_with_write_truncate() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    let (status, _) = api.insert_table("d", table_body("d", "source", id_name())).await;
    assert_eq!(status, StatusCode::OK);
    let (source, destination) = (table("d", "source"), table("d", "destination"));
    load(&server, &source, &[1, 2, 3], &["a", "b", "c"])
        .await
        .expect("a REST table is written over gRPC at once");
    // The destination's schema differs from the source's by a description only, so that
    // the same rows load into both.
    let mut fields = id_name();
    fields[1]["description"] = json!("the destination's");
    let mut body = table_body("d", "destination", fields);
    body["labels"] = json!({"keep": "me"});
    body["description"] = json!("survives");
    api.insert_table("d", body).await;
    load(&server, &destination, &[9, 8], &["old", "rows"])
        .await
        .expect("load");
    let (_, before) = api.get("/datasets/d/tables/destination").await;
    assert_eq!(before["numRows"], "2");

    let copy = json!({
        "sourceTable": reference("d", "source"),
        "destinationTable": reference("d", "destination"),
        "writeDisposition": "WRITE_TRUNCATE",
    });
    let (status, job) = api.copy("copy-1", copy.clone()).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["kind"], "bigquery#job");
    assert_eq!(job["id"], "p:US.copy-1");
    assert_eq!(job["jobReference"]["location"], "US");
    assert_eq!(job["status"]["state"], "DONE");
    assert!(job["status"].get("errorResult").is_none(), "{job}");
    assert_eq!(job["configuration"]["jobType"], "COPY");
    assert_eq!(job["configuration"]["copy"], copy);
    assert!(job["statistics"]["endTime"].as_str().is_some());

    assert_eq!(rows(&server, &destination), rows(&server, &source));
    assert_eq!(server.table_digest(&destination), server.table_digest(&source));
    let (_, after) = api.get("/datasets/d/tables/destination").await;
    assert_eq!(after["numRows"], "3");
    assert_eq!(after["labels"], json!({"keep": "me"}));
    assert_eq!(after["description"], "survives");
    assert_eq!(after["schema"], api.get("/datasets/d/tables/source").await.1["schema"]);
    assert_ne!(
        after["schema"], before["schema"],
        "WRITE_TRUNCATE takes the source's schema"
    );
    assert_ne!(after["etag"], before["etag"]);

    let (status, got) = api.get("/jobs/copy-1?location=US").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, job);
    let (status, body) = api.copy("copy-1", copy).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_kind(&body), ("ALREADY_EXISTS", "duplicate"));
    let (status, _) = api.get("/jobs/unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failed_copies_are_done_jobs_with_an_error_result() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    for id in ["source", "full"] {
        api.insert_table("d", table_body("d", id, id_name())).await;
    }
    api.insert_table(
        "d",
        table_body("d", "other_schema", json!([{"name": "x", "type": "STRING"}])),
    )
    .await;
    load(&server, &table("d", "source"), &[1, 2], &["a", "b"])
        .await
        .expect("load");
    load(&server, &table("d", "full"), &[7], &["seven"])
        .await
        .expect("load");
    let source = reference("d", "source");
    let cases = [
        (
            "empty",
            json!({"sourceTable": source, "destinationTable": reference("d", "full")}),
            "duplicate",
        ),
        (
            "schema",
            json!({"sourceTable": source, "destinationTable": reference("d", "other_schema"),
                   "writeDisposition": "WRITE_APPEND"}),
            "invalid",
        ),
        (
            "missing",
            json!({"sourceTable": reference("d", "nope"), "destinationTable": reference("d", "x")}),
            "notFound",
        ),
        (
            "never",
            json!({"sourceTable": source, "destinationTable": reference("d", "absent"),
                   "createDisposition": "CREATE_NEVER"}),
            "notFound",
        ),
        (
            "same",
            json!({"sourceTable": source, "destinationTable": source, "writeDisposition": "WRITE_TRUNCATE"}),
            "invalid",
        ),
    ];
    for (job_id, copy, reason) in cases {
        let (status, job) = api.copy(job_id, copy).await;
        assert_eq!(status, StatusCode::OK, "{job_id}: {job}");
        assert_eq!(job["status"]["state"], "DONE", "{job_id}");
        assert_eq!(job["status"]["errorResult"]["reason"], reason, "{job_id}: {job}");
        assert_eq!(job["status"]["errors"][0], job["status"]["errorResult"]);
    }
    assert_eq!(
        server.row_count(&table("d", "full")),
        Some(1),
        "WRITE_EMPTY copied nothing"
    );
    assert_eq!(server.row_count(&table("d", "other_schema")), Some(0));
    assert_eq!(server.table_json(&table("d", "absent")), None);
    assert_eq!(server.row_count(&table("d", "source")), Some(2));
}

#[tokio::test]
async fn copies_create_and_append() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    let mut body = table_body("d", "source", id_name());
    body["labels"] = json!({"not": "copied"});
    body["clustering"] = json!({"fields": ["id"]});
    body["rangePartitioning"] = json!({"field": "id", "range": {"start": "0", "end": "100", "interval": "10"}});
    api.insert_table("d", body).await;
    let source = table("d", "source");
    load(&server, &source, &[1, 2], &["a", "b"]).await.expect("load");

    // sourceTables with one table, into another dataset: created with the source's schema,
    // partitioning and clustering, not its labels.
    let copy = json!({"sourceTables": [reference("d", "source")], "destinationTable": reference("e", "copy")});
    let (_, job) = api.copy("create", copy).await;
    assert!(job["status"].get("errorResult").is_none(), "{job}");
    let created = server.table_json(&table("e", "copy")).expect("created");
    let (_, original) = api.get("/datasets/d/tables/source").await;
    assert_eq!(created["schema"], original["schema"]);
    assert_eq!(created["rangePartitioning"], original["rangePartitioning"]);
    assert_eq!(created["clustering"], json!({"fields": ["id"]}));
    assert!(created.get("labels").is_none(), "{created}");
    assert_eq!(created["numRows"], "2");

    let append = json!({"sourceTable": reference("d", "source"), "destinationTable": reference("e", "copy"),
                        "writeDisposition": "WRITE_APPEND"});
    let (_, job) = api.copy("append", append).await;
    assert!(job["status"].get("errorResult").is_none(), "{job}");
    assert_eq!(server.row_count(&table("e", "copy")), Some(4));

    let (status, body) = api
        .call(
            Method::POST,
            "/jobs",
            Some(json!({"configuration": {"query": {"query": "SELECT 1"}}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("only copy jobs")),
        "{body}"
    );
    let two = json!({"sourceTables": [reference("d", "source"), reference("e", "copy")],
                     "destinationTable": reference("e", "two")});
    let (status, _) = api.copy("two", two).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, job) = api
        .call(
            Method::POST,
            "/jobs",
            Some(
                json!({"configuration": {"copy": {"sourceTable": reference("d", "source"),
                                                     "destinationTable": reference("e", "generated")}}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let generated = job["jobReference"]["jobId"].as_str().expect("a generated id");
    let (status, _) = api.get(&format!("/jobs/{generated}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_table_is_gone_for_rest_and_grpc() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    let mut body = table_body("d", "soon", id_name());
    body["expirationTime"] = json!(ms_from_now(400).to_string());
    api.insert_table("d", body).await;
    api.insert_table("d", table_body("d", "past", id_name())).await;
    let (status, _) = api.get("/datasets/d/tables/soon").await;
    assert_eq!(status, StatusCode::OK);

    let past = ms_from_now(-1000).to_string();
    let patch = json!({ "expirationTime": past });
    let (status, patched) = api.call(Method::PATCH, "/datasets/d/tables/past", Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["expirationTime"], past);
    let (status, _) = api.get("/datasets/d/tables/past").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _) = api.get("/datasets/d/tables/soon").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(server.table_names(PROJECT, "d").is_empty());
    assert!(server.rows(&table("d", "soon")).is_none());
    let error = load(&server, &table("d", "soon"), &[1], &["a"])
        .await
        .expect_err("expired");
    assert!(error.to_string().to_lowercase().contains("not found"), "{error}");
    // Its name is free again.
    let (status, _) = api.insert_table("d", table_body("d", "soon", id_name())).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn discard_retention_counts_rows_from_the_digest() {
    let server = EmbeddedServer::builder()
        .retention(Retention::Discard)
        .start()
        .await
        .expect("server");
    let api = Api::of(&server);
    api.insert_table("d", table_body("d", "t", id_name())).await;
    load(&server, &table("d", "t"), &[1, 2, 3], &["a", "b", "c"])
        .await
        .expect("load");
    let (_, got) = api.get("/datasets/d/tables/t").await;
    assert_eq!(got["numRows"], "3");
    let copy = json!({"sourceTable": reference("d", "t"), "destinationTable": reference("d", "u")});
    api.copy("c", copy).await;
    assert_eq!(
        server.table_digest(&table("d", "u")),
        server.table_digest(&table("d", "t"))
    );
    assert_eq!(server.row_count(&table("d", "u")), Some(3));
}

#[tokio::test]
async fn fail_faults_answer_the_status_and_do_nothing() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    server.inject_rest_fault(RestCall::TablesInsert, 1, RestFault::Fail(503));
    server.inject_rest_fault(RestCall::TablesGet, 2, RestFault::Fail(429));
    let (status, body) = api.insert_table("d", table_body("d", "t", id_name())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_kind(&body), ("UNAVAILABLE", "backendError"));
    assert!(server.table_names(PROJECT, "d").is_empty(), "nothing was done");
    let (status, _) = api.insert_table("d", table_body("d", "t", id_name())).await;
    assert_eq!(status, StatusCode::OK, "the second call is served");

    let (first, _) = api.get("/datasets/d/tables/t").await;
    let (second, body) = api.get("/datasets/d/tables/t").await;
    let (third, _) = api.get("/datasets/d/tables/t").await;
    assert_eq!(
        (first, second, third),
        (StatusCode::OK, StatusCode::TOO_MANY_REQUESTS, StatusCode::OK)
    );
    assert_eq!(error_kind(&body), ("RESOURCE_EXHAUSTED", "rateLimitExceeded"));
    assert_eq!(server.rest_calls(RestCall::TablesGet), 3);
    assert_eq!(server.rest_calls(RestCall::TablesInsert), 2);
    assert_eq!(server.rest_calls(RestCall::JobsGet), 0);
    assert_eq!(server.stats().faults_injected, 2);
}

#[tokio::test]
async fn hang_faults_outlast_the_client_deadline() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    server.inject_rest_fault(RestCall::TablesList, 1, RestFault::Hang(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    let error = api
        .http
        .get(format!("{}/datasets/d/tables", api.base))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("the deadline fires first");
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let (status, _) = api.get("/datasets/d/tables").await;
    assert_eq!(status, StatusCode::OK, "the next call is answered at once");

    server.inject_rest_fault(RestCall::TablesGet, 1, RestFault::Hang(Duration::from_millis(200)));
    let started = std::time::Instant::now();
    let (status, _) = api.get("/datasets/d/tables/absent").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "answered after the delay");
    assert!(started.elapsed() >= Duration::from_millis(200));
    server.shutdown().await;
}

#[tokio::test]
async fn fail_job_faults_record_a_failed_job_and_copy_nothing() {
    let server = EmbeddedServer::start().await.expect("server");
    let api = Api::of(&server);
    api.insert_table("d", table_body("d", "source", id_name())).await;
    load(&server, &table("d", "source"), &[1], &["a"]).await.expect("load");
    let fault = RestFault::FailJob {
        reason: "backendError".into(),
    };
    server.inject_rest_fault(RestCall::JobsInsert, 1, fault.clone());
    let copy = json!({"sourceTable": reference("d", "source"), "destinationTable": reference("d", "copy")});
    let (status, job) = api.copy("j1", copy.clone()).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["status"]["state"], "DONE");
    assert_eq!(job["status"]["errorResult"]["reason"], "backendError");
    assert_eq!(server.table_json(&table("d", "copy")), None, "nothing copied");
    let (_, got) = api.get("/jobs/j1").await;
    assert_eq!(got, job, "the failed job is recorded");
    let (_, job) = api.copy("j2", copy).await;
    assert!(job["status"].get("errorResult").is_none(), "{job}");
    assert_eq!(server.row_count(&table("d", "copy")), Some(1));

    server.inject_rest_fault(RestCall::TablesGet, 1, fault);
    let (status, _) = api.get("/datasets/d/tables/copy").await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "FailJob on a call without a job"
    );
}

#[tokio::test]
async fn shutdown_stops_the_rest_listener() {
    let server = EmbeddedServer::builder().rest_port(0).start().await.expect("server");
    let endpoint = server.rest_endpoint();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    assert_ne!(endpoint, server.endpoint());
    let api = Api::of(&server);
    let (status, _) = api.get("/datasets").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get("/nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_kind(&body), ("NOT_FOUND", "notFound"));
    server.shutdown().await;
    let after = reqwest::Client::new()
        .get(format!("{}/datasets", api.base))
        .send()
        .await;
    assert!(after.is_err(), "{after:?}");
}
