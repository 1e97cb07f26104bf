//! The memory of a shared-memory segment (docs/SHM.md §4): create or map a sealed memfd, and
//! touch its words and bytes only through atomics and copies. The one module of warren-rpc
//! with `unsafe` code.
//!
//! Another process writes this memory whenever it likes, so nothing here hands out a plain
//! reference into it: the compiler would assume behind a `&u64` a value that cannot change,
//! and keep it in a register, or load it twice (a length checked on one load, used from
//! another). Words are atomics (lock-free and address-free on the targets warren runs on, so
//! valid across processes); bytes move by one copy between the mapping and private memory,
//! and everything is decided on the copy.

#![expect(unsafe_code, reason = "mapping shared memory and reading words another process writes")]

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use rustix::fs::{FallocateFlags, MemfdFlags, SealFlags};
use rustix::mm::{Advice, MapFlags, ProtFlags};

/// The seals a segment must carry before its memory is trusted to stay: it can neither shrink
/// (a peer truncating it would make our next touch a SIGBUS) nor grow, nor be unsealed.
const SEALS: SealFlags = SealFlags::SHRINK.union(SealFlags::GROW).union(SealFlags::SEAL);

/// A mapped segment; unmapped on drop. Never holds a reference into the mapping.
#[derive(Debug)]
pub struct Segment {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, reached only through atomics and copies (see the
// module's comment); nothing in it is tied to the thread that mapped it.
unsafe impl Send for Segment {}
// SAFETY: as for Send; concurrent use is what atomics and the ring's single-writer words are for.
unsafe impl Sync for Segment {}

impl Segment {
    /// A new segment of `len` bytes, zeroed, its pages allocated now (no fault-time allocation
    /// later, which could fail as a SIGBUS), sealed; with its descriptor, for the peer.
    pub fn create(len: usize) -> io::Result<(Segment, OwnedFd)> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "an empty segment"));
        }
        let fd = rustix::fs::memfd_create("warren-rpc-shm", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, len as u64)?;
        rustix::fs::fcntl_add_seals(&fd, SEALS)?;
        let segment = Segment::map(&fd)?;
        Ok((segment, fd))
    }

    /// Maps a segment a peer created, once it has checked that the segment is sealed: its size
    /// is then the size for good.
    pub fn map(fd: impl AsFd) -> io::Result<Segment> {
        let fd = fd.as_fd();
        let seals = rustix::fs::fcntl_get_seals(fd)?;
        if !seals.contains(SEALS) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the segment is not sealed against resizing and against new seals",
            ));
        }
        let len = usize::try_from(rustix::fs::fstat(fd)?.st_size)
            .ok()
            .filter(|len| *len > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the segment is empty"))?;
        // SAFETY: a new shared mapping chosen by the kernel (no address given), of a descriptor
        // we hold; nothing else in this process refers to the range it returns.
        let base = unsafe {
            rustix::mm::mmap(std::ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED, fd, 0)
        }?;
        let segment = Segment {
            base: NonNull::new(base.cast()).ok_or_else(|| io::Error::other("mmap gave a null address"))?,
            len,
        };
        // A fork without exec (the watchdog) must not keep every connection's pages alive.
        // SAFETY: the range is exactly our own mapping, made just above.
        unsafe { rustix::mm::madvise(base, len, Advice::LinuxDontFork) }?;
        Ok(segment)
    }

    /// Its size in bytes, fixed by the seals.
    #[expect(clippy::len_without_is_empty, reason = "a segment is never empty: `create` and `map` refuse one")]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The 8-byte word at `offset`, if the segment has one there (aligned, inside).
    pub fn word64(&self, offset: usize) -> Option<&AtomicU64> {
        if offset % 8 != 0 || offset.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: inside the mapping (checked), 8-aligned (the mapping is page-aligned), and an
        // atomic is the one kind of reference that allows another process to write the word
        // meanwhile; it lives no longer than `self`, which keeps the mapping.
        Some(unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast()) })
    }

    /// The 4-byte word at `offset`, if the segment has one there (aligned, inside).
    pub fn word32(&self, offset: usize) -> Option<&AtomicU32> {
        if offset % 4 != 0 || offset.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: as in `word64`, for a 4-aligned word.
        Some(unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) })
    }

    /// Copies the segment's `len` bytes at `offset` to the end of what `into` holds, without
    /// zeroing its memory first (the frame reader's buffer is reserved, not initialised: zeroing
    /// it before each copy cost a fifth of a 1 MiB echo); false (nothing copied) if they are not
    /// all inside the segment, or do not fit in `into`.
    pub fn copy_out_to(&self, offset: usize, len: usize, into: &mut tokio::io::ReadBuf<'_>) -> bool {
        if !self.inside(offset, len) || len > into.remaining() {
            return false;
        }
        // SAFETY: the first `len` bytes of the unfilled part are written right here (never
        // de-initialised: `unfilled_mut`'s one requirement), from inside the mapping (checked)
        // into private memory, so the two ranges cannot overlap; the peer may change the source
        // meanwhile, as in `copy_out`. Only then are they marked initialised and filled.
        unsafe {
            let unfilled = into.unfilled_mut();
            std::ptr::copy_nonoverlapping(self.base.as_ptr().add(offset), unfilled.as_mut_ptr().cast::<u8>(), len);
            into.assume_init(len);
        }
        into.advance(len);
        true
    }

    /// Copies `from` into the segment at `offset`; false (nothing copied) if it would not all
    /// fit inside it.
    pub fn copy_in(&self, offset: usize, from: &[u8]) -> bool {
        if !self.inside(offset, from.len()) {
            return false;
        }
        // SAFETY: the destination range is inside the mapping (checked) and cannot overlap
        // `from`, which is private memory.
        unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), self.base.as_ptr().add(offset), from.len()) };
        true
    }

    fn inside(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; no reference into it outlives `self` (words
        // borrow `self`, copies hold none).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn a_sealed_segment_cannot_be_resized_and_a_second_mapping_sees_the_same_memory() {
        let (segment, fd) = Segment::create(64 * 1024).expect("create");
        let err = rustix::fs::ftruncate(&fd, 4096).expect_err("shrinking a sealed segment");
        assert_eq!(err, rustix::io::Errno::PERM);
        let other = Segment::map(&fd).expect("map again");
        assert_eq!(other.len(), 64 * 1024);
        segment.word64(128).expect("a word").store(0xfeed, Ordering::Release);
        assert_eq!(other.word64(128).expect("a word").load(Ordering::Acquire), 0xfeed);
        assert!(segment.copy_in(65_000, b"end"));
        let mut three = [0; 3];
        assert!(other.copy_out_to(65_000, 3, &mut tokio::io::ReadBuf::new(&mut three)));
        assert_eq!(&three, b"end");
    }

    /// Whether this process's memory map names a shared-memory segment, read with nothing but
    /// raw syscalls into a stack buffer: safe in the child of a fork from a threaded process.
    /// `None` when the map cannot be read.
    fn maps_name_a_segment() -> Option<bool> {
        const NAME: &[u8] = b"warren-rpc-shm";
        let mut buf = [0u8; 4096];
        // A name may straddle two reads: the tail of the last one is kept in front.
        let keep = NAME.len() - 1;
        let mut held = 0;
        // SAFETY: open/read/close of a path we name, into a buffer we own; no allocation, no
        // lock, so the child of a fork may run it.
        unsafe {
            let fd = libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return None;
            }
            let found = loop {
                let Some(room) = buf.get_mut(held..) else { break None };
                let got = libc::read(fd, room.as_mut_ptr().cast(), room.len());
                let Ok(got @ 1..) = usize::try_from(got) else { break if got == 0 { Some(false) } else { None } };
                let end = held + got;
                let seen = buf.get(..end).unwrap_or_default();
                if seen.windows(NAME.len()).any(|window| window == NAME) {
                    break Some(true);
                }
                let tail = end.saturating_sub(keep);
                buf.copy_within(tail..end, 0);
                held = end - tail;
            };
            libc::close(fd);
            found
        }
    }

    #[test]
    fn a_fork_child_has_no_mapping() {
        // A fork without exec (warren's watchdog) must not keep segments alive.
        let (segment, _fd) = Segment::create(64 * 1024).expect("create");
        assert_eq!(maps_name_a_segment(), Some(true), "this process maps its segment");
        // SAFETY: the child runs only `maps_name_a_segment` (raw syscalls on its own stack)
        // and `_exit`; it never returns into code that could touch a lock another thread of
        // this test process held at the fork.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let code = match maps_name_a_segment() {
                Some(false) => 0,
                Some(true) => 1,
                None => 2,
            };
            // SAFETY: ends the child at once, running no destructor or atexit handler.
            unsafe { libc::_exit(code) };
        }
        assert!(child > 0, "fork: {}", io::Error::last_os_error());
        let pid = rustix::process::Pid::from_raw(child).expect("a child's pid");
        let (_, status) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
            .expect("wait for the child")
            .expect("the child's status");
        assert_eq!(status.exit_status(), Some(0), "1: the child maps the segment; 2: it could not read its map");
        drop(segment);
    }

    #[test]
    fn an_unsealed_memfd_is_refused() {
        let fd = rustix::fs::memfd_create("unsealed", MemfdFlags::CLOEXEC).expect("memfd");
        rustix::fs::ftruncate(&fd, 4096).expect("size");
        let err = Segment::map(&fd).expect_err("not sealed");
        assert!(err.to_string().contains("sealed"), "{err}");
    }

    #[test]
    fn words_and_copies_outside_or_misaligned_are_refused() {
        let (segment, _fd) = Segment::create(4096).expect("create");
        assert!(segment.word64(4096 - 8).is_some());
        assert!(segment.word64(4096).is_none());
        assert!(segment.word64(4).is_none(), "misaligned");
        assert!(segment.word32(4094).is_none());
        assert!(segment.word64(usize::MAX - 3).is_none(), "overflow");
        assert!(!segment.copy_in(4090, &[0; 7]));
        assert!(!segment.copy_out_to(usize::MAX, 2, &mut tokio::io::ReadBuf::new(&mut [0; 2])));
        assert!(!segment.copy_out_to(4090, 6, &mut tokio::io::ReadBuf::new(&mut [0; 5])), "more than fits");
        assert!(segment.copy_out_to(4090, 6, &mut tokio::io::ReadBuf::new(&mut [0; 6])));
    }
}
