//! A run: every round, every measurement in turn, then the report.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::Config;
use super::imp::Imp;
use super::process::run_to_end;
use super::report;
use super::store::{RoundInfo, Store};
use crate::proc;

/// One run's state; its measurements (`cells`, `lifecycle`, `logs`) are methods of their own modules.
pub(super) struct Runner<'a> {
    pub(super) config: &'a Config,
    pub(super) dir: PathBuf,
    pub(super) imps: Vec<Imp>,
    pub(super) store: Store,
}

impl Runner<'_> {
    pub(super) fn socket(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(super) fn fail(&mut self, what: String, err: &anyhow::Error) {
        let message = format!("{what}: {err:#}");
        eprintln!("wb-run: FAILED {message}");
        self.store.failures.push(message);
    }

    pub(super) fn host(&self, args: &[String]) -> anyhow::Result<Value> {
        let mut cmd = Command::new(self.config.bin.join("wb-host"));
        cmd.args(args);
        let line = run_to_end(cmd, Duration::from_secs(180))?;
        Ok(serde_json::from_str(&line)?)
    }

    pub(super) fn child(&self) -> String {
        self.config.bin.join("wb-child").display().to_string()
    }
}

/// `items` rotated left by `round`: every implementation goes first in some round.
pub(super) fn rotated<T: Copy>(items: &[T], round: usize) -> Vec<T> {
    let n = items.len().max(1);
    (0..items.len()).map(|i| items[(i + round) % n]).collect()
}

/// The `p` quantile of an array of nanoseconds, in ms.
pub(super) fn quantile_ms(values: &Value, p: f64) -> Option<f64> {
    let mut xs: Vec<f64> = values.as_array()?.iter().filter_map(Value::as_f64).collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((p * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    Some(xs[rank - 1] / 1e6)
}

/// Runs everything `config` asks for and writes the report. Returns the number of failures.
pub fn run(config: &Config) -> anyhow::Result<usize> {
    let dir = std::env::temp_dir().join(format!("wb-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The shared-memory pair beside raw and warren (docs/SHM.md §7); M1 runs it in its cells only.
    let mut imps = vec![Imp::Raw, Imp::ShmFloor, Imp::Warren, Imp::WarrenShm, Imp::Tarpc];
    let mut notes = Vec::new();
    if config.go.join("netrpc-server").exists() && config.go.join("netrpc-client").exists() {
        imps.extend([Imp::GoGob, Imp::GoJson, Imp::WarrenGob]);
    } else {
        notes.push(format!("Go peers skipped: no binaries in {}", config.go.display()));
    }
    if config.supervisord.is_none() {
        notes.push("supervisord comparisons skipped: no supervisord given".to_owned());
    }
    let mut runner = Runner { config, dir: dir.clone(), imps, store: Store::default() };
    runner.store.notes = notes;
    let env = report::Environment::collect(config);
    for round in 0..config.rounds {
        let started = Instant::now();
        let mut info = RoundInfo { load_start: proc::loadavg(), ..RoundInfo::default() };
        eprintln!("wb-run: round {} of {} (load {:?})", round + 1, config.rounds, info.load_start);
        let mut others = Vec::new();
        if config.runs("m1") {
            runner.m1(round, &mut others);
        }
        if config.runs("m3") {
            runner.m3(round, &mut others);
        }
        if config.runs("gob") {
            runner.gob(round, &mut others);
        }
        if config.runs("m4") {
            runner.m4(round);
        }
        if config.runs("m4") || config.runs("m6") {
            for &n in &config.many {
                // Interleaved, the order rotating from round to round.
                for k in 0..4 {
                    match (k + round) % 4 {
                        0 => runner.many_warren(round, n),
                        1 => runner.many_plain(round, n),
                        2 => runner.many_warren_up(round, n),
                        _ => {
                            if let Some(sv) = &config.supervisord {
                                runner.many_supervisord(round, n, sv);
                            }
                        }
                    }
                }
            }
        }
        if config.runs("m5") {
            if round % 2 == 1
                && let Some(sv) = &config.supervisord
            {
                runner.logs_supervisord(round, sv);
            }
            runner.logs_warren(round);
            if round % 2 == 0
                && let Some(sv) = &config.supervisord
            {
                runner.logs_supervisord(round, sv);
            }
        }
        if config.runs("logfiles") {
            runner.logs_files(round);
        }
        info.load_end = proc::loadavg();
        info.others_cpus = others;
        info.seconds = started.elapsed().as_secs_f64();
        runner.store.rounds.push(info);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let store = runner.store;
    if let Some(json) = &config.json {
        std::fs::write(json, serde_json::to_string_pretty(&store)?)?;
    }
    let markdown = report::render(config, &env, &store);
    report::splice_into(&config.out, &markdown)?;
    eprintln!("wb-run: wrote {}", config.out.display());
    Ok(store.failures.len())
}
