//! What a checkpoint folder holds, one JSON object per file:
//!
//! - `load.json`: the load's identity (table, input fingerprint, whether its partitions
//!   replay), written once by the first run;
//! - `partition-<n>-<plan>.json`: one worker's progress (its stream, rows acknowledged, input rows
//!   consumed, finalized or not), rewritten every few seconds and at finalize;
//! - `commit.json`: written after the commit (time, streams, rows);
//! - `lease-<generation>.json`: who runs the load now, until when.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// File name of the load record.
pub(crate) const LOAD_FILE: &str = "load.json";
/// File name of the commit record.
pub(crate) const COMMIT_FILE: &str = "commit.json";
/// Prefix of partition checkpoints.
pub(crate) const PARTITION_PREFIX: &str = "partition-";
/// Prefix of lease files.
pub(crate) const LEASE_PREFIX: &str = "lease-";

/// The identity of a load, recorded by its first run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRecord {
    /// The load's id (its folder's name).
    pub load_id: String,
    /// The destination table.
    pub table: String,
    /// Fingerprint of the input plan (files, sizes, modification times, plan shape).
    pub fingerprint: String,
    /// Whether each input partition replays the same rows in the same order.
    pub replayable: bool,
    /// Number of input partitions (workers).
    pub partitions: usize,
    /// When the first run began (RFC 3339).
    pub created_at: String,
}

/// One worker's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCheckpoint {
    /// The input partition the worker writes.
    pub partition: usize,
    /// Its PENDING stream.
    pub stream: String,
    /// Rows the service acknowledged: the stream holds at least offsets `0..acknowledged_rows`.
    pub acknowledged_rows: u64,
    /// Input rows the worker had consumed when this was written.
    pub input_rows: u64,
    /// Encoded bytes acknowledged by the run that wrote this checkpoint.
    pub bytes: u64,
    /// True once the stream is finalized with `acknowledged_rows` rows: the partition is done.
    pub finalized: bool,
    /// Fingerprint of the plan the worker read (files and their layout in partitions): a
    /// stream is resumed only by a worker reading the same.
    #[serde(default)]
    pub source: String,
    /// The run that wrote it.
    pub run_id: String,
    /// When it was written (RFC 3339).
    pub updated_at: String,
}

/// The record of a committed load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The load.
    pub load_id: String,
    /// The destination table.
    pub table: String,
    /// The service's commit time (RFC 3339), when it reported one.
    pub commit_time: Option<String>,
    /// Rows committed.
    pub rows: u64,
    /// The streams committed.
    pub streams: Vec<String>,
    /// When the record was written (RFC 3339).
    pub recorded_at: String,
    /// True if the record was rebuilt from the streams after a run died between its commit
    /// and this record.
    pub recovered: bool,
}

/// A runner's claim on a load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    /// The run holding the lease (every process of one run shares it).
    pub run_id: String,
    /// Host and process id of the process that last renewed it.
    pub holder: String,
    /// Milliseconds since the Unix epoch after which the lease may be taken over.
    pub expires_at_ms: u64,
}

impl LeaseRecord {
    /// True while the lease has not expired.
    pub(crate) fn is_live(&self, now: SystemTime) -> bool {
        millis_since_epoch(now) < self.expires_at_ms
    }

    /// The expiry as RFC 3339.
    pub(crate) fn expires_at(&self) -> String {
        rfc3339(UNIX_EPOCH + Duration::from_millis(self.expires_at_ms))
    }
}

/// The name of the checkpoint file of partition `n` of the plan fingerprinted `source`: a
/// partition number alone is not unique where every task runs a plan of its own (Ballista
/// hands each task a slice of the scan, numbered from 0).
pub(crate) fn partition_file(partition: usize, source: &str) -> String {
    let short: String = source.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    format!("{PARTITION_PREFIX}{partition:05}-{short}.json")
}

/// The name of the lease file of `generation`.
pub(crate) fn lease_file(generation: u64) -> String {
    format!("{LEASE_PREFIX}{generation:08}.json")
}

/// The generation of a lease file name, if it is one.
pub(crate) fn lease_generation(file: &str) -> Option<u64> {
    file.strip_prefix(LEASE_PREFIX)?.strip_suffix(".json")?.parse().ok()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn millis_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A time as `2026-12-01T10:00:00.123456Z`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 time written by [`rfc3339`].
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_and_parse() {
        assert_eq!(
            partition_file(7, "0123456789abcdef0123"),
            "partition-00007-0123456789abcdef.json"
        );
        assert_eq!(lease_file(12), "lease-00000012.json");
        assert_eq!(lease_generation("lease-00000012.json"), Some(12));
        assert_eq!(lease_generation("partition-00007.json"), None);
        let time = UNIX_EPOCH + Duration::from_micros(1_764_583_200_123_456);
        assert_eq!(parse_rfc3339(&rfc3339(time)), Some(time));
        let lease = LeaseRecord {
            run_id: "r".into(),
            holder: "h".into(),
            expires_at_ms: 1_000,
        };
        assert!(lease.is_live(UNIX_EPOCH + Duration::from_millis(999)));
        assert!(!lease.is_live(UNIX_EPOCH + Duration::from_millis(1_000)));
    }
}
