//! serde's data model to [`Value`]: what a handler's reply becomes before it is gob.

use serde::ser::{self, Serialize};

use super::{GobError, Value, go_name};
use crate::bytes::take_out_of_line;

impl ser::Error for GobError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        GobError(msg.to_string())
    }
}

/// Converts any serializable value.
pub(crate) fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, GobError> {
    value.serialize(Ser)
}

struct Ser;

/// A slice, a tuple or a map being collected.
pub(crate) struct Collect {
    /// The elements while they are all `u8`s: a `Vec<u8>` is a gob `[]byte`, and a `Value`
    /// for each of a megabyte of bytes would cost thirty times the bytes.
    bytes: Vec<u8>,
    items: Vec<Value>,
    /// How many elements the serializer said are coming, to reserve for at the first.
    hint: usize,
    entries: Vec<(Value, Value)>,
    key: Option<Value>,
}

/// A struct being collected.
pub(crate) struct Fields {
    name: &'static str,
    fields: Vec<(String, Value)>,
}

fn unsupported(what: &str) -> GobError {
    GobError(format!("{what} has no gob form (use a struct, or a unit variant for a Go string)"))
}

impl ser::Serializer for Ser {
    type Ok = Value;
    type Error = GobError;
    type SerializeSeq = Collect;
    type SerializeTuple = Collect;
    type SerializeTupleStruct = Collect;
    type SerializeTupleVariant = ser::Impossible<Value, GobError>;
    type SerializeMap = Collect;
    type SerializeStruct = Fields;
    type SerializeStructVariant = ser::Impossible<Value, GobError>;

    /// Gob has byte slices: warren's `Bytes` go as `[]byte`, not as base64 text.
    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<Value, GobError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, GobError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, GobError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, GobError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, GobError> {
        Ok(Value::Int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, GobError> {
        Ok(Value::Byte(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, GobError> {
        Ok(Value::Uint(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, GobError> {
        Ok(Value::Uint(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, GobError> {
        Ok(Value::Uint(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, GobError> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, GobError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, GobError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, GobError> {
        Ok(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, GobError> {
        // A large warren `Bytes` under an `OutOfLine` is taken as it is.
        Ok(Value::Bytes(take_out_of_line(v).unwrap_or_else(|| bytes::Bytes::copy_from_slice(v))))
    }
    fn serialize_none(self) -> Result<Value, GobError> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, GobError> {
        // Go flattens pointers: a `*T` is sent as its `T`.
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, GobError> {
        Ok(Value::Struct(String::new(), Vec::new()))
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<Value, GobError> {
        Ok(Value::Struct(name.to_owned(), Vec::new()))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<Value, GobError> {
        Ok(Value::Str(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<Value, GobError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, GobError> {
        // A struct with the one field set, as a Go "one of" is usually written.
        Ok(Value::Struct(name.to_owned(), vec![(go_name(variant), value.serialize(Ser)?)]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Collect, GobError> {
        let hint = len.unwrap_or(0);
        Ok(Collect { bytes: Vec::new(), items: Vec::new(), hint, entries: Vec::new(), key: None })
    }
    fn serialize_tuple(self, len: usize) -> Result<Collect, GobError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Collect, GobError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, GobError> {
        Err(unsupported(&format!("tuple variant {name}::{variant}")))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Collect, GobError> {
        self.serialize_seq(None)
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Fields, GobError> {
        Ok(Fields { name, fields: Vec::with_capacity(len) })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, GobError> {
        Err(unsupported(&format!("struct variant {name}::{variant}")))
    }
}

impl Collect {
    fn seq(self) -> Value {
        if self.items.is_empty() && !self.bytes.is_empty() {
            return Value::Bytes(self.bytes.into());
        }
        Value::Seq(None, self.items)
    }
}

impl ser::SerializeSeq for Collect {
    type Ok = Value;
    type Error = GobError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), GobError> {
        let first = self.items.is_empty() && self.bytes.is_empty();
        match value.serialize(Ser)? {
            Value::Byte(byte) if self.items.is_empty() => {
                if first {
                    self.bytes.reserve(self.hint.min(1 << 24));
                }
                self.bytes.push(byte);
            }
            value => {
                if first {
                    self.items.reserve(self.hint.min(4096));
                }
                // Not all bytes after all: the ones so far become elements.
                self.items.extend(self.bytes.drain(..).map(Value::Byte));
                self.items.push(value);
            }
        }
        Ok(())
    }
    fn end(self) -> Result<Value, GobError> {
        Ok(self.seq())
    }
}

impl ser::SerializeTuple for Collect {
    type Ok = Value;
    type Error = GobError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), GobError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, GobError> {
        Ok(self.seq())
    }
}

impl ser::SerializeTupleStruct for Collect {
    type Ok = Value;
    type Error = GobError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), GobError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, GobError> {
        Ok(self.seq())
    }
}

impl ser::SerializeMap for Collect {
    type Ok = Value;
    type Error = GobError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), GobError> {
        self.key = Some(key.serialize(Ser)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), GobError> {
        let key = self.key.take().ok_or_else(|| GobError("map value without a key".into()))?;
        self.entries.push((key, value.serialize(Ser)?));
        Ok(())
    }
    fn end(self) -> Result<Value, GobError> {
        Ok(Value::Map(None, self.entries))
    }
}

impl ser::SerializeStruct for Fields {
    type Ok = Value;
    type Error = GobError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), GobError> {
        self.fields.push((go_name(key), value.serialize(Ser)?));
        Ok(())
    }
    fn end(self) -> Result<Value, GobError> {
        Ok(Value::Struct(self.name.to_owned(), self.fields))
    }
}
