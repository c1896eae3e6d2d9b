//! The embedded server's v2 REST API (tables, datasets and copy jobs) on its own port,
//! over the same store as the Storage Write service.

mod copy_config;
mod datasets;
mod errors;
mod jobs;
mod pages;
mod resource;
mod table_body;
mod tables;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::watch;

pub(crate) use resource::table_resource;

use super::faults::RestFault;
use super::service::Shared;
use crate::rpc::RestCall;
use errors::RestError;

/// What every handler shares: the server's state, and the signal that it is stopping.
#[derive(Clone)]
pub(crate) struct Rest {
    shared: Arc<Shared>,
    stopping: watch::Receiver<bool>,
}

impl Rest {
    /// Counts a call and plays the fault planned for it: `Err` is the answer to give;
    /// `Ok(Some(reason))` asks jobs.insert to record its job as failed with that reason.
    async fn admit(&self, call: RestCall) -> Result<Option<String>, RestError> {
        match self.shared.faults.rest_fault(call) {
            None => Ok(None),
            Some(RestFault::Fail(status)) => Err(RestError::new(status, format!("injected fault on {call}"))),
            Some(RestFault::Hang(delay)) => {
                let mut stopping = self.stopping.clone();
                tokio::select! {
                    () = tokio::time::sleep(delay) => Ok(None),
                    _ = stopping.wait_for(|stop| *stop) => {
                        Err(RestError::new(503, "the embedded server is stopping"))
                    }
                }
            }
            Some(RestFault::FailJob { reason }) if call == RestCall::JobsInsert => Ok(Some(reason)),
            Some(RestFault::FailJob { .. }) => Err(RestError::new(
                500,
                format!("injected job fault on {call}, which runs no job"),
            )),
        }
    }
}

/// The routes, under `/bigquery/v2`.
fn router(rest: Rest) -> Router {
    let project = "/bigquery/v2/projects/{project}";
    Router::new()
        .route(&format!("{project}/datasets"), get(datasets::list))
        .route(
            &format!("{project}/datasets/{{dataset}}/tables"),
            get(tables::list).post(tables::insert),
        )
        .route(
            &format!("{project}/datasets/{{dataset}}/tables/{{table}}"),
            get(tables::get).patch(tables::patch).delete(tables::delete),
        )
        .route(&format!("{project}/jobs"), post(jobs::insert))
        .route(&format!("{project}/jobs/{{job}}"), get(jobs::get))
        .fallback(|uri: axum::http::Uri| async move {
            RestError::not_found(format!("Not found: the embedded server serves no {}", uri.path()))
        })
        .with_state(rest)
}

/// Serves the REST API on `listener` until `stopping` turns true.
pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, stopping: watch::Receiver<bool>) {
    let app = router(Rest {
        shared,
        stopping: stopping.clone(),
    });
    let mut stop = stopping;
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "embedded REST server stopped");
    }
}
