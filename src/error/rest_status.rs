//! What a failed REST call answered: the HTTP status, the `google.rpc.Code` name and the
//! first error's `reason`, read from the JSON error body the API sends.

use std::fmt;

use serde::Deserialize;
use tonic::Code;

/// The answer of a failed call of the v2 REST API, or the transport's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestStatus {
    /// The HTTP status; 0 when no answer came (the transport failed or the deadline passed).
    pub http: u16,
    /// The canonical code (`error.status`, or derived from the HTTP status).
    pub code: Code,
    /// The first error's `reason` (`notFound`, `duplicate`, `rateLimitExceeded`,
    /// `quotaExceeded`, `backendError`, ...), if sent.
    pub reason: Option<String>,
    /// The service's message.
    pub message: String,
}

impl RestStatus {
    /// Reads an error answer. A body that is not the API's JSON error keeps its first 200
    /// characters as the message.
    pub fn from_response(http: u16, body: &str) -> Self {
        #[derive(Deserialize)]
        struct Envelope {
            error: Body,
        }
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            message: String,
            #[serde(default)]
            status: Option<String>,
            #[serde(default)]
            errors: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            #[serde(default)]
            reason: Option<String>,
        }
        match serde_json::from_str::<Envelope>(body) {
            Ok(Envelope { error }) => Self {
                http,
                code: error
                    .status
                    .as_deref()
                    .and_then(code_from_name)
                    .unwrap_or_else(|| code_from_http(http)),
                reason: error.errors.into_iter().find_map(|e| e.reason),
                message: error.message,
            },
            Err(_) => Self {
                http,
                code: code_from_http(http),
                reason: None,
                message: body.chars().take(200).collect(),
            },
        }
    }

    /// No answer: the connection failed, broke, or the deadline passed.
    pub fn transport(message: impl Into<String>) -> Self {
        Self {
            http: 0,
            code: Code::Unavailable,
            reason: None,
            message: message.into(),
        }
    }

    /// True if no answer came from the server.
    pub fn is_transport_failure(&self) -> bool {
        self.http == 0
    }

    /// True for 404.
    pub fn is_not_found(&self) -> bool {
        self.http == 404
    }

    /// True for 409 (the resource exists already).
    pub fn is_already_exists(&self) -> bool {
        self.http == 409
    }
}

impl fmt::Display for RestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.http == 0 {
            return write!(f, "no answer: {}", self.message);
        }
        write!(f, "HTTP {} {:?}", self.http, self.code)?;
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for RestStatus {}

/// `google.rpc.Code` by name, as `error.status` spells it.
fn code_from_name(name: &str) -> Option<Code> {
    Some(match name {
        "OK" => Code::Ok,
        "CANCELLED" => Code::Cancelled,
        "UNKNOWN" => Code::Unknown,
        "INVALID_ARGUMENT" => Code::InvalidArgument,
        "DEADLINE_EXCEEDED" => Code::DeadlineExceeded,
        "NOT_FOUND" => Code::NotFound,
        "ALREADY_EXISTS" => Code::AlreadyExists,
        "PERMISSION_DENIED" => Code::PermissionDenied,
        "RESOURCE_EXHAUSTED" => Code::ResourceExhausted,
        "FAILED_PRECONDITION" => Code::FailedPrecondition,
        "ABORTED" => Code::Aborted,
        "OUT_OF_RANGE" => Code::OutOfRange,
        "UNIMPLEMENTED" => Code::Unimplemented,
        "INTERNAL" => Code::Internal,
        "UNAVAILABLE" => Code::Unavailable,
        "DATA_LOSS" => Code::DataLoss,
        "UNAUTHENTICATED" => Code::Unauthenticated,
        _ => return None,
    })
}

/// The canonical code of an HTTP status (google.rpc's mapping).
fn code_from_http(http: u16) -> Code {
    match http {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::AlreadyExists,
        412 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        500 => Code::Internal,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_api_error_body() {
        let body = r#"{"error":{"code":404,"message":"Not found: Table p:d.t","status":"NOT_FOUND",
                       "errors":[{"reason":"notFound","message":"Not found: Table p:d.t"}]}}"#;
        let status = RestStatus::from_response(404, body);
        assert_eq!(status.code, Code::NotFound);
        assert_eq!(status.reason.as_deref(), Some("notFound"));
        assert!(status.is_not_found());
        assert_eq!(
            status.to_string(),
            "HTTP 404 NotFound (notFound): Not found: Table p:d.t"
        );
    }

    #[test]
    fn a_body_that_is_not_json_keeps_the_http_code() {
        let status = RestStatus::from_response(503, "<html>upstream connect error</html>");
        assert_eq!(status.code, Code::Unavailable);
        assert_eq!(status.reason, None);
        assert!(status.message.contains("upstream"));
        assert!(RestStatus::transport("reset").is_transport_failure());
    }
}
