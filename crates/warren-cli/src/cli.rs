//! The command line.

use std::path::PathBuf;

use clap::Parser;

/// A supervisor for programs made of several processes.
#[derive(Debug, Parser)]
#[command(name = "warren", version = env!("WARREN_VERSION"), about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Subcommand,
}

/// What `warren` is asked to do.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Run the programs of a configuration file (a warren.toml or a Procfile) until Ctrl-C or
    /// `warren down`. Without a file (and no ./warren.toml or ./Procfile) it runs the built-in
    /// example: task-rpc and task.
    Up {
        /// The configuration file (a name starting with Procfile is read as a Procfile), or a
        /// directory with a warren.toml or Procfile (default: ./warren.toml, else ./Procfile).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Run the built-in example even if ./warren.toml exists.
        #[arg(long, conflicts_with = "file")]
        example: bool,
        #[command(flatten)]
        run: UpOptions,
    },
    /// Show every program: state, pid, uptime, restarts, health, CPU, memory, endpoint, last
    /// exit; or one program in detail.
    Status {
        /// Show this program in detail: its command, checks, last state changes and why.
        #[arg(value_name = "NAME")]
        name: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        instance: Target,
    },
    /// Print where a running program serves RPC (`unix:PATH`), alone, for `socat` and scripts.
    Endpoint {
        /// The program.
        program: String,
        #[command(flatten)]
        instance: Target,
    },
    /// Start stopped, exited or failed programs (a failed one with its crash-loop count reset);
    /// returns once they are up. A running program is left alone.
    Start {
        #[command(flatten)]
        programs: Programs,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        instance: Target,
    },
    /// Stop programs, and first the programs that depend on them; they stay stopped until
    /// `warren start`. Returns once they have stopped.
    Stop {
        #[command(flatten)]
        programs: Programs,
        /// Stop only the named programs; the programs that depend on them keep running.
        #[arg(long)]
        only: bool,
        /// Give up waiting after this long (default: the sum of their grace periods, plus 5s).
        #[arg(long, value_name = "DURATION")]
        timeout: Option<humantime::Duration>,
        #[command(flatten)]
        instance: Target,
    },
    /// Stop programs and start them again; returns once they are up again, exit 1 if one did
    /// not come back.
    Restart {
        #[command(flatten)]
        programs: Programs,
        #[command(flatten)]
        wait: Wait,
        /// Start each new instance beside the old one (on the same `listen` sockets) and stop
        /// the old one once the new one is ready; replicas one at a time (the default for
        /// programs with `restart_mode = "rolling"`).
        #[arg(long)]
        rolling: bool,
        #[command(flatten)]
        instance: Target,
    },
    /// Show programs' output from their log files: one program's, several, or (no name) all
    /// merged in time order.
    Logs {
        /// The programs (default: all).
        programs: Vec<String>,
        /// Keep printing new lines as they come.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many of the last lines to show (default 100).
        #[arg(short = 'n', long, conflicts_with = "since")]
        lines: Option<usize>,
        /// Start at this time: a duration ago (10m, 2h) or an RFC 3339 time (UTC unless it says).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only lines whose text matches this regular expression.
        #[arg(long, value_name = "REGEX")]
        grep: Option<String>,
        /// Only lines of this stream: out or err.
        #[arg(long, value_name = "out|err")]
        stream: Option<String>,
        /// Prefix each line with its time.
        #[arg(long)]
        timestamps: bool,
        /// Print one JSON object per line: time, program, pid, stream, seq, line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        instance: Instance,
    },
    /// Call a program's RPC method with a JSON argument; prints the JSON reply.
    Call {
        /// The program to call.
        program: String,
        /// `Service.Method`, e.g. Task.Get.
        method: String,
        /// The argument as JSON (default: null).
        arg: Option<String>,
        /// Give up after this long (e.g. 5s, 500ms).
        #[arg(long, default_value = "30s")]
        timeout: humantime::Duration,
        #[command(flatten)]
        instance: Target,
    },
    /// Re-read the configuration file the instance was started with and apply the difference:
    /// new programs start, removed ones stop, changed ones restart, the others keep running.
    /// A file with errors is refused and nothing changes.
    Reload {
        /// Print what would change without changing anything.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        instance: Target,
    },
    /// Run N members of a replicated program (one with `replicas`): new ones start, those
    /// past N stop, the others keep running.
    Scale {
        /// The replicated program.
        program: String,
        /// How many members it runs from now on.
        count: u32,
        #[command(flatten)]
        instance: Target,
    },
    /// Replace the running `warren up` with warren's binary as it is on disk now (a newer one
    /// after an update), keeping every program running: same pids, output, sockets, restart
    /// counts (as SIGUSR2 does). The configuration stays as it was: `warren reload` re-reads it.
    Upgrade {
        /// Run this binary instead (a new version installed at another path).
        #[arg(long, value_name = "PATH")]
        to: Option<PathBuf>,
        /// Print the formats of the state this binary takes over, and exit.
        #[arg(long, hide = true)]
        formats: bool,
        #[command(flatten)]
        instance: Target,
    },
    /// Stop everything gracefully and end the running `warren up`.
    Down {
        #[command(flatten)]
        instance: Target,
    },
    /// Print a completion script for a shell (e.g. `warren completions bash > ~/.local/share/bash-completion/completions/warren`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Check a configuration file as `warren up` reads it, without running anything: every
    /// error with its line (exit 2), or the programs in the order they would start.
    Check {
        /// The configuration file, or a directory with one (default: ./warren.toml, else
        /// ./Procfile).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the warren.toml that runs what a Procfile runs (`warren import Procfile > warren.toml`);
    /// `warren up -f Procfile` runs it without the file.
    Import {
        /// The Procfile.
        file: PathBuf,
    },
    /// Print the manual page in roff (e.g. `warren man | man -l -`, or `warren man > warren.1`).
    Man {
        /// Only this subcommand's page (e.g. `restart`).
        subcommand: Option<String>,
    },
    /// Turn the configuration into another tool's files.
    #[command(subcommand)]
    Export(Export),
}

