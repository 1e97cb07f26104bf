//! Newline-delimited JSON-RPC, what the server side (`server::jsonline`) and the client's
//! JSON-RPC mode share: bounded line reading, the two request shapes (Go's `net/rpc/jsonrpc`,
//! which is JSON-RPC 1.0 with one parameter, and JSON-RPC 2.0), reply lines, and how warren's
//! error codes travel in each. Specified in `docs/PROTOCOL.md` §17.
//!
//! Go's client is strict in two ways that shape the replies: it drops the whole connection when
//! a reply's `error` is not a string, or when a successful reply's `result` is `null`. So a Go-
//! shaped request is always answered with a string error or a non-null result (`{}` standing
//! for "no value"), and a Go-shaped peer is never sent a notification.

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::codec::{Codec, CodecError};
use crate::error::ErrorCode;
use crate::message::EncodeError;

/// Standard JSON-RPC 2.0 error codes.
pub(crate) mod v2 {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// The request shape a peer used; its reply takes the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// JSON-RPC 1.0 as Go's `net/rpc/jsonrpc` speaks it: no `"jsonrpc"` member, `"params"` a
    /// one-element array, replies `{"id","result","error"}` with a string error.
    Go,
    /// JSON-RPC 2.0: `"jsonrpc":"2.0"`, error objects with a numeric code.
    V2,
}

/// What went wrong with a request, for its error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The call was dispatched (or refused) with one of warren's codes.
    Call(ErrorCode),
    /// The line is not JSON.
    Parse,
    /// The line is JSON but not a request.
    InvalidRequest,
}

impl Fault {
    fn v2_code(self) -> i64 {
        match self {
            Fault::Parse => v2::PARSE_ERROR,
            Fault::InvalidRequest => v2::INVALID_REQUEST,
            Fault::Call(ErrorCode::UnknownService | ErrorCode::UnknownMethod) => v2::METHOD_NOT_FOUND,
            Fault::Call(ErrorCode::BadArgument) => v2::INVALID_PARAMS,
            Fault::Call(ErrorCode::Internal) => v2::INTERNAL_ERROR,
            Fault::Call(code) => i64::from(code.as_u32()),
        }
    }

    fn code(self) -> ErrorCode {
        match self {
            Fault::Call(code) => code,
            Fault::Parse | Fault::InvalidRequest => ErrorCode::ProtocolError,
        }
    }
}

/// A JSON-RPC 2.0 error code back to warren's, as far as it says.
pub(crate) fn code_from_v2(code: i64) -> ErrorCode {
    match code {
        v2::METHOD_NOT_FOUND => ErrorCode::UnknownMethod,
        v2::INVALID_PARAMS => ErrorCode::BadArgument,
        v2::PARSE_ERROR | v2::INVALID_REQUEST => ErrorCode::ProtocolError,
        code => u32::try_from(code).map_or(ErrorCode::Internal, ErrorCode::from_u32),
    }
}

/// The error string of a Go-shaped reply: the code's name and number, then the message, e.g.
/// `UNKNOWN_METHOD (2): no method for "Task.Nope"`, so that a warren client can recover the code.
pub(crate) fn error_string(code: ErrorCode, message: &str) -> String {
    format!("{code}: {message}")
}

/// Splits an [`error_string`] into its code and message; `None` for any other string (such as
/// the errors of a Go server).
pub(crate) fn parse_error_string(text: &str) -> Option<(ErrorCode, &str)> {
    let (head, message) = text.split_once("): ")?;
    let (name, number) = head.split_once(" (")?;
    let code = ErrorCode::from_u32(number.parse().ok()?);
    (code.name() == name).then_some((code, message))
}

/// One request line, understood.
#[derive(Debug)]
pub(crate) struct Request {
    pub dialect: Dialect,
    /// `None` for a notification, which gets no reply.
    pub id: Option<Value>,
    pub method: String,
    /// The method's one argument (see [`argument`]).
    pub arg: Value,
}

/// A line that is not a request; it is answered with an error carrying `id` (null when unknown).
#[derive(Debug)]
pub(crate) struct Rejected {
    pub dialect: Dialect,
    pub id: Value,
    pub fault: Fault,
    pub message: String,
}

