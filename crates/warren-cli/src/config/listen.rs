//! `listen` (sockets warren binds and passes to the program) and `restart_mode`, checked.

use std::path::Path;

use toml::Spanned;
use warren::listen::{Address, Listen, valid_name};
use warren::supervise::plan::RestartMode;

use super::checker::Checker;
use super::error::ErrorKind;
use super::raw::{RawListen, StringOr};
use super::settings::Set;

/// More sockets than any program needs; each is a descriptor in warren and in the program.
const MAX_LISTEN: usize = 64;

impl Checker<'_, '_> {
    /// The entries of `listen`, each parsed; `dir` is where relative Unix paths start (the
    /// program's `cwd`, else the file's directory), `program` the default name of each socket
    /// in `LISTEN_FDNAMES` (systemd's: the unit's name).
    pub(super) fn listen(
        &mut self,
        raw: &Spanned<Vec<Spanned<StringOr<RawListen>>>>,
        dir: &Path,
        program: &str,
    ) -> Option<Vec<Listen>> {
        if raw.get_ref().len() > MAX_LISTEN {
            return self.fail(raw, "listen", ErrorKind::BadListen(format!("more than {MAX_LISTEN} sockets")));
        }
        let mut entries = Vec::new();
        let mut ok = true;
        for entry in raw.get_ref() {
            let (address, name, mode) = match entry.get_ref() {
                StringOr::String(address) => (address.clone(), None, None),
                StringOr::Table(table) => (
                    table.address.get_ref().clone(),
                    table.name.as_ref().map(|n| n.get_ref().clone()),
                    table.mode.as_ref().map(|m| *m.get_ref()),
                ),
            };
            match self.listen_entry(&address, name, mode, dir, program) {
                Ok(listen) if entries.iter().any(|e: &Listen| e.address == listen.address) => {
                    let why = format!("{address:?} is listed twice");
                    ok = self.fail::<_, ()>(entry, "listen", ErrorKind::BadListen(why)).is_some();
                }
                Ok(listen) => entries.push(listen),
                Err(why) => ok = self.fail::<_, ()>(entry, "listen", ErrorKind::BadListen(why)).is_some(),
            }
        }
        ok.then_some(entries)
    }

    fn listen_entry(
        &mut self,
        text: &str,
        name: Option<String>,
        mode: Option<u32>,
        dir: &Path,
        program: &str,
    ) -> Result<Listen, String> {
        let address = match Address::parse(text).map_err(|why| format!("{text:?}: {why}"))? {
            Address::Unix(path) => {
                let path = dir.join(path);
                Address::parse(&format!("unix:{}", path.display())).map_err(|why| format!("{text:?}: {why}"))?;
                format!("unix:{}", path.display())
            }
            Address::Tcp(_) => text.to_owned(),
        };
        let name = name.unwrap_or_else(|| program.to_owned());
        if !valid_name(&name) {
            return Err(format!("name {name:?}: use printable ASCII without ':' (at most 255 bytes)"));
        }
        if let Some(mode) = mode {
            if !address.starts_with("unix:") {
                return Err(format!("{text:?}: `mode` is for Unix sockets"));
            }
            if mode > 0o777 {
                return Err(format!("mode {mode:o} is not a file mode (0o000 to 0o777)"));
            }
        }
        Ok(Listen { address, name, mode })
    }

    pub(super) fn restart_mode(&mut self, raw: &Spanned<String>) -> Option<Set<RestartMode>> {
        let mode = match raw.get_ref().as_str() {
            "stop" => RestartMode::Stop,
            "rolling" => RestartMode::Rolling,
            other => return self.fail(raw, "restart_mode", ErrorKind::UnknownRestartMode(other.to_owned())),
        };
        Some(Set::new(raw, mode))
    }
}
