//! The RPCs of the Storage Write API and the calls of the v2 REST API, by name: what
//! errors, deadlines, retries and the embedded server's faults refer to.

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

/// One call of the BigQuery v2 REST API (tables, datasets and jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestCall {
    /// tables.get.
    TablesGet,
    /// tables.insert.
    TablesInsert,
    /// tables.patch.
    TablesPatch,
    /// tables.delete.
    TablesDelete,
    /// tables.list.
    TablesList,
    /// datasets.list.
    DatasetsList,
    /// jobs.insert.
    JobsInsert,
    /// jobs.get.
    JobsGet,
}

impl RestCall {
    /// The method's name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            RestCall::TablesGet => "tables.get",
            RestCall::TablesInsert => "tables.insert",
            RestCall::TablesPatch => "tables.patch",
            RestCall::TablesDelete => "tables.delete",
            RestCall::TablesList => "tables.list",
            RestCall::DatasetsList => "datasets.list",
            RestCall::JobsInsert => "jobs.insert",
            RestCall::JobsGet => "jobs.get",
        }
    }
}

impl fmt::Display for RestCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
