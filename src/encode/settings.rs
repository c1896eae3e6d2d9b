//! What the encoder needs to know beyond the schemas: the wire forms, what to do with NULL
//! array elements and missing values, and the request size bound.

use crate::error::{Error, Result};

/// Default upper bound of one AppendRows request, in bytes: well under every limit the
/// service has had (10 MB until 2026-08, 20 MB since).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// The service's limit of one AppendRows request: a request must be smaller than 20 MB.
pub const SERVICE_MAX_REQUEST_BYTES: usize = 20_000_000;

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

/// The format rows travel in (`bigquery.row_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowFormat {
    /// proto2 messages (`proto_rows`), one per row.
    #[default]
    Proto,
    /// Arrow IPC record batches (`arrow_rows`).
    Arrow,
    /// Arrow, and proto rows when the service refuses Arrow before accepting any row.
    Auto,
}

impl RowFormat {
    /// The option's value as written.
    pub fn as_str(self) -> &'static str {
        match self {
            RowFormat::Proto => "proto",
            RowFormat::Arrow => "arrow",
            RowFormat::Auto => "auto",
        }
    }
}

impl std::str::FromStr for RowFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "proto" => Ok(Self::Proto),
            "arrow" => Ok(Self::Arrow),
            "auto" => Ok(Self::Auto),
            _ => Err(Error::InvalidOption {
                key: "bigquery.row_format".into(),
                value: s.into(),
                reason: "expected 'proto', 'arrow' or 'auto'".into(),
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

/// What a NULL (absent) value means for a column that has a default value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingValues {
    /// NULL is NULL (the service's default); a NULL in a REQUIRED column is an error.
    #[default]
    Null,
    /// NULL or absent takes the column's `DEFAULT` (`default_missing_value_interpretation =
    /// DEFAULT_VALUE`); a REQUIRED column with a default may then be left NULL.
    Default,
}

impl MissingValues {
    /// The interpretation to send with every request, if not the service's default.
    pub(crate) fn interpretation(self) -> Option<crate::proto::append_rows_request::MissingValueInterpretation> {
        match self {
            MissingValues::Null => None,
            MissingValues::Default => Some(crate::proto::append_rows_request::MissingValueInterpretation::DefaultValue),
        }
    }
}

impl std::str::FromStr for MissingValues {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "null" | "null_value" => Ok(Self::Null),
            "default" | "default_value" => Ok(Self::Default),
            _ => Err(Error::InvalidOption {
                key: "bigquery.missing_values".into(),
                value: s.into(),
                reason: "expected 'null' or 'default'".into(),
            }),
        }
    }
}

/// The encoder's own options (a part of `BigQueryOptions`, see
/// `BigQueryOptions::encode_options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Proto or Arrow rows ([`RowFormat::Auto`] encodes Arrow; the loader keeps a proto
    /// encoder to fall back to).
    pub row_format: RowFormat,
    /// Wire form of NUMERIC, BIGNUMERIC, DATETIME and TIME.
    pub wire_encoding: WireEncoding,
    /// NULL elements inside arrays.
    pub array_null_elements: ArrayNullElements,
    /// What NULL means for columns with a default.
    pub missing_values: MissingValues,
    /// Upper bound of one AppendRows request in bytes.
    pub max_request_bytes: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            row_format: RowFormat::default(),
            wire_encoding: WireEncoding::default(),
            array_null_elements: ArrayNullElements::default(),
            missing_values: MissingValues::default(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}
