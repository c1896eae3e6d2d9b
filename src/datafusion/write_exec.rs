//! `BigQueryWriteExec`: one worker per input partition. Each worker writes its partition to
//! its own PENDING stream (created on its first non-empty batch), finalizes it, checks the
//! row count, and emits one row: the finalized stream's handle. A partition with no rows
//! creates no stream and emits nothing. Nothing is committed here.

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    ExecutionPlanMetricsSet, MetricBuilder, MetricCategory, MetricType, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PhysicalExpr, PlanProperties, ReplaceChildrenOptions,
};

use datafusion::physical_plan::repartition::RepartitionExec;

use super::checkpointed::{Checkpointed, Started};
use super::fingerprint::identify;
use super::insert_mode::InsertMode;
use super::memory::MemoryPoolBudgets;
use crate::checkpoint::{Worker, write_stream};
use crate::error::Error;
use crate::load::BudgetPool;
use crate::load::{LoadProgress, Loader, ProgressSnapshot, StreamHandle, StreamWriter};
use crate::options::MAX_DEFAULT_STREAMS;

/// Name of the one column the write exec emits: a finalized stream's handle, as JSON.
pub(crate) const HANDLE_COLUMN: &str = "stream_handle";

/// Writes each input partition to its own PENDING stream and emits its [`StreamHandle`].
///
/// Its metrics, shown by `EXPLAIN ANALYZE`, summed over the partitions: `rows_written`,
/// `bytes_written` (encoded rows), `write_streams`, `append_requests`, `append_retries`
/// (reconnects), `append_latency` (the time requests waited for their acknowledgements, in
/// all); and `append_latency_max`, the longest wait of any request.
#[derive(Debug)]
pub struct BigQueryWriteExec {
    input: Arc<dyn ExecutionPlan>,
    /// What the workers read: the input, or the input spread round robin over the number of
    /// workers `bigquery.streams` asks for. Kept out of the plan's children so that no
    /// optimizer rule takes the number of streams away.
    source: Arc<dyn ExecutionPlan>,
    /// Whether the input may be spread over `bigquery.streams` workers in this process.
    spread: bool,
    loader: Loader,
    /// Checkpointed, an overwrite (the workers then write its staging table), or neither.
    mode: InsertMode,
    /// What the workers read, found once: its fingerprint, and why its partitions do not
    /// replay (empty if they do).
    source_identity: Arc<std::sync::OnceLock<(Arc<str>, Vec<String>)>>,
    metrics: ExecutionPlanMetricsSet,
    /// The longest acknowledgement wait of any partition, raised under its lock.
    latency_max: Arc<std::sync::Mutex<Time>>,
    properties: Arc<PlanProperties>,
}

impl BigQueryWriteExec {
    /// Workers writing `input` through `loader`: one per input partition, or as many as
    /// `bigquery.streams` says (the input is then spread over them round robin); without the
    /// option, at most [`MAX_DEFAULT_STREAMS`].
    pub fn new(input: Arc<dyn ExecutionPlan>, loader: Loader) -> Result<Self> {
        Self::build(input, loader, true, InsertMode::default())
    }

    /// Workers for a plan that runs across processes (Ballista), where each partition is a
    /// task of its own: one worker per input partition, never spread in-process (which would
    /// make every task read every partition). `bigquery.streams` is then the input's
    /// partitioning to choose.
    pub fn distributed(input: Arc<dyn ExecutionPlan>, loader: Loader) -> Self {
        let partitions = input.output_partitioning().partition_count();
        Self::with_source(input.clone(), input, false, loader, partitions)
    }

    /// The same workers, for an INSERT of `mode` (checkpointed, overwriting).
    pub(crate) fn with_mode(mut self, mode: InsertMode) -> Self {
        self.mode = mode;
        self
    }

    /// The INSERT's mode (for the Ballista codec).
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn mode(&self) -> &InsertMode {
        &self.mode
    }

    fn build(input: Arc<dyn ExecutionPlan>, loader: Loader, spread: bool, mode: InsertMode) -> Result<Self> {
        if !spread {
            return Ok(Self::distributed(input, loader).with_mode(mode));
        }
        let partitions = input.output_partitioning().partition_count();
        let workers = match loader.options().streams {
            Some(n) => n.max(1),
            None => partitions.clamp(1, MAX_DEFAULT_STREAMS),
        };
        let source: Arc<dyn ExecutionPlan> = if workers == partitions {
            input.clone()
        } else {
            Arc::new(RepartitionExec::try_new(
                input.clone(),
                Partitioning::RoundRobinBatch(workers),
            )?)
        };
        Ok(Self::with_source(input, source, true, loader, workers).with_mode(mode))
    }

