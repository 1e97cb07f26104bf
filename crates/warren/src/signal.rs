//! A Unix signal: the one type warren uses for a signal it sends, receives, or reads in an exit
//! status, so no dependency's type (rustix, libc, tokio) reaches the API and no report carries
//! a bare number or a string.

use std::fmt;

/// A Unix signal, by number, with its conventional name.
///
/// ```
/// use warren::Signal;
/// assert_eq!(Signal::parse("term"), Some(Signal::TERM));
/// assert_eq!(Signal::TERM.to_string(), "SIGTERM");
/// assert_eq!(Signal::INT.exit_code(), 130);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Signal(i32);

/// The signals warren knows by name.
const NAMED: [(Signal, &str); 17] = [
    (Signal::HUP, "SIGHUP"),
    (Signal::INT, "SIGINT"),
    (Signal::QUIT, "SIGQUIT"),
    (Signal::ILL, "SIGILL"),
    (Signal::ABRT, "SIGABRT"),
    (Signal::BUS, "SIGBUS"),
    (Signal::FPE, "SIGFPE"),
    (Signal::KILL, "SIGKILL"),
    (Signal::USR1, "SIGUSR1"),
    (Signal::SEGV, "SIGSEGV"),
    (Signal::USR2, "SIGUSR2"),
    (Signal::PIPE, "SIGPIPE"),
    (Signal::ALRM, "SIGALRM"),
    (Signal::TERM, "SIGTERM"),
    (Signal::CONT, "SIGCONT"),
    (Signal::STOP, "SIGSTOP"),
    (Signal::TSTP, "SIGTSTP"),
];

impl Signal {
    /// Hangup: the controlling terminal closed.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// Interrupt: Ctrl-C.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// Quit: Ctrl-\.
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// Illegal instruction.
    pub const ILL: Signal = Signal(libc::SIGILL);
    /// Abort, as `abort()` raises.
    pub const ABRT: Signal = Signal(libc::SIGABRT);
    /// Bus error.
    pub const BUS: Signal = Signal(libc::SIGBUS);
    /// Arithmetic error.
    pub const FPE: Signal = Signal(libc::SIGFPE);
    /// Kill: cannot be caught.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// User signal 1.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// Segmentation fault.
    pub const SEGV: Signal = Signal(libc::SIGSEGV);
    /// User signal 2.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// Write to a pipe nobody reads.
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    /// Timer.
    pub const ALRM: Signal = Signal(libc::SIGALRM);
    /// Terminate: the polite request to stop.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// Continue a stopped process.
    pub const CONT: Signal = Signal(libc::SIGCONT);
    /// Stop: cannot be caught.
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    /// Terminal stop: Ctrl-Z.
    pub const TSTP: Signal = Signal(libc::SIGTSTP);

    /// The signals a program may be asked to stop with (`Spec::stop_signal`, `stop_signal` in
    /// warren.toml).
    pub const STOP_SIGNALS: [Signal; 7] =
        [Signal::TERM, Signal::INT, Signal::HUP, Signal::QUIT, Signal::KILL, Signal::USR1, Signal::USR2];

    /// The signal with this number, if it is one (1 to 64 on Linux).
    pub fn from_number(number: i32) -> Option<Signal> {
        (1..=libc::SIGRTMAX()).contains(&number).then_some(Signal(number))
    }

    /// The signal's number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// The conventional name (`SIGTERM`), if warren knows one for this number.
    pub fn name(self) -> Option<&'static str> {
        NAMED.iter().find(|(signal, _)| *signal == self).map(|(_, name)| *name)
    }

    /// Parses a name warren knows: `TERM`, `SIGTERM` or `sigterm`. Numbers are not accepted.
    pub fn parse(name: &str) -> Option<Signal> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        NAMED.iter().find(|(_, known)| known.strip_prefix("SIG") == Some(bare)).map(|(signal, _)| *signal)
    }

    /// Parses one of [`STOP_SIGNALS`](Self::STOP_SIGNALS) by name.
    pub fn parse_stop(name: &str) -> Option<Signal> {
        Signal::parse(name).filter(|signal| Signal::STOP_SIGNALS.contains(signal))
    }

    /// The conventional exit code of a process ended by this signal: 128 + its number.
    pub fn exit_code(self) -> i32 {
        128 + self.0
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for (signal, full) in NAMED {
            assert_eq!(Signal::parse(&full[3..]), Some(signal));
            assert_eq!(signal.to_string(), full);
            assert_eq!(Signal::parse(&full.to_lowercase()), Some(signal));
            assert_eq!(Signal::from_number(signal.number()), Some(signal));
        }
        assert_eq!(Signal::parse("15"), None);
        assert_eq!(Signal::parse("SIGFOO"), None);
        assert_eq!(Signal::parse_stop("TSTP"), None);
        assert_eq!(Signal::parse_stop("int"), Some(Signal::INT));
        assert_eq!(Signal::from_number(0), None);
        assert_eq!(Signal::from_number(40).map(|s| s.to_string()), Some("signal 40".to_owned()));
    }
}
