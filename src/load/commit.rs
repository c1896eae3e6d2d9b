//! The commit protocol: one BatchCommitWriteStreams over finalized streams, all or nothing.
//!
//! A commit that fails in transport is ambiguous: the service may have applied it. Before
//! retrying, the streams are asked (GetWriteStream) whether they carry a commit time, so a
//! commit is never doubled nor lost.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

use super::StreamHandle;
use crate::client::WriteClient;
use crate::error::{Error, Result};
use crate::proto::StorageError;
use crate::proto::storage_error::StorageErrorCode;
use crate::retry::{Backoff, RetryConfig};
use crate::rpc::Rpc;
use crate::table_ref::TableRef;

/// Makes the rows of every handle visible at once. Fails, committing nothing, if the service
/// reports any stream error or no commit time. An empty list commits nothing and succeeds.
/// Returns the commit time (`None` when nothing was committed, or when an ambiguous commit
/// was found applied by a service that does not report the time).
pub async fn commit(
    client: &WriteClient,
    table: &TableRef,
    handles: &[StreamHandle],
    retry: &RetryConfig,
) -> Result<Option<SystemTime>> {
    if handles.is_empty() {
        return Ok(None);
    }
    if let Some(other) = handles.iter().find(|h| &h.table != table) {
        return Err(Error::ForeignStream {
            stream: other.stream.clone(),
            belongs_to: other.table.to_string(),
            table: table.to_string(),
        });
    }
    let names: Vec<String> = handles.iter().map(|h| h.stream.clone()).collect();
    let mut backoff = Backoff::new(retry);
    let mut ambiguous = false;
    loop {
        let failure = match client.batch_commit_write_streams(table, names.clone()).await {
            Ok(response) if response.stream_errors.is_empty() => {
                let time = response.commit_time.ok_or_else(|| Error::CommitRejected {
                    table: table.to_string(),
                    errors: vec!["the service returned no commit_time".into()],
                })?;
                return Ok(Some(to_system_time(time)));
            }
            // An earlier attempt was applied: the streams are ours alone, so the typed
            // STREAM_ALREADY_COMMITTED on every stream after an ambiguous failure means our
            // commit went through. The time comes from the streams when they report it.
            Ok(response) if ambiguous && response.stream_errors.iter().all(already_committed) => {
                let time = match committed_at(client, &names).await {
                    Ok(Verdict::Committed(time)) => time,
                    _ => None,
                };
                return Ok(time.map(to_system_time));
            }
            Ok(response) => {
                let errors = response.stream_errors.iter().map(describe).collect();
                return Err(Error::CommitRejected {
                    table: table.to_string(),
                    errors,
                });
            }
            Err(e) => e,
        };
        let Some(delay) = backoff.next_delay(failure.disposition()) else {
            // Even a permanent failure may have followed the commit's application: the
            // streams have the last word, and only their commit times count as success.
            if let Ok(Verdict::Committed(Some(time))) = committed_at(client, &names).await {
                return Ok(Some(to_system_time(time)));
            }
            return Err(failure);
        };
        ambiguous = true;
        // Success only on evidence: every stream shows a commit time. A check that fails
        // proves nothing either way, so the commit is retried (and then answered by the
        // typed code above if it had been applied).
        match committed_at(client, &names).await {
            Ok(Verdict::Committed(Some(time))) => return Ok(Some(to_system_time(time))),
            Ok(verdict) => tracing::debug!(?verdict, "ambiguous commit not shown applied"),
            Err(e) => tracing::debug!(error = %e, "could not check an ambiguous commit"),
        }
        tracing::warn!(%table, error = %failure, ?delay, "retrying BatchCommitWriteStreams");
        tokio::time::sleep(delay).await;
    }
}

/// What the streams of a commit say about it.
#[derive(Debug)]
enum Verdict {
    /// Every stream carries a commit time (the first one), or `None` when the service
    /// reports the streams committed without one.
    Committed(Option<Timestamp>),
    /// No stream is committed.
    NotCommitted,
}

/// Asks every stream whether it was committed.
async fn committed_at(client: &WriteClient, names: &[String]) -> Result<Verdict> {
    let mut times = Vec::with_capacity(names.len());
    for name in names {
        times.push(client.get_write_stream(name).await?.commit_time);
    }
    match (times.iter().all(Option::is_some), times.iter().all(Option::is_none)) {
        (true, _) => Ok(Verdict::Committed(times.into_iter().next().flatten())),
        (_, true) => Ok(Verdict::NotCommitted),
        _ => Err(Error::Protocol {
            rpc: Rpc::GetWriteStream,
            entity: names.join(", "),
            message: "the streams of one commit disagree on whether it was applied".into(),
        }),
    }
}

fn already_committed(error: &StorageError) -> bool {
    error.code == StorageErrorCode::StreamAlreadyCommitted as i32
}

fn describe(error: &StorageError) -> String {
    let code = StorageErrorCode::try_from(error.code)
        .map(|c| c.as_str_name())
        .unwrap_or("UNKNOWN");
    format!("{} {}: {}", code, error.entity, error.error_message)
}

pub(crate) fn to_system_time(time: Timestamp) -> SystemTime {
    UNIX_EPOCH
        + Duration::new(
            u64::try_from(time.seconds).unwrap_or(0),
            u32::try_from(time.nanos).unwrap_or(0),
        )
}
