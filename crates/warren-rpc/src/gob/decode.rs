//! Gob messages to [`Value`]s, with the type definitions a stream has sent so far. Every length
//! and count is checked against the bytes that are there, every nesting against
//! [`MAX_DEPTH`], and the number of types a peer may define is bounded.

use std::collections::HashMap;

use super::prim::Reader;
use super::types::{WireDef, each_field, id, read_def};
use super::{GobError, MAX_DEPTH, Value, err};

/// Most types one stream may define.
pub(crate) const MAX_TYPES: usize = 4096;

/// Most zero values made up for missing fields in one message (a recursive Go type would have
/// an endless zero value).
const ZERO_BUDGET: usize = 4096;

/// One stream's reading state.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    defs: HashMap<i64, WireDef>,
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
    /// Reads one message: `None` for a type definition, else the value it carries.
    pub fn message(&mut self, body: &[u8]) -> Result<Option<Value>, GobError> {
        let mut r = Reader::new(body);
        let type_id = r.int()?;
        if type_id < 0 {
            let defined = type_id.checked_neg().filter(|&t| t >= id::FIRST_USER);
            let Some(defined) = defined else { return err(format!("type definition with id {type_id}")) };
            if self.defs.contains_key(&defined) {
                return err(format!("type {defined} defined twice"));
            }
            if self.defs.len() >= MAX_TYPES {
                return err(format!("more than {MAX_TYPES} types defined"));
            }
            let def = read_def(&mut r)?;
            self.defs.insert(defined, def);
            return Ok(None);
        }
        if !matches!(self.defs.get(&type_id), Some(WireDef::Struct { .. })) && r.uint()? != 0 {
            return err("a value that is not a struct must start with field number 0");
        }
        self.value(type_id, &mut r, 0).map(Some)
    }

    fn value(&self, type_id: i64, r: &mut Reader<'_>, depth: usize) -> Result<Value, GobError> {
        if depth > MAX_DEPTH {
            return err(format!("value nested deeper than {MAX_DEPTH}"));
        }
        Ok(match type_id {
            id::BOOL => Value::Bool(r.uint()? != 0),
            id::INT => Value::Int(r.int()?),
            id::UINT => Value::Uint(r.uint()?),
            id::FLOAT => Value::Float(r.float()?),
            id::BYTES => Value::Bytes(r.bytes()?.to_vec()),
            id::STRING => Value::Str(r.string()?),
            id::COMPLEX => Value::Seq(None, vec![Value::Float(r.float()?), Value::Float(r.float()?)]),
            id::INTERFACE => return err("interface values are not supported"),
            _ => match self.defs.get(&type_id) {
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
                        entries.push((self.value(*key, r, depth + 1)?, self.value(*elem, r, depth + 1)?));
                    }
                    Value::Map(None, entries)
                }
                Some(WireDef::Struct { name, fields }) => {
                    let mut sent: Vec<Option<Value>> = vec![None; fields.len()];
                    each_field(r, |index, r| {
                        let Some((_, field_type)) = fields.get(index) else {
                            return err(format!("field {index} of {name}, which has {}", fields.len()));
                        };
                        sent[index] = Some(self.value(*field_type, r, depth + 1)?);
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
                Some(WireDef::Opaque) => Value::Bytes(r.bytes()?.to_vec()),
            },
        })
    }

    fn items(&self, elem: i64, n: usize, r: &mut Reader<'_>, depth: usize) -> Result<Value, GobError> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(elem, r, depth + 1)?);
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
            id::BYTES => Value::Bytes(Vec::new()),
            id::STRING => Value::Str(String::new()),
            _ => match self.defs.get(&type_id) {
                Some(WireDef::Array { .. } | WireDef::Slice { .. }) => Value::Seq(None, Vec::new()),
                Some(WireDef::Map { .. }) => Value::Map(None, Vec::new()),
                Some(WireDef::Opaque) => Value::Bytes(Vec::new()),
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
pub(crate) fn stream(mut bytes: &[u8], max: usize) -> Result<Vec<Value>, GobError> {
    let mut decoder = Decoder::default();
    let mut values = Vec::new();
    while !bytes.is_empty() {
        let Some((prefix, len)) = next_message(bytes, max)? else { return err("truncated message length") };
        let Some(body) = bytes.get(prefix..prefix + len) else { return err("truncated message") };
        if let Some(value) = decoder.message(body)? {
            values.push(value);
        }
        bytes = &bytes[prefix + len..];
    }
    Ok(values)
}
