//! The top-level `[http]` table: `listen = "127.0.0.1:9300"` turns on `warren up`'s HTTP
//! endpoint (see `crate::http`). Off without the table; the table alone listens on the
//! loopback default. Any address is taken (`0.0.0.0:9300` for a kubelet on another network
//! namespace), since a container's network is often its own; docs/CONFIG.md says what that
//! exposes.

use std::net::SocketAddr;

use toml::Spanned;
use toml::de::DeValue;

use super::error::{Collector, ErrorKind, Section};

/// Where the endpoint listens when `[http]` gives no `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9300";

/// Reads `[http]`; `None` after reporting what is wrong with it.
pub(crate) fn read(value: &Spanned<DeValue<'_>>, errors: &mut Collector<'_>) -> Option<SocketAddr> {
    let schema = |errors: &mut Collector<'_>, span, key: Option<&str>, what: String| {
        errors.push(Some(span), &Section::File, key, ErrorKind::Schema(what));
    };
    let Some(table) = value.get_ref().as_table() else {
        errors.push(Some(value.span()), &Section::File, Some("http"), ErrorKind::NotATable);
        return None;
    };
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut ok = true;
    for (key, value) in table {
        match (key.get_ref().as_ref(), value.get_ref().as_str()) {
            ("listen", Some(address)) => listen = address.to_owned(),
            ("listen", None) => {
                ok = false;
                schema(
                    errors,
                    value.span(),
                    Some("http.listen"),
                    "expected an address and port, as \"127.0.0.1:9300\"".into(),
                );
            }
            (other, _) => {
                ok = false;
                schema(errors, key.span(), Some("http"), format!("unknown key {other:?} in [http] (expected: listen)"));
            }
        }
    }
    match listen.parse::<SocketAddr>() {
        Ok(address) if ok => Some(address),
        Ok(_) => None,
        Err(err) => {
            let span = table.get("listen").map_or(value.span(), Spanned::span);
            let what = format!("{listen:?} is not an address and port, as \"127.0.0.1:9300\": {err}");
            schema(errors, span, Some("http.listen"), what);
            None
        }
    }
}
