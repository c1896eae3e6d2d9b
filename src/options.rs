//! Load options: one struct with documented defaults, filled from code, the environment,
//! CLI flags and `CREATE EXTERNAL TABLE ... OPTIONS ('bigquery.<key>' '<value>')`.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::retry::RetryConfig;

/// The public endpoint of the Storage Write API.
pub const DEFAULT_ENDPOINT: &str = "https://bigquerystorage.googleapis.com";

/// Default upper bound of one AppendRows request, in bytes (the service allows 10 MB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// Default number of AppendRows requests each writer keeps in flight.
pub const DEFAULT_MAX_INFLIGHT_REQUESTS: usize = 4;

/// Default bound of the bytes each writer keeps in flight (sent, not yet acknowledged).
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 32 * 1024 * 1024;

/// How NUMERIC, BIGNUMERIC, DATETIME and TIME values travel in proto rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireEncoding {
    /// Packed forms: NUMERIC/BIGNUMERIC as two's-complement bytes, DATETIME/TIME as packed int64.
    #[default]
    Packed,
    /// Text forms: decimal strings, `YYYY-MM-DD HH:MM:SS.ffffff`, `HH:MM:SS.ffffff`.
    Text,
}

impl std::str::FromStr for WireEncoding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "packed" | "binary" => Ok(Self::Packed),
            "text" | "string" => Ok(Self::Text),
            _ => Err(Error::InvalidOption {
                key: "bigquery.wire_encoding".into(),
                value: s.into(),
                reason: "expected 'packed' or 'text'".into(),
            }),
        }
    }
}

/// What to do with a NULL element inside an array (BigQuery arrays cannot hold NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArrayNullElements {
    /// Fail the load, naming the column and row.
    #[default]
    Error,
    /// Leave the NULL elements out of the array.
    Drop,
}

impl std::str::FromStr for ArrayNullElements {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Self::Error),
            "drop" => Ok(Self::Drop),
            _ => Err(Error::InvalidOption {
                key: "bigquery.array_null_elements".into(),
                value: s.into(),
                reason: "expected 'error' or 'drop'".into(),
            }),
        }
    }
}

/// Options of a BigQuery destination.
///
/// Built in layers, the more specific over the less: [`Default`], then
/// [`BigQueryOptions::from_env`], then code or CLI flags (`with_*`, [`BigQueryOptions::set`]),
/// then a table's `OPTIONS` ([`BigQueryOptions::apply_table_options`], done by the table
/// factory).
///
/// ```
/// use std::collections::HashMap;
/// use datafusion_bigquery::BigQueryOptions;
///
/// let mut options = BigQueryOptions::from_env()
///     .with_endpoint("http://127.0.0.1:9060")
///     .with_project("my-project")
///     .with_streams(4);
/// options.set("bigquery.max_request_bytes", "1000000").unwrap();
/// assert_eq!(options.max_request_bytes, 1_000_000);
///
/// // A table's OPTIONS win over everything above.
/// let table_options = HashMap::from([("bigquery.streams".to_string(), "8".to_string())]);
/// options.apply_table_options(&table_options).unwrap();
/// assert_eq!(options.streams, Some(8));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigQueryOptions {
    /// Storage Write API endpoint (`bigquery.endpoint`). Default [`DEFAULT_ENDPOINT`];
    /// an `http://host:port` endpoint is plaintext without credentials (emulators).
    pub endpoint: String,
    /// Project for table names given as `dataset.table` (`bigquery.project`).
    pub project: Option<String>,
    /// Number of parallel write streams (`bigquery.streams`); `None` uses the session's
    /// target partitions (or 4 outside DataFusion).
    pub streams: Option<usize>,
    /// Upper bound of one AppendRows request in bytes (`bigquery.max_request_bytes`).
    pub max_request_bytes: usize,
    /// AppendRows requests in flight per stream (`bigquery.max_inflight_requests`).
    pub max_inflight_requests: usize,
    /// Bytes in flight per stream (`bigquery.max_inflight_bytes`); at least one request is
    /// always allowed.
    pub max_inflight_bytes: usize,
    /// Wire form of NUMERIC, BIGNUMERIC, DATETIME and TIME (`bigquery.wire_encoding`).
    pub wire_encoding: WireEncoding,
    /// Retry policy of every RPC and of AppendRows reconnects (`bigquery.retry_*`).
    pub retry: RetryConfig,
    /// NULL elements inside arrays (`bigquery.array_null_elements`): an error, or dropped.
    pub array_null_elements: ArrayNullElements,
}

impl Default for BigQueryOptions {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            project: None,
            streams: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_inflight_requests: DEFAULT_MAX_INFLIGHT_REQUESTS,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            wire_encoding: WireEncoding::Packed,
            retry: RetryConfig::default(),
            array_null_elements: ArrayNullElements::Error,
        }
    }
}

/// Prefix of every table option key.
pub const OPTION_PREFIX: &str = "bigquery.";

