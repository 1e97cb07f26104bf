//! One program's log files: records buffered in memory and appended to `<program>.log`, which is
//! renamed to `.log.1` (and `.1` to `.2`, up to `.<keep>`, the oldest deleted) when it would
//! grow past `max_size`. So a program fills at most `(keep + 1) × max_size` of disk.
//!
//! A write that fails (a full disk, an I/O error) never waits and never stops the program: the
//! buffered lines are counted as lost, a torn partial record is cut off again so the file stays
//! parseable, and the failure is reported once (and once more when writing works again).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::record::{self, Stream};

/// How much a program's records are buffered before they are written out.
pub const BUFFER_BYTES: usize = 64 * 1024;

/// How long writing must have worked before a reported failure is reported over: a nearly full
/// disk lets small writes through between failures, and that is not news each time.
const RECOVERED_AFTER: Duration = Duration::from_secs(5);

pub use crate::config::LogLimits as Limits;

/// What a flush did.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Records reached the file: readers waiting at the end have something new.
    pub wrote: bool,
    /// A change worth telling the user: writing failed, or works again.
    pub report: Option<String>,
}

impl Flushed {
    /// What two flushes did together (the first report kept: a failure and a recovery are at
    /// least five seconds apart, so two never come in one batch).
    fn and(self, later: Flushed) -> Flushed {
        Flushed { wrote: self.wrote || later.wrote, report: self.report.or(later.report) }
    }
}

/// A program's log files and the records not written yet.
#[derive(Debug)]
pub struct Writer {
    name: String,
    path: PathBuf,
    limits: Limits,
    file: Option<File>,
    /// Bytes of whole records in the current file: what readers may read.
    size: u64,
    /// Counts rotations (from an arbitrary start): a reader's position names its file by this.
    generation: u64,
    buf: Vec<u8>,
    /// The head of the records being pushed (reused: no allocation per batch).
    head: Vec<u8>,
    buf_lines: u64,
    seq: u64,
    lost: u64,
    /// A failure was reported, and when writing last failed.
    failing: Option<Instant>,
}

impl Writer {
    /// The writer of `dir/<name>.log`, numbering records on from the last one in its files.
    pub fn open(dir: &Path, name: &str, limits: Limits) -> Writer {
        let path = dir.join(format!("{name}.log"));
        let mut writer = Writer {
            name: name.to_owned(),
            path,
            limits,
            file: None,
            size: 0,
            generation: u64::from(limits.keep) + 1,
            buf: Vec::with_capacity(BUFFER_BYTES),
            head: Vec::new(),
            buf_lines: 0,
            seq: 0,
            lost: 0,
            failing: None,
        };
        // A directory or file that cannot be opened now is reported at the first flush.
        let _ = writer.open_current();
        writer.seq = (0..=limits.keep).find_map(|k| last_seq(&writer.file_path(k))).unwrap_or(0);
        writer
    }

