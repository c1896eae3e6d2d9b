//! One worker of a checkpointed load: it reuses, resumes or starts its partition's stream,
//! and records its progress every few seconds (in the background) and at finalize.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use futures::{Stream, StreamExt};

use super::run::{OpenRun, PartitionStart};
use crate::error::{Error, Result};
use crate::load::{LoadProgress, StreamHandle, StreamWriter};

/// What a worker of a checkpointed load needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    /// The run it belongs to.
    pub run: Arc<OpenRun>,
    /// The input partition it writes.
    pub partition: usize,
    /// Fingerprint of what it reads: a stream is resumed only by a worker reading the same.
    pub source: Arc<str>,
    /// Whether its partition replays the same rows in the same order.
    pub replays: bool,
    /// How often it records its progress.
    pub interval: Duration,
    /// The destination table, for messages.
    pub table: String,
    /// Counts reused and resumed streams and skipped rows.
    pub progress: LoadProgress,
}

impl Worker {
    /// Writes the partition: commits its finalized stream as it is (without opening the
    /// input), resumes its open stream (skipping the rows it holds), or writes it to a new
    /// stream. `open` opens the partition's input, again if a resume turns out impossible;
    /// `new_writer` makes a writer for a new stream.
    pub(crate) async fn write<S, E>(
        self,
        mut open: impl FnMut() -> Result<S>,
        new_writer: impl Fn() -> Result<StreamWriter>,
    ) -> Result<Option<StreamHandle>>
    where
        S: Stream<Item = std::result::Result<RecordBatch, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut recorder = Recorder::new(&self);
        let start = if self.replays {
            self.run.partition_start(self.partition, &self.source)
        } else {
            PartitionStart::Fresh
        };
        let partition = self.partition;
        match start {
            PartitionStart::Reuse(handle) => {
                tracing::info!(partition, stream = %handle.stream, rows = handle.rows, "reusing a finalized stream");
                self.progress.stream_reused(handle.rows);
                Ok(Some(handle))
            }
            PartitionStart::Resume {
                stream,
                acknowledged_rows,
            } => {
                tracing::info!(partition, %stream, acknowledged_rows, "resuming a stream");
                let writer = new_writer()?.resume(stream, acknowledged_rows);
                match write_stream(open()?, writer, acknowledged_rows, &self.table, Some(&mut recorder)).await {
                    Err(Error::StreamNotResumable { stream, reason }) => {
                        tracing::warn!(partition, %stream, %reason, "the stream cannot be resumed; starting the partition over");
                        write_stream(open()?, new_writer()?, 0, &self.table, Some(&mut recorder)).await
                    }
                    Ok(handle) => {
                        self.progress.stream_resumed(acknowledged_rows);
                        Ok(handle)
                    }
                    Err(e) => Err(e),
                }
            }
            PartitionStart::Fresh => write_stream(open()?, new_writer()?, 0, &self.table, Some(&mut recorder)).await,
        }
    }
}

/// Records one worker's progress every `interval`, in the background, and at finalize.
pub(crate) struct Recorder {
    run: Arc<OpenRun>,
    partition: usize,
    source: Arc<str>,
    interval: Duration,
    last: Instant,
    writing: Option<tokio::task::JoinHandle<()>>,
}

impl Recorder {
    fn new(worker: &Worker) -> Self {
        Self {
            run: worker.run.clone(),
            partition: worker.partition,
            source: worker.source.clone(),
            interval: worker.interval,
            last: Instant::now(),
            writing: None,
        }
    }

    /// Records the writer's progress if the interval passed and no earlier record is still
    /// being written; never waits.
    fn tick(&mut self, writer: &StreamWriter, input_rows: u64) {
        if self.last.elapsed() < self.interval || self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        let Some(stream) = writer.stream_name().map(str::to_string) else {
            return;
        };
        self.last = Instant::now();
        let (run, partition, source) = (self.run.clone(), self.partition, self.source.clone());
        let (acknowledged, bytes) = (writer.acknowledged_rows(), writer.acknowledged_bytes());
        self.writing = Some(tokio::spawn(async move {
            if let Err(e) = run
                .record_partition(partition, &source, &stream, acknowledged, input_rows, bytes, false)
                .await
            {
                tracing::warn!(partition, error = %e, "could not record a checkpoint");
            }
        }));
    }

    /// Records where a failed writer got to, after any record still being written.
    async fn failed(&mut self, writer: &StreamWriter, input_rows: u64) {
        let Some(stream) = writer.stream_name() else {
            return;
        };
        let (acknowledged, bytes) = (writer.acknowledged_rows(), writer.acknowledged_bytes());
        self.record_now(stream, acknowledged, input_rows, bytes, false).await;
    }

    /// Records the finalized stream, after any record still being written.
    async fn finalized(&mut self, handle: &StreamHandle, input_rows: u64) {
        self.record_now(&handle.stream, handle.rows, input_rows, handle.bytes, true)
            .await;
    }

    /// Waits for any record still being written, then writes this one.
    async fn record_now(&mut self, stream: &str, acknowledged: u64, input_rows: u64, bytes: u64, finalized: bool) {
        if let Some(writing) = self.writing.take() {
            let _ = writing.await;
        }
        if let Err(e) = self
            .run
            .record_partition(
                self.partition,
                &self.source,
                stream,
                acknowledged,
                input_rows,
                bytes,
                finalized,
            )
            .await
        {
            tracing::warn!(partition = self.partition, error = %e, "could not record a checkpoint");
        }
    }
}

/// Writes one partition's input through `writer` and finalizes the stream, skipping the
/// first `skip` input rows (a resumed stream holds them) and recording progress when a
/// recorder is given. Returns `None` if no row was written.
pub(crate) async fn write_stream<S, E>(
    mut input: S,
    mut writer: StreamWriter,
    skip: u64,
    table: &str,
    mut recorder: Option<&mut Recorder>,
) -> Result<Option<StreamHandle>>
where
    S: Stream<Item = std::result::Result<RecordBatch, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut row = 0u64;
    let written = async {
        while let Some(batch) = input.next().await {
            let batch = batch.map_err(|e| Error::Input {
                table: table.to_string(),
                source: e.into(),
            })?;
            let n = batch.num_rows() as u64;
            if row + n <= skip {
                row += n;
                continue;
            }
            let batch = if row < skip {
                let from = usize::try_from(skip - row).map_err(|_| Error::Internal("row overflow".into()))?;
                batch.slice(from, batch.num_rows() - from)
            } else {
                batch
            };
            writer.write(&batch, row.max(skip)).await?;
            row += n;
            if let Some(recorder) = recorder.as_deref_mut() {
                recorder.tick(&writer, row);
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = written {
        if let Some(recorder) = recorder {
            recorder.failed(&writer, row).await;
        }
        return Err(e);
    }
    let handle = writer.finish().await?;
    if let (Some(recorder), Some(handle)) = (recorder, &handle) {
        recorder.finalized(handle, row).await;
    }
    Ok(handle)
}
