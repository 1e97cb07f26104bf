//! The dependency graph: every `depends_on` names a program, none is its own dependency, there
//! is no cycle, and each condition can be met. And the order to start programs in.

use std::collections::{HashMap, HashSet};

use warren::supervise::plan::{Condition, Plan, Restart};

use super::error::{Collector, ErrorKind, Section, closest};
use super::plan::Built;

/// Reports every bad dependency, and every cycle once (named from the program that comes
/// first in the file, at the entry that starts it).
pub(crate) fn check(built: &[Built], errors: &mut Collector<'_>) {
    let index: HashMap<&str, usize> = built.iter().enumerate().map(|(i, b)| (b.program.name.as_str(), i)).collect();
    // Edges that passed the checks below, as (target, span of the entry).
    let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); built.len()];
    for (from, b) in built.iter().enumerate() {
        let at = Section::Program(b.program.name.clone());
        let mut seen = HashSet::new();
        for (entry, (dependency, span)) in b.program.depends_on.iter().zip(&b.dependency_spans).enumerate() {
            let report =
                |errors: &mut Collector<'_>, kind| errors.push(Some(span.clone()), &at, Some("depends_on"), kind);
            let name = dependency.name.as_str();
            let Some(&to) = index.get(name) else {
                let suggestion = closest(name, index.keys().copied());
                report(errors, ErrorKind::UnknownDependency { name: name.to_owned(), suggestion });
                continue;
            };
            if to == from {
                report(errors, ErrorKind::SelfDependency);
                continue;
            }
            if !seen.insert(to) {
                report(errors, ErrorKind::DuplicateDependency(name.to_owned()));
                continue;
            }
            let target = &built[to];
            if target.ok {
                match dependency.condition {
                    Condition::Healthy if target.program.health.is_none() => {
                        report(errors, ErrorKind::NoHealthCheck(name.to_owned()));
                    }
                    Condition::ExitedOk if target.program.restart == Restart::Always => {
                        report(errors, ErrorKind::ExitedOkWithAlways(name.to_owned()));
                    }
                    _ => {}
                }
            }
            edges[from].push((to, entry));
        }
    }
    for cycle in cycles(&edges) {
        let first = &built[cycle[0]];
        let entry = edges[cycle[0]].iter().find(|&&(to, _)| to == cycle[1]).map(|&(_, entry)| entry);
        let span = entry.and_then(|entry| first.dependency_spans.get(entry)).cloned();
        let names = cycle.iter().map(|&i| built[i].program.name.clone()).collect();
        errors.push(span, &Section::Program(first.program.name.clone()), Some("depends_on"), ErrorKind::Cycle(names));
    }
}

/// Each distinct cycle once, as the path from its earliest program back to it.
fn cycles(edges: &[Vec<(usize, usize)>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnPath,
        Done,
    }
    fn visit(
        node: usize,
        edges: &[Vec<(usize, usize)>],
        state: &mut [State],
        path: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
    ) {
        state[node] = State::OnPath;
        path.push(node);
        for &(next, _) in &edges[node] {
            match state[next] {
                State::New => visit(next, edges, state, path, found),
                State::OnPath => {
                    let start = path.iter().position(|&n| n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    let earliest = cycle.iter().enumerate().min_by_key(|&(_, &n)| n).map_or(0, |(i, _)| i);
                    cycle.rotate_left(earliest);
                    cycle.push(cycle[0]);
                    if !found.contains(&cycle) {
                        found.push(cycle);
                    }
                }
                State::Done => {}
            }
        }
        path.pop();
        state[node] = State::Done;
    }
    let mut state = vec![State::New; edges.len()];
    let mut found = Vec::new();
    for node in 0..edges.len() {
        if state[node] == State::New {
            visit(node, edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// The programs in start order, by levels: first those that depend on nothing, then those
/// whose dependencies are all in earlier levels, and so on. The programs of one level can
/// start in parallel; within a level they keep the order of the file.
///
/// Meant for a plan from [`super::parse`], which has no cycle and no unknown dependency. Were
/// there a cycle, its programs would make up the last level: no program is ever left out.
#[cfg_attr(not(test), expect(dead_code, reason = "the supervisor orders programs itself for now"))]
pub(crate) fn topological_order(plan: &Plan) -> Vec<Vec<String>> {
    let names: HashSet<&str> = plan.programs.iter().map(|p| p.name.as_str()).collect();
    let mut placed: HashSet<&str> = HashSet::new();
    let mut levels = Vec::new();
    while placed.len() < plan.programs.len() {
        let level: Vec<&str> = plan
            .programs
            .iter()
            .filter(|p| !placed.contains(p.name.as_str()))
            .filter(|p| {
                p.depends_on.iter().all(|d| placed.contains(d.name.as_str()) || !names.contains(d.name.as_str()))
            })
            .map(|p| p.name.as_str())
            .collect();
        let level = if level.is_empty() {
            plan.programs.iter().map(|p| p.name.as_str()).filter(|name| !placed.contains(name)).collect()
        } else {
            level
        };
        placed.extend(&level);
        levels.push(level.into_iter().map(str::to_owned).collect());
    }
    levels
}

#[cfg(test)]
mod tests {
    use warren::supervise::plan::{Command, Dependency, Program};

    use super::*;

    fn program(name: &str, deps: &[&str]) -> Program {
        let mut p = Program::new(name, Command::Shell("true".into()));
        p.depends_on = deps.iter().map(|&d| Dependency { name: d.to_owned(), condition: Condition::Started }).collect();
        p
    }

    #[test]
    fn levels_start_with_programs_that_depend_on_nothing() {
        let plan = Plan {
            programs: vec![
                program("web", &["api", "cache"]),
                program("api", &["db"]),
                program("db", &[]),
                program("cache", &[]),
                program("migrate", &["db"]),
            ],
        };
        assert_eq!(topological_order(&plan), [vec!["db", "cache"], vec!["api", "migrate"], vec!["web"]]);
    }

    #[test]
    fn a_cycle_still_places_every_program() {
        let plan = Plan { programs: vec![program("a", &["b"]), program("b", &["a"]), program("c", &[])] };
        assert_eq!(topological_order(&plan), [vec!["c"], vec!["a", "b"]]);
    }

    #[test]
    fn each_cycle_is_found_once_from_its_earliest_program() {
        // 0 -> 1 -> 2 -> 1, 3 -> 3 is excluded before (self), 0 -> 3 -> 0
        let edges = vec![vec![(1, 0), (3, 1)], vec![(2, 0)], vec![(1, 0)], vec![(0, 0)]];
        assert_eq!(cycles(&edges), [vec![1, 2, 1], vec![0, 3, 0]]);
    }
}
