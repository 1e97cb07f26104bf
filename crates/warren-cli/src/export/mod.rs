//! `warren export`: a configuration turned into another tool's files.

pub mod systemd;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::exit;

/// Writes the systemd units of `config` into `dir` and prints what they cannot express.
pub fn systemd(config: &Path, dir: &Path, scope: systemd::Scope) -> Result<u8, crate::Failure> {
    let plan = crate::config::load(config)
        .map_err(|errors| crate::Failure { message: errors.to_string(), code: exit::CONFIG })?;
    let absolute = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let units = systemd::units(&plan, &absolute, &systemd::project_of(&absolute), scope);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for unit in &units {
        let path: PathBuf = dir.join(&unit.file_name);
        std::fs::write(&path, &unit.text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
        for note in &unit.notes {
            println!("  note: {note}");
        }
    }
    let target = units.last().map_or("", |unit| unit.file_name.as_str());
    let (flag, dest) = match scope {
        systemd::Scope::User => (" --user", "~/.config/systemd/user/"),
        systemd::Scope::System => ("", "/etc/systemd/system/"),
    };
    if plan.programs().iter().any(|program| !program.clear_env) {
        println!(
            "note: warren passes its own environment on to programs; systemd gives them the manager's, so put what they need in `env`"
        );
    }
    println!(
        "install: copy them to {dest}, then `systemctl{flag} daemon-reload && systemctl{flag} enable --now {target}`"
    );
    Ok(exit::OK)
}
