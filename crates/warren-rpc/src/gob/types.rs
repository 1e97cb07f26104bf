//! Gob's types: the ones warren sends ([`Ty`], a tree, since Rust values are finite) and the
//! definitions a peer sends ([`WireDef`], by type id, since Go types may be recursive).

use serde::{Deserialize, Serialize};

use super::prim::{Reader, put_bytes, put_int, put_uint};
use super::{GobError, err};

/// Ids of gob's predefined types.
pub(crate) mod id {
    pub const BOOL: i64 = 1;
    pub const INT: i64 = 2;
    pub const UINT: i64 = 3;
    pub const FLOAT: i64 = 4;
    pub const BYTES: i64 = 5;
    pub const STRING: i64 = 6;
    pub const COMPLEX: i64 = 7;
    pub const INTERFACE: i64 = 8;
    /// The first id free for types a stream defines.
    pub const FIRST_USER: i64 = 65;
}

/// A type warren sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Ty {
    Bool,
    Int,
    Uint,
    Float,
    Bytes,
    String,
    Slice(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    /// Name and fields, by Go name, in order.
    Struct(String, Vec<(String, Ty)>),
}

impl Ty {
    /// The predefined id of a basic type.
    pub fn builtin(&self) -> Option<i64> {
        Some(match self {
            Ty::Bool => id::BOOL,
            Ty::Int => id::INT,
            Ty::Uint => id::UINT,
            Ty::Float => id::FLOAT,
            Ty::Bytes => id::BYTES,
            Ty::String => id::STRING,
            _ => return None,
        })
    }

    /// Go's name for the type, which Go's decoder shows in its errors.
    pub fn go_name(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Float => "float64".into(),
            Ty::Bytes => "[]uint8".into(),
            Ty::String => "string".into(),
            Ty::Slice(elem) => format!("[]{}", elem.go_name()),
            Ty::Map(key, elem) => format!("map[{}]{}", key.go_name(), elem.go_name()),
            Ty::Struct(name, _) => name.clone(),
        }
    }
}

/// A type the peer defined.
#[derive(Debug, Clone)]
pub(crate) enum WireDef {
    Array {
        elem: i64,
        len: usize,
    },
    Slice {
        elem: i64,
    },
    Map {
        key: i64,
        elem: i64,
    },
    Struct {
        name: String,
        fields: Vec<(String, i64)>,
    },
    /// A type with its own encoding (`GobEncoder`, `BinaryMarshaler`, `TextMarshaler`: Go's
    /// `time.Time` is one): its values are byte strings.
    Opaque,
}

/// Calls `each` with the index of every field a struct encoding sends.
pub(crate) fn each_field(
    r: &mut Reader<'_>,
    mut each: impl FnMut(usize, &mut Reader<'_>) -> Result<(), GobError>,
) -> Result<(), GobError> {
    let mut index: Option<usize> = None;
    loop {
        let delta = r.uint()?;
        if delta == 0 {
            return Ok(());
        }
        let next = usize::try_from(delta).ok().and_then(|d| index.map_or(Some(d - 1), |i| i.checked_add(d)));
        let Some(next) = next.filter(|&n| n < 1 << 20) else { return err("struct field number out of range") };
        index = Some(next);
        each(next, r)?;
    }
}

/// `CommonType`: the type's name and id.
fn common(r: &mut Reader<'_>) -> Result<(String, i64), GobError> {
    let (mut name, mut id) = (String::new(), 0);
    each_field(r, |field, r| {
        match field {
            0 => name = r.string()?,
            1 => id = r.int()?,
            _ => return err("unknown field in a type definition"),
        }
        Ok(())
    })?;
    Ok((name, id))
}

/// Reads a `wireType`, the body of a type definition message.
pub(crate) fn read_def(r: &mut Reader<'_>) -> Result<WireDef, GobError> {
    let mut def = None;
    each_field(r, |field, r| {
        let (mut elem, mut key, mut len, mut name, mut fields) = (0, 0, 0i64, String::new(), Vec::new());
        each_field(r, |part, r| {
            match (field, part) {
                (_, 0) => name = common(r)?.0,
                (0 | 1, 1) | (3, 2) => elem = r.int()?,
                (0, 2) => len = r.int()?,
                (3, 1) => key = r.int()?,
                (2, 1) => {
                    for _ in 0..r.count()? {
                        let (mut field_name, mut field_id) = (String::new(), 0);
                        each_field(r, |f, r| {
                            match f {
                                0 => field_name = r.string()?,
                                1 => field_id = r.int()?,
                                _ => return err("unknown field in a struct field definition"),
                            }
                            Ok(())
                        })?;
                        fields.push((field_name, field_id));
                    }
                }
                _ => return err("unknown field in a type definition"),
            }
            Ok(())
        })?;
        def = Some(match field {
            0 => WireDef::Array {
                elem,
                len: usize::try_from(len).map_err(|_| GobError(format!("array of length {len}")))?,
            },
            1 => WireDef::Slice { elem },
            2 => WireDef::Struct { name: std::mem::take(&mut name), fields: std::mem::take(&mut fields) },
            3 => WireDef::Map { key, elem },
            4..=6 => WireDef::Opaque,
            _ => return err("unknown kind of type definition"),
        });
        Ok(())
    })?;
    def.ok_or_else(|| GobError("empty type definition".into()))
}

fn put_common(out: &mut Vec<u8>, name: &str, id: i64) {
    put_uint(out, 1);
    put_bytes(out, name.as_bytes());
    put_uint(out, 1);
    put_int(out, id);
    put_uint(out, 0);
}

/// Writes the `wireType` of `ty` (not a basic type) as type `id`, its parts as `parts` (the
/// element, the key and element, or each field, in order).
pub(crate) fn write_def(out: &mut Vec<u8>, ty: &Ty, id: i64, parts: &[i64]) {
    let name = ty.go_name();
    match ty {
        Ty::Slice(_) => {
            put_uint(out, 2);
            put_uint(out, 1);
            put_common(out, &name, id);
            put_uint(out, 1);
            put_int(out, parts.first().copied().unwrap_or(id::INT));
            put_uint(out, 0);
        }
        Ty::Map(..) => {
            put_uint(out, 4);
            put_uint(out, 1);
            put_common(out, &name, id);
            for part in parts.iter().take(2) {
                put_uint(out, 1);
                put_int(out, *part);
            }
            put_uint(out, 0);
        }
        Ty::Struct(_, fields) => {
            put_uint(out, 3);
            put_uint(out, 1);
            put_common(out, &name, id);
            put_uint(out, 1);
            put_uint(out, fields.len() as u64);
            for ((field, _), part) in fields.iter().zip(parts) {
                put_uint(out, 1);
                put_bytes(out, field.as_bytes());
                put_uint(out, 1);
                put_int(out, *part);
                put_uint(out, 0);
            }
            put_uint(out, 0);
        }
        // Basic types are predefined: there is nothing to write.
        _ => return,
    }
    put_uint(out, 0);
}
