//! Gob's primitive encodings: unsigned integers (one byte below 128, else a negated byte count
//! and big-endian bytes), signed integers (zig-zag in the low bit), floats (byte-reversed
//! bits), and counted byte strings.

use super::{GobError, err};
use crate::bytes::ZERO_COPY_MIN;
use crate::outgoing::FrameBuf;

/// Reads primitives from one message; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    /// The buffer `bytes` lies in, when large byte slices may be taken out of it uncopied.
    source: Option<&'a bytes::Bytes>,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, source: None }
    }

    /// A reader of `source[from..]`, whose large byte slices are slices of `source`.
    pub fn shared(source: &'a bytes::Bytes, from: usize) -> Self {
        Reader { bytes: source.get(from..).unwrap_or_default(), source: Some(source) }
    }

    pub fn uint(&mut self) -> Result<u64, GobError> {
        let (&first, rest) = self.bytes.split_first().ok_or_else(|| GobError("truncated integer".into()))?;
        if first < 0x80 {
            self.bytes = rest;
            return Ok(u64::from(first));
        }
        let n = usize::from(first.wrapping_neg());
        if n > 8 {
            return err(format!("integer of {n} bytes (at most 8)"));
        }
        let Some((digits, rest)) = rest.split_at_checked(n) else { return err("truncated integer") };
        self.bytes = rest;
        Ok(digits.iter().fold(0u64, |acc, &d| (acc << 8) | u64::from(d)))
    }

    pub fn int(&mut self) -> Result<i64, GobError> {
        let u = self.uint()?;
        // The low bit says whether the rest is complemented.
        Ok(if u & 1 == 1 { !(u >> 1) as i64 } else { (u >> 1) as i64 })
    }

    pub fn float(&mut self) -> Result<f64, GobError> {
        Ok(f64::from_bits(self.uint()?.swap_bytes()))
    }

    /// A count of elements, each at least one byte: more than the bytes left is a lie.
    pub fn count(&mut self) -> Result<usize, GobError> {
        let n = self.uint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.bytes.len() => Ok(n),
            _ => err(format!("count {n} exceeds the {} bytes left in the message", self.bytes.len())),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], GobError> {
        let n = self.count()?;
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    /// A byte slice of its own: a slice of the source when large, else a copy (a small slice
    /// would keep a whole read buffer alive).
    pub fn owned_bytes(&mut self) -> Result<bytes::Bytes, GobError> {
        let bytes = self.bytes()?;
        Ok(match self.source {
            Some(source) if bytes.len() >= ZERO_COPY_MIN => source.slice_ref(bytes),
            _ => bytes::Bytes::copy_from_slice(bytes),
        })
    }

    /// How many bytes are left.
    pub fn left(&self) -> usize {
        self.bytes.len()
    }

    pub fn string(&mut self) -> Result<String, GobError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GobError("string is not UTF-8".into()))
    }
}

/// Where gob bytes are written: a message being built, or a frame whose large byte slices stay
/// in their own buffers.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// A byte slice the sink may keep by reference rather than copy.
    fn put_shared(&mut self, bytes: &bytes::Bytes) {
        self.put(bytes);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for FrameBuf {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn put_shared(&mut self, bytes: &bytes::Bytes) {
        self.push(bytes.clone(), ZERO_COPY_MIN - 1);
    }
}

pub(crate) fn put_uint(out: &mut impl Sink, u: u64) {
    if u < 0x80 {
        out.put(&[u as u8]);
        return;
    }
    let digits = u.to_be_bytes();
    let skip = digits.iter().take_while(|&&d| d == 0).count();
    let mut encoded = [0u8; 9];
    encoded[0] = (8 - skip as u8).wrapping_neg();
    encoded[1..=8 - skip].copy_from_slice(&digits[skip..]);
    out.put(&encoded[..=8 - skip]);
}

/// How many bytes `put_uint` writes for `u`.
pub(crate) fn uint_len(u: u64) -> usize {
    if u < 0x80 { 1 } else { 1 + 8 - (u.leading_zeros() / 8) as usize }
}

/// How many bytes `put_int` writes for `i`.
pub(crate) fn int_len(i: i64) -> usize {
    uint_len(zigzag(i))
}

/// A signed integer as gob sends it: the low bit says whether the rest is complemented.
fn zigzag(i: i64) -> u64 {
    if i < 0 { ((!i as u64) << 1) | 1 } else { (i as u64) << 1 }
}

pub(crate) fn put_int(out: &mut impl Sink, i: i64) {
    put_uint(out, zigzag(i));
}

pub(crate) fn put_float(out: &mut impl Sink, f: f64) {
    put_uint(out, f.to_bits().swap_bytes());
}

pub(crate) fn put_bytes(out: &mut impl Sink, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.put(bytes);
}

/// Like [`put_bytes`], keeping a large slice by reference where the sink can.
pub(crate) fn put_shared_bytes(out: &mut impl Sink, bytes: &bytes::Bytes) {
    put_uint(out, bytes.len() as u64);
    out.put_shared(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_match_gob_doc_examples() {
        let mut out = Vec::new();
        put_uint(&mut out, 256);
        assert_eq!(out, [0xFE, 0x01, 0x00]);
        out.clear();
        put_int(&mut out, -129);
        assert_eq!(out, [0xFE, 0x01, 0x01]);
        out.clear();
        put_float(&mut out, 17.0);
        assert_eq!(out, [0xFE, 0x31, 0x40]);
        let mut r = Reader::new(&out);
        assert_eq!(r.float().expect("a float"), 17.0);
        for i in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_int(&mut out, i);
            assert_eq!(Reader::new(&out).int().expect("an int"), i);
            assert_eq!(out.len(), int_len(i), "{i}");
        }
        for u in [0u64, 0x7F, 0x80, 0xFF, 0x100, u64::MAX] {
            let mut out = Vec::new();
            put_uint(&mut out, u);
            assert_eq!(out.len(), uint_len(u), "{u}");
        }
    }
}
