//! `CREATE EXTERNAL TABLE name STORED AS BIGQUERY LOCATION '...' [OPTIONS (...)]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::CreateExternalTable;
use datafusion::prelude::SessionContext;

use super::{BigQuerySessionOptions, BigQueryTable};
use crate::client::{ClientConfig, WriteClient};
use crate::load::read_table_schema;
use crate::load::{LoadProgress, Loader};
use crate::options::BigQueryOptions;
use crate::proto::TableSchema;
use crate::table_ref::TableRef;
use crate::tables::{CreateMode, check_columns, columns_of, ensure_table};

/// The `STORED AS` name the factory is registered under.
pub const FACTORY_NAME: &str = "BIGQUERY";

/// Creates [`BigQueryTable`]s. LOCATION is `project.dataset.table`, `dataset.table` (with a
/// default project) or `bigquery://project/dataset/table`; OPTIONS keys are `bigquery.<key>`
/// and override the factory's defaults.
///
/// A column list is optional: without one the schema comes from BigQuery; with one it must
/// match the table's columns, or, with `'bigquery.create' 'if_needed'`, it creates the table
/// when there is none (over the v2 REST API, `bigquery.rest_endpoint`).
///
/// ```
/// use datafusion::prelude::SessionContext;
/// use datafusion_bigquery::load::LoadProgress;
/// use datafusion_bigquery::{BigQueryOptions, BigQueryTableFactory, register_bigquery_factory};
///
/// let progress = LoadProgress::new();
/// let factory = BigQueryTableFactory::new(BigQueryOptions::from_env()).with_progress(progress.clone());
/// let ctx = SessionContext::new();
/// register_bigquery_factory(&ctx, factory);
/// // Another task can now watch `progress.snapshot()` while INSERTs run.
/// ```
#[derive(Debug, Default)]
pub struct BigQueryTableFactory {
    defaults: BigQueryOptions,
    /// Where every load of this factory's tables reports its progress.
    progress: Option<LoadProgress>,
    /// One client per connection setting (endpoint, pool size, quota project), shared by
    /// the tables of a session.
    clients: Mutex<HashMap<ClientConfig, WriteClient>>,
}

impl BigQueryTableFactory {
    /// A factory whose tables start from `defaults`.
    pub fn new(defaults: BigQueryOptions) -> Self {
        Self {
            defaults,
            progress: None,
            clients: Mutex::default(),
        }
    }

    /// Reports the progress of every load into this factory's tables to `progress`.
    pub fn with_progress(mut self, progress: LoadProgress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The options tables start from, before their `OPTIONS`.
    pub fn defaults(&self) -> &BigQueryOptions {
        &self.defaults
    }

    async fn client(&self, config: ClientConfig) -> crate::Result<WriteClient> {
        let cached = self
            .clients
            .lock()
            .ok()
            .and_then(|clients| clients.get(&config).cloned());
        if let Some(client) = cached {
            return Ok(client);
        }
        let client = WriteClient::connect_with(&config).await?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(config, client.clone());
        }
        Ok(client)
    }
}

impl BigQueryTableFactory {
    /// A table of known schema, with the factory's defaults, client pool and progress.
    pub(crate) async fn open(&self, table: TableRef, schema: TableSchema) -> crate::Result<BigQueryTable> {
        let options = self.defaults.clone();
        options.validate()?;
        let client = self
            .client(options.client_config())
            .await?
            .with_rpc_timeout(options.rpc_timeout);
        Ok(self.table_over(client, table, schema, options))
    }

    fn table_over(
        &self,
        client: WriteClient,
        table: TableRef,
        schema: TableSchema,
        options: BigQueryOptions,
    ) -> BigQueryTable {
        let mut loader = Loader::new(client, table, schema, options);
        if let Some(progress) = &self.progress {
            loader = loader.with_progress(progress.clone());
        }
        BigQueryTable::new(loader)
    }
}

