//! A byte-string payload type that travels as bytes, not as an array of numbers.

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

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&STANDARD.encode(&self.0))
        } else {
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

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(bytes::Bytes::copy_from_slice(v)))
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
