//! Frames: the unit everything on a warren connection travels in.
//!
//! A frame is a 10-byte header (`body_len u32 | kind u8 | flags u8 | id u32`, big-endian) and a
//! body. The reader checks `body_len` against its limit *before* reserving any memory, so a
//! hostile or broken peer cannot make us allocate what it announces. See `docs/PROTOCOL.md`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{ErrorCode, FrameError};
pub use crate::kind::Kind;

/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 10;

/// Default largest frame body a peer accepts (16 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Longest `Service.Method` name: its length travels in one byte.
pub const MAX_METHOD_LEN: usize = u8::MAX as usize;

/// One decoded frame. The body is a view into the read buffer, not a copy.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame kind.
    pub kind: Kind,
    /// The call id (0 where the kind has none).
    pub id: u32,
    /// The frame body, a view of the read buffer.
    pub body: Bytes,
}

/// Starts a frame in `buf` and returns the offset of its length field, to be patched by
/// [`finish`] once the body is written. Writing the body in place (rather than into a separate
/// vector) saves a copy of every payload.
pub fn begin(buf: &mut BytesMut, kind: Kind, id: u32) -> usize {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_u8(kind as u8);
    buf.put_u8(0);
    buf.put_u32(id);
    start
}

/// Patches the length field of the frame begun at `start`; returns the body length.
pub fn finish(buf: &mut BytesMut, start: usize) -> usize {
    let body_len = buf.len() - start - HEADER_LEN;
    set_body_len(buf, start, body_len);
    body_len
}

/// Patches the length field of the frame begun at `start`, for a body that does not all live in
/// `buf` (its large parts are written from their own buffers).
pub(crate) fn set_body_len(buf: &mut BytesMut, start: usize, body_len: usize) {
    // A body over 4 GiB cannot be produced: callers check sizes against the peer's limit, which
    // is itself a u32, before sending.
    let len = u32::try_from(body_len).unwrap_or(u32::MAX);
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Encodes a frame with an already-built body.
pub fn encode(kind: Kind, id: u32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + body.len());
    let start = begin(&mut buf, kind, id);
    buf.extend_from_slice(body);
    finish(&mut buf, start);
    buf.freeze()
}

/// Writes a `method_len u8 | method` field.
pub fn put_method(buf: &mut BytesMut, method: &str) -> Result<(), FrameError> {
    let len = u8::try_from(method.len()).map_err(|_| FrameError::MethodTooLong { len: method.len() })?;
    buf.put_u8(len);
    buf.extend_from_slice(method.as_bytes());
    Ok(())
}

/// Reads a `method_len u8 | method` field from the front of `body`.
pub fn take_method(body: &mut Bytes) -> Result<MethodName, FrameError> {
    if body.is_empty() {
        return Err(FrameError::Truncated { what: "method name length" });
    }
    let len = body.get_u8() as usize;
    if body.len() < len {
        return Err(FrameError::Truncated { what: "method name" });
    }
    let name = body.split_to(len);
    std::str::from_utf8(&name).map_err(|_| FrameError::MethodNotUtf8)?;
    Ok(MethodName(name))
}

/// A method name read from a frame: a view of the frame, checked to be UTF-8, so that reading
/// one costs no allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct MethodName(Bytes);

impl MethodName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Checked in `take_method`, the only way to make one; never empty by this path.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for MethodName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for MethodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for MethodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<String> for MethodName {
    /// A method name read by a protocol other than the binary one (a JSON-RPC line's).
    fn from(name: String) -> MethodName {
        MethodName(Bytes::from(name))
    }
}

impl From<MethodName> for String {
    fn from(name: MethodName) -> String {
        name.as_str().to_owned()
    }
}

/// Hashes call ids, which the peer numbers 1, 2, 3…, for the maps of calls in flight: the
/// id's bits spread by one multiplication. SipHash's resistance to chosen keys buys nothing
/// here, since a connection only ever holds its own peer's calls, at most `max_in_flight` of them,
/// and costs more than the rest of the lookup.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CallIdHasher(u64);

impl std::hash::Hasher for CallIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by call id.
pub(crate) type CallIdMap<V> = std::collections::HashMap<u32, V, std::hash::BuildHasherDefault<CallIdHasher>>;

