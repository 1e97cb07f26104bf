//! The bound on a frame, or a JSON-RPC line, that has started to arrive: once its first byte is
//! in, the rest must follow within the frame timeout. Time between units is not bounded, so an
//! idle connection stays open, while a peer that sends a byte a second cannot hold a connection
//! and up to `max_frame` of buffer for ever.
//!
//! The guard wraps the read half instead of living in the decoders: it sees the bytes as they
//! arrive and finds unit boundaries itself (frame lengths, newlines), and its timer is polled
//! only from `poll_read`, which the decoder calls exactly while a unit is incomplete. So the
//! read loops need no extra branch, and a connection whose reads end on unit boundaries never
//! touches the timer.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use std::{fmt, io};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::frame::HEADER_LEN;

/// A read half whose units must each arrive within `timeout` of their first byte. When one
/// does not, a read fails once with [`Stalled`] (as an `io::Error` of kind `TimedOut`), and
/// the guard turns itself off so that the connection can still drain the peer's input.
pub(crate) struct StallGuard<R> {
    io: R,
    timeout: Duration,
    units: Units,
    /// Kept across units so that a connection allocates at most one timer.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<R> fmt::Debug for StallGuard<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StallGuard").field("timeout", &self.timeout).field("armed", &self.armed).finish()
    }
}

#[derive(Debug)]
enum Units {
    /// During the hello, which has a timeout of its own, and once the guard has fired.
    Off,
    /// Binary frames: `got` bytes of the current one, whose first four (its length) are `len`.
    Frames { got: u64, len: [u8; 4] },
    /// JSON-RPC lines: `got` bytes since the last newline.
    Lines { got: u64 },
}

impl<R> StallGuard<R> {
    pub fn new(io: R, timeout: Duration) -> Self {
        StallGuard { io, timeout, units: Units::Off, timer: None, armed: false }
    }

    /// Starts bounding binary frames; `buffered` is what was read past the hello.
    pub fn watch_frames(&mut self, buffered: &[u8]) {
        self.watch(Units::Frames { got: 0, len: [0; 4] }, buffered);
    }

    /// Starts bounding JSON-RPC lines; `buffered` is what was read while sniffing.
    pub fn watch_lines(&mut self, buffered: &[u8]) {
        self.watch(Units::Lines { got: 0 }, buffered);
    }

    fn watch(&mut self, units: Units, buffered: &[u8]) {
        self.units = units;
        self.units.feed(buffered);
        // What arrived before now gets a whole timeout from now: the hello was bounded already.
        if self.units.started() {
            self.arm();
        }
    }

    fn arm(&mut self) {
        let deadline = Instant::now() + self.timeout;
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.armed = true;
    }
}

impl Units {
    fn started(&self) -> bool {
        match self {
            Units::Off => false,
            Units::Frames { got, .. } | Units::Lines { got } => *got > 0,
        }
    }

    /// Accounts for `bytes` just read; returns whether a unit ended among them.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        let mut ended = false;
        match self {
            Units::Off => {}
            Units::Frames { got, len } => {
                while !bytes.is_empty() {
                    if *got < 4 {
                        let at = *got as usize;
                        let take = (4 - at).min(bytes.len());
                        len[at..at + take].copy_from_slice(&bytes[..take]);
                        *got += take as u64;
                        bytes = &bytes[take..];
                        continue;
                    }
                    let total = frame_len(len);
                    let take = (total - *got).min(bytes.len() as u64);
                    *got += take;
                    // `take` is at most `bytes.len()`.
                    bytes = &bytes[usize::try_from(take).unwrap_or(bytes.len())..];
                    if *got == total {
                        *got = 0;
                        ended = true;
                    }
                }
            }
            Units::Lines { got } => match bytes.iter().rposition(|&b| b == b'\n') {
                Some(newline) => {
                    *got = (bytes.len() - newline - 1) as u64;
                    ended = true;
                }
                None => *got += bytes.len() as u64,
            },
        }
        ended
    }

    fn stalled(&self, timeout: Duration) -> Stalled {
        match self {
            Units::Off => Stalled { unit: "frame", timeout, got: 0, of: None },
            Units::Frames { got, len } => {
                Stalled { unit: "frame", timeout, got: *got, of: (*got >= 4).then(|| frame_len(len)) }
            }
            Units::Lines { got } => Stalled { unit: "line", timeout, got: *got, of: None },
        }
    }
}

/// Header plus body: the whole frame a length field announces.
fn frame_len(len: &[u8; 4]) -> u64 {
    HEADER_LEN as u64 + u64::from(u32::from_be_bytes(*len))
}

