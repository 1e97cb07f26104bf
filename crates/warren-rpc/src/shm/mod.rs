//! A shared-memory transport between processes of one machine (issue #19; the design is
//! docs/SHM.md). Built in steps (§8 there): the segment, its rings, parking and the stream
//! halves so far; the negotiation in the hello and the spin come next, and nothing here is
//! reachable yet.

#![allow(dead_code, reason = "built in steps (docs/SHM.md §8): the stream that uses these comes next")]

pub(crate) mod park;
pub(crate) mod ring;
pub(crate) mod stream;
pub(crate) mod sys;
