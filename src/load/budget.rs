//! Where writers account the bytes they keep in flight: a budget of the load layer's own, so
//! that it needs no engine. DataFusion's memory pool is one implementation
//! (`datafusion::MemoryPoolBudgets`).

use std::fmt::Debug;
use std::sync::Arc;

/// One writer's share of a pool of memory.
pub trait InFlightBudget: Send + Sync + Debug {
    /// Takes `bytes` if the pool has room for them.
    fn try_take(&self, bytes: usize) -> bool;
    /// Takes `bytes` whatever the pool says: one request must always be allowed, or a writer
    /// with nothing in flight could never go on.
    fn take(&self, bytes: usize);
    /// Gives `bytes` back.
    fn give_back(&self, bytes: usize);
}

/// A pool that gives each writer a budget.
pub trait BudgetPool: Send + Sync + Debug {
    /// A new budget, named for the pool's reports (`BigQueryLoader[table, stream 2]`).
    fn budget(&self, name: String) -> Box<dyn InFlightBudget>;
}

/// A shared pool.
pub type SharedBudgetPool = Arc<dyn BudgetPool>;
