//! [`Value`]s to gob messages, each type defined once per stream.
//!
//! A connection's answers are encoded by concurrent calls but written by one writer, in the
//! order they are queued, which need not be the order they were encoded in. So a type counts as
//! defined for the peer only once the message defining it has been queued ([`Encoded::defined`]
//! flags, set by whoever queues it); until then another answer that needs the type defines it
//! again under a fresh id of its own. That happens only while the first answers of a burst race.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::decode::{Decoder, MAX_TYPES, next_message};
use super::prim::{Reader, Sink, int_len, put_bytes, put_float, put_int, put_shared_bytes, put_uint};
use super::types::{Ty, id, write_def};
use super::{GobError, MAX_DEPTH, Value, err};
use crate::outgoing::FrameBuf;

/// One stream's writing state.
#[derive(Debug)]
pub(crate) struct Encoder {
    known: HashMap<Ty, (i64, Arc<AtomicBool>)>,
    next: i64,
    /// The flags of the definitions written by the encode under way.
    defining: Vec<Arc<AtomicBool>>,
    /// The definitions of a [`standalone`] value (the bytes before its value), with the id
    /// its type has on this stream, whether it is a struct, and whether that is sent.
    standalone: HashMap<Bytes, (i64, bool, Arc<AtomicBool>)>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder { known: HashMap::new(), next: id::FIRST_USER, defining: Vec::new(), standalone: HashMap::new() }
    }
}

/// Most bytes a value in the standalone form may have: far more than any answer may.
const MAX_STANDALONE: usize = 1 << 48;

/// Messages ready to send: the type definitions a value needs, then the value.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub bytes: Vec<u8>,
    /// To set once `bytes` is queued ahead of whatever is encoded next.
    pub defined: Vec<Arc<AtomicBool>>,
}

impl Encoded {
    /// Marks the definitions as sent: for a stream written in encoding order.
    pub fn sent(self) -> Vec<u8> {
        for flag in &self.defined {
            flag.store(true, Ordering::Release);
        }
        self.bytes
    }
}

/// Messages as one piece to queue; once it is dropped (copied into the writer's buffer, or
/// written) its type definitions count as sent.
pub(crate) fn queued<const N: usize>(parts: [Encoded; N]) -> bytes::Bytes {
    let mut whole = Encoded { bytes: Vec::new(), defined: Vec::new() };
    for part in parts {
        whole.bytes.extend_from_slice(&part.bytes);
        whole.defined.extend(part.defined);
    }
    bytes::Bytes::from_owner(Queued(whole))
}

struct Queued(Encoded);

impl AsRef<[u8]> for Queued {
    fn as_ref(&self) -> &[u8] {
        &self.0.bytes
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        for flag in &self.0.defined {
            flag.store(true, Ordering::Release);
        }
    }
}

impl Encoder {
    pub fn encode(&mut self, value: &Value) -> Result<Encoded, GobError> {
        let mut out = Vec::new();
        let (ty, top) = self.define(value, &mut out)?;
        let mut body = Vec::with_capacity(64);
        put_int(&mut body, top);
        if !matches!(ty, Ty::Struct(..)) {
            // A value that is not a struct goes as field 0 of an implicit one.
            put_uint(&mut body, 0);
        }
        write_value(&mut body, value, &ty, 0)?;
        message(&mut out, &body);
        let defined = std::mem::take(&mut self.defining);
        Ok(Encoded { bytes: out, defined })
    }

    /// Writes to `out` the definitions `value`'s type needs that this stream lacks: its type
    /// and id. The flags of the definitions are left in `self.defining`.
    fn define(&mut self, value: &Value, out: &mut Vec<u8>) -> Result<(Ty, i64), GobError> {
        // A nil or a reply of `()` goes as an empty struct, which any Go struct accepts.
        let ty = value.ty(0)?.unwrap_or(Ty::Struct(String::new(), Vec::new()));
        let top = self.define_ty(&ty, out)?;
        Ok((ty, top))
    }

    fn define_ty(&mut self, ty: &Ty, out: &mut Vec<u8>) -> Result<i64, GobError> {
        let mut defined = std::mem::take(&mut self.defining);
        let top = self.type_id(ty, out, &mut defined, &mut HashMap::new(), 0);
        self.defining = defined;
        top
    }

