//! Gob messages to [`Value`]s, with the type definitions a stream has sent so far. Every length
//! and count is checked against the bytes that are there, every nesting against
//! [`MAX_DEPTH`], and the number of types a peer may define is bounded.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use bytes::{Bytes, BytesMut};

use super::prim::Reader;
use super::types::{Ty, WireDef, each_field, id, read_def};
use super::{GobError, MAX_DEPTH, Value, err};

/// Most types one stream may define.
pub(crate) const MAX_TYPES: usize = 4096;

/// Most zero values made up for missing fields in one message (a recursive Go type would have
/// an endless zero value).
const ZERO_BUDGET: usize = 4096;

/// One stream's reading state.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// Each definition, with its message as it came (length prefix included) to pass on with
    /// the values that need it.
    defs: ById<(WireDef, Bytes)>,
    /// For each type of value passed on so far, the definitions it needs, back to back.
    needs: ById<Bytes>,
}

/// A map by type id. Ids are small numbers, at most [`MAX_TYPES`] of them: a multiplication
/// spreads them well enough, and SipHash would cost more than reading a small value does.
type ById<T> = HashMap<i64, T, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, id: i64) {
        self.0 = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A value message, whole with its length prefix, its value not read yet.
#[derive(Debug)]
pub(crate) struct ValueMessage {
    type_id: i64,
    whole: Bytes,
    /// Where the body starts in `whole`, past the type id.
    body: usize,
}

/// Where the next message of a stream is: the length of its prefix and of its body, once
/// enough of it is buffered to tell.
pub(crate) fn next_message(buf: &[u8], max: usize) -> Result<Option<(usize, usize)>, GobError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    let prefix = if first < 0x80 { 1 } else { 1 + usize::from(first.wrapping_neg()) };
    if buf.len() < prefix {
        return Ok(None);
    }
    let len = Reader::new(&buf[..prefix]).uint()?;
    match usize::try_from(len) {
        Ok(0) => err("empty message"),
        Ok(len) if len <= max => Ok(Some((prefix, len))),
        _ => err(format!("message of {len} bytes exceeds the limit of {max}")),
    }
}

impl Decoder {
    /// Reads one message, `whole` with its `prefix`-byte length prefix: a type definition is
    /// kept (`None`), a value handed back unread.
    pub fn read(&mut self, whole: Bytes, prefix: usize) -> Result<Option<ValueMessage>, GobError> {
        let mut r = Reader::shared(&whole, prefix);
        let type_id = r.int()?;
        if type_id >= 0 {
            if !matches!(self.defs.get(&type_id), Some((WireDef::Struct { .. }, _))) && r.uint()? != 0 {
                return err("a value that is not a struct must start with field number 0");
            }
            let body = whole.len() - r.left();
            return Ok(Some(ValueMessage { type_id, whole, body }));
        }
        let defined = type_id.checked_neg().filter(|&t| t >= id::FIRST_USER);
        let Some(defined) = defined else { return err(format!("type definition with id {type_id}")) };
        if self.defs.contains_key(&defined) {
            return err(format!("type {defined} defined twice"));
        }
        if self.defs.len() >= MAX_TYPES {
            return err(format!("more than {MAX_TYPES} types defined"));
        }
        let def = read_def(&mut r)?;
        self.defs.insert(defined, (def, whole));
        Ok(None)
    }

    /// The value a value message carries.
    pub fn value(&self, message: &ValueMessage) -> Result<Value, GobError> {
        let mut r = Reader::shared(&message.whole, message.body);
        self.value_of(message.type_id, &mut r, 0)
    }

    /// A value message as a stream of its own, with the definitions of its type (the
    /// [`Codec::Gob`](crate::Codec::Gob) form): a value of a predefined type is passed on
    /// without a copy.
    pub fn standalone(&mut self, message: ValueMessage) -> Result<Bytes, GobError> {
        if message.type_id < id::FIRST_USER {
            return Ok(message.whole);
        }
        let needs = match self.needs.get(&message.type_id) {
            Some(needs) => needs.clone(),
            None => {
                let needs = self.definitions_of(message.type_id)?;
                self.needs.insert(message.type_id, needs.clone());
                needs
            }
        };
        let mut out = BytesMut::with_capacity(needs.len() + message.whole.len());
        out.extend_from_slice(&needs);
        out.extend_from_slice(&message.whole);
        Ok(out.freeze())
    }

