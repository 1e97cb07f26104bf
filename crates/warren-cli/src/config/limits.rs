//! `user`, `group`, `memory_max`, `cpu_max` and `pids_max`: checked where written, resolved to
//! ids once a program's own keys and `[defaults]` are merged.

use warren::{Identity, Limits};

use super::checker::Checker;
use super::error::ErrorKind;
use super::raw::RawProgram;
use super::settings::{Set, Settings};

impl Checker<'_, '_> {
    /// Parses the section's limit and identity keys into `s`.
    pub(super) fn limits(&mut self, raw: &RawProgram, s: &mut Settings) {
        let bad = |text: &str, reason: String| ErrorKind::BadLimit { text: text.to_owned(), reason };
        s.memory_max = raw.memory_max.as_ref().and_then(|size| match super::logs::parse_size(size.get_ref()) {
            Ok(bytes) => Some(Set::new(size, bytes)),
            Err(reason) => self.fail(size, "memory_max", bad(size.get_ref(), reason)),
        });
        s.cpu_max = raw.cpu_max.as_ref().and_then(|cpu| match percent(cpu.get_ref()) {
            Ok(percent) => Some(Set::new(cpu, percent)),
            Err(reason) => self.fail(cpu, "cpu_max", bad(cpu.get_ref(), reason)),
        });
        s.pids_max = raw.pids_max.as_ref().and_then(|pids| match *pids.get_ref() {
            0 => self.fail(pids, "pids_max", ErrorKind::ZeroCount),
            n => Some(Set::new(pids, n)),
        });
        s.user = raw.user.as_ref().and_then(|user| match check_user(user.get_ref()) {
            Ok(()) => Some(Set::new(user, user.get_ref().clone())),
            Err(why) => self.fail(user, "user", ErrorKind::BadIdentity(why)),
        });
        s.group = raw.group.as_ref().and_then(|group| match check_group(group.get_ref()) {
            Ok(()) => Some(Set::new(group, group.get_ref().clone())),
            Err(why) => self.fail(group, "group", ErrorKind::BadIdentity(why)),
        });
    }
}

impl Settings {
    pub(super) fn resource_limits(&self) -> Limits {
        Limits {
            memory_max: self.memory_max.as_ref().map(|set| set.value),
            cpu_max: self.cpu_max.as_ref().map(|set| set.value),
            pids_max: self.pids_max.as_ref().map(|set| set.value),
        }
    }

    /// The user and groups to run as; `None` for warren's own. The names were checked already.
    pub(super) fn identity(&self) -> Option<Identity> {
        let user_name = self.user.as_ref().map(|set| set.value.clone());
        let group_name = self.group.as_ref().map(|set| set.value.clone());
        if user_name.is_none() && group_name.is_none() {
            return None;
        }
        let user = match &user_name {
            Some(name) => uzers::get_user_by_name(name)?,
            None => uzers::get_user_by_uid(uzers::get_effective_uid())?,
        };
        let gid = match &group_name {
            Some(name) => uzers::get_group_by_name(name)?.gid(),
            None => user.primary_group_id(),
        };
        // The user's supplementary groups, as a login would have them; with only `group`, warren's
        // own user keeps just that group (its root groups must not leak to the program).
        let mut groups = match &user_name {
            Some(_) => uzers::get_user_groups(user.name(), gid).unwrap_or_default().iter().map(|g| g.gid()).collect(),
            None => Vec::new(),
        };
        if !groups.contains(&gid) {
            groups.push(gid);
        }
        let name = user.name().to_string_lossy().into_owned();
        Some(Identity { user: name, group: group_name, uid: user.uid(), gid, groups })
    }
}

/// `"50%"` (of one CPU; more than 100% for several).
fn percent(text: &str) -> Result<u32, String> {
    let number = text.trim().strip_suffix('%').ok_or("expected a percentage of one CPU, such as \"50%\"")?;
    match number.trim().parse::<u32>() {
        Ok(0) => Err("must be more than 0%".to_owned()),
        Ok(percent) => Ok(percent),
        Err(_) => Err("expected a whole number before the %, such as \"50%\"".to_owned()),
    }
}

/// Only root can start a program as another user or group.
fn needs_root(what: &str) -> Result<(), String> {
    let uid = uzers::get_effective_uid();
    if uid == 0 {
        return Ok(());
    }
    let me = uzers::get_user_by_uid(uid).map_or_else(|| uid.to_string(), |u| u.name().to_string_lossy().into_owned());
    Err(format!(
        "{what} needs warren to run as root, and it runs as {me} (uid {uid}): only root can start a program as \
         another user; remove the key, or run warren as root"
    ))
}

fn check_user(name: &str) -> Result<(), String> {
    let Some(user) = uzers::get_user_by_name(name) else {
        return Err(format!("there is no user {name:?} on this system"));
    };
    // Running as oneself needs no privilege.
    if user.uid() == uzers::get_effective_uid() {
        return Ok(());
    }
    needs_root(&format!("user = {name:?}"))
}

fn check_group(name: &str) -> Result<(), String> {
    if uzers::get_group_by_name(name).is_none() {
        return Err(format!("there is no group {name:?} on this system"));
    }
    needs_root(&format!("group = {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_is_a_percentage() {
        assert_eq!(percent("50%"), Ok(50));
        assert_eq!(percent(" 150 %"), Ok(150));
        assert!(percent("50").is_err_and(|why| why.contains("percentage")));
        assert!(percent("0%").is_err());
        assert!(percent("half%").is_err());
    }
}
