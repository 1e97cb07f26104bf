//! The client's read loop in JSON-RPC mode ([`Protocol::JsonRpc`](super::Protocol)): routes
//! reply lines to their calls by id, JSON-RPC 2.0 notifications to subscribers, and on any end
//! of the connection fails every call in flight with the reason.

use bytes::Bytes;
use serde_json::Value;
use tokio::io::AsyncRead;
use tracing::debug;

use super::Notification;
use super::inflight::{Answer, InFlight};
use super::reader::deliver;
use crate::codec::Codec;
use crate::error::LostReason;
use crate::jsonrpc::{self, Line, LineReader};

pub(crate) async fn run<R: AsyncRead + Unpin>(lines: &mut LineReader<R>, in_flight: &InFlight, endpoint: &str) {
    let reason = loop {
        let line = match lines.next().await {
            Ok(Some(Line::Text(line))) => line,
            Ok(Some(Line::TooLong)) => {
                break LostReason::Protocol("the server sent a line longer than this client's max_frame".to_owned());
            }
            Ok(None) => break LostReason::ClosedByPeer,
            Err(err) => break LostReason::Io(err.to_string()),
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(&line) {
            Ok(Value::Object(reply)) => route(in_flight, reply, endpoint),
            Ok(_) => break LostReason::Protocol("the server sent a JSON line that is not an object".to_owned()),
            Err(err) => break LostReason::Protocol(format!("the server sent a line that is not JSON: {err}")),
        }
    };
    debug!(%endpoint, calls = in_flight.waiting(), "connection lost: {reason}");
    in_flight.lose(reason, None);
}

fn route(in_flight: &InFlight, mut reply: serde_json::Map<String, Value>, endpoint: &str) {
    let id = reply.get("id").and_then(Value::as_u64).and_then(|id| u32::try_from(id).ok());
    let Some(id) = id else {
        // Without a call id of ours: a notification from a JSON-RPC 2.0 server, or the answer
        // to a line that had none (a notification of ours, which Go's server answers anyway).
        if let Some(Value::String(method)) = reply.remove("method") {
            let payload = to_bytes(&jsonrpc::argument(reply.remove("params")));
            deliver(in_flight, Notification { method, codec: Codec::Json, payload });
        } else {
            debug!(%endpoint, "reply without a call id ignored: {}", serde_json::Value::Object(reply));
        }
        return;
    };
    let answer = match reply.remove("error").unwrap_or_default() {
        Value::Null => Answer::Reply(to_bytes(&reply.remove("result").unwrap_or_default())),
        Value::String(text) => match jsonrpc::parse_error_string(&text) {
            Some((code, message)) => Answer::Error { code, message: message.to_owned(), data: None },
            None => Answer::Untyped(text),
        },
        Value::Object(mut error) => {
            let code =
                error.get("code").and_then(Value::as_i64).map_or(crate::ErrorCode::Internal, jsonrpc::code_from_v2);
            let message = match error.remove("message") {
                Some(Value::String(message)) => message,
                other => other.map(|value| value.to_string()).unwrap_or_default(),
            };
            let data = error.remove("data").map(|data| to_bytes(&data));
            Answer::Error { code, message, data }
        }
        other => Answer::Untyped(other.to_string()),
    };
    in_flight.answer(id, answer);
}

fn to_bytes(value: &Value) -> Bytes {
    // Serializing a Value cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}
