//! The REST client against the embedded server's REST port and its faults: every wait has
//! a deadline, transient failures are retried, final ones are not.

#![cfg(feature = "server")]

use std::time::{Duration, Instant};

use datafusion_bigquery::rest::{CopyJob, RestClient, WriteDisposition};
use datafusion_bigquery::retry::RetryConfig;
use datafusion_bigquery::rpc::RestCall;
use datafusion_bigquery::server::RestFault;
use datafusion_bigquery::tables::{Ensured, TableSettings, ensure_table};
use datafusion_bigquery::{EmbeddedServer, Error, TableRef, schema};

fn fast_retries() -> RetryConfig {
    RetryConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        throttle_backoff: Duration::from_millis(20),
        ..RetryConfig::default()
    }
}

fn client(server: &EmbeddedServer) -> RestClient {
    RestClient::new(&server.rest_endpoint())
        .expect("endpoint")
        .with_retry(fast_retries())
        .with_call_timeout(Duration::from_millis(500))
}

fn table(name: &str) -> TableRef {
    TableRef::new("demo", "rest", name).expect("name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_answer_is_cut_by_the_deadline_and_retried() {
    let server = EmbeddedServer::start().await.expect("server");
    let t = table("hung");
    server.create_table(&t, schema::parse_inline_schema("id:INT64").expect("schema"));
    server.inject_rest_fault(RestCall::TablesGet, 1, RestFault::Hang(Duration::from_secs(30)));
    let started = Instant::now();
    let found = client(&server).get_table(&t).await.expect("the retry succeeds");
    assert!(found.is_some());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // Every attempt hung: the error says which call and that no answer came.
    let never = client(&server).with_retry(RetryConfig {
        max_attempts: 2,
        ..fast_retries()
    });
    for n in 3..=4 {
        server.inject_rest_fault(RestCall::TablesGet, n, RestFault::Hang(Duration::from_secs(30)));
    }
    let err = never.get_table(&t).await.expect_err("both attempts hang");
    let text = err.to_string();
    assert!(
        text.starts_with("tables.get for demo.rest.hung failed: no answer"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let server = EmbeddedServer::start().await.expect("server");
    let rest = client(&server);
    let declared = schema::parse_inline_schema("id:INT64:REQUIRED").expect("schema");
    server.inject_rest_fault(RestCall::TablesInsert, 1, RestFault::Fail(503));
    server.inject_rest_fault(RestCall::TablesGet, 1, RestFault::Fail(500));
    let made = ensure_table(&rest, &table("made"), &declared, &TableSettings::default())
        .await
        .expect("retried through a 500 and a 503");
    assert!(matches!(made, Ensured::Created(_)), "{made:?}");
    assert_eq!(server.table_names("demo", "rest"), vec!["made".to_string()]);
    server.inject_rest_fault(RestCall::TablesGet, 3, RestFault::Fail(400));
    let err = rest.get_table(&table("made")).await.expect_err("400 is final");
    assert!(
        matches!(&err, Error::Rest { status, .. } if status.http == 400),
        "{err}"
    );
    // The calls: get (500, then 404), insert (503, then created), get (400, not retried).
    assert_eq!(server.rest_calls(RestCall::TablesGet), 3);
    assert_eq!(server.rest_calls(RestCall::TablesInsert), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_job_is_an_error_naming_the_job() {
    let server = EmbeddedServer::start().await.expect("server");
    let rest = client(&server);
    let spec = schema::parse_inline_schema("id:INT64").expect("schema");
    server.create_table(&table("a"), spec.clone());
    server.create_table(&table("b"), spec);
    let job = CopyJob {
        job_id: "copy-1".into(),
        source: table("a"),
        destination: table("b"),
        write_disposition: WriteDisposition::Truncate,
    };
    rest.run_copy(&job).await.expect("an empty copy succeeds");
    let missing = CopyJob {
        job_id: "copy-2".into(),
        source: table("absent"),
        ..job
    };
    let err = rest.run_copy(&missing).await.expect_err("no source");
    let text = err.to_string();
    assert!(
        text.starts_with("job copy-2 (demo.rest.absent -> demo.rest.b) failed: notFound"),
        "{text}"
    );
}
