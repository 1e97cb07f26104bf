//! Bodies of the call-level frames (REQUEST, RESPONSE, ERROR, NOTIFY), shared by client and
//! server. Encoders write the payload straight into the frame buffer: one allocation and no
//! copy of the payload per message; a large byte string is not copied at all, but written from
//! its own buffer (the `_frame` encoders, which the connections use).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::codec::{Codec, CodecError};
use crate::error::{ErrorCode, FrameError};
use crate::frame::{self, Kind};
use crate::outgoing::Outgoing;
use crate::outgoing::{FrameBuf, Mark};

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    /// The value could not be encoded.
    Codec(#[from] CodecError),
    #[error(transparent)]
    /// A frame could not be built (a method name too long).
    Frame(#[from] FrameError),
    /// Larger than the limit.
    #[error("frame of {size} bytes exceeds the peer's limit of {limit} bytes")]
    TooLarge {
        /// The size announced or encoded, in bytes.
        size: u64,
        /// The limit.
        limit: u32,
    },
}

/// Patches the length of the frame begun at `start`, after `mark`, once it is known to fit
/// `limit`.
fn finish_in(frame: &mut FrameBuf, mark: Mark, start: usize, limit: u32) -> Result<(), EncodeError> {
    let body_len = frame.len_since(mark) - frame::HEADER_LEN;
    if body_len > limit as usize {
        return Err(EncodeError::TooLarge { size: body_len as u64, limit });
    }
    frame::set_body_len(&mut frame.buf, start, body_len);
    Ok(())
}

/// REQUEST: `method_len u8 | method | timeout_us u64 | payload`.
pub fn request<T: Serialize + ?Sized>(
    id: u32,
    method: &str,
    timeout: Option<Duration>,
    codec: Codec,
    arg: &T,
    limit: u32,
) -> Result<Bytes, EncodeError> {
    let mut frame = FrameBuf::with_capacity(64 + method.len());
    request_into(&mut frame, id, method, timeout, codec, arg, limit)?;
    Ok(frame.into_outgoing().into_bytes())
}

/// Appends a REQUEST to `frame`, its large byte strings not copied. On error, what was appended
/// is for the caller to take back.
pub(crate) fn request_into<T: Serialize + ?Sized>(
    frame: &mut FrameBuf,
    id: u32,
    method: &str,
    timeout: Option<Duration>,
    codec: Codec,
    arg: &T,
    limit: u32,
) -> Result<(), EncodeError> {
    let mark = frame.mark();
    let start = frame::begin(&mut frame.buf, Kind::Request, id);
    frame::put_method(&mut frame.buf, method)?;
    // Zero means "no deadline", so a real deadline is at least one microsecond.
    let micros = timeout.map_or(0, |t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX).max(1));
    frame.buf.put_u64(micros);
    codec.encode_frame(frame, arg)?;
    finish_in(frame, mark, start, limit)
}

/// A parsed REQUEST or NOTIFY body.
#[derive(Debug)]
pub struct Incoming {
    /// The `Service.Method` called.
    pub method: frame::MethodName,
    /// How long it was given.
    pub timeout: Option<Duration>,
    /// The encoded argument.
    pub payload: Bytes,
}

/// Parses a REQUEST body.
pub fn parse_request(mut body: Bytes) -> Result<Incoming, FrameError> {
    let method = frame::take_method(&mut body)?;
    let micros = frame::take_u64(&mut body, "request timeout")?;
    let timeout = (micros != 0).then(|| Duration::from_micros(micros));
    Ok(Incoming { method, timeout, payload: body })
}

/// RESPONSE: the encoded reply value.
pub fn response<T: Serialize + ?Sized>(id: u32, codec: Codec, value: &T, limit: u32) -> Result<Bytes, EncodeError> {
    response_frame(id, codec, value, limit).map(Outgoing::into_bytes)
}

