//! One client of the v2 REST API: tables, datasets and copy jobs, with the Storage Write
//! client's credentials rules, retry policy and deadlines.

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::model::{Job, Table};
use crate::client::{Credentials, USER_AGENT, endpoint_kind, quota_project_from_environment};
use crate::error::RestStatus;
use crate::error::{Error, Result};
use crate::retry::{RetryConfig, with_retries};
use crate::rpc::RestCall;
use crate::table_ref::TableRef;

/// The public endpoint of the v2 REST API.
pub const DEFAULT_REST_ENDPOINT: &str = "https://bigquery.googleapis.com";

/// Default deadline of one REST call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Default time a copy job may take before the wait for it is given up.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(3600);

/// Most pages read by one listing, so that a server that always answers with a next page
/// cannot keep a listing going forever.
const MAX_PAGES: usize = 10_000;

/// How the destination of a copy job is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDisposition {
    /// Replace the destination's rows, atomically when the job completes.
    Truncate,
    /// Add to the destination's rows.
    Append,
    /// Fail unless the destination is empty.
    Empty,
}

impl WriteDisposition {
    fn as_str(self) -> &'static str {
        match self {
            WriteDisposition::Truncate => "WRITE_TRUNCATE",
            WriteDisposition::Append => "WRITE_APPEND",
            WriteDisposition::Empty => "WRITE_EMPTY",
        }
    }
}

/// A copy job: the source table's rows into the destination, which must exist.
#[derive(Debug, Clone)]
pub struct CopyJob {
    /// The job's id, chosen by the client, which makes a retried insert safe.
    pub job_id: String,
    /// Rows from here.
    pub source: TableRef,
    /// Rows to here.
    pub destination: TableRef,
    /// How the destination is written.
    pub write_disposition: WriteDisposition,
}

