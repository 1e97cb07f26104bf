//! The dependency graph, as the file wrote it: [`Plan::new`] checks it (every `depends_on`
//! names another program once, no cycle, every condition attainable); this turns each
//! problem it finds into an error at the line of the entry it is about.

use warren::supervise::plan::{Plan, PlanError, Problem, ProblemKind, Program};

use super::error::{Collector, ErrorKind, Section, closest};

/// What the graph check needs to know of a program besides the program itself.
#[derive(Debug)]
pub(crate) struct Origin {
    /// False when its section had errors: the program holds placeholders, and checks that
    /// depend on its values (such as `exited_ok` against its restart policy) are not reported.
    pub(crate) ok: bool,
    /// The span of each entry of its `depends_on`.
    pub(crate) dependency_spans: Vec<std::ops::Range<usize>>,
}

/// The plan of `programs`, or `None` with its problems reported.
pub(crate) fn plan(programs: Vec<Program>, origins: &[Origin], errors: &mut Collector<'_>) -> Option<Plan> {
    let names: Vec<String> = programs.iter().map(|p| p.name.clone()).collect();
    match Plan::new(programs) {
        Ok(plan) => Some(plan),
        Err(err) => {
            report(&err, &names, origins, errors);
            None
        }
    }
}

fn report(err: &PlanError, names: &[String], origins: &[Origin], errors: &mut Collector<'_>) {
    for Problem { program, entry, kind } in err.problems() {
        let Some(program) = *program else {
            errors.push(None, &Section::File, None, ErrorKind::NoPrograms);
            continue;
        };
        let at = Section::Program(names[program].clone());
        let span = entry.and_then(|entry| origins[program].dependency_spans.get(entry)).cloned();
        let target_ok = |name: &str| names.iter().position(|n| n == name).is_some_and(|i| origins[i].ok);
        let kind = match kind {
            ProblemKind::NoPrograms => ErrorKind::NoPrograms,
            ProblemKind::DuplicateProgram(name) => ErrorKind::DuplicateProgram(name.clone()),
            ProblemKind::UnknownDependency(name) => {
                let suggestion = closest(name, names.iter().map(String::as_str));
                ErrorKind::UnknownDependency { name: name.clone(), suggestion }
            }
            ProblemKind::SelfDependency => ErrorKind::SelfDependency,
            ProblemKind::DuplicateDependency(name) => ErrorKind::DuplicateDependency(name.clone()),
            ProblemKind::Cycle(cycle) => ErrorKind::Cycle(cycle.clone()),
            ProblemKind::NoHealthCheck(name) if target_ok(name) => ErrorKind::NoHealthCheck(name.clone()),
            ProblemKind::ExitedOkWithAlways(name) if target_ok(name) => ErrorKind::ExitedOkWithAlways(name.clone()),
            ProblemKind::DependsOnManual(name) if target_ok(name) => ErrorKind::DependsOnManual(name.clone()),
            // About a program whose own section is broken: reported there already.
            ProblemKind::NoHealthCheck(_) | ProblemKind::ExitedOkWithAlways(_) | ProblemKind::DependsOnManual(_) => {
                continue;
            }
        };
        let field = (!matches!(kind, ErrorKind::DuplicateProgram(_))).then_some("depends_on");
        errors.push(span, &at, field, kind);
    }
}
