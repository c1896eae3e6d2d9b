//! A checkpointed INSERT in the plan: the load's identity (decided when planning), and the
//! run each process starts once, shared by its write and commit nodes.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::fingerprint::identify;
use crate::checkpoint::{
    CheckpointStore, CommitRecord, LoadIdentity, OpenRun, RunSettings, RunStart, derived_load_id, new_run_id, start_run,
};
use crate::error::Error;
use crate::load::Loader;

/// The plan-time facts of a checkpointed load; they travel with the plan to other processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CheckpointPlan {
    /// The load.
    pub(crate) identity: LoadIdentity,
    /// This run, shared by every process that executes the plan.
    pub(crate) run_id: String,
}

/// What a process found when its run started.
#[derive(Debug, Clone)]
pub(crate) enum Started {
    /// Committed before: nothing to do.
    Committed(CommitRecord),
    /// To be written.
    Open(Arc<OpenRun>),
}

/// A checkpointed load as the plan nodes see it.
#[derive(Debug)]
pub(crate) struct Checkpointed {
    plan: CheckpointPlan,
    started: OnceCell<Started>,
}

impl Checkpointed {
    /// The load of `input` into the loader's table, if the options turn checkpoints on. The
    /// plan that finally runs is checked again by each worker.
    pub(crate) fn plan(loader: &Loader, input: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        let options = loader.options();
        if options.checkpoint.is_none() {
            return Ok(None);
        }
        let found = identify(input)?;
        let not_replayable = found.not_replayable;
        let table = loader.table().to_string();
        let partitions = input.output_partitioning().partition_count();
        let fingerprint = format!("{}:{partitions}", found.fingerprint);
        let (load_id, explicit_id) = match &options.load_id {
            Some(id) => (id.clone(), true),
            None if found.identifiable => (derived_load_id(&table, &fingerprint), false),
            None => {
                // Nothing tells this input from another: a fresh load each time.
                let id = format!("{}-run-{}", derived_load_id(&table, &fingerprint), new_run_id());
                tracing::warn!(%table, load = %id, "the input cannot be fingerprinted; set bigquery.load_id to resume it");
                (id, false)
            }
        };
        if !not_replayable.is_empty() {
            tracing::info!(%table, load = %load_id, because = ?not_replayable, "partitions do not replay: an unfinished load restarts them");
        }
        Ok(Some(Self::from_plan(CheckpointPlan {
            identity: LoadIdentity {
                load_id,
                explicit_id,
                fingerprint,
                replayable: not_replayable.is_empty(),
                partitions,
            },
            run_id: new_run_id(),
        })))
    }

    /// The load described by `plan` (decoded in another process).
    pub(crate) fn from_plan(plan: CheckpointPlan) -> Self {
        Self {
            plan,
            started: OnceCell::new(),
        }
    }

    /// The plan-time facts.
    pub(crate) fn checkpoint_plan(&self) -> &CheckpointPlan {
        &self.plan
    }

    /// Starts this process's run (once): lease, input check, committed or not.
    pub(crate) async fn start(&self, loader: &Loader) -> crate::Result<Started> {
        self.started
            .get_or_try_init(|| async {
                let options = loader.options();
                let location = options
                    .checkpoint
                    .as_deref()
                    .ok_or_else(|| Error::Internal("no checkpoint folder".into()))?;
                let folder = CheckpointStore::open(location)?.load(&self.plan.identity.load_id)?;
                let settings = RunSettings {
                    run_id: self.plan.run_id.clone(),
                    lease_ttl: options.lease_ttl,
                    retry: options.retry.clone(),
                };
                let started =
                    start_run(folder, loader.table(), &self.plan.identity, &settings, loader.client()).await?;
                Ok(match started {
                    RunStart::Committed(record) => Started::Committed(record),
                    RunStart::Open(run) => Started::Open(Arc::from(run)),
                })
            })
            .await
            .cloned()
    }
}
