//! Loads on Apache DataFusion Ballista (cargo feature `ballista`): the same INSERT, with a
//! worker per partition on every executor and one commit.
//!
//! The plan `BigQueryCommitExec <- CoalescePartitionsExec <- BigQueryWriteExec <- input`
//! splits at the coalesce into two stages: executors run one write task per input
//! partition, each on its own PENDING stream, and a last task commits the handles they
//! emitted. A write task that fails is retried by Ballista on a fresh stream; only the
//! handles that reach the commit are committed, so a failed attempt's stream expires unseen.
//!
//! ```no_run
//! # async fn example() -> datafusion::error::Result<()> {
//! use datafusion_bigquery::BigQueryOptions;
//! use datafusion_bigquery::ballista::{Cluster, ballista_context};
//!
//! let ctx = ballista_context(&Cluster::Remote("df://scheduler:50050".into()), BigQueryOptions::from_env()).await?;
//! ctx.sql("CREATE EXTERNAL TABLE sales STORED AS BIGQUERY LOCATION 'my-project.my_dataset.sales'").await?;
//! ctx.sql("CREATE EXTERNAL TABLE staging STORED AS PARQUET LOCATION 's3://bucket/staging/'").await?;
//! ctx.sql("INSERT INTO sales SELECT * FROM staging").await?.collect().await?;
//! # Ok(()) }
//! ```
//!
//! Sources must be readable by every executor: local paths only when all executors share
//! the machine (or the files), object stores across machines.

mod codec;

use std::net::SocketAddr;
use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use codec::{BigQueryLogicalCodec, BigQueryPhysicalCodec};

use crate::datafusion::{BigQueryTableFactory, register_bigquery_factory};
use crate::options::BigQueryOptions;

/// Where a Ballista session runs its plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cluster {
    /// An in-process scheduler and executor (plans still go over loopback gRPC).
    Standalone,
    /// A running scheduler, `df://host:port`.
    Remote(String),
}

/// A session config for Ballista whose codecs carry BigQuery tables and plan nodes.
pub fn ballista_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(Arc::new(BigQueryLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(BigQueryPhysicalCodec::default()))
}

/// The state every Ballista process of ours builds its sessions from: the default features
/// (file formats, functions) and our codecs.
pub fn ballista_state(config: SessionConfig) -> SessionState {
    SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build()
}

/// A Ballista `SessionContext` able to create and write BigQuery tables (`STORED AS
/// BIGQUERY`) with `options` as the tables' defaults.
pub async fn ballista_context(cluster: &Cluster, options: BigQueryOptions) -> Result<SessionContext> {
    ballista_context_with(cluster, BigQueryTableFactory::new(options)).await
}

/// [`ballista_context`] with a configured factory (progress counters, defaults).
pub async fn ballista_context_with(cluster: &Cluster, factory: BigQueryTableFactory) -> Result<SessionContext> {
    let state = ballista_state(ballista_config().with_information_schema(true));
    let ctx = match cluster {
        Cluster::Standalone => SessionContext::standalone_with_state(state).await?,
        Cluster::Remote(url) => SessionContext::remote_with_state(url, state).await?,
    };
    register_bigquery_factory(&ctx, factory);
    Ok(ctx)
}

impl std::str::FromStr for Cluster {
    type Err = String;
    /// `standalone`, or a scheduler's `df://host:port`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "standalone" => Ok(Cluster::Standalone),
            url if url.starts_with("df://") => Ok(Cluster::Remote(url.to_string())),
            other => Err(format!("expected 'standalone' or df://HOST:PORT, not '{other}'")),
        }
    }
}

/// Settings of a scheduler process.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Seconds without a heartbeat after which an executor is taken as lost and its tasks
    /// run elsewhere.
    pub executor_timeout_seconds: u64,
    /// Times a task may fail before its job fails (Ballista's default: 4).
    pub task_max_failures: usize,
}

/// Runs a Ballista scheduler with our codecs until the process ends.
pub async fn run_scheduler(settings: SchedulerSettings) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let config = SchedulerConfig {
        bind_host: settings.bind.ip().to_string(),
        bind_port: settings.bind.port(),
        external_host: settings.bind.ip().to_string(),
        executor_timeout_seconds: settings.executor_timeout_seconds,
        task_max_failures: settings.task_max_failures,
        expire_dead_executor_interval_seconds: (settings.executor_timeout_seconds / 4).max(1),
        override_logical_codec: Some(Arc::new(BigQueryLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(BigQueryPhysicalCodec::default())),
        override_session_builder: Some(Arc::new(|config: SessionConfig| Ok(ballista_state(config)))),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    ballista_scheduler::scheduler_process::start_server(cluster, settings.bind, Arc::new(config))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

/// Settings of an executor process.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// The scheduler, `host:port`.
    pub scheduler: String,
    /// Host to listen on; the Flight port and the gRPC port (0 picks free ones).
    pub bind_host: String,
    /// Arrow Flight port (shuffle data).
    pub port: u16,
    /// gRPC port (tasks).
    pub grpc_port: u16,
    /// Tasks run at once.
    pub concurrent_tasks: usize,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_seconds: u64,
}

/// Runs a Ballista executor with our codecs until the process ends.
pub async fn run_executor(settings: ExecutorSettings) -> Result<()> {
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
    let (host, port) = settings.scheduler.rsplit_once(':').ok_or_else(|| {
        DataFusionError::Configuration(format!("--scheduler {}: expected HOST:PORT", settings.scheduler))
    })?;
    let scheduler_port = port
        .parse()
        .map_err(|_| DataFusionError::Configuration(format!("--scheduler {}: bad port", settings.scheduler)))?;
    let config = ExecutorProcessConfig {
        scheduler_host: host.to_string(),
        scheduler_port,
        bind_host: settings.bind_host.clone(),
        external_host: Some(settings.bind_host.clone()),
        port: settings.port,
        grpc_port: settings.grpc_port,
        vcores: settings.concurrent_tasks,
        executor_heartbeat_interval_seconds: settings.heartbeat_seconds,
        override_logical_codec: Some(Arc::new(BigQueryLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(BigQueryPhysicalCodec::default())),
        override_config_producer: Some(Arc::new(ballista_config)),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}