#[async_trait]
impl TableProviderFactory for BigQueryTableFactory {
    async fn create(&self, state: &dyn Session, cmd: &CreateExternalTable) -> Result<Arc<dyn TableProvider>> {
        let location = match cmd.locations.as_slice() {
            [one] => one,
            _ => {
                return datafusion::common::plan_err!(
                    "STORED AS BIGQUERY takes exactly one LOCATION 'project.dataset.table'"
                );
            }
        };
        // Defaults, then the session's `SET bigquery.*`, then the table's OPTIONS.
        let mut options = self.defaults.clone();
        if let Some(session) = state.config_options().extensions.get::<BigQuerySessionOptions>() {
            session.apply_to(&mut options).map_err(DataFusionError::from)?;
        }
        options
            .apply_table_options(&cmd.options)
            .map_err(DataFusionError::from)?;
        let table = TableRef::parse_with_default_project(location, options.project.as_deref())
            .map_err(DataFusionError::from)?;
        options.validate().map_err(DataFusionError::from)?;
        let declared = cmd.schema.as_arrow();
        let declared = (!declared.fields().is_empty())
            .then(|| columns_of(&table, declared))
            .transpose()
            .map_err(DataFusionError::from)?;
        let client = self
            .client(options.client_config())
            .await
            .map_err(DataFusionError::from)?
            .with_rpc_timeout(options.rpc_timeout);
        let schema = match (options.tables.create, declared) {
            (CreateMode::IfNeeded, Some(declared)) => {
                let rest = options.rest_client().map_err(DataFusionError::from)?;
                ensure_table(&rest, &table, &declared, &options.tables)
                    .await
                    .map_err(DataFusionError::from)?
                    .schema()
                    .clone()
            }
            (CreateMode::IfNeeded, None) => {
                return datafusion::common::plan_err!(
                    "CREATE EXTERNAL TABLE {} with 'bigquery.create' 'if_needed' needs a column list to create {table} from",
                    cmd.name
                );
            }
            (CreateMode::Never, declared) => {
                let schema = read_table_schema(&client, &table, &options.retry)
                    .await
                    .map_err(DataFusionError::from)?;
                // Declared columns must match the table's, as they must when it is created.
                if let Some(declared) = declared {
                    check_columns(&table, &declared, &schema).map_err(DataFusionError::from)?;
                }
                schema
            }
        };
        Ok(Arc::new(
            self.table_over(client, table, schema, options)
                .with_table_options(cmd.options.clone()),
        ))
    }
}

/// Registers the BigQuery factory on a session, so that `STORED AS BIGQUERY` works.
///
/// ```
/// use datafusion::prelude::SessionContext;
/// use datafusion_bigquery::{register_bigquery, BigQueryOptions};
/// let ctx = SessionContext::new();
/// register_bigquery(&ctx, BigQueryOptions::from_env());
/// ```
pub fn register_bigquery(ctx: &SessionContext, defaults: BigQueryOptions) {
    register_bigquery_factory(ctx, BigQueryTableFactory::new(defaults));
}

/// Registers a configured factory on a session under `STORED AS BIGQUERY`.
/// Also lets the session `SET bigquery.<key> = <value>` (see [`BigQuerySessionOptions`]).
pub fn register_bigquery_factory(ctx: &SessionContext, factory: BigQueryTableFactory) {
    let factory: Arc<dyn TableProviderFactory> = Arc::new(factory);
    let state = ctx.state_ref();
    state
        .write()
        .table_factories_mut()
        .insert(FACTORY_NAME.to_string(), factory);
    allow_session_options(ctx);
}

/// Lets the session `SET bigquery.<key> = <value>`.
pub(crate) fn allow_session_options(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let extensions = &mut state.config_mut().options_mut().extensions;
    if extensions.get::<BigQuerySessionOptions>().is_none() {
        extensions.insert(BigQuerySessionOptions::default());
    }
}
