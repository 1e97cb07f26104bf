//! The kinds of frames. Apart from [`frame`](crate::frame) because errors name them too
//! ([`FrameError::Unexpected`](crate::FrameError::Unexpected)), and frames return errors.

/// What a frame is; the numbers are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The client's opening.
    Hello = 0x01,
    /// The server's answer to HELLO.
    Welcome = 0x02,
    /// The client's answer to a WELCOME that offered shared memory (`docs/PROTOCOL.md` §19).
    ShmAck = 0x03,
    /// A call.
    Request = 0x10,
    /// A call's reply.
    Response = 0x11,
    /// A call's error answer.
    Error = 0x12,
    /// Stop a call in flight.
    Cancel = 0x13,
    /// A notification, in either direction.
    Notify = 0x20,
    /// A liveness probe.
    Ping = 0x30,
    /// The answer to a PING.
    Pong = 0x31,
    /// The peer said goodbye with an error code.
    Goodbye = 0x40,
}

impl Kind {
    /// The kind with this wire number, if there is one.
    pub fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            0x01 => Kind::Hello,
            0x02 => Kind::Welcome,
            0x03 => Kind::ShmAck,
            0x10 => Kind::Request,
            0x11 => Kind::Response,
            0x12 => Kind::Error,
            0x13 => Kind::Cancel,
            0x20 => Kind::Notify,
            0x30 => Kind::Ping,
            0x31 => Kind::Pong,
            0x40 => Kind::Goodbye,
            _ => return None,
        })
    }
}