/// Parses one request line. The dialect is 2.0 when `"jsonrpc":"2.0"` is present, Go's
/// otherwise; a line that cannot say is answered in 2.0's shape, the standard.
pub(crate) fn parse_request(line: &[u8]) -> Result<Request, Rejected> {
    let reject = |dialect, id, fault, message: String| Rejected { dialect, id, fault, message };
    let value: Value = serde_json::from_slice(line)
        .map_err(|err| reject(Dialect::V2, Value::Null, Fault::Parse, format!("not JSON: {err}")))?;
    let mut object = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            let message = "batch requests are not supported; send one request per line".to_owned();
            return Err(reject(Dialect::V2, Value::Null, Fault::InvalidRequest, message));
        }
        _ => {
            let message = "a request is a JSON object".to_owned();
            return Err(reject(Dialect::V2, Value::Null, Fault::InvalidRequest, message));
        }
    };
    let dialect = match object.remove("jsonrpc") {
        None => Dialect::Go,
        Some(Value::String(version)) if version == "2.0" => Dialect::V2,
        Some(other) => {
            let id = object.remove("id").unwrap_or_default();
            let message = format!("unsupported \"jsonrpc\" version {other} (only \"2.0\", or none for 1.0)");
            return Err(reject(Dialect::V2, id, Fault::InvalidRequest, message));
        }
    };
    // 2.0: a request without "id" is a notification. 1.0 (and Go): an id of null is.
    let id = match (dialect, object.remove("id")) {
        (_, None) | (Dialect::Go, Some(Value::Null)) => None,
        (_, Some(id @ (Value::Null | Value::Number(_) | Value::String(_)))) => Some(id),
        (_, Some(_)) => {
            let message = "\"id\" must be a number, a string or null".to_owned();
            return Err(reject(dialect, Value::Null, Fault::InvalidRequest, message));
        }
    };
    let method = match object.remove("method") {
        Some(Value::String(method)) => method,
        _ => {
            let message = "a request needs a \"method\" string, such as \"Task.Get\"".to_owned();
            return Err(reject(dialect, id.unwrap_or_default(), Fault::InvalidRequest, message));
        }
    };
    Ok(Request { dialect, id, method, arg: argument(object.remove("params")) })
}

/// A method takes one argument: `params` of one element is that element (Go's shape), an empty
/// or absent one is null, and any other array or object is the argument as it stands (a tuple,
/// or named parameters as a struct). A bare value is taken as is, too.
pub(crate) fn argument(params: Option<Value>) -> Value {
    match params {
        None => Value::Null,
        Some(Value::Array(mut items)) if items.len() <= 1 => items.pop().unwrap_or_default(),
        Some(other) => other,
    }
}

/// A successful reply; `result` is the method's JSON payload.
pub(crate) fn reply_ok(dialect: Dialect, id: &Value, result: &[u8]) -> Bytes {
    let id = serde_json::to_vec(id).unwrap_or_else(|_| b"null".to_vec());
    let mut line = Vec::with_capacity(48 + id.len() + result.len());
    match dialect {
        Dialect::Go => {
            line.extend_from_slice(b"{\"id\":");
            line.extend_from_slice(&id);
            line.extend_from_slice(b",\"result\":");
            // Go's client takes a null result for a malformed reply and drops the connection.
            line.extend_from_slice(if result == b"null" { b"{}" } else { result });
            line.extend_from_slice(b",\"error\":null}\n");
        }
        Dialect::V2 => {
            line.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
            line.extend_from_slice(&id);
            line.extend_from_slice(b",\"result\":");
            line.extend_from_slice(result);
            line.extend_from_slice(b"}\n");
        }
    }
    Bytes::from(line)
}

