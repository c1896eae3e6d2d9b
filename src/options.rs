//! Load options: one struct with documented defaults, filled from code, the environment,
//! CLI flags and `CREATE EXTERNAL TABLE ... OPTIONS ('bigquery.<key>' '<value>')`.

use std::collections::HashMap;
use std::time::Duration;

use crate::encode::EncodeOptions;
pub use crate::encode::{
    ArrayNullElements, DEFAULT_MAX_REQUEST_BYTES, MissingValues, RowFormat, SERVICE_MAX_REQUEST_BYTES, WireEncoding,
};
use crate::error::{Error, Result};
use crate::retry::RetryConfig;
use crate::tables::TableSettings;

/// The public endpoint of the Storage Write API.
pub const DEFAULT_ENDPOINT: &str = "https://bigquerystorage.googleapis.com";

/// Default time an AppendRows connection may have requests in flight without any response
/// before it is torn down and reconnected (Java's `MAXIMUM_REQUEST_CALLBACK_WAIT_TIME`).
pub const DEFAULT_APPEND_RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);

/// Most write streams used when `bigquery.streams` is not set, however many partitions the
/// session plans: each stream costs a CreateWriteStream (10,000 per hour per project) and an
/// HTTP/2 stream on a pooled connection.
pub const MAX_DEFAULT_STREAMS: usize = 16;

/// Default for `bigquery.checkpoint_interval_ms`: how often a worker records its progress.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// Default for `bigquery.lease_ttl_ms`: how long a dead runner's lease blocks a rerun.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// Default number of AppendRows requests each writer keeps in flight.
pub const DEFAULT_MAX_INFLIGHT_REQUESTS: usize = 4;

/// Default bound of the bytes each writer keeps in flight (sent, not yet acknowledged).
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 32 * 1024 * 1024;