    fn with_source(
        input: Arc<dyn ExecutionPlan>,
        source: Arc<dyn ExecutionPlan>,
        spread: bool,
        loader: Loader,
        workers: usize,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(handle_schema()),
            Partitioning::UnknownPartitioning(workers),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        let metrics = ExecutionPlanMetricsSet::new();
        let latency_max = MetricBuilder::new(&metrics)
            .with_type(MetricType::Dev)
            .subset_time("append_latency_max", 0);
        Self {
            input,
            source,
            spread,
            loader,
            mode: InsertMode::default(),
            source_identity: Default::default(),
            metrics,
            latency_max: Arc::new(std::sync::Mutex::new(latency_max)),
            properties: Arc::new(properties),
        }
    }

    /// The loader the workers write through.
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The input plan.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

/// The schema of the write exec's output: one handle per finalized stream.
pub(crate) fn handle_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(HANDLE_COLUMN, DataType::Utf8, false)]))
}

/// Reads the handles out of the write exec's output batches.
pub(crate) fn handles_from_batch(batch: &RecordBatch) -> Result<Vec<StreamHandle>> {
    let column = batch
        .column_by_name(HANDLE_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| DataFusionError::Internal(format!("expected a {HANDLE_COLUMN} column of text")))?;
    column
        .iter()
        .flatten()
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| DataFusionError::Internal(format!("not a stream handle: {e}: {json}")))
        })
        .collect()
}

fn handle_batch(handle: Option<StreamHandle>) -> Result<RecordBatch> {
    let rows: Vec<String> = handle
        .iter()
        .map(serde_json::to_string)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| DataFusionError::Internal(e.to_string()))?;
    RecordBatch::try_new(handle_schema(), vec![Arc::new(StringArray::from(rows))]).map_err(DataFusionError::from)
}

impl DisplayAs for BigQueryWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BigQueryWriteExec: table={}, streams={}",
            self.loader.table(),
            self.properties.output_partitioning().partition_count()
        )
    }
}