/// An error reply: a string for Go (it accepts nothing else), an error object for 2.0.
pub(crate) fn reply_error(dialect: Dialect, id: &Value, fault: Fault, message: &str, data: Option<&Value>) -> Bytes {
    #[derive(Serialize)]
    struct GoReply<'a> {
        id: &'a Value,
        result: (),
        error: &'a str,
    }
    #[derive(Serialize)]
    struct V2Reply<'a> {
        jsonrpc: &'static str,
        id: &'a Value,
        error: V2Error<'a>,
    }
    #[derive(Serialize)]
    struct V2Error<'a> {
        code: i64,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a Value>,
    }
    let encoded = match dialect {
        Dialect::Go => serde_json::to_vec(&GoReply { id, result: (), error: &error_string(fault.code(), message) }),
        Dialect::V2 => {
            serde_json::to_vec(&V2Reply { jsonrpc: "2.0", id, error: V2Error { code: fault.v2_code(), message, data } })
        }
    };
    // Serializing a Value and strings cannot fail.
    let mut line = encoded.unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A JSON-RPC 2.0 notification line pushed by a server: `params` wraps the value in a
/// one-element array, the same convention requests use.
pub(crate) fn notification_v2<T: Serialize + ?Sized>(
    method: &str,
    value: &T,
    limit: u32,
) -> Result<Bytes, EncodeError> {
    #[derive(Serialize)]
    struct Notification<'a, T: ?Sized> {
        jsonrpc: &'static str,
        method: &'a str,
        params: [&'a T; 1],
    }
    line(&Notification { jsonrpc: "2.0", method, params: [value] }, limit)
}

/// A request line in Go's shape, which every JSON-RPC server warren knows of accepts (Go's,
/// warren's own, the Python example): `{"method":…,"params":[arg],"id":…}`. A null id makes it
/// a notification.
pub(crate) fn request_go<T: Serialize + ?Sized>(
    id: Option<u32>,
    method: &str,
    arg: &T,
    limit: u32,
) -> Result<Bytes, EncodeError> {
    #[derive(Serialize)]
    struct Request<'a, T: ?Sized> {
        method: &'a str,
        params: [&'a T; 1],
        id: Option<u32>,
    }
    line(&Request { method, params: [arg], id }, limit)
}

fn line<T: Serialize>(value: &T, limit: u32) -> Result<Bytes, EncodeError> {
    let mut line =
        serde_json::to_vec(value).map_err(|err| CodecError { codec: Codec::Json, message: err.to_string() })?;
    if line.len() > limit as usize {
        return Err(EncodeError::TooLarge { size: line.len() as u64, limit });
    }
    line.push(b'\n');
    Ok(Bytes::from(line))
}

/// What [`LineReader::next`] found.
#[derive(Debug)]
pub(crate) enum Line {
    /// One line, without its `\n` (or `\r\n`).
    Text(Bytes),
    /// A line longer than the limit; it was skipped up to its end, unallocated.
    TooLong,
}

const READ_CHUNK: usize = 64 * 1024;