    /// Every definition a type needs, its own included.
    fn definitions_of(&self, type_id: i64) -> Result<Bytes, GobError> {
        let mut out = BytesMut::new();
        let mut seen = HashSet::new();
        let mut todo = vec![type_id];
        while let Some(next) = todo.pop() {
            if next < id::FIRST_USER || !seen.insert(next) {
                continue;
            }
            let Some((def, raw)) = self.defs.get(&next) else {
                return err(format!("value of undefined type {next}"));
            };
            out.extend_from_slice(raw);
            match def {
                WireDef::Array { elem, .. } | WireDef::Slice { elem } => todo.push(*elem),
                WireDef::Map { key, elem } => todo.extend([*key, *elem]),
                WireDef::Struct { fields, .. } => todo.extend(fields.iter().map(|(_, field)| *field)),
                WireDef::Opaque => {}
            }
        }
        Ok(out.freeze())
    }

    /// Reads the type definitions `defs` holds, and nothing else.
    pub fn read_all(&mut self, defs: &Bytes) -> Result<(), GobError> {
        let mut at = 0;
        while at < defs.len() {
            let Some((prefix, len)) = next_message(&defs[at..], usize::MAX)? else { return err("truncated message") };
            let Some(end) = at.checked_add(prefix).and_then(|at| at.checked_add(len)).filter(|&end| end <= defs.len())
            else {
                return err("truncated message");
            };
            if self.read(defs.slice(at..end), prefix)?.is_some() {
                return err("a value among type definitions");
            }
            at = end;
        }
        Ok(())
    }

    /// The type with this id, as warren writes types: for a stream warren wrote.
    pub fn ty_of(&self, type_id: i64, depth: usize) -> Result<Ty, GobError> {
        if depth > MAX_DEPTH {
            return err(format!("type nested deeper than {MAX_DEPTH}"));
        }
        Ok(match type_id {
            id::BOOL => Ty::Bool,
            id::INT => Ty::Int,
            id::UINT => Ty::Uint,
            id::FLOAT => Ty::Float,
            id::BYTES => Ty::Bytes,
            id::STRING => Ty::String,
            _ => match self.defs.get(&type_id).map(|(def, _)| def) {
                Some(WireDef::Slice { elem }) => Ty::Slice(Box::new(self.ty_of(*elem, depth + 1)?)),
                Some(WireDef::Map { key, elem }) => {
                    Ty::Map(Box::new(self.ty_of(*key, depth + 1)?), Box::new(self.ty_of(*elem, depth + 1)?))
                }
                Some(WireDef::Struct { name, fields }) => {
                    let mut typed = Vec::with_capacity(fields.len());
                    for (field, field_type) in fields {
                        typed.push((field.clone(), self.ty_of(*field_type, depth + 1)?));
                    }
                    Ty::Struct(name.clone(), typed)
                }
                _ => return err(format!("type {type_id} is not one warren writes")),
            },
        })
    }

