//! What a load measures: wall time, this process's CPU time and its peak resident memory.

use anyhow::{Context, Result};
use std::time::Instant;

/// Wall clock and CPU time at the start of a measurement.
pub struct Started {
    wall: Instant,
    cpu_seconds: f64,
}

/// Starts measuring now.
pub fn start() -> Started {
    Started {
        wall: Instant::now(),
        cpu_seconds: cpu_seconds(),
    }
}

impl Started {
    /// The output line for `rows` loaded since the start: wall seconds, user+system CPU
    /// seconds of this process in that time, and its peak resident set (VmHWM).
    pub fn line(&self, rows: u64) -> Result<String> {
        let seconds = self.wall.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - self.cpu_seconds;
        let peak = peak_rss_mib()?;
        Ok(format!(
            "rows={rows} seconds={seconds:.3} cpu_seconds={cpu:.3} peak_rss_mib={peak:.0}"
        ))
    }
}

/// User plus system CPU seconds this process has used, all threads together.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given, which is zeroed and ours.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage; on failure `usage` stays zero.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Peak resident set size of this process in MiB, from `VmHWM` in /proc/self/status.
fn peak_rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("/proc/self/status has no VmHWM line")?;
    Ok(kib / 1024.0)
}
