//! The raw baseline's wire format: a 4-byte little-endian length, then the body. A request body
//! is a method byte (`G` for Get, `E` for Echo) and the argument (the id, or the payload); the
//! reply body is the argument sent back. No serialization, no call ids: blocking ping-pong, the
//! physical limit of a Unix socket.

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;

pub const GET: u8 = b'G';
pub const ECHO: u8 = b'E';
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// The buffer and frame parsing of a raw reader, apart from how bytes arrive: the socket floor
/// reads them blocking ([`Conn`]), the shared-memory floor awaiting (`shm_floor::Frames`).
#[derive(Debug)]
pub struct FrameBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for FrameBuf {
    fn default() -> Self {
        FrameBuf { buf: vec![0; 64 * 1024], start: 0, end: 0 }
    }
}

impl FrameBuf {
    /// Where to read into while fewer than `need` bytes are buffered (made room for first);
    /// `None` once they are.
    pub fn room_for(&mut self, need: usize) -> Option<&mut [u8]> {
        if self.end - self.start >= need {
            return None;
        }
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
        }
        Some(&mut self.buf[self.end..])
    }

    /// `n` bytes were read into the room; `n == 0` is the end of the stream: clean (`false`)
    /// between frames, an error within one.
    pub fn filled(&mut self, n: usize) -> io::Result<bool> {
        if n == 0 {
            return if self.end == self.start { Ok(false) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
        self.end += n;
        Ok(true)
    }

    /// The body length the buffered header announces, checked.
    pub fn body_len(&self) -> io::Result<usize> {
        let mut header = [0u8; 4];
        header.copy_from_slice(&self.buf[self.start..self.start + 4]);
        let len = u32::from_le_bytes(header) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
        }
        Ok(len)
    }

    /// Takes the buffered frame of `len` body bytes; its body.
    pub fn take(&mut self, len: usize) -> &[u8] {
        let body = self.start + 4..self.start + 4 + len;
        self.start += 4 + len;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        &self.buf[body]
    }
}

/// A buffered frame reader over one stream: small frames arrive in one `read`.
#[derive(Debug)]
pub struct Conn {
    pub stream: UnixStream,
    frames: FrameBuf,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn { stream, frames: FrameBuf::default() }
    }

    /// Ensures `need` bytes are buffered; false on end-of-file before any byte.
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        while let Some(room) = self.frames.room_for(need) {
            let n = self.stream.read(room)?;
            if !self.frames.filled(n)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The next frame's body, or `None` at a clean end-of-file.
    pub fn read_frame(&mut self) -> io::Result<Option<&[u8]>> {
        if !self.fill(4)? {
            return Ok(None);
        }
        let len = self.frames.body_len()?;
        if !self.fill(4 + len)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Some(self.frames.take(len)))
    }
}

/// Writes one frame whose body is `a` then `b`, header included, in as few syscalls as the
/// kernel allows (one `writev` for anything that fits the socket buffer).
pub fn write_frame(stream: &mut UnixStream, a: &[u8], b: &[u8]) -> io::Result<()> {
    let len = u32::try_from(a.len() + b.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let header = len.to_le_bytes();
    let mut slices = [IoSlice::new(&header), IoSlice::new(a), IoSlice::new(b)];
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let n = stream.write_vectored(bufs)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_any_size_cross_a_socket() {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let big: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let writer = std::thread::spawn(move || {
            let mut a = a;
            write_frame(&mut a, &[GET], b"new_id").expect("small");
            write_frame(&mut a, &[ECHO], &sent).expect("big");
        });
        let mut conn = Conn::new(b);
        assert_eq!(conn.read_frame().expect("read").expect("frame"), b"Gnew_id");
        let frame = conn.read_frame().expect("read").expect("frame");
        assert_eq!(frame[0], ECHO);
        assert_eq!(&frame[1..], &big[..]);
        writer.join().expect("writer");
        assert!(conn.read_frame().expect("clean end").is_none());
    }
}
