//! The segment's layout and its two single-producer, single-consumer byte rings (docs/SHM.md
//! §3, §4): each side keeps its own index privately and only publishes it, and checks every
//! index it reads from the peer, so a peer that scribbles over the segment can make this side
//! read garbage bytes (which the frame layer refuses) or end the connection, nothing else.
//! No I/O and no waiting here: the stream halves (next step) park and ring.

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::spin::UNKNOWN_CPU;
use super::sys::Segment;

/// `"\xF7WSM"`: the protocol's first byte, then "warren shared memory".
const MAGIC: u32 = u32::from_ne_bytes([0xF7, b'W', b'S', b'M']);
const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 4096;
/// The smallest and largest ring, each a power of two.
pub(crate) const MIN_CAP: u64 = 4096;
pub(crate) const MAX_CAP: u64 = 16 << 20;

/// Header fields: offsets in the segment.
mod at {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const HEADER_LEN: usize = 8;
    pub const FLAGS: usize = 12;
    pub const SEGMENT_LEN: usize = 16;
    pub const C2S_OFFSET: usize = 24;
    pub const C2S_CAP: usize = 32;
    pub const S2C_OFFSET: usize = 40;
    pub const S2C_CAP: usize = 48;
    /// The four lines of 128 bytes, one writer each: C→S producer and consumer, S→C producer
    /// and consumer. A line's index (`tail` or `head`) is its first word.
    pub const C2S_TAIL: usize = 128;
    pub const C2S_HEAD: usize = 256;
    pub const S2C_TAIL: usize = 384;
    pub const S2C_HEAD: usize = 512;
}

/// Which way a ring carries bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    ClientToServer,
    ServerToClient,
}

/// Where the two rings are in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    c2s_cap: u64,
    s2c_cap: u64,
}

/// A ring's place: its bytes, its size, its two index words.
#[derive(Debug, Clone, Copy)]
struct Place {
    data: usize,
    cap: u64,
    tail_at: usize,
    head_at: usize,
}

impl Layout {
    /// Rings of these sizes, if each is a power of two within bounds.
    pub fn new(c2s_cap: u64, s2c_cap: u64) -> Option<Layout> {
        let fits = |cap: u64| cap.is_power_of_two() && (MIN_CAP..=MAX_CAP).contains(&cap);
        (fits(c2s_cap) && fits(s2c_cap)).then_some(Layout { c2s_cap, s2c_cap })
    }

    /// The segment's size: the header page and both rings.
    pub fn segment_len(&self) -> usize {
        // At most 4 KiB + 2 × 16 MiB: fits any usize warren runs on.
        HEADER_LEN + (self.c2s_cap + self.s2c_cap) as usize
    }

    /// Writes the header into a new segment of [`segment_len`](Self::segment_len) bytes,
    /// whose indices are still zero.
    pub fn write_header(&self, segment: &Segment) -> bool {
        let words32 = [(at::MAGIC, MAGIC), (at::VERSION, VERSION), (at::HEADER_LEN, HEADER_LEN as u32), (at::FLAGS, 0)];
        let words64 = [
            (at::SEGMENT_LEN, self.segment_len() as u64),
            (at::C2S_OFFSET, HEADER_LEN as u64),
            (at::C2S_CAP, self.c2s_cap),
            (at::S2C_OFFSET, HEADER_LEN as u64 + self.c2s_cap),
            (at::S2C_CAP, self.s2c_cap),
        ];
        if segment.len() != self.segment_len() {
            return false;
        }
        // Nobody has waited yet: no CPU to report (docs/SHM.md §5).
        let cpus = [at::C2S_TAIL, at::C2S_HEAD, at::S2C_TAIL, at::S2C_HEAD].map(|line| (line + CPU, UNKNOWN_CPU));
        let mut written = true;
        for (offset, value) in words32.into_iter().chain(cpus) {
            written &= segment.word32(offset).map(|word| word.store(value, Ordering::Relaxed)).is_some();
        }
        for (offset, value) in words64 {
            written &= segment.word64(offset).map(|word| word.store(value, Ordering::Relaxed)).is_some();
        }
        written
    }

