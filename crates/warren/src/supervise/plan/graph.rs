//! The dependency graph: every `depends_on` names another program once, there is no cycle, and
//! each condition can be met. And the order to start programs in.

use std::collections::{HashMap, HashSet};

use super::error::{Problem, ProblemKind};
use super::program::{Condition, Program, Restart};

/// Every problem of `programs` as a whole: duplicate names, bad dependencies, and every cycle
/// once (named from the program that comes first, at the entry that starts it).
pub(super) fn check(programs: &[Program]) -> Vec<Problem> {
    let mut problems = Vec::new();
    if programs.is_empty() {
        problems.push(Problem { program: None, entry: None, kind: ProblemKind::NoPrograms });
    }
    // A name stands for the first program of that name.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, program) in programs.iter().enumerate() {
        if *index.entry(program.name.as_str()).or_insert(i) != i {
            let kind = ProblemKind::DuplicateProgram(program.name.clone());
            problems.push(Problem { program: Some(i), entry: None, kind });
        }
    }
    // Edges that passed the checks below, as (target, index of the entry).
    let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); programs.len()];
    for (from, program) in programs.iter().enumerate() {
        let mut seen = HashSet::new();
        for (entry, dependency) in program.depends_on.iter().enumerate() {
            let mut report = |kind| problems.push(Problem { program: Some(from), entry: Some(entry), kind });
            let name = dependency.name.as_str();
            let Some(&to) = index.get(name) else {
                report(ProblemKind::UnknownDependency(name.to_owned()));
                continue;
            };
            if to == from {
                report(ProblemKind::SelfDependency);
                continue;
            }
            if !seen.insert(to) {
                report(ProblemKind::DuplicateDependency(name.to_owned()));
                continue;
            }
            let target = &programs[to];
            if program.autostart && !target.autostart {
                report(ProblemKind::DependsOnManual(name.to_owned()));
            }
            match dependency.condition {
                Condition::Healthy if target.health.is_none() => report(ProblemKind::NoHealthCheck(name.to_owned())),
                Condition::ExitedOk if target.restart == Restart::Always => {
                    report(ProblemKind::ExitedOkWithAlways(name.to_owned()));
                }
                _ => {}
            }
            edges[from].push((to, entry));
        }
    }
    for cycle in cycles(&edges) {
        let entry = edges[cycle[0]].iter().find(|&&(to, _)| to == cycle[1]).map(|&(_, entry)| entry);
        let names = cycle.iter().map(|&i| programs[i].name.clone()).collect();
        problems.push(Problem { program: Some(cycle[0]), entry, kind: ProblemKind::Cycle(names) });
    }
    problems
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

/// The programs in start order, by levels (see [`Plan::start_order`](super::Plan::start_order)).
pub(super) fn start_order(programs: &[Program]) -> Vec<Vec<String>> {
    let mut placed: HashSet<&str> = HashSet::new();
    let mut levels = Vec::new();
    while placed.len() < programs.len() {
        let level: Vec<&str> = programs
            .iter()
            .filter(|p| !placed.contains(p.name.as_str()))
            .filter(|p| p.depends_on.iter().all(|d| placed.contains(d.name.as_str())))
            .map(|p| p.name.as_str())
            .collect();
        // A plan has no cycle, so a level is never empty; were it, the rest would make up the
        // last level rather than loop forever.
        let level = if level.is_empty() {
            programs.iter().map(|p| p.name.as_str()).filter(|name| !placed.contains(name)).collect()
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
    use super::*;
    use crate::supervise::plan::{Dependency, Invocation, Plan};

    fn program(name: &str, deps: &[&str]) -> Program {
        let mut p = Program::new(name, Invocation::Shell("true".into()));
        p.depends_on = deps.iter().map(|&d| Dependency { name: d.to_owned(), condition: Condition::Started }).collect();
        p
    }

    #[test]
    fn levels_start_with_programs_that_depend_on_nothing() {
        let plan = Plan::new(vec![
            program("web", &["api", "cache"]),
            program("api", &["db"]),
            program("db", &[]),
            program("cache", &[]),
            program("migrate", &["db"]),
        ])
        .expect("a valid plan");
        assert_eq!(plan.start_order(), [vec!["db", "cache"], vec!["api", "migrate"], vec!["web"]]);
    }

    #[test]
    fn a_cycle_still_places_every_program() {
        let programs = [program("a", &["b"]), program("b", &["a"]), program("c", &[])];
        assert_eq!(start_order(&programs), [vec!["c"], vec!["a", "b"]]);
    }

    #[test]
    fn each_cycle_is_found_once_from_its_earliest_program() {
        // 0 -> 1 -> 2 -> 1, 3 -> 3 is excluded before (self), 0 -> 3 -> 0
        let edges = vec![vec![(1, 0), (3, 1)], vec![(2, 0)], vec![(1, 0)], vec![(0, 0)]];
        assert_eq!(cycles(&edges), [vec![1, 2, 1], vec![0, 3, 0]]);
    }

    #[test]
    fn a_plan_is_only_built_valid() {
        let err = Plan::new(vec![program("a", &["b", "zz", "a"]), program("b", &["a"]), program("a", &[])])
            .expect_err("problems");
        let kinds: Vec<&ProblemKind> = err.problems().iter().map(|p| &p.kind).collect();
        assert_eq!(
            kinds,
            [
                &ProblemKind::DuplicateProgram("a".into()),
                &ProblemKind::UnknownDependency("zz".into()),
                &ProblemKind::SelfDependency,
                &ProblemKind::Cycle(vec!["a".into(), "b".into(), "a".into()]),
            ]
        );
        assert_eq!(Plan::new(Vec::new()).expect_err("empty").to_string(), "no programs");
    }
}