impl ExecutionPlan for BigQueryWriteExec {
    fn name(&self) -> &'static str {
        "BigQueryWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::UnspecifiedDistribution]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // Without `bigquery.streams`, a single-partition input may be spread by the optimizer
        // over the session's partitions; with it, the workers are as many as it says.
        vec![self.spread && self.loader.options().streams.is_none()]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = only_child(children, self.name())?;
        Ok(Arc::new(Self::build(
            input,
            self.loader.clone(),
            self.spread,
            self.mode.clone(),
        )?))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let context = match &self.mode.checkpoint {
            Some(_) => replayable_context(&context),
            None => context,
        };
        let input = self.source.execute(partition, context.clone())?;
        let table = self.loader.table().to_string();
        let progress = self
            .loader
            .progress()
            .map_or_else(LoadProgress::new, LoadProgress::child);
        let new_writer = {
            let (loader, progress, schema) = (self.loader.clone(), progress.clone(), input.schema());
            let (pool, table) = (MemoryPoolBudgets(context.memory_pool().clone()), table.clone());
            move || -> crate::Result<StreamWriter> {
                let budget = pool.budget(format!("BigQueryWriteExec[{table}, partition {partition}]"));
                Ok(loader
                    .stream_writer(&schema)?
                    .with_progress(progress.clone())
                    .with_budget(budget))
            }
        };
        let checkpointed = match &self.mode.checkpoint {
            Some(checkpoint) => {
                let (fingerprint, reasons) = match self.source_identity.get() {
                    Some(found) => found.clone(),
                    None => {
                        let found = identify(&self.source)?;
                        let found = (Arc::from(found.fingerprint.as_str()), found.not_replayable);
                        self.source_identity.get_or_init(|| found).clone()
                    }
                };
                Some(Resumable {
                    checkpoint: checkpoint.clone(),
                    replays: reasons.is_empty(),
                    fingerprint,
                    source: self.source.clone(),
                    context: context.clone(),
                    interval: self.loader.options().checkpoint_interval,
                })
            }
            None => None,
        };
        let loader = self.loader.clone();
        let metrics = self.metrics.clone();
        let latency_max = self.latency_max.clone();
        let overwrite = self.mode.overwrite.clone();
        let work = async move {
            if let Some(overwrite) = &overwrite {
                overwrite.stage(loader.options()).await?;
            }
            let written = match checkpointed {
                None => write_stream(input, new_writer()?, 0, &table, None).await,
                Some(resumable) => {
                    resumable
                        .write(partition, input, &loader, &progress, &table, &new_writer)
                        .await
                }
            };
            let done = progress.snapshot();
            record_metrics(&metrics, partition, &done);
            if let Ok(max) = latency_max.lock() {
                let (now, seen) = (max.value() as u128, done.append_latency_max.as_nanos());
                if seen > now {
                    max.add_duration(std::time::Duration::from_nanos((seen - now) as u64));
                }
            }
            let handle = written?;
            if let Some(h) = &handle {
                tracing::debug!(stream = %h.stream, rows = h.rows, partition, "stream finalized");
            }
            handle_batch(handle)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            handle_schema(),
            futures::stream::once(work),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// A worker of a checkpointed load: it reuses, resumes or starts its partition's stream.
struct Resumable {
    checkpoint: Arc<Checkpointed>,
    /// Whether the partitions the workers read replay (checked on the plan that runs).
    replays: bool,
    /// Fingerprint of the plan the workers read.
    fingerprint: Arc<str>,
    source: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    interval: std::time::Duration,
}

impl Resumable {
    async fn write(
        self,
        partition: usize,
        input: SendableRecordBatchStream,
        loader: &Loader,
        progress: &LoadProgress,
        table: &str,
        new_writer: &(dyn Fn() -> crate::Result<StreamWriter> + Send + Sync),
    ) -> crate::Result<Option<StreamHandle>> {
        let run = match self.checkpoint.start(loader).await? {
            Started::Committed(_) => return Ok(None),
            Started::Open(run) => run,
        };
        let worker = Worker {
            run,
            partition,
            source: self.fingerprint,
            replays: self.replays,
            interval: self.interval,
            table: table.to_string(),
            progress: progress.clone(),
        };
        // The input is opened once more if a stream cannot be resumed after all.
        let (source, context) = (self.source, self.context);
        let mut first = Some(input);
        let open = move || match first.take() {
            Some(input) => Ok(input),
            None => source.execute(partition, context.clone()).map_err(|e| Error::Input {
                table: table.to_string(),
                source: e.into(),
            }),
        };
        worker.write(open, new_writer).await
    }
}

/// The task's context with what makes partitions differ between runs turned off: file scans
/// whose partitions take files from each other (work stealing) deal them as they finish.
fn replayable_context(context: &Arc<TaskContext>) -> Arc<TaskContext> {
    if !context
        .session_config()
        .options()
        .execution
        .enable_file_stream_work_stealing
    {
        return context.clone();
    }
    let mut config = context.session_config().clone();
    config.options_mut().execution.enable_file_stream_work_stealing = false;
    Arc::new(TaskContext::new(
        context.task_id(),
        context.session_id(),
        config,
        context.scalar_functions().clone(),
        context.higher_order_functions().clone(),
        context.aggregate_functions().clone(),
        context.window_functions().clone(),
        context.runtime_env(),
    ))
}

/// The one child of a node that has one.
pub(super) fn only_child(children: Vec<Arc<dyn ExecutionPlan>>, node: &str) -> Result<Arc<dyn ExecutionPlan>> {
    let [input] = <[_; 1]>::try_from(children)
        .map_err(|c| DataFusionError::Internal(format!("{node} has one input, not {}", c.len())))?;
    Ok(input)
}

/// Records what one worker did as metrics of its partition.
fn record_metrics(metrics: &ExecutionPlanMetricsSet, partition: usize, done: &ProgressSnapshot) {
    let count = |name: &'static str, category: MetricCategory, kind: MetricType, value: u64| {
        MetricBuilder::new(metrics)
            .with_category(category)
            .with_type(kind)
            .counter(name, partition)
            .add(usize::try_from(value).unwrap_or(usize::MAX));
    };
    count("rows_written", MetricCategory::Rows, MetricType::Summary, done.rows);
    count("bytes_written", MetricCategory::Bytes, MetricType::Summary, done.bytes);
    count(
        "write_streams",
        MetricCategory::Uncategorized,
        MetricType::Summary,
        done.streams,
    );
    count(
        "append_requests",
        MetricCategory::Uncategorized,
        MetricType::Dev,
        done.requests,
    );
    count(
        "append_retries",
        MetricCategory::Uncategorized,
        MetricType::Dev,
        done.retries,
    );
    MetricBuilder::new(metrics)
        .with_type(MetricType::Dev)
        .subset_time("append_latency", partition)
        .add_duration(done.append_latency);
}
