//! The options of table management: the REST endpoint, whether and how a destination is
//! created, and how an overwrite stages its rows. Set through `bigquery.<key>` like every
//! option, kept apart from the load's.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::proto::TableSchema;
use crate::rest::{Clustering, DEFAULT_JOB_TIMEOUT, DEFAULT_REST_ENDPOINT, Table, TableReference, TimePartitioning};
use crate::table_ref::TableRef;

/// Default for `bigquery.staging_expiration_ms`: a staging table left by a crash is deleted
/// by BigQuery a day later.
pub const DEFAULT_STAGING_EXPIRATION: Duration = Duration::from_secs(24 * 3600);

/// Whether a destination table is created (`bigquery.create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CreateMode {
    /// The table must exist (`never`, the default).
    #[default]
    Never,
    /// Created from the declared columns when it does not exist (`if_needed`); when it
    /// does, the declared columns must match it.
    IfNeeded,
}

/// Table management options, set as `bigquery.*` options (the one place their values are
/// checked) and read through [`crate::BigQueryOptions::tables`].
///
/// ```
/// use datafusion_bigquery::BigQueryOptions;
/// use datafusion_bigquery::tables::CreateMode;
/// let mut options = BigQueryOptions::default();
/// options.set("bigquery.create", "if_needed").unwrap();
/// options.set("bigquery.labels", "team=growth,tier=gold").unwrap();
/// options.set("bigquery.time_partitioning", "DAY").unwrap();
/// options.set("bigquery.partition_field", "sold_on").unwrap();
/// assert_eq!(options.tables().create(), CreateMode::IfNeeded);
/// assert_eq!(options.tables().labels()["tier"], "gold");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSettings {
    /// The v2 REST endpoint (`bigquery.rest_endpoint`, default
    /// `https://bigquery.googleapis.com`; `http://host:port` for emulators, without
    /// credentials; `BIGQUERY_EMULATOR_HOST` in the environment sets it).
    pub(crate) rest_endpoint: String,
    /// Whether the destination is created (`bigquery.create`: `never` or `if_needed`).
    pub(crate) create: CreateMode,
    /// Description of a created table (`bigquery.description`).
    pub(crate) description: Option<String>,
    /// Labels of a created table (`bigquery.labels`, `key=value,key=value`).
    pub(crate) labels: BTreeMap<String, String>,
    /// A created table is deleted this long after its creation (`bigquery.expiration_ms`).
    pub(crate) expiration: Option<Duration>,
    /// Time partitioning of a created table (`bigquery.time_partitioning`: DAY, HOUR,
    /// MONTH or YEAR).
    pub(crate) time_partitioning: Option<String>,
    /// The partitioning column (`bigquery.partition_field`); none partitions by ingestion time.
    pub(crate) partition_field: Option<String>,
    /// How long partitions are kept (`bigquery.partition_expiration_ms`).
    pub(crate) partition_expiration: Option<Duration>,
    /// Clustering columns of a created table (`bigquery.clustering`, `a,b`; at most four).
    pub(crate) clustering: Vec<String>,
    /// Expiration of an overwrite's staging table (`bigquery.staging_expiration_ms`).
    pub(crate) staging_expiration: Duration,
    /// The longest wait for a copy job (`bigquery.job_timeout_ms`, default one hour).
    pub(crate) job_timeout: Duration,
}

impl Default for TableSettings {
    fn default() -> Self {
        Self {
            rest_endpoint: DEFAULT_REST_ENDPOINT.to_string(),
            create: CreateMode::Never,
            description: None,
            labels: BTreeMap::new(),
            expiration: None,
            time_partitioning: None,
            partition_field: None,
            partition_expiration: None,
            clustering: Vec::new(),
            staging_expiration: DEFAULT_STAGING_EXPIRATION,
            job_timeout: DEFAULT_JOB_TIMEOUT,
        }
    }
}

/// The keys this module owns, for the list of known options.
pub(crate) const KEYS: &str = "rest_endpoint, create, description, labels, expiration_ms, time_partitioning, \
     partition_field, partition_expiration_ms, clustering, staging_expiration_ms, job_timeout_ms";

impl TableSettings {
    /// Whether the destination is created (`bigquery.create`).
    pub fn create(&self) -> CreateMode {
        self.create
    }

    /// Description of a created table (`bigquery.description`).
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Labels of a created table (`bigquery.labels`).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// Time to live of a created table (`bigquery.expiration_ms`).
    pub fn expiration(&self) -> Option<Duration> {
        self.expiration
    }

    /// Time partitioning of a created table (`bigquery.time_partitioning`) and its column
    /// (`bigquery.partition_field`), if any.
    pub fn time_partitioning(&self) -> Option<(&str, Option<&str>)> {
        self.time_partitioning
            .as_deref()
            .map(|kind| (kind, self.partition_field.as_deref()))
    }

    /// How long partitions are kept (`bigquery.partition_expiration_ms`).
    pub fn partition_expiration(&self) -> Option<Duration> {
        self.partition_expiration
    }

    /// Clustering columns of a created table (`bigquery.clustering`).
    pub fn clustering(&self) -> &[String] {
        &self.clustering
    }

    /// Expiration of an overwrite's staging table (`bigquery.staging_expiration_ms`).
    pub fn staging_expiration(&self) -> Duration {
        self.staging_expiration
    }

    /// The longest wait for a copy job (`bigquery.job_timeout_ms`).
    pub fn job_timeout(&self) -> Duration {
        self.job_timeout
    }

