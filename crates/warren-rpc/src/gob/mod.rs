//! Go's `encoding/gob`, as Go's `net/rpc` speaks it by default (the wire format is described in
//! Go's `encoding/gob/doc.go`; nothing here is Go's code).
//!
//! Values cross between gob and serde through [`Value`], a tree that keeps what gob needs and
//! serde forgets or Go forgets: signed against unsigned integers, strings against byte slices,
//! struct field names, the element type of a slice. Gob bytes decode into a `Value`
//! ([`decode`]), which deserializes into a handler's argument type ([`de`]); a handler's reply
//! serializes into a `Value` ([`ser`]), which encodes as gob ([`encode`]) with each type
//! defined once per connection, as Go expects.
//!
//! Between a connection and a handler a value travels in the [`Codec::Gob`](crate::Codec::Gob)
//! form: a gob stream of its own, the definitions of its type and then the value. A call's
//! argument is the message as read, with the definitions it needs put before it (none for a
//! `[]byte`: the payload is then a slice of the read buffer); a reply's value bytes name no
//! type ids, so the connection only defines its type on its own stream and sends those bytes
//! as they are. A large byte slice is never copied on its way: it is a slice of the buffer it
//! was read into, and the handler's own buffer on the way out.
//!
//! Field names. Go matches struct fields by exact name, and only exported (capitalised) names
//! travel. Warren emits the Go name a Go programmer would write for a serde field name: each
//! `_`-separated word capitalised, Go's common initialisms upper-cased (`id` → `ID`,
//! `user_id` → `UserID`, `created_at` → `CreatedAt`); a name that already starts with a capital
//! (`#[serde(rename = "URLs")]`) is used as is. Decoding is forgiving the other way: a Go field
//! matches a Rust field when they are equal ignoring case and underscores.
//!
//! Integers keep their sign: a Rust `i64` is a gob `int`, a `u64` a gob `uint`, and Go refuses
//! one for the other, so a Go `int` wants a signed Rust integer. Go's nil pointers and zero
//! values are not sent; a missing field decodes as `None` for an `Option` and as the zero value
//! otherwise, as in Go.

pub(crate) mod de;
pub(crate) mod decode;
pub(crate) mod encode;
mod prim;
pub(crate) mod ser;
pub(crate) mod types;
pub(crate) mod value;

pub(crate) use value::Value;

/// Encodes `values` as one gob stream, as one Go `gob.Encoder` would.
pub fn encode_stream<T: serde::Serialize>(values: &[T]) -> Result<Vec<u8>, GobError> {
    let values: Result<Vec<Value>, GobError> = values.iter().map(ser::to_value).collect();
    encode::stream(&values?)
}

/// Decodes every value of a gob stream, as one Go `gob.Decoder` would; no message may exceed
/// `max` bytes.
pub fn decode_stream<T: serde::de::DeserializeOwned>(bytes: &[u8], max: usize) -> Result<Vec<T>, GobError> {
    decode::stream(bytes, max)?.into_iter().map(de::from_value).collect()
}

/// Appends `value` in the [`Codec::Gob`](crate::Codec::Gob) form: a gob stream of its own.
pub(crate) fn encode_payload<T: serde::Serialize + ?Sized>(
    out: &mut crate::outgoing::FrameBuf,
    value: &T,
) -> Result<(), GobError> {
    encode::standalone(out, &ser::to_value(value)?)
}

/// The value of a payload in the [`Codec::Gob`](crate::Codec::Gob) form; its large byte
/// strings are slices of `payload`.
pub(crate) fn decode_payload<T: serde::de::DeserializeOwned>(payload: &bytes::Bytes) -> Result<T, GobError> {
    let mut values = decode::stream_of(payload, payload.len())?;
    match (values.pop(), values.is_empty()) {
        (Some(value), true) => de::from_value(value),
        (None, _) => err("no value in the payload"),
        (Some(_), false) => err("more than one value in the payload"),
    }
}

/// How deep values and types may nest: bounds the recursion of every decoder and encoder.
pub(crate) const MAX_DEPTH: usize = 64;

/// Gob bytes or a value could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("gob: {0}")]
pub struct GobError(pub(crate) String);

