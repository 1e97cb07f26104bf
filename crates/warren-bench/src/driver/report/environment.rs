//! The machine and the versions of everything measured.

use std::process::Command;

use crate::driver::Config;

/// The machine and the versions of everything measured.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub date: String,
    pub cpu: String,
    pub cpus: usize,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    pub go: String,
    pub supervisord: String,
    pub python: String,
    pub crates: String,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|out| {
            let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
            String::from_utf8_lossy(&text).lines().next().map(str::to_owned)
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn lock_version(lock: &str, name: &str) -> String {
    let marker = format!("name = \"{name}\"\nversion = \"");
    lock.find(&marker)
        .and_then(|at| lock[at + marker.len()..].split('"').next())
        .map_or_else(|| "?".to_owned(), str::to_owned)
}

impl Environment {
    pub fn collect(config: &Config) -> Environment {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("?", |(_, v)| v.trim())
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or_else(|| "?".to_owned(), |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0));
        let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
        let crates = ["tokio", "tarpc", "tokio-serde", "rmp-serde", "serde_json"]
            .iter()
            .map(|name| format!("{name} {}", lock_version(&lock, name)))
            .collect::<Vec<_>>()
            .join(", ");
        let supervisord = config.supervisord.as_deref().map_or_else(
            || "supervisord not run".to_owned(),
            |p| format!("supervisor {}", crate::driver::supervisor::version(p)),
        );
        let python = config
            .supervisord
            .as_deref()
            .and_then(|p| p.parent())
            .map(|bin| first_line(&bin.join("python").display().to_string(), &["--version"]))
            .unwrap_or_default();
        Environment {
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            memory,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            rustc: first_line("rustc", &["--version"]),
            go: first_line("go", &["version"]),
            supervisord,
            python,
            crates,
        }
    }
}
