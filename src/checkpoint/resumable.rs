//! Checkpointed loads from Rust, without SQL: [`Loader::load_resumable`].

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::Stream;

use super::folder::CheckpointStore;
use super::run::{LoadIdentity, RunSettings, RunStart, start_run};
use super::worker::Worker;
use super::{new_run_id, sha256_hex};
use crate::error::{Error, Result};
use crate::load::{CheckpointReport, LoadProgress, LoadSummary, Loader};

impl Loader {
    /// Loads `partitions` inputs atomically, one stream each, recording checkpoints in the
    /// options' `checkpoint` folder under `load_id`: run again after a failure or a crash, it
    /// commits the finalized streams as they are, resumes the open ones and writes the rest;
    /// run again after its commit, it writes nothing and reports the earlier commit.
    ///
    /// `open_partition(i)` must give partition `i`'s rows in the same order every time (it is
    /// called only for partitions that are not finished, and once more if a stream cannot be
    /// resumed). A different schema or number of partitions under the same `load_id` is
    /// refused.
    ///
    /// ```no_run
    /// # async fn example(files: Vec<std::path::PathBuf>) -> datafusion_bigquery::Result<()> {
    /// use datafusion_bigquery::{BigQueryOptions, Loader};
    /// use datafusion_bigquery::load::CheckpointReport;
    ///
    /// let mut options = BigQueryOptions::default();
    /// options.set("bigquery.checkpoint", "gs://my-bucket/loads")?;
    /// let loader = Loader::connect("my-project.sales.orders".parse()?, options).await?;
    /// let open = |i: usize| {
    ///     let file = std::fs::File::open(&files[i]).expect("readable");
    ///     let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 8192)
    ///         .expect("parquet");
    ///     futures::stream::iter(reader)
    /// };
    /// let (summary, report) = loader
    ///     .load_resumable("orders-2026-12-01", loader.arrow_schema(), files.len(), open)
    ///     .await?;
    /// if let CheckpointReport::AlreadyCommitted { commit_time, .. } = report {
    ///     println!("already committed at {commit_time:?}");
    /// }
    /// println!("{} rows committed", summary.rows);
    /// # Ok(()) }
    /// ```
    pub async fn load_resumable<F, S, E>(
        &self,
        load_id: &str,
        input_schema: SchemaRef,
        partitions: usize,
        open_partition: F,
    ) -> Result<(LoadSummary, CheckpointReport)>
    where
        F: Fn(usize) -> S,
        S: Stream<Item = std::result::Result<RecordBatch, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let options = self.options();
        options.validate()?;
        let location = options.checkpoint.as_deref().ok_or_else(|| Error::InvalidOption {
            key: "bigquery.checkpoint".into(),
            value: String::new(),
            reason: "a resumable load needs a checkpoint folder".into(),
        })?;
        let folder = CheckpointStore::open(location)?.load(load_id)?;
        let identity = LoadIdentity {
            load_id: load_id.to_string(),
            explicit_id: true,
            fingerprint: sha256_hex(&format!("{input_schema:?} in {partitions} partitions")),
            replayable: true,
            partitions,
        };
        let settings = RunSettings {
            run_id: new_run_id(),
            lease_ttl: options.lease_ttl,
            retry: options.retry.clone(),
        };
        let progress = self.progress().map_or_else(LoadProgress::new, LoadProgress::child);
        let run = match start_run(folder, self.table(), &identity, &settings, self.client()).await? {
            RunStart::Committed(record) => {
                let summary = LoadSummary {
                    rows: record.rows,
                    bytes: 0,
                    streams: record.streams.len(),
                    requests: 0,
                    retries: 0,
                    commit_time: record.commit_time.as_deref().and_then(super::parse_rfc3339),
                };
                let report = CheckpointReport::AlreadyCommitted {
                    load_id: load_id.to_string(),
                    commit_time: record.commit_time,
                    rows: record.rows,
                    recovered: record.recovered,
                };
                return Ok((summary, report));
            }
            RunStart::Open(run) => Arc::from(run),
        };
        let loader = self.clone().with_progress(progress.clone());
        let source: Arc<str> = Arc::from(identity.fingerprint.as_str());
        let workers = (0..partitions).map(|partition| {
            let worker = Worker {
                run: Arc::clone(&run),
                partition,
                source: source.clone(),
                replays: true,
                interval: options.checkpoint_interval,
                table: self.table().to_string(),
                progress: progress.clone(),
            };
            let (loader, schema, open) = (&loader, &input_schema, &open_partition);
            async move {
                let new_writer = || {
                    let writer = loader.stream_writer(schema)?;
                    Ok(
                        match loader.budget(format!("BigQueryLoader[{}, partition {partition}]", loader.table())) {
                            Some(budget) => writer.with_budget(budget),
                            None => writer,
                        },
                    )
                };
                worker.write(|| Ok(open(partition)), new_writer).await
            }
        });
        let written = futures::future::try_join_all(workers).await;
        let handles: Vec<_> = match written {
            Ok(handles) => handles.into_iter().flatten().collect(),
            Err(e) => {
                run.release().await;
                return Err(e);
            }
        };
        let committed = async {
            run.check_lease().await?;
            loader.commit(&handles).await
        }
        .await;
        let time = match committed {
            Ok(done) => done,
            Err(e) => {
                run.release().await;
                return Err(e);
            }
        };
        if let Err(e) = run.record_commit(&handles, time).await {
            tracing::warn!(load = load_id, error = %e, "committed, but the commit record could not be written");
        }
        let summary = LoadSummary::of(&handles, time);
        let report = CheckpointReport::Committed {
            load_id: load_id.to_string(),
            replayable: true,
        };
        Ok((summary, report))
    }
}
