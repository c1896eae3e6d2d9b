//! Live counters of loads: what the writers have had acknowledged so far, readable at any
//! time from another task (a progress bar, metrics).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Counters shared by every writer of the loads it is given to; cheap to clone (one `Arc`)
/// and to update (a few relaxed atomic adds per acknowledged request).
///
/// A progress made with [`LoadProgress::child`] also adds everything it counts to its parent,
/// so one handle can follow a single load while another follows a whole session.
///
/// ```
/// use datafusion_bigquery::load::LoadProgress;
/// let session = LoadProgress::new();
/// let one_load = session.child();
/// assert_eq!(one_load.snapshot().rows, 0);
/// assert_eq!(session.snapshot(), one_load.snapshot());
/// ```
#[derive(Debug, Clone, Default)]
pub struct LoadProgress {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    rows: AtomicU64,
    bytes: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    streams: AtomicU64,
    append_latency_nanos: AtomicU64,
    append_latency_max_nanos: AtomicU64,
    loads: AtomicU64,
    commit_nanos: AtomicU64,
    /// Nanoseconds since the Unix epoch of the last commit; 0 when there was none.
    last_commit_nanos: AtomicU64,
    rows_committed: AtomicU64,
    streams_reused: AtomicU64,
    streams_resumed: AtomicU64,
    rows_skipped: AtomicU64,
    reports: Mutex<Vec<CheckpointReport>>,
    parent: Option<Arc<Counters>>,
}

/// What a checkpointed load (`bigquery.checkpoint`) did, reported once per load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointReport {
    /// The load had committed before; nothing was written.
    AlreadyCommitted {
        /// The load.
        load_id: String,
        /// When it committed (RFC 3339), if the service said.
        commit_time: Option<String>,
        /// Rows it committed.
        rows: u64,
        /// True if its commit record was rebuilt from the streams (the committing run died
        /// before writing it).
        recovered: bool,
    },
    /// The load committed in this run.
    Committed {
        /// The load.
        load_id: String,
        /// True if partitions replay, so open streams were resumed; false if every
        /// uncommitted partition started over.
        replayable: bool,
    },
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    /// Rows acknowledged by the service (written to PENDING streams, not yet committed).
    pub rows: u64,
    /// Encoded row bytes acknowledged.
    pub bytes: u64,
    /// AppendRows requests acknowledged.
    pub requests: u64,
    /// AppendRows reconnects after transient failures.
    pub retries: u64,
    /// PENDING streams created.
    pub streams: u64,
    /// Sum over acknowledged requests of the time from sending to acknowledgement.
    pub append_latency: Duration,
    /// Longest time a request waited for its acknowledgement.
    pub append_latency_max: Duration,
    /// Loads completed and committed (a load of no rows counts, with no commit).
    pub loads: u64,
    /// Time spent in the commit step (BatchCommitWriteStreams and its retries).
    pub commit_duration: Duration,
    /// The service's time of the last commit.
    pub last_commit_time: Option<SystemTime>,
    /// Rows made visible by commits (with a checkpoint, also rows written by earlier runs).
    pub rows_committed: u64,
    /// Finalized streams of earlier runs committed as they were (checkpoints).
    pub streams_reused: u64,
    /// Open streams of earlier runs resumed (checkpoints).
    pub streams_resumed: u64,
    /// Input rows not written again thanks to checkpoints (reused or resumed streams).
    pub rows_skipped: u64,
}

impl ProgressSnapshot {
    /// What happened between `earlier` and this snapshot (the maximum and the last commit
    /// time are this snapshot's).
    pub fn since(&self, earlier: &ProgressSnapshot) -> ProgressSnapshot {
        ProgressSnapshot {
            rows: self.rows.saturating_sub(earlier.rows),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            requests: self.requests.saturating_sub(earlier.requests),
            retries: self.retries.saturating_sub(earlier.retries),
            streams: self.streams.saturating_sub(earlier.streams),
            append_latency: self.append_latency.saturating_sub(earlier.append_latency),
            append_latency_max: self.append_latency_max,
            loads: self.loads.saturating_sub(earlier.loads),
            commit_duration: self.commit_duration.saturating_sub(earlier.commit_duration),
            last_commit_time: self.last_commit_time,
            rows_committed: self.rows_committed.saturating_sub(earlier.rows_committed),
            streams_reused: self.streams_reused.saturating_sub(earlier.streams_reused),
            streams_resumed: self.streams_resumed.saturating_sub(earlier.streams_resumed),
            rows_skipped: self.rows_skipped.saturating_sub(earlier.rows_skipped),
        }
    }

    /// Mean time from sending a request to its acknowledgement (zero with no requests).
    pub fn append_latency_mean(&self) -> Duration {
        match u32::try_from(self.requests) {
            Ok(0) => Duration::ZERO,
            Ok(n) => self.append_latency / n,
            Err(_) => Duration::from_nanos(duration_nanos(self.append_latency) / self.requests),
        }
    }
}

impl LoadProgress {
    /// Counters starting at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// New counters starting at zero whose updates also go to these.
    pub fn child(&self) -> Self {
        Self {
            counters: Arc::new(Counters {
                parent: Some(self.counters.clone()),
                ..Counters::default()
            }),
        }
    }

