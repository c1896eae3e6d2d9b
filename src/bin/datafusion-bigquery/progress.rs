//! The progress line drawn on stderr during a load, and the summary printed after it.

use std::time::{Duration, Instant, SystemTime};

use datafusion_bigquery::load::CheckpointReport;
use datafusion_bigquery::{LoadProgress, ProgressSnapshot};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the progress line is redrawn.
const REFRESH: Duration = Duration::from_millis(120);

/// A task redrawing the progress line from the load counters until it is stopped.
pub(crate) struct ProgressLine {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ProgressLine {
    /// Starts drawing what `progress` counts beyond `start`. The line appears only once a
    /// load has created a stream, so queries that load nothing draw nothing.
    pub(crate) fn start(progress: LoadProgress, start: ProgressSnapshot) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut bar: Option<ProgressBar> = None;
            let mut ticks = tokio::time::interval(REFRESH);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {}
                }
                let done = progress.snapshot().since(&start);
                if done.streams == 0 && done.rows == 0 {
                    continue;
                }
                let bar = bar.get_or_insert_with(new_bar);
                bar.set_message(progress_text(&done, started.elapsed()));
                bar.tick();
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        Self { stop, task }
    }

    /// Stops drawing and erases the line.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A spinner with a message, drawn on stderr.
fn new_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// `1,234,567 rows  98.1 MB  512,000 rows/s  4 streams  00:02`
pub(crate) fn progress_text(done: &ProgressSnapshot, elapsed: Duration) -> String {
    format!(
        "{} rows  {}  {} rows/s  {} stream{}  {:.1} s",
        thousands(done.rows),
        megabytes(done.bytes),
        thousands(per_second(done.rows, elapsed)),
        done.streams,
        if done.streams == 1 { "" } else { "s" },
        elapsed.as_secs_f64()
    )
}

/// The summary of the loads of one statement into `table`.
pub(crate) fn summary_text(table: &str, done: &ProgressSnapshot, elapsed: Duration) -> String {
    let commit = match done.last_commit_time {
        Some(time) if done.rows_committed.max(done.rows) > 0 => {
            format!("commit at {} ({})", rfc3339(time), millis(done.commit_duration))
        }
        _ => "nothing to commit".to_string(),
    };
    let rows = done.rows_committed.max(done.rows);
    let resumed = if done.rows_skipped > 0 {
        format!(", {} rows sent in this run", thousands(done.rows))
    } else {
        String::new()
    };
    format!(
        "Committed {} rows to {table}{resumed}: {} stream{}, {}, {commit}, elapsed {:.2} s, {} rows/s",
        thousands(rows),
        done.streams,
        if done.streams == 1 { "" } else { "s" },
        megabytes(done.bytes),
        elapsed.as_secs_f64(),
        thousands(per_second(done.rows, elapsed)),
    )
}

fn per_second(count: u64, elapsed: Duration) -> u64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0;
    }
    (count as f64 / seconds).round() as u64
}

/// What a checkpointed load did, as one line for the summary.
pub(crate) fn checkpoint_text(table: &str, report: &CheckpointReport, done: &ProgressSnapshot) -> String {
    match report {
        CheckpointReport::AlreadyCommitted {
            load_id,
            commit_time,
            rows,
            recovered,
        } => format!(
            "Already committed at {}: {} rows to {table} (load {load_id}{}); nothing written",
            commit_time.as_deref().unwrap_or("an unknown time"),
            thousands(*rows),
            if *recovered {
                ", its record rebuilt from the streams"
            } else {
                ""
            },
        ),
        CheckpointReport::Committed { load_id, replayable } if *replayable => format!(
            "Checkpoint load {load_id}: {} finalized stream{} reused, {} resumed, {} input rows not sent again",
            done.streams_reused,
            if done.streams_reused == 1 { "" } else { "s" },
            done.streams_resumed,
            thousands(done.rows_skipped),
        ),
        CheckpointReport::Committed { load_id, .. } => format!(
            "Checkpoint load {load_id}: partitions do not replay (a shuffle, a sort or a volatile function), \
             so an unfinished run starts them over"
        ),
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in decimal megabytes, two decimals.
fn megabytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}

fn millis(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

/// A time as `2026-11-26T02:01:41.123456Z`.
fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(megabytes(2_345_678), "2.35 MB");
        assert_eq!(per_second(500, Duration::from_millis(250)), 2_000);
        assert_eq!(per_second(500, Duration::ZERO), 0);
    }

    #[test]
    fn summary_names_rows_streams_bytes_commit_and_elapsed() {
        let done = ProgressSnapshot {
            rows: 100_000,
            bytes: 2_345_678,
            streams: 4,
            loads: 1,
            commit_duration: Duration::from_millis(3),
            last_commit_time: Some(UNIX_EPOCH + Duration::from_micros(1_764_122_501_123_456)),
            ..ProgressSnapshot::default()
        };
        assert_eq!(
            summary_text("demo.shop.orders", &done, Duration::from_millis(500)),
            "Committed 100,000 rows to demo.shop.orders: 4 streams, 2.35 MB, \
             commit at 2025-11-26T02:01:41.123456Z (3 ms), elapsed 0.50 s, 200,000 rows/s"
        );
        let empty = ProgressSnapshot {
            loads: 1,
            ..ProgressSnapshot::default()
        };
        assert!(
            summary_text("t", &empty, Duration::from_secs(1))
                .starts_with("Committed 0 rows to t: 0 streams, 0.00 MB, nothing")
        );
        assert!(summary_text("t", &empty, Duration::from_secs(1)).contains("nothing to commit"));
    }

    #[test]
    fn progress_line_shows_rows_bytes_rate_and_streams() {
        let done = ProgressSnapshot {
            rows: 12_000,
            bytes: 1_500_000,
            streams: 1,
            ..ProgressSnapshot::default()
        };
        assert_eq!(
            progress_text(&done, Duration::from_secs(2)),
            "12,000 rows  1.50 MB  6,000 rows/s  1 stream  2.0 s"
        );
    }
}
