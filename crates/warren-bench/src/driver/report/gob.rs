//! The section of Go's gob cells (`driver/gob.rs`): warren serving Go's own client against Go's
//! own net/rpc server, in the same run.

use std::fmt::Write as _;

use super::format::{cell, ratio_cell};
use crate::driver::gob::{CALLERS, gob_key, workloads};
use crate::driver::{Imp, Store};

/// The report's section for these cells; empty if none ran.
pub(super) fn section(s: &Store) -> String {
    let (warren, go) = (Imp::WarrenGob.name(), Imp::GoGob.name());
    let mut rows = String::new();
    for workload in workloads(false) {
        for callers in CALLERS {
            let key = |m: &str| gob_key(*workload, callers, m);
            if s.get(&key("calls_s"), warren).is_empty() && s.get(&key("calls_s"), go).is_empty() {
                continue;
            }
            let _ = writeln!(
                rows,
                "| {} | {callers} | {} | {} | **{}** | {} | {} | **{}** | {} | {} |",
                workload.label(),
                cell(&s.get(&key("calls_s"), warren), 0),
                cell(&s.get(&key("calls_s"), go), 0),
                ratio_cell(&s.ratio(&key("calls_s"), warren, go)),
                cell(&s.get(&key("server_cpu_us"), warren), 2),
                cell(&s.get(&key("server_cpu_us"), go), 2),
                ratio_cell(&s.ratio(&key("server_cpu_us"), warren, go)),
                ratio_cell(&s.ratio(&key("cpu_us"), warren, go)),
                ratio_cell(&s.ratio(&key("p50_us"), warren, go)),
            );
        }
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "\n### Go's gob: warren serving Go's own client, against Go's net/rpc server\n\n\
         The same Go 1.19 client (`netrpc-client -impl gob`: `rpc.DialHTTP`, one connection shared by `c` \
         goroutines) calls `wb-child serve` (warren, which recognises Go's `CONNECT /_goRPC_` and gob on its \
         one socket) or `netrpc-server -codec gob` (`rpc.Register` + `rpc.HandleHTTP` + `http.Serve`), the two \
         taking turns within each round. Server CPU per call is the server process's CPU time (all its \
         threads, `/proc/PID/task/*/schedstat`) over the window ÷ calls; \"all CPU\" adds the client's. \
         Ratios are warren ÷ Go per round: above 1× is better for calls/s, below 1× for CPU and p50.\n\n\
         | workload | c | warren calls/s | Go calls/s | calls/s warren ÷ Go | warren server CPU µs/call | Go \
         server CPU µs/call | server CPU warren ÷ Go | all CPU warren ÷ Go | p50 warren ÷ Go |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n{rows}"
    )
}
