//! The embedded server's tables and streams, and the rules of the Storage Write API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use prost_types::Timestamp;
use tonic::Code;

use super::catalog::{TableMeta, now_ms};
use super::digest::RowDigest;
use crate::error::status::{Detail, pack_details, status_with_details};
use crate::proto::storage_error::StorageErrorCode;
use crate::proto::write_stream::Type as StreamType;
use crate::proto::{StorageError, TableSchema, WriteStream};
use crate::schema::to_arrow_schema;

/// A refusal: a gRPC code, optionally a StorageError, and a message.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub(crate) code: Code,
    pub(crate) storage: Option<(StorageErrorCode, String)>,
    pub(crate) message: String,
    /// Further typed details (ErrorInfo, QuotaFailure).
    pub(crate) details: Vec<Detail>,
}

impl Rejection {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            storage: None,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub(crate) fn storage(code: Code, storage: StorageErrorCode, entity: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            storage: Some((storage, entity.to_string())),
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The StorageError this rejection carries, if any.
    pub(crate) fn storage_error(&self) -> Option<StorageError> {
        self.storage.as_ref().map(|(code, entity)| StorageError {
            code: *code as i32,
            entity: entity.clone(),
            error_message: self.message.clone(),
        })
    }

    /// Adds typed details (quota errors) to send with the rejection.
    pub(crate) fn with_details(mut self, details: impl IntoIterator<Item = Detail>) -> Self {
        self.details.extend(details);
        self
    }

    fn packed_details(&self) -> Vec<prost_types::Any> {
        pack_details(
            self.storage_error()
                .map(Detail::Storage)
                .into_iter()
                .chain(self.details.iter().cloned()),
        )
    }

    /// As a `google.rpc.Status` for an AppendRows response.
    pub(crate) fn to_rpc_status(&self) -> crate::proto::rpc::Status {
        crate::proto::rpc::Status {
            code: self.code as i32,
            message: self.message.clone(),
            details: self.packed_details(),
        }
    }

    /// As a gRPC status, with the StorageError and other details in
    /// `grpc-status-details-bin` as the service sends them.
    pub(crate) fn to_status(&self) -> tonic::Status {
        status_with_details(self.code, self.message.clone(), self.packed_details())
    }
}

/// What the server keeps of appended rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Retention {
    /// Decode every row into Arrow and keep it, so tests can read tables back.
    #[default]
    Keep,
    /// Validate every request (stream, offset, writer schema, row count) and keep only a
    /// [`RowDigest`] of the rows: the server of client benchmarks. Proto rows are not
    /// decoded; Arrow rows are decoded and checked as when kept, and digested in their proto
    /// form, so that both formats give the same digest for the same rows.
    Discard,
}

/// Whether the server digests appended rows (the checksum of [`RowDigest`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Digests {
    /// Every row is hashed into its table's digest.
    #[default]
    On,
    /// Rows and bytes are counted, the checksum stays 0.
    Off,
}

/// A table: its schema and the committed (visible) rows.
pub(crate) struct Table {
    pub(crate) schema: Arc<TableSchema>,
    pub(crate) arrow: SchemaRef,
    pub(crate) visible: Vec<RecordBatch>,
    /// Digest of the rows made visible by commits, COMMITTED streams and `_default`
    /// (not by FlushRows on BUFFERED streams).
    pub(crate) digest: RowDigest,
    /// When the table was created or replaced.
    pub(crate) created: std::time::Instant,
    /// What the v2 REST API shows of the table besides its schema and rows.
    pub(crate) meta: TableMeta,
}

impl Table {
    /// A table without rows and with default metadata.
    pub(crate) fn new(schema: TableSchema, meta: TableMeta) -> Self {
        Self {
            arrow: Arc::new(to_arrow_schema(&schema)),
            schema: Arc::new(schema),
            visible: Vec::new(),
            digest: RowDigest::default(),
            created: std::time::Instant::now(),
            meta,
        }
    }

    /// Makes appended rows visible.
    fn make_visible(&mut self, batch: Option<RecordBatch>, digest: &RowDigest) {
        self.visible.extend(batch);
        self.digest.merge(digest);
        self.meta.touch();
    }

    /// Whether the table's expiration time has passed.
    pub(crate) fn expired(&self) -> bool {
        self.meta.expiration_ms.is_some_and(|at| at <= now_ms())
    }
}

