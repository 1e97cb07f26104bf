//! A shared-memory transport between processes of one machine (issue #19; the design is
//! docs/SHM.md). Built in steps (§8 there): the segment and its rings so far; the stream
//! halves, the negotiation and the wake-ups come next, and nothing here is reachable yet.

#![allow(dead_code, reason = "built in steps (docs/SHM.md §8): the stream that uses these comes next")]

pub(crate) mod ring;
pub(crate) mod sys;
