//! The retry policy, in one place: what is retried, per RPC and code, and how long to wait.
//!
//! Every decision is made from typed facts: the gRPC code, the `StorageError` code the
//! Storage Write API packs into `google.rpc.Status.details`, the `ErrorInfo` reason of a
//! quota error, and whether the status came from the server or from a broken transport.
//! No message text is searched.
//!
//! | RPC | retried | backoff | source |
//! |---|---|---|---|
//! | AppendRows (connection or response) | UNAVAILABLE, INTERNAL, ABORTED, CANCELLED, DEADLINE_EXCEEDED, UNKNOWN, FAILED_PRECONDITION without a `StorageError`, broken transport | `initial_backoff` doubling to `max_backoff` | Java `ConnectionWorker.isConnectionErrorRetriable`; Go managedwriter `retry.go` (FAILED_PRECONDITION "per guidance from backend team") |
//! | AppendRows | RESOURCE_EXHAUSTED (AppendRows throughput quota) | `throttle_backoff` doubling to `max_backoff` | Java retries every RESOURCE_EXHAUSTED response with exponential backoff |
//! | AppendRows | a `StorageError` (OFFSET_OUT_OF_RANGE, STREAM_FINALIZED, STREAM_NOT_FOUND, INVALID_STREAM_STATE, SCHEMA_MISMATCH_EXTRA_FIELDS, ...): never | | Java `Exceptions.java` |
//! | GetWriteStream, FinalizeWriteStream, BatchCommitWriteStreams, FlushRows | DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED, broken transport | `initial_backoff` doubling | `bigquerystorage_grpc_service_config.json` |
//! | CreateWriteStream | DEADLINE_EXCEEDED, UNAVAILABLE, broken transport | `initial_backoff` doubling | service config |
//! | CreateWriteStream | RESOURCE_EXHAUSTED (streams per hour) | `quota_backoff` (10 s) x1.3 up to 120 s | service config |
//! | CreateWriteStream | NOT_FOUND on a table whose schema was just read | 1 s, for up to `not_found_timeout` | table metadata reaches the Storage Write API late (duckdb-bigquery #133, google-cloud-go #12449) |
//! | any | RESOURCE_EXHAUSTED whose `ErrorInfo.reason` is RESOURCE_QUOTA_EXCEEDED (an allocation quota): never; the error names the quota | | `google.api.ErrorReason` |
//!
//! The real service sends no structured detail with the AppendRows throughput quota today
//! (Go's `retry.go` notes it matches the message for want of one), so every
//! RESOURCE_EXHAUSTED without an allocation-quota reason is treated as a rate quota: retried
//! with the longer backoff within the budget, and reported with the service's words (which
//! name the quota) when the budget is spent. A `RetryInfo` delay, when sent, is a floor on
//! the wait.
//!
//! **The budget.** An *episode* of failures starts at its first failure and ends at the next
//! success; within it, at most `max_attempts` attempts and `timeout` of time. A writer that
//! waited an hour for its input before its first error still has its whole budget.
//!
//! **Connections closed by the server.** The service ends an AppendRows stream that carried
//! nothing for 600 s (ABORTED), and closes long-lived connections at any time. A close of a
//! connection that had nothing in flight, or that answered at least one request since it was
//! opened, costs no attempt: the writer reconnects at once and resends what is unanswered.
//! Only a connection that fails before answering anything counts, so a server that refuses
//! every connection still exhausts the budget.
//!
//! **Size refusals.** A request larger than `LEGACY_REQUEST_LIMIT` (10 MB) refused with
//! INVALID_ARGUMENT or RESOURCE_EXHAUSTED (servers that keep the old 10 MB limit) is split in
//! two and sent again; the halves cost no attempt.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use tonic::Code;

use crate::error::{Error, Result, ServiceStatus, StorageErrorCode, status::RESOURCE_QUOTA_EXCEEDED};
use crate::rpc::Rpc;

/// The request size limit the service documented until 2026-08 and that some servers still
/// apply (bqemulator: 10 MiB). A refusal of a request above it is taken as a size refusal.
pub(crate) const LEGACY_REQUEST_LIMIT: usize = 10_000_000;

/// Longest wait between two CreateWriteStream attempts under its quota (service config).
const QUOTA_MAX_BACKOFF: Duration = Duration::from_secs(120);

/// Wait between CreateWriteStream attempts while a new table is not yet visible.
const NOT_FOUND_BACKOFF: Duration = Duration::from_secs(1);