/// Options of a BigQuery destination.
///
/// Built in layers, the more specific over the less: [`Default`], then
/// [`BigQueryOptions::from_env`], then code or CLI flags (`with_*`, [`BigQueryOptions::set`]),
/// then a table's `OPTIONS` ([`BigQueryOptions::apply_table_options`], done by the table
/// factory). However a value comes in, [`BigQueryOptions::validate`] is its one rule: `set`
/// applies it at once, and loads and the table factory before their first call. Each option
/// is read by the method of its name.
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
/// assert_eq!(options.max_request_bytes(), 1_000_000);
///
/// // A table's OPTIONS win over everything above.
/// let table_options = HashMap::from([("bigquery.streams".to_string(), "8".to_string())]);
/// options.apply_table_options(&table_options).unwrap();
/// assert_eq!(options.streams(), Some(8));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigQueryOptions {
    /// Storage Write API endpoint (`bigquery.endpoint`). Default [`DEFAULT_ENDPOINT`];
    /// an `http://host:port` endpoint is plaintext without credentials (emulators).
    pub(crate) endpoint: String,
    /// Project for table names given as `dataset.table` (`bigquery.project`).
    pub(crate) project: Option<String>,
    /// Number of parallel write streams (`bigquery.streams`); `None` uses the session's
    /// target partitions (or 4 outside DataFusion).
    pub(crate) streams: Option<usize>,
    /// Upper bound of one AppendRows request in bytes (`bigquery.max_request_bytes`).
    pub(crate) max_request_bytes: usize,
    /// AppendRows requests in flight per stream (`bigquery.max_inflight_requests`).
    pub(crate) max_inflight_requests: usize,
    /// Bytes in flight per stream (`bigquery.max_inflight_bytes`); at least one request is
    /// always allowed.
    pub(crate) max_inflight_bytes: usize,
    /// Proto or Arrow rows (`bigquery.row_format`); default [`RowFormat::Proto`].
    pub(crate) row_format: RowFormat,
    /// Wire form of NUMERIC, BIGNUMERIC, DATETIME and TIME in proto rows
    /// (`bigquery.wire_encoding`).
    pub(crate) wire_encoding: WireEncoding,
    /// Retry policy of every RPC and of AppendRows reconnects (`bigquery.retry_*`).
    pub(crate) retry: RetryConfig,
    /// NULL elements inside arrays (`bigquery.array_null_elements`): an error, or dropped.
    pub(crate) array_null_elements: ArrayNullElements,
    /// What NULL means for columns with a default (`bigquery.missing_values`).
    pub(crate) missing_values: MissingValues,
    /// HTTP/2 connections in the client's pool (`bigquery.connections`, default 4).
    pub(crate) connections: usize,
    /// Deadline of every unary RPC (`bigquery.rpc_timeout_ms`); `None` follows Google's
    /// service config (CreateWriteStream 1200 s, the others 600 s).
    pub(crate) rpc_timeout: Option<Duration>,
    /// Time an AppendRows connection may have requests in flight without a response before
    /// it is reconnected (`bigquery.append_response_timeout_ms`, default 300 s).
    pub(crate) append_response_timeout: Duration,
    /// The caller's part of the AppendRows trace id (`bigquery.trace_id`), after ours.
    pub(crate) trace_id: Option<String>,
    /// The project billed for quota (`bigquery.quota_project`); by default the one the
    /// credentials name, if any. Sent only to the real service.
    pub(crate) quota_project: Option<String>,
    /// Folder of load checkpoints (`bigquery.checkpoint`): a local path, `file://`,
    /// `gs://bucket/prefix` or `s3://bucket/prefix`. Off when `None`.
    pub(crate) checkpoint: Option<String>,
    /// The load's id under the checkpoint folder (`bigquery.load_id`); by default derived
    /// from the table and the input's fingerprint.
    pub(crate) load_id: Option<String>,
    /// How often each worker records its progress (`bigquery.checkpoint_interval_ms`).
    pub(crate) checkpoint_interval: Duration,
    /// Time to live of a load's lease (`bigquery.lease_ttl_ms`), renewed while it runs.
    pub(crate) lease_ttl: Duration,
    /// Table management: the REST endpoint, creating destinations, overwrites.
    pub(crate) tables: TableSettings,
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
            row_format: RowFormat::Proto,
            wire_encoding: WireEncoding::Packed,
            retry: RetryConfig::default(),
            array_null_elements: ArrayNullElements::Error,
            missing_values: MissingValues::Null,
            connections: crate::client::DEFAULT_CONNECTIONS,
            rpc_timeout: None,
            append_response_timeout: DEFAULT_APPEND_RESPONSE_TIMEOUT,
            trace_id: None,
            quota_project: None,
            checkpoint: None,
            load_id: None,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            lease_ttl: DEFAULT_LEASE_TTL,
            tables: TableSettings::default(),
        }
    }
}

/// Prefix of every table option key.
pub const OPTION_PREFIX: &str = "bigquery.";

impl BigQueryOptions {
    /// Defaults overridden by the environment: `GOOGLE_CLOUD_PROJECT` sets the project,
    /// `BIGQUERY_STORAGE_EMULATOR_HOST` (`host:port`) a plaintext Storage Write endpoint and
    /// `BIGQUERY_EMULATOR_HOST` (`host:port`) a plaintext REST endpoint.
    pub fn from_env() -> Self {
        let mut options = Self::default();
        if let Ok(project) = std::env::var("GOOGLE_CLOUD_PROJECT")
            && !project.is_empty()
        {
            options.project = Some(project);
        }
        if let Some(endpoint) = emulator_endpoint("BIGQUERY_STORAGE_EMULATOR_HOST") {
            options.endpoint = endpoint;
        }
        if let Some(endpoint) = emulator_endpoint("BIGQUERY_EMULATOR_HOST") {
            options.tables.rest_endpoint = endpoint;
        }
        options
    }

