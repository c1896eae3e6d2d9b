//! Faults and pauses a test can inject into the embedded server, and what the server counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

/// Counters of what the server received.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) append_requests: AtomicU64,
    pub(crate) largest_append_bytes: AtomicU64,
    pub(crate) rows_appended: AtomicU64,
    pub(crate) streams_created: AtomicU64,
    pub(crate) commits: AtomicU64,
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// AppendRows requests received (accepted or not).
    pub append_requests: u64,
    /// Size of the largest AppendRows request, in bytes.
    pub largest_append_bytes: u64,
    /// Rows accepted by AppendRows.
    pub rows_appended: u64,
    /// Write streams created.
    pub streams_created: u64,
    /// Successful BatchCommitWriteStreams calls.
    pub commits: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ServerStats {
        ServerStats {
            append_requests: self.append_requests.load(Ordering::SeqCst),
            largest_append_bytes: self.largest_append_bytes.load(Ordering::SeqCst),
            rows_appended: self.rows_appended.load(Ordering::SeqCst),
            streams_created: self.streams_created.load(Ordering::SeqCst),
            commits: self.commits.load(Ordering::SeqCst),
        }
    }
}

/// Holds BatchCommitWriteStreams calls until released, so a test can look at the table
/// while a commit is waiting.
#[derive(Debug)]
pub struct CommitGate {
    arrived: Notify,
    release: Semaphore,
}

impl Default for CommitGate {
    fn default() -> Self {
        Self {
            arrived: Notify::new(),
            release: Semaphore::new(0),
        }
    }
}

impl CommitGate {
    /// Waits until a commit is being held.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// Lets one held commit proceed.
    pub fn release(&self) {
        self.release.add_permits(1);
    }

    pub(crate) async fn pass(&self) {
        self.arrived.notify_one();
        if let Ok(permit) = self.release.acquire().await {
            permit.forget();
        }
    }
}

/// Injected faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Answer the n-th AppendRows request (1-based, across connections) with this code.
    pub(crate) fail_append: Mutex<Option<(u64, tonic::Code)>>,
    /// Delay before answering each AppendRows request.
    pub(crate) append_delay: Mutex<Duration>,
    /// Hold commits at this gate.
    pub(crate) commit_gate: Mutex<Option<Arc<CommitGate>>>,
}

impl Faults {
    pub(crate) fn append_failure(&self, request_number: u64) -> Option<tonic::Code> {
        let guard = self.fail_append.lock().ok()?;
        guard.filter(|(n, _)| *n == request_number).map(|(_, code)| code)
    }

    pub(crate) fn append_delay(&self) -> Duration {
        self.append_delay.lock().map(|d| *d).unwrap_or_default()
    }

    pub(crate) fn commit_gate(&self) -> Option<Arc<CommitGate>> {
        self.commit_gate.lock().ok().and_then(|g| g.clone())
    }
}
