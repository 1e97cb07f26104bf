//! A shared-memory transport between processes of one machine (docs/SHM.md, PROTOCOL.md §19):
//! the segment ([`sys`]), its two rings ([`ring`]), parking and ringing ([`park`]), spinning first when it pays ([`spin`]), the rings
//! as a byte stream ([`stream`]) and the offer in the hello that sets it all up ([`negotiate`]).

pub(crate) mod negotiate;
pub(crate) mod park;
pub(crate) mod ring;
pub(crate) mod spin;
pub(crate) mod stream;
pub(crate) mod sys;
