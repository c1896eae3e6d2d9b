//! HTTP errors of the v2 REST API, with the body the service sends:
//! `{"error": {"code", "message", "status", "errors": [{"reason", "message"}]}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::catalog::Refusal;

/// An HTTP error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl RestError {
    /// An error with any status; an invalid status code becomes 500.
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
        }
    }

    /// 400 INVALID_ARGUMENT, reason `invalid`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// 404 NOT_FOUND, reason `notFound`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }

    /// 409 ALREADY_EXISTS, reason `duplicate`.
    pub(crate) fn duplicate(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }
}

impl From<Refusal> for RestError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.message().to_string();
        match refusal {
            Refusal::NotFound(_) => Self::not_found(message),
            Refusal::Duplicate(_) => Self::duplicate(message),
            Refusal::Invalid(_) => Self::invalid(message),
        }
    }
}

/// The `status` and `errors[].reason` the service gives an HTTP status.
pub(crate) fn status_and_reason(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("INVALID_ARGUMENT", "invalid"),
        401 => ("UNAUTHENTICATED", "unauthorized"),
        403 => ("PERMISSION_DENIED", "accessDenied"),
        404 => ("NOT_FOUND", "notFound"),
        409 => ("ALREADY_EXISTS", "duplicate"),
        412 => ("FAILED_PRECONDITION", "failedPrecondition"),
        429 => ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
        500 => ("INTERNAL", "backendError"),
        503 => ("UNAVAILABLE", "backendError"),
        504 => ("DEADLINE_EXCEEDED", "backendError"),
        code if code >= 500 => ("UNKNOWN", "backendError"),
        _ => ("UNKNOWN", "invalid"),
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let (status, reason) = status_and_reason(self.status);
        let body = json!({
            "error": {
                "code": self.status.as_u16(),
                "message": self.message,
                "status": status,
                "errors": [{ "reason": reason, "message": self.message }],
            }
        });
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_their_statuses() {
        let cases = [
            (Refusal::NotFound("n".into()), 404, "NOT_FOUND", "notFound"),
            (Refusal::Duplicate("d".into()), 409, "ALREADY_EXISTS", "duplicate"),
            (Refusal::Invalid("i".into()), 400, "INVALID_ARGUMENT", "invalid"),
        ];
        for (refusal, code, status, reason) in cases {
            let error = RestError::from(refusal);
            assert_eq!(error.status.as_u16(), code);
            assert_eq!(status_and_reason(error.status), (status, reason));
        }
        assert_eq!(RestError::new(7, "x").status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            status_and_reason(StatusCode::TOO_MANY_REQUESTS),
            ("RESOURCE_EXHAUSTED", "rateLimitExceeded")
        );
    }
}