    /// The current values.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let c = &self.counters;
        let last_commit = c.last_commit_nanos.load(Ordering::Relaxed);
        ProgressSnapshot {
            rows: c.rows.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            streams: c.streams.load(Ordering::Relaxed),
            append_latency: Duration::from_nanos(c.append_latency_nanos.load(Ordering::Relaxed)),
            append_latency_max: Duration::from_nanos(c.append_latency_max_nanos.load(Ordering::Relaxed)),
            loads: c.loads.load(Ordering::Relaxed),
            commit_duration: Duration::from_nanos(c.commit_nanos.load(Ordering::Relaxed)),
            last_commit_time: (last_commit > 0).then(|| UNIX_EPOCH + Duration::from_nanos(last_commit)),
            rows_committed: c.rows_committed.load(Ordering::Relaxed),
            streams_reused: c.streams_reused.load(Ordering::Relaxed),
            streams_resumed: c.streams_resumed.load(Ordering::Relaxed),
            rows_skipped: c.rows_skipped.load(Ordering::Relaxed),
        }
    }

    /// Applies `update` to these counters and every parent's.
    fn each(&self, update: impl Fn(&Counters)) {
        let mut current = Some(&self.counters);
        while let Some(counters) = current {
            update(counters);
            current = counters.parent.as_ref();
        }
    }

    /// A request of `rows` rows and `bytes` bytes was acknowledged `latency` after it was sent.
    pub(crate) fn acknowledged(&self, rows: u64, bytes: u64, latency: Duration) {
        let nanos = duration_nanos(latency);
        self.each(|c| {
            c.rows.fetch_add(rows, Ordering::Relaxed);
            c.bytes.fetch_add(bytes, Ordering::Relaxed);
            c.requests.fetch_add(1, Ordering::Relaxed);
            c.append_latency_nanos.fetch_add(nanos, Ordering::Relaxed);
            c.append_latency_max_nanos.fetch_max(nanos, Ordering::Relaxed);
        });
    }

    /// A PENDING stream was created.
    pub(crate) fn stream_created(&self) {
        self.each(|c| {
            c.streams.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// An AppendRows connection was reopened after a transient failure.
    pub(crate) fn retried(&self) {
        self.each(|c| {
            c.retries.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// A load finished: its commit step took `duration` and committed at `time` (`None` when
    /// there was nothing to commit).
    pub(crate) fn load_committed(&self, duration: Duration, time: Option<SystemTime>, rows: u64) {
        let nanos = duration_nanos(duration);
        let since_epoch = time.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(duration_nanos);
        self.each(|c| {
            c.loads.fetch_add(1, Ordering::Relaxed);
            c.rows_committed.fetch_add(rows, Ordering::Relaxed);
            c.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
            if let Some(nanos) = since_epoch {
                c.last_commit_nanos.store(nanos.max(1), Ordering::Relaxed);
            }
        });
    }
}

impl LoadProgress {
    /// A finalized stream of `rows` rows from an earlier run will be committed as it is.
    pub(crate) fn stream_reused(&self, rows: u64) {
        self.each(|c| {
            c.streams_reused.fetch_add(1, Ordering::Relaxed);
            c.rows_skipped.fetch_add(rows, Ordering::Relaxed);
        });
    }

    /// An open stream from an earlier run was resumed after its first `skipped` rows.
    pub(crate) fn stream_resumed(&self, skipped: u64) {
        self.each(|c| {
            c.streams_resumed.fetch_add(1, Ordering::Relaxed);
            c.rows_skipped.fetch_add(skipped, Ordering::Relaxed);
        });
    }

    /// Reports what a checkpointed load did.
    pub(crate) fn checkpoint_report(&self, report: CheckpointReport) {
        self.each(|c| {
            if let Ok(mut reports) = c.reports.lock() {
                reports.push(report.clone());
            }
        });
    }

    /// Takes the checkpoint reports made since the last call.
    pub fn take_checkpoint_reports(&self) -> Vec<CheckpointReport> {
        self.counters
            .reports
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

/// A duration in nanoseconds, saturating.
fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_add_to_their_parents() {
        let session = LoadProgress::new();
        let first = session.child();
        let second = session.child();
        first.stream_created();
        first.acknowledged(10, 100, Duration::from_millis(4));
        second.acknowledged(5, 50, Duration::from_millis(8));
        second.retried();
        let commit_at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        second.load_committed(Duration::from_millis(3), Some(commit_at), 5);

        let one = first.snapshot();
        assert_eq!(
            (one.rows, one.bytes, one.requests, one.streams, one.loads),
            (10, 100, 1, 1, 0)
        );
        let all = session.snapshot();
        assert_eq!(
            (all.rows, all.bytes, all.requests, all.retries, all.streams),
            (15, 150, 2, 1, 1)
        );
        assert_eq!(all.append_latency, Duration::from_millis(12));
        assert_eq!(all.append_latency_max, Duration::from_millis(8));
        assert_eq!(all.append_latency_mean(), Duration::from_millis(6));
        assert_eq!((all.loads, all.commit_duration), (1, Duration::from_millis(3)));
        assert_eq!(all.last_commit_time, Some(commit_at));
    }

    #[test]
    fn since_subtracts_counts() {
        let progress = LoadProgress::new();
        progress.acknowledged(10, 100, Duration::from_millis(1));
        let before = progress.snapshot();
        progress.acknowledged(7, 70, Duration::from_millis(2));
        progress.load_committed(Duration::from_millis(1), None, 0);
        let delta = progress.snapshot().since(&before);
        assert_eq!((delta.rows, delta.bytes, delta.requests, delta.loads), (7, 70, 1, 1));
        assert_eq!(delta.append_latency, Duration::from_millis(2));
        assert_eq!(delta.last_commit_time, None);
        assert_eq!(ProgressSnapshot::default().append_latency_mean(), Duration::ZERO);
    }
}