    /// Reads and checks a peer's header, once, before anything else of the segment is used.
    pub fn read_header(segment: &Segment) -> Result<Layout, String> {
        let word32 = |offset| segment.word32(offset).map(|word| word.load(Ordering::Acquire));
        let word64 = |offset| segment.word64(offset).map(|word| word.load(Ordering::Acquire));
        if segment.len() < HEADER_LEN {
            return Err(format!("{} bytes is smaller than the header", segment.len()));
        }
        if word32(at::MAGIC) != Some(MAGIC) {
            return Err("not a warren shared-memory segment (magic)".into());
        }
        let fixed = [(at::VERSION, VERSION, "version"), (at::HEADER_LEN, HEADER_LEN as u32, "header length")];
        for (offset, expected, what) in fixed.into_iter().chain([(at::FLAGS, 0, "flags")]) {
            let found = word32(offset).unwrap_or(u32::MAX);
            if found != expected {
                return Err(format!("{what} {found}, this side knows {expected}"));
            }
        }
        let (c2s_cap, s2c_cap) = (word64(at::C2S_CAP).unwrap_or(0), word64(at::S2C_CAP).unwrap_or(0));
        let layout = Layout::new(c2s_cap, s2c_cap)
            .ok_or_else(|| format!("ring sizes {c2s_cap} and {s2c_cap} (powers of two from {MIN_CAP} to {MAX_CAP})"))?;
        let expected = [
            (at::SEGMENT_LEN, layout.segment_len() as u64, "segment length"),
            (at::C2S_OFFSET, HEADER_LEN as u64, "first ring's offset"),
            (at::S2C_OFFSET, HEADER_LEN as u64 + c2s_cap, "second ring's offset"),
        ];
        for (offset, expected, what) in expected {
            let found = word64(offset).unwrap_or(u64::MAX);
            if found != expected {
                return Err(format!("{what} {found}, expected {expected}"));
            }
        }
        if segment.len() != layout.segment_len() {
            return Err(format!("the segment has {} bytes, its header says {}", segment.len(), layout.segment_len()));
        }
        Ok(layout)
    }

    fn place(&self, direction: Direction) -> Place {
        match direction {
            Direction::ClientToServer => {
                Place { data: HEADER_LEN, cap: self.c2s_cap, tail_at: at::C2S_TAIL, head_at: at::C2S_HEAD }
            }
            Direction::ServerToClient => Place {
                data: HEADER_LEN + self.c2s_cap as usize,
                cap: self.s2c_cap,
                tail_at: at::S2C_TAIL,
                head_at: at::S2C_HEAD,
            },
        }
    }
}

/// The peer broke a ring's invariant: the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared-memory ring: {0}")]
pub(crate) struct Poisoned(String);

/// The writing end of one ring.
#[derive(Debug)]
pub(crate) struct Producer {
    segment: Arc<Segment>,
    place: Place,
    /// Bytes published: ours alone, never read back from the segment.
    tail: u64,
    /// The consumer's index at its last load.
    head_seen: u64,
}

/// The reading end of one ring.
#[derive(Debug)]
pub(crate) struct Consumer {
    segment: Arc<Segment>,
    place: Place,
    /// Bytes consumed: ours alone.
    head: u64,
    /// The producer's index at its last load.
    tail_seen: u64,
}

impl Producer {
    pub fn new(segment: Arc<Segment>, layout: &Layout, direction: Direction) -> Producer {
        Producer { segment, place: layout.place(direction), tail: 0, head_seen: 0 }
    }

    /// How many bytes can be written now.
    pub fn room(&mut self) -> Result<usize, Poisoned> {
        let head = load(&self.segment, self.place.head_at)?;
        // The consumer is at most `cap` behind, and never goes back.
        if self.tail.wrapping_sub(head) > self.place.cap || head.wrapping_sub(self.head_seen) > self.place.cap {
            return Err(Poisoned(format!(
                "the reader's index moved from {} to {head} with {} bytes written",
                self.head_seen, self.tail
            )));
        }
        self.head_seen = head;
        Ok((self.place.cap - (self.tail - head)) as usize)
    }

    /// Copies as much of `bytes` as fits and publishes it; how much that was.
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, Poisoned> {
        self.write_vectored(&[IoSlice::new(bytes)])
    }

    /// Copies as much of `bufs`, in order, as fits (room freed meanwhile included) and
    /// publishes it: once for what fits in one [`STEP`] (many small frames, one index store,
    /// at most one ring of the peer's bell), every [`STEP`] for more, so that a reader on
    /// another CPU copies out one step while this side copies in the next; how much that was.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, Poisoned> {
        let mut room = self.room()?;
        let start = self.tail;
        let mut at = start;
        'bufs: for bytes in bufs {
            let mut from = 0;
            while from < bytes.len() {
                if room == 0 {
                    self.publish(at)?;
                    room = self.room()?;
                    if room == 0 {
                        break 'bufs;
                    }
                }
                let n = room.min(bytes.len() - from).min(STEP);
                for (offset, piece) in pieces(&self.place, at, n) {
                    let piece = from + piece.start..from + piece.end;
                    if !self.segment.copy_in(offset, &bytes[piece]) {
                        return Err(Poisoned("a position outside the segment".into()));
                    }
                }
                (at, room, from) = (at + n as u64, room - n, from + n);
                if at - self.tail >= STEP as u64 {
                    self.publish(at)?;
                }
            }
        }
        self.publish(at)?;
        Ok((at - start) as usize)
    }

    fn publish(&mut self, at: u64) -> Result<(), Poisoned> {
        if at != self.tail {
            self.tail = at;
            store(&self.segment, self.place.tail_at, self.tail)?;
        }
        Ok(())
    }

    /// The offsets of this end's `sleep` word (parked for room) and the consumer's.
    pub fn sleep_words(&self) -> (usize, usize) {
        (self.place.tail_at + SLEEP, self.place.head_at + SLEEP)
    }
}

