//! Log files under a flood (issue #12 point 6): `warren up` and supervisord run the same ten
//! `wb-child log N` programs, each program's stdout going into its file; lines/s and CPU per
//! line for both in the same round, `up`'s resident memory sampled through the flood, and the
//! time `warren logs -n 100000 NAME` takes to print.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use super::process::KillOnDrop;
use super::runner::Runner;
use super::supervisor::{Program, Supervisord};
use crate::proc;

/// How many programs flood at once.
pub const PROGRAMS: usize = 10;

/// How many lines `warren logs -n` is asked for.
pub const TAIL_LINES: u64 = 100_000;

/// The share of the flood left out of the memory figure, in percent: allocators and buffers
/// settle first.
pub const WARM_UP_PERCENT: u64 = 10;

/// How long no program's file may grow before the flood counts as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(30);

/// Lines each program prints: 10 × 1,000,000 is the 10-million-line flood of the issue.
pub fn lines_per_program(quick: bool) -> u64 {
    if quick { 20_000 } else { 1_000_000 }
}

/// What one flood came to.
struct Flood {
    seconds: f64,
    cpu_ns: u64,
}

impl Runner<'_> {
    /// The floods, in an order that rotates from round to round.
    pub(super) fn logs_files(&mut self, round: usize) {
        let supervisord = self.config.supervisord.clone();
        for k in 0..3 {
            match ((k + round) % 3, &supervisord) {
                (0, _) => self.logs_files_warren(round),
                (1, Some(sv)) => self.logs_files_supervisord(round, sv),
                (2, _) => self.logs_files_direct(round),
                _ => {}
            }
        }
    }

    /// The ceiling of any supervisor: the same programs with none, each one's stdout a file of
    /// its own, so the programs write their files themselves (no pipe, no second process).
    fn logs_files_direct(&mut self, round: usize) {
        let lines = lines_per_program(self.config.quick);
        let dir = self.dir.join("directflood");
        let result = (|| -> anyhow::Result<f64> {
            std::fs::create_dir_all(&dir)?;
            let start = Instant::now();
            let mut children = Vec::new();
            for i in 0..PROGRAMS {
                let file = std::fs::File::create(dir.join(format!("c{i}.out")))?;
                let child = Command::new(self.child())
                    .args(["log", &lines.to_string()])
                    .stdin(Stdio::null())
                    .stdout(file)
                    .stderr(Stdio::null())
                    .spawn();
                children.push(child);
            }
            // Every child spawned is waited for, whatever failed.
            let statuses: Vec<_> = children.into_iter().map(|c| c.and_then(|mut c| c.wait())).collect();
            let seconds = start.elapsed().as_secs_f64();
            for status in statuses {
                let status = status.context("a directly logging wb-child")?;
                ensure!(status.success(), "a directly logging wb-child exited with {status}");
            }
            Ok(seconds)
        })();
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Ok(seconds) => {
                let rate = (PROGRAMS as u64 * lines) as f64 / seconds;
                self.store.put("logfiles/lines_s", "direct", round, rate);
                eprintln!("wb-run: r{round} log files, no supervisor (stdout a file): {rate:.0} lines/s");
            }
            Err(err) => self.fail(format!("round {round} log files, no supervisor"), &err),
        }
    }

    fn logs_files_warren(&mut self, round: usize) {
        let lines = lines_per_program(self.config.quick);
        let dir = self.dir.join("upflood");
        let result = self.flood_warren(&dir, lines);
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Ok((flood, rss, tail_secs)) => {
                let total = (PROGRAMS as u64 * lines) as f64;
                let s = &mut self.store;
                s.put("logfiles/lines_s", "warren", round, total / flood.seconds);
                s.put("logfiles/cpu_ns_line", "warren", round, flood.cpu_ns as f64 / total);
                let (lo, hi) = rss;
                s.put("logfiles/rss_min_mb", "warren", round, lo as f64 * 1.024 / 1000.0);
                s.put("logfiles/rss_max_mb", "warren", round, hi as f64 * 1.024 / 1000.0);
                s.put("logfiles/rss_max_over_min", "warren", round, hi as f64 / lo.max(1) as f64);
                s.put("logfiles/tail_s", "warren", round, tail_secs);
                eprintln!(
                    "wb-run: r{round} log files warren up: {:.0} lines/s, {:.0} ns CPU/line, RSS {lo}–{hi} KiB, \
                     logs -n {TAIL_LINES}: {tail_secs:.2} s",
                    total / flood.seconds,
                    flood.cpu_ns as f64 / total
                );
            }
            Err(err) => self.fail(format!("round {round} log files warren up"), &err),
        }
    }

    /// `up` with the flooding programs and an idle one (so that it stays up for `logs -n`).
    /// Returns the flood, `up`'s least and most RSS after the warm-up (KiB), and how long
    /// `warren logs -n` took.
    fn flood_warren(&self, dir: &Path, lines: u64) -> anyhow::Result<(Flood, (u64, u64), f64)> {
        let warren = self.config.bin.join("warren");
        ensure!(warren.exists(), "{} is not built", warren.display());
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut toml = format!("logs_dir = {:?}\n", logs.display().to_string());
        for i in 0..PROGRAMS {
            let _ = writeln!(
                toml,
                "[programs.c{i}]\ncommand = {:?}\nargs = [\"log\", \"{lines}\"]\nrestart = \"never\"\n",
                self.child()
            );
        }
        toml.push_str("[programs.idle]\ncommand = \"sleep\"\nargs = [\"3600\"]\n");
        let file = dir.join("warren.toml");
        std::fs::write(&file, toml)?;
        let env = |cmd: &mut Command| {
            cmd.current_dir(dir)
                .env("WARREN_CONTROL", dir.join("ctl.sock"))
                .env("XDG_STATE_HOME", dir.join("state"))
                .env("NO_COLOR", "1");
        };
        let mut up = Command::new(&warren);
        env(&mut up);
        let start = Instant::now();
        let mut up = up
            .args(["up", "-f"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let guard = KillOnDrop(up.id());
        let files: Vec<PathBuf> = (0..PROGRAMS).map(|i| logs.join(format!("c{i}.log"))).collect();
        let mut rss = Vec::new();
        let seconds = wait_for_last(&files, lines, last_record_seq, |done| {
            if done * 100.0 >= WARM_UP_PERCENT as f64
                && let Some(kib) = proc::rss_kib(up.id())
            {
                rss.push(kib);
            }
        })?
        .duration_since(start)
        .as_secs_f64();
        let cpu_ns = stat_cpu_ns(up.id()).context("up's CPU time")?;
        let low = rss.iter().copied().min().context("no RSS sample after the warm-up")?;
        let high = rss.iter().copied().max().unwrap_or(low);

        let mut tail = Command::new(&warren);
        env(&mut tail);
        let asked = TAIL_LINES.min(lines);
        let begun = Instant::now();
        let out = tail.args(["logs", "-n", &asked.to_string(), "c0"]).stderr(Stdio::inherit()).output()?;
        let tail_secs = begun.elapsed().as_secs_f64();
        ensure!(out.status.success(), "`warren logs -n {asked} c0` exited with {}", out.status);
        let printed = out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
        ensure!(printed == asked, "`warren logs -n {asked} c0` printed {printed} lines");
        let last = out.stdout.split(|&b| b == b'\n').rfind(|l| !l.is_empty()).unwrap_or_default();
        // One program: its lines without a prefix.
        let wanted = format!("{:09} ", lines - 1);
        ensure!(
            String::from_utf8_lossy(last).starts_with(&wanted),
            "`warren logs -n` ends with {:?}, not line {}",
            String::from_utf8_lossy(last),
            lines - 1
        );

        let mut down = Command::new(&warren);
        env(&mut down);
        let status = down.arg("down").stdout(Stdio::null()).status()?;
        ensure!(status.success(), "`warren down` exited with {status}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while up.try_wait()?.is_none() {
            ensure!(Instant::now() < deadline, "`warren up` still running 30 s after `warren down`");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::mem::forget(guard);
        Ok((Flood { seconds, cpu_ns }, (low, high), tail_secs))
    }

    fn logs_files_supervisord(&mut self, round: usize, binary: &Path) {
        let lines = lines_per_program(self.config.quick);
        let dir = self.dir.join("svflood");
        let result = (|| -> anyhow::Result<Flood> {
            let files: Vec<PathBuf> = (0..PROGRAMS).map(|i| dir.join(format!("c{i}.out"))).collect();
            let programs: Vec<Program> = files
                .iter()
                .enumerate()
                .map(|(i, file)| Program {
                    name: format!("c{i}"),
                    command: format!("{} log {lines}", self.child()),
                    stdout_logfile: Some(file.clone()),
                })
                .collect();
            let sv = Supervisord::start(binary, &dir, &programs)?;
            let cpu0 = stat_cpu_ns(sv.pid()).context("supervisord's CPU time")?;
            let start = Instant::now();
            sv.start_all()?;
            let end = wait_for_last(&files, lines, last_plain_seq, |_| {})?;
            let cpu_ns = stat_cpu_ns(sv.pid()).context("supervisord's CPU time")?.saturating_sub(cpu0);
            sv.shutdown()?;
            Ok(Flood { seconds: end.duration_since(start).as_secs_f64(), cpu_ns })
        })();
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Ok(flood) => {
                let total = (PROGRAMS as u64 * lines) as f64;
                let s = &mut self.store;
                s.put("logfiles/lines_s", "supervisord", round, total / flood.seconds);
                s.put("logfiles/cpu_ns_line", "supervisord", round, flood.cpu_ns as f64 / total);
                eprintln!(
                    "wb-run: r{round} log files supervisord: {:.0} lines/s, {:.0} ns CPU/line",
                    total / flood.seconds,
                    flood.cpu_ns as f64 / total
                );
            }
            Err(err) => self.fail(format!("round {round} log files supervisord"), &err),
        }
    }
}

/// Polls `files` until each one's last line is number `lines` (by `last`); calls `sample` with
/// the share of lines done at every poll. Returns when the last file was complete.
fn wait_for_last(
    files: &[PathBuf],
    lines: u64,
    last: fn(&Path) -> Option<u64>,
    mut sample: impl FnMut(f64),
) -> anyhow::Result<Instant> {
    let mut done = vec![0u64; files.len()];
    let mut moved = Instant::now();
    loop {
        for (file, done) in files.iter().zip(&mut done) {
            if *done < lines
                && let Some(n) = last(file)
                && n > *done
            {
                *done = n;
                moved = Instant::now();
            }
        }
        let total: u64 = done.iter().sum();
        if total >= lines * files.len() as u64 {
            return Ok(Instant::now());
        }
        ensure!(
            moved.elapsed() < STUCK_AFTER,
            "the flood stopped at {total} of {} lines (files: {})",
            lines * files.len() as u64,
            files.first().map_or_else(String::new, |f| f.display().to_string())
        );
        sample(total as f64 / (lines * files.len() as u64) as f64);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last whole line of `file` (a line is well under 4 KiB here).
fn last_line(file: &Path) -> Option<String> {
    let mut f = std::fs::File::open(file).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    text.strip_suffix('\n')?.rsplit('\n').next().map(str::to_owned)
}

/// The sequence number of a warren log file's last record (records count from 1).
fn last_record_seq(file: &Path) -> Option<u64> {
    let line = last_line(file)?;
    line.split_once(" | ")?.0.rsplit(' ').next()?.parse().ok()
}

/// How many lines of `wb-child log` a plain file holds, from its last (they count from 0).
fn last_plain_seq(file: &Path) -> Option<u64> {
    let line = last_line(file)?;
    line.get(..9)?.parse::<u64>().ok().map(|n| n + 1)
}

/// User + system CPU time of `pid` over its whole life, exited threads included, from
/// `/proc/PID/stat` (in USER_HZ, 100 per second on Linux).
fn stat_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10_000_000)
}
