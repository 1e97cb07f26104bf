//! Payload codecs: how argument and reply values are turned into bytes.
//!
//! Both are self-describing and readable from any language: MessagePack with named fields (the
//! default, compact and fast) and JSON (for debugging and peers without a MessagePack library).
//! The codec is chosen once per connection in the hello, never per call.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bytes::{OutOfLine, decoding_from};
use crate::outgoing::FrameBuf;

/// A payload encoding; the numbers are the ids used in HELLO and WELCOME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Codec {
    /// MessagePack, structs as maps keyed by field name, byte strings as `bin`.
    MessagePack = 1,
    /// JSON text; warren's [`Bytes`](crate::Bytes) travel as base64 strings.
    Json = 2,
    /// Values on their way between Go's gob and a handler: one value as a gob stream of its own
    /// (its type definitions, then the value), which keeps gob's types (signed or not, string
    /// or bytes, struct field names). Used by the gob wire only, never offered or accepted in a
    /// hello.
    Gob = 3,
}

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{codec:?}: {message}")]
pub struct CodecError {
    /// The payload codec.
    pub codec: Codec,
    /// What went wrong, in words.
    pub message: String,
}

impl Codec {
    /// The codec with this id in HELLO and WELCOME.
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            1 => Some(Codec::MessagePack),
            2 => Some(Codec::Json),
            _ => None,
        }
    }

    /// The id used in HELLO and WELCOME.
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
            Codec::Gob => {
                let mut frame = FrameBuf::default();
                crate::gob::encode_payload(&mut frame, value).map(|()| {
                    for part in frame.slices() {
                        writer.get_mut().extend_from_slice(&part);
                    }
                })
            }
            .map_err(|e| e.to_string()),
        };
        result.map_err(|message| CodecError { codec: self, message })
    }

    /// Appends the encoding of `value` to a frame, whose large byte strings (warren's
    /// [`Bytes`](crate::Bytes)) stay in their own buffers.
    #[inline]
    pub(crate) fn encode_frame<T: Serialize + ?Sized>(self, frame: &mut FrameBuf, value: &T) -> Result<(), CodecError> {
        let result = match self {
            Codec::MessagePack => {
                let _out_of_line = OutOfLine::begin();
                let mut serializer = rmp_serde::Serializer::new(&mut *frame).with_struct_map();
                value.serialize(&mut serializer).map_err(|e| e.to_string())
            }
            // JSON carries bytes as base64 text: nothing to take out of line.
            Codec::Json => serde_json::to_writer((&mut frame.buf).writer(), value).map_err(|e| e.to_string()),
            Codec::Gob => {
                let _out_of_line = OutOfLine::begin();
                crate::gob::encode_payload(frame, value).map_err(|e| e.to_string())
            }
        };
        result.map_err(|message| CodecError { codec: self, message })
    }

    /// Encodes a value.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut buf = BytesMut::new();
        self.encode_into(&mut buf, value)?;
        Ok(buf.to_vec())
    }

    /// Decodes a value.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        let result = match self {
            Codec::MessagePack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Gob => crate::gob::decode_payload(&Bytes::copy_from_slice(bytes)).map_err(|e| e.to_string()),
        };
        result.map_err(|message| CodecError { codec: self, message })
    }

    /// Like [`decode`](Self::decode), but large byte strings in `bytes` come out as slices of it
    /// rather than copies.
    pub fn decode_shared<T: DeserializeOwned>(self, bytes: &Bytes) -> Result<T, CodecError> {
        if self == Codec::Gob {
            // Gob's decoder slices large byte strings out of `bytes` itself.
            let decoded = crate::gob::decode_payload(bytes);
            return decoded.map_err(|err| CodecError { codec: self, message: err.to_string() });
        }
        decoding_from(bytes, || self.decode(bytes))
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
