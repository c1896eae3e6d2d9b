//! A failed call's status with its typed details: the `StorageError` the Storage Write API
//! packs into `google.rpc.Status.details`, and the standard `ErrorInfo`, `QuotaFailure` and
//! `RetryInfo` details Google's services attach to quota errors.

use std::fmt;
use std::time::Duration;

use prost::Message;
use tonic::Code;

use crate::proto::rpc::{ErrorInfo, QuotaFailure, RetryInfo};
use crate::proto::storage_error::StorageErrorCode;
use crate::proto::{StorageError, rpc};

/// Type URL of a packed `StorageError`.
pub(crate) const STORAGE_ERROR_TYPE: &str = "type.googleapis.com/google.cloud.bigquery.storage.v1.StorageError";
/// Type URL of a packed `google.rpc.ErrorInfo`.
pub(crate) const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";
/// Type URL of a packed `google.rpc.QuotaFailure`.
pub(crate) const QUOTA_FAILURE_TYPE: &str = "type.googleapis.com/google.rpc.QuotaFailure";
/// Type URL of a packed `google.rpc.RetryInfo`.
pub(crate) const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// `ErrorInfo.reason` of a rate quota (requests or bytes per unit of time): wait and retry
/// (`google.api.ErrorReason.RATE_LIMIT_EXCEEDED`).
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) const RATE_LIMIT_EXCEEDED: &str = "RATE_LIMIT_EXCEEDED";
/// `ErrorInfo.reason` of an allocation quota (how many of something may exist): retrying
/// does not help (`google.api.ErrorReason.RESOURCE_QUOTA_EXCEEDED`).
pub(crate) const RESOURCE_QUOTA_EXCEEDED: &str = "RESOURCE_QUOTA_EXCEEDED";

/// The status of a failed call, as the service sent it (or as the transport made it up for
/// a call that broke), with the typed details it carried.
///
/// ```
/// use datafusion_bigquery::error::ServiceStatus;
/// let status = ServiceStatus::from(tonic::Status::unavailable("draining"));
/// assert_eq!(status.code(), tonic::Code::Unavailable);
/// assert_eq!(status.storage_error_code(), None);
/// assert!(!status.is_transport_failure());
/// ```
#[derive(Debug, Clone)]
pub struct ServiceStatus(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    status: tonic::Status,
    storage: Option<StorageError>,
    error_info: Option<ErrorInfo>,
    quota_failure: Option<QuotaFailure>,
    retry_delay: Option<Duration>,
    transport: bool,
}

impl ServiceStatus {
    /// A status carried inside an AppendRows response (`AppendRowsResponse.error`).
    pub(crate) fn from_rpc_status(status: &rpc::Status) -> Self {
        let details = status.encode_to_vec();
        let tonic = tonic::Status::with_details(Code::from(status.code), status.message.clone(), details.into());
        let mut out = Self::bare(tonic);
        out.read_details(&status.details);
        out
    }

    fn bare(status: tonic::Status) -> Self {
        Self(Box::new(Inner {
            status,
            storage: None,
            error_info: None,
            quota_failure: None,
            retry_delay: None,
            transport: false,
        }))
    }

    fn read_details(&mut self, details: &[prost_types::Any]) {
        for any in details {
            let value = any.value.as_slice();
            match any.type_url.as_str() {
                STORAGE_ERROR_TYPE => self.0.storage = StorageError::decode(value).ok(),
                ERROR_INFO_TYPE => self.0.error_info = ErrorInfo::decode(value).ok(),
                QUOTA_FAILURE_TYPE => self.0.quota_failure = QuotaFailure::decode(value).ok(),
                RETRY_INFO_TYPE => {
                    self.0.retry_delay = RetryInfo::decode(value)
                        .ok()
                        .and_then(|r| r.retry_delay)
                        .and_then(|d| Duration::try_from(d).ok());
                }
                _ => {}
            }
        }
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.0.status.code()
    }

    /// The status message.
    pub fn message(&self) -> &str {
        self.0.status.message()
    }

    /// The status as tonic received or made it.
    pub fn status(&self) -> &tonic::Status {
        &self.0.status
    }

    /// The Storage Write API's own error code, when the status carried a `StorageError`.
    pub fn storage_error_code(&self) -> Option<StorageErrorCode> {
        self.0
            .storage
            .as_ref()
            .and_then(|e| StorageErrorCode::try_from(e.code).ok())
            .filter(|c| *c != StorageErrorCode::Unspecified)
    }

    /// The entity (table or stream) the `StorageError` names, if any.
    pub fn storage_error_entity(&self) -> Option<&str> {
        self.0
            .storage
            .as_ref()
            .map(|e| e.entity.as_str())
            .filter(|e| !e.is_empty())
    }

    /// `ErrorInfo.reason`, e.g. `RATE_LIMIT_EXCEEDED` or `RESOURCE_QUOTA_EXCEEDED`.
    pub fn error_reason(&self) -> Option<&str> {
        self.0
            .error_info
            .as_ref()
            .map(|i| i.reason.as_str())
            .filter(|r| !r.is_empty())
    }

    /// The quota the status names, from `QuotaFailure` or `ErrorInfo` metadata, if any.
    pub fn quota(&self) -> Option<String> {
        let from_failure = self.0.quota_failure.as_ref().and_then(|q| {
            let names: Vec<&str> = q
                .violations
                .iter()
                .map(|v| {
                    if v.description.is_empty() {
                        v.subject.as_str()
                    } else {
                        v.description.as_str()
                    }
                })
                .filter(|n| !n.is_empty())
                .collect();
            (!names.is_empty()).then(|| names.join("; "))
        });
        from_failure.or_else(|| {
            let metadata = &self.0.error_info.as_ref()?.metadata;
            metadata
                .get("quota_metric")
                .or_else(|| metadata.get("quota_limit"))
                .cloned()
        })
    }

