//! Replicated programs: `replicas = N` runs N copies of one program, `NAME.1` … `NAME.N`, each
//! a program of the plan of its own (so the machine starts, restarts and stops them one by one)
//! that knows its group. A dependency on the group's name stands for every member: it is
//! written out as one dependency per member, which is what the machine already understands.

use super::{Plan, PlanError, Program};

/// The most replicas of one program: each is a process, a socket and a log file.
pub const MAX_REPLICAS: u32 = 1000;

/// Which copy of a replicated program a program of the plan is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Replica {
    /// The name the configuration gave, without the `.N`.
    pub group: String,
    /// From 1; also in the program's environment as `WARREN_REPLICA`.
    pub index: u32,
}

/// Why a plan cannot be scaled as asked.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// No replicated program has this name.
    #[error("{name:?} is not a replicated program (give it `replicas = 1` in the file to scale it)")]
    NotReplicated {
        /// The name asked for.
        name: String,
    },
    /// The count is 0 or above [`MAX_REPLICAS`].
    #[error("cannot scale {name} to {count}: the count must be 1 to {MAX_REPLICAS}")]
    Count {
        /// The program.
        name: String,
        /// The count asked for.
        count: u32,
    },
    /// The scaled plan does not hold together (a new member's name is taken).
    #[error("cannot scale {name}: {source}")]
    Plan {
        /// The program.
        name: String,
        /// What is wrong with the result.
        source: PlanError,
    },
}

/// Member `index` of the group `program` is the template of.
pub fn replica(program: &Program, group: &str, index: u32) -> Program {
    let mut member = program.clone();
    member.name = format!("{group}.{index}");
    member.env.retain(|(name, _)| name != "WARREN_REPLICA");
    member.env.push(("WARREN_REPLICA".to_owned(), index.to_string()));
    member.replica = Some(Replica { group: group.to_owned(), index });
    member
}

/// Rewrites every dependency on a group's name as one on each of its members, in index order.
pub fn expand_dependencies(programs: &mut [Program]) {
    let members = |group: &str, programs: &[Program]| -> Vec<String> {
        programs
            .iter()
            .filter(|p| p.replica.as_ref().is_some_and(|r| r.group == group))
            .map(|p| p.name.clone())
            .collect()
    };
    let groups: Vec<(String, Vec<String>)> = programs
        .iter()
        .filter_map(|p| p.replica.as_ref().filter(|r| r.index == 1).map(|r| r.group.clone()))
        .map(|group| {
            let names = members(&group, programs);
            (group, names)
        })
        .collect();
    for program in programs.iter_mut() {
        let mut expanded = Vec::with_capacity(program.depends_on.len());
        for dependency in program.depends_on.drain(..) {
            match groups.iter().find(|(group, _)| *group == dependency.name) {
                Some((_, names)) => expanded.extend(
                    names.iter().map(|name| super::Dependency { name: name.clone(), condition: dependency.condition }),
                ),
                None => expanded.push(dependency),
            }
        }
        program.depends_on = expanded;
    }
}

impl Plan {
    /// The members of the replicated program `group`, in index order.
    pub fn replicas(&self, group: &str) -> Vec<&Program> {
        let mut members: Vec<&Program> =
            self.programs.iter().filter(|p| p.replica.as_ref().is_some_and(|r| r.group == group)).collect();
        members.sort_by_key(|p| p.replica.as_ref().map_or(0, |r| r.index));
        members
    }

    /// This plan with `count` members of `group`: members past `count` go, new ones (copies of
    /// the first) come after the last, and the others, and every other program, stay as they
    /// are but for the dependencies on the group, which name the new members.
    pub fn scale(&self, group: &str, count: u32) -> Result<Plan, ScaleError> {
        let members = self.replicas(group);
        let Some(template) = members.first().map(|p| (*p).clone()) else {
            return Err(ScaleError::NotReplicated { name: group.to_owned() });
        };
        if count == 0 || count > MAX_REPLICAS {
            return Err(ScaleError::Count { name: group.to_owned(), count });
        }
        let old: Vec<String> = members.iter().map(|p| p.name.clone()).collect();
        let keep = |p: &Program| p.replica.as_ref().is_none_or(|r| r.group != group || r.index <= count);
        let last = self.programs.iter().rposition(|p| old.contains(&p.name)).unwrap_or(0);
        let mut programs = Vec::with_capacity(self.programs.len());
        for (i, program) in self.programs.iter().enumerate() {
            if keep(program) {
                programs.push(program.clone());
            }
            if i == last {
                let have = u32::try_from(members.len()).unwrap_or(u32::MAX);
                programs.extend((have + 1..=count).map(|index| replica(&template, group, index)));
            }
        }
        // Dependencies on the old members are dependencies on the group: put the group's name
        // back where they were, then write it out again over the new members.
        for program in &mut programs {
            let mut seen = false;
            let mut collapsed = Vec::with_capacity(program.depends_on.len());
            for dependency in program.depends_on.drain(..) {
                if old.contains(&dependency.name) {
                    if !std::mem::replace(&mut seen, true) {
                        collapsed.push(super::Dependency { name: group.to_owned(), condition: dependency.condition });
                    }
                } else {
                    collapsed.push(dependency);
                }
            }
            program.depends_on = collapsed;
        }
        expand_dependencies(&mut programs);
        Plan::new(programs).map_err(|source| ScaleError::Plan { name: group.to_owned(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::plan::{Condition, Dependency, Invocation};

    fn plan(count: u32) -> Plan {
        let web = Program::new("web", Invocation::Shell("true".into()));
        let mut programs: Vec<Program> = (1..=count).map(|i| replica(&web, "web", i)).collect();
        let mut proxy = Program::new("proxy", Invocation::Shell("true".into()));
        proxy.depends_on.push(Dependency { name: "web".into(), condition: Condition::Started });
        programs.push(proxy);
        expand_dependencies(&mut programs);
        Plan::new(programs).expect("a valid plan")
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.programs().iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn members_are_numbered_and_dependents_wait_for_all() {
        let plan = plan(3);
        assert_eq!(names(&plan), ["web.1", "web.2", "web.3", "proxy"]);
        let deps: Vec<&str> = plan.programs()[3].depends_on.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(deps, ["web.1", "web.2", "web.3"]);
        assert!(plan.programs()[1].env.contains(&("WARREN_REPLICA".into(), "2".into())));
        assert_eq!(plan.start_order(), [vec!["web.1", "web.2", "web.3"], vec!["proxy"]]);
    }

    #[test]
    fn scaling_keeps_the_others_and_rewrites_dependencies() {
        let three = plan(3);
        let five = three.scale("web", 5).expect("scale up");
        assert_eq!(names(&five), ["web.1", "web.2", "web.3", "web.4", "web.5", "proxy"]);
        assert_eq!(five.programs()[0], three.programs()[0]);
        assert_eq!(five.programs()[5].depends_on.len(), 5);
        let two = five.scale("web", 2).expect("scale down");
        assert_eq!(names(&two), ["web.1", "web.2", "proxy"]);
        assert_eq!(two.programs()[2].depends_on.len(), 2);
        assert!(matches!(two.scale("proxy", 2), Err(ScaleError::NotReplicated { .. })));
        assert!(matches!(two.scale("web", 0), Err(ScaleError::Count { .. })));
    }
}