/// A write stream.
pub(crate) struct Stream {
    pub(crate) table: String,
    pub(crate) kind: StreamType,
    pub(crate) create_time: Timestamp,
    pub(crate) commit_time: Option<Timestamp>,
    /// Rows appended and not yet visible (PENDING, BUFFERED).
    pub(crate) pending: Vec<RecordBatch>,
    /// Digest of the rows appended to a PENDING stream.
    pub(crate) pending_digest: RowDigest,
    /// Rows appended so far: the next expected offset.
    pub(crate) row_count: i64,
    /// Rows of a BUFFERED stream already flushed (made visible).
    pub(crate) flushed: i64,
    pub(crate) finalized: bool,
}

/// Everything the server holds.
#[derive(Default)]
pub(crate) struct Store {
    pub(crate) retention: Retention,
    pub(crate) tables: HashMap<String, Table>,
    pub(crate) streams: HashMap<String, Stream>,
    next_stream: u64,
    /// Datasets created explicitly, as (project, dataset); those holding tables exist too.
    pub(crate) datasets: std::collections::BTreeSet<(String, String)>,
    /// Jobs of the v2 REST API by (project, job id), as jobs.get answers them.
    pub(crate) jobs: HashMap<(String, String), serde_json::Value>,
    /// Jobs inserted without a job id so far.
    pub(crate) next_job: u64,
}

/// The current time as a protobuf timestamp.
pub(crate) fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

/// The refusal of a stream that does not exist, as the service words and types it.
fn stream_not_found(name: &str) -> Rejection {
    Rejection::storage(
        Code::NotFound,
        StorageErrorCode::StreamNotFound,
        name,
        format!("Stream {name} not found"),
    )
}

/// The refusal of a table that does not exist (or has expired or been deleted).
fn table_not_found(path: &str) -> Rejection {
    Rejection::storage(
        Code::NotFound,
        StorageErrorCode::TableNotFound,
        path,
        format!("Table {path} not found"),
    )
}

/// Splits `.../tables/t/streams/s` into the table path and the stream id.
pub(crate) fn split_stream_name(name: &str) -> Option<(&str, &str)> {
    let (table, id) = name.rsplit_once("/streams/")?;
    Some((table, id))
}

impl Store {
    pub(crate) fn new(retention: Retention) -> Self {
        Self {
            retention,
            ..Self::default()
        }
    }

    /// Creates (or replaces) a table with default metadata.
    pub(crate) fn create_table(&mut self, path: String, schema: TableSchema) {
        self.tables.insert(path, Table::new(schema, TableMeta::new()));
    }

    /// A table that exists and has not expired.
    pub(crate) fn live(&self, path: &str) -> Option<&Table> {
        self.tables.get(path).filter(|t| !t.expired())
    }

    pub(crate) fn table(&self, path: &str) -> Result<&Table, Rejection> {
        self.live(path).ok_or_else(|| table_not_found(path))
    }

    /// A table for changing, removing it first if it has expired.
    pub(crate) fn table_mut(&mut self, path: &str) -> Result<&mut Table, Rejection> {
        if self.tables.get(path).is_some_and(Table::expired) {
            self.remove_table(path);
        }
        self.tables.get_mut(path).ok_or_else(|| table_not_found(path))
    }

    /// Removes a table and its write streams; false if there was none.
    pub(crate) fn remove_table(&mut self, path: &str) -> bool {
        let removed = self.tables.remove(path).is_some();
        if removed {
            self.streams.retain(|_, s| s.table != path);
        }
        removed
    }

