//! Reading the Parquet file: which rows each stream loads, and the batches of one share.

use crate::columns::LINEITEM;
use anyhow::{Context, Result, bail};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Rows per batch read from Parquet (what the Python baseline's `iter_batches` uses).
const READ_BATCH_ROWS: usize = 8192;

/// An opened Parquet file: its path and its footer, read once.
#[derive(Clone)]
pub struct Source {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
}

/// The rows of the file one stream loads: whole row groups, and a row selection within them
/// when a share starts or ends inside a row group.
#[derive(Clone, Debug, Default)]
pub struct Share {
    row_groups: Vec<usize>,
    selection: Option<RowSelection>,
}

impl Source {
    /// Opens `path` and reads its footer; fails unless every lineitem column is there.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .with_context(|| format!("cannot read the Parquet footer of {}", path.display()))?;
        for (name, _) in LINEITEM {
            if metadata.schema().field_with_name(name).is_err() {
                bail!("{} has no column {name}", path.display());
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            metadata,
        })
    }

    /// The file's Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        self.metadata.schema().clone()
    }

    /// Rows in each row group.
    fn group_rows(&self) -> Vec<u64> {
        self.metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|g| u64::try_from(g.num_rows()).unwrap_or(0))
            .collect()
    }

    /// Splits the file into `parts` shares of about equal rows: on row group boundaries when
    /// there are at least as many row groups as parts, else on row boundaries.
    pub fn shares(&self, parts: usize) -> Vec<Share> {
        let starts = group_starts(&self.group_rows());
        let bounds = split_points(&starts, parts);
        bounds.windows(2).map(|w| share_of_range(&starts, w[0], w[1])).collect()
    }

    /// The batches of `share`, read in order.
    pub fn read(&self, share: &Share) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
        let file = File::open(&self.path).with_context(|| format!("cannot open {}", self.path.display()))?;
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
            .with_batch_size(READ_BATCH_ROWS)
            .with_row_groups(share.row_groups.clone());
        if let Some(selection) = &share.selection {
            builder = builder.with_row_selection(selection.clone());
        }
        let reader = builder
            .build()
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        Ok(reader.map(|batch| batch.context("cannot decode a Parquet batch")))
    }
}

/// Row offset at which each row group starts, followed by the total row count.
fn group_starts(group_rows: &[u64]) -> Vec<u64> {
    let mut starts = Vec::with_capacity(group_rows.len() + 1);
    let mut at = 0;
    starts.push(at);
    for rows in group_rows {
        at += rows;
        starts.push(at);
    }
    starts
}

/// `parts + 1` row offsets from 0 to the total: row group boundaries nearest to an even split
/// when there are enough row groups, else an even split of the rows.
fn split_points(starts: &[u64], parts: usize) -> Vec<u64> {
    let total = starts.last().copied().unwrap_or(0);
    let groups = starts.len() - 1;
    let parts_u64 = parts as u64;
    let even = |part: usize| total * part as u64 / parts_u64;
    if groups < parts {
        return (0..=parts).map(even).collect();
    }
    let mut points = vec![0];
    let mut previous = 0;
    for part in 1..parts {
        let ideal = even(part);
        let last_allowed = groups - (parts - part);
        let index = (previous + 1..=last_allowed)
            .min_by_key(|&i| starts[i].abs_diff(ideal))
            .unwrap_or(previous + 1);
        points.push(starts[index]);
        previous = index;
    }
    points.push(total);
    points
}

/// The row groups holding rows `[from, to)` and, when the range does not cover them whole,
/// the selection of those rows within them.
fn share_of_range(starts: &[u64], from: u64, to: u64) -> Share {
    if from >= to {
        return Share::default();
    }
    let row_groups: Vec<usize> = (0..starts.len() - 1)
        .filter(|&g| starts[g] < to && starts[g + 1] > from)
        .collect();
    let (Some(&first), Some(&last)) = (row_groups.first(), row_groups.last()) else {
        return Share::default();
    };
    let (begin, end) = (starts[first], starts[last + 1]);
    let selection = (begin != from || end != to).then(|| {
        let mut selectors = Vec::with_capacity(3);
        if from > begin {
            selectors.push(RowSelector::skip(usize_of(from - begin)));
        }
        selectors.push(RowSelector::select(usize_of(to - from)));
        if end > to {
            selectors.push(RowSelector::skip(usize_of(end - to)));
        }
        RowSelection::from(selectors)
    });
    Share { row_groups, selection }
}

/// A row count as `usize` (row counts of one file always fit).
fn usize_of(rows: u64) -> usize {
    usize::try_from(rows).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_row_groups_split_on_rows() {
        let starts = group_starts(&[10]);
        assert_eq!(split_points(&starts, 3), vec![0, 3, 6, 10]);
        let share = share_of_range(&starts, 3, 6);
        assert_eq!(share.row_groups, vec![0]);
        assert!(share.selection.is_some());
    }

    #[test]
    fn many_row_groups_split_on_groups() {
        let starts = group_starts(&[4, 4, 4, 4, 1]);
        let points = split_points(&starts, 2);
        assert_eq!(points, vec![0, 8, 17]);
        let share = share_of_range(&starts, 8, 17);
        assert_eq!(share.row_groups, vec![2, 3, 4]);
        assert!(share.selection.is_none());
    }

    #[test]
    fn every_part_gets_a_group() {
        let starts = group_starts(&[1, 1, 100]);
        assert_eq!(split_points(&starts, 3), vec![0, 1, 2, 102]);
    }
}
