//! jobs.insert (copy jobs, run at once) and jobs.get.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{Map, Value, json};

use super::Rest;
use super::copy_config::copy_spec;
use super::errors::RestError;
use super::table_body::json_object;
use crate::rpc::RestCall;
use crate::server::catalog::now_ms;
use crate::server::state::Store;

/// The location of jobs inserted without one.
const DEFAULT_LOCATION: &str = "US";

/// The job's id as the API writes it: `p:LOCATION.jobId`.
fn job_id_text(project: &str, location: &str, job_id: &str) -> String {
    format!("{project}:{location}.{job_id}")
}

/// `jobReference` of a jobs.insert body: the job id if given (checked) and the location.
fn job_reference(project: &str, body: &Map<String, Value>) -> Result<(Option<String>, String), RestError> {
    let Some(reference) = body.get("jobReference").filter(|r| !r.is_null()) else {
        return Ok((None, DEFAULT_LOCATION.to_string()));
    };
    let reference = reference
        .as_object()
        .ok_or_else(|| RestError::invalid("jobReference must be an object"))?;
    let text = |key: &str| reference.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(given) = text("projectId")
        && given != project
    {
        return Err(RestError::invalid(format!(
            "jobReference.projectId {given:?} does not match {project:?} of the request path"
        )));
    }
    let job_id = text("jobId").map(str::to_string);
    if let Some(id) = &job_id
        && (id.len() > 1024 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(RestError::invalid(format!(
            "Invalid job ID \"{id}\": use letters, digits, underscores and dashes (at most 1024)"
        )));
    }
    let location = text("location").unwrap_or(DEFAULT_LOCATION).to_string();
    Ok((job_id, location))
}

/// A job id not used yet in the project.
fn generated_job_id(store: &mut Store, project: &str) -> String {
    loop {
        store.next_job += 1;
        let id = format!("job_{:06}_{}", store.next_job, now_ms());
        if !store.jobs.contains_key(&(project.to_string(), id.clone())) {
            return id;
        }
    }
}

/// A finished job, as jobs.insert and jobs.get answer it.
struct FinishedJob<'a> {
    project: &'a str,
    job_id: &'a str,
    location: &'a str,
    configuration: &'a Map<String, Value>,
    /// The `(reason, message)` of a failure.
    failure: Option<(String, String)>,
    created_ms: i64,
    ended_ms: i64,
}

impl FinishedJob<'_> {
    fn to_json(&self) -> Value {
        let mut configuration = self.configuration.clone();
        configuration.insert("jobType".into(), "COPY".into());
        let mut status = json!({ "state": "DONE" });
        if let Some((reason, message)) = &self.failure {
            let error = json!({ "reason": reason, "message": message });
            status["errorResult"] = error.clone();
            status["errors"] = json!([error]);
        }
        json!({
            "kind": "bigquery#job",
            "id": job_id_text(self.project, self.location, self.job_id),
            "jobReference": {
                "projectId": self.project,
                "jobId": self.job_id,
                "location": self.location,
            },
            "configuration": configuration,
            "status": status,
            "statistics": {
                "creationTime": self.created_ms.to_string(),
                "startTime": self.created_ms.to_string(),
                "endTime": self.ended_ms.to_string(),
            },
        })
    }
}

/// `POST /projects/{project}/jobs`: runs a copy job at once, under the store's lock; a copy
/// that fails is a DONE job with `status.errorResult`, not an HTTP error.
pub(crate) async fn insert(
    State(rest): State<Rest>,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, RestError> {
    let injected = rest.admit(RestCall::JobsInsert).await?;
    let body = json_object(&body)?;
    let (job_id, location) = job_reference(&project, &body)?;
    let configuration = body
        .get("configuration")
        .and_then(Value::as_object)
        .ok_or_else(|| RestError::invalid("configuration is required"))?;
    let spec = copy_spec(&project, configuration)?;
    let created_ms = now_ms();
    let mut store = rest.shared.store();
    let job_id = match job_id {
        Some(id) => id,
        None => generated_job_id(&mut store, &project),
    };
    let key = (project.clone(), job_id.clone());
    if store.jobs.contains_key(&key) {
        return Err(RestError::duplicate(format!(
            "Already Exists: Job {}",
            job_id_text(&project, &location, &job_id)
        )));
    }
    let failure = match injected {
        Some(reason) => Some((reason, "injected job fault".to_string())),
        None => store
            .copy_table(&spec)
            .err()
            .map(|refusal| (refusal.reason().to_string(), refusal.message().to_string())),
    };
    let job = FinishedJob {
        project: &project,
        job_id: &job_id,
        location: &location,
        configuration,
        failure,
        created_ms,
        ended_ms: now_ms(),
    }
    .to_json();
    store.jobs.insert(key, job.clone());
    Ok(Json(job))
}

/// `GET /projects/{project}/jobs/{job}?location=`.
pub(crate) async fn get(
    State(rest): State<Rest>,
    Path((project, job_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, RestError> {
    rest.admit(RestCall::JobsGet).await?;
    let store = rest.shared.store();
    let job = store.jobs.get(&(project.clone(), job_id.clone()));
    let asked = query.get("location").filter(|l| !l.is_empty());
    let located = |job: &&Value| {
        asked.is_none_or(|asked| {
            job["jobReference"]["location"]
                .as_str()
                .is_some_and(|l| l.eq_ignore_ascii_case(asked))
        })
    };
    match job.filter(located) {
        Some(job) => Ok(Json(job.clone())),
        None => Err(RestError::not_found(format!(
            "Not found: Job {}",
            job_id_text(&project, asked.map_or(DEFAULT_LOCATION, String::as_str), &job_id)
        ))),
    }
}
