//! `replicas = N`: a checked plan whose replicated programs are written out as their members
//! (`NAME.1` … `NAME.N`, see [`warren::supervise::plan::Replica`]). The file's plan is checked
//! first, so that errors name the programs as the file does; only then is it expanded.

use std::collections::HashMap;

use toml::Spanned;
use warren::supervise::plan::{self, MAX_REPLICAS, Plan, Program};

use super::error::{Collector, ErrorKind, Section};
use super::raw::Field;
use super::{LogLimits, plan::Built};

/// The count of each built program (`None` for one without `replicas`), reporting counts out of
/// range.
pub(crate) fn counts(built: &[Built], errors: &mut Collector<'_>) -> Vec<Option<u32>> {
    built.iter().map(|b| count(&b.program.name, &b.replicas, errors)).collect()
}

fn count(name: &str, raw: &Field<u32>, errors: &mut Collector<'_>) -> Option<u32> {
    let raw = raw.as_ref()?;
    let n = *raw.get_ref();
    if n == 0 || n > MAX_REPLICAS {
        errors.push(
            Some(Spanned::span(raw)),
            &Section::Program(name.to_owned()),
            Some("replicas"),
            ErrorKind::BadReplicas(n),
        );
        return None;
    }
    Some(n)
}

/// `plan` with each program that has a count replaced by its members, and dependencies on it
/// by dependencies on each member. Each member's log limits are its program's.
pub(crate) fn expand(
    plan: Plan,
    counts: &[Option<u32>],
    limits: &mut HashMap<String, LogLimits>,
    errors: &mut Collector<'_>,
) -> Option<Plan> {
    if counts.iter().all(Option::is_none) {
        return Some(plan);
    }
    let programs = plan.programs();
    let groups: Vec<&str> =
        programs.iter().zip(counts).filter(|(_, c)| c.is_some()).map(|(p, _)| p.name.as_str()).collect();
    let mut expanded: Vec<Program> = Vec::new();
    let mut ok = true;
    for (program, count) in programs.iter().zip(counts) {
        let Some(count) = *count else {
            // `web.7` would be taken by `scale web 7` one day: reserved for the group.
            if let Some(group) = groups.iter().find(|g| member_of(&program.name, g)) {
                let kind = ErrorKind::ReplicaName(program.name.clone(), (*group).to_owned());
                errors.push(None, &Section::Program(program.name.clone()), None, kind);
                ok = false;
            }
            expanded.push(program.clone());
            continue;
        };
        let own = limits.get(&program.name).copied();
        for index in 1..=count {
            let member = plan::replica(program, &program.name, index);
            if let Some(own) = own {
                limits.insert(member.name.clone(), own);
            }
            expanded.push(member);
        }
    }
    if !ok {
        return None;
    }
    plan::expand_dependencies(&mut expanded);
    match Plan::new(expanded) {
        Ok(plan) => Some(plan),
        Err(err) => {
            errors.push(None, &Section::File, None, ErrorKind::Schema(err.to_string()));
            None
        }
    }
}

/// Whether `name` is `group.N` for a number N.
fn member_of(name: &str, group: &str) -> bool {
    name.strip_prefix(group)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
