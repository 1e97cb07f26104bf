//! The command line.

use std::path::PathBuf;

use clap::Parser;

/// A supervisor for programs made of several processes.
#[derive(Debug, Parser)]
#[command(name = "warren", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Subcommand,
}

/// What `warren` is asked to do.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Run the programs of a configuration file until Ctrl-C or `warren down`. Without a file
    /// (and no ./warren.toml) it runs the built-in example: task-rpc and task.
    Up {
        /// The configuration file (default: ./warren.toml if it exists).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Run the built-in example even if ./warren.toml exists.
        #[arg(long, conflicts_with = "file")]
        example: bool,
    },
    /// Show every program: state, pid, uptime, restarts, last exit.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        instance: Instance,
    },
    /// Start a stopped (or failed) program.
    Start {
        program: String,
        #[command(flatten)]
        instance: Instance,
    },
    /// Stop a program (it is not restarted until `warren start`).
    Stop {
        program: String,
        #[command(flatten)]
        instance: Instance,
    },
    /// Stop a program and start it again.
    Restart {
        program: String,
        #[command(flatten)]
        instance: Instance,
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
        program: String,
        /// `Service.Method`, e.g. Task.Get.
        method: String,
        /// The argument as JSON (default: null).
        arg: Option<String>,
        /// Give up after this long (e.g. 5s, 500ms).
        #[arg(long, default_value = "30s")]
        timeout: humantime::Duration,
        #[command(flatten)]
        instance: Instance,
    },
    /// Stop everything gracefully and end the running `warren up`.
    Down {
        #[command(flatten)]
        instance: Instance,
    },
}

/// Which running instance to talk to: the one started for this configuration's directory.
#[derive(Debug, clap::Args)]
pub struct Instance {
    /// The configuration file the instance was started with (default: ./warren.toml; only its
    /// directory matters).
    #[arg(long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl Instance {
    /// The directory that identifies the instance.
    pub fn dir(&self) -> PathBuf {
        config_dir(self.file.as_deref())
    }
}

/// The directory of a configuration file, or the current directory.
pub fn config_dir(file: Option<&std::path::Path>) -> PathBuf {
    match file.and_then(|f| f.parent()).filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    }
}
