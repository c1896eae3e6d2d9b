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
use crate::load::{LoadProgress, Loader};
use crate::options::BigQueryOptions;
use crate::retry::with_retries;
use crate::rpc::Rpc;
use crate::table_ref::TableRef;

/// The `STORED AS` name the factory is registered under.
pub const FACTORY_NAME: &str = "BIGQUERY";

/// Creates [`BigQueryTable`]s. LOCATION is `project.dataset.table`, `dataset.table` (with a
/// default project) or `bigquery://project/dataset/table`; OPTIONS keys are `bigquery.<key>`
/// and override the factory's defaults.
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
        if !cmd.schema.fields().is_empty() {
            return datafusion::common::plan_err!(
                "CREATE EXTERNAL TABLE {} STORED AS BIGQUERY takes no column list: the schema comes from BigQuery",
                cmd.name
            );
        }
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
        let client = self
            .client(options.client_config())
            .await
            .map_err(DataFusionError::from)?
            .with_rpc_timeout(options.rpc_timeout);
        let schema = with_retries(&options.retry, Rpc::GetWriteStream, || client.table_schema(&table))
            .await
            .map_err(DataFusionError::from)?;
        let mut loader = Loader::new(client, table, schema, options);
        if let Some(progress) = &self.progress {
            loader = loader.with_progress(progress.clone());
        }
        Ok(Arc::new(
            BigQueryTable::new(loader).with_table_options(cmd.options.clone()),
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
    let mut state = state.write();
    state.table_factories_mut().insert(FACTORY_NAME.to_string(), factory);
    let extensions = &mut state.config_mut().options_mut().extensions;
    if extensions.get::<BigQuerySessionOptions>().is_none() {
        extensions.insert(BigQuerySessionOptions::default());
    }
}
