//! The kinds of frames. Apart from [`frame`](crate::frame) because errors name them too
//! ([`FrameError::Unexpected`](crate::FrameError::Unexpected)), and frames return errors.

/// What a frame is; the numbers are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 0x01,
    Welcome = 0x02,
    Request = 0x10,
    Response = 0x11,
    Error = 0x12,
    Cancel = 0x13,
    Notify = 0x20,
    Ping = 0x30,
    Pong = 0x31,
    Goodbye = 0x40,
}

impl Kind {
    /// The kind with this wire number, if there is one.
    pub fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            0x01 => Kind::Hello,
            0x02 => Kind::Welcome,
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
