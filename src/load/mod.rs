//! Atomic loads: "write these batches to this table over N streams, then commit once".
//!
//! The two halves are separate so they can run in different places: [`StreamWriter`] turns
//! batches into a finalized [`StreamHandle`]; [`commit`] makes a list of handles visible in
//! one BatchCommitWriteStreams. [`Loader`] runs both in one process with N writer tasks.

mod budget;
mod commit;
mod format;
mod progress;
mod resync;
mod writer;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use budget::{BudgetPool, InFlightBudget, SharedBudgetPool};
pub use commit::commit;
pub(crate) use commit::to_system_time as timestamp_to_system_time;
pub use progress::{CheckpointReport, LoadProgress, ProgressSnapshot};
pub use writer::{StreamHandle, StreamWriter};

use crate::client::WriteClient;
use crate::error::{Error, Result};
use crate::options::BigQueryOptions;
use crate::proto::TableSchema;
use crate::retry::{RetryConfig, with_retries};
use crate::rpc::Rpc;
use crate::schema::to_arrow_schema;
use crate::table_ref::TableRef;
use format::{Encoders, FormatChoice};

/// The table's schema from the service (GetWriteStream on its `_default` stream), retried
/// as the policy says.
pub(crate) async fn read_table_schema(
    client: &WriteClient,
    table: &TableRef,
    retry: &RetryConfig,
) -> Result<TableSchema> {
    with_retries(retry, Rpc::GetWriteStream, || client.table_schema(table)).await
}

/// Streams used when neither the options nor DataFusion say how many.
pub const DEFAULT_STREAMS: usize = 4;

/// Largest slice of a batch handed to one writer at a time.
const MAX_ROWS_PER_DISPATCH: usize = 8192;

/// Batches queued per writer.
const WRITER_QUEUE: usize = 2;

/// What a committed load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSummary {
    /// Rows committed.
    pub rows: u64,
    /// Encoded row bytes sent.
    pub bytes: u64,
    /// Write streams used.
    pub streams: usize,
    /// AppendRows requests sent.
    pub requests: u64,
    /// Reconnects after transient AppendRows failures.
    pub retries: u64,
    /// When the rows became visible (`None` if there were none).
    pub commit_time: Option<SystemTime>,
}

impl LoadSummary {
    /// What committing `handles` at `commit_time` did.
    pub(crate) fn of(handles: &[StreamHandle], commit_time: Option<SystemTime>) -> Self {
        Self {
            rows: handles.iter().map(|h| h.rows).sum(),
            bytes: handles.iter().map(|h| h.bytes).sum(),
            streams: handles.len(),
            requests: handles.iter().map(|h| h.requests).sum(),
            retries: handles.iter().map(|h| h.retries).sum(),
            commit_time,
        }
    }
}

