//! The crate's error type: every failure carries the table, stream, column or row it concerns,
//! and a failed call keeps the service's status, typed details included.

mod rest_status;
pub(crate) mod status;

use std::time::Duration;

use tonic::Code;

pub use crate::proto::storage_error::StorageErrorCode;
pub use crate::rpc::{RestCall, Rpc};
pub use rest_status::RestStatus;
#[cfg(feature = "server")]
pub(crate) use status::RATE_LIMIT_EXCEEDED;
pub(crate) use status::RESOURCE_QUOTA_EXCEEDED;
pub use status::ServiceStatus;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong between a batch of rows and a committed table.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A table name could not be parsed.
    #[error("invalid table name '{name}': {reason}")]
    InvalidTableName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The endpoint URL is malformed or not allowed.
    #[error("invalid endpoint '{endpoint}': {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A configuration option has a bad value.
    #[error("invalid option '{key}' = '{value}': {reason}")]
    InvalidOption {
        /// The option key.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No credentials could be obtained for the real service.
    #[error("could not obtain Google credentials for {endpoint}: {tried}")]
    Credentials {
        /// The endpoint that needed them.
        endpoint: String,
        /// Each source of Application Default Credentials tried, and why it gave none.
        tried: String,
        /// The underlying error.
        #[source]
        source: gcp_auth::Error,
    },

    /// The endpoint could not be reached.
    #[error("cannot connect to the Storage Write API at {endpoint}: {}", error_chain(source))]
    Connect {
        /// The endpoint that was tried.
        endpoint: String,
        /// The transport's error.
        #[source]
        source: tonic::transport::Error,
    },

    /// The destination table does not exist.
    #[error("table {table} not found{}", detail(status.message()))]
    TableNotFound {
        /// The table.
        table: String,
        /// The RPC that found it missing.
        rpc: Rpc,
        /// The service's status.
        #[source]
        status: ServiceStatus,
    },

    /// An RPC failed with a gRPC status.
    #[error("{rpc} for {entity} failed: {status}")]
    Rpc {
        /// The RPC.
        rpc: Rpc,
        /// The table or stream the call concerned.
        entity: String,
        /// The status, with its typed details.
        #[source]
        status: ServiceStatus,
    },

    /// The service rejected an AppendRows request.
    #[error("append to {stream} at offset {offset} failed: {status}{}", rows_detail(row_errors))]
    Append {
        /// The write stream.
        stream: String,
        /// Offset of the request's first row.
        offset: i64,
        /// The status the response carried, with its typed details.
        #[source]
        status: ServiceStatus,
        /// The rows the service rejected, by input row, with its reasons (at most five).
        row_errors: Vec<String>,
    },

    /// A quota that retrying cannot help was exceeded.
    #[error("{rpc} for {entity} exceeded a quota{}: {status}", quota.as_ref().map(|q| format!(" ({q})")).unwrap_or_default())]
    QuotaExceeded {
        /// The RPC.
        rpc: Rpc,
        /// The table or stream the call concerned.
        entity: String,
        /// The quota, as the service names it.
        quota: Option<String>,
        /// The service's status.
        #[source]
        status: ServiceStatus,
    },

    /// The server did not answer in time: a unary call passed its deadline, or an AppendRows
    /// connection had requests in flight and no response for the watchdog's time.
    #[error("no response from the server to {rpc} for {entity} in {}{}", seconds(*waited), in_flight_detail(*in_flight))]
    Unresponsive {
        /// The RPC.
        rpc: Rpc,
        /// The table or stream the call concerned.
        entity: String,
        /// How long the client waited.
        waited: Duration,
        /// AppendRows requests unanswered (0 for unary calls).
        in_flight: usize,
    },

    /// The server ended an AppendRows connection without a status while requests were unanswered.
    #[error("the server closed the AppendRows connection to {stream} with {in_flight} requests unanswered")]
    Disconnected {
        /// The write stream.
        stream: String,
        /// Requests unanswered.
        in_flight: usize,
    },

    /// The service answered in a way the API does not allow: a fault on its side, which
    /// retrying the same call cannot be trusted to mend.
    #[error("{rpc} for {entity}: the service's answer breaks the API: {message}")]
    Protocol {
        /// The RPC.
        rpc: Rpc,
        /// The table or stream the call concerned.
        entity: String,
        /// What was wrong with the answer.
        message: String,
    },

    /// The service's row count for a stream differs from the rows sent.
    #[error("stream {stream}: finalized with {reported} rows but {sent} were sent")]
    RowCountMismatch {
        /// The write stream.
        stream: String,
        /// Rows this writer sent.
        sent: i64,
        /// Rows the service reported at finalize.
        reported: i64,
    },

    /// A commit was given the handle of a stream of another table; nothing was committed.
    #[error("cannot commit stream {stream} to {table}: it belongs to {belongs_to}; nothing committed")]
    ForeignStream {
        /// The stream.
        stream: String,
        /// The table it was written to.
        belongs_to: String,
        /// The table being committed.
        table: String,
    },

    /// BatchCommitWriteStreams refused the commit; nothing was committed.
    #[error("commit to {table} rejected, nothing committed: {}", errors.join("; "))]
    CommitRejected {
        /// The table.
        table: String,
        /// One message per stream error.
        errors: Vec<String>,
    },

    /// The table schema and the data do not fit together.
    #[error("table {table}: {message}")]
    Schema {
        /// The table.
        table: String,
        /// What does not fit.
        message: String,
    },

    /// A column of the input has a type that cannot be written to the column's BigQuery type.
    #[error("table {table}, column {column}: cannot write Arrow {arrow_type} to BigQuery {bigquery_type}")]
    UnsupportedType {
        /// The table.
        table: String,
        /// The column path.
        column: String,
        /// The Arrow type of the input.
        arrow_type: String,
        /// The BigQuery type of the column.
        bigquery_type: String,
    },

    /// A NULL reached a REQUIRED column.
    #[error("table {table}, column {column}, row {row}: NULL in a REQUIRED column")]
    NullInRequired {
        /// The table.
        table: String,
        /// The column path.
        column: String,
        /// Row index in the input.
        row: u64,
    },

    /// A value cannot be represented by the column's BigQuery type.
    #[error("table {table}, column {column}, row {row}: value {value} {reason}")]
    InvalidValue {
        /// The table.
        table: String,
        /// The column path.
        column: String,
        /// Row index in the input.
        row: u64,
        /// The value, as text.
        value: String,
        /// Why it cannot be written.
        reason: String,
    },

    /// A single row is larger than the request size limit.
    #[error("table {table}, row {row}: encoded row of {bytes} bytes exceeds the request limit of {limit} bytes")]
    RowTooLarge {
        /// The table.
        table: String,
        /// Row index in the input.
        row: u64,
        /// Encoded size of the row.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },

    /// The input stream failed; nothing was committed.
    #[error("input of the load into {table} failed, nothing committed: {source}")]
    Input {
        /// The table.
        table: String,
        /// The input's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A checkpoint folder could not be read or written.
    #[error("checkpoint {location}: {message}")]
    Checkpoint {
        /// The object or folder, as a URL or path.
        location: String,
        /// What went wrong.
        message: String,
        /// The error of the object store or parser behind it, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// Another process holds the load's lease: two runners must not both commit.
    #[error(
        "load {load_id} is being run by another process ({owner}); its lease expires at {expires_at} \
         unless renewed; nothing written"
    )]
    LoadLeased {
        /// The load.
        load_id: String,
        /// Who holds the lease (host, process id, run id).
        owner: String,
        /// When the lease expires if not renewed (RFC 3339).
        expires_at: String,
    },

    /// The load's input differs from the input its checkpoints were written for.
    #[error(
        "load {load_id} was started over a different input (fingerprint {recorded}, now {found}); \
         nothing written: choose another bigquery.load_id, or delete the load's checkpoints"
    )]
    LoadInputChanged {
        /// The load.
        load_id: String,
        /// The fingerprint in the checkpoint folder.
        recorded: String,
        /// The fingerprint of this run's input.
        found: String,
    },

    /// A checkpointed stream cannot be resumed (finalized, gone, or shorter than its
    /// checkpoint): its partition starts over on a new stream.
    #[error("stream {stream} cannot be resumed: {reason}")]
    StreamNotResumable {
        /// The stream.
        stream: String,
        /// Why.
        reason: String,
    },

    /// An internal invariant failed (a writer task panicked or vanished).
    #[error("internal error: {0}")]
    Internal(String),

    /// A call of the v2 REST API failed.
    #[error("{call} for {entity} failed: {status}")]
    Rest {
        /// The call.
        call: RestCall,
        /// The table, dataset or job the call concerned.
        entity: String,
        /// What the service answered, or how the transport failed.
        #[source]
        status: RestStatus,
    },

    /// A BigQuery job failed, or was not done in time.
    #[error("{job} failed: {reason}: {message}")]
    Job {
        /// The job and what it did.
        job: String,
        /// The service's reason (`notFound`, `invalid`, ...), or `timeout`.
        reason: String,
        /// What went wrong.
        message: String,
    },

    /// A table's columns do not match the columns declared for it.
    #[error("table {table}, column {column}: {message}")]
    ColumnMismatch {
        /// The table.
        table: String,
        /// The column path.
        column: String,
        /// How it differs.
        message: String,
    },

    /// An error of the embedded server itself (binding its port).
    #[error("embedded server: {message}: {source}")]
    Server {
        /// What the server was doing.
        message: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Debug output is the message, as Display's: engines that report errors with `{:?}`
/// (Ballista's task failures) then show what went wrong, not the variant's fields.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// Wraps a gRPC status from a unary RPC, turning NOT_FOUND on a table into
    /// [`Error::TableNotFound`] and an allocation quota into [`Error::QuotaExceeded`].
    pub(crate) fn from_status(rpc: Rpc, entity: &str, status: tonic::Status) -> Self {
        let status = ServiceStatus::from(status);
        let table_missing = status.storage_error_code() == Some(StorageErrorCode::TableNotFound)
            || (status.code() == Code::NotFound && entity.contains("/tables/") && !entity.contains("/streams/"));
        if table_missing {
            return Error::TableNotFound {
                table: entity.to_string(),
                rpc,
                status,
            };
        }
        if status.code() == Code::ResourceExhausted && status.error_reason() == Some(RESOURCE_QUOTA_EXCEEDED) {
            return Error::QuotaExceeded {
                rpc,
                entity: entity.to_string(),
                quota: status.quota(),
                status,
            };
        }
        Error::Rpc {
            rpc,
            entity: entity.to_string(),
            status,
        }
    }

    /// The status of the failed call, if the error is one.
    pub fn service_status(&self) -> Option<&ServiceStatus> {
        match self {
            Error::TableNotFound { status, .. }
            | Error::Rpc { status, .. }
            | Error::Append { status, .. }
            | Error::QuotaExceeded { status, .. } => Some(status),
            _ => None,
        }
    }

    /// What a failed REST call answered, if the error is one.
    pub fn rest_status(&self) -> Option<&RestStatus> {
        match self {
            Error::Rest { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The gRPC code of the failed call, if the error is one.
    pub fn code(&self) -> Option<Code> {
        self.service_status().map(ServiceStatus::code)
    }

    /// The Storage Write API's error code, if the service sent one.
    pub fn storage_error_code(&self) -> Option<StorageErrorCode> {
        self.service_status().and_then(ServiceStatus::storage_error_code)
    }
}

fn rows_detail(rows: &[String]) -> String {
    if rows.is_empty() {
        String::new()
    } else {
        format!("; rows rejected: {}", rows.join("; "))
    }
}

fn in_flight_detail(in_flight: usize) -> String {
    match in_flight {
        0 => String::new(),
        1 => " (1 request unanswered)".into(),
        n => format!(" ({n} requests unanswered)"),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The service's words, unless they only restate that something was not found.
fn detail(message: &str) -> String {
    if message.is_empty() || message.to_ascii_lowercase().contains("not found") {
        String::new()
    } else {
        format!(" ({message})")
    }
}

impl From<Error> for datafusion::error::DataFusionError {
    fn from(err: Error) -> Self {
        datafusion::error::DataFusionError::External(Box::new(err))
    }
}
/// An error and its sources on one line.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
