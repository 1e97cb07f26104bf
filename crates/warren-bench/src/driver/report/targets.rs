//! The targets a run is checked against, each with its goal and verdict.

use super::format::{cell, num, ratio_cell, stats};
use crate::driver::gob::gob_key;
use crate::driver::{Imp, Pin, Store, m1_key, m3_key};
use crate::workload::Workload;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    AtMost,
    AtLeast,
    Below,
}

pub(super) struct Target {
    pub(super) what: String,
    values: Vec<f64>,
    want: Want,
    limit: f64,
    ratio: bool,
    unit: &'static str,
    decimals: usize,
}

impl Target {
    pub(super) fn verdict(&self) -> &'static str {
        match stats(&self.values) {
            None => "not measured",
            Some((m, lo, hi)) => {
                let ok = |x: f64| match self.want {
                    Want::AtMost => x <= self.limit,
                    Want::AtLeast => x >= self.limit,
                    Want::Below => x < self.limit,
                };
                match (ok(m), ok(lo) && ok(hi)) {
                    (true, true) => "**met**",
                    (true, false) => "met (median; not every round)",
                    (false, _) if ok(lo) || ok(hi) => "**missed** (median; met in some round)",
                    (false, _) => "**missed**",
                }
            }
        }
    }

    pub(super) fn goal(&self) -> String {
        let op = match self.want {
            Want::AtMost => "≤",
            Want::AtLeast => "≥",
            Want::Below => "<",
        };
        if self.ratio { format!("{op} {}×", self.limit) } else { format!("{op} {} {}", num(self.limit, 0), self.unit) }
    }

    pub(super) fn measured(&self) -> String {
        if self.ratio {
            ratio_cell(&self.values)
        } else {
            format!("{} {}", cell(&self.values, self.decimals), self.unit)
        }
    }
}

/// A target that is a ratio of two implementations' figures.
fn ratio_target(what: impl Into<String>, values: Vec<f64>, want: Want, limit: f64) -> Target {
    Target { what: what.into(), values, want, limit, ratio: true, unit: "", decimals: 2 }
}