/// A client of the v2 REST API; cheap to clone.
///
/// `https://` endpoints use TLS with verified roots and Application Default Credentials;
/// `http://` endpoints (emulators) never carry a token, whatever the host.
///
/// ```no_run
/// # async fn example() -> datafusion_bigquery::Result<()> {
/// use datafusion_bigquery::rest::RestClient;
/// let client = RestClient::new("http://127.0.0.1:9050")?;
/// let table = "p.d.t".parse()?;
/// if let Some(found) = client.get_table(&table).await? {
///     println!("{} columns", found.schema.map_or(0, |s| s.fields.len()));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    /// `{endpoint}/bigquery/v2`.
    base: url::Url,
    endpoint: String,
    credentials: Credentials,
    quota_project: Option<HeaderValue>,
    retry: RetryConfig,
    call_timeout: Duration,
    job_timeout: Duration,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl RestClient {
    /// A client of `endpoint` (`https://bigquery.googleapis.com`, or `http://host:port`).
    /// Credentials are looked for at the first call.
    pub fn new(endpoint: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            reason: reason.to_string(),
        };
        let endpoint = endpoint.trim_end_matches('/');
        let secure = endpoint_kind(endpoint)?.secure;
        let mut base = url::Url::parse(endpoint).map_err(|_| invalid("not a URL"))?;
        base.path_segments_mut()
            .map_err(|()| invalid("not a base URL"))?
            .pop_if_empty()
            .extend(["bigquery", "v2"]);
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .https_only(secure)
            .build()
            .map_err(|e| invalid(&crate::error::error_chain(&e)))?;
        let (credentials, quota_project) = if secure {
            let quota = quota_project_from_environment().and_then(|p| HeaderValue::from_str(&p).ok());
            (Credentials::application_default_on_first_use(endpoint), quota)
        } else {
            (Credentials::None, None)
        };
        Ok(Self {
            http,
            base,
            endpoint: endpoint.to_string(),
            credentials,
            quota_project,
            retry: RetryConfig::default(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            job_timeout: DEFAULT_JOB_TIMEOUT,
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The same client with another deadline per call.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The same client with another bound on the wait for a job.
    pub fn with_job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout;
        self
    }

    /// The same client billing `project` for quota (sent to the real service only).
    pub fn with_quota_project(mut self, project: Option<&str>) -> Result<Self> {
        if let Some(project) = project
            && self.credentials.is_google()
        {
            self.quota_project = Some(HeaderValue::from_str(project).map_err(|_| Error::InvalidOption {
                key: "bigquery.quota_project".into(),
                value: project.to_string(),
                reason: "not valid in a request header".into(),
            })?);
        }
        Ok(self)
    }

    /// The endpoint, as given.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// tables.get: the table's metadata, or `None` if it does not exist.
    pub async fn get_table(&self, table: &TableRef) -> Result<Option<Table>> {
        match self.get_table_json(table).await? {
            Some(answer) => parse(RestCall::TablesGet, table, answer).map(Some),
            None => Ok(None),
        }
    }

    /// tables.get, the answer as the service wrote it (every field, also those the crate
    /// does not model), or `None` if the table does not exist.
    pub async fn get_table_json(&self, table: &TableRef) -> Result<Option<Value>> {
        let path = table_path(table);
        match self
            .json(RestCall::TablesGet, table, Method::GET, &path, &[], None)
            .await
        {
            Ok(answer) => Ok(Some(answer)),
            Err(e) if e.rest_status().is_some_and(RestStatus::is_not_found) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// tables.insert: creates the table, or answers `None` if a table of that name exists.
    pub async fn insert_table(&self, table: &Table) -> Result<Option<Table>> {
        let reference = &table.table_reference;
        let name = TableRef::new(&reference.project_id, &reference.dataset_id, &reference.table_id)?;
        let body = serde_json::to_value(table).map_err(|e| Error::Internal(e.to_string()))?;
        match self.insert_table_json(&name, &body).await? {
            Some(answer) => parse(RestCall::TablesInsert, &name, answer).map(Some),
            None => Ok(None),
        }
    }

    /// tables.insert of a resource given as JSON (its `tableReference` must name `table`);
    /// `None` if a table of that name exists.
    pub async fn insert_table_json(&self, table: &TableRef, body: &Value) -> Result<Option<Value>> {
        let path = ["projects", &table.project, "datasets", &table.dataset, "tables"];
        match self
            .json(RestCall::TablesInsert, table, Method::POST, &path, &[], Some(body))
            .await
        {
            Ok(answer) => Ok(Some(answer)),
            Err(e) if e.rest_status().is_some_and(RestStatus::is_already_exists) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// tables.patch: changes the fields `patch` names (`{"labels": {...}}`).
    pub async fn patch_table(&self, table: &TableRef, patch: &Value) -> Result<Table> {
        let path = table_path(table);
        let answer = self
            .json(RestCall::TablesPatch, table, Method::PATCH, &path, &[], Some(patch))
            .await?;
        parse(RestCall::TablesPatch, table, answer)
    }

    /// tables.delete: true if the table was deleted, false if it did not exist.
    pub async fn delete_table(&self, table: &TableRef) -> Result<bool> {
        let path = table_path(table);
        match self
            .json(RestCall::TablesDelete, table, Method::DELETE, &path, &[], None)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.rest_status().is_some_and(RestStatus::is_not_found) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// tables.list: the ids of a dataset's tables, every page.
    pub async fn list_tables(&self, project: &str, dataset: &str) -> Result<Vec<String>> {
        let path = ["projects", project, "datasets", dataset, "tables"];
        let entity = format!("dataset {project}.{dataset}");
        let items = self.list_pages(RestCall::TablesList, &entity, &path, "tables").await?;
        Ok(items
            .iter()
            .filter_map(|t| t["tableReference"]["tableId"].as_str().map(str::to_string))
            .collect())
    }

    /// datasets.list: the ids of a project's datasets, every page.
    pub async fn list_datasets(&self, project: &str) -> Result<Vec<String>> {
        let path = ["projects", project, "datasets"];
        let entity = format!("project {project}");
        let items = self
            .list_pages(RestCall::DatasetsList, &entity, &path, "datasets")
            .await?;
        Ok(items
            .iter()
            .filter_map(|d| d["datasetReference"]["datasetId"].as_str().map(str::to_string))
            .collect())
    }

    /// Runs a copy job and waits until it is done: jobs.insert (a retry that finds the job
    /// already inserted goes on waiting for it), then jobs.get until DONE. A failed job is
    /// [`Error::Job`]; a job that is not done within the job timeout too.
    pub async fn run_copy(&self, job: &CopyJob) -> Result<()> {
        let project = job.destination.project.as_str();
        let body = json!({
            "jobReference": { "projectId": project, "jobId": job.job_id },
            "configuration": {
                "copy": {
                    "sourceTable": super::model::TableReference::from(&job.source),
                    "destinationTable": super::model::TableReference::from(&job.destination),
                    "writeDisposition": job.write_disposition.as_str(),
                    "createDisposition": "CREATE_NEVER",
                    "operationType": "COPY",
                }
            }
        });
        let entity = format!("job {} ({} -> {})", job.job_id, job.source, job.destination);
        let path = ["projects", project, "jobs"];
        let started = Instant::now();
        let mut state = match self
            .json(RestCall::JobsInsert, &entity, Method::POST, &path, &[], Some(&body))
            .await
        {
            Ok(answer) => parse::<Job>(RestCall::JobsInsert, &entity, answer)?,
            // An earlier attempt of this insert went through.
            Err(e) if e.rest_status().is_some_and(RestStatus::is_already_exists) => Job::default(),
            Err(e) => return Err(e),
        };
        let location = state.job_reference.as_ref().and_then(|r| r.location.clone());
        let mut poll = Duration::from_millis(50);
        loop {
            if state.status.state == "DONE" {
                return match state.status.error_result {
                    None => Ok(()),
                    Some(error) => Err(Error::Job {
                        job: entity,
                        reason: error.reason,
                        message: error.message,
                    }),
                };
            }
            if started.elapsed() + poll > self.job_timeout {
                return Err(Error::Job {
                    job: entity,
                    reason: "timeout".into(),
                    message: format!(
                        "not done after {:.0} s (bigquery.job_timeout_ms)",
                        started.elapsed().as_secs_f64()
                    ),
                });
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(Duration::from_secs(2));
            let path = ["projects", project, "jobs", job.job_id.as_str()];
            let query: Vec<(&str, &str)> = location.iter().map(|l| ("location", l.as_str())).collect();
            let answer = self
                .json(RestCall::JobsGet, &entity, Method::GET, &path, &query, None)
                .await?;
            state = parse(RestCall::JobsGet, &entity, answer)?;
        }
    }

    /// Every item of a paged listing.
    async fn list_pages(&self, call: RestCall, entity: &str, path: &[&str], key: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let query: Vec<(&str, &str)> = token.iter().map(|t| ("pageToken", t.as_str())).collect();
            let page = self.json(call, entity, Method::GET, path, &query, None).await?;
            if let Some(list) = page.get(key).and_then(Value::as_array) {
                items.extend(list.iter().cloned());
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(items),
            }
        }
        Err(Error::Rest {
            call,
            entity: entity.to_string(),
            status: RestStatus::transport(format!("more than {MAX_PAGES} pages")),
        })
    }

    /// One call with the retry policy; the answer's JSON (`null` for an empty body).
    async fn json(
        &self,
        call: RestCall,
        entity: &(impl std::fmt::Display + ?Sized),
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let entity = entity.to_string();
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Internal("REST base URL".into()))?
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        with_retries(&self.retry, call, || async {
            // The deadline covers the whole attempt, finding credentials included (reqwest's
            // own timeout covers only the request).
            let attempt = self.attempt(call, &entity, method.clone(), url.clone(), body);
            match tokio::time::timeout(self.call_timeout, attempt).await {
                Ok(done) => done,
                Err(_) => Err(Error::Rest {
                    call,
                    entity: entity.clone(),
                    status: RestStatus::transport(format!("no answer in {:.1} s", self.call_timeout.as_secs_f64())),
                }),
            }
        })
        .await
    }

    async fn attempt(
        &self,
        call: RestCall,
        entity: &str,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
    ) -> Result<Value> {
        let failed = |status: RestStatus| Error::Rest {
            call,
            entity: entity.to_string(),
            status,
        };
        let mut request = self.http.request(method, url).timeout(self.call_timeout);
        if let Some(header) = self.credentials.authorization().await? {
            let mut value = HeaderValue::from_str(&header)
                .map_err(|_| Error::Internal("access token is not a valid header value".into()))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(project) = &self.quota_project {
            request = request.header("x-goog-user-project", project.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| failed(RestStatus::transport(crate::error::error_chain(&e))))?;
        let http = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| failed(RestStatus::transport(crate::error::error_chain(&e))))?;
        if !(200..300).contains(&http) {
            return Err(failed(RestStatus::from_response(http, &text)));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| {
            failed(RestStatus {
                http,
                code: tonic::Code::Internal,
                reason: None,
                message: format!("answer is not JSON: {e}"),
            })
        })
    }
}

/// `projects/{p}/datasets/{d}/tables/{t}` as path segments.
fn table_path(table: &TableRef) -> [&str; 6] {
    [
        "projects",
        &table.project,
        "datasets",
        &table.dataset,
        "tables",
        &table.table,
    ]
}

fn parse<T: DeserializeOwned>(call: RestCall, entity: &(impl std::fmt::Display + ?Sized), answer: Value) -> Result<T> {
    serde_json::from_value(answer).map_err(|e| Error::Rest {
        call,
        entity: entity.to_string(),
        status: RestStatus {
            http: 200,
            code: tonic::Code::Internal,
            reason: None,
            message: format!("unexpected answer: {e}"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_and_joined() {
        let client = RestClient::new("http://127.0.0.1:9050/").unwrap();
        assert_eq!(client.base.as_str(), "http://127.0.0.1:9050/bigquery/v2");
        assert!(!client.credentials.is_google());
        let real = RestClient::new(DEFAULT_REST_ENDPOINT).unwrap();
        assert!(real.credentials.is_google());
        assert!(matches!(
            RestClient::new("ftp://example.com"),
            Err(Error::InvalidEndpoint { .. })
        ));
    }
}
