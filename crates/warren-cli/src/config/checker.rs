//! Checks one value of a section and reports against the section: what `plan` (per program)
//! and `probe` (the probe tables) build on.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use warren::supervise::plan::Invocation;

use super::error::{Collector, ErrorKind, Section};
use super::raw::{DurationText, Field};
use super::settings::Set;

/// Checks the values of one section, reporting against it.
pub(super) struct Checker<'c, 'a> {
    /// The absolute directory of the configuration file.
    pub(super) base: &'c Path,
    pub(super) at: Section,
    pub(super) errors: &'c mut Collector<'a>,
}

impl Checker<'_, '_> {
    pub(super) fn report(&mut self, span: Range<usize>, field: &str, kind: ErrorKind) {
        self.errors.push(Some(span), &self.at, Some(field), kind);
    }

    /// Reports `kind` at `raw` and gives nothing, for `and_then` chains.
    pub(super) fn fail<R, T>(&mut self, raw: &Spanned<R>, field: &str, kind: ErrorKind) -> Option<T> {
        self.report(raw.span(), field, kind);
        None
    }

    pub(super) fn executable(&mut self, raw: &Spanned<String>, field: &str) -> Option<PathBuf> {
        let text = raw.get_ref();
        if text.trim().is_empty() {
            return self.fail(raw, field, ErrorKind::EmptyCommand);
        }
        // A bare name is looked up in PATH when the program is spawned; anything with a slash
        // is a path, relative to the configuration file rather than to wherever warren runs.
        Some(if text.contains('/') { self.path(text) } else { PathBuf::from(text) })
    }

    pub(super) fn shell(&mut self, raw: &Spanned<String>, field: &str) -> Option<Invocation> {
        if raw.get_ref().trim().is_empty() {
            return self.fail(raw, field, ErrorKind::EmptyCommand);
        }
        Some(Invocation::Shell(raw.get_ref().clone()))
    }

    /// A path relative to the configuration file's directory, without `.` components.
    pub(super) fn path(&self, text: &str) -> PathBuf {
        self.base.join(text).components().collect()
    }

    pub(super) fn duration(&mut self, raw: &Field<DurationText>, field: &str, positive: bool) -> Option<Set<Duration>> {
        let raw = raw.as_ref()?;
        let text = &raw.get_ref().0;
        match humantime::parse_duration(text.trim()) {
            Ok(duration) if positive && duration.is_zero() => self.fail(raw, field, ErrorKind::Zero),
            Ok(duration) => Some(Set::new(raw, duration)),
            Err(err) => self.fail(raw, field, ErrorKind::BadDuration { text: text.clone(), reason: err.to_string() }),
        }
    }

    pub(super) fn count(&mut self, raw: &Field<u32>, field: &str) -> Option<Set<u32>> {
        let raw = raw.as_ref()?;
        match *raw.get_ref() {
            0 => self.fail(raw, field, ErrorKind::ZeroCount),
            n => Some(Set::new(raw, n)),
        }
    }
}