impl<R: AsyncRead + Unpin> AsyncRead for StallGuard<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Polled here, before the read, so that a peer that sends nothing more still wakes us.
        if this.armed
            && let Some(timer) = &mut this.timer
            && timer.as_mut().poll(cx).is_ready()
        {
            let stalled = this.units.stalled(this.timeout);
            this.units = Units::Off;
            this.armed = false;
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, stalled)));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let ended = this.units.feed(&buf.filled()[before..]);
        if !this.units.started() {
            this.armed = false;
        } else if ended || !this.armed {
            this.arm();
        }
        Poll::Ready(Ok(()))
    }
}

/// A unit that did not complete in time: what the peer is told and the log says.
#[derive(Debug)]
pub(crate) struct Stalled {
    unit: &'static str,
    timeout: Duration,
    got: u64,
    /// The frame's whole length, once its length field has arrived.
    of: Option<u64>,
}

impl Stalled {
    /// The `Stalled` inside an error a [`StallGuard`] returned, if that is what it is.
    pub fn of(err: &io::Error) -> Option<&Stalled> {
        err.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Stalled { unit, timeout, got, of } = self;
        write!(f, "{unit} not completed within {timeout:?} ")?;
        match of {
            Some(of) => write!(f, "(got {got} of {of} bytes)"),
            None if *unit == "line" => write!(f, "(got {got} bytes and no newline)"),
            None => write!(f, "(got {got} of its {HEADER_LEN} header bytes)"),
        }
    }
}

impl std::error::Error for Stalled {}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: usize) -> Vec<u8> {
        let mut out = u32::try_from(body).expect("small").to_be_bytes().to_vec();
        out.extend_from_slice(&[0x10, 0, 0, 0, 0, 1]);
        out.resize(HEADER_LEN + body, b'x');
        out
    }

    fn frames() -> Units {
        Units::Frames { got: 0, len: [0; 4] }
    }

    #[test]
    fn frames_are_followed_across_any_split_of_the_stream() {
        let stream = [frame(0), frame(7), frame(300), frame(1)].concat();
        for cut in 1..stream.len() {
            let mut units = frames();
            let mut ended = 0;
            for piece in stream.chunks(cut) {
                ended += usize::from(units.feed(piece));
            }
            assert!(!units.started(), "split every {cut} bytes: still inside a frame at the end");
            assert!(ended >= 1, "split every {cut} bytes: no frame ended");
        }
        let mut units = frames();
        assert!(!units.feed(&frame(20)[..3]));
        assert_eq!(
            units.stalled(Duration::from_secs(1)).to_string(),
            "frame not completed within 1s (got 3 of its 10 header bytes)"
        );
        assert!(!units.feed(&frame(20)[3..15]));
        assert_eq!(
            units.stalled(Duration::from_secs(1)).to_string(),
            "frame not completed within 1s (got 15 of 30 bytes)"
        );
        assert!(units.feed(&[&frame(20)[15..], &frame(4)[..2]].concat()));
        assert!(units.started(), "the next frame has begun");
    }

    #[test]
    fn lines_end_at_newlines() {
        let mut units = Units::Lines { got: 0 };
        assert!(!units.feed(b"{\"method\""));
        assert!(units.started());
        assert!(units.feed(b":1}\n"));
        assert!(!units.started());
        assert!(units.feed(b"{}\n{\"a\""));
        assert_eq!(
            units.stalled(Duration::from_millis(300)).to_string(),
            "line not completed within 300ms (got 4 bytes and no newline)"
        );
    }

    #[tokio::test]
    async fn a_started_frame_times_out_and_an_idle_stream_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let timeout = Duration::from_millis(200);
        let (mut peer, ours) = tokio::io::duplex(1024);
        let mut guard = StallGuard::new(ours, timeout);
        guard.watch_frames(&[]);
        let mut buf = [0u8; 64];
        // Idle for longer than the timeout: nothing fires.
        let idle = tokio::time::timeout(timeout * 3, guard.read(&mut buf)).await;
        assert!(idle.is_err(), "an idle stream timed out: {idle:?}");
        let whole = frame(5);
        peer.write_all(&whole[..4]).await.expect("write");
        assert_eq!(guard.read(&mut buf).await.expect("read"), 4);
        let started = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(5), guard.read(&mut buf))
            .await
            .expect("the guard fires")
            .expect_err("the frame stalled");
        let took = started.elapsed();
        assert!(took >= timeout - Duration::from_millis(20) && took < timeout + Duration::from_secs(2), "{took:?}");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let said = Stalled::of(&err).map(ToString::to_string);
        assert_eq!(said.as_deref(), Some("frame not completed within 200ms (got 4 of 15 bytes)"));
        // Fired once: the rest of the input can still be read and dropped.
        peer.write_all(&whole[4..]).await.expect("write");
        assert_eq!(guard.read(&mut buf).await.expect("read after firing"), whole.len() - 4);
    }
}
