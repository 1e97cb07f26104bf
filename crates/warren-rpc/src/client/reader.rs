//! The client's read loop: routes answers to their calls, notifications to subscribers, answers
//! pings, and on any end of the connection fails every call in flight with the reason.

use tokio::io::AsyncRead;
use tracing::{debug, warn};

use super::Notification;
use super::inflight::{Answer, InFlight};
use crate::codec::Codec;
use crate::error::{ErrorCode, FrameError, LostReason};
use crate::frame::{self, FrameReader, Kind};
use crate::message;
use crate::writer::WeakFrameSender;

/// What the server said that matters once the connection ends; kept outside the read loop,
/// which a hold stops between two frames and starts again.
#[derive(Debug, Default)]
pub(crate) struct Heard {
    goodbye: Option<LostReason>,
    last_read: Option<u32>,
}

pub(crate) async fn run<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    heard: &mut Heard,
    in_flight: &InFlight,
    tx: &WeakFrameSender,
    codec: Codec,
    endpoint: &str,
) {
    let Heard { goodbye, last_read } = heard;
    let reason = loop {
        let frame = match reader.read_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break goodbye.clone().unwrap_or(LostReason::ClosedByPeer),
            Err(FrameError::Io(err)) => break goodbye.clone().unwrap_or(LostReason::Io(err.to_string())),
            Err(err) => break LostReason::Protocol(err.to_string()),
        };
        match frame.kind {
            Kind::Response => in_flight.answer(frame.id, Answer::Reply(frame.body)),
            Kind::Pong => in_flight.answer(frame.id, Answer::Reply(frame.body)),
            Kind::Error => match message::parse_error(frame.body) {
                Ok(body) => in_flight
                    .answer(frame.id, Answer::Error { code: body.code, message: body.message, data: body.data }),
                Err(err) => break LostReason::Protocol(err.to_string()),
            },
            Kind::Notify => match message::parse_notify(frame.body) {
                Ok(incoming) => {
                    let method = incoming.method.into();
                    deliver(in_flight, Notification { method, codec, payload: incoming.payload });
                }
                Err(err) => break LostReason::Protocol(err.to_string()),
            },
            Kind::Ping => {
                if let Some(tx) = tx.upgrade() {
                    let _ = tx.send(frame::encode(Kind::Pong, frame.id, &frame.body));
                }
            }
            Kind::Goodbye => match frame::parse_goodbye(frame.body) {
                Ok((ErrorCode::ShuttingDown, reason)) => {
                    debug!(%endpoint, "server is shutting down: {reason}");
                    in_flight.peer_shutting_down(reason);
                    *goodbye = Some(LostReason::PeerShutDown);
                }
                Ok((ErrorCode::Normal, _)) => {
                    *last_read = Some(frame.id);
                    *goodbye = Some(LostReason::PeerShutDown);
                }
                Ok((code, reason)) => {
                    warn!(%endpoint, "server closed the connection with {code}: {reason}");
                    *goodbye = Some(LostReason::Goodbye { code, reason });
                }
                Err(err) => break LostReason::Protocol(err.to_string()),
            },
            kind => break LostReason::Protocol(format!("unexpected {kind:?} frame from a server")),
        }
    };
    debug!(%endpoint, calls = in_flight.waiting(), "connection lost: {reason}");
    in_flight.lose(reason, *last_read);
}

pub(super) fn deliver(in_flight: &InFlight, notification: Notification) {
    let subscribers = in_flight.subscribers(&notification.method);
    if subscribers.is_empty() {
        debug!(method = %notification.method, "notification with no subscriber dropped");
    }
    for subscriber in subscribers {
        // A subscriber that does not keep up loses events rather than stalling every call on
        // this connection behind it.
        if subscriber.try_send(notification.clone()).is_err() {
            warn!(method = %notification.method, "subscriber is not keeping up; notification dropped");
        }
    }
}
