//! Frames on their way out: [`Outgoing`], one frame ready to be written, and [`FrameBuf`], the
//! buffer frames are encoded into and queued in, whose large byte strings stay in their own
//! buffers. Shared by the encoders ([`codec`](crate::codec), `message`) and the
//! [`writer`](crate::writer), which need nothing else of each other.

use std::io::IoSlice;

use bytes::{BufMut, Bytes, BytesMut};

use crate::bytes::take_out_of_line;

/// A frame ready to be written.
#[derive(Debug)]
pub enum Outgoing {
    Whole(Bytes),
    /// A frame encoded into a buffer of its own, appended to the pending frames by copy: a
    /// `Bytes` would have to be made of it first, and that allocates when the buffer is not
    /// full to capacity.
    Owned(BytesMut),
    /// Written back to back. A large payload is one of the parts, as the caller's own buffer:
    /// copying a megabyte into the frame buffer would cost more than the rest of the call.
    Parts(Box<[Bytes]>),
}

impl Outgoing {
    /// The frame in one buffer, copied together if it is in parts.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Outgoing::Whole(bytes) => bytes,
            Outgoing::Owned(bytes) => bytes.freeze(),
            Outgoing::Parts(parts) => {
                let mut whole = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                for part in parts {
                    whole.extend_from_slice(&part);
                }
                whole.freeze()
            }
        }
    }
}

impl From<Bytes> for Outgoing {
    fn from(bytes: Bytes) -> Self {
        Outgoing::Whole(bytes)
    }
}

/// Frames being encoded, or queued for writing: their bytes, and the large parts that go
/// between them.
#[derive(Debug, Default)]
pub(crate) struct FrameBuf {
    pub buf: BytesMut,
    /// Each part with the offset in `buf` where it belongs.
    parts: Vec<(usize, Bytes)>,
}

/// Where a [`FrameBuf`] ended, to measure what was appended after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    len: usize,
}

impl FrameBuf {
    #[inline]
    pub fn with_capacity(capacity: usize) -> FrameBuf {
        FrameBuf { buf: BytesMut::with_capacity(capacity), parts: Vec::new() }
    }

    /// Bytes encoded so far, parts included.
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len() + self.parts.iter().map(|(_, part)| part.len()).sum::<usize>()
    }

    #[inline]
    pub fn mark(&self) -> Mark {
        Mark { len: self.len() }
    }

    /// Bytes appended since `mark`, parts included.
    #[inline]
    pub fn len_since(&self, mark: Mark) -> usize {
        self.len() - mark.len
    }

    #[inline]
    pub fn clear(&mut self) {
        self.buf.clear();
        self.parts.clear();
    }

    /// Appends `other`'s bytes and parts after these.
    #[inline]
    pub fn append(&mut self, other: &FrameBuf) {
        let base = self.buf.len();
        self.parts.extend(other.parts.iter().map(|(at, part)| (base + at, part.clone())));
        self.buf.extend_from_slice(&other.buf);
    }

    /// Appends `bytes`, by copy up to `coalesce_max` bytes, else as a part of its own.
    #[inline]
    pub fn push(&mut self, bytes: Bytes, coalesce_max: usize) {
        if bytes.len() > coalesce_max {
            self.parts.push((self.buf.len(), bytes));
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// The bytes in order, for a vectored write.
    pub fn slices(&self) -> Vec<IoSlice<'_>> {
        let mut slices = Vec::with_capacity(2 * self.parts.len() + 1);
        let mut done = 0;
        for (at, part) in &self.parts {
            if *at > done {
                slices.push(IoSlice::new(&self.buf[done..*at]));
                done = *at;
            }
            slices.push(IoSlice::new(part));
        }
        if done < self.buf.len() {
            slices.push(IoSlice::new(&self.buf[done..]));
        }
        slices
    }

    /// The bytes when they are all in `buf`.
    #[inline]
    pub fn contiguous(&self) -> Option<&[u8]> {
        self.parts.is_empty().then_some(&self.buf[..])
    }

    pub fn into_outgoing(self) -> Outgoing {
        if self.parts.is_empty() {
            return Outgoing::Owned(self.buf);
        }
        let buf = self.buf.freeze();
        let mut out = Vec::with_capacity(2 * self.parts.len() + 1);
        let mut done = 0;
        for (at, part) in self.parts {
            if at > done {
                out.push(buf.slice(done..at));
                done = at;
            }
            out.push(part);
        }
        if done < buf.len() {
            out.push(buf.slice(done..));
        }
        Outgoing::Parts(out.into())
    }
}

impl std::io::Write for FrameBuf {
    // MessagePack writes each marker and length on its own: this runs several times per value.
    #[inline]
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match data {
            [byte] => self.buf.put_u8(*byte),
            _ => match take_out_of_line(data) {
                Some(part) => self.parts.push((self.buf.len(), part)),
                None => self.buf.extend_from_slice(data),
            },
        }
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.write(data).map(drop)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
