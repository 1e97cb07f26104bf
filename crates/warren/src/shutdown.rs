//! The one shutdown policy of a host process, used by [`Host::stop_on_signal`](crate::Host)
//! and by `warren up`. See docs/SHUTDOWN.md, "Signals to the host".
//!
//! The handlers only record; this is plain code with a count:
//! - SIGINT, SIGTERM, SIGHUP or SIGQUIT, once: stop every child gracefully (the caller does it:
//!   a host stops its children in parallel, `warren up` stops dependents first). SIGHUP is one
//!   of them because closing a terminal must not SIGKILL every program without its grace, and
//!   SIGQUIT because its default action would do the same.
//! - Twice: SIGKILL every child's process group now.
//! - Three times: exit at once with [`Shutdown::EXIT_CODE`], leaving the cleanup to the
//!   children's parent-death signal and the watchdog.
//! - SIGTSTP (Ctrl-Z): the children are in process groups of their own, so the terminal's stop
//!   does not reach them; they are stopped with SIGSTOP, then this process stops itself. On
//!   SIGCONT (`fg`, `bg`) the children's groups are continued too. cargo-nextest does the same
//!   for its test processes.
//! - A signal given to [`Shutdown::reload_on`] (SIGHUP for a detached `warren up`, as for
//!   supervisord and nginx, which have no terminal to lose) is not a stop: it is returned as
//!   [`ShutdownStep::Reload`] each time and does not count toward the second and third.

use tracing::{debug, info};

use crate::signal::Signal;
use crate::signals::Signals;
use crate::sys;

/// What [`Shutdown::next`] did for a signal received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownStep {
    /// The first stop signal: the caller now stops every child gracefully.
    Stop(Signal),
    /// The second stop signal: every child's process group was sent SIGKILL.
    Killed(Signal),
    /// The children's groups and this process were stopped (SIGTSTP) and are running again
    /// (SIGCONT).
    Resumed,
    /// A signal set aside with [`Shutdown::reload_on`]: the caller reloads its configuration.
    Reload(Signal),
    /// A signal given to [`Shutdown::upgrade_on`]: the caller replaces itself with a new image
    /// that takes its children over.
    Upgrade(Signal),
}

/// Reads the signals that stop or suspend a host process and applies the policy (see the
/// module docs). Install it early: from then on these signals are queued here instead of
/// killing the process.
#[derive(Debug)]
pub struct Shutdown {
    signals: Signals,
    stops: u32,
    /// Stop signals that mean "reload" here instead.
    reload: Vec<Signal>,
    /// Signals that mean "upgrade".
    upgrade: Vec<Signal>,
    /// SIGTSTP stopped the children and this process, and no SIGCONT has come since.
    suspended: bool,
}

impl Shutdown {
    /// The exit code of the third stop signal: the conventional one of an interrupted process.
    pub const EXIT_CODE: i32 = 130;

    /// The signals that ask a host process to stop.
    pub const STOP_SIGNALS: [Signal; 4] = [Signal::INT, Signal::TERM, Signal::HUP, Signal::QUIT];

    /// Installs the handlers for [`STOP_SIGNALS`](Self::STOP_SIGNALS), SIGTSTP and SIGCONT.
    pub fn install() -> std::io::Result<Shutdown> {
        let mut which = Shutdown::STOP_SIGNALS.to_vec();
        which.extend([Signal::TSTP, Signal::CONT]);
        let signals = Signals::install(&which)?;
        let stops: Vec<i32> = Shutdown::STOP_SIGNALS.iter().map(|signal| signal.number()).collect();
        sys::handover::count_stop_signals(&stops)?;
        // In an image a hand-over started, they were blocked across the exec: now they are
        // caught, any that came meanwhile arrive.
        let numbers: Vec<i32> = which.iter().map(|signal| signal.number()).collect();
        crate::handover::signal_thread::release(&numbers);
        Ok(Shutdown { signals, stops: 0, reload: Vec::new(), upgrade: Vec::new(), suspended: false })
    }

    /// From now on `signal` (one of [`STOP_SIGNALS`](Self::STOP_SIGNALS)) asks for a reload
    /// ([`ShutdownStep::Reload`]) rather than a stop.
    pub fn reload_on(mut self, signal: Signal) -> Shutdown {
        if !self.reload.contains(&signal) {
            self.reload.push(signal);
        }
        self
    }

    /// From now on `signal` (SIGUSR2 for `warren up`, as for nginx) is caught and returned as
    /// [`ShutdownStep::Upgrade`]; it does not count as a stop.
    pub fn upgrade_on(mut self, signal: Signal) -> std::io::Result<Shutdown> {
        self.signals.add(signal)?;
        crate::handover::signal_thread::release(&[signal.number()]);
        if !self.upgrade.contains(&signal) {
            self.upgrade.push(signal);
        }
        Ok(self)
    }

    /// How many stop signals have been received.
    pub fn stops(&self) -> u32 {
        self.stops
    }

    /// Waits for the next signal that calls for the caller's attention and returns what was
    /// done; `signal_groups` sends a signal to every child's process group. Suspension and
    /// resumption are handled here; the third stop signal exits the process. Cancel-safe.
    pub async fn next(&mut self, signal_groups: impl Fn(Signal)) -> ShutdownStep {
        loop {
            let received = self.signals.next().await;
            match received {
                Signal::TSTP => {
                    debug!("received SIGTSTP: stopping every child's process group, then this process");
                    signal_groups(Signal::STOP);
                    self.suspended = true;
                    // Our own handler replaced the default action, so stop the way it would
                    // have; the kernel resumes us on SIGCONT and `next` then continues the
                    // children.
                    if let Err(err) = sys::kill_process(sys::current_pid(), Signal::STOP) {
                        debug!("cannot stop this process: {err}");
                    }
                }
                Signal::CONT => {
                    debug!("received SIGCONT: continuing every child's process group");
                    signal_groups(Signal::CONT);
                    // Only a resumption of a suspension is news: a SIGCONT to a process that
                    // runs (`script`, once continued, sends its child one more) is not.
                    if std::mem::take(&mut self.suspended) {
                        return ShutdownStep::Resumed;
                    }
                }
                reload if self.reload.contains(&reload) => return ShutdownStep::Reload(reload),
                upgrade if self.upgrade.contains(&upgrade) => return ShutdownStep::Upgrade(upgrade),
                stop => {
                    self.stops += 1;
                    match self.stops {
                        1 => return ShutdownStep::Stop(stop),
                        2 => {
                            signal_groups(Signal::KILL);
                            return ShutdownStep::Killed(stop);
                        }
                        _ => {
                            info!("received {stop} a third time: exiting now");
                            std::process::exit(Shutdown::EXIT_CODE);
                        }
                    }
                }
            }
        }
    }
}
