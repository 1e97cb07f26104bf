//! Payload codecs: how argument and reply values are turned into bytes.
//!
//! Both are self-describing and readable from any language: MessagePack with named fields (the
//! default, compact and fast) and JSON (for debugging and peers without a MessagePack library).
//! The codec is chosen once per connection in the hello, never per call.

use std::io::IoSlice;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bytes::{OutOfLine, decoding_from, take_out_of_line};
use crate::writer::Outgoing;

/// A payload encoding; the numbers are the ids used in HELLO and WELCOME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Codec {
    /// MessagePack, structs as maps keyed by field name, byte strings as `bin`.
    MessagePack = 1,
    /// JSON text; warren's [`Bytes`](crate::Bytes) travel as base64 strings.
    Json = 2,
}

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{codec:?}: {message}")]
pub struct CodecError {
    pub codec: Codec,
    pub message: String,
}

impl Codec {
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            1 => Some(Codec::MessagePack),
            2 => Some(Codec::Json),
            _ => None,
        }
    }

    pub fn id(self) -> u8 {
        self as u8
    }

    /// Appends the encoding of `value` to `buf`.
    pub fn encode_into<T: Serialize + ?Sized>(self, buf: &mut BytesMut, value: &T) -> Result<(), CodecError> {
        let mut writer = buf.writer();
        let result = match self {
            Codec::MessagePack => {
                let mut serializer = rmp_serde::Serializer::new(&mut writer).with_struct_map();
                value.serialize(&mut serializer).map_err(|e| e.to_string())
            }
            Codec::Json => serde_json::to_writer(&mut writer, value).map_err(|e| e.to_string()),
        };
        result.map_err(|message| CodecError { codec: self, message })
    }

    /// Appends the encoding of `value` to a frame, whose large byte strings (warren's
    /// [`Bytes`](crate::Bytes)) stay in their own buffers.
    pub(crate) fn encode_frame<T: Serialize + ?Sized>(self, frame: &mut FrameBuf, value: &T) -> Result<(), CodecError> {
        let result = match self {
            Codec::MessagePack => {
                let _out_of_line = OutOfLine::begin();
                let mut serializer = rmp_serde::Serializer::new(&mut *frame).with_struct_map();
                value.serialize(&mut serializer).map_err(|e| e.to_string())
            }
            // JSON carries bytes as base64 text: nothing to take out of line.
            Codec::Json => serde_json::to_writer((&mut frame.buf).writer(), value).map_err(|e| e.to_string()),
        };
        result.map_err(|message| CodecError { codec: self, message })
    }

    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut buf = BytesMut::new();
        self.encode_into(&mut buf, value)?;
        Ok(buf.to_vec())
    }

    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        let result = match self {
            Codec::MessagePack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        };
        result.map_err(|message| CodecError { codec: self, message })
    }

    /// Like [`decode`](Self::decode), but large byte strings in `bytes` come out as slices of it
    /// rather than copies.
    pub fn decode_shared<T: DeserializeOwned>(self, bytes: &Bytes) -> Result<T, CodecError> {
        decoding_from(bytes, || self.decode(bytes))
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
    pub fn with_capacity(capacity: usize) -> FrameBuf {
        FrameBuf { buf: BytesMut::with_capacity(capacity), parts: Vec::new() }
    }

    /// Bytes encoded so far, parts included.
    pub fn len(&self) -> usize {
        self.buf.len() + self.parts.iter().map(|(_, part)| part.len()).sum::<usize>()
    }

    pub fn mark(&self) -> Mark {
        Mark { len: self.len() }
    }

    /// Bytes appended since `mark`, parts included.
    pub fn len_since(&self, mark: Mark) -> usize {
        self.len() - mark.len
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.parts.clear();
    }

    /// Appends `other`'s bytes and parts after these.
    pub fn append(&mut self, other: &FrameBuf) {
        let base = self.buf.len();
        self.parts.extend(other.parts.iter().map(|(at, part)| (base + at, part.clone())));
        self.buf.extend_from_slice(&other.buf);
    }

    /// Appends `bytes`, by copy up to `coalesce_max` bytes, else as a part of its own.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Todo {
        id: String,
    }

    #[test]
    fn messagepack_uses_field_names() {
        let bytes = Codec::MessagePack.encode(&Todo { id: "new_id".into() }).expect("encodes");
        // fixmap(1) "id" "new_id": the field name is on the wire, so peers can add fields.
        assert_eq!(bytes, b"\x81\xa2id\xa6new_id");
        let back: Todo = Codec::MessagePack.decode(&bytes).expect("decodes");
        assert_eq!(back, Todo { id: "new_id".into() });
    }

    #[test]
    fn json_round_trips() {
        let bytes = Codec::Json.encode(&Todo { id: "new_id".into() }).expect("encodes");
        assert_eq!(bytes, br#"{"id":"new_id"}"#);
        let err = Codec::Json.decode::<Todo>(b"{").expect_err("truncated json");
        assert_eq!(err.codec, Codec::Json);
    }
}