    /// Removes every table whose expiration time has passed.
    pub(crate) fn purge_expired(&mut self) {
        let expired: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, t)| t.expired())
            .map(|(path, _)| path.clone())
            .collect();
        for path in expired {
            self.remove_table(&path);
        }
    }

    /// Checks that the table of a stream name exists.
    fn stream_table(&self, name: &str) -> Result<&Table, Rejection> {
        let (table_path, _) = split_stream_name(name)
            .ok_or_else(|| Rejection::new(Code::InvalidArgument, format!("not a write stream name: {name}")))?;
        self.table(table_path)
    }

    pub(crate) fn create_stream(&mut self, table: &str, kind: StreamType) -> Result<WriteStream, Rejection> {
        let schema = self.table(table)?.schema.clone();
        if kind == StreamType::Unspecified {
            return Err(Rejection::new(Code::InvalidArgument, "write_stream.type must be set"));
        }
        if kind == StreamType::Buffered && self.retention == Retention::Discard {
            return Err(Rejection::new(
                Code::Unimplemented,
                "a server that discards rows has no BUFFERED streams",
            ));
        }
        self.next_stream += 1;
        let name = format!("{table}/streams/s{:06}", self.next_stream);
        let create_time = now();
        self.streams.insert(
            name.clone(),
            Stream {
                table: table.to_string(),
                kind,
                create_time,
                commit_time: None,
                pending: Vec::new(),
                pending_digest: RowDigest::default(),
                row_count: 0,
                flushed: 0,
                finalized: false,
            },
        );
        Ok(WriteStream {
            name,
            r#type: kind as i32,
            create_time: Some(create_time),
            table_schema: Some((*schema).clone()),
            write_mode: crate::proto::write_stream::WriteMode::Insert as i32,
            ..Default::default()
        })
    }

    /// Describes a stream; `_default` streams exist implicitly for every table.
    pub(crate) fn describe_stream(&self, name: &str, full: bool) -> Result<WriteStream, Rejection> {
        let (table_path, id) = split_stream_name(name)
            .ok_or_else(|| Rejection::new(Code::InvalidArgument, format!("not a write stream name: {name}")))?;
        let table = self.table(table_path)?;
        let schema = full.then(|| (*table.schema).clone());
        if id == "_default" {
            return Ok(WriteStream {
                name: name.to_string(),
                r#type: StreamType::Committed as i32,
                table_schema: schema,
                write_mode: crate::proto::write_stream::WriteMode::Insert as i32,
                ..Default::default()
            });
        }
        let stream = self.stream(name)?;
        Ok(WriteStream {
            name: name.to_string(),
            r#type: stream.kind as i32,
            create_time: Some(stream.create_time),
            commit_time: stream.commit_time,
            table_schema: schema,
            write_mode: crate::proto::write_stream::WriteMode::Insert as i32,
            ..Default::default()
        })
    }

    pub(crate) fn stream(&self, name: &str) -> Result<&Stream, Rejection> {
        self.streams.get(name).ok_or_else(|| stream_not_found(name))
    }

    /// Checks an append against the stream's state and offset, before any decoding.
    pub(crate) fn check_append(&self, name: &str, offset: Option<i64>) -> Result<(), Rejection> {
        let (table_path, id) = split_stream_name(name)
            .ok_or_else(|| Rejection::new(Code::InvalidArgument, format!("not a write stream name: {name}")))?;
        self.table(table_path)?;
        if id == "_default" {
            return match offset {
                Some(_) => Err(Rejection::new(
                    Code::InvalidArgument,
                    "offsets are not allowed on the _default stream",
                )),
                None => Ok(()),
            };
        }
        let stream = self.stream(name)?;
        if stream.finalized {
            return Err(Rejection::storage(
                Code::InvalidArgument,
                StorageErrorCode::StreamFinalized,
                name,
                format!("Stream {name} is finalized"),
            ));
        }
        match offset {
            Some(o) if o < stream.row_count => Err(Rejection::storage(
                Code::AlreadyExists,
                StorageErrorCode::OffsetAlreadyExists,
                name,
                format!("offset {o} already exists (stream has {} rows)", stream.row_count),
            )),
            Some(o) if o > stream.row_count => Err(Rejection::storage(
                Code::OutOfRange,
                StorageErrorCode::OffsetOutOfRange,
                name,
                format!("offset {o} is beyond the end of the stream ({} rows)", stream.row_count),
            )),
            _ => Ok(()),
        }
    }

    /// Applies an append of `digest.rows` rows (decoded into `batch` unless rows are
    /// discarded); returns the offset they were written at.
    pub(crate) fn append(
        &mut self,
        name: &str,
        offset: Option<i64>,
        batch: Option<RecordBatch>,
        digest: RowDigest,
    ) -> Result<i64, Rejection> {
        self.check_append(name, offset)?;
        let (table_path, id) = split_stream_name(name).unwrap_or_default();
        if id == "_default" {
            self.table_mut(table_path)?.make_visible(batch, &digest);
            return Ok(0);
        }
        let stream = self.streams.get_mut(name).ok_or_else(|| stream_not_found(name))?;
        let at = stream.row_count;
        stream.row_count += digest.rows as i64;
        if stream.kind == StreamType::Committed {
            let table_name = stream.table.clone();
            self.table_mut(&table_name)?.make_visible(batch, &digest);
        } else {
            stream.pending.extend(batch);
            stream.pending_digest.merge(&digest);
        }
        Ok(at)
    }

    pub(crate) fn finalize(&mut self, name: &str) -> Result<i64, Rejection> {
        self.stream_table(name)?;
        self.stream(name)?;
        let stream = self.streams.get_mut(name).ok_or_else(|| stream_not_found(name))?;
        stream.finalized = true;
        Ok(stream.row_count)
    }

    /// Makes BUFFERED rows visible up to (and including) `offset`.
    pub(crate) fn flush(&mut self, name: &str, offset: i64) -> Result<i64, Rejection> {
        self.stream_table(name)?;
        let stream = self.stream(name)?;
        if stream.kind != StreamType::Buffered {
            return Err(Rejection::storage(
                Code::InvalidArgument,
                StorageErrorCode::InvalidStreamType,
                name,
                "FlushRows needs a BUFFERED stream",
            ));
        }
        if offset >= stream.row_count || offset < stream.flushed - 1 {
            return Err(Rejection::storage(
                Code::OutOfRange,
                StorageErrorCode::OffsetOutOfRange,
                name,
                format!("flush offset {offset} out of range"),
            ));
        }
        let stream = self.streams.get_mut(name).ok_or_else(|| stream_not_found(name))?;
        let mut take = (offset + 1 - stream.flushed) as usize;
        let mut moved = Vec::new();
        while take > 0 && !stream.pending.is_empty() {
            let first = &stream.pending[0];
            if first.num_rows() <= take {
                take -= first.num_rows();
                moved.push(stream.pending.remove(0));
            } else {
                moved.push(first.slice(0, take));
                stream.pending[0] = first.slice(take, first.num_rows() - take);
                take = 0;
            }
        }
        stream.flushed = offset + 1;
        let table_name = stream.table.clone();
        let table = self.table_mut(&table_name)?;
        table.visible.extend(moved);
        table.meta.touch();
        Ok(offset)
    }

    /// Commits finalized PENDING streams atomically; on any problem, commits none and returns
    /// the stream errors.
    pub(crate) fn batch_commit(
        &mut self,
        table: &str,
        names: &[String],
    ) -> Result<Result<Timestamp, Vec<StorageError>>, Rejection> {
        self.table(table)?;
        if names.is_empty() {
            return Err(Rejection::new(Code::InvalidArgument, "no write streams to commit"));
        }
        let mut errors = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let problem = match self.streams.get(name) {
                None => Some((StorageErrorCode::StreamNotFound, "stream not found")),
                Some(s) if s.table != table => {
                    Some((StorageErrorCode::StreamNotFound, "stream belongs to another table"))
                }
                Some(s) if s.kind != StreamType::Pending => Some((
                    StorageErrorCode::InvalidStreamType,
                    "only PENDING streams can be committed",
                )),
                Some(s) if s.commit_time.is_some() => {
                    Some((StorageErrorCode::StreamAlreadyCommitted, "stream already committed"))
                }
                Some(s) if !s.finalized => Some((StorageErrorCode::InvalidStreamState, "stream is not finalized")),
                Some(_) if names[..i].contains(name) => {
                    Some((StorageErrorCode::InvalidStreamState, "stream listed twice"))
                }
                Some(_) => None,
            };
            if let Some((code, message)) = problem {
                errors.push(StorageError {
                    code: code as i32,
                    entity: name.clone(),
                    error_message: message.into(),
                });
            }
        }
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let time = now();
        let mut rows = Vec::new();
        let mut digest = RowDigest::default();
        for name in names {
            if let Some(stream) = self.streams.get_mut(name) {
                stream.commit_time = Some(time);
                rows.append(&mut stream.pending);
                digest.merge(&std::mem::take(&mut stream.pending_digest));
            }
        }
        let t = self.table_mut(table)?;
        t.visible.extend(rows);
        t.digest.merge(&digest);
        t.meta.touch();
        Ok(Ok(time))
    }
}
