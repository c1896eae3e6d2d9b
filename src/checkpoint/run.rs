//! One run of a checkpointed load: what it finds in the folder when it starts (committed
//! already, or which partitions to reuse, resume or start over), what it records as it
//! goes, and the commit record at the end.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tonic::Code;

use super::folder::LoadFolder;
use super::lease::Lease;
use super::records::{COMMIT_FILE, CommitRecord, LOAD_FILE, LoadRecord, PartitionCheckpoint, partition_file, rfc3339};
use crate::client::WriteClient;
use crate::error::{Error, Result};
use crate::load::StreamHandle;
use crate::retry::{RetryConfig, with_retries};
use crate::rpc::Rpc;
use crate::table_ref::TableRef;

/// What identifies a load's input, decided when the load is planned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LoadIdentity {
    /// The load's id.
    pub load_id: String,
    /// True if the id was given (`bigquery.load_id`), not derived from the input.
    pub explicit_id: bool,
    /// Fingerprint of the input.
    pub fingerprint: String,
    /// Whether each partition replays the same rows in the same order, so that a stream can
    /// be resumed by skipping the rows it already holds.
    pub replayable: bool,
    /// Number of input partitions.
    pub partitions: usize,
}

/// The settings of one run of a checkpointed load.
#[derive(Debug, Clone)]
pub(crate) struct RunSettings {
    /// This run's id, shared by all its processes.
    pub run_id: String,
    /// Lease time to live.
    pub lease_ttl: Duration,
    /// Retry policy of the GetWriteStream checks.
    pub retry: RetryConfig,
}

/// What a run does with one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PartitionStart {
    /// The partition's stream is finalized: commit it as it is, without reading the input.
    Reuse(StreamHandle),
    /// The stream is open with `acknowledged_rows` rows: skip those input rows and go on.
    Resume {
        /// The stream.
        stream: String,
        /// Rows it holds for sure.
        acknowledged_rows: u64,
    },
    /// Write the partition to a new stream.
    Fresh,
}

/// What a run found when it started.
#[derive(Debug)]
pub(crate) enum RunStart {
    /// The load committed before: nothing to write.
    Committed(CommitRecord),
    /// The load is to be written (and some partitions may be reused or resumed).
    Open(Box<OpenRun>),
}

/// A run that holds the lease and may write and commit.
#[derive(Debug)]
pub(crate) struct OpenRun {
    folder: LoadFolder,
    table: TableRef,
    identity: LoadIdentity,
    run_id: String,
    lease: tokio::sync::Mutex<Option<Lease>>,
    /// Checkpoints of earlier attempts whose streams still exist and are uncommitted.
    found: HashMap<(usize, String), PartitionCheckpoint>,
}

/// Starts a run: takes the lease, checks the input against the load's record, and finds out
/// whether the load committed already (from its commit record, or from its streams when the
/// record was never written).
pub(crate) async fn start_run(
    folder: LoadFolder,
    table: &TableRef,
    identity: &LoadIdentity,
    settings: &RunSettings,
    client: &WriteClient,
) -> Result<RunStart> {
    let lease = Lease::acquire(&folder, &settings.run_id, settings.lease_ttl).await?;
    let record = LoadRecord {
        load_id: identity.load_id.clone(),
        table: table.to_string(),
        fingerprint: identity.fingerprint.clone(),
        replayable: identity.replayable,
        partitions: identity.partitions,
        created_at: rfc3339(SystemTime::now()),
    };
    if !folder.create(LOAD_FILE, &record).await? {
        let recorded: LoadRecord = folder.read(LOAD_FILE).await?.ok_or_else(|| Error::Checkpoint {
            location: format!("{}/{LOAD_FILE}", folder.display()),
            message: "vanished while being read".into(),
            source: None,
        })?;
        if recorded.fingerprint != record.fingerprint || recorded.table != record.table {
            let _ = lease.release().await;
            return Err(Error::LoadInputChanged {
                load_id: identity.load_id.clone(),
                recorded: format!("{} into {}", recorded.fingerprint, recorded.table),
                found: format!("{} into {}", record.fingerprint, record.table),
            });
        }
    }
    if let Some(commit) = folder.read::<CommitRecord>(COMMIT_FILE).await? {
        let _ = lease.release().await;
        return Ok(RunStart::Committed(commit));
    }

    let mut found = HashMap::new();
    let mut committed = Vec::new();
    for checkpoint in folder.partitions().await? {
        match stream_state(client, &checkpoint.stream, &settings.retry).await? {
            StreamState::Missing => {
                tracing::info!(stream = %checkpoint.stream, partition = checkpoint.partition, "checkpointed stream is gone; its partition starts over");
            }
            StreamState::Committed(time) => committed.push((checkpoint, time)),
            StreamState::Open => {
                found.insert((checkpoint.partition, checkpoint.source.clone()), checkpoint);
            }
        }
    }
    // A commit is all or nothing: one committed stream means the run that committed died
    // before writing its record.
    if !committed.is_empty() {
        let commit = CommitRecord {
            load_id: identity.load_id.clone(),
            table: table.to_string(),
            commit_time: committed.iter().find_map(|(_, t)| t.map(rfc3339)),
            rows: committed.iter().map(|(c, _)| c.acknowledged_rows).sum(),
            streams: committed.iter().map(|(c, _)| c.stream.clone()).collect(),
            recorded_at: rfc3339(SystemTime::now()),
            recovered: true,
        };
        folder.write(COMMIT_FILE, &commit).await?;
        let _ = lease.release().await;
        return Ok(RunStart::Committed(commit));
    }
    Ok(RunStart::Open(Box::new(OpenRun {
        folder,
        table: table.clone(),
        identity: identity.clone(),
        run_id: settings.run_id.clone(),
        lease: tokio::sync::Mutex::new(Some(lease)),
        found,
    })))
}

