//! An `INSERT OVERWRITE` in the plan: the workers write to the staging table (created once
//! per process, by whichever worker comes first), and the commit node, after its commit,
//! replaces the destination's rows and deletes the staging table, also after a failure.

use datafusion::error::{DataFusionError, Result};
use tokio::sync::OnceCell;

use crate::checkpoint::new_run_id;
use crate::error::{Error, RestStatus};
use crate::load::Loader;
use crate::options::BigQueryOptions;
use crate::rest::RestClient;
use crate::rpc::RestCall;
use crate::tables::Overwrite;

/// An overwrite as the plan nodes see it.
#[derive(Debug)]
pub(crate) struct Overwriting {
    plan: Overwrite,
    /// This process's REST client, made from the loader's options once.
    rest: OnceCell<RestClient>,
    staged: OnceCell<()>,
}

impl Overwriting {
    /// Plans the overwrite of the loader's table: reads its metadata, names the staging
    /// table. Nothing is created until a worker runs.
    pub(crate) async fn plan(loader: &Loader) -> Result<Self> {
        let options = loader.options();
        let table = loader.table();
        if options.checkpoint.is_some() {
            return datafusion::common::not_impl_err!(
                "INSERT OVERWRITE into BigQuery table {table} cannot be checkpointed; unset bigquery.checkpoint"
            );
        }
        let rest = options.rest_client()?;
        let Some(destination) = rest.get_table_json(table).await? else {
            return Err(Error::Rest {
                call: RestCall::TablesGet,
                entity: table.to_string(),
                status: RestStatus {
                    http: 404,
                    code: tonic::Code::NotFound,
                    reason: Some("notFound".into()),
                    message: format!(
                        "table {table} not found: INSERT OVERWRITE replaces the rows of an existing table"
                    ),
                },
            }
            .into());
        };
        let plan = Overwrite::plan(table, &destination, &new_run_id(), options.tables.staging_expiration)?;
        Ok(Self {
            plan,
            rest: OnceCell::new_with(Some(rest)),
            staged: OnceCell::new(),
        })
    }

    /// The overwrite described by `plan` (decoded in another process).
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn from_plan(plan: Overwrite) -> Self {
        Self {
            plan,
            rest: OnceCell::new(),
            staged: OnceCell::new(),
        }
    }

    /// The REST client of this process, made from `options` the first time.
    async fn rest(&self, options: &BigQueryOptions) -> crate::Result<&RestClient> {
        self.rest.get_or_try_init(|| async { options.rest_client() }).await
    }

    /// The plan-time facts (for the Ballista codec).
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    pub(crate) fn overwrite_plan(&self) -> &Overwrite {
        &self.plan
    }

    /// The loader that writes and commits the staging table.
    pub(crate) fn staging_loader(&self, destination: &Loader) -> Loader {
        destination.clone().with_table(self.plan.staging.clone())
    }

    /// Creates the staging table, once per process.
    pub(crate) async fn stage(&self, options: &BigQueryOptions) -> crate::Result<()> {
        self.staged
            .get_or_try_init(|| async { self.plan.create_staging(self.rest(options).await?).await })
            .await
            .map(|_| ())
    }

    /// After the workers and the staging commit: on success, replaces the destination's
    /// rows; either way, deletes the staging table. Returns `outcome` (or the copy's error).
    pub(crate) async fn finish(&self, options: &BigQueryOptions, outcome: Result<u64>) -> Result<u64> {
        let rest = self.rest(options).await.map_err(DataFusionError::from)?;
        let replaced = match outcome {
            Ok(rows) => self
                .plan
                .replace(rest)
                .await
                .map(|()| rows)
                .map_err(DataFusionError::from),
            Err(e) => Err(e),
        };
        self.plan.drop_staging(rest).await;
        replaced
    }
}
