//! Table management over the v2 REST API: creating a destination from declared columns (or
//! an Arrow schema), and atomic overwrites through a staging table and one copy job.

mod create;
mod overwrite;
mod settings;

pub use create::{Ensured, ensure_arrow_table, ensure_table};
pub(crate) use create::{check_columns, columns_of};
pub(crate) use overwrite::Overwrite;
pub(crate) use settings::KEYS;
pub use settings::{CreateMode, DEFAULT_STAGING_EXPIRATION, TableSettings};
