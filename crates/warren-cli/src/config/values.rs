//! The values of `raw` that take more than one form or keep their text for later: `rpc`
//! (a boolean or a protocol's name), durations (text only) and `env_file` (one path or a list).
//! Apart from `raw` to keep that module to the file's structure.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};

/// `rpc` as written: a boolean, or the protocol's name (`"warren"`, `"json"`, `"go"`, `"go-plain"`), checked later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawRpc {
    Bool(bool),
    Protocol(String),
}

impl<'de> Deserialize<'de> for RawRpc {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Rpc;
        impl Visitor<'_> for Rpc {
            type Value = RawRpc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, \"warren\", \"json\", \"go\" or \"go-plain\"")
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<RawRpc, E> {
                Ok(RawRpc::Bool(value))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawRpc, E> {
                Ok(RawRpc::Protocol(text.to_owned()))
            }
        }
        deserializer.deserialize_any(Rpc)
    }
}

/// A duration as written (`"500ms"`, `"1m 30s"`); only a string is accepted, so that a bare
/// number (seconds? milliseconds?) is an error rather than a guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DurationText(pub(crate) String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"500ms\" or \"1m 30s\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<DurationText, E> {
                Ok(DurationText(text.to_owned()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// `env_file`: one path or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OneOrMany(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Paths;
        impl<'de> Visitor<'de> for Paths {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![text.to_owned()]))
            }
            fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<OneOrMany, S::Error> {
                let mut paths = Vec::new();
                while let Some(path) = seq.next_element()? {
                    paths.push(path);
                }
                Ok(OneOrMany(paths))
            }
        }
        deserializer.deserialize_any(Paths)
    }
}