    /// Messages that put `head`, then a value in the [`standalone`] form, on this stream: the
    /// value's type is defined here, and its bytes, which name no types, pass on as they are
    /// (`parts`, in order; large ones are not copied). Returns the messages up to the value's
    /// bytes, and the bytes.
    pub fn reencode(&mut self, head: &Value, parts: Vec<Bytes>) -> Result<(Encoded, Vec<Bytes>), GobError> {
        let mut parts = parts.into_iter().filter(|part| !part.is_empty());
        let first = parts.next().unwrap_or_default();
        // The definitions and the start of the value are in the first part: only a large byte
        // slice starts a part of its own.
        let mut at = 0;
        let (prefix, len, standalone_id) = loop {
            // A value's bytes may run on into the parts after this one.
            let Some((prefix, len)) = next_message(first.get(at..).unwrap_or_default(), MAX_STANDALONE)? else {
                return err("a standalone value ends before its value");
            };
            let type_id = Reader::new(&first[at + prefix..]).int()?;
            if type_id >= 0 {
                break (prefix, len, type_id);
            }
            at += prefix + len;
        };
        let defs = first.slice(..at);
        let mut head = self.encode(head)?;
        let (top, is_struct) = match self.standalone.get(&defs) {
            // Types this stream has sent: nothing to read or define.
            Some((top, is_struct, sent)) if sent.load(Ordering::Acquire) => (*top, *is_struct),
            _ => {
                let mut decoder = Decoder::default();
                decoder.read_all(&defs)?;
                let ty = decoder.ty_of(standalone_id, 0)?;
                let top = self.define_ty(&ty, &mut head.bytes)?;
                head.defined.append(&mut self.defining);
                let is_struct = matches!(ty, Ty::Struct(..));
                if let Some((id, sent)) = self.known.get(&ty).filter(|(id, _)| *id == top)
                    && self.standalone.len() < MAX_TYPES
                {
                    self.standalone.insert(defs, (*id, is_struct, Arc::clone(sent)));
                }
                (top, is_struct)
            }
        };
        // The value's bytes, past its type id and a non-struct's field number.
        let skip = at + prefix + int_len(standalone_id) + usize::from(!is_struct);
        let Some(body_len) = (at + prefix + len).checked_sub(skip) else { return err("a standalone value too short") };
        let field = usize::from(!is_struct);
        put_uint(&mut head.bytes, (int_len(top) + field + body_len) as u64);
        put_int(&mut head.bytes, top);
        if !is_struct {
            put_uint(&mut head.bytes, 0);
        }
        let mut body = vec![first.slice(skip.min(first.len())..)];
        body.extend(parts);
        Ok((head, body))
    }

    fn type_id(
        &mut self,
        ty: &Ty,
        out: &mut Vec<u8>,
        defined: &mut Vec<Arc<AtomicBool>>,
        here: &mut HashMap<Ty, i64>,
        depth: usize,
    ) -> Result<i64, GobError> {
        if let Some(builtin) = ty.builtin() {
            return Ok(builtin);
        }
        if let Some(&id) = here.get(ty) {
            return Ok(id);
        }
        let exists = match self.known.get(ty) {
            Some((id, sent)) if sent.load(Ordering::Acquire) => return Ok(*id),
            found => found.is_some(),
        };
        if depth > MAX_DEPTH {
            return err(format!("type nested deeper than {MAX_DEPTH}"));
        }
        let parts: Vec<&Ty> = match ty {
            Ty::Slice(elem) => vec![elem],
            Ty::Map(key, elem) => vec![key, elem],
            Ty::Struct(_, fields) => fields.iter().map(|(_, ty)| ty).collect(),
            _ => Vec::new(),
        };
        let mut part_ids = Vec::with_capacity(parts.len());
        for part in parts {
            part_ids.push(self.type_id(part, out, defined, here, depth + 1)?);
        }
        // Redefinitions while racing count too: the peer keeps every definition.
        if self.known.len() >= MAX_TYPES || self.next >= id::FIRST_USER + 4 * MAX_TYPES as i64 {
            return err(format!("more than {MAX_TYPES} types on one stream"));
        }
        let type_id = self.next;
        self.next += 1;
        let mut body = Vec::new();
        put_int(&mut body, -type_id);
        write_def(&mut body, ty, type_id, &part_ids);
        message(out, &body);
        here.insert(ty.clone(), type_id);
        if !exists {
            let sent = Arc::new(AtomicBool::new(false));
            self.known.insert(ty.clone(), (type_id, Arc::clone(&sent)));
            defined.push(sent);
        }
        Ok(type_id)
    }
}

