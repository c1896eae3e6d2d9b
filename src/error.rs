//! The crate's error type: every failure carries the table, stream, column or row it concerns.

use tonic::Code;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong between a batch of rows and a committed table.
#[derive(Debug, thiserror::Error)]
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
    #[error("cannot connect to the Storage Write API at {endpoint}: {message}")]
    Connect {
        /// The endpoint that was tried.
        endpoint: String,
        /// The transport's description of the failure.
        message: String,
    },

    /// The destination table does not exist.
    #[error("table {table} not found{}", detail(message))]
    TableNotFound {
        /// The table.
        table: String,
        /// The service's message.
        message: String,
    },

    /// An RPC failed with a gRPC status.
    #[error("{rpc} for {entity} failed: {code:?}: {message}")]
    Rpc {
        /// The RPC's name, e.g. `CreateWriteStream`.
        rpc: &'static str,
        /// The table or stream the call concerned.
        entity: String,
        /// The gRPC status code.
        code: Code,
        /// The status message.
        message: String,
    },

    /// The service rejected an AppendRows request.
    #[error("append to {stream} at offset {offset} failed: {code:?}: {message}")]
    Append {
        /// The write stream.
        stream: String,
        /// Offset of the request's first row.
        offset: i64,
        /// The gRPC status code carried by the response.
        code: Code,
        /// The service's message, with row errors if any.
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
    #[error("input of the load into {table} failed, nothing committed: {message}")]
    Input {
        /// The table.
        table: String,
        /// The input's error.
        message: String,
    },

    /// An internal invariant failed (a writer task panicked or vanished).
    #[error("internal error: {0}")]
    Internal(String),

    /// An error of the embedded server itself (binding its port).
    #[error("embedded server: {0}")]
    Server(String),
}

impl Error {
    /// Wraps a gRPC status from a unary RPC, turning NOT_FOUND on a table into [`Error::TableNotFound`].
    pub(crate) fn from_status(rpc: &'static str, entity: &str, status: &tonic::Status) -> Self {
        match status.code() {
            Code::NotFound if entity.contains("/tables/") && !entity.contains("/streams/") => Error::TableNotFound {
                table: entity.to_string(),
                message: status.message().to_string(),
            },
            code => Error::Rpc {
                rpc,
                entity: entity.to_string(),
                code,
                message: status.message().to_string(),
            },
        }
    }
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