pub(super) fn targets(s: &Store) -> Vec<Target> {
    let mut t = Vec::new();
    let ratio = |what: String, values: Vec<f64>, want: Want, limit: f64| ratio_target(what, values, want, limit);
    let same_p50 = m3_key(Pin::Same, "p50_us");
    t.push(ratio(
        "tiny call p50, pinned to one CPU: warren ÷ raw".into(),
        s.ratio(&same_p50, "warren", "raw"),
        Want::AtMost,
        1.5,
    ));
    for peer in [Imp::Tarpc, Imp::GoGob, Imp::GoJson] {
        t.push(ratio(
            format!("tiny call p50, pinned to one CPU: warren ÷ {}", peer.name()),
            s.ratio(&same_p50, "warren", peer.name()),
            Want::Below,
            1.0,
        ));
    }
    t.push(ratio(
        "tiny call p50, unpinned (M1 c=1): warren ÷ raw".into(),
        s.ratio(&m1_key(Workload::Tiny, 1, "p50_us"), "warren", "raw"),
        Want::AtMost,
        1.2,
    ));
    let c64 = m1_key(Workload::Tiny, 64, "calls_s");
    for (peer, limit) in [(Imp::GoGob, 3.0), (Imp::Tarpc, 1.3), (Imp::Raw, 1.5)] {
        let extra = if peer == Imp::Raw { " (64 threads, 64 connections)" } else { "" };
        t.push(ratio(
            format!("tiny calls/s at c=64: warren ÷ {}{extra}", peer.name()),
            s.ratio(&c64, "warren", peer.name()),
            Want::AtLeast,
            limit,
        ));
    }
    // Issue #16: warren serving gob to Go's own client, against Go serving its own protocol
    // (the `gob` cells, driver/gob.rs).
    for calls in [1, 64] {
        t.push(ratio(
            format!("tiny calls/s at c={calls}, Go's gob client: warren ÷ Go's net/rpc server"),
            s.ratio(&gob_key(Workload::Tiny, calls, "calls_s"), Imp::WarrenGob.name(), Imp::GoGob.name()),
            Want::AtLeast,
            1.0,
        ));
    }
    for calls in [1, 64] {
        t.push(ratio(
            format!("server CPU per tiny call at c={calls}, Go's gob client: warren ÷ Go's net/rpc server"),
            s.ratio(&gob_key(Workload::Tiny, calls, "server_cpu_us"), Imp::WarrenGob.name(), Imp::GoGob.name()),
            Want::Below,
            1.0,
        ));
    }
    let cpu64 = m1_key(Workload::Tiny, 64, "cpu_us");
    for peer in [Imp::Raw, Imp::Tarpc, Imp::GoGob, Imp::GoJson] {
        t.push(ratio(
            format!("CPU per tiny call at c=64: warren ÷ {}", peer.name()),
            s.ratio(&cpu64, "warren", peer.name()),
            Want::Below,
            1.0,
        ));
    }
    t.push(ratio(
        "4 KiB echo calls/s at c=64: warren ÷ raw (64 connections)".into(),
        s.ratio(&m1_key(Workload::Echo4k, 64, "calls_s"), "warren", "raw"),
        Want::AtLeast,
        1.0,
    ));
    t.push(ratio(
        "1 MiB echo MiB/s at c=1: warren ÷ raw".into(),
        s.ratio(&m1_key(Workload::Echo1m, 1, "mib_s"), "warren", "raw"),
        Want::AtLeast,
        0.6,
    ));
    t.extend(shm_targets(s));
    t.push(ratio(
        "spawn → ready → first reply p50: warren ÷ raw spawn-and-connect".into(),
        s.ratio("m4/first_reply_p50_ms", "warren", "raw"),
        Want::AtMost,
        1.2,
    ));
    let abs = |what: &str, values: Vec<f64>, want: Want, limit: f64, unit: &'static str| Target {
        what: what.to_owned(),
        values,
        want,
        limit,
        ratio: false,
        unit,
        decimals: if unit == "lines" { 0 } else { 2 },
    };
    t.push(abs(
        "graceful stop of one child p50 (child gone, socket removed)",
        s.get("m4/stop_p50_ms", "warren"),
        Want::AtMost,
        1.0,
        "ms",
    ));
    t.push(abs(
        "100 children all ready (READY=1, connected)",
        s.get("m4x100/all_ready_ms", "warren"),
        Want::AtMost,
        300.0,
        "ms",
    ));
    t.push(abs(
        "100 children all stopped (gone, sockets removed)",
        s.get("m4x100/all_stopped_ms", "warren"),
        Want::AtMost,
        100.0,
        "ms",
    ));
    t.push(ratio(
        "100 children all answering: supervisord ÷ warren".into(),
        s.ratio("m4x100/all_replied_ms", "supervisord", "warren"),
        Want::AtLeast,
        5.0,
    ));
    t.push(ratio(
        "100 children all stopped: supervisord ÷ warren".into(),
        s.ratio("m4x100/all_stopped_ms", "supervisord", "warren"),
        Want::AtLeast,
        5.0,
    ));
    t.push(abs("log lines through the host", s.get("m5/lines_s", "warren"), Want::AtLeast, 1_000_000.0, "lines/s"));
    t.push(abs("log lines lost or out of order", s.get("m5/lost", "warren"), Want::AtMost, 0.0, "lines"));
    t.push(abs(
        "log lines into files, 10 programs (`warren up`)",
        s.get("logfiles/lines_s", "warren"),
        Want::AtLeast,
        1_000_000.0,
        "lines/s",
    ));
    t.push(ratio(
        "log lines into files, 10 programs: warren up ÷ supervisord (lines/s)".into(),
        s.ratio("logfiles/lines_s", "warren", "supervisord"),
        Want::AtLeast,
        2.0,
    ));
    t.push(ratio(
        "`warren up` RSS through the flood, after warm-up: max ÷ min".into(),
        s.get("logfiles/rss_max_over_min", "warren"),
        Want::AtMost,
        1.1,
    ));
    t.push(abs(
        "warren child RSS (wb-child under a host)",
        s.get("m6/child_rss_mb", "warren"),
        Want::AtMost,
        3.0,
        "MB",
    ));
    t.push(abs(
        "host RSS with 100 children (wb-host)",
        s.get("m6/host_rss_100_mb", "warren"),
        Want::AtMost,
        20.0,
        "MB",
    ));
    t.push(abs(
        "`warren up` RSS with 100 programs",
        s.get("m6/host_rss_100_mb", "warren-up"),
        Want::AtMost,
        20.0,
        "MB",
    ));
    t
}

/// The shared-memory transport's targets (issue #19, docs/SHM.md §7).
fn shm_targets(s: &Store) -> Vec<Target> {
    let (shm, warren, raw) = (Imp::WarrenShm.name(), Imp::Warren.name(), Imp::Raw.name());
    let ratio = |what: &str, values: Vec<f64>, want: Want, limit: f64| ratio_target(what, values, want, limit);
    let same_p50 = m3_key(Pin::Same, "p50_us");
    let mut t = vec![
        ratio("tiny call p50, pinned to one CPU: warren-shm ÷ raw", s.ratio(&same_p50, shm, raw), Want::AtMost, 0.6),
        ratio(
            "tiny call p50, pinned to one CPU: warren-shm ÷ warren (must not get slower)",
            s.ratio(&same_p50, shm, warren),
            Want::AtMost,
            1.0,
        ),
        Target {
            what: "tiny call p50, split across two CPUs: warren-shm".into(),
            values: s.get(&m3_key(Pin::Split, "p50_us"), shm),
            want: Want::AtMost,
            limit: 2.0,
            ratio: false,
            unit: "µs",
            decimals: 1,
        },
        ratio(
            "1 MiB echo MiB/s at c=1: warren-shm ÷ raw",
            s.ratio(&m1_key(Workload::Echo1m, 1, "mib_s"), shm, raw),
            Want::AtLeast,
            2.0,
        ),
        ratio(
            "tiny calls/s at c=64: warren-shm ÷ warren",
            s.ratio(&m1_key(Workload::Tiny, 64, "calls_s"), shm, warren),
            Want::AtLeast,
            1.0,
        ),
    ];
    for callers in [1, 64] {
        t.push(ratio(
            &format!("CPU per tiny call at c={callers}: warren-shm ÷ warren"),
            s.ratio(&m1_key(Workload::Tiny, callers, "cpu_us"), shm, warren),
            Want::AtMost,
            1.0,
        ));
    }
    t
}
