//! `checkpoints list|delete FOLDER`: the loads of a checkpoint folder.

use datafusion_bigquery::checkpoint::{CheckpointStore, LoadInfo};

use crate::args::CheckpointsCommand;
use crate::report::Failure;

/// Runs a `checkpoints` subcommand, printing on stdout.
pub(crate) async fn run(command: CheckpointsCommand) -> Result<(), Failure> {
    let failed = |e: datafusion_bigquery::Error| Failure::new(e.to_string());
    match command {
        CheckpointsCommand::List { folder } => {
            let store = CheckpointStore::open(&folder).map_err(failed)?;
            let loads = store.list().await.map_err(failed)?;
            if loads.is_empty() {
                println!("no loads in {}", store.display());
            }
            for load in &loads {
                println!("{}", describe(load));
            }
        }
        CheckpointsCommand::Delete { folder, load_ids } => {
            let store = CheckpointStore::open(&folder).map_err(failed)?;
            for id in load_ids {
                let files = store.delete(&id).await.map_err(failed)?;
                if files == 0 {
                    return Err(Failure::new(format!("no load {id} in {}", store.display())));
                }
                println!("deleted load {id} ({files} files)");
            }
        }
    }
    Ok(())
}

/// One line about a load.
fn describe(load: &LoadInfo) -> String {
    let table = load.record.as_ref().map_or("?", |r| r.table.as_str());
    let state = match &load.commit {
        Some(commit) => format!(
            "committed {} rows at {}",
            commit.rows,
            commit.commit_time.as_deref().unwrap_or("an unknown time")
        ),
        None => {
            let finalized = load.partitions.iter().filter(|p| p.finalized).count();
            let rows: u64 = load.partitions.iter().map(|p| p.acknowledged_rows).sum();
            format!(
                "not committed: {finalized} of {} partitions finalized, {rows} rows acknowledged",
                load.partitions.len()
            )
        }
    };
    format!("{}\t{table}\t{state}", load.load_id)
}
