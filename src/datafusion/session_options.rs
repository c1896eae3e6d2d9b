//! `SET bigquery.<key> = <value>` in a SQL session: BigQuery options for every table of the
//! session, between the factory's defaults and each table's `OPTIONS`.

use std::any::Any;
use std::collections::BTreeMap;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::error::{DataFusionError, Result};

use crate::options::{BigQueryOptions, OPTION_PREFIX};

/// Options that bind a table to its service and cannot change after `CREATE EXTERNAL TABLE`.
const CONNECTION_KEYS: &[&str] = &["endpoint", "project", "connections", "quota_project"];

/// The `bigquery.*` settings of a session, as a DataFusion config extension.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::error::Result<()> {
/// use datafusion::prelude::SessionContext;
/// use datafusion_bigquery::{register_bigquery, BigQueryOptions};
/// use datafusion_bigquery::datafusion::BigQuerySessionOptions;
///
/// let ctx = SessionContext::new();
/// register_bigquery(&ctx, BigQueryOptions::default());
/// ctx.sql("SET bigquery.streams = 8").await?;
/// let state = ctx.state();
/// let set = state.config().options().extensions.get::<BigQuerySessionOptions>().unwrap();
/// assert_eq!(set.get("streams"), Some("8"));
/// assert!(ctx.sql("SET bigquery.streams = 0").await.is_err(), "validated as table options are");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct BigQuerySessionOptions {
    /// Short key (`streams`) to value, as set.
    values: BTreeMap<String, String>,
}

impl BigQuerySessionOptions {
    /// The value set for `key` (without the `bigquery.` prefix), if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Applies every setting to `options`.
    pub fn apply_to(&self, options: &mut BigQueryOptions) -> crate::Result<()> {
        for (key, value) in &self.values {
            options.set(key, value)?;
        }
        Ok(())
    }

    /// Applies the settings that may change between loads of an existing table (all but
    /// the endpoint, project, connections and quota project).
    pub fn apply_load_settings_to(&self, options: &mut BigQueryOptions) -> crate::Result<()> {
        for (key, value) in &self.values {
            if !CONNECTION_KEYS.contains(&key.as_str()) {
                options.set(key, value)?;
            }
        }
        Ok(())
    }

    /// True if nothing was set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl ConfigExtension for BigQuerySessionOptions {
    const PREFIX: &'static str = "bigquery";
}

impl ExtensionOptions for BigQuerySessionOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let key = key.strip_prefix(OPTION_PREFIX).unwrap_or(key);
        // Refused here as `OPTIONS` would refuse it, so a bad value fails at SET.
        let mut scratch = BigQueryOptions::default();
        scratch.set(key, value).map_err(DataFusionError::from)?;
        scratch.validate().map_err(DataFusionError::from)?;
        self.values.insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        self.values
            .iter()
            .map(|(key, value)| ConfigEntry {
                key: format!("{OPTION_PREFIX}{key}"),
                value: Some(value.clone()),
                description: "a BigQuery option for the session's tables (see BigQueryOptions)",
            })
            .collect()
    }
}
