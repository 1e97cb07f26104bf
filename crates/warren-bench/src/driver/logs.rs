//! M5: a child's log lines through warren and through supervisord.

use std::path::Path;
use std::time::{Duration, Instant};

use super::runner::Runner;
use super::supervisor::{Program, Supervisord};
use crate::proc;

impl Runner<'_> {
    pub(super) fn logs_warren(&mut self, round: usize) {
        match self.host(&["logs".into(), self.child(), self.config.log_lines.to_string()]) {
            Ok(v) => {
                let lines = v["lines"].as_f64().unwrap_or(f64::NAN);
                let secs = v["first_to_last_ns"].as_f64().unwrap_or(f64::NAN) / 1e9;
                let s = &mut self.store;
                s.put("m5/lines_s", "warren", round, (lines - 1.0) / secs);
                s.put("m5/cpu_ns_line", "warren", round, v["host_cpu_ns"].as_f64().unwrap_or(f64::NAN) / lines);
                let lost = v["lost"].as_f64().unwrap_or(f64::NAN) + v["out_of_order"].as_f64().unwrap_or(f64::NAN);
                s.put("m5/lost", "warren", round, lost);
                eprintln!("wb-run: r{round} M5 warren: {:.0} lines/s, lost {lost}", (lines - 1.0) / secs);
            }
            Err(err) => self.fail(format!("round {round} M5 warren"), &err),
        }
    }

    pub(super) fn logs_supervisord(&mut self, round: usize, binary: &Path) {
        let lines = self.config.log_lines;
        let result = (|| -> anyhow::Result<()> {
            let dir = self.dir.join("svlog");
            let log = dir.join("logger.out");
            let programs = [Program {
                name: "logger".into(),
                command: format!("{} log {lines}", self.child()),
                stdout_logfile: Some(log.clone()),
            }];
            let sv = Supervisord::start(binary, &dir, &programs)?;
            let expected = lines * 100;
            let cpu0 = proc::process_cpu_ns(sv.pid());
            sv.start_process("logger")?;
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut first = None;
            let mut last_size = 0;
            let mut last_change = Instant::now();
            let (t_last, cpu_last) = loop {
                let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
                let now = Instant::now();
                if size > 0 && first.is_none() {
                    first = Some(now);
                }
                if size != last_size {
                    (last_size, last_change) = (size, now);
                }
                if size >= expected || now > deadline || (size > 0 && now - last_change > Duration::from_secs(5)) {
                    break (last_change, proc::process_cpu_ns(sv.pid()));
                }
                std::thread::sleep(Duration::from_micros(200));
            };
            sv.shutdown()?;
            let text = std::fs::read(&log).unwrap_or_default();
            let received = text.split(|&b| b == b'\n').filter(|l| l.len() == 99).count() as u64;
            let secs = (t_last - first.unwrap_or(t_last)).as_secs_f64();
            let s = &mut self.store;
            s.put("m5/lines_s", "supervisord", round, (received.max(1) - 1) as f64 / secs);
            s.put(
                "m5/cpu_ns_line",
                "supervisord",
                round,
                cpu_last.saturating_sub(cpu0) as f64 / received.max(1) as f64,
            );
            s.put("m5/lost", "supervisord", round, lines.saturating_sub(received) as f64);
            eprintln!(
                "wb-run: r{round} M5 supervisord: {:.0} lines/s, received {received}",
                (received.max(1) - 1) as f64 / secs
            );
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        })();
        if let Err(err) = result {
            self.fail(format!("round {round} M5 supervisord"), &err);
        }
    }
}