    /// How long the service asked the client to wait (`RetryInfo`), if it said.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.0.retry_delay
    }

    /// True if the status did not come from the server: the transport failed (connection
    /// refused, reset or broken) and tonic made a status for it.
    pub fn is_transport_failure(&self) -> bool {
        self.0.transport
    }
}

impl From<tonic::Status> for ServiceStatus {
    fn from(status: tonic::Status) -> Self {
        // tonic keeps the transport error as the source of a status it made up locally; a
        // status read from the server's trailers has none.
        let transport = std::error::Error::source(&status).is_some();
        let details = rpc::Status::decode(status.details())
            .map(|s| s.details)
            .unwrap_or_default();
        let mut out = Self::bare(status);
        out.0.transport = transport;
        out.read_details(&details);
        out
    }
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.code())?;
        if let Some(code) = self.storage_error_code() {
            write!(f, " ({})", code.as_str_name())?;
        }
        if !self.message().is_empty() {
            write!(f, ": {}", self.message())?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceStatus {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.status)
    }
}

/// Packs typed details into the `google.rpc.Status` details of a status (the embedded
/// server's side of the same convention).
#[cfg(any(feature = "server", test))]
pub(crate) fn pack_details(details: impl IntoIterator<Item = Detail>) -> Vec<prost_types::Any> {
    details
        .into_iter()
        .map(|detail| match detail {
            Detail::Storage(e) => any(STORAGE_ERROR_TYPE, &e),
            Detail::Info(e) => any(ERROR_INFO_TYPE, &e),
            Detail::Quota(e) => any(QUOTA_FAILURE_TYPE, &e),
            #[cfg(test)]
            Detail::Retry(e) => any(RETRY_INFO_TYPE, &e),
        })
        .collect()
}

/// One typed detail of a status.
#[cfg(any(feature = "server", test))]
#[derive(Debug, Clone)]
pub(crate) enum Detail {
    Storage(StorageError),
    Info(ErrorInfo),
    Quota(QuotaFailure),
    /// No server behaviour sends it yet; the client's reading of it is tested.
    #[cfg(test)]
    Retry(RetryInfo),
}

#[cfg(any(feature = "server", test))]
fn any(type_url: &str, message: &impl Message) -> prost_types::Any {
    prost_types::Any {
        type_url: type_url.into(),
        value: message.encode_to_vec(),
    }
}

/// A tonic status carrying `details` the way gRPC servers send them
/// (`grpc-status-details-bin`: a serialized `google.rpc.Status`).
#[cfg(any(feature = "server", test))]
pub(crate) fn status_with_details(code: Code, message: String, details: Vec<prost_types::Any>) -> tonic::Status {
    if details.is_empty() {
        return tonic::Status::new(code, message);
    }
    let body = rpc::Status {
        code: code as i32,
        message: message.clone(),
        details,
    };
    tonic::Status::with_details(code, message, body.encode_to_vec().into())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn reads_storage_error_quota_and_retry_details() {
        let details = pack_details([
            Detail::Storage(StorageError {
                code: StorageErrorCode::StreamFinalized as i32,
                entity: "projects/p/datasets/d/tables/t/streams/s".into(),
                error_message: "finalized".into(),
            }),
            Detail::Info(ErrorInfo {
                reason: RESOURCE_QUOTA_EXCEEDED.into(),
                domain: "googleapis.com".into(),
                metadata: HashMap::from([("quota_metric".into(), "write/pending_bytes".into())]),
            }),
            Detail::Retry(RetryInfo {
                retry_delay: Some(prost_types::Duration { seconds: 3, nanos: 0 }),
            }),
        ]);
        let status = ServiceStatus::from(status_with_details(Code::InvalidArgument, "no".into(), details.clone()));
        assert_eq!(status.storage_error_code(), Some(StorageErrorCode::StreamFinalized));
        assert_eq!(
            status.storage_error_entity(),
            Some("projects/p/datasets/d/tables/t/streams/s")
        );
        assert_eq!(status.error_reason(), Some(RESOURCE_QUOTA_EXCEEDED));
        assert_eq!(status.quota().as_deref(), Some("write/pending_bytes"));
        assert_eq!(status.retry_delay(), Some(Duration::from_secs(3)));
        assert!(!status.is_transport_failure());
        assert_eq!(status.to_string(), "InvalidArgument (STREAM_FINALIZED): no");

        // The same details inside an AppendRows response's error.
        let inline = ServiceStatus::from_rpc_status(&rpc::Status {
            code: Code::InvalidArgument as i32,
            message: "no".into(),
            details,
        });
        assert_eq!(inline.storage_error_code(), Some(StorageErrorCode::StreamFinalized));
        assert_eq!(inline.code(), Code::InvalidArgument);
    }

    #[test]
    fn a_quota_failure_names_its_violations() {
        let details = pack_details([Detail::Quota(QuotaFailure {
            violations: vec![crate::proto::rpc::quota_failure::Violation {
                subject: "project:p".into(),
                description: "CreateWriteStream requests per hour".into(),
            }],
        })]);
        let status = ServiceStatus::from(status_with_details(Code::ResourceExhausted, "quota".into(), details));
        assert_eq!(status.quota().as_deref(), Some("CreateWriteStream requests per hour"));
        assert_eq!(status.error_reason(), None);
    }

    #[test]
    fn a_status_made_from_a_transport_error_says_so() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let status = tonic::Status::from_error(Box::new(io));
        assert!(ServiceStatus::from(status).is_transport_failure());
        assert!(!ServiceStatus::from(tonic::Status::unknown("bad")).is_transport_failure());
    }
}