/// Reads a big-endian u32 from the front of `body`.
pub fn take_u32(body: &mut Bytes, what: &'static str) -> Result<u32, FrameError> {
    if body.len() < 4 {
        return Err(FrameError::Truncated { what });
    }
    Ok(body.get_u32())
}

/// Reads a big-endian u64 from the front of `body`.
pub fn take_u64(body: &mut Bytes, what: &'static str) -> Result<u64, FrameError> {
    if body.len() < 8 {
        return Err(FrameError::Truncated { what });
    }
    Ok(body.get_u64())
}

/// Encodes a GOODBYE frame: `code u32 | reason`.
pub fn goodbye(code: ErrorCode, reason: &str) -> Bytes {
    goodbye_after(code, reason, 0)
}

/// A GOODBYE whose id field carries the id of the last REQUEST the sender read: the final
/// word of a drained connection, telling the client which waiting calls never ran.
pub fn goodbye_after(code: ErrorCode, reason: &str, last_read: u32) -> Bytes {
    let mut body = Vec::with_capacity(4 + reason.len());
    body.extend_from_slice(&code.as_u32().to_be_bytes());
    body.extend_from_slice(reason.as_bytes());
    encode(Kind::Goodbye, last_read, &body)
}

/// Decodes a GOODBYE body into its code and reason; a malformed one is itself a protocol error.
pub fn parse_goodbye(mut body: Bytes) -> Result<(ErrorCode, String), FrameError> {
    let code = ErrorCode::from_u32(take_u32(&mut body, "goodbye code")?);
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// Buffered frame reader over any byte stream.
///
/// Reads as much as the stream offers into one buffer and hands out frames as zero-copy slices
/// of it, so a burst of small frames costs one `read` syscall, not one per frame. A frame too
/// big for that buffer is read into a buffer of its own, of the size its header announced, so
/// that it is neither copied as the shared buffer grows nor keeps other frames' memory alive.
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    max_frame: u32,
    /// The large frame being read: its header, and its body so far. Kept here rather than in
    /// the future of `read_frame`, which callers may drop and call again (`select!`).
    large: Option<Large>,
}

const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
struct Large {
    kind: Kind,
    id: u32,
    body_len: usize,
    body: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A new one, with defaults.
    pub fn new(io: R, max_frame: u32) -> Self {
        FrameReader { io, buf: BytesMut::with_capacity(READ_CHUNK), max_frame, large: None }
    }

    /// Wraps a stream whose first bytes were already read (e.g. while sniffing the preface).
    pub fn with_buffered(io: R, max_frame: u32, already_read: BytesMut) -> Self {
        FrameReader { io, buf: already_read, max_frame, large: None }
    }