/// What the service says about a checkpointed stream.
enum StreamState {
    Open,
    Committed(Option<SystemTime>),
    Missing,
}

async fn stream_state(client: &WriteClient, stream: &str, retry: &RetryConfig) -> Result<StreamState> {
    match with_retries(retry, Rpc::GetWriteStream, || client.get_write_stream(stream)).await {
        Ok(found) => Ok(match found.commit_time {
            Some(time) => StreamState::Committed(Some(crate::load::timestamp_to_system_time(time))),
            None => StreamState::Open,
        }),
        Err(e) if e.code() == Some(Code::NotFound) => Ok(StreamState::Missing),
        Err(e) => Err(e),
    }
}

impl OpenRun {
    /// The load's identity.
    pub(crate) fn identity(&self) -> &LoadIdentity {
        &self.identity
    }

    /// What to do with `partition` of the plan fingerprinted `source`: reuse its finalized
    /// stream, resume its open one (only when partitions replay), or start it over. Only a
    /// worker reading what the checkpoint's writer read takes its stream over.
    pub(crate) fn partition_start(&self, partition: usize, source: &str) -> PartitionStart {
        if !self.identity.replayable {
            return PartitionStart::Fresh;
        }
        let Some(found) = self.found.get(&(partition, source.to_string())) else {
            return PartitionStart::Fresh;
        };
        if found.finalized {
            return PartitionStart::Reuse(StreamHandle {
                table: self.table.clone(),
                stream: found.stream.clone(),
                rows: found.acknowledged_rows,
                bytes: found.bytes,
                requests: 0,
                retries: 0,
            });
        }
        PartitionStart::Resume {
            stream: found.stream.clone(),
            acknowledged_rows: found.acknowledged_rows,
        }
    }

    /// Records a worker's progress (`finalized` once its stream is).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_partition(
        &self,
        partition: usize,
        source: &str,
        stream: &str,
        acknowledged_rows: u64,
        input_rows: u64,
        bytes: u64,
        finalized: bool,
    ) -> Result<()> {
        let checkpoint = PartitionCheckpoint {
            partition,
            stream: stream.to_string(),
            acknowledged_rows,
            input_rows,
            bytes,
            finalized,
            source: source.to_string(),
            run_id: self.run_id.clone(),
            updated_at: rfc3339(SystemTime::now()),
        };
        self.folder.write(&partition_file(partition, source), &checkpoint).await
    }

    /// Fails unless this run still holds the load's lease: call it right before committing.
    pub(crate) async fn check_lease(&self) -> Result<()> {
        match self.lease.lock().await.as_ref() {
            Some(lease) => lease.check().await,
            None => Err(Error::Internal("the load's lease was already released".into())),
        }
    }

    /// Records the commit of `handles`, then gives the lease up.
    pub(crate) async fn record_commit(
        &self,
        handles: &[StreamHandle],
        time: Option<SystemTime>,
    ) -> Result<CommitRecord> {
        let commit = CommitRecord {
            load_id: self.identity.load_id.clone(),
            table: self.table.to_string(),
            commit_time: time.map(rfc3339),
            rows: handles.iter().map(|h| h.rows).sum(),
            streams: handles.iter().map(|h| h.stream.clone()).collect(),
            recorded_at: rfc3339(SystemTime::now()),
            recovered: false,
        };
        self.folder.write(COMMIT_FILE, &commit).await?;
        self.release().await;
        Ok(commit)
    }

    /// Gives the lease up (after a commit, or a failure), so a rerun need not wait for it.
    pub(crate) async fn release(&self) {
        if let Some(lease) = self.lease.lock().await.take()
            && let Err(e) = lease.release().await
        {
            tracing::warn!(load = %self.identity.load_id, error = %e, "could not release the load's lease");
        }
    }
}