fn message(out: &mut Vec<u8>, body: &[u8]) {
    put_uint(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn write_value(out: &mut impl Sink, value: &Value, ty: &Ty, depth: usize) -> Result<(), GobError> {
    if depth > MAX_DEPTH {
        return err(format!("value nested deeper than {MAX_DEPTH}"));
    }
    match (ty, value) {
        (_, Value::Absent(zero)) => write_value(out, zero, ty, depth + 1)?,
        (Ty::Bool, Value::Bool(b)) => put_uint(out, u64::from(*b)),
        (Ty::Int, Value::Int(i)) => put_int(out, *i),
        (Ty::Uint, Value::Uint(u)) => put_uint(out, *u),
        (Ty::Uint, Value::Byte(u)) => put_uint(out, u64::from(*u)),
        (Ty::Float, Value::Float(f)) => put_float(out, *f),
        (Ty::Bytes, Value::Bytes(bytes)) => put_shared_bytes(out, bytes),
        // An empty `Vec<u8>` serializes as a sequence with nothing in it to call it bytes; where
        // its slice or struct already says `[]byte` (another element had bytes), it is one.
        (Ty::Bytes, Value::Seq(_, items)) if items.is_empty() => put_bytes(out, &[]),
        (Ty::String, Value::Str(s)) => put_bytes(out, s.as_bytes()),
        (Ty::Slice(elem), Value::Seq(_, items)) => {
            put_uint(out, items.len() as u64);
            for item in items {
                write_value(out, item, elem, depth + 1)?;
            }
        }
        (Ty::Map(key, elem), Value::Map(_, entries)) => {
            put_uint(out, entries.len() as u64);
            for (k, v) in entries {
                write_value(out, k, key, depth + 1)?;
                write_value(out, v, elem, depth + 1)?;
            }
        }
        (Ty::Struct(_, fields), Value::Struct(_, values)) => {
            let mut last = -1i64;
            for (index, (name, field_ty)) in fields.iter().enumerate() {
                let Some((_, value)) = values.iter().find(|(field, _)| field == name) else { continue };
                // Go sends no nil pointers and no fields it did not get.
                if matches!(value, Value::Nil | Value::Absent(_)) {
                    continue;
                }
                put_uint(out, (index as i64 - last) as u64);
                write_value(out, value, field_ty, depth + 1)?;
                last = index as i64;
            }
            put_uint(out, 0);
        }
        (Ty::Struct(..), Value::Nil) => put_uint(out, 0),
        (ty, Value::Nil) => return err(format!("nil in a slice or map of {}", ty.go_name())),
        (ty, value) => return err(format!("a value of type {} is not {value:?}", ty.go_name())),
    }
    Ok(())
}

/// A value as a stream of its own, its type definitions first: the
/// [`Codec::Gob`](crate::Codec::Gob) form, which [`Encoder::reencode`] puts on a connection's
/// stream. Large byte slices stay in their own buffers.
pub(crate) fn standalone(out: &mut FrameBuf, value: &Value) -> Result<(), GobError> {
    let ty = value.ty(0)?.unwrap_or(Ty::Struct(String::new(), Vec::new()));
    let mut defs = Vec::new();
    let top = define_fresh(&ty, &mut defs, &mut Vec::new(), 0)?;
    out.buf.extend_from_slice(&defs);
    let mut body = FrameBuf::with_capacity(64);
    put_int(&mut body, top);
    if !matches!(ty, Ty::Struct(..)) {
        put_uint(&mut body, 0);
    }
    write_value(&mut body, value, &ty, 0)?;
    put_uint(out, body.len() as u64);
    out.append(&body);
    Ok(())
}

/// Defines `ty` on a stream of its own, which has defined the types in `seen` (`seen` is
/// short, and no map is worth building for it).
fn define_fresh<'a>(ty: &'a Ty, out: &mut Vec<u8>, seen: &mut Vec<&'a Ty>, depth: usize) -> Result<i64, GobError> {
    if let Some(builtin) = ty.builtin() {
        return Ok(builtin);
    }
    if let Some(at) = seen.iter().position(|known| *known == ty) {
        return Ok(id::FIRST_USER + at as i64);
    }
    if depth > MAX_DEPTH {
        return err(format!("type nested deeper than {MAX_DEPTH}"));
    }
    let mut part_ids = Vec::new();
    match ty {
        Ty::Slice(elem) => part_ids.push(define_fresh(elem, out, seen, depth + 1)?),
        Ty::Map(key, elem) => {
            part_ids.push(define_fresh(key, out, seen, depth + 1)?);
            part_ids.push(define_fresh(elem, out, seen, depth + 1)?);
        }
        Ty::Struct(_, fields) => {
            for (_, field) in fields {
                part_ids.push(define_fresh(field, out, seen, depth + 1)?);
            }
        }
        _ => {}
    }
    if seen.len() >= MAX_TYPES {
        return err(format!("more than {MAX_TYPES} types in one value"));
    }
    let type_id = id::FIRST_USER + seen.len() as i64;
    seen.push(ty);
    let mut body = Vec::with_capacity(64);
    put_int(&mut body, -type_id);
    write_def(&mut body, ty, type_id, &part_ids);
    message(out, &body);
    Ok(type_id)
}

/// Encodes values as one stream written in order (tests, and values sent whole).
pub(crate) fn stream(values: &[Value]) -> Result<Vec<u8>, GobError> {
    let mut encoder = Encoder::default();
    let mut out = Vec::new();
    for value in values {
        out.extend(encoder.encode(value)?.sent());
    }
    Ok(out)
}
