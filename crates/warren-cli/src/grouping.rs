//! `warren status` shows the members of a replicated program together: a line for the group
//! (how many of its members are ready), then its members, indented.

use warren::supervise::plan::Plan;

use crate::control::StatusRow;

/// Marks each row of a replicated program's member with its group.
pub fn fill(plan: &Plan, rows: &mut [StatusRow]) {
    for row in rows {
        row.replica_of = plan.program(&row.name).and_then(|p| p.replica.as_ref()).map(|r| r.group.clone());
    }
}

/// The name as the table shows it: a member's indented under its group.
pub fn shown(row: &StatusRow) -> String {
    if row.replica_of.is_some() { format!("  {}", row.name) } else { row.name.clone() }
}

/// The width [`shown`] takes.
pub fn shown_len(row: &StatusRow) -> usize {
    row.name.len() + if row.replica_of.is_some() { 2 } else { 0 }
}

/// For each row, the group line to print before it: the group's name and a summary such as
/// "replicas: 2/3 ready", before its first member.
pub fn headers(rows: &[StatusRow]) -> Vec<Option<(String, String)>> {
    let mut previous: Option<&str> = None;
    rows.iter()
        .map(|row| {
            let group = row.replica_of.as_deref();
            let first = group.is_some() && group != previous;
            previous = group;
            let group = group.filter(|_| first)?;
            let members: Vec<&StatusRow> = rows.iter().filter(|r| r.replica_of.as_deref() == Some(group)).collect();
            let ready = members.iter().filter(|r| r.state == "ready").count();
            Some((group.to_owned(), format!("replicas: {ready}/{} ready", members.len())))
        })
        .collect()
}