    /// Sets `key` (without `bigquery.`); `Ok(false)` when the key is not one of these.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let invalid = |reason: &str| Error::InvalidOption {
            key: format!("bigquery.{key}"),
            value: value.into(),
            reason: reason.into(),
        };
        let millis = || match value.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Duration::from_millis(n)),
            _ => Err(invalid("expected a positive number of milliseconds")),
        };
        let text = || Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match key {
            "rest_endpoint" => self.rest_endpoint = value.trim().trim_end_matches('/').to_string(),
            "create" => {
                self.create = match value.trim().to_ascii_lowercase().as_str() {
                    "never" => CreateMode::Never,
                    "if_needed" | "create_if_needed" => CreateMode::IfNeeded,
                    _ => return Err(invalid("expected 'never' or 'if_needed'")),
                }
            }
            "description" => self.description = Some(value.to_string()).filter(|v| !v.is_empty()),
            "labels" => self.labels = parse_labels(value).map_err(|reason| invalid(&reason))?,
            "expiration_ms" => self.expiration = Some(millis()?),
            "time_partitioning" => {
                let kind = value.trim().to_ascii_uppercase();
                if !matches!(kind.as_str(), "DAY" | "HOUR" | "MONTH" | "YEAR") {
                    return Err(invalid("expected DAY, HOUR, MONTH or YEAR"));
                }
                self.time_partitioning = Some(kind);
            }
            "partition_field" => self.partition_field = text(),
            "partition_expiration_ms" => self.partition_expiration = Some(millis()?),
            "clustering" => {
                let columns: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect();
                if columns.len() > 4 {
                    return Err(invalid("BigQuery clusters by at most four columns"));
                }
                self.clustering = columns;
            }
            "staging_expiration_ms" => self.staging_expiration = millis()?,
            "job_timeout_ms" => self.job_timeout = millis()?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Every setting that differs from the default, as (key, value), for
    /// `BigQueryOptions::to_table_options`.
    pub(crate) fn to_options(&self) -> Vec<(&'static str, String)> {
        let millis = |d: Duration| d.as_millis().to_string();
        let mut out = vec![
            ("rest_endpoint", self.rest_endpoint.clone()),
            ("staging_expiration_ms", millis(self.staging_expiration)),
            ("job_timeout_ms", millis(self.job_timeout)),
        ];
        if self.create == CreateMode::IfNeeded {
            out.push(("create", "if_needed".into()));
        }
        if !self.labels.is_empty() {
            let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(("labels", labels.join(",")));
        }
        if !self.clustering.is_empty() {
            out.push(("clustering", self.clustering.join(",")));
        }
        let optional = [
            ("description", self.description.clone()),
            ("expiration_ms", self.expiration.map(millis)),
            ("time_partitioning", self.time_partitioning.clone()),
            ("partition_field", self.partition_field.clone()),
            ("partition_expiration_ms", self.partition_expiration.map(millis)),
        ];
        out.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        out
    }

    /// The table resource that creates `table` with `schema` and these settings.
    pub fn table_resource(&self, table: &TableRef, schema: TableSchema) -> Table {
        Table {
            table_reference: TableReference::from(table),
            schema: Some(schema),
            description: self.description.clone(),
            labels: self.labels.clone(),
            expiration_time: self.expiration.map(millis_from_now),
            time_partitioning: self.time_partitioning.as_ref().map(|kind| TimePartitioning {
                kind: kind.clone(),
                field: self.partition_field.clone(),
                expiration_ms: self.partition_expiration.map(|d| d.as_millis() as i64),
            }),
            range_partitioning: None,
            clustering: (!self.clustering.is_empty()).then(|| Clustering {
                fields: self.clustering.clone(),
            }),
            ..Table::default()
        }
    }
}

/// Milliseconds since the epoch, `after` from now.
pub(crate) fn millis_from_now(after: Duration) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (now + after).as_millis() as i64
}

/// `key=value,key=value`; BigQuery's keys are lowercase letters, digits, `_` and `-`.
fn parse_labels(text: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("'{pair}': expected key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        let label_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if key.is_empty() || !key.chars().all(label_char) || !value.chars().all(label_char) {
            return Err(format!(
                "'{pair}': label keys and values are lowercase letters, digits, '_' and '-'"
            ));
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_refuse_bad_values() {
        let mut settings = TableSettings::default();
        for (key, value) in [
            ("create", "if_needed"),
            ("description", "daily sales"),
            ("labels", "team=growth, tier=gold"),
            ("expiration_ms", "86400000"),
            ("time_partitioning", "day"),
            ("partition_field", "sold_on"),
            ("clustering", "region, sku"),
            ("rest_endpoint", "http://127.0.0.1:9050/"),
        ] {
            assert!(settings.set(key, value).unwrap(), "{key}");
        }
        assert_eq!(settings.time_partitioning.as_deref(), Some("DAY"));
        assert_eq!(settings.rest_endpoint, "http://127.0.0.1:9050");
        let mut copy = TableSettings::default();
        for (key, value) in settings.to_options() {
            copy.set(key, &value).unwrap();
        }
        assert_eq!(copy, settings);
        assert!(!settings.set("streams", "4").unwrap());
        assert!(settings.set("labels", "Team=x").is_err());
        assert!(settings.set("time_partitioning", "WEEK").is_err());
        assert!(settings.set("clustering", "a,b,c,d,e").is_err());
        let resource = settings.table_resource(&"p.d.t".parse().unwrap(), TableSchema::default());
        assert_eq!(resource.clustering.map(|c| c.fields.len()), Some(2));
        assert!(
            resource
                .expiration_time
                .is_some_and(|t| t > millis_from_now(Duration::ZERO))
        );
    }
}
