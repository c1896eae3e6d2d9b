//! `gen-lineitem`: TPC-H lineitem from tpchgen-arrow written to a Parquet file.

use anyhow::{Context, Result};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::Path;
use tpchgen::generators::LineItemGenerator;
use tpchgen_arrow::LineItemArrow;

/// Rows per batch taken from the generator.
const GENERATE_BATCH_ROWS: usize = 8192;

/// Writes lineitem at scale factor `sf` to `out` (zstd, at most `row_group_rows` rows per row
/// group), through a temporary file renamed at the end; returns the row count.
pub fn lineitem(sf: f64, out: &Path, row_group_rows: usize) -> Result<u64> {
    let partial = out.with_extension("partial");
    let file = File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .build();
    let mut writer = ArrowWriter::try_new(file, LineItemArrow::schema_ref(), Some(properties))
        .context("cannot start the Parquet writer")?;
    let mut rows = 0u64;
    for batch in LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)).with_batch_size(GENERATE_BATCH_ROWS) {
        let batch = batch.context("cannot generate lineitem rows")?;
        writer
            .write(&batch)
            .with_context(|| format!("cannot write to {}", partial.display()))?;
        rows += batch.num_rows() as u64;
    }
    writer
        .close()
        .with_context(|| format!("cannot finish {}", partial.display()))?;
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
    Ok(rows)
}
