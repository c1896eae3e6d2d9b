//! The retry policy, in one place: which failures are retried, and how long to wait.
//!
//! Transient failures (UNAVAILABLE, INTERNAL, ABORTED, DEADLINE_EXCEEDED, CANCELLED, broken
//! connections) are retried with exponential backoff and jitter; RESOURCE_EXHAUSTED (throughput
//! quota) with a longer backoff. INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED,
//! FAILED_PRECONDITION, schema and row errors are never retried.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use tonic::Code;

use crate::error::{Error, Result};

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
    /// Attempts per operation, the first included (`bigquery.retry_max_attempts`, default 10).
    pub max_attempts: u32,
    /// First backoff (`bigquery.retry_initial_backoff_ms`, default 100 ms); doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest backoff between two attempts (default 10 s).
    pub max_backoff: Duration,
    /// First backoff after RESOURCE_EXHAUSTED (default 1 s).
    pub throttle_backoff: Duration,
    /// Total time an operation may spend retrying (`bigquery.retry_timeout_ms`, default 5 min).
    pub timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            throttle_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(300),
        }
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient: retry soon.
    Retry,
    /// Throttled: retry after a longer wait.
    Throttled,
    /// Permanent: fail.
    Fatal,
}

/// Classifies a gRPC status code (and its message, for connection failures reported as UNKNOWN).
pub fn classify(code: Code, message: &str) -> Disposition {
    match code {
        Code::Unavailable | Code::Internal | Code::Aborted | Code::DeadlineExceeded | Code::Cancelled => {
            Disposition::Retry
        }
        Code::ResourceExhausted => Disposition::Throttled,
        Code::Unknown if is_connection_failure(message) => Disposition::Retry,
        _ => Disposition::Fatal,
    }
}

/// True if a message describes a broken connection rather than a refusal.
fn is_connection_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "transport",
        "connection",
        "broken pipe",
        "reset",
        "h2 protocol",
        "stream no longer needed",
        "draining",
        "eof",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

impl Error {
    /// How this error should be handled by a retry loop.
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Rpc { code, message, .. } | Error::Append { code, message, .. } => classify(*code, message),
            Error::Connect { .. } => Disposition::Retry,
            _ => Disposition::Fatal,
        }
    }

    /// True if retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        self.disposition() != Disposition::Fatal
    }
}

/// Backoff state of one operation.
#[derive(Debug)]
pub(crate) struct Backoff {
    config: RetryConfig,
    attempt: u32,
    started: Instant,
}

impl Backoff {
    pub(crate) fn new(config: &RetryConfig) -> Self {
        Self {
            config: config.clone(),
            attempt: 0,
            started: Instant::now(),
        }
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
        self.started = Instant::now();
    }

    /// Attempts that failed so far.
    pub(crate) fn failures(&self) -> u32 {
        self.attempt
    }

    /// The wait before the next attempt, or `None` when attempts or time are used up.
    pub(crate) fn next_delay(&mut self, disposition: Disposition) -> Option<Duration> {
        self.attempt += 1;
        let base = match disposition {
            Disposition::Fatal => return None,
            Disposition::Retry => self.config.initial_backoff,
            Disposition::Throttled => self.config.throttle_backoff.max(self.config.initial_backoff),
        };
        if self.attempt >= self.config.max_attempts.max(1) {
            return None;
        }
        let exponent = self.attempt.saturating_sub(1).min(20);
        let capped = base
            .saturating_mul(1 << exponent)
            .min(self.config.max_backoff.max(base));
        // Full jitter in [capped/2, capped].
        let jittered = capped / 2 + capped.mul_f64(random_fraction() / 2.0);
        if self.started.elapsed() + jittered > self.config.timeout {
            return None;
        }
        Some(jittered)
    }
}

/// A random number in [0, 1) from the standard library's per-process random hasher keys.
fn random_fraction() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `operation` until it succeeds, fails permanently, or the policy gives up.
pub(crate) async fn with_retries<T, F, Fut>(config: &RetryConfig, what: &str, mut operation: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = Backoff::new(config);
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(err) => match backoff.next_delay(err.disposition()) {
                Some(delay) => {
                    tracing::warn!(operation = what, attempt = backoff.failures(), error = %err, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_service_guidance() {
        for code in [
            Code::Unavailable,
            Code::Internal,
            Code::Aborted,
            Code::DeadlineExceeded,
            Code::Cancelled,
        ] {
            assert_eq!(classify(code, ""), Disposition::Retry, "{code:?}");
        }
        assert_eq!(
            classify(Code::ResourceExhausted, "Exceeds 'AppendRows throughput' quota"),
            Disposition::Throttled
        );
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::PermissionDenied,
            Code::FailedPrecondition,
            Code::OutOfRange,
        ] {
            assert_eq!(classify(code, "connection"), Disposition::Fatal, "{code:?}");
        }
        assert_eq!(
            classify(Code::Unknown, "h2 protocol error: connection reset"),
            Disposition::Retry
        );
        assert_eq!(classify(Code::Unknown, "bad row"), Disposition::Fatal);
    }

    #[test]
    fn backoff_grows_is_capped_and_gives_up() {
        let config = RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            throttle_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
        };
        let mut backoff = Backoff::new(&config);
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay(Disposition::Retry)).collect();
        assert!(delays[..4].iter().all(Option::is_some));
        assert!(delays[0].unwrap() <= Duration::from_millis(100) && delays[0].unwrap() >= Duration::from_millis(50));
        assert!(delays[3].unwrap() <= Duration::from_millis(300), "capped");
        assert_eq!(backoff.next_delay(Disposition::Retry), None, "attempts used up");
        let mut throttled = Backoff::new(&RetryConfig {
            max_backoff: Duration::from_secs(10),
            ..config.clone()
        });
        assert!(throttled.next_delay(Disposition::Throttled).unwrap() >= Duration::from_millis(500));
        assert_eq!(Backoff::new(&config).next_delay(Disposition::Fatal), None);
    }
}
