//! The RPCs of the Storage Write API, by name: what errors, deadlines, retries and the
//! embedded server's faults refer to.

use std::fmt;

/// One RPC of `google.cloud.bigquery.storage.v1.BigQueryWrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    /// CreateWriteStream.
    CreateWriteStream,
    /// AppendRows (the bidirectional stream).
    AppendRows,
    /// GetWriteStream.
    GetWriteStream,
    /// FinalizeWriteStream.
    FinalizeWriteStream,
    /// BatchCommitWriteStreams.
    BatchCommitWriteStreams,
    /// FlushRows.
    FlushRows,
}

impl Rpc {
    /// The RPC's name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::CreateWriteStream => "CreateWriteStream",
            Rpc::AppendRows => "AppendRows",
            Rpc::GetWriteStream => "GetWriteStream",
            Rpc::FinalizeWriteStream => "FinalizeWriteStream",
            Rpc::BatchCommitWriteStreams => "BatchCommitWriteStreams",
            Rpc::FlushRows => "FlushRows",
        }
    }
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
