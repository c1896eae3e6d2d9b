//! The row format of a load with `bigquery.row_format = auto`: Arrow until the service
//! refuses it, then proto rows for every writer of the loader, decided once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::datatypes::Schema;

use crate::encode::{EncodeOptions, RowEncoder, RowFormat};
use crate::error::Result;
use crate::proto::TableSchema;

/// Whether the service refused Arrow rows, shared by a loader's writers.
#[derive(Debug, Clone, Default)]
pub(crate) struct FormatChoice(Arc<AtomicBool>);

impl FormatChoice {
    /// Records that the service refused Arrow rows; true the first time only (to log once).
    pub(crate) fn fall_back(&self) -> bool {
        !self.0.swap(true, Ordering::SeqCst)
    }

    /// True once the service refused Arrow rows.
    pub(crate) fn fell_back(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The encoders of one input schema: the one to write with and, with
/// [`RowFormat::Auto`] while Arrow was not refused, the proto one to fall back to.
#[derive(Debug, Clone)]
pub(crate) struct Encoders {
    pub(crate) first: Arc<RowEncoder>,
    pub(crate) fallback: Option<Arc<RowEncoder>>,
}

impl Encoders {
    /// Plans the encoders of `input` rows into `schema` under `options`.
    pub(crate) fn plan(
        table: &str,
        schema: &TableSchema,
        input: &Schema,
        options: &EncodeOptions,
        choice: &FormatChoice,
    ) -> Result<Self> {
        let with_format = |row_format| EncodeOptions { row_format, ..*options };
        let proto = || RowEncoder::new(table, schema, input, &with_format(RowFormat::Proto)).map(Arc::new);
        if options.row_format != RowFormat::Auto {
            return Ok(Self {
                first: Arc::new(RowEncoder::new(table, schema, input, options)?),
                fallback: None,
            });
        }
        if choice.fell_back() {
            return Ok(Self {
                first: proto()?,
                fallback: None,
            });
        }
        match RowEncoder::new(table, schema, input, &with_format(RowFormat::Arrow)) {
            Ok(arrow) => Ok(Self {
                first: Arc::new(arrow),
                fallback: Some(proto()?),
            }),
            Err(arrow_error) => {
                // A table Arrow rows cannot carry (picosecond timestamps) goes as proto rows.
                let proto = proto()?;
                tracing::debug!(table, reason = %arrow_error, "bigquery.row_format = auto: proto rows");
                Ok(Self {
                    first: proto,
                    fallback: None,
                })
            }
        }
    }
}
