//! CPU % and RSS for `status`: CPU % is the CPU time a program's tree used between two looks,
//! over the time between them, so each look is compared with the one before.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use warren::supervise::Supervisor;

use crate::control::StatusRow;

/// The shortest time a CPU % is measured over: shorter, one scheduler tick is most of it.
const MIN_WINDOW: Duration = Duration::from_millis(200);

/// The last look at each program; one entry per program of the plan, no more.
#[derive(Debug, Default)]
pub struct Sampler {
    last: Mutex<HashMap<String, Sample>>,
}

#[derive(Debug)]
struct Sample {
    pid: u32,
    at: Instant,
    cpu: Duration,
    percent: Option<f64>,
}

impl Sampler {
    /// Fills in `cpu_percent` and `rss_bytes` of the rows of running programs. A program not
    /// looked at before (or restarted since) is looked at twice, [`MIN_WINDOW`] apart.
    pub async fn fill(&self, supervisor: &Supervisor, rows: &mut [StatusRow]) {
        let mut first_look = false;
        for row in rows.iter_mut() {
            first_look |= self.look(supervisor, row).is_none();
        }
        if first_look {
            tokio::time::sleep(MIN_WINDOW).await;
            for row in rows.iter_mut().filter(|row| row.cpu_percent.is_none()) {
                self.look(supervisor, row);
            }
        }
    }

    /// `None` when the row's program runs but has no CPU % yet.
    fn look(&self, supervisor: &Supervisor, row: &mut StatusRow) -> Option<()> {
        let (Some(pid), Some(usage)) = (row.pid, supervisor.usage(&row.name)) else { return Some(()) };
        row.rss_bytes = Some(usage.rss_bytes);
        row.cpu_percent = self.observe(&row.name, pid, usage.cpu, Instant::now());
        row.cpu_percent.map(drop)
    }

    fn observe(&self, name: &str, pid: u32, cpu: Duration, now: Instant) -> Option<f64> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let sample = Sample { pid, at: now, cpu, percent: None };
        let Some(previous) = last.get_mut(name).filter(|previous| previous.pid == pid) else {
            last.insert(name.to_owned(), sample);
            return None;
        };
        let elapsed = now.saturating_duration_since(previous.at);
        if elapsed < MIN_WINDOW {
            return previous.percent;
        }
        let used = cpu.saturating_sub(previous.cpu);
        let percent = Some(used.as_secs_f64() / elapsed.as_secs_f64() * 100.0);
        *previous = Sample { percent, ..sample };
        percent
    }
}

/// Bytes as a person reads them: `812K`, `12.4M`, `1.2G`.
pub fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let n = n as f64;
    if n < K * K {
        format!("{:.0}K", n / K)
    } else if n < K * K * K {
        format!("{:.1}M", n / (K * K))
    } else {
        format!("{:.1}G", n / (K * K * K))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_cpu_time_over_the_window() {
        let sampler = Sampler::default();
        let start = Instant::now();
        assert_eq!(sampler.observe("p", 1, Duration::ZERO, start), None, "one look is no rate");
        let half = sampler.observe("p", 1, Duration::from_millis(500), start + Duration::from_secs(1));
        assert_eq!(half, Some(50.0));
        let soon = sampler.observe("p", 1, Duration::from_secs(9), start + Duration::from_millis(1100));
        assert_eq!(soon, Some(50.0), "too short a window keeps the last figure");
        assert_eq!(sampler.observe("p", 2, Duration::ZERO, start), None, "a new pid starts over");
        assert_eq!(bytes(12 * 1024 * 1024 + 400 * 1024), "12.4M");
    }
}
