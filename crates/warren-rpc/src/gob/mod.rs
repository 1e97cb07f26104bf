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
