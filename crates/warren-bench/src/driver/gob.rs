//! Go's gob (#16 point 6): Go's own net/rpc client (`netrpc-client -impl gob`, `rpc.DialHTTP`)
//! calling warren's server (`wb-child serve`, which detects Go's HTTP CONNECT and gob) against
//! the same client calling Go's own net/rpc server (`netrpc-server -codec gob`, the seed's
//! design). The client is the same program in both cells, so every difference is the server's:
//! calls/s, and the server's CPU per call (read by the client from the server's
//! `/proc/PID/task/*/schedstat` at the window's edges). Ratios are warren ÷ Go within a round,
//! the two servers taking turns going first.

use super::imp::{Imp, Pin};
use super::runner::{Runner, rotated};
use crate::workload::Workload;

/// The two servers, warren's first.
const SERVERS: [Imp; 2] = [Imp::WarrenGob, Imp::GoGob];
pub(super) const CALLERS: [usize; 2] = [1, 64];

/// The workloads measured: a quick run keeps to the tiny call. The 1 MiB echo is where copies
/// of the payload show.
pub(super) fn workloads(quick: bool) -> &'static [Workload] {
    if quick { &[Workload::Tiny] } else { &[Workload::Tiny, Workload::Echo4k, Workload::Echo1m] }
}

/// The figure `metric` of `workload` with `callers` callers.
pub(super) fn gob_key(workload: Workload, callers: usize, metric: &str) -> String {
    format!("gob/{}/c{callers}/{metric}", workload.name())
}

impl Runner<'_> {
    pub(super) fn gob(&mut self, round: usize, others: &mut Vec<f64>) {
        if !self.imps.contains(&Imp::GoGob) {
            return; // No Go peers built: the run's notes say so.
        }
        for &workload in workloads(self.config.quick) {
            for callers in CALLERS {
                for imp in rotated(&SERVERS, round) {
                    let what = format!("gob {} c={callers} {}", workload.name(), imp.name());
                    match self.cell(imp, workload, callers, Pin::None) {
                        Ok((r, _)) => {
                            let key = |m: &str| gob_key(workload, callers, m);
                            let calls = r.calls.max(1) as f64;
                            let s = &mut self.store;
                            s.put(&key("calls_s"), imp.name(), round, r.calls_per_sec());
                            s.put(&key("server_cpu_us"), imp.name(), round, r.server_cpu_ns as f64 / calls / 1e3);
                            s.put(&key("cpu_us"), imp.name(), round, r.cpu_per_call_ns() / 1e3);
                            s.put(&key("p50_us"), imp.name(), round, r.p50_ns as f64 / 1e3);
                            others.push(r.others_cpus());
                            eprintln!(
                                "wb-run: r{round} {what}: {:.0} calls/s, server {:.2} µs CPU/call (others {:.2} CPU)",
                                r.calls_per_sec(),
                                r.server_cpu_ns as f64 / calls / 1e3,
                                r.others_cpus()
                            );
                        }
                        Err(err) => self.fail(format!("round {round} {what}"), &err),
                    }
                }
            }
        }
    }
}
