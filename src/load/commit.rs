//! The commit protocol: one BatchCommitWriteStreams over finalized streams, all or nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::StreamHandle;
use crate::client::WriteClient;
use crate::error::{Error, Result};
use crate::proto::storage_error::StorageErrorCode;
use crate::table_ref::TableRef;

/// Makes the rows of every handle visible at once. Fails, committing nothing, if the service
/// reports any stream error or no commit time. An empty list commits nothing and succeeds.
pub async fn commit(client: &WriteClient, table: &TableRef, handles: &[StreamHandle]) -> Result<Option<SystemTime>> {
    if handles.is_empty() {
        return Ok(None);
    }
    if let Some(other) = handles.iter().find(|h| &h.table != table) {
        return Err(Error::Internal(format!(
            "stream {} belongs to {}, not {table}",
            other.stream, other.table
        )));
    }
    let names = handles.iter().map(|h| h.stream.clone()).collect();
    let response = client.batch_commit_write_streams(table, names).await?;
    if !response.stream_errors.is_empty() {
        let errors = response
            .stream_errors
            .iter()
            .map(|e| {
                let code = StorageErrorCode::try_from(e.code)
                    .map(|c| c.as_str_name())
                    .unwrap_or("UNKNOWN");
                format!("{} {}: {}", code, e.entity, e.error_message)
            })
            .collect();
        return Err(Error::CommitRejected {
            table: table.to_string(),
            errors,
        });
    }
    let time = response.commit_time.ok_or_else(|| Error::CommitRejected {
        table: table.to_string(),
        errors: vec!["the service returned no commit_time".into()],
    })?;
    let since_epoch = Duration::new(
        u64::try_from(time.seconds).unwrap_or(0),
        u32::try_from(time.nanos).unwrap_or(0),
    );
    Ok(Some(UNIX_EPOCH + since_epoch))
}
