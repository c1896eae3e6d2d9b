//! datasets.list.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::Rest;
use super::errors::RestError;
use super::pages::PageRequest;
use super::resource::dataset_list_entry;
use crate::rpc::RestCall;

/// `GET .../datasets?maxResults=&pageToken=`: the datasets created explicitly and those
/// holding tables, sorted by dataset id.
pub(crate) async fn list(
    State(rest): State<Rest>,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, RestError> {
    rest.admit(RestCall::DatasetsList).await?;
    let page = PageRequest::from_query(&query)?;
    let ids = rest.shared.store().dataset_ids(&project);
    let (items, next) = page.page(&ids);
    let datasets: Vec<Value> = items.iter().map(|d| dataset_list_entry(&project, d)).collect();
    let mut out = json!({ "kind": "bigquery#datasetList", "datasets": datasets });
    if let Some(next) = next {
        out["nextPageToken"] = next.into();
    }
    Ok(Json(out))
}
