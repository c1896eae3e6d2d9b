//! What identifies an INSERT's input, and whether its partitions replay.
//!
//! The fingerprint covers the plan's shape (every node's one-line display) and the data it
//! reads: for file scans each file's path, size, modification time and byte range, for
//! in-memory tables the batches themselves. An input is identifiable when every leaf is one
//! of those (or a generator such as `range()`, displayed with its arguments).
//!
//! Replayable means each partition yields the same rows in the same order when executed
//! again: scans, filters, projections, batch coalescing and unions over them, with no
//! volatile function (`random()`, `now()`). Anything else (repartitions, sorts, joins,
//! aggregates, merges) is taken as not replayable.

use std::io::Write;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::Volatility;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use sha2::{Digest, Sha256};

/// Nodes that keep a partition's rows and their order as their input gives them.
const REPLAYABLE_NODES: &[&str] = &[
    "DataSourceExec",
    "LazyMemoryExec",
    "ProjectionExec",
    "FilterExec",
    "CoalesceBatchesExec",
    "CooperativeExec",
    "UnionExec",
    "LocalLimitExec",
    "EmptyExec",
    "PlaceholderRowExec",
];

/// Leaves whose display names everything they produce.
const SELF_DESCRIBING_LEAVES: &[&str] = &["LazyMemoryExec", "EmptyExec", "PlaceholderRowExec"];

/// What was found about an input plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputIdentity {
    /// Hex SHA-256 of the plan's shape and data.
    pub(crate) fingerprint: String,
    /// True if every leaf's data is covered by the fingerprint.
    pub(crate) identifiable: bool,
    /// Why partitions do not replay (empty when they do).
    pub(crate) not_replayable: Vec<String>,
}

/// Fingerprints `plan` and decides whether its partitions replay.
pub(crate) fn identify(plan: &Arc<dyn ExecutionPlan>) -> Result<InputIdentity> {
    let mut hasher = HashWriter(Sha256::new());
    let mut identifiable = true;
    let mut not_replayable = Vec::new();
    visit(plan, 0, &mut hasher, &mut identifiable, &mut not_replayable)?;
    let fingerprint = crate::checkpoint::hex(&hasher.0.finalize());
    Ok(InputIdentity {
        fingerprint,
        identifiable,
        not_replayable,
    })
}

fn visit(
    plan: &Arc<dyn ExecutionPlan>,
    depth: usize,
    hasher: &mut HashWriter,
    identifiable: &mut bool,
    not_replayable: &mut Vec<String>,
) -> Result<()> {
    let name = plan.name();
    let line = displayable(plan.as_ref()).one_line().to_string();
    writeln!(hasher, "{depth} {line}").map_err(datafusion::error::DataFusionError::IoError)?;
    if !REPLAYABLE_NODES.contains(&name) {
        not_replayable.push(name.to_string());
    }
    plan.apply_expressions(&mut |expr| {
        expr.apply(|e| {
            if let Some(function) = e.downcast_ref::<ScalarFunctionExpr>()
                && function.fun().signature().volatility != Volatility::Immutable
            {
                not_replayable.push(format!("{}()", function.name()));
            }
            Ok(TreeNodeRecursion::Continue)
        })
    })?;
    let children = plan.children();
    if children.is_empty() {
        *identifiable &= leaf_data(plan, hasher)?;
    }
    for child in children {
        visit(child, depth + 1, hasher, identifiable, not_replayable)?;
    }
    Ok(())
}

/// Hashes what a leaf reads; false if it cannot tell.
fn leaf_data(plan: &Arc<dyn ExecutionPlan>, hasher: &mut HashWriter) -> Result<bool> {
    let io = datafusion::error::DataFusionError::IoError;
    if SELF_DESCRIBING_LEAVES.contains(&plan.name()) {
        return Ok(true);
    }
    let Some(source) = plan.downcast_ref::<DataSourceExec>() else {
        return Ok(false);
    };
    let source = source.data_source();
    if let Some(files) = source.downcast_ref::<FileScanConfig>() {
        for (index, group) in files.file_groups.iter().enumerate() {
            for file in group.files() {
                let meta = &file.object_meta;
                writeln!(
                    hasher,
                    "group {index}: {} {} {} {:?} {:?}",
                    meta.location,
                    meta.size,
                    meta.last_modified.to_rfc3339(),
                    meta.e_tag,
                    file.range.as_ref().map(|r| (r.start, r.end)),
                )
                .map_err(io)?;
            }
        }
        return Ok(true);
    }
    if let Some(memory) = source.downcast_ref::<MemorySourceConfig>() {
        for (index, partition) in memory.partitions().iter().enumerate() {
            writeln!(hasher, "partition {index}").map_err(io)?;
            let Some(first) = partition.first() else {
                continue;
            };
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut *hasher, &first.schema())?;
            for batch in partition {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        return Ok(true);
    }
    Ok(false)
}

/// Feeds what is written to it into a hash.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{SessionConfig, SessionContext};

    async fn identity(ctx: &SessionContext, sql: &str) -> InputIdentity {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        identify(&plan).unwrap()
    }

    #[tokio::test]
    async fn scans_and_filters_replay_while_shuffles_and_volatile_functions_do_not() {
        // One partition: a filter over several would come with a round robin, which does not replay.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        ctx.sql("CREATE TABLE t AS VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            .await
            .unwrap();
        let plain = identity(&ctx, "SELECT column1 + 1, column2 FROM t WHERE column1 > 1").await;
        assert!(plain.identifiable && plain.not_replayable.is_empty(), "{plain:?}");
        assert_eq!(
            plain,
            identity(&ctx, "SELECT column1 + 1, column2 FROM t WHERE column1 > 1").await
        );
        let sorted = identity(&ctx, "SELECT column1 FROM t ORDER BY column2").await;
        assert!(sorted.not_replayable.iter().any(|n| n.contains("Sort")), "{sorted:?}");
        let random = identity(&ctx, "SELECT column1, random() FROM t").await;
        assert!(random.not_replayable.iter().any(|n| n == "random()"), "{random:?}");
        let range = identity(&ctx, "SELECT value FROM range(10)").await;
        assert!(range.identifiable, "{range:?}");
        assert_ne!(
            range.fingerprint,
            identity(&ctx, "SELECT value FROM range(11)").await.fingerprint
        );

        ctx.sql("CREATE TABLE u AS VALUES (1, 'a'), (2, 'b'), (3, 'd')")
            .await
            .unwrap();
        let other_data = identity(&ctx, "SELECT column1 + 1, column2 FROM u WHERE column1 > 1").await;
        assert_ne!(
            plain.fingerprint, other_data.fingerprint,
            "the data is in the fingerprint"
        );
    }
}
