//! Casting Parquet batches to the Arrow types a BigQuery column of each lineitem type takes.

use crate::columns::{Kind, LINEITEM};
use anyhow::{Context, Result};
use arrow::array::ArrayRef;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// The lineitem columns of `source` with each cast to `target_type(kind)`; a column keeps the
/// source field's nullability.
pub fn target_schema(source: &Schema, target_type: impl Fn(Kind) -> arrow::datatypes::DataType) -> Result<SchemaRef> {
    let fields = LINEITEM
        .iter()
        .map(|&(name, kind)| {
            let field = source
                .field_with_name(name)
                .with_context(|| format!("the Parquet file has no column {name}"))?;
            Ok(Field::new(name, target_type(kind), field.is_nullable()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// The columns of `batch` named in `target`, cast to its types; a value that does not fit
/// (say a decimal too wide) is an error, not a null.
pub fn cast_columns(batch: &RecordBatch, target: &SchemaRef) -> Result<Vec<ArrayRef>> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    target
        .fields()
        .iter()
        .map(|field| {
            let column = batch
                .column_by_name(field.name())
                .with_context(|| format!("a Parquet batch has no column {}", field.name()))?;
            cast_with_options(column, field.data_type(), &options)
                .with_context(|| format!("cannot cast {} to {}", field.name(), field.data_type()))
        })
        .collect()
}

/// `batch` as a batch of `target`.
pub fn cast_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    let columns = cast_columns(batch, target)?;
    RecordBatch::try_new(target.clone(), columns).context("cannot build a batch of the table's Arrow schema")
}
