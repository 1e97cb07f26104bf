//! How many calls warren carried to each program (`warren call`), and how many failed: the
//! per-program RPC figures of `/metrics`. Calls that programs make to each other directly never
//! pass through warren, so they are not counted here.

use std::collections::HashMap;
use std::sync::Mutex;

/// Calls to one program and the part of them that failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    pub errors: u64,
}

/// Counts per program name; a name stays once counted, so the figures only grow, as Prometheus
/// counters must (one small entry per program the file ever named).
#[derive(Debug, Default)]
pub struct CallCounts {
    by_program: Mutex<HashMap<String, Counts>>,
}

impl CallCounts {
    pub fn record(&self, program: &str, ok: bool) {
        let mut by_program = self.by_program.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = match by_program.get_mut(program) {
            Some(counts) => counts,
            None => by_program.entry(program.to_owned()).or_default(),
        };
        counts.calls += 1;
        counts.errors += u64::from(!ok);
    }

    pub fn get(&self, program: &str) -> Counts {
        let by_program = self.by_program.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        by_program.get(program).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_errors_add_up_per_program() {
        let counts = CallCounts::default();
        counts.record("api", true);
        counts.record("api", false);
        counts.record("worker", true);
        assert_eq!(counts.get("api"), Counts { calls: 2, errors: 1 });
        assert_eq!(counts.get("worker"), Counts { calls: 1, errors: 0 });
        assert_eq!(counts.get("other"), Counts::default());
    }
}
