//! The log files section: `warren up` and supervisord under the same flood.

use std::fmt::Write as _;

use super::format::{cell, ratio_cell};
use crate::driver::logs_files::{PROGRAMS, TAIL_LINES, WARM_UP_PERCENT, lines_per_program};
use crate::driver::{Config, Store};

/// The section, or nothing when the run did not measure it.
pub(super) fn render(config: &Config, s: &Store, w: &mut String) {
    if s.get("logfiles/lines_s", "warren").is_empty() && s.get("logfiles/lines_s", "supervisord").is_empty() {
        return;
    }
    let lines = lines_per_program(config.quick);
    let _ = writeln!(
        w,
        "\n### Log files under a flood (issue #12)\n\n{PROGRAMS} programs, each `wb-child log {lines}` (100-byte \
         lines as fast as it can), {} lines in all. **`warren up`**: each program's lines into its log file \
         (records with time, pid, stream and sequence number; default rotation, 10 MiB × 5), `up`'s own stdout to \
         `/dev/null`; done when every file's last record is its program's last line. **supervisord**: the same \
         programs, each `stdout_logfile` a file (raw lines, no rotation); done likewise. **No supervisor**: the \
         same programs started by the driver with their stdout opened on a file; done when all have exited. \
         lines/s from the start \
         (`up` launched / `startAllProcesses`) to the last line on disk; CPU = the supervisor's user + system \
         time per line. `warren ×` is per round. RSS: `up`'s `VmRSS` every 20 ms after the first {}% of the lines.\n",
        PROGRAMS as u64 * lines,
        WARM_UP_PERCENT
    );
    let _ = writeln!(w, "| | lines/s | warren × (lines/s) | CPU ns/line | supervisord ÷ warren (CPU/line) |");
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: |");
    let _ = writeln!(
        w,
        "| **`warren up`** | {} | — | {} | {} |",
        cell(&s.get("logfiles/lines_s", "warren"), 0),
        cell(&s.get("logfiles/cpu_ns_line", "warren"), 0),
        ratio_cell(&s.ratio("logfiles/cpu_ns_line", "supervisord", "warren")),
    );
    let _ = writeln!(
        w,
        "| supervisord | {} | {} | {} | — |",
        cell(&s.get("logfiles/lines_s", "supervisord"), 0),
        ratio_cell(&s.ratio("logfiles/lines_s", "warren", "supervisord")),
        cell(&s.get("logfiles/cpu_ns_line", "supervisord"), 0),
    );
    let _ = writeln!(
        w,
        "| no supervisor: each program's stdout is its file (the ceiling) | {} | {} | — | — |",
        cell(&s.get("logfiles/lines_s", "direct"), 0),
        ratio_cell(&s.ratio("logfiles/lines_s", "warren", "direct")),
    );
    let _ = writeln!(
        w,
        "\n| `warren up` | RSS min MB | RSS max MB | max ÷ min | `warren logs -n {TAIL_LINES} c0` s |\n\
         | --- | ---: | ---: | ---: | ---: |\n| through the flood | {} | {} | {} | {} |",
        cell(&s.get("logfiles/rss_min_mb", "warren"), 2),
        cell(&s.get("logfiles/rss_max_mb", "warren"), 2),
        ratio_cell(&s.get("logfiles/rss_max_over_min", "warren")),
        cell(&s.get("logfiles/tail_s", "warren"), 3),
    );
}