/// A RESPONSE whose large byte strings are not copied into it.
pub(crate) fn response_frame<T: Serialize + ?Sized>(
    id: u32,
    codec: Codec,
    value: &T,
    limit: u32,
) -> Result<Outgoing, EncodeError> {
    let mut frame = FrameBuf::with_capacity(64);
    let mark = frame.mark();
    let start = frame::begin(&mut frame.buf, Kind::Response, id);
    codec.encode_frame(&mut frame, value)?;
    finish_in(&mut frame, mark, start, limit)?;
    Ok(frame.into_outgoing())
}

/// A reply value encoded on its own, for protocols that frame it themselves (JSON-RPC lines);
/// refused like a RESPONSE when it exceeds `limit`.
pub fn payload<T: Serialize + ?Sized>(codec: Codec, value: &T, limit: u32) -> Result<Bytes, EncodeError> {
    let mut buf = BytesMut::with_capacity(64);
    codec.encode_into(&mut buf, value)?;
    if buf.len() > limit as usize {
        return Err(EncodeError::TooLarge { size: buf.len() as u64, limit });
    }
    Ok(buf.freeze())
}

/// Like [`payload`], but a codec that can (gob's) leaves large byte strings in their own
/// buffers, for the wire to put in its answer uncopied.
pub(crate) fn payload_outgoing<T: Serialize + ?Sized>(
    codec: Codec,
    value: &T,
    limit: u32,
) -> Result<Outgoing, EncodeError> {
    if codec != Codec::Gob {
        return payload(codec, value, limit).map(Outgoing::from);
    }
    let mut frame = FrameBuf::with_capacity(64);
    codec.encode_frame(&mut frame, value)?;
    if frame.len() > limit as usize {
        return Err(EncodeError::TooLarge { size: frame.len() as u64, limit });
    }
    Ok(frame.into_outgoing())
}

/// ERROR: `code u32 | message_len u32 | message | data?`.
pub fn error(id: u32, code: ErrorCode, message: &str, data: Option<(&serde_json::Value, Codec)>) -> Bytes {
    let mut buf = BytesMut::with_capacity(32 + message.len());
    let start = frame::begin(&mut buf, Kind::Error, id);
    buf.put_u32(code.as_u32());
    // Error messages are ours or a handler's; clip absurd ones rather than fail to report.
    let message = clip(message, 64 * 1024);
    buf.put_u32(message.len() as u32);
    buf.extend_from_slice(message.as_bytes());
    if let Some((value, codec)) = data {
        let before = buf.len();
        if codec.encode_into(&mut buf, value).is_err() {
            buf.truncate(before);
        }
    }
    frame::finish(&mut buf, start);
    buf.freeze()
}

fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A parsed ERROR body.
#[derive(Debug)]
pub struct ErrorBody {
    /// The error code.
    pub code: ErrorCode,
    /// What went wrong, in words.
    pub message: String,
    /// Structured detail from the handler, still encoded.
    pub data: Option<Bytes>,
}

/// Parses an ERROR body.
pub fn parse_error(mut body: Bytes) -> Result<ErrorBody, FrameError> {
    let code = ErrorCode::from_u32(frame::take_u32(&mut body, "error code")?);
    let len = frame::take_u32(&mut body, "error message length")? as usize;
    if body.len() < len {
        return Err(FrameError::Truncated { what: "error message" });
    }
    let message = String::from_utf8_lossy(&body.split_to(len)).into_owned();
    let data = (!body.is_empty()).then_some(body);
    Ok(ErrorBody { code, message, data })
}

/// NOTIFY: `method_len u8 | method | payload`.
pub fn notify<T: Serialize + ?Sized>(method: &str, codec: Codec, value: &T, limit: u32) -> Result<Bytes, EncodeError> {
    notify_frame(method, codec, value, limit).map(Outgoing::into_bytes)
}

/// A NOTIFY whose large byte strings are not copied into it.
pub(crate) fn notify_frame<T: Serialize + ?Sized>(
    method: &str,
    codec: Codec,
    value: &T,
    limit: u32,
) -> Result<Outgoing, EncodeError> {
    let mut frame = FrameBuf::with_capacity(64 + method.len());
    let mark = frame.mark();
    let start = frame::begin(&mut frame.buf, Kind::Notify, 0);
    frame::put_method(&mut frame.buf, method)?;
    codec.encode_frame(&mut frame, value)?;
    finish_in(&mut frame, mark, start, limit)?;
    Ok(frame.into_outgoing())
}

