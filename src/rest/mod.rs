//! The v2 REST API beside the Storage Write API: table metadata (get, insert, patch,
//! delete, list), dataset listings and copy jobs. Same credentials rules, retry policy and
//! deadlines as the gRPC client; knows nothing of loads or DataFusion.

mod client;
mod model;

pub use crate::error::RestStatus;
pub use client::{
    CopyJob, DEFAULT_CALL_TIMEOUT, DEFAULT_JOB_TIMEOUT, DEFAULT_REST_ENDPOINT, RestClient, WriteDisposition,
};
pub use model::{Clustering, ErrorProto, Job, JobReference, JobStatus, Table, TableReference, TimePartitioning};
