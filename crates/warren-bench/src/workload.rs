//! The workloads, defined once for every implementation.
//!
//! - `tiny`: `Task.Get(id: string) -> Todo { ID: string }` with `id = "new_id"`.
//! - `echo4k`, `echo1m`: `Task.Echo(bytes) -> bytes` with 4 KiB or 1 MiB whose byte `i` is
//!   `i mod 251`.
//!
//! The Go client (`bench/go/client`) implements the same three by name.

use serde::{Deserialize, Serialize};

/// The id sent by `Task.Get`.
pub const GET_ID: &str = "new_id";

/// What one call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    Tiny,
    Echo4k,
    Echo1m,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Tiny, Workload::Echo4k, Workload::Echo1m];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Tiny => "tiny",
            Workload::Echo4k => "echo4k",
            Workload::Echo1m => "echo1m",
        }
    }

    /// How it reads in a table.
    pub fn label(self) -> &'static str {
        match self {
            Workload::Tiny => "tiny Task.Get",
            Workload::Echo4k => "4 KiB echo",
            Workload::Echo1m => "1 MiB echo",
        }
    }

    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The echo payload size (0 for `tiny`).
    pub fn size(self) -> usize {
        match self {
            Workload::Tiny => 0,
            Workload::Echo4k => 4 * 1024,
            Workload::Echo1m => 1024 * 1024,
        }
    }

    /// The echo payload: byte `i` is `i mod 251`.
    pub fn payload(self) -> Vec<u8> {
        (0..self.size()).map(|i| (i % 251) as u8).collect()
    }
}

/// `Task.Get`'s reply, named `ID` as in the Go original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    #[serde(rename = "ID")]
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_i_mod_251() {
        let payload = Workload::Echo1m.payload();
        assert_eq!(payload.len(), 1 << 20);
        assert!(payload.iter().enumerate().all(|(i, &b)| usize::from(b) == i % 251));
        assert!(Workload::Tiny.payload().is_empty());
        assert_eq!(Workload::parse("echo4k"), Some(Workload::Echo4k));
    }
}
