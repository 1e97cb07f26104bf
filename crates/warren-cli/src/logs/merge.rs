//! Several programs' rows as one stream, in time order: a k-way merge of the batches read for a
//! page. A row is taken only while every program that may still have rows before it has one
//! in hand, so a page never puts a row ahead of one it has not read yet.

use super::api::{Cursor, Row};
use super::reader::Batch;

/// Takes rows from `batches` in time order (ties in the order given), at most `limit` rows and
/// about `max_bytes` of text, moving each program's position in `cursor` past what was taken.
pub fn merge(mut batches: Vec<(String, Batch)>, cursor: &mut Cursor, limit: usize, max_bytes: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut bytes = 0;
    while rows.len() < limit && bytes < max_bytes {
        if batches.iter().any(|(_, b)| b.rows.is_empty() && !b.at_end) {
            break;
        }
        let next = batches
            .iter()
            .enumerate()
            .filter_map(|(i, (_, b))| b.rows.front().map(|p| (i, p.time.as_str())))
            .min_by(|(_, a), (_, b)| a.cmp(b))
            .map(|(i, _)| i);
        let Some(i) = next else { break };
        let (name, batch) = &mut batches[i];
        let Some(pending) = batch.rows.pop_front() else { break };
        if let Row::Line(line) = &pending.row {
            bytes += line.text.len() + 64;
        }
        cursor.insert(name.clone(), pending.after);
        rows.push(pending.row);
    }
    // A batch taken whole moves on to where its reading stopped, past what the filter left out.
    for (name, batch) in batches {
        if batch.rows.is_empty() {
            cursor.insert(name, batch.end);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::logs::api::{Line, Position};
    use crate::logs::reader::Pending;
    use crate::logs::record::Stream;

    fn batch(program: &str, times: &[&str], at_end: bool) -> (String, Batch) {
        let rows: VecDeque<Pending> = times
            .iter()
            .enumerate()
            .map(|(i, time)| {
                let seq = i as u64 + 1;
                let line = Line {
                    time: (*time).to_owned(),
                    program: program.to_owned(),
                    pid: 1,
                    stream: Stream::Out,
                    seq,
                    text: String::new(),
                };
                let after = Position { generation: 0, offset: seq * 10, seq: Some(seq) };
                Pending { time: (*time).to_owned(), row: Row::Line(line), after }
            })
            .collect();
        let end = rows.back().map_or_else(Position::default, |p| p.after);
        (program.to_owned(), Batch { rows, end, at_end })
    }

    fn order(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|row| match row {
                Row::Line(l) => format!("{}{}", l.program, l.seq),
                Row::Gap { .. } => "gap".to_owned(),
            })
            .collect()
    }

    #[test]
    fn rows_come_in_time_order_and_stop_where_a_program_may_have_more() {
        let mut cursor = Cursor::new();
        let batches = vec![batch("a", &["1", "4", "5"], false), batch("b", &["2", "3", "6"], true)];
        let rows = merge(batches, &mut cursor, 100, usize::MAX);
        // a's batch ran out at 5 and a is not at its end: b's 6 must wait.
        assert_eq!(order(&rows), ["a1", "b1", "b2", "a2", "a3"]);
        assert_eq!(cursor["a"].seq, Some(3));
        assert_eq!(cursor["b"].seq, Some(2));
    }

    #[test]
    fn programs_at_their_end_do_not_hold_the_others_back() {
        let mut cursor = Cursor::new();
        let rows = merge(vec![batch("a", &[], true), batch("b", &["2", "3"], true)], &mut cursor, 1, usize::MAX);
        assert_eq!(order(&rows), ["b1"]);
        assert_eq!(cursor["b"].seq, Some(1));
    }
}