    fn value_of(&self, type_id: i64, r: &mut Reader<'_>, depth: usize) -> Result<Value, GobError> {
        if depth > MAX_DEPTH {
            return err(format!("value nested deeper than {MAX_DEPTH}"));
        }
        Ok(match type_id {
            id::BOOL => Value::Bool(r.uint()? != 0),
            id::INT => Value::Int(r.int()?),
            id::UINT => Value::Uint(r.uint()?),
            id::FLOAT => Value::Float(r.float()?),
            id::BYTES => Value::Bytes(r.owned_bytes()?),
            id::STRING => Value::Str(r.string()?),
            id::COMPLEX => Value::Seq(None, vec![Value::Float(r.float()?), Value::Float(r.float()?)]),
            id::INTERFACE => return err("interface values are not supported"),
            _ => match self.defs.get(&type_id).map(|(def, _)| def) {
                None => return err(format!("value of undefined type {type_id}")),
                Some(WireDef::Array { elem, len }) => {
                    let n = r.count()?;
                    if n != *len {
                        return err(format!("array of {n} elements where its type has {len}"));
                    }
                    self.items(*elem, n, r, depth)?
                }
                Some(WireDef::Slice { elem }) => {
                    let n = r.count()?;
                    self.items(*elem, n, r, depth)?
                }
                Some(WireDef::Map { key, elem }) => {
                    let n = r.count()?;
                    let mut entries = Vec::with_capacity(n);
                    for _ in 0..n {
                        entries.push((self.value_of(*key, r, depth + 1)?, self.value_of(*elem, r, depth + 1)?));
                    }
                    Value::Map(None, entries)
                }
                Some(WireDef::Struct { name, fields }) => {
                    let mut sent: Vec<Option<Value>> = vec![None; fields.len()];
                    each_field(r, |index, r| {
                        let Some((_, field_type)) = fields.get(index) else {
                            return err(format!("field {index} of {name}, which has {}", fields.len()));
                        };
                        sent[index] = Some(self.value_of(*field_type, r, depth + 1)?);
                        Ok(())
                    })?;
                    let mut budget = ZERO_BUDGET;
                    let fields = fields.iter().zip(sent).map(|((field, field_type), value)| {
                        let value =
                            value.unwrap_or_else(|| Value::Absent(Box::new(self.zero(*field_type, &mut budget))));
                        (field.clone(), value)
                    });
                    Value::Struct(name.clone(), fields.collect())
                }
                Some(WireDef::Opaque) => Value::Bytes(r.owned_bytes()?),
            },
        })
    }

    fn items(&self, elem: i64, n: usize, r: &mut Reader<'_>, depth: usize) -> Result<Value, GobError> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value_of(elem, r, depth + 1)?);
        }
        Ok(Value::Seq(None, items))
    }

    /// The zero value of a type, as Go has it for a field it did not send.
    fn zero(&self, type_id: i64, budget: &mut usize) -> Value {
        *budget = budget.saturating_sub(1);
        match type_id {
            id::BOOL => Value::Bool(false),
            id::INT => Value::Int(0),
            id::UINT => Value::Uint(0),
            id::FLOAT => Value::Float(0.0),
            id::BYTES => Value::Bytes(Bytes::new()),
            id::STRING => Value::Str(String::new()),
            _ => match self.defs.get(&type_id).map(|(def, _)| def) {
                Some(WireDef::Array { .. } | WireDef::Slice { .. }) => Value::Seq(None, Vec::new()),
                Some(WireDef::Map { .. }) => Value::Map(None, Vec::new()),
                Some(WireDef::Opaque) => Value::Bytes(Bytes::new()),
                Some(WireDef::Struct { name, fields }) if *budget > 0 => {
                    let fields = fields.iter().map(|(field, field_type)| {
                        (field.clone(), Value::Absent(Box::new(self.zero(*field_type, budget))))
                    });
                    Value::Struct(name.clone(), fields.collect())
                }
                Some(WireDef::Struct { name, .. }) => Value::Struct(name.clone(), Vec::new()),
                None => Value::Nil,
            },
        }
    }
}

/// Decodes every value of a whole gob stream (tests, and values kept whole).
pub(crate) fn stream(bytes: &[u8], max: usize) -> Result<Vec<Value>, GobError> {
    stream_of(&Bytes::copy_from_slice(bytes), max)
}

/// Decodes every value of a whole gob stream, its large byte slices slices of `bytes`.
pub(crate) fn stream_of(bytes: &Bytes, max: usize) -> Result<Vec<Value>, GobError> {
    let mut decoder = Decoder::default();
    let mut values = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some((prefix, len)) = next_message(&bytes[at..], max)? else { return err("truncated message length") };
        let Some(end) = at.checked_add(prefix).and_then(|at| at.checked_add(len)).filter(|&end| end <= bytes.len())
        else {
            return err("truncated message");
        };
        if let Some(message) = decoder.read(bytes.slice(at..end), prefix)? {
            values.push(decoder.value(&message)?);
        }
        at = end;
    }
    Ok(values)
}