/// How failures are retried.
///
/// ```
/// use std::time::Duration;
/// use datafusion_bigquery::retry::RetryConfig;
/// let fast = RetryConfig { initial_backoff: Duration::from_millis(5), ..RetryConfig::default() };
/// assert_eq!(fast.max_attempts, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per episode of failures, the failing one included
    /// (`bigquery.retry_max_attempts`, default 10).
    pub max_attempts: u32,
    /// First backoff (`bigquery.retry_initial_backoff_ms`, default 100 ms); doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest backoff between two attempts (`bigquery.retry_max_backoff_ms`, default 10 s).
    pub max_backoff: Duration,
    /// First backoff after RESOURCE_EXHAUSTED on AppendRows and the unary calls
    /// (`bigquery.retry_throttle_backoff_ms`, default 1 s).
    pub throttle_backoff: Duration,
    /// First backoff after CreateWriteStream's quota refusal (`bigquery.retry_quota_backoff_ms`,
    /// default 10 s); grows by 1.3 per attempt up to 120 s.
    pub quota_backoff: Duration,
    /// Time an episode of failures may last (`bigquery.retry_timeout_ms`, default 5 min),
    /// counted from its first failure.
    pub timeout: Duration,
    /// How long CreateWriteStream's NOT_FOUND is waited out on a table that exists
    /// (`bigquery.retry_not_found_timeout_ms`, default 2 min).
    pub not_found_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            throttle_backoff: Duration::from_secs(1),
            quota_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
            not_found_timeout: Duration::from_secs(120),
        }
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient: retry after the usual backoff.
    Retry,
    /// A rate quota: retry after the longer throttle backoff.
    Throttled,
    /// CreateWriteStream's per-hour quota: retry after 10 s, growing to 120 s.
    StreamQuota,
    /// A table that exists is not yet visible to the Storage Write API: wait for it.
    NotYetVisible,
    /// Permanent: fail.
    Fatal,
}

/// Decides what a failed call's status means, per RPC (see the module's table).
pub(crate) fn classify(rpc: Rpc, status: &ServiceStatus) -> Disposition {
    let code = status.code();
    if code == Code::ResourceExhausted && status.error_reason() == Some(RESOURCE_QUOTA_EXCEEDED) {
        return Disposition::Fatal;
    }
    if status.is_transport_failure() {
        // The call broke on the way; the server never answered it.
        return Disposition::Retry;
    }
    match rpc {
        Rpc::AppendRows => classify_append(code, status.storage_error_code()),
        Rpc::CreateWriteStream => match code {
            Code::DeadlineExceeded | Code::Unavailable => Disposition::Retry,
            Code::ResourceExhausted => Disposition::StreamQuota,
            _ => Disposition::Fatal,
        },
        Rpc::GetWriteStream | Rpc::FinalizeWriteStream | Rpc::BatchCommitWriteStreams | Rpc::FlushRows => match code {
            Code::DeadlineExceeded | Code::Unavailable => Disposition::Retry,
            Code::ResourceExhausted => Disposition::Throttled,
            _ => Disposition::Fatal,
        },
    }
}

/// A REST call: no answer, 5xx and rate limits are retried (BigQuery's error guidance: retry
/// `backendError`, `internalError` and `rateLimitExceeded` with backoff); an allocation quota
/// (`quotaExceeded`) and every other 4xx are final. Every call is safe to repeat: reads,
/// deletes, inserts that meet their own earlier attempt (409) and jobs with a client id.
fn classify_rest(status: &crate::error::RestStatus) -> Disposition {
    if status.is_transport_failure() {
        return Disposition::Retry;
    }
    match (status.http, status.reason.as_deref()) {
        (_, Some("quotaExceeded")) => Disposition::Fatal,
        (429, _) | (_, Some("rateLimitExceeded")) => Disposition::Throttled,
        (500 | 502 | 503 | 504, _) | (_, Some("backendError" | "internalError")) => Disposition::Retry,
        _ => Disposition::Fatal,
    }
}

/// AppendRows: the codes Google's clients reconnect on; a `StorageError` is a verdict on the
/// request or the stream and is never retried.
fn classify_append(code: Code, storage: Option<StorageErrorCode>) -> Disposition {
    if storage.is_some() {
        return Disposition::Fatal;
    }
    match code {
        Code::Unavailable
        | Code::Internal
        | Code::Aborted
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Unknown
        | Code::FailedPrecondition => Disposition::Retry,
        Code::ResourceExhausted => Disposition::Throttled,
        _ => Disposition::Fatal,
    }
}

