//! M1 and M3: closed-loop cells, a server process and a client process each.

use std::time::Duration;

use anyhow::{Context as _, ensure};

use super::imp::{Imp, Pin};
use super::process::{ServerProc, command, run_to_end};
use super::runner::{Runner, rotated};
use super::store::{m1_key, m3_key};
use crate::closed_loop::{Args, LoopReport};
use crate::proc;
use crate::workload::Workload;

impl Runner<'_> {
    /// One closed-loop cell: a server process, a client process, the server stopped.
    pub(super) fn cell(
        &mut self,
        imp: Imp,
        workload: Workload,
        callers: usize,
        pin: Pin,
    ) -> anyhow::Result<(LoopReport, u64)> {
        let socket = self.socket(&format!("{}.sock", imp.name()));
        let (server_cpu, client_cpu) = pin.cpus();
        let server = ServerProc::start(&imp.server(self.config, &socket), server_cpu, &socket)?;
        let args = Args {
            implementation: imp.client(self.config).1.to_owned(),
            socket: socket.clone(),
            workload,
            callers,
            warmup: self.config.warmup,
            window: self.config.window,
            server_pid: server.pid(),
            transport: imp.client_transport(),
        };
        let (program, _) = imp.client(self.config);
        let mut argv = vec![program.display().to_string()];
        argv.extend(args.to_argv());
        let bound = self.config.warmup + self.config.window + Duration::from_secs(60);
        let line = run_to_end(command(&argv, client_cpu), bound).with_context(|| format!("{} client", imp.name()));
        let rss = proc::rss_kib(server.pid()).unwrap_or(0);
        let clean = server.stop();
        let report: LoopReport = serde_json::from_str(&line?).context("the client's report")?;
        ensure!(
            report.errors == 0,
            "{} calls failed, first: {}",
            report.errors,
            report.first_error.unwrap_or_default()
        );
        // A quick (smoke) run's window may be too short for the slowest peers' 1 MiB calls.
        ensure!(report.calls > 0 || self.config.quick, "no call completed in the window");
        ensure!(clean, "the server did not stop cleanly (exit code, or socket left)");
        Ok((report, rss))
    }

    pub(super) fn m1(&mut self, round: usize, others: &mut Vec<f64>) {
        for workload in Workload::ALL {
            for &callers in &self.config.callers.clone() {
                for imp in rotated(&self.imps, round) {
                    if !imp.in_m1_cell(workload, callers) {
                        continue;
                    }
                    let what = format!("M1 {} c={callers} {}", workload.name(), imp.name());
                    match self.cell(imp, workload, callers, Pin::None) {
                        Ok((r, rss)) => {
                            let key = |m: &str| m1_key(workload, callers, m);
                            let s = &mut self.store;
                            s.put(&key("calls_s"), imp.name(), round, r.calls_per_sec());
                            s.put(&key("p50_us"), imp.name(), round, r.p50_ns as f64 / 1e3);
                            s.put(&key("p99_us"), imp.name(), round, r.p99_ns as f64 / 1e3);
                            s.put(&key("cpu_us"), imp.name(), round, r.cpu_per_call_ns() / 1e3);
                            s.put(&key("calls"), imp.name(), round, r.calls as f64);
                            if workload != Workload::Tiny {
                                s.put(&key("mib_s"), imp.name(), round, r.mib_per_sec());
                            }
                            if workload == Workload::Tiny && callers == 1 {
                                s.put("m6/server_rss_mb", imp.name(), round, rss as f64 * 1.024 / 1000.0);
                            }
                            others.push(r.others_cpus());
                            eprintln!(
                                "wb-run: r{round} {what}: {:.0} calls/s p50 {:.1} µs cpu {:.2} µs/call (others {:.2} CPU)",
                                r.calls_per_sec(),
                                r.p50_ns as f64 / 1e3,
                                r.cpu_per_call_ns() / 1e3,
                                r.others_cpus()
                            );
                        }
                        Err(err) => self.fail(format!("round {round} {what}"), &err),
                    }
                }
            }
        }
    }

    pub(super) fn m3(&mut self, round: usize, others: &mut Vec<f64>) {
        for pin in [Pin::Same, Pin::Split] {
            for imp in rotated(&self.imps, round) {
                let what = format!("M3 {pin:?} {}", imp.name());
                match self.cell(imp, Workload::Tiny, 1, pin) {
                    Ok((r, _)) => {
                        let s = &mut self.store;
                        s.put(&m3_key(pin, "p50_us"), imp.name(), round, r.p50_ns as f64 / 1e3);
                        s.put(&m3_key(pin, "p99_us"), imp.name(), round, r.p99_ns as f64 / 1e3);
                        s.put(&m3_key(pin, "calls_s"), imp.name(), round, r.calls_per_sec());
                        s.put(&m3_key(pin, "cpu_us"), imp.name(), round, r.cpu_per_call_ns() / 1e3);
                        others.push(r.others_cpus());
                        eprintln!("wb-run: r{round} {what}: p50 {:.1} µs", r.p50_ns as f64 / 1e3);
                    }
                    Err(err) => self.fail(format!("round {round} {what}"), &err),
                }
            }
        }
    }
}