/// What `warren export` writes.
#[derive(Debug, clap::Subcommand)]
pub enum Export {
    /// One systemd service per program and a target for them all, written into DIR; what
    /// systemd cannot express is noted in the units and printed.
    Systemd {
        /// The directory to write the units into.
        dir: PathBuf,
        /// Units for `systemctl --user` (the target is wanted by default.target, not
        /// multi-user.target).
        #[arg(long)]
        user: bool,
        /// The configuration file, or its directory (default: ./warren.toml).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Which programs `start`, `stop` and `restart` are for.
#[derive(Debug, clap::Args)]
pub struct Programs {
    /// The programs, by name.
    #[arg(value_name = "NAME", required_unless_present = "all")]
    pub names: Vec<String>,
    /// Every program of the configuration.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
}

/// Whether and how long `start` and `restart` wait for the programs to be up.
#[derive(Debug, clap::Args)]
pub struct Wait {
    /// Return as soon as the request is made, without waiting for the programs to be up.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long (default: each program's grace and ready_timeout,
    /// and those of the programs it depends on, plus 5s).
    #[arg(long, value_name = "DURATION", conflicts_with = "no_wait")]
    pub timeout: Option<humantime::Duration>,
}

/// Which running instance to talk to, with `-f` (every subcommand but `logs`, where `-f` means
/// follow as in `tail -f`).
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The configuration file the instance was started with, or its directory (default:
    /// ./warren.toml; only its directory matters).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl Target {
    /// The directory that identifies the instance.
    pub fn dir(&self) -> PathBuf {
        config_dir(self.file.as_deref())
    }
}

/// How `warren up` shows what happens and when it ends by itself. Without `--abort-on-exit` or
/// `--exit-code-from`, it ends once nothing runs and nothing will be restarted.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UpOptions {
    /// Start every line with the time it was printed (RFC 3339, UTC).
    #[arg(long)]
    pub timestamps: bool,
    /// Stop everything as soon as any program exits, and exit with its code (a test harness).
    #[arg(long)]
    pub abort_on_exit: bool,
    /// Stop everything when this program exits, and exit with its code (a test harness).
    #[arg(long, value_name = "PROGRAM")]
    pub exit_code_from: Option<String>,
    /// Run in the background: return once every program is up (exit 1 if one failed to
    /// start); then follow it with `warren logs -f`, end it with `warren down`. SIGHUP reloads.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Internal: this is the background process `-d` started.
    #[arg(long, hide = true)]
    pub detached_child: bool,
}

/// Which running instance to talk to: the one started for this configuration's directory.
#[derive(Debug, clap::Args)]
pub struct Instance {
    /// The configuration file the instance was started with, or its directory (default:
    /// ./warren.toml; only its directory matters).
    #[arg(long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl Instance {
    /// The directory that identifies the instance.
    pub fn dir(&self) -> PathBuf {
        config_dir(self.file.as_deref())
    }
}

/// The directory of a configuration file (a directory stands for its warren.toml), or the
/// current directory.
pub fn config_dir(file: Option<&std::path::Path>) -> PathBuf {
    if let Some(dir) = file.filter(|f| f.is_dir()) {
        return dir.to_path_buf();
    }
    match file.and_then(|f| f.parent()).filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument of every subcommand, with the path to it, that has no help text.
    fn undocumented(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                found.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_about().is_none() {
                found.push(format!("{path} {} (the subcommand)", sub.get_name()));
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }

    #[test]
    fn every_argument_and_subcommand_has_help() {
        let mut command = Cli::command();
        command.build();
        let mut found = Vec::new();
        undocumented(&command, "warren", &mut found);
        assert!(found.is_empty(), "without help text: {found:#?}");
        // The walk reaches every subcommand's arguments (a walk that saw none would pass).
        let restart = command.find_subcommand("restart").expect("restart");
        assert!(restart.get_arguments().any(|a| a.get_id() == "no_wait"));
    }
}
