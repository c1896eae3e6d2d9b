//! `BigQueryCommitExec`: the one commit of an INSERT. It requires a single input partition,
//! collects the handles every worker emitted, and, once its input is exhausted without error,
//! issues ONE BatchCommitWriteStreams over them. A failed worker, a failed input or a dropped
//! query never reaches the commit; the streams then expire unseen.

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricType, MetricsSet, Time};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PhysicalExpr,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;

use super::checkpointed::{Checkpointed, Started};
use super::insert_mode::InsertMode;
use super::write_exec::{handles_from_batch, only_child};
use crate::load::{CheckpointReport, Loader, StreamHandle};

/// Commits the streams its input names, once, and returns the INSERT's `count`.
///
/// Its metric, shown by `EXPLAIN ANALYZE`: `commit_time` (BatchCommitWriteStreams and its
/// retries).
#[derive(Debug)]
pub struct BigQueryCommitExec {
    input: Arc<dyn ExecutionPlan>,
    loader: Loader,
    /// Checkpointed, an overwrite (after the commit to its staging table, the destination's
    /// rows are replaced and the staging table deleted), or neither.
    mode: InsertMode,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl BigQueryCommitExec {
    /// Commits the handles `input` emits through `loader`.
    pub fn new(input: Arc<dyn ExecutionPlan>, loader: Loader) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            input,
            loader,
            mode: InsertMode::default(),
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        }
    }

    /// The same commit, for an INSERT of `mode` (checkpointed, overwriting).
    pub(crate) fn with_mode(mut self, mode: InsertMode) -> Self {
        self.mode = mode;
        self
    }

    /// The INSERT's mode (for the Ballista codec).
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn mode(&self) -> &InsertMode {
        &self.mode
    }

    /// The loader that commits.
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The input plan.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

/// The schema of an INSERT's result: one `count` row.
fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]))
}

impl DisplayAs for BigQueryCommitExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BigQueryCommitExec: table={}", self.loader.table())
    }
}

impl ExecutionPlan for BigQueryCommitExec {
    fn name(&self) -> &'static str {
        "BigQueryCommitExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// A single partition, so that no optimizer rule can remove the coalesce below: every
    /// handle must reach this one commit.
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
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
        Ok(Arc::new(
            Self::new(input, self.loader.clone()).with_mode(self.mode.clone()),
        ))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "BigQueryCommitExec has one partition, not {partition}"
            )));
        }
        let input = self.input.execute(0, context)?;
        let loader = self.loader.clone();
        let InsertMode { checkpoint, overwrite } = self.mode.clone();
        let commit_time = MetricBuilder::new(&self.metrics)
            .with_type(MetricType::Summary)
            .subset_time("commit_time", 0);
        let work = async move {
            let committed = async {
                match checkpoint {
                    None => {
                        if let Some(overwrite) = &overwrite {
                            // The copy reads the staging table even if no worker wrote.
                            overwrite.stage(loader.options()).await?;
                        }
                        let handles = collect_handles(input).await?;
                        commit_handles(&loader, &handles, &commit_time).await?;
                        Ok(handles.iter().map(|h| h.rows).sum())
                    }
                    Some(checkpoint) => commit_checkpointed(&loader, &checkpoint, input, &commit_time).await,
                }
            }
            .await;
            let rows = match &overwrite {
                Some(overwrite) => overwrite.finish(loader.options(), committed).await?,
                None => committed?,
            };
            RecordBatch::try_new(count_schema(), vec![Arc::new(UInt64Array::from(vec![rows]))])
                .map_err(DataFusionError::from)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(work),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Every handle the workers emitted, once all finished without error.
async fn collect_handles(mut input: SendableRecordBatchStream) -> Result<Vec<StreamHandle>> {
    let mut handles: Vec<StreamHandle> = Vec::new();
    while let Some(batch) = input.next().await {
        handles.extend(handles_from_batch(&batch?)?);
    }
    handles.sort_by(|a, b| a.stream.cmp(&b.stream));
    Ok(handles)
}

/// The one BatchCommitWriteStreams, timed into `commit_time`; returns the commit time.
async fn commit_handles(loader: &Loader, handles: &[StreamHandle], commit_time: &Time) -> Result<Option<SystemTime>> {
    let started = Instant::now();
    let committed = loader.commit(handles).await;
    commit_time.add_duration(started.elapsed());
    let time = committed?;
    tracing::info!(
        table = %loader.table(),
        rows = handles.iter().map(|h| h.rows).sum::<u64>(),
        streams = handles.len(),
        bytes = handles.iter().map(|h| h.bytes).sum::<u64>(),
        "committed"
    );
    Ok(time)
}

/// The commit of a checkpointed load: nothing if it committed before; otherwise, under the
/// lease, the commit, then its record.
async fn commit_checkpointed(
    loader: &Loader,
    checkpoint: &Checkpointed,
    input: SendableRecordBatchStream,
    commit_time: &Time,
) -> Result<u64> {
    let load_id = checkpoint.checkpoint_plan().identity.load_id.clone();
    let report = |r: CheckpointReport| {
        if let Some(progress) = loader.progress() {
            progress.checkpoint_report(r);
        }
    };
    let run = match checkpoint.start(loader).await.map_err(DataFusionError::from)? {
        Started::Committed(record) => {
            // Drain the workers (they write nothing) before answering.
            collect_handles(input).await?;
            tracing::info!(load = %load_id, rows = record.rows, commit_time = ?record.commit_time, "already committed");
            report(CheckpointReport::AlreadyCommitted {
                load_id,
                commit_time: record.commit_time.clone(),
                rows: record.rows,
                recovered: record.recovered,
            });
            return Ok(record.rows);
        }
        Started::Open(run) => run,
    };
    let outcome = async {
        let handles = collect_handles(input).await?;
        run.check_lease().await.map_err(DataFusionError::from)?;
        let time = commit_handles(loader, &handles, commit_time).await?;
        Ok::<_, DataFusionError>((handles, time))
    }
    .await;
    let (handles, time) = match outcome {
        Ok(done) => done,
        Err(e) => {
            run.release().await;
            return Err(e);
        }
    };
    let rows: u64 = handles.iter().map(|h| h.rows).sum();
    match run.record_commit(&handles, time).await {
        Ok(_) => tracing::debug!(load = %load_id, rows, "commit recorded"),
        // The rows are committed: a rerun finds that out from the streams.
        Err(e) => tracing::warn!(load = %load_id, error = %e, "committed, but the commit record could not be written"),
    }
    report(CheckpointReport::Committed {
        load_id,
        replayable: run.identity().replayable,
    });
    Ok(rows)
}
