//! The value tree between gob and serde.

use super::types::Ty;
use super::{GobError, MAX_DEPTH, err};

/// A value with the types gob needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `None`: gob sends nothing for it.
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    /// A `u8`, which is a gob `uint` alone and makes a slice of them a `[]byte`.
    Byte(u8),
    Float(f64),
    /// A large one is a slice of the buffer it came in or the `Bytes` it was serialized from.
    Bytes(bytes::Bytes),
    Str(String),
    /// A slice, with its element type when the elements alone cannot tell it (none, or all nil).
    Seq(Option<Ty>, Vec<Value>),
    Map(Option<(Ty, Ty)>, Vec<(Value, Value)>),
    /// A struct: its name and its fields by Go name.
    Struct(String, Vec<(String, Value)>),
    /// A field the sender did not send: `None` to an `Option`, otherwise this zero value.
    Absent(Box<Value>),
}

impl Value {
    /// `Seq` and the string field `text` of a net/rpc `Request` or `Response` header; `None`
    /// when it is not a struct. Go leaves zero values out: a missing field is 0 or "".
    pub fn header(self, text: &str) -> Option<(u64, String)> {
        let Value::Struct(_, fields) = self else { return None };
        let (mut seq, mut found) = (0, String::new());
        for (name, value) in fields {
            match value {
                Value::Uint(s) if name == "Seq" => seq = s,
                Value::Str(t) if name == text => found = t,
                _ => {}
            }
        }
        Some((seq, found))
    }

    /// The gob type of this value; `None` when nothing in it says (a nil, an empty slice of
    /// unknown elements): such a struct field is left out of its struct's type.
    pub fn ty(&self, depth: usize) -> Result<Option<Ty>, GobError> {
        if depth > MAX_DEPTH {
            return err(format!("value nested deeper than {MAX_DEPTH}"));
        }
        Ok(match self {
            Value::Nil => None,
            Value::Absent(zero) => zero.ty(depth + 1)?,
            Value::Bool(_) => Some(Ty::Bool),
            Value::Int(_) => Some(Ty::Int),
            Value::Uint(_) | Value::Byte(_) => Some(Ty::Uint),
            Value::Float(_) => Some(Ty::Float),
            Value::Bytes(_) => Some(Ty::Bytes),
            Value::Str(_) => Some(Ty::String),
            Value::Seq(Some(elem), _) => Some(Ty::Slice(Box::new(elem.clone()))),
            Value::Seq(None, items) => merged(items.iter(), depth)?.map(|elem| Ty::Slice(Box::new(elem))),
            Value::Map(Some((key, elem)), _) => Some(Ty::Map(Box::new(key.clone()), Box::new(elem.clone()))),
            Value::Map(None, entries) => {
                let key = merged(entries.iter().map(|(k, _)| k), depth)?;
                let elem = merged(entries.iter().map(|(_, v)| v), depth)?;
                key.zip(elem).map(|(key, elem)| Ty::Map(Box::new(key), Box::new(elem)))
            }
            Value::Struct(name, fields) => {
                let mut typed = Vec::with_capacity(fields.len());
                for (field, value) in fields {
                    if let Some(ty) = value.ty(depth + 1)? {
                        typed.push((field.clone(), ty));
                    }
                }
                Some(Ty::Struct(name.clone(), typed))
            }
        })
    }
}

/// The one type of a slice's elements or a map's keys or values.
fn merged<'a>(values: impl Iterator<Item = &'a Value>, depth: usize) -> Result<Option<Ty>, GobError> {
    let mut found: Option<Ty> = None;
    for value in values {
        if let Some(ty) = value.ty(depth + 1)? {
            found = Some(match found {
                None => ty,
                Some(seen) => merge(seen, ty)?,
            });
        }
    }
    Ok(found)
}

/// Structs of one Rust type can differ in which fields were nil: their type has every field
/// any of them has.
fn merge(a: Ty, b: Ty) -> Result<Ty, GobError> {
    Ok(match (a, b) {
        (a, b) if a == b => a,
        (Ty::Struct(name, mut fields), Ty::Struct(other, more)) if name == other => {
            for (field, ty) in more {
                match fields.iter().position(|(f, _)| *f == field) {
                    Some(at) => {
                        let seen = std::mem::replace(&mut fields[at].1, Ty::Bool);
                        fields[at].1 = merge(seen, ty)?;
                    }
                    None => fields.push((field, ty)),
                }
            }
            Ty::Struct(name, fields)
        }
        (Ty::Slice(a), Ty::Slice(b)) => Ty::Slice(Box::new(merge(*a, *b)?)),
        (Ty::Map(ak, av), Ty::Map(bk, bv)) => Ty::Map(Box::new(merge(*ak, *bk)?), Box::new(merge(*av, *bv)?)),
        (a, b) => return err(format!("elements of one slice or map have different types ({a:?} and {b:?})")),
    })
}
