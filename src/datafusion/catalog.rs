//! A BigQuery project as a DataFusion catalog: its datasets are schemas, its tables are
//! writable table providers, looked up on use, so `INSERT INTO bq.my_dataset.sales ...`
//! needs no CREATE statement.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use super::BigQueryTableFactory;
use super::factory::allow_session_options;
use crate::options::BigQueryOptions;
use crate::rest::RestClient;
use crate::table_ref::TableRef;

/// Datasets whose tables are listed at once when the catalog is (re)loaded.
const LISTING_CONCURRENCY: usize = 8;

/// Registers the BigQuery project `project` as the catalog `name` of `ctx`: every dataset is
/// a schema, every table a destination. Table names are listed now (for `SHOW TABLES`; call
/// [`BigQueryCatalog::refresh`] to list again); tables themselves are looked up when a
/// statement names them, so tables created later work at once. Also lets the session
/// `SET bigquery.<key>`.
///
/// ```no_run
/// # async fn example() -> datafusion_bigquery::Result<()> {
/// use datafusion::prelude::SessionContext;
/// use datafusion_bigquery::BigQueryOptions;
/// use datafusion_bigquery::datafusion::register_bigquery_catalog;
/// let ctx = SessionContext::new();
/// register_bigquery_catalog(&ctx, "bq", "my-project", BigQueryOptions::from_env()).await?;
/// ctx.sql("INSERT INTO bq.my_dataset.sales SELECT * FROM staging").await.ok();
/// # Ok(()) }
/// ```
pub async fn register_bigquery_catalog(
    ctx: &SessionContext,
    name: &str,
    project: &str,
    options: BigQueryOptions,
) -> crate::Result<Arc<BigQueryCatalog>> {
    let catalog = Arc::new(BigQueryCatalog::connect(project, options).await?);
    ctx.register_catalog(name, catalog.clone());
    allow_session_options(ctx);
    Ok(catalog)
}

/// A BigQuery project's datasets and tables.
#[derive(Debug)]
pub struct BigQueryCatalog {
    shared: Arc<Shared>,
    datasets: RwLock<BTreeMap<String, Arc<BigQueryDataset>>>,
}

#[derive(Debug)]
struct Shared {
    project: String,
    rest: RestClient,
    factory: BigQueryTableFactory,
}

impl BigQueryCatalog {
    /// The catalog of `project`, its datasets and table names listed.
    pub async fn connect(project: &str, options: BigQueryOptions) -> crate::Result<Self> {
        let options = options.with_project(project);
        let rest = options.rest_client()?;
        let catalog = Self {
            shared: Arc::new(Shared {
                project: project.to_string(),
                rest,
                factory: BigQueryTableFactory::new(options),
            }),
            datasets: RwLock::default(),
        };
        catalog.refresh().await?;
        Ok(catalog)
    }

    /// The project.
    pub fn project(&self) -> &str {
        &self.shared.project
    }

    /// Lists the project's datasets and their tables again.
    pub async fn refresh(&self) -> crate::Result<()> {
        let shared = &self.shared;
        let names = shared.rest.list_datasets(&shared.project).await?;
        let listed: Vec<(String, Vec<String>)> = futures::stream::iter(names)
            .map(|dataset| async move {
                let tables = shared.rest.list_tables(&shared.project, &dataset).await?;
                Ok::<_, crate::Error>((dataset, tables))
            })
            .buffer_unordered(LISTING_CONCURRENCY)
            .try_collect()
            .await?;
        let datasets = listed
            .into_iter()
            .map(|(name, tables)| {
                let dataset = Arc::new(BigQueryDataset::new(self.shared.clone(), &name, tables));
                (name, dataset)
            })
            .collect();
        if let Ok(mut current) = self.datasets.write() {
            *current = datasets;
        }
        Ok(())
    }
}

impl CatalogProvider for BigQueryCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.datasets
            .read()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A listed dataset, or any other name (a dataset made since the listing): its tables
    /// are looked up on use all the same.
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(found) = self.datasets.read().ok()?.get(name) {
            return Some(found.clone());
        }
        Some(Arc::new(BigQueryDataset::new(self.shared.clone(), name, Vec::new())))
    }
}

/// One dataset of a [`BigQueryCatalog`].
#[derive(Debug)]
pub struct BigQueryDataset {
    shared: Arc<Shared>,
    dataset: String,
    /// Table names as last listed.
    tables: Vec<String>,
}

impl BigQueryDataset {
    fn new(shared: Arc<Shared>, dataset: &str, mut tables: Vec<String>) -> Self {
        tables.sort();
        Self {
            shared,
            dataset: dataset.to_string(),
            tables,
        }
    }
}

#[async_trait]
impl SchemaProvider for BigQueryDataset {
    fn table_names(&self) -> Vec<String> {
        self.tables.clone()
    }

    /// tables.get, then a destination of the table's schema; views and other kinds of
    /// tables are not destinations.
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let shared = &self.shared;
        let table = TableRef::new(&shared.project, &self.dataset, name).map_err(DataFusionError::from)?;
        let Some(found) = shared.rest.get_table(&table).await.map_err(DataFusionError::from)? else {
            return Ok(None);
        };
        if found.kind.as_deref().is_some_and(|k| k != "TABLE") {
            return Ok(None);
        }
        let schema = found.schema.unwrap_or_default();
        let opened = shared
            .factory
            .open(table, schema)
            .await
            .map_err(DataFusionError::from)?;
        Ok(Some(Arc::new(opened)))
    }

    async fn table_type(&self, name: &str) -> Result<Option<TableType>> {
        Ok(self.table_exist(name).then_some(TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t == name)
    }
}
