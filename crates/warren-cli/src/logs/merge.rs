//! Several programs' rows as one stream, in time order, on the reader's side: a k-way merge of
//! per-program queues. A row is given out only while every program that may still have rows
//! before it has one queued, so no row goes ahead of one not read yet. Rows are read once: what
//! a page brings beyond the merge's horizon waits here rather than being read again.

use std::collections::VecDeque;

use super::api::Row;

#[derive(Debug)]
struct Queue {
    program: String,
    rows: VecDeque<Row>,
    at_end: bool,
}

/// The queues of the programs being read.
#[derive(Debug)]
pub struct Merger {
    queues: Vec<Queue>,
}

impl Merger {
    pub fn new(programs: impl IntoIterator<Item = String>) -> Merger {
        let queues =
            programs.into_iter().map(|program| Queue { program, rows: VecDeque::new(), at_end: false }).collect();
        Merger { queues }
    }

    pub fn programs(&self) -> Vec<String> {
        self.queues.iter().map(|q| q.program.clone()).collect()
    }

    /// Programs to read before more rows can be given out.
    pub fn wanted(&self) -> Vec<String> {
        self.queues.iter().filter(|q| q.rows.is_empty() && !q.at_end).map(|q| q.program.clone()).collect()
    }

    /// A page read for `asked`; `at_end` are those it read to their end.
    pub fn add(&mut self, rows: Vec<Row>, asked: &[String], at_end: &[String]) {
        for queue in &mut self.queues {
            if asked.contains(&queue.program) {
                queue.at_end = at_end.contains(&queue.program);
            }
        }
        for row in rows {
            if let Some(queue) = self.queues.iter_mut().find(|q| q.program == row.program()) {
                queue.rows.push_back(row);
            }
        }
    }

    /// The next row in time order (ties in the order of the programs), if it can be known.
    pub fn next(&mut self) -> Option<Row> {
        if self.queues.iter().any(|q| q.rows.is_empty() && !q.at_end) {
            return None;
        }
        let queue = self
            .queues
            .iter_mut()
            .filter(|q| !q.rows.is_empty())
            .min_by(|a, b| a.rows[0].time().cmp(b.rows[0].time()))?;
        queue.rows.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::api::Line;
    use crate::logs::record::Stream;

    fn rows(program: &str, times: &[&str]) -> Vec<Row> {
        let line = |(i, time): (usize, &&str)| {
            Row::Line(Line {
                time: (*time).to_owned(),
                program: program.to_owned(),
                pid: 1,
                stream: Stream::Out,
                seq: i as u64 + 1,
                text: String::new(),
            })
        };
        times.iter().enumerate().map(line).collect()
    }

    fn drain(merger: &mut Merger) -> Vec<String> {
        std::iter::from_fn(|| merger.next())
            .map(|row| match row {
                Row::Line(l) => format!("{}{}", l.program, l.seq),
                Row::Gap { .. } => "gap".to_owned(),
            })
            .collect()
    }

    #[test]
    fn rows_come_in_time_order_and_wait_where_a_program_may_have_more() {
        let mut merger = Merger::new(["a".to_owned(), "b".to_owned()]);
        assert_eq!(merger.wanted(), ["a", "b"]);
        let both = ["a".to_owned(), "b".to_owned()];
        let mut page = rows("a", &["1", "4", "5"]);
        page.extend(rows("b", &["2", "3", "6"]));
        merger.add(page, &both, &["b".to_owned()]);
        // a's rows ran out at 5 and a is not at its end: b's 6 must wait.
        assert_eq!(drain(&mut merger), ["a1", "b1", "b2", "a2", "a3"]);
        assert_eq!(merger.wanted(), ["a"]);
        merger.add(Vec::new(), &["a".to_owned()], &["a".to_owned()]);
        assert_eq!(drain(&mut merger), ["b3"]);
        assert!(merger.wanted().is_empty());
    }
}