/// Parses a NOTIFY body.
pub fn parse_notify(mut body: Bytes) -> Result<Incoming, FrameError> {
    let method = frame::take_method(&mut body)?;
    Ok(Incoming { method, timeout: None, payload: body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_matches_the_protocol_document() {
        let frame = request(1, "Task.Get", Some(Duration::from_secs(1)), Codec::Json, "new_id", 1024).expect("fits");
        let mut expected = vec![0, 0, 0, 25, 0x10, 0, 0, 0, 0, 1, 8];
        expected.extend_from_slice(b"Task.Get");
        expected.extend_from_slice(&1_000_000u64.to_be_bytes());
        expected.extend_from_slice(br#""new_id""#);
        assert_eq!(&frame[..], &expected[..]);
        let parsed = parse_request(frame.slice(frame::HEADER_LEN..)).expect("parses");
        assert_eq!((parsed.method.as_str(), parsed.timeout), ("Task.Get", Some(Duration::from_secs(1))));
        assert_eq!(&parsed.payload[..], br#""new_id""#);
    }

    #[test]
    fn a_large_byte_string_is_neither_copied_in_nor_out() {
        let payload = crate::Bytes::from(vec![9u8; 100_000]);
        let arg = (7u32, payload.clone(), "after");
        let mut frame = FrameBuf::default();
        request_into(&mut frame, 1, "Task.Put", None, Codec::MessagePack, &arg, u32::MAX).expect("fits");
        let frame = frame.into_outgoing();
        let Outgoing::Parts(parts) = &frame else { panic!("a large payload is a part of its own") };
        assert!(parts.iter().any(|part| part.as_ptr() == payload.as_ptr()), "written from the caller's buffer");
        // The same bytes as a copying encoder would give, length field included.
        let whole = frame.into_bytes();
        let mut expected = BytesMut::new();
        let start = frame::begin(&mut expected, Kind::Request, 1);
        frame::put_method(&mut expected, "Task.Put").expect("short name");
        expected.put_u64(0);
        Codec::MessagePack.encode_into(&mut expected, &arg).expect("encodes");
        frame::finish(&mut expected, start);
        assert_eq!(whole, expected.freeze());

        let body = whole.slice(frame::HEADER_LEN..);
        let parsed = parse_request(body.clone()).expect("parses");
        let (n, back, tail): (u32, crate::Bytes, String) =
            Codec::MessagePack.decode_shared(&parsed.payload).expect("decodes");
        assert_eq!((n, &back[..], tail.as_str()), (7, &payload[..], "after"));
        let range = body.as_ptr().addr()..body.as_ptr().addr() + body.len();
        assert!(range.contains(&back.as_ptr().addr()), "decoded as a slice of the frame");
        let copied: (u32, crate::Bytes, String) = Codec::MessagePack.decode(&parsed.payload).expect("decodes");
        assert!(!range.contains(&copied.1.as_ptr().addr()), "without the frame, a copy");
    }

    #[test]
    fn oversized_messages_are_refused_before_sending() {
        let big = crate::Bytes::from(vec![7u8; 2000]);
        let err = response(3, Codec::MessagePack, &big, 1024).expect_err("too big");
        assert!(matches!(err, EncodeError::TooLarge { limit: 1024, .. }), "{err}");
    }

    #[test]
    fn error_round_trips_with_data() {
        let data = serde_json::json!({"retry_after": 3});
        let frame = error(9, ErrorCode::Application(1001), "no such todo", Some((&data, Codec::MessagePack)));
        let body = parse_error(frame.slice(frame::HEADER_LEN..)).expect("parses");
        assert_eq!((body.code, body.message.as_str()), (ErrorCode::Application(1001), "no such todo"));
        let back: serde_json::Value = Codec::MessagePack.decode(&body.data.expect("data")).expect("decodes");
        assert_eq!(back, data);
    }
}
