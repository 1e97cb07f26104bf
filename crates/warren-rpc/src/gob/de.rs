//! [`Value`] to serde's data model: what a gob argument becomes for its handler.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use super::{GobError, Value, same_field};

impl de::Error for GobError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        GobError(msg.to_string())
    }
}

/// Deserializes a value into any type.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, GobError> {
    T::deserialize(De(value))
}

/// A value being deserialized.
pub(crate) struct De(Value);

impl<'de> IntoDeserializer<'de, GobError> for Value {
    type Deserializer = De;
    fn into_deserializer(self) -> De {
        De(self)
    }
}

impl De {
    /// The value itself, past a missing field's stand-in.
    fn present(self) -> Value {
        match self.0 {
            Value::Absent(zero) => *zero,
            value => value,
        }
    }
}

impl<'de> de::Deserializer<'de> for De {
    type Error = GobError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        match self.present() {
            Value::Nil => visitor.visit_unit(),
            Value::Absent(zero) => De(*zero).deserialize_any(visitor),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::Uint(u) => visitor.visit_u64(u),
            Value::Byte(b) => visitor.visit_u8(b),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Bytes(bytes) => visitor.visit_byte_buf(bytes),
            Value::Str(s) => visitor.visit_string(s),
            Value::Seq(_, items) => visitor.visit_seq(SeqDeserializer::new(items.into_iter())),
            Value::Map(_, entries) => visitor.visit_map(MapDeserializer::new(entries.into_iter())),
            Value::Struct(_, fields) => {
                let fields = fields.into_iter().map(|(name, value)| (Value::Str(name), value));
                visitor.visit_map(MapDeserializer::new(fields))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        match self.0 {
            Value::Nil | Value::Absent(_) => visitor.visit_none(),
            value => visitor.visit_some(De(value)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        match self.present() {
            // Go has no unit: its callers send `struct{}{}` to methods that take nothing.
            Value::Nil | Value::Struct(..) => visitor.visit_unit(),
            other => De(other).deserialize_any(visitor),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, GobError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        match self.present() {
            // A `Vec<u8>` asks for a sequence; Go sent a `[]byte`.
            Value::Bytes(bytes) => visitor.visit_seq(SeqDeserializer::new(bytes.into_iter())),
            other => De(other).deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        names: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, GobError> {
        match self.present() {
            Value::Struct(_, fields) => {
                // Go names to the Rust names they match: exactly, else ignoring case and `_`.
                let rust_name = |go: String| {
                    let found = names
                        .iter()
                        .find(|rust| **rust == go)
                        .or_else(|| names.iter().find(|rust| same_field(&go, rust)));
                    found.map_or(go, |rust| (*rust).to_owned())
                };
                let fields = fields.into_iter().map(|(name, value)| (Value::Str(rust_name(name)), value));
                visitor.visit_map(MapDeserializer::new(fields))
            }
            other => De(other).deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, GobError> {
        match self.present() {
            Value::Str(variant) => visitor.visit_enum(variant.into_deserializer()),
            other => Err(GobError(format!("an enum from {other:?}: only unit variants, as Go strings"))),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf tuple tuple_struct map identifier ignored_any
    }
}
