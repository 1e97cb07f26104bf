//! Gob's primitive encodings: unsigned integers (one byte below 128, else a negated byte count
//! and big-endian bytes), signed integers (zig-zag in the low bit), floats (byte-reversed
//! bits), and counted byte strings.

use super::{GobError, err};

/// Reads primitives from one message; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
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

    pub fn string(&mut self) -> Result<String, GobError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GobError("string is not UTF-8".into()))
    }
}

pub(crate) fn put_uint(out: &mut Vec<u8>, u: u64) {
    if u < 0x80 {
        out.push(u as u8);
        return;
    }
    let digits = u.to_be_bytes();
    let skip = digits.iter().take_while(|&&d| d == 0).count();
    out.push((8 - skip as u8).wrapping_neg());
    out.extend_from_slice(&digits[skip..]);
}

pub(crate) fn put_int(out: &mut Vec<u8>, i: i64) {
    let u = if i < 0 { ((!i as u64) << 1) | 1 } else { (i as u64) << 1 };
    put_uint(out, u);
}

pub(crate) fn put_float(out: &mut Vec<u8>, f: f64) {
    put_uint(out, f.to_bits().swap_bytes());
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
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
        }
    }
}
