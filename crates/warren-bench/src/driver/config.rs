//! What `wb-run` is asked to run: its command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub quick: bool,
    pub rounds: usize,
    pub warmup: Duration,
    pub window: Duration,
    pub callers: Vec<usize>,
    pub spawns: usize,
    pub many: Vec<usize>,
    pub log_lines: u64,
    /// Where the Rust binaries are (`target/bench-release`).
    pub bin: PathBuf,
    /// Where the Go binaries are (`target/bench-go`); Go peers are skipped if absent.
    pub go: PathBuf,
    /// supervisord from the venv; its comparisons are skipped if absent.
    pub supervisord: Option<PathBuf>,
    /// The Markdown file whose generated section is (re)written.
    pub out: PathBuf,
    /// Every sample, as JSON.
    pub json: Option<PathBuf>,
    /// Which parts to run: m1 (with m2), m3, m4, m5, m6, gob, logfiles.
    pub only: Vec<String>,
    pub command_line: String,
}

impl Config {
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Config> {
        let args: Vec<String> = args.into_iter().collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut config = Config {
            quick,
            rounds: if quick { 1 } else { 3 },
            warmup: Duration::from_millis(if quick { 50 } else { 300 }),
            window: Duration::from_millis(if quick { 100 } else { 1000 }),
            callers: vec![1, 16, 64],
            spawns: if quick { 5 } else { 50 },
            many: if quick { vec![10] } else { vec![10, 100] },
            log_lines: if quick { 20_000 } else { 1_000_000 },
            bin: PathBuf::from("target/bench-release"),
            go: PathBuf::from("target/bench-go"),
            supervisord: None,
            out: PathBuf::from("BENCHMARKS.md"),
            json: None,
            only: vec!["m1".into(), "m3".into(), "m4".into(), "m5".into(), "m6".into(), "logfiles".into()],
            // bench/run-all says how it was invoked; its own flags (paths) are not news.
            command_line: std::env::var("WB_COMMAND")
                .unwrap_or_else(|_| format!("wb-run {}", args.join(" ")))
                .trim()
                .to_owned(),
        };
        // Go's gob against Go's own server (#16), unless `--only` says otherwise.
        config.only.push("gob".into());
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            if flag == "--quick" {
                continue;
            }
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            let number = || value.parse::<u64>().with_context(|| format!("{flag} {value}"));
            match flag.as_str() {
                "--rounds" => config.rounds = number()? as usize,
                "--warmup-ms" => config.warmup = Duration::from_millis(number()?),
                "--window-ms" => config.window = Duration::from_millis(number()?),
                "--spawns" => config.spawns = number()? as usize,
                "--log-lines" => config.log_lines = number()?,
                "--bin" => config.bin = value.into(),
                "--go" => config.go = value.into(),
                "--supervisord" => config.supervisord = Some(value.into()).filter(|p: &PathBuf| p.exists()),
                "--out" => config.out = value.into(),
                "--json" => config.json = Some(value.into()),
                "--only" => config.only = value.split(',').map(str::to_owned).collect(),
                other => bail!("unknown flag {other}"),
            }
        }
        // Absolute, since some programs run with another working directory.
        for dir in [&mut config.bin, &mut config.go] {
            if let Ok(absolute) = std::fs::canonicalize(&*dir) {
                *dir = absolute;
            }
        }
        Ok(config)
    }

    pub(super) fn runs(&self, part: &str) -> bool {
        self.only.iter().any(|p| p == part)
    }
}
