//! `warren up -d`: the instance runs in the background, in a session of its own (no
//! controlling terminal, so closing the terminal does not reach it, and SIGHUP is free to mean
//! "reload", as for supervisord and nginx).
//!
//! The command re-executes itself (`up --detached-child`) rather than forking a process that
//! already runs threads. The child's stdin and stdout are /dev/null; its stderr is a pipe back
//! to the command until every program is up. Whatever goes wrong before then (an invalid file,
//! an instance already running, a program that failed to start) is written there, and the
//! child exits with its code, which the command passes on. Once everything is up the child
//! writes [`UP`] and points its stderr at its own log: the command prints how to follow and
//! stop the instance, and exits 0. (A line, not the end of the pipe: the host's watchdog is
//! forked with every descriptor, the pipe's too, and holds it as long as the instance runs.) Programs' lines go to their log files (`warren logs`);
//! warren's own lines go to `warren.log` in the instance's state directory, beside `logs/`,
//! rotated at [`OWN_LOG_BYTES`].

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::cli::UpOptions;
use crate::exit;
use crate::terminal::Terminal;

/// Past this size the detached instance's own log is moved to `….log.1` (replacing the one
/// before) and started again: at most twice this on disk.
pub const OWN_LOG_BYTES: u64 = 4 << 20;

/// The line that says "every program is up" on the pipe.
const UP: &str = "\u{1}warren: every program is up";

/// Where a detached instance for `instance_dir` writes its own lines: its state directory,
/// beside its programs' `logs/` (unless `logs_dir` put those elsewhere).
pub fn own_log(instance_dir: &Path) -> PathBuf {
    crate::instance::state_dir(instance_dir).join("warren.log")
}

/// The command's side: starts the child and waits until it is up or has ended.
pub fn start(file: Option<&Path>, options: &UpOptions, instance_dir: &Path) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("cannot find the warren executable to run in the background")?;
    let log = own_log(instance_dir);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut command = Command::new(&exe);
    command.arg("up").arg("--detached-child");
    match file {
        Some(file) => command.arg("--file").arg(std::path::absolute(file).context("cannot resolve the file's path")?),
        None => command.arg("--example"),
    };
    if options.abort_on_exit {
        command.arg("--abort-on-exit");
    }
    if let Some(name) = &options.exit_code_from {
        command.arg("--exit-code-from").arg(name);
    }
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("cannot start {}", exe.display()))?;
    // Relayed as it comes, until the child says it is up or ends (the pipe ends with it).
    let mut up = false;
    if let Some(pipe) = child.stderr.take() {
        for line in BufReader::new(pipe).lines() {
            match line {
                Ok(line) if line == UP => {
                    up = true;
                    break;
                }
                Ok(line) => eprintln!("{line}"),
                Err(_) => break,
            }
        }
    }
    if !up {
        // It ended before it was up; what it said was relayed above.
        let status = child.wait().context("cannot wait for the background instance")?;
        return Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(exit::PROGRAM_FAILED));
    }
    let target = match file {
        Some(file) if !found_from_here(file) => {
            // Resolved, so a `-f ../warren.toml` is shown as the path it means.
            let file = file.canonicalize().or_else(|_| std::path::absolute(file))?;
            format!(" --file {}", shell_word(&file.display().to_string()))
        }
        _ => String::new(),
    };
    println!("warren: every program is up; running in the background (pid {})", child.id());
    println!("  follow it:  warren logs -f{target}");
    println!("  stop it:    warren down{target}");
    println!("  its own lines (state changes, reloads): {}", log.display());
    Ok(exit::OK)
}

/// Whether a command run here without `--file` would find `file` itself, so the hints can
/// leave the flag out as the user did.
fn found_from_here(file: &Path) -> bool {
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    std::env::current_dir().ok().and_then(|here| crate::config::find(&here)).is_some_and(|found| same(&found, file))
}

/// `text` as one word for a POSIX shell.
fn shell_word(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The child's side, first thing: a session of its own, away from the terminal's signals.
pub fn enter_session() -> std::io::Result<()> {
    rustix::process::setsid().map(drop).map_err(std::io::Error::from)
}

/// The child's writer of warren's own lines: its log, with the time on every line.
pub fn terminal(instance_dir: &Path) -> std::io::Result<Terminal> {
    let log: Box<dyn Write + Send> = Box::new(RotatingFile::open(own_log(instance_dir), OWN_LOG_BYTES)?);
    // A file: no colour, whatever the environment says.
    Terminal::start_on(log, true, true, false)
}

/// What the child reports to the command waiting for it, while it waits.
#[derive(Debug, Default)]
pub struct Report {
    released: bool,
}

impl Report {
    /// Whether the command still waits: a failure now is a failure to start.
    pub fn waiting(&self) -> bool {
        !self.released
    }

    /// Tells the waiting command why the instance did not come up (it ends it after).
    pub fn failed(&self, why: &str) {
        eprintln!("warren: not every program came up: {why}");
    }

    /// Every program is up: stderr moves to the log, which ends the command's wait.
    pub fn up(&mut self, instance_dir: &Path) {
        if self.released {
            return;
        }
        self.released = true;
        eprintln!("{UP}");
        let log = OpenOptions::new().create(true).append(true).open(own_log(instance_dir));
        let moved = match &log {
            Ok(file) => rustix::stdio::dup2_stderr(file).map_err(std::io::Error::from),
            Err(err) => Err(std::io::Error::new(err.kind(), err.to_string())),
        };
        if let Err(err) = moved {
            // The command would otherwise wait for an exit that does not come.
            let null = File::options().write(true).open("/dev/null");
            let fallback = null.and_then(|null| rustix::stdio::dup2_stderr(null).map_err(std::io::Error::from));
            tracing::warn!("cannot point stderr at the log ({err}); fallback to /dev/null: {fallback:?}");
        }
    }
}

/// A file that starts over past `limit` bytes (at the start of a line, so a line is never
/// split between two files), keeping the one before as `….1`.
struct RotatingFile {
    path: PathBuf,
    file: File,
    written: u64,
    limit: u64,
    at_line_start: bool,
}

impl RotatingFile {
    fn open(path: PathBuf, limit: u64) -> std::io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile { path, file, written, limit, at_line_start: true })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, old)?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.at_line_start && self.written > 0 && self.written + buf.len() as u64 > self.limit {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if n > 0 {
            self.at_line_start = buf[n - 1] == b'\n';
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::RotatingFile;

    #[test]
    fn the_own_log_keeps_at_most_two_files_of_the_limit() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("warren.log");
        let mut file = RotatingFile::open(path.clone(), 100).expect("open");
        for i in 0..50 {
            writeln!(file, "line {i:04} of the log").expect("write");
        }
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        // Over the limit by less than a line at most: lines are not split.
        assert!(size(&path) <= 100 + 21, "{}", size(&path));
        let before = std::fs::read_to_string(dir.path().join("warren.log.1")).expect("read");
        let last = std::fs::read_to_string(&path).expect("read");
        assert!(before.len() <= 100 + 21 && before.ends_with('\n'), "{before}");
        assert!(last.starts_with("line ") && last.ends_with("line 0049 of the log\n"), "{last}");
    }
}