/// Reads `\n`-terminated lines of at most `max` bytes. A longer line is reported once and its
/// bytes dropped as they arrive, so it costs no memory and the next line reads normally.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    io: R,
    buf: BytesMut,
    max: usize,
    /// How much of `buf` is known to hold no `\n`.
    scanned: usize,
    /// Dropping the rest of a line that was too long.
    skipping: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(io: R, buffered: BytesMut, max: usize) -> Self {
        LineReader { io, buf: buffered, max, scanned: 0, skipping: false }
    }

    /// The bytes read and not yet returned as lines, and whether they are the rest of a line
    /// too long to keep, being dropped: what the next reader of the stream starts from.
    pub fn unread(&self) -> (BytesMut, bool) {
        (self.buf.clone(), self.skipping)
    }

    /// A reader going on from where [`unread`](Self::unread) left another.
    pub fn resume(io: R, unread: BytesMut, skipping: bool, max: usize) -> Self {
        LineReader { io, buf: unread, max, scanned: 0, skipping }
    }

    /// Whether a whole line is already buffered.
    pub fn has_line(&self) -> bool {
        !self.skipping && self.buf[self.scanned..].contains(&b'\n')
    }

    /// The next line; `None` at the end of the stream. A last line without `\n` counts.
    pub async fn next(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            if let Some(at) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + at;
                let mut line = self.buf.split_to(end + 1).freeze();
                self.scanned = 0;
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                line.truncate(end);
                if line.len() > self.max {
                    return Ok(Some(Line::TooLong));
                }
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return Ok(Some(Line::Text(line)));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max {
                self.buf.clear();
                self.scanned = 0;
                if !self.skipping {
                    self.skipping = true;
                    return Ok(Some(Line::TooLong));
                }
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                self.scanned = 0;
                if self.skipping || self.buf.is_empty() {
                    self.buf.clear();
                    return Ok(None);
                }
                let line = self.buf.split().freeze();
                return Ok(Some(Line::Text(line)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Option<String>> {
        let mut reader = LineReader::new(input, BytesMut::new(), max);
        let mut out = Vec::new();
        while let Some(line) = reader.next().await.expect("reads") {
            out.push(match line {
                Line::Text(text) => Some(String::from_utf8_lossy(&text).into_owned()),
                Line::TooLong => None,
            });
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_bounded_and_resume_after_an_overlong_one() {
        assert_eq!(
            lines(b"a\r\nbb\n\nccc", 8).await,
            [Some("a".into()), Some("bb".into()), Some("".into()), Some("ccc".into())]
        );
        let long = [b"x".repeat(100), b"\nok\n".to_vec()].concat();
        assert_eq!(lines(&long, 8).await, [None, Some("ok".into())]);
        assert_eq!(lines(b"12345678\n123456789\nz", 8).await, [Some("12345678".into()), None, Some("z".into())]);
    }

    #[test]
    fn requests_are_read_in_both_shapes() {
        let go = parse_request(br#"{"method":"Task.Get","params":["new_id"],"id":0}"#).expect("go");
        assert_eq!(
            (go.dialect, go.id, go.method.as_str(), go.arg),
            (Dialect::Go, Some(0.into()), "Task.Get", "new_id".into())
        );
        let v2 = parse_request(br#"{"jsonrpc":"2.0","method":"A.B","params":{"x":1},"id":"k"}"#).expect("2.0");
        assert_eq!((v2.dialect, v2.id), (Dialect::V2, Some("k".into())));
        assert_eq!(v2.arg, serde_json::json!({"x": 1}));
        let note = parse_request(br#"{"jsonrpc":"2.0","method":"A.B","params":[1,2]}"#).expect("notification");
        assert_eq!((note.id, note.arg), (None, serde_json::json!([1, 2])));
        assert!(parse_request(br#"{"method":"A.B","params":[],"id":null}"#).expect("1.0 notification").id.is_none());
        let bad = parse_request(b"{\"method\":").expect_err("not JSON");
        assert_eq!((bad.dialect, bad.fault, bad.id), (Dialect::V2, Fault::Parse, Value::Null));
        let bad = parse_request(br#"{"params":[1],"id":7}"#).expect_err("no method");
        assert_eq!((bad.dialect, bad.fault, bad.id), (Dialect::Go, Fault::InvalidRequest, 7.into()));
    }

    #[test]
    fn replies_never_give_go_a_null_result_or_a_non_string_error() {
        let ok = reply_ok(Dialect::Go, &0.into(), b"null");
        assert_eq!(&ok[..], b"{\"id\":0,\"result\":{},\"error\":null}\n");
        let err = reply_error(Dialect::Go, &3.into(), Fault::Call(ErrorCode::Application(1042)), "no such todo", None);
        assert_eq!(&err[..], b"{\"id\":3,\"result\":null,\"error\":\"APPLICATION (1042): no such todo\"}\n");
        let err = reply_error(Dialect::V2, &Value::Null, Fault::Parse, "not JSON", None);
        assert_eq!(
            &err[..],
            &b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"not JSON\"}}\n"[..]
        );
    }

    #[test]
    fn error_strings_carry_the_code_back() {
        let text = error_string(ErrorCode::UnknownMethod, "no method for \"Task.Nope\"");
        assert_eq!(parse_error_string(&text), Some((ErrorCode::UnknownMethod, "no method for \"Task.Nope\"")));
        assert_eq!(parse_error_string("rpc: can't find method Task.Nope"), None);
        assert_eq!(parse_error_string("NOPE (2): x"), None);
    }
}