    /// Changes the largest frame body accepted.
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// Reads exactly `n` raw bytes (used for the preface, which is not a frame).
    pub async fn read_raw(&mut self, n: usize) -> Result<Option<Bytes>, FrameError> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return if self.buf.is_empty() { Ok(None) } else { Err(FrameError::Truncated { what: "preface" }) };
            }
        }
        Ok(Some(self.buf.split_to(n).freeze()))
    }

    /// The first `n` bytes, or fewer if the stream ends first, without consuming them.
    pub async fn peek(&mut self, n: usize) -> Result<&[u8], FrameError> {
        while self.buf.len() < n && self.fill().await? {}
        Ok(&self.buf[..self.buf.len().min(n)])
    }

    /// Drops `n` bytes already peeked at.
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n.min(self.buf.len()));
    }

    /// Bytes read from the stream but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Every byte read from the stream and not yet returned as a frame, as the stream had
    /// them: a large frame begun gets its header back. What a reader that stops between two
    /// frames leaves for whoever reads the stream next (a client carried across `exec`).
    pub fn unread(&self) -> BytesMut {
        let mut bytes = BytesMut::new();
        if let Some(Large { kind, id, body_len, body }) = &self.large {
            // `body_len` was checked against the frame limit, which is a u32.
            let len = u32::try_from(*body_len).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&[*kind as u8, 0]);
            bytes.extend_from_slice(&id.to_be_bytes());
            bytes.extend_from_slice(body);
        }
        bytes.extend_from_slice(&self.buf);
        bytes
    }

    /// Whether a whole frame is buffered, so that the next `read_frame` returns without reading
    /// (a frame it would refuse counts too: it returns at once).
    pub fn has_frame(&self) -> bool {
        if self.large.is_some() || self.buf.len() < HEADER_LEN {
            return false;
        }
        let body_len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        body_len > self.max_frame || self.buf.len() - HEADER_LEN >= body_len as usize
    }

    /// The stream and the bytes read from it but not consumed, to hand the connection over to
    /// another protocol (JSON-RPC lines) after sniffing its first byte.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.io, self.buf)
    }

    /// Returns the first byte that is not ASCII whitespace without consuming it (the whitespace
    /// before it is dropped); `None` if the stream ends first. Enough to tell the binary
    /// protocol (0xF7) from JSON (`{`, `[`).
    pub async fn peek_past_whitespace(&mut self) -> Result<Option<u8>, FrameError> {
        loop {
            let blank = self.buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            self.buf.advance(blank);
            if let Some(&first) = self.buf.first() {
                return Ok(Some(first));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Reads and drops whatever the peer still sends, until it closes or `limit` passes. Closing
    /// a Unix socket with unread input makes the peer's read fail with ECONNRESET, which could
    /// hide the GOODBYE explaining why we closed; draining first lets it see the goodbye and
    /// then a clean end of stream.
    pub async fn discard_until_eof(&mut self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                self.buf.clear();
                if !matches!(self.fill().await, Ok(true)) {
                    break;
                }
            }
        })
        .await;
    }

    /// Returns the next frame, `Ok(None)` on a clean end of stream between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if self.large.is_some() {
                return self.read_large().await.map(Some);
            }
            if let Some(frame) = self.try_decode()? {
                return Ok(Some(frame));
            }
            if self.large.is_some() {
                continue;
            }
            if !self.fill().await? {
                return if self.buf.is_empty() { Ok(None) } else { Err(FrameError::Truncated { what: "frame" }) };
            }
        }
    }

    /// Reads the rest of the large frame begun, straight into its own buffer.
    async fn read_large(&mut self) -> Result<Frame, FrameError> {
        while let Some(Large { body_len, body, .. }) = &mut self.large {
            let missing = *body_len - body.len();
            if missing == 0 {
                break;
            }
            // Limited to this frame: what follows it belongs in the shared buffer.
            let n = self.io.read_buf(&mut (&mut *body).limit(missing)).await.map_err(FrameError::Io)?;
            if n == 0 {
                self.large = None;
                return Err(FrameError::Truncated { what: "frame" });
            }
        }
        match self.large.take() {
            Some(Large { kind, id, body, .. }) => Ok(Frame { kind, id, body: body.freeze() }),
            None => Err(FrameError::Truncated { what: "frame" }),
        }
    }

    /// Decodes one frame from the buffer if a whole one is there.
    fn try_decode(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = &self.buf[..HEADER_LEN];
        let body_len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if body_len > self.max_frame {
            return Err(FrameError::TooLarge { size: u64::from(body_len), limit: self.max_frame });
        }
        let kind_byte = header[4];
        let kind = Kind::from_u8(kind_byte).ok_or(FrameError::UnknownKind { kind: kind_byte })?;
        let id = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
        let total = HEADER_LEN + body_len as usize;
        if self.buf.len() < total {
            // Allocate only now that the length is known to be within the limit.
            if total > READ_CHUNK {
                self.buf.advance(HEADER_LEN);
                let body_len = body_len as usize;
                let mut body = BytesMut::with_capacity(body_len);
                body.extend_from_slice(&self.buf);
                self.buf.clear();
                self.large = Some(Large { kind, id, body_len, body });
            } else {
                self.buf.reserve(total - self.buf.len());
            }
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let body = self.buf.split_to(body_len as usize).freeze();
        Ok(Some(Frame { kind, id, body }))
    }

    /// Reads more bytes; false at end of stream.
    async fn fill(&mut self) -> Result<bool, FrameError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_CHUNK);
        }
        let n = self.io.read_buf(&mut self.buf).await.map_err(FrameError::Io)?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests;
