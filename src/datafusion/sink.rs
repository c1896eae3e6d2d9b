//! The `DataSink` that loads an INSERT's rows atomically.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};

use crate::load::Loader;

/// Writes the input of an INSERT over N PENDING streams and commits once, after the input
/// is fully drained and every writer succeeded. Dropping the query commits nothing.
#[derive(Debug)]
pub struct BigQuerySink {
    loader: Loader,
    /// The schema the input is checked against (the table's, see [`crate::BigQueryTable`]).
    schema: SchemaRef,
}

impl BigQuerySink {
    /// A sink writing through `loader`, accepting input of `schema`.
    pub fn new(loader: Loader, schema: SchemaRef) -> Self {
        Self { loader, schema }
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

    async fn write_all(&self, data: SendableRecordBatchStream, context: &Arc<TaskContext>) -> Result<u64> {
        let mut loader = self.loader.clone().with_memory_pool(context.memory_pool().clone());
        if loader.options().streams.is_none() {
            let partitions = context.session_config().target_partitions();
            let options = loader.options().clone().with_streams(partitions);
            loader = loader.with_options(options);
        }
        let input_schema = data.schema();
        let summary = loader.load(input_schema, data).await?;
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