impl BigQueryOptions {
    /// Defaults overridden by the environment: `GOOGLE_CLOUD_PROJECT` sets the project and
    /// `BIGQUERY_STORAGE_EMULATOR_HOST` (`host:port`) a plaintext emulator endpoint.
    pub fn from_env() -> Self {
        let mut options = Self::default();
        if let Ok(project) = std::env::var("GOOGLE_CLOUD_PROJECT")
            && !project.is_empty()
        {
            options.project = Some(project);
        }
        if let Ok(host) = std::env::var("BIGQUERY_STORAGE_EMULATOR_HOST")
            && !host.is_empty()
        {
            options.endpoint = if host.contains("://") {
                host
            } else {
                format!("http://{host}")
            };
        }
        options
    }

    /// Sets the endpoint.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Sets the default project.
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Sets the number of write streams.
    pub fn with_streams(mut self, streams: usize) -> Self {
        self.streams = Some(streams.max(1));
        self
    }

    /// Sets the request size bound in bytes.
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// Sets the AppendRows requests each writer keeps unacknowledged (at least 1).
    pub fn with_max_inflight_requests(mut self, requests: usize) -> Self {
        self.max_inflight_requests = requests.max(1);
        self
    }

    /// Sets the bytes each writer keeps unacknowledged (one request always goes).
    pub fn with_max_inflight_bytes(mut self, bytes: usize) -> Self {
        self.max_inflight_bytes = bytes;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the wire encoding.
    pub fn with_wire_encoding(mut self, encoding: WireEncoding) -> Self {
        self.wire_encoding = encoding;
        self
    }

    /// Sets what happens to NULL elements inside arrays.
    pub fn with_array_null_elements(mut self, rule: ArrayNullElements) -> Self {
        self.array_null_elements = rule;
        self
    }

    /// Sets one option by key; the `bigquery.` prefix is optional.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let short = key.strip_prefix(OPTION_PREFIX).unwrap_or(key);
        let invalid = |reason: &str| Error::InvalidOption {
            key: format!("{OPTION_PREFIX}{short}"),
            value: value.into(),
            reason: reason.into(),
        };
        let positive = || match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid("expected a positive integer")),
        };
        match short {
            "endpoint" => self.endpoint = value.to_string(),
            "project" => self.project = Some(value.to_string()),
            "streams" => self.streams = Some(positive()?),
            "max_request_bytes" => {
                let n = positive()?;
                if n < 1024 {
                    return Err(invalid("must be at least 1024"));
                }
                self.max_request_bytes = n;
            }
            "max_inflight_requests" => self.max_inflight_requests = positive()?,
            "max_inflight_bytes" => self.max_inflight_bytes = positive()?,
            "retry_max_attempts" => {
                self.retry.max_attempts = u32::try_from(positive()?).map_err(|_| invalid("too large"))?;
            }
            "retry_initial_backoff_ms" => {
                self.retry.initial_backoff = std::time::Duration::from_millis(positive()? as u64);
            }
            "retry_max_backoff_ms" => self.retry.max_backoff = std::time::Duration::from_millis(positive()? as u64),
            "retry_timeout_ms" => self.retry.timeout = std::time::Duration::from_millis(positive()? as u64),
            "wire_encoding" => self.wire_encoding = value.parse()?,
            "array_null_elements" => self.array_null_elements = value.parse()?,
            _ => {
                return Err(invalid(
                    "unknown option; known: endpoint, project, streams, max_request_bytes, \
                     max_inflight_requests, max_inflight_bytes, wire_encoding, array_null_elements, \
                     retry_max_attempts, retry_initial_backoff_ms, retry_max_backoff_ms, retry_timeout_ms",
                ));
            }
        }
        Ok(())
    }

    /// Applies every `bigquery.*` entry of a DataFusion OPTIONS map; other keys are rejected.
    pub fn apply_table_options(&mut self, options: &HashMap<String, String>) -> Result<()> {
        let mut keys: Vec<_> = options.keys().collect();
        keys.sort();
        for key in keys {
            if !key.starts_with(OPTION_PREFIX) {
                return Err(Error::InvalidOption {
                    key: key.clone(),
                    value: options[key].clone(),
                    reason: "BigQuery table options are written 'bigquery.<key>'".into(),
                });
            }
            self.set(key, &options[key])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_options_override_and_validate() {
        let mut options = BigQueryOptions::default();
        let map = HashMap::from([
            ("bigquery.streams".to_string(), "3".to_string()),
            ("bigquery.wire_encoding".to_string(), "text".to_string()),
            ("bigquery.array_null_elements".to_string(), "drop".to_string()),
        ]);
        options.apply_table_options(&map).unwrap();
        assert_eq!(options.streams, Some(3));
        assert_eq!(options.wire_encoding, WireEncoding::Text);
        assert_eq!(options.array_null_elements, ArrayNullElements::Drop);
        let err = options
            .set("bigquery.array_null_elements", "keep")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'error' or 'drop'"), "{err}");
        let err = options.set("bigquery.streams", "0").unwrap_err().to_string();
        assert!(err.contains("bigquery.streams"), "{err}");
        let err = options.set("bigquery.nope", "1").unwrap_err().to_string();
        assert!(err.contains("unknown option"), "{err}");
        let bad = HashMap::from([("format.streams".to_string(), "3".to_string())]);
        assert!(options.apply_table_options(&bad).is_err());
    }
}