impl Consumer {
    pub fn new(segment: Arc<Segment>, layout: &Layout, direction: Direction) -> Consumer {
        Consumer { segment, place: layout.place(direction), head: 0, tail_seen: 0 }
    }

    /// How many bytes can be read now.
    pub fn available(&mut self) -> Result<usize, Poisoned> {
        let tail = load(&self.segment, self.place.tail_at)?;
        // The producer is at most `cap` ahead, and never goes back.
        if tail.wrapping_sub(self.head) > self.place.cap || tail.wrapping_sub(self.tail_seen) > self.place.cap {
            return Err(Poisoned(format!(
                "the writer's index moved from {} to {tail} with {} bytes read",
                self.tail_seen, self.head
            )));
        }
        self.tail_seen = tail;
        Ok((tail - self.head) as usize)
    }

    /// Copies up to `into.len()` bytes out (what is published meanwhile included) and frees
    /// their room every [`STEP`], so that a writer on another CPU copies in the next step while
    /// this side copies out this one; how many.
    #[cfg(test)]
    pub fn read(&mut self, into: &mut [u8]) -> Result<usize, Poisoned> {
        let mut filled = tokio::io::ReadBuf::new(into);
        self.read_into(&mut filled)?;
        Ok(filled.filled().len())
    }

    /// [`read`](Self::read) to the end of what `into` holds, into memory it need not have
    /// initialised.
    pub fn read_into(&mut self, into: &mut tokio::io::ReadBuf<'_>) -> Result<(), Poisoned> {
        while into.remaining() > 0 {
            let n = self.available()?.min(into.remaining()).min(STEP);
            if n == 0 {
                break;
            }
            for (offset, piece) in pieces(&self.place, self.head, n) {
                if !self.segment.copy_out_to(offset, piece.len(), into) {
                    return Err(Poisoned("a position outside the segment".into()));
                }
            }
            self.head += n as u64;
            store(&self.segment, self.place.head_at, self.head)?;
        }
        Ok(())
    }
}

impl Consumer {
    /// The offsets of this end's `sleep` word (parked for data) and the producer's.
    pub fn sleep_words(&self) -> (usize, usize) {
        (self.place.head_at + SLEEP, self.place.tail_at + SLEEP)
    }
}

/// How much is copied before the index is published (docs/SHM.md §3, "Frames bigger than the
/// ring"): small enough that the two sides' copies of a large frame overlap, large enough that
/// a step costs far more than its index store.
pub(crate) const STEP: usize = 32 << 10;

/// A line's `sleep` word, after its index: odd while its owner is parked (docs/SHM.md §5).
const SLEEP: usize = 8;
/// A line's `cpu` word, after its `sleep` word: where its owner last began a wait.
const CPU: usize = 12;
/// How far a line's `cpu` word lies past its `sleep` word, for the halves' spin.
pub(crate) const CPU_AFTER_SLEEP: usize = CPU - SLEEP;

/// Where `n` bytes from stream position `at` lie: one piece, or two where the ring wraps; each
/// as (offset in the segment, range of the caller's buffer).
fn pieces(place: &Place, at: u64, n: usize) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> {
    // `cap` is a power of two no larger than 16 MiB: the masked position fits any usize.
    let start = (at & (place.cap - 1)) as usize;
    let first = n.min(place.cap as usize - start);
    [(place.data + start, 0..first), (place.data, first..n)].into_iter().filter(|(_, range)| !range.is_empty())
}

fn load(segment: &Segment, offset: usize) -> Result<u64, Poisoned> {
    let word = segment.word64(offset).ok_or_else(|| Poisoned("an index outside the segment".into()))?;
    Ok(word.load(Ordering::Acquire))
}

fn store(segment: &Segment, offset: usize, value: u64) -> Result<(), Poisoned> {
    let word = segment.word64(offset).ok_or_else(|| Poisoned("an index outside the segment".into()))?;
    word.store(value, Ordering::Release);
    Ok(())
}

#[cfg(test)]
mod tests;
