//! [`Value`] to serde's data model: what a gob argument becomes for its handler.

use std::borrow::Cow;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use super::{GobError, Value, same_field};
use crate::bytes::{ZERO_COPY_MIN, decoding_from};

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

/// A field the sender's type does not have, whose type is the receiver's to say: Go leaves
/// such a field at its zero value, and so does warren.
fn unknown_zero() -> Value {
    Value::Absent(Box::new(Value::Nil))
}

macro_rules! zero_or_any {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
            if self.is_unknown_zero() {
                return Zero.$method(visitor);
            }
            self.deserialize_any(visitor)
        }
    )*};
}

impl De {
    fn is_unknown_zero(&self) -> bool {
        matches!(&self.0, Value::Absent(zero) if **zero == Value::Nil)
    }

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

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        match self.present() {
            Value::Nil => visitor.visit_unit(),
            Value::Absent(zero) => De(*zero).deserialize_any(visitor),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::Uint(u) => visitor.visit_u64(u),
            Value::Byte(b) => visitor.visit_u8(b),
            Value::Float(f) => visitor.visit_f64(f),
            // A large slice reaches a warren `Bytes` uncopied, as from MessagePack.
            Value::Bytes(bytes) if bytes.len() >= ZERO_COPY_MIN => {
                decoding_from(&bytes, || visitor.visit_bytes(&bytes))
            }
            Value::Bytes(bytes) => visitor.visit_bytes(&bytes),
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
        if self.is_unknown_zero() {
            return Zero.deserialize_unit(visitor);
        }
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
        if self.is_unknown_zero() {
            return Zero.deserialize_seq(visitor);
        }
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
        if self.is_unknown_zero() {
            return Zero.deserialize_struct("", names, visitor);
        }
        match self.present() {
            Value::Struct(_, fields) => {
                // Go names to the Rust names they match: exactly, else ignoring case and `_`.
                let rust_name = |go: String| {
                    let found = names
                        .iter()
                        .find(|rust| **rust == go)
                        .or_else(|| names.iter().find(|rust| same_field(&go, rust)));
                    found.map_or(Cow::Owned(go), |rust| Cow::Borrowed(*rust))
                };
                let mut fields: Vec<(Cow<'static, str>, Value)> =
                    fields.into_iter().map(|(name, value)| (rust_name(name), value)).collect();
                for name in names {
                    if !fields.iter().any(|(field, _)| field == name) {
                        fields.push((Cow::Borrowed(*name), unknown_zero()));
                    }
                }
                visitor.visit_map(MapDeserializer::new(fields.into_iter()))
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

    zero_or_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32 deserialize_f64
        deserialize_char deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_map deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, GobError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, GobError> {
        self.deserialize_seq(visitor)
    }
}

/// Methods of [`Zero`] that answer as another does.
macro_rules! zero_as {
    ($to:ident: $($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
            self.$to(visitor)
        }
    )*};
}

/// The zero value of whatever type is asked for.
struct Zero;

impl<'de> de::Deserializer<'de> for Zero {
    type Error = GobError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_unit()
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_bool(false)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_i64(0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_str("")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_bytes(&[])
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_none()
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_seq(SeqDeserializer::new(std::iter::empty::<Value>()))
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_map(MapDeserializer::new(std::iter::empty::<(Value, Value)>()))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        names: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, GobError> {
        let fields = names.iter().map(|name| (Value::Str((*name).to_owned()), unknown_zero()));
        visitor.visit_map(MapDeserializer::new(fields))
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, GobError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, GobError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, GobError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, GobError> {
        Err(GobError(format!("no value for the enum {name}")))
    }

    zero_as! { deserialize_i64: deserialize_i8 deserialize_i16 deserialize_i32 deserialize_u8 deserialize_u16
    deserialize_u32 deserialize_u64 deserialize_i128 deserialize_u128 }
    zero_as! { deserialize_f64: deserialize_f32 }
    zero_as! { deserialize_str: deserialize_string deserialize_char }
    zero_as! { deserialize_bytes: deserialize_byte_buf }
    serde::forward_to_deserialize_any! { unit unit_struct identifier ignored_any }
}
