//! What an INSERT is beyond its rows, shared by its write and commit nodes (and carried by
//! the Ballista codec): checkpointed, an overwrite, both or neither.

use std::sync::Arc;

use super::checkpointed::Checkpointed;
use super::overwriting::Overwriting;

/// The INSERT's checkpointed load and overwrite, if any.
#[derive(Debug, Clone, Default)]
pub(crate) struct InsertMode {
    /// The checkpointed load this INSERT is, when `bigquery.checkpoint` is set.
    pub(crate) checkpoint: Option<Arc<Checkpointed>>,
    /// The overwrite this INSERT is: the workers write its staging table, and the commit
    /// node replaces the destination's rows afterwards.
    pub(crate) overwrite: Option<Arc<Overwriting>>,
}