/// True if an AppendRows refusal with `code` of a request of `request_bytes` is a size
/// refusal, to be answered by splitting the request (see [`LEGACY_REQUEST_LIMIT`]).
pub(crate) fn is_size_refusal(code: Code, storage: Option<StorageErrorCode>, request_bytes: usize) -> bool {
    storage.is_none()
        && matches!(code, Code::InvalidArgument | Code::ResourceExhausted)
        && request_bytes > LEGACY_REQUEST_LIMIT
}

/// True if a connection that the server closed may be reopened without counting an attempt:
/// it had nothing in flight (an idle close), or it answered requests before closing (an aged
/// or draining connection). Either way the close says nothing about the requests.
pub(crate) fn is_free_reconnect(answered_on_connection: u64, in_flight: usize) -> bool {
    in_flight == 0 || answered_on_connection > 0
}

impl Error {
    /// How this error should be handled by a retry loop.
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Rpc { rpc, status, .. } => classify(*rpc, status),
            Error::Append { status, .. } => classify(Rpc::AppendRows, status),
            Error::Rest { status, .. } => classify_rest(status),
            Error::TableNotFound {
                rpc: Rpc::CreateWriteStream,
                ..
            } => Disposition::NotYetVisible,
            Error::Unresponsive { .. } | Error::Disconnected { .. } | Error::Connect { .. } => Disposition::Retry,
            _ => Disposition::Fatal,
        }
    }

    /// True if retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        self.disposition() != Disposition::Fatal
    }

    /// The wait the service asked for, if it said.
    fn retry_delay(&self) -> Option<Duration> {
        match self {
            Error::Rpc { status, .. } | Error::Append { status, .. } => status.retry_delay(),
            _ => None,
        }
    }
}

/// Backoff state of one operation: the current episode of failures.
#[derive(Debug)]
pub(crate) struct Backoff {
    config: RetryConfig,
    attempt: u32,
    /// When the episode's first failure happened; `None` between episodes.
    episode_started: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(config: &RetryConfig) -> Self {
        Self {
            config: config.clone(),
            attempt: 0,
            episode_started: None,
        }
    }

    /// Ends the episode after a success: the next failure starts a new one.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
        self.episode_started = None;
    }

    /// Attempts that failed in this episode.
    pub(crate) fn failures(&self) -> u32 {
        self.attempt
    }

    /// The wait before the next attempt after a failure, or `None` when the failure is
    /// permanent or the episode's attempts or time are used up.
    pub(crate) fn next_delay(&mut self, disposition: Disposition) -> Option<Duration> {
        self.next_delay_at_least(disposition, None)
    }

    /// [`Backoff::next_delay`], waiting at least `floor` (the service's `RetryInfo`).
    pub(crate) fn next_delay_at_least(
        &mut self,
        disposition: Disposition,
        floor: Option<Duration>,
    ) -> Option<Duration> {
        let started = *self.episode_started.get_or_insert_with(Instant::now);
        self.attempt += 1;
        let config = &self.config;
        let exponent = self.attempt.saturating_sub(1).min(20);
        let (delay, budget, attempts_bounded) = match disposition {
            Disposition::Fatal => return None,
            Disposition::Retry => (
                grow(config.initial_backoff, 2.0, exponent, config.max_backoff),
                config.timeout,
                true,
            ),
            Disposition::Throttled => {
                let base = config.throttle_backoff.max(config.initial_backoff);
                (
                    grow(base, 2.0, exponent, config.max_backoff.max(base)),
                    config.timeout,
                    true,
                )
            }
            Disposition::StreamQuota => (
                grow(
                    config.quota_backoff,
                    1.3,
                    exponent,
                    QUOTA_MAX_BACKOFF.max(config.quota_backoff),
                ),
                config.timeout,
                true,
            ),
            // Bounded by time alone: the table is known to exist.
            Disposition::NotYetVisible => (
                NOT_FOUND_BACKOFF
                    .min(config.not_found_timeout / 4)
                    .max(config.initial_backoff),
                config.not_found_timeout,
                false,
            ),
        };
        if attempts_bounded && self.attempt >= config.max_attempts.max(1) {
            return None;
        }
        // Jitter in [delay/2, delay], so that writers that failed together do not retry together.
        let jittered = (delay / 2 + delay.mul_f64(random_fraction() / 2.0)).max(floor.unwrap_or_default());
        if started.elapsed() + jittered > budget {
            return None;
        }
        Some(jittered)
    }
}