    /// Its size and rotation limits: a program `scale` adds takes its group's.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn file_path(&self, rotated: u32) -> PathBuf {
        if rotated == 0 {
            self.path.clone()
        } else {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{rotated}"));
            PathBuf::from(name)
        }
    }

    fn open_current(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().create(true).append(true).read(true).open(&self.path)?;
        let len = file.metadata()?.len();
        // A record cut short (warren was killed mid-write) would run into the next one.
        let whole = whole_records_len(&mut file, len)?;
        if whole != len {
            file.set_len(whole)?;
        }
        self.size = whole;
        self.file = Some(file);
        Ok(())
    }

    /// Buffers one record; writes the buffer out when it is full.
    pub fn push(&mut self, time: impl std::fmt::Display, pid: u32, stream: Stream, text: &str) -> Flushed {
        self.push_all(time, pid, stream, std::iter::once(text))
    }

    /// Buffers the records of one read (one time, pid and stream: their head is made once);
    /// writes the buffer out whenever it is full.
    pub fn push_all<'a>(
        &mut self,
        time: impl std::fmt::Display,
        pid: u32,
        stream: Stream,
        lines: impl Iterator<Item = &'a str>,
    ) -> Flushed {
        self.head.clear();
        record::head(&mut self.head, time, &self.name, pid, stream);
        let mut flushed = Flushed::default();
        for text in lines {
            self.seq += 1;
            self.buf.extend_from_slice(&self.head);
            record::body(&mut self.buf, self.seq, text);
            self.buf_lines += 1;
            if self.buf.len() >= BUFFER_BYTES {
                flushed = flushed.and(self.flush());
            }
        }
        flushed
    }

    /// The sequence number of the last record pushed.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Writes the buffered records out, rotating as needed.
    pub fn flush(&mut self) -> Flushed {
        if self.buf.is_empty() {
            return Flushed::default();
        }
        let buf = std::mem::take(&mut self.buf);
        let result = self.write_records(&buf);
        self.buf = buf;
        self.buf.clear();
        let lines = std::mem::take(&mut self.buf_lines);
        match result {
            Ok(()) => {
                let recovered = self.failing.is_some_and(|at| at.elapsed() >= RECOVERED_AFTER);
                let report = recovered.then(|| {
                    self.failing = None;
                    format!(
                        "{}: writing its log {} again ({} lines lost in all)",
                        self.name,
                        self.path.display(),
                        self.lost
                    )
                });
                Flushed { wrote: true, report }
            }
            Err((written, err)) => {
                self.lost += lines - written;
                let report = self.failing.is_none().then(|| {
                    format!(
                        "{}: cannot write its log {}: {err}; its lines are dropped and counted (see `warren status`) until writing works again",
                        self.name,
                        self.path.display()
                    )
                });
                self.failing = Some(Instant::now());
                Flushed { wrote: written > 0, report }
            }
        }
    }

    /// Appends `records` (whole lines), never letting a file pass `max_size` unless a single
    /// record is larger. On failure, how many records were written before it.
    fn write_records(&mut self, all: &[u8]) -> Result<(), (u64, io::Error)> {
        let mut records = all;
        while !records.is_empty() {
            // Counted only on failure: a flood's every flush would pay for it.
            let written = all.len() - records.len();
            let fail = |err| (memchr::memchr_iter(b'\n', &all[..written]).count() as u64, err);
            if self.file.is_none() {
                self.open_current().map_err(fail)?;
            }
            let room = usize::try_from(self.limits.max_size.saturating_sub(self.size)).unwrap_or(usize::MAX);
            let take = if records.len() <= room {
                records.len()
            } else {
                match memchr::memrchr(b'\n', &records[..room]) {
                    Some(end) => end + 1,
                    None if self.size == 0 => memchr::memchr(b'\n', records).map_or(records.len(), |e| e + 1),
                    None => {
                        self.rotate().map_err(fail)?;
                        continue;
                    }
                }
            };
            self.append(&records[..take]).map_err(fail)?;
            records = &records[take..];
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(file) = &mut self.file else { return Err(io::Error::other("no open file")) };
        match file.write_all(bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Cut a torn record off again; if even that fails, reopening checks once more.
                if file.set_len(self.size).is_err() {
                    self.file = None;
                }
                Err(err)
            }
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        // The oldest is deleted first, so that no rename replaces a file: ext4 writes out the
        // delayed blocks of a file renamed over another (`auto_da_alloc`) there and then,
        // which was a sixteenth of `up`'s CPU in a flood that rotates.
        ignore_missing(std::fs::remove_file(self.file_path(self.limits.keep)))?;
        for k in (1..self.limits.keep).rev() {
            ignore_missing(std::fs::rename(self.file_path(k), self.file_path(k + 1)))?;
        }
        if self.limits.keep > 0 {
            ignore_missing(std::fs::rename(&self.path, self.file_path(1)))?;
        }
        self.generation += 1;
        self.size = 0;
        self.open_current()
    }

    /// Numbers the current file `generation`, as the image before an upgrade did, so that
    /// readers' positions (which name files by generation) stay valid across it.
    pub fn carry_on_from(&mut self, generation: u64) {
        // Never below the files kept: `oldest` counts back from it.
        self.generation = generation.max(u64::from(self.limits.keep));
    }

    /// The generation of the current file and how much of it is readable.
    pub fn end(&self) -> (u64, u64) {
        (self.generation, self.size)
    }

    /// The oldest generation whose file exists.
    pub fn oldest(&self) -> u64 {
        let k = (1..=self.limits.keep).rev().find(|&k| self.file_path(k).exists()).unwrap_or(0);
        self.generation - u64::from(k)
    }

    /// Opens generation `generation` for reading, with the length readers may read; `None`
    /// when it was rotated away or never existed.
    pub fn open_generation(&self, generation: u64) -> Option<(File, u64)> {
        let k = u32::try_from(self.generation.checked_sub(generation)?).ok().filter(|&k| k <= self.limits.keep)?;
        let file = File::open(self.file_path(k)).ok()?;
        let len = if k == 0 { self.size } else { file.metadata().ok()?.len() };
        Some((file, len))
    }
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The length of `file` up to the end of its last whole record.
fn whole_records_len(file: &mut File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(at) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The sequence number of the last record of the file at `path`.
fn last_seq(path: &Path) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(1024 * 1024);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    text.lines().rev().find_map(|line| record::parse(line).map(|r| r.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(writer: &mut Writer, lines: usize) {
        for i in 0..lines {
            writer.push(
                "2026-12-02T10:00:00.000000Z",
                7,
                Stream::Out,
                &format!("line {i:06} ........................"),
            );
        }
        writer.flush();
    }

    #[test]
    fn rotation_keeps_the_bound_and_numbering_goes_on_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits { max_size: 4096, keep: 2 };
        let mut writer = Writer::open(dir.path(), "web", limits);
        fill(&mut writer, 2000);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("name"))
            .collect();
        names.sort();
        assert_eq!(names, ["web.log", "web.log.1", "web.log.2"]);
        for name in &names {
            let len = std::fs::metadata(dir.path().join(name)).expect("metadata").len();
            assert!(len <= limits.max_size, "{name}: {len}");
        }
        drop(writer);
        let mut again = Writer::open(dir.path(), "web", limits);
        fill(&mut again, 1);
        let text = std::fs::read_to_string(dir.path().join("web.log")).expect("read");
        assert_eq!(text.lines().last().and_then(record::parse).map(|r| r.seq), Some(2001));
    }

    #[test]
    fn a_torn_record_is_cut_off_when_the_file_is_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("web.log");
        std::fs::write(&path, "2026-12-02T10:00:00.000000Z web[1] out 1 | one\n2026-12-02T10:00:0").expect("write");
        let mut writer = Writer::open(dir.path(), "web", Limits::default());
        fill(&mut writer, 1);
        let text = std::fs::read_to_string(&path).expect("read");
        let seqs: Vec<u64> = text.lines().map(|l| record::parse(l).expect("a record").seq).collect();
        assert_eq!(seqs, [1, 2]);
    }
}
