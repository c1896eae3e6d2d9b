//! Faults and pauses a test can inject into the embedded server, and what the server counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

pub use crate::rpc::{RestCall, Rpc};

/// Counters of what the server received.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) append_requests: AtomicU64,
    pub(crate) arrow_requests: AtomicU64,
    pub(crate) largest_append_bytes: AtomicU64,
    pub(crate) rows_appended: AtomicU64,
    pub(crate) row_bytes_appended: AtomicU64,
    pub(crate) streams_created: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) create_calls: AtomicU64,
    pub(crate) connections_closed: AtomicU64,
    pub(crate) throttled: AtomicU64,
    /// Open AppendRows calls per client connection (its address), and the most seen at once.
    pub(crate) calls_per_connection: Mutex<(HashMap<std::net::SocketAddr, u64>, u64)>,
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// AppendRows requests received (accepted or not).
    pub append_requests: u64,
    /// AppendRows requests that carried Arrow rows (accepted or not).
    pub arrow_requests: u64,
    /// Size of the largest AppendRows request, in bytes.
    pub largest_append_bytes: u64,
    /// Rows accepted by AppendRows.
    pub rows_appended: u64,
    /// Size of the rows accepted by AppendRows (serialized rows, without framing).
    pub row_bytes_appended: u64,
    /// Write streams created.
    pub streams_created: u64,
    /// Successful BatchCommitWriteStreams calls.
    pub commits: u64,
    /// Injected faults that fired.
    pub faults_injected: u64,
    /// AppendRows connections the server ended by itself (idle close, connection limit).
    pub connections_closed: u64,
    /// Requests and calls refused for a quota (throttling switches and quota faults).
    pub throttled: u64,
    /// The most AppendRows calls open at once on one client connection.
    pub peak_append_calls_per_connection: u64,
}

impl Counters {
    /// Counts an AppendRows call opened (`true`) or ended on the connection from `peer`.
    pub(crate) fn append_call(&self, peer: Option<std::net::SocketAddr>, opened: bool) {
        let (Some(peer), Ok(mut calls)) = (peer, self.calls_per_connection.lock()) else {
            return;
        };
        let (open, peak) = &mut *calls;
        let n = open.entry(peer).or_insert(0);
        if opened {
            *n += 1;
            *peak = (*peak).max(*n);
        } else {
            *n = n.saturating_sub(1);
        }
    }

    pub(crate) fn snapshot(&self, faults: &Faults) -> ServerStats {
        ServerStats {
            append_requests: self.append_requests.load(Ordering::SeqCst),
            arrow_requests: self.arrow_requests.load(Ordering::SeqCst),
            largest_append_bytes: self.largest_append_bytes.load(Ordering::SeqCst),
            rows_appended: self.rows_appended.load(Ordering::SeqCst),
            row_bytes_appended: self.row_bytes_appended.load(Ordering::SeqCst),
            streams_created: self.streams_created.load(Ordering::SeqCst),
            commits: self.commits.load(Ordering::SeqCst),
            faults_injected: faults.injected.load(Ordering::SeqCst),
            connections_closed: self.connections_closed.load(Ordering::SeqCst),
            throttled: self.throttled.load(Ordering::SeqCst),
            peak_append_calls_per_connection: self.calls_per_connection.lock().map(|c| c.1).unwrap_or(0),
        }
    }
}

/// Who called: every user agent and AppendRows trace id the server saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientsSeen {
    /// `user-agent` headers of AppendRows calls.
    pub user_agents: std::collections::BTreeSet<String>,
    /// Non-empty `trace_id`s of AppendRows requests.
    pub trace_ids: std::collections::BTreeSet<String>,
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

/// A fault on one AppendRows request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFault {
    /// Answer the request with this status in the response's `error` (RESOURCE_EXHAUSTED
    /// throttles); the connection stays open.
    Fail(tonic::Code),
    /// Break the connection with UNAVAILABLE without processing the request.
    Cut,
    /// Process the request, then break the connection before answering it (the rows are in,
    /// the client does not know).
    CutAfter,
    /// End the response stream cleanly before processing the request, as a draining server does.
    Drain,
    /// Reject the request's second row with a row error (FIELDS_ERROR), as the service does
    /// for a value it cannot take.
    RowError,
    /// Refuse the request with the AppendRows throughput quota (RESOURCE_EXHAUSTED, a rate:
    /// retried after a longer backoff); the connection stays open.
    Throttle,
    /// Refuse the request with an allocation quota (RESOURCE_EXHAUSTED with `ErrorInfo`
    /// RESOURCE_QUOTA_EXCEEDED and a `QuotaFailure`): retrying cannot help.
    QuotaExceeded,
    /// Never answer this request nor any later one on its connection, keeping the
    /// connection open: a server that stopped answering.
    Hang,
}

