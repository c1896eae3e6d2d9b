//! A BigQuery table as a DataFusion `TableProvider` (write-only).

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;

use super::checkpointed::Checkpointed;
use super::insert_mode::InsertMode;
use super::overwriting::Overwriting;
use super::source_types::without_widening_casts;
use super::{BigQueryCommitExec, BigQuerySessionOptions, BigQueryWriteExec};
use crate::load::{LoadProgress, Loader};
use crate::schema::nullable_everywhere;

/// A BigQuery table that DataFusion can `INSERT INTO`. Reading is not supported.
///
/// Its schema is the table's Arrow schema with every column, struct member and list item
/// nullable: DataFusion would otherwise reject a NULL bound for a REQUIRED field while
/// planning, naming only an internal column; the encoder rejects it instead, naming table,
/// column path and row, before anything is committed (or drops NULL array elements, if
/// told to).
///
/// An INSERT is planned as `BigQueryCommitExec <- CoalescePartitionsExec <- BigQueryWriteExec
/// <- input`: each input partition is a worker with its own PENDING stream, and one commit
/// runs after all of them succeeded.
#[derive(Debug, Clone)]
pub struct BigQueryTable {
    loader: Loader,
    schema: SchemaRef,
    /// Planned for a cluster: each partition of the INSERT runs as a task of its own.
    distributed: bool,
    /// The table's own OPTIONS, which win over the session's `SET bigquery.*` at each load.
    table_options: std::collections::HashMap<String, String>,
}

impl BigQueryTable {
    /// A table over a loader (which knows the table, its schema and the options).
    pub fn new(loader: Loader) -> Self {
        let schema = all_nullable(&loader.arrow_schema());
        Self {
            loader,
            schema,
            distributed: false,
            table_options: Default::default(),
        }
    }

    /// Remembers the table's own OPTIONS (already in the loader's options), so that they keep
    /// winning over the session's `SET bigquery.*` made after the table was created.
    pub fn with_table_options(mut self, options: std::collections::HashMap<String, String>) -> Self {
        self.table_options = options;
        self
    }

    /// The same table, its INSERTs planned for a cluster (Ballista): one worker per input
    /// partition, as the cluster runs each partition as a task of its own.
    pub fn distributed(mut self) -> Self {
        self.distributed = true;
        self
    }

    /// The loader behind the table.
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The plan that writes `input` to this table: its partitions as workers (as many as
    /// `bigquery.streams` says, spread round robin when the input has another number;
    /// otherwise the input's own, at most 16), then one commit.
    pub fn write_plan(&self, input: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        self.plan_write(input, None)
    }

    /// The plan that replaces this table's rows with `input`'s, atomically: the workers
    /// write a staging table, one commit makes their rows visible there, one copy job
    /// (WRITE_TRUNCATE) replaces the destination's rows, and the staging table is deleted.
    pub async fn overwrite_plan(&self, input: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let overwrite = Arc::new(Overwriting::plan(&self.loader).await?);
        self.plan_write(input, Some(overwrite))
    }

    async fn plan_insert(&self, input: Arc<dyn ExecutionPlan>, overwrite: bool) -> Result<Arc<dyn ExecutionPlan>> {
        if overwrite {
            self.overwrite_plan(input).await
        } else {
            self.write_plan(input)
        }
    }

    fn plan_write(
        &self,
        input: Arc<dyn ExecutionPlan>,
        overwrite: Option<Arc<Overwriting>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // One progress per INSERT, adding to the factory's.
        let progress = self
            .loader
            .progress()
            .map_or_else(LoadProgress::new, LoadProgress::child);
        let mut loader = self.loader.clone().with_progress(progress);
        if let Some(overwrite) = &overwrite {
            loader = overwrite.staging_loader(&loader);
        }
        let input = without_widening_casts(input, &loader)?;
        let checkpoint = Checkpointed::plan(&loader, &input)?.map(Arc::new);
        let mode = InsertMode { checkpoint, overwrite };
        let write = Arc::new(
            if self.distributed {
                if let Some(n) = loader.options().streams {
                    tracing::warn!(
                        table = %loader.table(),
                        streams = n,
                        "bigquery.streams does not reshape a distributed INSERT: each input partition is a stream"
                    );
                }
                BigQueryWriteExec::distributed(input, loader.clone())
            } else {
                BigQueryWriteExec::new(input, loader.clone())?
            }
            .with_mode(mode.clone()),
        );
        let handles = Arc::new(CoalescePartitionsExec::new(write));
        Ok(Arc::new(BigQueryCommitExec::new(handles, loader).with_mode(mode)))
    }
}

#[async_trait]
impl TableProvider for BigQueryTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        datafusion::common::not_impl_err!(
            "reading BigQuery table {} is not supported: it is a write-only destination",
            self.loader.table()
        )
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op == InsertOp::Replace {
            return datafusion::common::not_impl_err!(
                "REPLACE INTO BigQuery table {} is not supported: BigQuery tables have no primary key to \
                 replace rows by; use INSERT INTO to add rows or INSERT OVERWRITE to replace them all",
                self.loader.table()
            );
        }
        let overwrite = insert_op == InsertOp::Overwrite;
        // The session's `SET bigquery.*` as of this statement, under the table's OPTIONS.
        let session = state.config_options().extensions.get::<BigQuerySessionOptions>();
        match session.filter(|s| !s.is_empty() && !self.distributed) {
            Some(session) => {
                let mut options = self.loader.options().clone();
                session
                    .apply_load_settings_to(&mut options)
                    .and_then(|()| options.apply_table_options(&self.table_options))
                    .map_err(datafusion::error::DataFusionError::from)?;
                let table = Self {
                    loader: self.loader.clone().with_options(options),
                    ..self.clone()
                };
                table.plan_insert(input, overwrite).await
            }
            None => self.plan_insert(input, overwrite).await,
        }
    }
}

/// The schema with every field nullable, at any depth.
fn all_nullable(schema: &Schema) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_data_type(nullable_everywhere(f.data_type()))
                .with_nullable(true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}