/// `base * factor^exponent`, capped.
fn grow(base: Duration, factor: f64, exponent: u32, cap: Duration) -> Duration {
    let scaled = base.as_secs_f64() * factor.powi(exponent as i32);
    Duration::try_from_secs_f64(scaled).unwrap_or(cap).min(cap)
}

/// A random number in [0, 1) from the standard library's per-process random hasher keys.
fn random_fraction() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `operation` until it succeeds, fails permanently, or the policy gives up.
pub(crate) async fn with_retries<T, F, Fut>(
    config: &RetryConfig,
    what: impl std::fmt::Display,
    mut operation: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = Backoff::new(config);
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(err) => match backoff.next_delay_at_least(err.disposition(), err.retry_delay()) {
                Some(delay) => {
                    tracing::warn!(operation = %what, attempt = backoff.failures(), error = %err, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::error::status::{Detail, RATE_LIMIT_EXCEEDED, pack_details, status_with_details};
    use crate::proto::StorageError;
    use crate::proto::rpc::ErrorInfo;

    fn status(code: Code) -> ServiceStatus {
        ServiceStatus::from(tonic::Status::new(code, "words that decide nothing"))
    }

    fn with_storage_error(code: Code, storage: StorageErrorCode) -> ServiceStatus {
        let details = pack_details([Detail::Storage(StorageError {
            code: storage as i32,
            entity: "s".into(),
            error_message: String::new(),
        })]);
        ServiceStatus::from(status_with_details(code, String::new(), details))
    }

    fn quota(reason: &str) -> ServiceStatus {
        let details = pack_details([Detail::Info(ErrorInfo {
            reason: reason.into(),
            domain: "googleapis.com".into(),
            metadata: HashMap::new(),
        })]);
        ServiceStatus::from(status_with_details(Code::ResourceExhausted, String::new(), details))
    }

    #[test]
    fn appends_reconnect_on_the_codes_google_clients_retry() {
        for code in [
            Code::Unavailable,
            Code::Internal,
            Code::Aborted,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::Unknown,
            Code::FailedPrecondition,
        ] {
            assert_eq!(classify(Rpc::AppendRows, &status(code)), Disposition::Retry, "{code:?}");
        }
        assert_eq!(
            classify(Rpc::AppendRows, &status(Code::ResourceExhausted)),
            Disposition::Throttled
        );
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::PermissionDenied,
            Code::OutOfRange,
            Code::AlreadyExists,
        ] {
            assert_eq!(classify(Rpc::AppendRows, &status(code)), Disposition::Fatal, "{code:?}");
        }
        // A StorageError is a verdict, whatever the code.
        for storage in [
            StorageErrorCode::StreamFinalized,
            StorageErrorCode::OffsetOutOfRange,
            StorageErrorCode::StreamNotFound,
            StorageErrorCode::InvalidStreamState,
        ] {
            let s = with_storage_error(Code::FailedPrecondition, storage);
            assert_eq!(classify(Rpc::AppendRows, &s), Disposition::Fatal, "{storage:?}");
        }
    }

    #[test]
    fn an_answer_that_breaks_the_api_is_final_and_named() {
        let err = Error::Protocol {
            rpc: Rpc::AppendRows,
            entity: "projects/p/datasets/d/tables/t/streams/s".into(),
            message: "a response arrived with no request in flight".into(),
        };
        assert_eq!(err.disposition(), Disposition::Fatal);
        let text = err.to_string();
        assert!(
            text.starts_with(
                "AppendRows for projects/p/datasets/d/tables/t/streams/s: the service's answer breaks the API"
            ),
            "{text}"
        );
        assert!(!text.contains("internal error"), "{text}");
    }

    #[test]
    fn unary_calls_follow_the_service_config() {
        for rpc in [
            Rpc::GetWriteStream,
            Rpc::FinalizeWriteStream,
            Rpc::BatchCommitWriteStreams,
        ] {
            assert_eq!(classify(rpc, &status(Code::Unavailable)), Disposition::Retry);
            assert_eq!(classify(rpc, &status(Code::DeadlineExceeded)), Disposition::Retry);
            assert_eq!(classify(rpc, &status(Code::ResourceExhausted)), Disposition::Throttled);
            for code in [
                Code::Internal,
                Code::Aborted,
                Code::Unknown,
                Code::InvalidArgument,
                Code::NotFound,
            ] {
                assert_eq!(classify(rpc, &status(code)), Disposition::Fatal, "{rpc} {code:?}");
            }
        }
        assert_eq!(
            classify(Rpc::CreateWriteStream, &status(Code::ResourceExhausted)),
            Disposition::StreamQuota
        );
        assert_eq!(
            classify(Rpc::CreateWriteStream, &quota(RATE_LIMIT_EXCEEDED)),
            Disposition::StreamQuota
        );
        // A broken transport is retried, whatever code tonic gave it.
        let reset = tonic::Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert_eq!(
            classify(Rpc::FinalizeWriteStream, &ServiceStatus::from(reset)),
            Disposition::Retry
        );
    }

    #[test]
    fn an_allocation_quota_is_never_retried() {
        for rpc in [Rpc::AppendRows, Rpc::CreateWriteStream, Rpc::BatchCommitWriteStreams] {
            assert_eq!(
                classify(rpc, &quota(RESOURCE_QUOTA_EXCEEDED)),
                Disposition::Fatal,
                "{rpc}"
            );
        }
        assert_eq!(
            classify(Rpc::AppendRows, &quota(RATE_LIMIT_EXCEEDED)),
            Disposition::Throttled
        );
    }

    #[test]
    fn size_refusals_and_free_reconnects() {
        assert!(is_size_refusal(Code::ResourceExhausted, None, 12_000_000));
        assert!(is_size_refusal(Code::InvalidArgument, None, 12_000_000));
        assert!(
            !is_size_refusal(Code::ResourceExhausted, None, 5_000_000),
            "a throttle, not a size refusal"
        );
        assert!(!is_size_refusal(
            Code::InvalidArgument,
            Some(StorageErrorCode::SchemaMismatchExtraFields),
            12_000_000
        ));
        assert!(is_free_reconnect(0, 0), "idle close");
        assert!(is_free_reconnect(3, 2), "aged connection");
        assert!(!is_free_reconnect(0, 2), "failed before answering anything");
    }

    fn config() -> RetryConfig {
        RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            throttle_backoff: Duration::from_secs(1),
            quota_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            not_found_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_gives_up() {
        let config = config();
        let mut backoff = Backoff::new(&config);
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay(Disposition::Retry)).collect();
        assert!(delays.iter().all(Option::is_some));
        let first = delays[0].unwrap();
        assert!(first <= Duration::from_millis(100) && first >= Duration::from_millis(50));
        assert!(delays[3].unwrap() <= Duration::from_millis(300), "capped");
        assert_eq!(backoff.next_delay(Disposition::Retry), None, "attempts used up");
        let mut throttled = Backoff::new(&RetryConfig {
            max_backoff: Duration::from_secs(10),
            ..config.clone()
        });
        assert!(throttled.next_delay(Disposition::Throttled).unwrap() >= Duration::from_millis(500));
        assert_eq!(Backoff::new(&config).next_delay(Disposition::Fatal), None);
        let mut quota = Backoff::new(&config);
        let waits: Vec<_> = (0..4)
            .map(|_| quota.next_delay(Disposition::StreamQuota).unwrap())
            .collect();
        assert!(waits[0] >= Duration::from_secs(5) && waits[0] <= Duration::from_secs(10));
        assert!(waits[3] >= Duration::from_secs_f64(10.0 * 1.3f64.powi(3) / 2.0));
        // NOT_FOUND is bounded by time, not attempts.
        let mut visible = Backoff::new(&config);
        assert!((0..20).all(|_| visible.next_delay(Disposition::NotYetVisible).is_some()));
        let floor = Backoff::new(&config).next_delay_at_least(Disposition::Retry, Some(Duration::from_secs(2)));
        assert_eq!(floor, Some(Duration::from_secs(2)), "RetryInfo is a floor");
    }

    #[test]
    fn the_budget_starts_at_the_first_failure_of_each_episode() {
        let config = RetryConfig {
            timeout: Duration::from_millis(200),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            ..config()
        };
        let mut backoff = Backoff::new(&config);
        // Long before the first failure (a slow input): the budget is untouched.
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            backoff.next_delay(Disposition::Retry).is_some(),
            "first failure after a quiet spell"
        );
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            backoff.next_delay(Disposition::Retry),
            None,
            "the episode outlived its budget"
        );
        backoff.reset();
        assert!(
            backoff.next_delay(Disposition::Retry).is_some(),
            "a success starts a new episode"
        );
    }
}
