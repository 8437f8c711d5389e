//! A process's CPU time and memory from /proc (Linux only): CPU seconds
//! per second from `utime + stime` of /proc/PID/stat, resident memory from
//! `VmRSS` (sampled every 100 ms) and `VmHWM` (the peak since the process
//! started) of /proc/PID/status.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Serialize;

/// What a process used over a window.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub pid: u32,
    /// CPU seconds (user and system) per second of the window.
    pub cpu_seconds_per_second: f64,
    /// The largest resident set sampled during the window, in bytes.
    pub rss_peak_bytes: u64,
    /// The peak resident set since the process started (VmHWM), read at
    /// the window's end, in bytes.
    pub rss_high_water_bytes: u64,
}

/// A process watched over a window.
#[derive(Debug)]
pub struct Watch {
    pid: u32,
    started: Instant,
    cpu_ticks: u64,
    peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Starts watching `pid`: reads its CPU time now and samples its
    /// resident set until [`Self::finish`].
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = tokio::spawn({
            let peak = Arc::clone(&peak);
            async move {
                loop {
                    if let Some(memory) = memory(pid) {
                        peak.fetch_max(memory.rss, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self {
            pid,
            started: Instant::now(),
            cpu_ticks: cpu_ticks(pid).unwrap_or(0),
            peak,
            sampler,
        }
    }

    /// What the process used since [`Self::start`]; `None` when /proc
    /// does not tell (not Linux, or the process is gone).
    pub async fn finish(self) -> Option<Usage> {
        let ticks = cpu_ticks(self.pid);
        let elapsed = self.started.elapsed().as_secs_f64();
        let memory = memory(self.pid);
        self.sampler.abort();
        let _ = self.sampler.await;
        let ticks = ticks?;
        let memory = memory?;
        let per_second = ticks_per_second();
        Some(Usage {
            pid: self.pid,
            cpu_seconds_per_second: ticks.saturating_sub(self.cpu_ticks) as f64
                / per_second
                / elapsed,
            rss_peak_bytes: self.peak.load(Ordering::Relaxed).max(memory.rss),
            rss_high_water_bytes: memory.high_water,
        })
    }
}

/// How many clock ticks /proc counts per second.
fn ticks_per_second() -> f64 {
    #[cfg(unix)]
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    // /proc is Linux's; elsewhere nothing is read.
    #[cfg(not(unix))]
    let ticks = 100.0;
    ticks
}

/// The user and system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `utime + stime` of a /proc/PID/stat line: fields 14 and 15, counted
/// after the command name, which is in parentheses and may hold spaces.
fn parse_stat(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memory {
    rss: u64,
    high_water: u64,
}

fn memory(pid: u32) -> Option<Memory> {
    parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// `VmRSS` and `VmHWM` of /proc/PID/status, in bytes.
fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(Memory {
        rss: field("VmRSS:")?,
        high_water: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::{Memory, parse_stat, parse_status};

    #[test]
    fn stat_and_status_are_read_by_field() {
        let stat = "4242 (groupd (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 9 0 12345 123456789 2000 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(325));
        assert_eq!(parse_stat("garbage"), None);
        let status = "Name:\tgroupd\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(
            parse_status(status),
            Some(Memory {
                rss: 1024 * 1024,
                high_water: 2048 * 1024
            })
        );
        assert_eq!(parse_status("Name:\tkthread\n"), None);
    }

    #[test]
    fn this_process_can_be_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(super::cpu_ticks(std::process::id()).is_some());
            let memory = super::memory(std::process::id()).unwrap();
            assert!(memory.rss > 0 && memory.high_water >= memory.rss);
        }
    }
}
