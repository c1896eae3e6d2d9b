//! The `DataSink` that loads an INSERT's rows atomically.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::{
    ExecutionPlanMetricsSet, MetricBuilder, MetricCategory, MetricType, MetricsSet,
};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};

use crate::load::{LoadProgress, Loader, ProgressSnapshot};
use crate::options::MAX_DEFAULT_STREAMS;

/// Writes the input of an INSERT over N PENDING streams and commits once, after the input
/// is fully drained and every writer succeeded. Dropping the query commits nothing.
///
/// Its metrics, shown by `EXPLAIN ANALYZE`: `rows_written`, `bytes_written` (encoded rows),
/// `write_streams`, `append_requests`, `append_retries` (reconnects), `append_latency_mean`
/// and `append_latency_max` (from sending a request to its acknowledgement), `commit_time`.
#[derive(Debug)]
pub struct BigQuerySink {
    loader: Loader,
    /// The schema the input is checked against (the table's, see [`crate::BigQueryTable`]).
    schema: SchemaRef,
    metrics: ExecutionPlanMetricsSet,
}

impl BigQuerySink {
    /// A sink writing through `loader`, accepting input of `schema`.
    pub fn new(loader: Loader, schema: SchemaRef) -> Self {
        Self {
            loader,
            schema,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// Records what one load did as the sink's metrics.
    fn record_metrics(&self, done: &ProgressSnapshot) {
        let count = |name: &'static str, category: MetricCategory, kind: MetricType, value: u64| {
            MetricBuilder::new(&self.metrics)
                .with_category(category)
                .with_type(kind)
                .global_counter(name)
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
        let time = |name: &'static str, kind: MetricType, value: std::time::Duration| {
            MetricBuilder::new(&self.metrics)
                .with_type(kind)
                .subset_time(name, 0)
                .add_duration(value);
        };
        time("append_latency_mean", MetricType::Dev, done.append_latency_mean());
        time("append_latency_max", MetricType::Dev, done.append_latency_max);
        time("commit_time", MetricType::Summary, done.commit_duration);
    }
}

impl DisplayAs for BigQuerySink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BigQuerySink: table={}", self.loader.table())?;
        if let Some(streams) = self.loader.options().streams {
            write!(f, ", streams={streams}")?;
        }
        Ok(())
    }
}

#[async_trait]
impl DataSink for BigQuerySink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    async fn write_all(&self, data: SendableRecordBatchStream, context: &Arc<TaskContext>) -> Result<u64> {
        let progress = self
            .loader
            .progress()
            .map_or_else(LoadProgress::new, LoadProgress::child);
        let mut loader = self
            .loader
            .clone()
            .with_memory_pool(context.memory_pool().clone())
            .with_progress(progress.clone());
        if loader.options().streams.is_none() {
            let partitions = context.session_config().target_partitions();
            let options = loader
                .options()
                .clone()
                .with_streams(partitions.min(MAX_DEFAULT_STREAMS));
            loader = loader.with_options(options);
        }
        let input_schema = data.schema();
        let loaded = loader.load(input_schema, data).await;
        self.record_metrics(&progress.snapshot());
        let summary = loaded?;
        tracing::info!(
            table = %loader.table(),
            rows = summary.rows,
            streams = summary.streams,
            bytes = summary.bytes,
            "committed"
        );
        Ok(summary.rows)
    }
}