    /// Sets the v2 REST endpoint (`http://host:port` for emulators).
    pub fn with_rest_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.tables.rest_endpoint = endpoint.into();
        self
    }

    /// A REST client for these options: their endpoint, retry policy, deadline and quota
    /// project. Refuses a plaintext (emulator) endpoint beside a real one, either way round:
    /// a half-emulated setup would change real tables.
    ///
    /// ```
    /// use datafusion_bigquery::BigQueryOptions;
    /// let emulated = BigQueryOptions::default()
    ///     .with_endpoint("http://127.0.0.1:9060")
    ///     .with_rest_endpoint("http://127.0.0.1:9050");
    /// assert!(emulated.rest_client().is_ok());
    /// let half = BigQueryOptions::default().with_endpoint("http://127.0.0.1:9060");
    /// assert!(half.rest_client().unwrap_err().to_string().contains("bigquery.rest_endpoint"));
    /// let other_half = BigQueryOptions::default().with_rest_endpoint("http://127.0.0.1:9050");
    /// assert!(other_half.rest_client().is_err());
    /// ```
    pub fn rest_client(&self) -> Result<crate::rest::RestClient> {
        let rest = &self.tables.rest_endpoint;
        let plaintext = |endpoint: &str| endpoint.starts_with("http://");
        if plaintext(&self.endpoint) != plaintext(rest) {
            let (emulated, real) = if plaintext(&self.endpoint) {
                ("Storage Write", "REST")
            } else {
                ("REST", "Storage Write")
            };
            return Err(Error::InvalidOption {
                key: format!("{OPTION_PREFIX}rest_endpoint"),
                value: rest.clone(),
                reason: format!(
                    "the {emulated} endpoint is an emulator and the {real} endpoint ({}) is not; set \
                     bigquery.endpoint and bigquery.rest_endpoint (or BIGQUERY_STORAGE_EMULATOR_HOST and \
                     BIGQUERY_EMULATOR_HOST) to the same kind of service",
                    if plaintext(&self.endpoint) {
                        rest.as_str()
                    } else {
                        self.endpoint.as_str()
                    }
                ),
            });
        }
        let mut client = crate::rest::RestClient::new(rest)?
            .with_retry(self.retry.clone())
            .with_job_timeout(self.tables.job_timeout)
            .with_quota_project(self.quota_project.as_deref())?;
        if let Some(timeout) = self.rpc_timeout {
            client = client.with_call_timeout(timeout);
        }
        Ok(client)
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

    /// Sets the number of write streams (positive).
    pub fn with_streams(mut self, streams: usize) -> Self {
        self.streams = Some(streams);
        self
    }

    /// Sets the request size bound in bytes.
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// Sets the AppendRows requests each writer keeps unacknowledged (positive).
    pub fn with_max_inflight_requests(mut self, requests: usize) -> Self {
        self.max_inflight_requests = requests;
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

    /// Sets the format rows travel in: proto, Arrow, or Arrow with a fallback to proto.
    pub fn with_row_format(mut self, format: RowFormat) -> Self {
        self.row_format = format;
        self
    }

    /// Sets the wire form of NUMERIC, BIGNUMERIC, DATETIME and TIME in proto rows.
    pub fn with_wire_encoding(mut self, encoding: WireEncoding) -> Self {
        self.wire_encoding = encoding;
        self
    }

    /// Sets what happens to NULL elements inside arrays.
    pub fn with_array_null_elements(mut self, rule: ArrayNullElements) -> Self {
        self.array_null_elements = rule;
        self
    }

    /// Sets what NULL means for columns with a default.
    pub fn with_missing_values(mut self, rule: MissingValues) -> Self {
        self.missing_values = rule;
        self
    }

    /// Sets the size of the client's connection pool (positive).
    pub fn with_connections(mut self, connections: usize) -> Self {
        self.connections = connections;
        self
    }

    /// Sets the deadline of every unary RPC.
    pub fn with_rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = Some(timeout);
        self
    }

    /// Sets the AppendRows watchdog's timeout.
    pub fn with_append_response_timeout(mut self, timeout: Duration) -> Self {
        self.append_response_timeout = timeout;
        self
    }

    /// The Storage Write API endpoint (`bigquery.endpoint`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The v2 REST endpoint (`bigquery.rest_endpoint`).
    pub fn rest_endpoint(&self) -> &str {
        &self.tables.rest_endpoint
    }

    /// The project of table names given as `dataset.table` (`bigquery.project`).
    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// The number of write streams (`bigquery.streams`); `None` leaves it to the session's
    /// target partitions (or 4 outside DataFusion).
    pub fn streams(&self) -> Option<usize> {
        self.streams
    }

    /// The upper bound of one AppendRows request in bytes (`bigquery.max_request_bytes`).
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// AppendRows requests in flight per stream (`bigquery.max_inflight_requests`).
    pub fn max_inflight_requests(&self) -> usize {
        self.max_inflight_requests
    }

    /// Bytes in flight per stream (`bigquery.max_inflight_bytes`).
    pub fn max_inflight_bytes(&self) -> usize {
        self.max_inflight_bytes
    }

    /// Proto or Arrow rows (`bigquery.row_format`).
    pub fn row_format(&self) -> RowFormat {
        self.row_format
    }

    /// The wire form of NUMERIC, BIGNUMERIC, DATETIME and TIME in proto rows
    /// (`bigquery.wire_encoding`).
    pub fn wire_encoding(&self) -> WireEncoding {
        self.wire_encoding
    }

    /// The retry policy (`bigquery.retry_*`).
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// What happens to NULL elements inside arrays (`bigquery.array_null_elements`).
    pub fn array_null_elements(&self) -> ArrayNullElements {
        self.array_null_elements
    }

    /// What NULL means for columns with a default (`bigquery.missing_values`).
    pub fn missing_values(&self) -> MissingValues {
        self.missing_values
    }

    /// HTTP/2 connections in the client's pool (`bigquery.connections`).
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// The deadline of every unary RPC (`bigquery.rpc_timeout_ms`); `None` follows Google's
    /// service config.
    pub fn rpc_timeout(&self) -> Option<Duration> {
        self.rpc_timeout
    }

    /// The AppendRows watchdog's timeout (`bigquery.append_response_timeout_ms`).
    pub fn append_response_timeout(&self) -> Duration {
        self.append_response_timeout
    }

    /// The caller's part of the AppendRows trace id (`bigquery.trace_id`).
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// The project billed for quota (`bigquery.quota_project`).
    pub fn quota_project(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }

    /// The folder of load checkpoints (`bigquery.checkpoint`); `None` when off.
    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }

    /// The load's id under the checkpoint folder (`bigquery.load_id`), when given.
    pub fn load_id(&self) -> Option<&str> {
        self.load_id.as_deref()
    }

    /// How often each worker records its progress (`bigquery.checkpoint_interval_ms`).
    pub fn checkpoint_interval(&self) -> Duration {
        self.checkpoint_interval
    }

    /// Table management: creating destinations, overwrites (`bigquery.create`, ...).
    pub fn tables(&self) -> &TableSettings {
        &self.tables
    }

    /// The time to live of a load's lease (`bigquery.lease_ttl_ms`).
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// What the encoder needs of these options (for tests of the hidden encoder API).
    #[doc(hidden)]
    pub fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            row_format: self.row_format,
            wire_encoding: self.wire_encoding,
            array_null_elements: self.array_null_elements,
            missing_values: self.missing_values,
            max_request_bytes: self.max_request_bytes,
        }
    }

    /// How the client connects, from these options.
    pub fn client_config(&self) -> crate::client::ClientConfig {
        crate::client::ClientConfig {
            endpoint: self.endpoint.clone(),
            connections: self.connections.max(1),
            quota_project: self.quota_project.clone(),
        }
    }

    /// Checks the options, however they were set: the request size bound, counts and
    /// durations that must be positive. [`BigQueryOptions::set`] calls it after every option,
    /// and every load calls it before its first RPC, so options built with the `with_*`
    /// builders are refused with the same error as the same value given to `set`.
    ///
    /// ```
    /// use datafusion_bigquery::BigQueryOptions;
    /// let built = BigQueryOptions::default().with_max_request_bytes(0);
    /// let mut set = BigQueryOptions::default();
    /// let refused = set.set("bigquery.max_request_bytes", "10").unwrap_err();
    /// assert_eq!(refused.to_string(), built.with_max_request_bytes(10).validate().unwrap_err().to_string());
    /// assert_eq!(set, BigQueryOptions::default(), "a refused option changes nothing");
    /// ```
    pub fn validate(&self) -> Result<()> {
        let invalid = |key: &str, value: String, reason: &str| Error::InvalidOption {
            key: format!("{OPTION_PREFIX}{key}"),
            value,
            reason: reason.into(),
        };
        if !(1024..SERVICE_MAX_REQUEST_BYTES).contains(&self.max_request_bytes) {
            return Err(invalid(
                "max_request_bytes",
                self.max_request_bytes.to_string(),
                "must be at least 1024 and below the service's limit of 20 MB (20000000 bytes)",
            ));
        }
        let counts = [
            ("streams", self.streams.unwrap_or(1)),
            ("connections", self.connections),
            ("max_inflight_requests", self.max_inflight_requests),
            ("max_inflight_bytes", self.max_inflight_bytes),
            ("retry_max_attempts", self.retry.max_attempts as usize),
        ];
        if let Some((key, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(invalid(key, "0".into(), "expected a positive integer"));
        }
        let durations = [
            ("append_response_timeout_ms", Some(self.append_response_timeout)),
            ("rpc_timeout_ms", self.rpc_timeout),
            ("checkpoint_interval_ms", Some(self.checkpoint_interval)),
            ("lease_ttl_ms", Some(self.lease_ttl)),
            ("retry_initial_backoff_ms", Some(self.retry.initial_backoff)),
            ("retry_max_backoff_ms", Some(self.retry.max_backoff)),
            ("retry_timeout_ms", Some(self.retry.timeout)),
            ("retry_throttle_backoff_ms", Some(self.retry.throttle_backoff)),
            ("retry_quota_backoff_ms", Some(self.retry.quota_backoff)),
            ("retry_not_found_timeout_ms", Some(self.retry.not_found_timeout)),
        ];
        if let Some((key, _)) = durations.iter().find(|(_, d)| d.is_some_and(|d| d.is_zero())) {
            return Err(invalid(key, "0".into(), "expected a positive integer"));
        }
        Ok(())
    }

    /// Sets one option by key; the `bigquery.` prefix is optional. The options are then
    /// checked as [`BigQueryOptions::validate`] does (the one place of their rules); an option
    /// refused leaves them as they were.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let before = self.clone();
        let checked = self.assign(key, value).and_then(|()| self.validate());
        if checked.is_err() {
            *self = before;
        }
        checked
    }

    /// Parses and assigns one option, without checking the options as a whole.
    fn assign(&mut self, key: &str, value: &str) -> Result<()> {
        let short = key.strip_prefix(OPTION_PREFIX).unwrap_or(key);
        let invalid = |reason: &str| Error::InvalidOption {
            key: format!("{OPTION_PREFIX}{short}"),
            value: value.into(),
            reason: reason.into(),
        };
        // Only parsed here: which values are allowed is `validate`'s rule alone.
        let positive = || {
            value
                .trim()
                .parse::<usize>()
                .map_err(|_| invalid("expected a positive integer"))
        };
        match short {
            "endpoint" => self.endpoint = value.to_string(),
            "project" => self.project = Some(value.to_string()),
            "streams" => self.streams = Some(positive()?),
            "max_request_bytes" => self.max_request_bytes = positive()?,
            "max_inflight_requests" => self.max_inflight_requests = positive()?,
            "max_inflight_bytes" => self.max_inflight_bytes = positive()?,
            "retry_max_attempts" => {
                self.retry.max_attempts = u32::try_from(positive()?).map_err(|_| invalid("too large"))?;
            }
            "retry_initial_backoff_ms" => {
                self.retry.initial_backoff = std::time::Duration::from_millis(positive()? as u64);
            }
            "retry_max_backoff_ms" => self.retry.max_backoff = std::time::Duration::from_millis(positive()? as u64),
            "retry_timeout_ms" => self.retry.timeout = millis(positive()?),
            "retry_throttle_backoff_ms" => self.retry.throttle_backoff = millis(positive()?),
            "retry_quota_backoff_ms" => self.retry.quota_backoff = millis(positive()?),
            "retry_not_found_timeout_ms" => self.retry.not_found_timeout = millis(positive()?),
            "connections" => self.connections = positive()?,
            "rpc_timeout_ms" => self.rpc_timeout = Some(millis(positive()?)),
            "append_response_timeout_ms" => self.append_response_timeout = millis(positive()?),
            "trace_id" => self.trace_id = Some(value.to_string()).filter(|t| !t.is_empty()),
            "quota_project" => self.quota_project = Some(value.to_string()).filter(|p| !p.is_empty()),
            "checkpoint" => self.checkpoint = Some(value.trim().to_string()).filter(|c| !c.is_empty()),
            "load_id" => {
                let id = value.trim();
                if !id.is_empty() && !id.chars().all(crate::checkpoint::is_id_char) {
                    return Err(invalid("a load id is made of letters, digits, '.', '-' and '_'"));
                }
                self.load_id = Some(id.to_string()).filter(|i| !i.is_empty());
            }
            "checkpoint_interval_ms" => self.checkpoint_interval = millis(positive()?),
            "lease_ttl_ms" => self.lease_ttl = millis(positive()?),
            "missing_values" => self.missing_values = value.parse()?,
            "row_format" => self.row_format = value.parse()?,
            "wire_encoding" => self.wire_encoding = value.parse()?,
            "array_null_elements" => self.array_null_elements = value.parse()?,
            other if self.tables.set(other, value)? => {}
            _ => {
                return Err(invalid(&format!(
                    "unknown option; known: endpoint, project, streams, connections, max_request_bytes, \
                     max_inflight_requests, max_inflight_bytes, row_format, wire_encoding, array_null_elements, \
                     missing_values, rpc_timeout_ms, append_response_timeout_ms, trace_id, quota_project, \
                     checkpoint, load_id, checkpoint_interval_ms, lease_ttl_ms, \
                     retry_max_attempts, retry_initial_backoff_ms, retry_max_backoff_ms, retry_timeout_ms, \
                     retry_throttle_backoff_ms, retry_quota_backoff_ms, retry_not_found_timeout_ms, {}",
                    crate::tables::KEYS
                )));
            }
        }
        Ok(())
    }

    /// Every option as `bigquery.<key>` = value, such that
    /// [`BigQueryOptions::apply_table_options`] on the defaults gives these options back: how
    /// they travel with a plan to another process.
    ///
    /// ```
    /// use datafusion_bigquery::BigQueryOptions;
    /// let mut options = BigQueryOptions::default().with_streams(3);
    /// options.set("bigquery.rpc_timeout_ms", "2500").unwrap();
    /// let mut copy = BigQueryOptions::default();
    /// copy.apply_table_options(&options.to_table_options()).unwrap();
    /// assert_eq!(copy, options);
    /// ```
    pub fn to_table_options(&self) -> HashMap<String, String> {
        let millis = |d: Duration| d.as_millis().to_string();
        let encoding = match self.wire_encoding {
            WireEncoding::Packed => "packed",
            WireEncoding::Text => "text",
        };
        let nulls = match self.array_null_elements {
            ArrayNullElements::Error => "error",
            ArrayNullElements::Drop => "drop",
        };
        let missing = match self.missing_values {
            MissingValues::Null => "null",
            MissingValues::Default => "default",
        };
        let mut out = vec![
            ("endpoint", self.endpoint.clone()),
            ("connections", self.connections.to_string()),
            ("max_request_bytes", self.max_request_bytes.to_string()),
            ("max_inflight_requests", self.max_inflight_requests.to_string()),
            ("max_inflight_bytes", self.max_inflight_bytes.to_string()),
            ("row_format", self.row_format.as_str().to_string()),
            ("wire_encoding", encoding.to_string()),
            ("array_null_elements", nulls.to_string()),
            ("missing_values", missing.to_string()),
            ("append_response_timeout_ms", millis(self.append_response_timeout)),
            ("retry_max_attempts", self.retry.max_attempts.to_string()),
            ("retry_initial_backoff_ms", millis(self.retry.initial_backoff)),
            ("retry_max_backoff_ms", millis(self.retry.max_backoff)),
            ("retry_throttle_backoff_ms", millis(self.retry.throttle_backoff)),
            ("retry_quota_backoff_ms", millis(self.retry.quota_backoff)),
            ("retry_timeout_ms", millis(self.retry.timeout)),
            ("retry_not_found_timeout_ms", millis(self.retry.not_found_timeout)),
            ("checkpoint_interval_ms", millis(self.checkpoint_interval)),
            ("lease_ttl_ms", millis(self.lease_ttl)),
        ];
        let optional = [
            ("project", self.project.clone()),
            ("streams", self.streams.map(|n| n.to_string())),
            ("rpc_timeout_ms", self.rpc_timeout.map(millis)),
            ("trace_id", self.trace_id.clone()),
            ("quota_project", self.quota_project.clone()),
            ("checkpoint", self.checkpoint.clone()),
            ("load_id", self.load_id.clone()),
        ];
        out.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        out.extend(self.tables.to_options());
        out.into_iter()
            .map(|(k, v)| (format!("{OPTION_PREFIX}{k}"), v))
            .collect()
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

/// The endpoint an emulator variable names: `host:port` is plaintext `http://host:port`.
fn emulator_endpoint(variable: &str) -> Option<String> {
    let host = std::env::var(variable).ok().filter(|h| !h.is_empty())?;
    Some(if host.contains("://") {
        host
    } else {
        format!("http://{host}")
    })
}

/// Milliseconds as a duration.
fn millis(n: usize) -> Duration {
    Duration::from_millis(n as u64)
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
        let err = options
            .set("bigquery.max_request_bytes", "20000000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("20 MB"), "{err}");
        assert!(options.clone().with_max_request_bytes(25_000_000).validate().is_err());
        assert!(options.clone().with_max_request_bytes(19_999_999).validate().is_ok());
        options.set("bigquery.rpc_timeout_ms", "1500").unwrap();
        options.set("bigquery.append_response_timeout_ms", "2500").unwrap();
        options.set("bigquery.connections", "2").unwrap();
        options.set("bigquery.missing_values", "default").unwrap();
        assert_eq!(options.rpc_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(options.append_response_timeout, Duration::from_millis(2500));
        assert_eq!(options.client_config().connections, 2);
        assert_eq!(options.missing_values, MissingValues::Default);
    }

    /// A zero given to a builder is refused by the same rule, with the same message, as the
    /// same zero given to `set` (the builders clamp nothing).
    #[test]
    fn builders_and_set_refuse_alike() {
        type Builder = fn(BigQueryOptions) -> BigQueryOptions;
        let cases: [(&str, Builder); 4] = [
            ("streams", |o| o.with_streams(0)),
            ("connections", |o| o.with_connections(0)),
            ("max_inflight_requests", |o| o.with_max_inflight_requests(0)),
            ("max_request_bytes", |o| o.with_max_request_bytes(0)),
        ];
        for (key, build) in cases {
            let built = build(BigQueryOptions::default()).validate().unwrap_err().to_string();
            assert!(built.contains(&format!("bigquery.{key}")), "{built}");
            let mut set = BigQueryOptions::default();
            let refused = set.set(key, "0").unwrap_err().to_string();
            assert_eq!(built, refused, "{key}");
            assert_eq!(
                set,
                BigQueryOptions::default(),
                "{key}: a refused value changes nothing"
            );
        }
    }
}
