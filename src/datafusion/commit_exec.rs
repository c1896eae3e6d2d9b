//! `BigQueryCommitExec`: the one commit of an INSERT. It requires a single input partition,
//! collects the handles every worker emitted, and, once its input is exhausted without error,
//! issues ONE BatchCommitWriteStreams over them. A failed worker, a failed input or a dropped
//! query never reaches the commit; the streams then expire unseen.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricType, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PhysicalExpr,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;

use super::write_exec::{handles_from_batch, only_child};
use crate::load::{Loader, StreamHandle};

/// Commits the streams its input names, once, and returns the INSERT's `count`.
///
/// Its metric, shown by `EXPLAIN ANALYZE`: `commit_time` (BatchCommitWriteStreams and its
/// retries).
#[derive(Debug)]
pub struct BigQueryCommitExec {
    input: Arc<dyn ExecutionPlan>,
    loader: Loader,
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
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        }
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
        Ok(Arc::new(Self::new(input, self.loader.clone())))
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
        let mut input = self.input.execute(0, context)?;
        let loader = self.loader.clone();
        let commit_time = MetricBuilder::new(&self.metrics)
            .with_type(MetricType::Summary)
            .subset_time("commit_time", 0);
        let work = async move {
            let mut handles: Vec<StreamHandle> = Vec::new();
            // Every worker must have finished without error before anything is committed.
            while let Some(batch) = input.next().await {
                handles.extend(handles_from_batch(&batch?)?);
            }
            handles.sort_by(|a, b| a.stream.cmp(&b.stream));
            let started = Instant::now();
            let committed = loader.commit(&handles).await;
            commit_time.add_duration(started.elapsed());
            committed?;
            let rows: u64 = handles.iter().map(|h| h.rows).sum();
            tracing::info!(
                table = %loader.table(),
                rows,
                streams = handles.len(),
                bytes = handles.iter().map(|h| h.bytes).sum::<u64>(),
                "committed"
            );
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
