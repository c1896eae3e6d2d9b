//! DataFusion's memory pool as the load layer's in-flight budget.

use std::sync::Arc;

use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};

use crate::load::{BudgetPool, InFlightBudget};

/// Budgets from a DataFusion memory pool: each writer registers a consumer, and its bytes in
/// flight are reserved there, so a full pool makes writers wait for acknowledgements.
#[derive(Debug, Clone)]
pub(crate) struct MemoryPoolBudgets(pub Arc<dyn MemoryPool>);

impl BudgetPool for MemoryPoolBudgets {
    fn budget(&self, name: String) -> Box<dyn InFlightBudget> {
        Box::new(Reservation(MemoryConsumer::new(name).register(&self.0)))
    }
}

/// One consumer's reservation.
#[derive(Debug)]
struct Reservation(MemoryReservation);

impl InFlightBudget for Reservation {
    fn try_take(&self, bytes: usize) -> bool {
        self.0.try_grow(bytes).is_ok()
    }

    fn take(&self, bytes: usize) {
        self.0.grow(bytes);
    }

    fn give_back(&self, bytes: usize) {
        let _ = self.0.try_shrink(bytes);
    }
}
