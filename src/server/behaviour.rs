//! How the real service behaves, on demand: connections closed when idle or aged, a cap on
//! concurrent streams per connection, quotas, a request size limit, and tables that the
//! Storage Write API sees only some time after they were created. Each is off by default
//! (the size limit is the service's), set on [`crate::server::ServerBuilder`], and shown by
//! the `emulator` subcommand's flags.

use std::time::Duration;

use tonic::Code;

use super::state::Rejection;
use crate::error::status::Detail;
use crate::proto::rpc::{ErrorInfo, QuotaFailure, quota_failure};

/// The service's request size limit: a request must be smaller than 20 MB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 20_000_000;

/// How a connection limit ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloseMode {
    /// Answer the request that reaches the limit, then end the call cleanly (no status), as
    /// a server that drains its connections does.
    #[default]
    Graceful,
    /// End the call with UNAVAILABLE without answering the request that reaches the limit,
    /// as a connection torn down under load.
    Abrupt,
}

impl std::str::FromStr for CloseMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "graceful" => Ok(Self::Graceful),
            "abrupt" => Ok(Self::Abrupt),
            other => Err(format!("expected 'graceful' or 'abrupt', not '{other}'")),
        }
    }
}

/// Ends every AppendRows connection after it carried this many requests or bytes, as the
/// service may end long-lived connections at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionLimit {
    /// Requests after which a connection ends.
    pub requests: Option<u64>,
    /// Request bytes after which a connection ends.
    pub bytes: Option<u64>,
    /// How it ends.
    pub close: CloseMode,
}

impl ConnectionLimit {
    /// True once a connection carried `requests` requests of `bytes` bytes in all.
    pub(crate) fn reached(&self, requests: u64, bytes: u64) -> bool {
        self.requests.is_some_and(|n| requests >= n) || self.bytes.is_some_and(|n| bytes >= n)
    }
}

/// The behaviours of the real service the server plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Behaviour {
    /// End an AppendRows call that carried no request for this long, with ABORTED.
    pub(crate) idle_close: Option<Duration>,
    /// End AppendRows calls after some requests or bytes.
    pub(crate) connection_limit: Option<ConnectionLimit>,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of each connection.
    pub(crate) max_concurrent_streams: Option<u32>,
    /// Largest AppendRows request accepted.
    pub(crate) max_request_bytes: usize,
    /// Refuse every n-th AppendRows request with the throughput quota.
    pub(crate) throttle_every: Option<u64>,
    /// Refuse every n-th CreateWriteStream call with the stream-creation quota.
    pub(crate) stream_quota_every: Option<u64>,
    /// CreateWriteStream answers NOT_FOUND for a table this long after it was created.
    pub(crate) table_visibility_delay: Option<Duration>,
    /// Refuse Arrow rows, as a service without the format does.
    pub(crate) refuse_arrow_rows: bool,
    /// Serve AppendRows calls that lack the routing header (by default refused).
    pub(crate) accept_unrouted_appends: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            idle_close: None,
            connection_limit: None,
            max_concurrent_streams: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            throttle_every: None,
            stream_quota_every: None,
            table_visibility_delay: None,
            refuse_arrow_rows: false,
            accept_unrouted_appends: false,
        }
    }
}

/// True if the `number`-th call (1-based) falls on an "every n-th" switch.
pub(crate) fn every(n: Option<u64>, number: u64) -> bool {
    n.is_some_and(|n| n > 0 && number.is_multiple_of(n))
}

/// The service's idle close (googleapis/nodejs-bigquery-storage issue #427).
pub(crate) fn idle_close_status(idle: Duration) -> tonic::Status {
    tonic::Status::aborted(format!(
        "Closing the stream because it has been inactive for {} seconds",
        idle.as_secs()
    ))
}

/// The AppendRows throughput quota, worded as the service words it; the service attaches
/// no structured detail to it.
pub(crate) fn throughput_quota(stream: &str) -> Rejection {
    Rejection::new(
        Code::ResourceExhausted,
        format!(
            "Exceeds 'AppendRows throughput' quota, user_id: embedded (status: INSUFFICIENT_TOKENS), Entity: {stream}"
        ),
    )
}

/// The per-project stream-creation quota (a rate: retried with a long backoff).
pub(crate) fn stream_creation_quota(table: &str) -> Rejection {
    Rejection::new(
        Code::ResourceExhausted,
        format!("Exceeds 'CreateWriteStream requests' quota, user_id: embedded, Entity: {table}"),
    )
    .with_details([Detail::Info(ErrorInfo {
        reason: crate::error::RATE_LIMIT_EXCEEDED.into(),
        domain: "googleapis.com".into(),
        metadata: [(
            "quota_metric".to_string(),
            "bigquerystorage.googleapis.com/write/create_stream_requests".to_string(),
        )]
        .into(),
    })])
}

/// Arrow rows refused by a service that does not take them (a plain INVALID_ARGUMENT, with no
/// row errors and no `StorageError`).
pub(crate) fn arrow_rows_refused() -> Rejection {
    Rejection::new(Code::InvalidArgument, "arrow_rows are not supported; send proto_rows")
}

/// An allocation quota (how many connections may exist), with the typed details of Google's
/// error model (`ErrorInfo` reason RESOURCE_QUOTA_EXCEEDED and a `QuotaFailure`): retrying
/// cannot help.
pub(crate) fn allocation_quota(entity: &str) -> Rejection {
    let quota = "Concurrent AppendRows connections per project and region";
    Rejection::new(
        Code::ResourceExhausted,
        format!("Exceeds '{quota}' quota, Entity: {entity}"),
    )
    .with_details([
        Detail::Info(ErrorInfo {
            reason: crate::error::RESOURCE_QUOTA_EXCEEDED.into(),
            domain: "googleapis.com".into(),
            metadata: [(
                "quota_metric".to_string(),
                "bigquerystorage.googleapis.com/write/append_connections".to_string(),
            )]
            .into(),
        }),
        Detail::Quota(QuotaFailure {
            violations: vec![quota_failure::Violation {
                subject: "project:embedded".into(),
                description: quota.into(),
            }],
        }),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_every_nth() {
        let limit = ConnectionLimit {
            requests: Some(3),
            bytes: Some(1000),
            close: CloseMode::Abrupt,
        };
        assert!(!limit.reached(2, 999));
        assert!(limit.reached(3, 0));
        assert!(limit.reached(1, 1000));
        assert!(every(Some(4), 8) && !every(Some(4), 9) && !every(None, 4) && !every(Some(0), 4));
        assert_eq!("abrupt".parse::<CloseMode>(), Ok(CloseMode::Abrupt));
        assert!("sudden".parse::<CloseMode>().is_err());
    }
}
