//! Under the targets: the shared-memory cells side by side (issue #19, docs/SHM.md §7), what is
//! transport (shm-floor ÷ raw) and what is warren's own work on each transport.

use std::fmt::Write as _;

use super::format::ratio_cell;
use crate::driver::{Imp, Pin, Store, m1_key, m3_key};
use crate::workload::Workload;

/// The cells the shared-memory pair runs in: what the row says, the figure's key and how it
/// reads.
fn cells() -> Vec<(String, String, &'static str)> {
    let mut cells = vec![
        ("M3 one CPU, tiny, c=1".to_owned(), m3_key(Pin::Same, "p50_us"), "p50"),
        ("M3 two CPUs, tiny, c=1".to_owned(), m3_key(Pin::Split, "p50_us"), "p50"),
        ("M1 unpinned, tiny, c=1".to_owned(), m1_key(Workload::Tiny, 1, "p50_us"), "p50"),
    ];
    for callers in [16, 64] {
        cells.push((format!("M1 unpinned, tiny, c={callers}"), m1_key(Workload::Tiny, callers, "calls_s"), "calls/s"));
    }
    cells.push(("M1 unpinned, 4 KiB echo, c=64".to_owned(), m1_key(Workload::Echo4k, 64, "calls_s"), "calls/s"));
    cells.push(("M1 unpinned, 1 MiB echo, c=1".to_owned(), m1_key(Workload::Echo1m, 1, "mib_s"), "MiB/s"));
    cells
}

/// The section, or nothing if neither shared-memory implementation was measured.
pub(super) fn section(s: &Store) -> String {
    let (floor, shm, raw, warren) = (Imp::ShmFloor.name(), Imp::WarrenShm.name(), Imp::Raw.name(), Imp::Warren.name());
    let rows: Vec<String> = cells()
        .into_iter()
        .filter_map(|(what, key, figure)| {
            let ratios = [
                s.ratio(&key, floor, raw),
                s.ratio(&key, shm, warren),
                s.ratio(&key, warren, raw),
                s.ratio(&key, shm, floor),
            ];
            if ratios[0].is_empty() && ratios[1].is_empty() {
                return None;
            }
            let cells: Vec<String> = ratios.iter().map(|r| ratio_cell(r)).collect();
            Some(format!("| {what} | {figure} | {} |", cells.join(" | ")))
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\nShared memory (issue #19, docs/SHM.md §7), per cell, ratios within each round: **shm-floor ÷ raw** is \
         what the transport alone changes (the same frames over the rings instead of the socket; the floor \
         includes tokio's wake-up path, as warren's connection does, but no framing of calls and no dispatch); \
         warren ÷ raw and warren-shm ÷ shm-floor are warren's own work on each transport. A p50 below 1× is \
         faster; calls/s and MiB/s above 1× are.\n"
    );
    let _ = writeln!(
        o,
        "| cell | figure | shm-floor ÷ raw | warren-shm ÷ warren | warren ÷ raw | warren-shm ÷ shm-floor |"
    );
    let _ = writeln!(o, "| --- | --- | ---: | ---: | ---: | ---: |");
    for row in rows {
        let _ = writeln!(o, "{row}");
    }
    o
}
