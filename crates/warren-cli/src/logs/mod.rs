//! Programs' output on disk: one file per program, rotated by size, and `warren logs` to read
//! it back — tail, time, filters, all programs merged, and a follow that never loses a line.
//!
//! `warren up` side: [`store::Store`] is the host's log sink; it gives each program a
//! [`writer::Writer`] (buffer, rotation, disk-full accounting), and [`serve`] answers the
//! control calls with [`reader`]. Client side: [`client`], which merges programs by time with
//! [`merge`] (there, rather than in `up`, so that rows past a page's merge horizon are kept
//! rather than read again). Both speak [`api`]; [`record`] is the line format of the files.

pub mod api;
pub mod client;
pub mod merge;
pub mod reader;
pub mod record;
pub mod serve;
pub mod store;
pub mod writer;
