//! Puts the git revision the binary was built from into `warren --version`, so that a report
//! can say exactly which build it is about. Outside a git checkout (a crates.io source) it is
//! left out.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let version = env!("CARGO_PKG_VERSION");
    let full = match git(&["rev-parse", "--short=10", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            format!("{version} (git {rev}{})", if dirty { ", modified" } else { "" })
        }
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=WARREN_VERSION={full}");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        // A new commit or a checkout changes HEAD or the ref it points to.
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{reference}");
        }
        println!("cargo:rerun-if-changed={dir}/index");
    }
}