/// Loads batches into one table atomically.
///
/// ```no_run
/// # async fn example(batches: Vec<arrow::array::RecordBatch>) -> datafusion_bigquery::Result<()> {
/// use datafusion_bigquery::{BigQueryOptions, Loader};
/// let options = BigQueryOptions::default().with_endpoint("http://127.0.0.1:9060").with_streams(4);
/// let loader = Loader::connect("my-project.sales.orders".parse()?, options).await?;
/// let schema = batches[0].schema();
/// let summary = loader.load(schema, futures::stream::iter(batches.into_iter().map(Ok::<_, std::io::Error>))).await?;
/// println!("{} rows committed over {} streams", summary.rows, summary.streams);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Loader {
    client: WriteClient,
    table: TableRef,
    schema: TableSchema,
    options: BigQueryOptions,
    budgets: Option<SharedBudgetPool>,
    progress: Option<LoadProgress>,
    /// With `bigquery.row_format = auto`: whether the service refused Arrow rows.
    format: FormatChoice,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("table", &self.table)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// Connects to the options' endpoint and reads the table's schema.
    pub async fn connect(table: TableRef, options: BigQueryOptions) -> Result<Self> {
        options.validate()?;
        let client = WriteClient::connect_with(&options.client_config())
            .await?
            .with_rpc_timeout(options.rpc_timeout);
        let schema = read_table_schema(&client, &table, &options.retry).await?;
        Ok(Self::new(client, table, schema, options))
    }

    /// A loader over an existing client and a known table schema; the options' deadlines
    /// apply to the client's calls.
    pub fn new(client: WriteClient, table: TableRef, schema: TableSchema, options: BigQueryOptions) -> Self {
        Self {
            client: client.with_rpc_timeout(options.rpc_timeout),
            table,
            schema,
            options,
            budgets: None,
            progress: None,
            format: FormatChoice::default(),
        }
    }

    /// Accounts the bytes in flight of every writer to `pool` (for a DataFusion memory pool,
    /// `MemoryPoolBudgets`).
    pub fn with_budgets(mut self, pool: SharedBudgetPool) -> Self {
        self.budgets = Some(pool);
        self
    }

    /// Reports every load's progress (streams created, rows and bytes acknowledged, retries,
    /// commits) to `progress`, which another task can read while the load runs.
    ///
    /// ```no_run
    /// # async fn example(loader: datafusion_bigquery::Loader, batches: Vec<arrow::array::RecordBatch>) -> datafusion_bigquery::Result<()> {
    /// use datafusion_bigquery::load::LoadProgress;
    /// let progress = LoadProgress::new();
    /// let loader = loader.with_progress(progress.clone());
    /// let watcher = tokio::spawn(async move {
    ///     loop {
    ///         tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    ///         eprintln!("{} rows acknowledged", progress.snapshot().rows);
    ///     }
    /// });
    /// let input = futures::stream::iter(batches.into_iter().map(Ok::<_, std::io::Error>));
    /// loader.load(loader.arrow_schema(), input).await?;
    /// watcher.abort();
    /// # Ok(()) }
    /// ```
    pub fn with_progress(mut self, progress: LoadProgress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// A budget for a writer named `name`, from the pool given with [`Loader::with_budgets`].
    pub(crate) fn budget(&self, name: String) -> Option<Box<dyn InFlightBudget>> {
        self.budgets.as_ref().map(|pool| pool.budget(name))
    }

    /// The progress counters given with [`Loader::with_progress`], if any.
    pub fn progress(&self) -> Option<&LoadProgress> {
        self.progress.as_ref()
    }

    /// The same loader with other options.
    pub fn with_options(mut self, options: BigQueryOptions) -> Self {
        self.client = self.client.with_rpc_timeout(options.rpc_timeout);
        self.options = options;
        self
    }

    /// The same loader writing another table of the same schema (an overwrite's staging table).
    pub fn with_table(mut self, table: TableRef) -> Self {
        self.table = table;
        self
    }

    /// The destination table.
    pub fn table(&self) -> &TableRef {
        &self.table
    }

    /// The table's BigQuery schema.
    pub fn table_schema(&self) -> &TableSchema {
        &self.schema
    }

    /// The table's schema as Arrow.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(to_arrow_schema(&self.schema))
    }

    /// The options in force.
    pub fn options(&self) -> &BigQueryOptions {
        &self.options
    }

    /// The client.
    pub fn client(&self) -> &WriteClient {
        &self.client
    }

    /// Writes every batch and commits them atomically: all rows become visible, or none.
    pub async fn load<S, E>(&self, input_schema: SchemaRef, input: S) -> Result<LoadSummary>
    where
        S: Stream<Item = std::result::Result<RecordBatch, E>> + Send + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let handles = self.write_streams(&input_schema, input).await?;
        let commit_time = self.commit(&handles).await?;
        Ok(LoadSummary::of(&handles, commit_time))
    }

    /// [`Loader::load`] for batches already in memory or produced by an iterator, each in
    /// the layout of the first (any Arrow types that map exactly to the table's columns).
    ///
    /// ```no_run
    /// # async fn example(loader: datafusion_bigquery::Loader, batches: Vec<arrow::array::RecordBatch>) -> datafusion_bigquery::Result<()> {
    /// let summary = loader.load_batches(batches).await?;
    /// println!("{} rows, {} bytes over {} streams", summary.rows, summary.bytes, summary.streams);
    /// # Ok(()) }
    /// ```
    pub async fn load_batches<I>(&self, batches: I) -> Result<LoadSummary>
    where
        I: IntoIterator<Item = RecordBatch>,
        I::IntoIter: Send,
    {
        let mut batches = batches.into_iter().peekable();
        let schema = batches.peek().map_or_else(|| self.arrow_schema(), RecordBatch::schema);
        let input = futures::stream::iter(batches.map(Ok::<_, std::convert::Infallible>));
        self.load(schema, input).await
    }

    /// The second half of [`Loader::load`]: commits finalized streams in one
    /// BatchCommitWriteStreams, with this loader's retry policy.
    pub async fn commit(&self, handles: &[StreamHandle]) -> Result<Option<SystemTime>> {
        let started = Instant::now();
        let time = commit(&self.client, &self.table, handles, &self.options.retry).await?;
        if let Some(progress) = &self.progress {
            progress.load_committed(started.elapsed(), time, handles.iter().map(|h| h.rows).sum());
        }
        Ok(time)
    }

    /// The encoders of rows laid out as `input_schema`, after checking the options.
    fn encoders(&self, input_schema: &Schema) -> Result<Encoders> {
        self.options.validate()?;
        let options = self.options.encode_options();
        Encoders::plan(
            &self.table.to_string(),
            &self.schema,
            input_schema,
            &options,
            &self.format,
        )
    }

    /// Checks that batches laid out as `input_schema` can be encoded into the table (the
    /// encoders plan; no value is looked at).
    pub fn check_input(&self, input_schema: &Schema) -> Result<()> {
        self.encoders(input_schema).map(|_| ())
    }

    /// A writer with `encoders`, reporting to this loader's progress.
    fn writer(&self, encoders: &Encoders) -> StreamWriter {
        let mut writer = StreamWriter::new(
            self.client.clone(),
            self.table.clone(),
            encoders.first.clone(),
            self.options.clone(),
        );
        if let Some(proto) = &encoders.fallback {
            writer = writer.with_fallback(proto.clone(), self.format.clone());
        }
        match &self.progress {
            Some(progress) => writer.with_progress(progress.clone()),
            None => writer,
        }
    }

    /// A writer for one worker: it encodes batches laid out as `input_schema` into its own
    /// PENDING stream (created on its first row) and reports to this loader's progress.
    /// [`StreamWriter::finish`] gives the finalized stream's handle for [`Loader::commit`].
    pub fn stream_writer(&self, input_schema: &Schema) -> Result<StreamWriter> {
        Ok(self.writer(&self.encoders(input_schema)?))
    }

    /// The first half of [`Loader::load`]: writes the input over up to N PENDING streams and
    /// finalizes them, without committing. Fails if any writer or the input fails; the streams
    /// already written are then left uncommitted and expire unseen.
    pub async fn write_streams<S, E>(&self, input_schema: &Schema, mut input: S) -> Result<Vec<StreamHandle>>
    where
        S: Stream<Item = std::result::Result<RecordBatch, E>> + Send + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let encoders = self.encoders(input_schema)?;
        let writers = self.options.streams.unwrap_or(DEFAULT_STREAMS).max(1);
        let mut tasks = JoinSet::new();
        let mut queues = Vec::with_capacity(writers);
        for index in 0..writers {
            let (queue, mut batches) = mpsc::channel::<(RecordBatch, u64)>(WRITER_QUEUE);
            let mut writer = self.writer(&encoders);
            if let Some(budget) = self.budget(format!("BigQueryLoader[{}, stream {index}]", self.table)) {
                writer = writer.with_budget(budget);
            }
            tasks.spawn(async move {
                while let Some((batch, first_row)) = batches.recv().await {
                    writer.write(&batch, first_row).await?;
                }
                writer.finish().await.map(|handle| (index, handle))
            });
            queues.push(queue);
        }

        let mut failure = None;
        let mut next_row = 0u64;
        let mut turn = 0usize;
        'input: while let Some(item) = input.next().await {
            let batch = match item {
                Ok(batch) => batch,
                Err(e) => {
                    failure = Some(Error::Input {
                        table: self.table.to_string(),
                        source: e.into(),
                    });
                    break;
                }
            };
            let mut start = 0;
            while start < batch.num_rows() {
                let len = MAX_ROWS_PER_DISPATCH.min(batch.num_rows() - start);
                if queues[turn].send((batch.slice(start, len), next_row)).await.is_err() {
                    // The writer stopped early: its own error is collected below.
                    break 'input;
                }
                start += len;
                next_row += len as u64;
                turn = (turn + 1) % writers;
            }
        }
        drop(queues);
        if failure.is_some() {
            tasks.abort_all();
        }

        let mut handles = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok((index, Some(handle)))) => handles.push((index, handle)),
                Ok(Ok((_, None))) => {}
                Ok(Err(e)) => {
                    if failure.is_none() {
                        failure = Some(e);
                        tasks.abort_all();
                    }
                }
                Err(join) if join.is_cancelled() => {}
                Err(join) => {
                    failure.get_or_insert(Error::Internal(format!("a writer task failed: {join}")));
                    tasks.abort_all();
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        handles.sort_by_key(|(index, _)| *index);
        Ok(handles.into_iter().map(|(_, h)| h).collect())
    }
}