/// A fault on one unary call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcFault {
    /// Fail with this code without doing anything.
    Fail(tonic::Code),
    /// Do the work, then report this code (an ambiguous failure).
    ApplyThenFail(tonic::Code),
    /// Refuse with the stream-creation quota (RESOURCE_EXHAUSTED; meant for CreateWriteStream).
    StreamQuota,
    /// Never answer the call (the client's deadline ends it).
    Hang,
}

/// A fault on one call of the v2 REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestFault {
    /// Answer with this HTTP status and the REST API's error body for it, doing nothing.
    Fail(u16),
    /// Answer (and do the work) only after this delay, so that a client's deadline fires
    /// first.
    Hang(Duration),
    /// jobs.insert only: record the job as DONE with this `errorResult.reason`, copying
    /// nothing. On any other call, answer 500 (backendError).
    FailJob {
        /// The `reason` of the job's `errorResult` (`backendError`, `rateLimitExceeded`...).
        reason: String,
    },
}

/// Injected faults, keyed by request or call number (1-based).
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Faults by AppendRows request number, counted over all connections.
    pub(crate) append: Mutex<HashMap<u64, AppendFault>>,
    /// Faults by (RPC, call number of that RPC).
    pub(crate) rpc: Mutex<HashMap<(Rpc, u64), RpcFault>>,
    /// Calls so far per RPC.
    pub(crate) rpc_calls: Mutex<HashMap<Rpc, u64>>,
    /// Faults by (REST call, call number of that call).
    pub(crate) rest: Mutex<HashMap<(RestCall, u64), RestFault>>,
    /// Calls so far per REST call.
    pub(crate) rest_calls: Mutex<HashMap<RestCall, u64>>,
    /// Faults that fired.
    pub(crate) injected: AtomicU64,
    /// Delay before answering each AppendRows request.
    pub(crate) append_delay: Mutex<Duration>,
    /// Hold commits at this gate.
    pub(crate) commit_gate: Mutex<Option<Arc<CommitGate>>>,
    /// Hold the answers of applied commits at this gate.
    pub(crate) commit_reply_gate: Mutex<Option<Arc<CommitGate>>>,
}

impl Faults {
    /// The fault planned for AppendRows request `number`, if any (counted as injected).
    pub(crate) fn append_fault(&self, number: u64) -> Option<AppendFault> {
        let fault = self.append.lock().ok()?.remove(&number);
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }

    /// Counts a call of `rpc` and returns the fault planned for it, if any.
    pub(crate) fn rpc_fault(&self, rpc: Rpc) -> Option<RpcFault> {
        let number = {
            let mut calls = self.rpc_calls.lock().ok()?;
            let n = calls.entry(rpc).or_insert(0);
            *n += 1;
            *n
        };
        let fault = self.rpc.lock().ok()?.remove(&(rpc, number));
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }

    /// Counts a call of `call` and returns the fault planned for it, if any.
    pub(crate) fn rest_fault(&self, call: RestCall) -> Option<RestFault> {
        let number = {
            let mut calls = self.rest_calls.lock().ok()?;
            let n = calls.entry(call).or_insert(0);
            *n += 1;
            *n
        };
        let fault = self.rest.lock().ok()?.remove(&(call, number));
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }

    /// Calls of `call` received so far.
    pub(crate) fn rest_calls(&self, call: RestCall) -> u64 {
        self.rest_calls
            .lock()
            .map(|calls| calls.get(&call).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub(crate) fn append_delay(&self) -> Duration {
        self.append_delay.lock().map(|d| *d).unwrap_or_default()
    }

    pub(crate) fn commit_gate(&self) -> Option<Arc<CommitGate>> {
        self.commit_gate.lock().ok().and_then(|g| g.clone())
    }

    pub(crate) fn commit_reply_gate(&self) -> Option<Arc<CommitGate>> {
        self.commit_reply_gate.lock().ok().and_then(|g| g.clone())
    }
}
