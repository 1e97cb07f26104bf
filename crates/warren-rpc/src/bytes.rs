//! A byte-string payload type that travels as bytes, not as an array of numbers, and whose large
//! values are not copied on their way through a connection.
//!
//! serde gives a `Serialize` or `Deserialize` impl no way to learn where its bytes go or come
//! from, so the connection tells `Bytes` through two thread-locals, set only for the duration of
//! one synchronous encode or decode: the frame body being decoded (a large `bin` is then sliced
//! out of it), and whether the encoder can take a large `bin` out of line (it is then written
//! from the caller's buffer, see [`FrameBuf`](crate::outgoing::FrameBuf)).

use std::cell::Cell;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes in an argument or reply.
///
/// `Vec<u8>` serializes as a sequence of integers, which costs up to 5× in MessagePack and far
/// more in JSON. `Bytes` is a MessagePack `bin` and, in JSON, a base64 string.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Bytes(pub bytes::Bytes);

impl Bytes {
    /// The underlying buffer.
    pub fn into_inner(self) -> bytes::Bytes {
        self.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(vec: Vec<u8>) -> Self {
        Bytes(vec.into())
    }
}

impl From<bytes::Bytes> for Bytes {
    fn from(bytes: bytes::Bytes) -> Self {
        Bytes(bytes)
    }
}

/// Byte strings at least this long are neither copied into the frame that carries them nor out
/// of the frame they arrive in. Below it a copy is cheaper than the bookkeeping, and a small
/// slice would keep a whole read buffer alive.
pub(crate) const ZERO_COPY_MIN: usize = 16 * 1024;

thread_local! {
    /// The frame body being decoded on this thread.
    static SOURCE: Cell<Option<bytes::Bytes>> = const { Cell::new(None) };
    /// Whether the encoder running on this thread takes large byte strings out of line.
    static OUT_OF_LINE: Cell<bool> = const { Cell::new(false) };
    /// The large byte string being serialized, for that encoder to recognise when it arrives.
    static PENDING: Cell<Option<bytes::Bytes>> = const { Cell::new(None) };
}

/// Runs `decode` with `source`, the buffer it decodes from, known to [`Bytes`]' deserializer.
pub(crate) fn decoding_from<T>(source: &bytes::Bytes, decode: impl FnOnce() -> T) -> T {
    if source.len() < ZERO_COPY_MIN {
        return decode();
    }
    struct Restore(Option<bytes::Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SOURCE.set(self.0.take());
        }
    }
    let _restore = Restore(SOURCE.replace(Some(source.clone())));
    decode()
}

/// `v` as a slice of the buffer being decoded, if it lies within it.
fn slice_of_source(v: &[u8]) -> Option<bytes::Bytes> {
    if v.len() < ZERO_COPY_MIN {
        return None;
    }
    let source = SOURCE.take()?;
    let (start, base) = (v.as_ptr().addr(), source.as_ptr().addr());
    let inside = start >= base && start + v.len() <= base + source.len();
    let slice = inside.then(|| source.slice_ref(v));
    SOURCE.set(Some(source));
    slice
}

/// While alive, large [`Bytes`] serialized on this thread are offered to the encoder, which
/// takes them with [`take_out_of_line`] instead of copying them.
pub(crate) struct OutOfLine {
    was: bool,
}

impl OutOfLine {
    pub(crate) fn begin() -> OutOfLine {
        OutOfLine { was: OUT_OF_LINE.replace(true) }
    }
}

impl Drop for OutOfLine {
    fn drop(&mut self) {
        OUT_OF_LINE.set(self.was);
        // One the serializer did not pass on as it was (it buffered it, say) must not keep its
        // buffer alive until the next encode.
        drop(PENDING.take());
    }
}

/// The [`Bytes`] offered last, if `data` is its very memory: what the serializer writes for a
/// `bin` is the slice it was given, so pointer and length identify it.
pub(crate) fn take_out_of_line(data: &[u8]) -> Option<bytes::Bytes> {
    if data.len() < ZERO_COPY_MIN {
        return None;
    }
    let pending = PENDING.take()?;
    if pending.as_ptr() == data.as_ptr() && pending.len() == data.len() {
        return Some(pending);
    }
    PENDING.set(Some(pending));
    None
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&STANDARD.encode(&self.0))
        } else {
            if self.0.len() >= ZERO_COPY_MIN && OUT_OF_LINE.get() {
                PENDING.set(Some(self.0.clone()));
            }
            serializer.serialize_bytes(&self.0)
        }
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string, a base64 string or an array of bytes")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
        Ok(Bytes(slice_of_source(v).unwrap_or_else(|| bytes::Bytes::copy_from_slice(v))))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        // Gob's decoder hands over slices of the buffer it reads from.
        Ok(Bytes(slice_of_source(v).unwrap_or_else(|| bytes::Bytes::copy_from_slice(v))))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
        STANDARD.decode(v).map(Bytes::from).map_err(|e| E::custom(format!("invalid base64: {e}")))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            out.push(byte);
        }
        Ok(Bytes::from(out))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(BytesVisitor)
        } else {
            deserializer.deserialize_byte_buf(BytesVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Codec;

    #[test]
    fn travels_as_bin_in_messagepack_and_base64_in_json() {
        let value = Bytes::from(vec![0u8, 1, 2, 250]);
        let packed = Codec::MessagePack.encode(&value).expect("encodes");
        assert_eq!(packed, [0xc4, 4, 0, 1, 2, 250], "bin 8 header then the raw bytes");
        assert_eq!(Codec::MessagePack.decode::<Bytes>(&packed).expect("decodes"), value);
        let json = Codec::Json.encode(&value).expect("encodes");
        assert_eq!(json, br#""AAEC+g==""#);
        assert_eq!(Codec::Json.decode::<Bytes>(&json).expect("decodes"), value);
        assert_eq!(Codec::Json.decode::<Bytes>(b"[0,1,2,250]").expect("array form"), value);
    }
}