pub(crate) fn err<T>(message: impl Into<String>) -> Result<T, GobError> {
    Err(GobError(message.into()))
}

/// Go's common initialisms, written in capitals in Go names (golint's list).
const INITIALISMS: [&str; 38] = [
    "acl", "api", "ascii", "cpu", "css", "dns", "eof", "guid", "html", "http", "https", "id", "ip", "json", "lhs",
    "qps", "ram", "rhs", "rpc", "sla", "smtp", "sql", "ssh", "tcp", "tls", "ttl", "udp", "ui", "uid", "uuid", "uri",
    "url", "utf8", "vm", "xml", "xmpp", "xsrf", "xss",
];

/// The Go field name for a serde field name (see the module documentation).
pub(crate) fn go_name(serde_name: &str) -> String {
    if serde_name.starts_with(|c: char| c.is_ascii_uppercase()) {
        return serde_name.to_owned();
    }
    let mut out = String::with_capacity(serde_name.len());
    for word in serde_name.split('_').filter(|word| !word.is_empty()) {
        if INITIALISMS.contains(&word.to_ascii_lowercase().as_str()) {
            out.push_str(&word.to_ascii_uppercase());
        } else {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

/// Whether a Go field name and a Rust field name name the same field.
pub(crate) fn same_field(go: &str, rust: &str) -> bool {
    let mut a = go.chars().filter(|&c| c != '_').map(|c| c.to_ascii_lowercase());
    let mut b = rust.chars().filter(|&c| c != '_').map(|c| c.to_ascii_lowercase());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (x, y) if x == y => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Random bytes, and random cuts and flips of a real stream, end in an error or a value,
        /// never a panic.
        #[test]
        fn the_decoder_survives_any_input(noise in proptest::collection::vec(any::<u8>(), 0..256),
                                          cut in 0usize..200, flip in 0usize..200, bit in 0u8..8) {
            let _ = decode::stream(&noise, 1024);
            let mut real = encode_stream(&[sample()]).expect("encodes");
            real.truncate(cut.min(real.len()));
            let _ = decode::stream(&real, 1024);
            let mut real = encode_stream(&[sample()]).expect("encodes");
            let at = flip % real.len();
            real[at] ^= 1 << bit;
            let _ = decode::stream(&real, 1024);
            // The payload form, both ways.
            let _ = decode_payload::<Sample>(&bytes::Bytes::from(noise.clone()));
            let _ = decode_payload::<Sample>(&bytes::Bytes::from(real));
            let head = Value::Struct("Response".into(), Vec::new());
            let _ = encode::Encoder::default().reencode(&head, vec![noise.into()]);
        }
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        id: String,
        count: i32,
        big: u64,
        tags: Vec<String>,
        blob: Vec<u8>,
        nested: Option<Box<Sample>>,
        scores: std::collections::BTreeMap<String, f64>,
    }

    fn sample() -> Sample {
        let leaf = Sample {
            id: "leaf".into(),
            count: -5,
            big: u64::MAX,
            tags: vec![],
            blob: vec![9],
            nested: None,
            scores: Default::default(),
        };
        Sample {
            id: "root".into(),
            count: 7,
            big: 300,
            tags: vec!["a".into(), String::new()],
            blob: vec![],
            nested: Some(Box::new(leaf)),
            scores: [("x".to_owned(), 1.5), ("y".to_owned(), -0.0)].into(),
        }
    }

    #[test]
    fn values_round_trip_and_types_are_sent_once() {
        let stream = encode_stream(&[sample(), sample()]).expect("encodes");
        let back: Vec<Sample> = decode_stream(&stream, 1 << 20).expect("decodes");
        assert_eq!(back, [sample(), sample()]);
        let once = encode_stream(&[sample()]).expect("encodes");
        assert!(stream.len() < 2 * once.len() - 40, "the second value reuses the first one's types");
        assert!(decode::stream(&stream, 8).is_err(), "messages over the limit are refused");
    }

    #[test]
    fn warren_bytes_are_a_go_byte_slice() {
        let bytes = crate::Bytes::from(vec![1u8, 2, 3]);
        let stream = encode_stream(std::slice::from_ref(&bytes)).expect("encodes");
        // Type id 5 ([]byte), field 0, three bytes: not base64 text.
        assert_eq!(stream, [6, 0x0A, 0, 3, 1, 2, 3]);
        let back: Vec<crate::Bytes> = decode_stream(&stream, 64).expect("decodes");
        assert_eq!(back[0][..], [1, 2, 3]);
    }

    #[test]
    fn an_empty_byte_vec_next_to_full_ones_is_an_empty_byte_slice() {
        // Found by the Rust → Go → Rust test: `[[1], []]` was refused ("a value of type
        // []uint8 is not Seq(None, [])"), and so was a struct whose empty `Vec<u8>` field was
        // typed `[]byte` by another element of its slice.
        let blobs: Vec<Vec<u8>> = vec![vec![1], vec![]];
        let stream = encode_stream(std::slice::from_ref(&blobs)).expect("encodes");
        let back: Vec<Vec<Vec<u8>>> = decode_stream(&stream, 64).expect("decodes");
        assert_eq!(back, [blobs]);
        let mut empty = sample();
        empty.blob = vec![];
        let mut full = sample();
        full.blob = vec![7];
        let both = vec![full, empty];
        let stream = encode_stream(std::slice::from_ref(&both)).expect("encodes");
        let back: Vec<Vec<Sample>> = decode_stream(&stream, 1 << 10).expect("decodes");
        assert_eq!(back, [both]);
    }

    #[test]
    fn a_large_byte_slice_crosses_the_payload_form_uncopied() {
        use crate::outgoing::{FrameBuf, Outgoing};
        let big = crate::Bytes::from(vec![7u8; 1 << 20]);
        let mut frame = FrameBuf::default();
        {
            let _out_of_line = crate::bytes::OutOfLine::begin();
            encode_payload(&mut frame, &big).expect("encodes");
        }
        let Outgoing::Parts(parts) = frame.into_outgoing() else { panic!("the bytes are not a part of their own") };
        assert!(parts.iter().any(|part| part.as_ptr() == big.as_ptr()), "the handler's own buffer is sent");
        let payload = Outgoing::Parts(parts).into_bytes();
        let back: crate::Bytes = decode_payload(&payload).expect("decodes");
        assert_eq!(back, big);
        let inside = payload.as_ptr_range().contains(&back.as_ptr());
        assert!(inside, "the handler's argument is a slice of the payload");
    }

    #[test]
    fn a_payload_reencoded_on_a_stream_defines_its_types_once() {
        use crate::outgoing::FrameBuf;
        let head = Value::Struct("Response".into(), vec![("Seq".into(), Value::Uint(1))]);
        let mut encoder = encode::Encoder::default();
        let mut stream = Vec::new();
        for _ in 0..2 {
            let mut frame = FrameBuf::default();
            encode_payload(&mut frame, &sample()).expect("encodes");
            let (head, body) = encoder.reencode(&head, vec![frame.buf.freeze()]).expect("reencodes");
            stream.extend(head.sent());
            body.iter().for_each(|part| stream.extend_from_slice(part));
        }
        // Byte for byte what one encoder writes for the four values, types defined once.
        let value = ser::to_value(&sample()).expect("a value");
        let direct = encode::stream(&[head.clone(), value.clone(), head, value]).expect("encodes");
        assert_eq!(stream, direct);
        let values = decode::stream(&stream, 1 << 20).expect("decodes");
        let back: Sample = de::from_value(values[3].clone()).expect("a sample");
        assert_eq!(back, sample());
    }

    #[test]
    fn a_go_string_reply_is_as_in_gob_doc() {
        // Go: enc.Encode(3) is `03 04 00 06`.
        assert_eq!(encode_stream(&[3i64]).expect("encodes"), [3, 4, 0, 6]);
    }

    #[test]
    fn go_names_follow_go_conventions() {
        assert_eq!(go_name("id"), "ID");
        assert_eq!(go_name("user_id"), "UserID");
        assert_eq!(go_name("created_at"), "CreatedAt");
        assert_eq!(go_name("URLs"), "URLs");
        assert!(same_field("UserID", "user_id"));
        assert!(same_field("ID", "id"));
        assert!(!same_field("IDs", "id"));
    }
}
