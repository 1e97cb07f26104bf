//! The old image's side: hold every pump and reaper between two steps, write the state into a
//! sealed memfd, keep exactly the descriptors it names across exec, and exec from the thread
//! that is every child's parent. Any failure undoes all of it: the host runs on as before.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::state::{ChildState, HostState, Notices, NotifyState, PipeState, RpcState, VERSION, WatchdogState};
use super::{HandoverError, STATE_VAR};
use crate::host::Host;
use crate::log::Stream;
use crate::pump::PumpAt;
use crate::spawner::ExecSelf;
use crate::sys::handover as sys;
use crate::tasks::ReapAt;

/// How long every pump and reaper has to come to a stop between two steps.
const SETTLE: Duration = Duration::from_secs(5);

/// How long a child's RPC connection has to come to a stop between two frames (its write
/// under way through): one whose peer does not read is made anew instead.
const HOLD_RPC: Duration = Duration::from_secs(1);

impl Host {
    /// Replaces this process with `program` (e.g. `/proc/self/exe`) run with `args`, handing
    /// every child over to it: the new image calls [`HostBuilder::resume`](crate::HostBuilder::resume)
    /// and has the same children, pipes and log sequence numbers (docs/UPGRADE.md). Returns
    /// only if the hand-over did not happen, with why; the host then runs on as before.
    ///
    /// Children a resumed image took over have its main thread as their parent. Under
    /// [`handover_main`](crate::handover_main) every child has, and any mix hands over;
    /// without it a host holding taken-over children must call this from the main thread (a
    /// current-thread runtime there), and one holding children of both kinds is refused.
    pub async fn hand_over(&self, program: &Path, args: &[OsString]) -> HandoverError {
        self.hand_over_with(program, args, serde_json::Value::Null, &[]).await
    }

    /// [`hand_over`](Self::hand_over), carrying `state` and the descriptors `fds` (by name)
    /// across for the new image's [`HostBuilder::resume_with`](crate::HostBuilder::resume_with).
    /// The log sink is flushed once the pumps are held, before the exec.
    pub async fn hand_over_with(
        &self,
        program: &Path,
        args: &[OsString],
        state: serde_json::Value,
        fds: &[(&str, BorrowedFd<'_>)],
    ) -> HandoverError {
        self.hand_over_counting_from(sys::stop_signals_taken(), program, args, state, fds).await
    }

    /// [`hand_over_with`](Self::hand_over_with), given up at its exec if a stop signal was
    /// taken after the count `stops_before` (read when the hand-over was decided on).
    pub(crate) async fn hand_over_counting_from(
        &self,
        stops_before: u64,
        program: &Path,
        args: &[OsString],
        state: serde_json::Value,
        fds: &[(&str, BorrowedFd<'_>)],
    ) -> HandoverError {
        let shared = &self.shared;
        let _one_at_a_time = shared.handing_over.lock().await;
        if let Err(why) = self.refusal() {
            return HandoverError::Refused(why);
        }
        {
            // Under the lock spawns reserve their name under: no start begins once the hold
            // is set, and none is under way when it is.
            let starting = shared.starting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !starting.is_empty() {
                return HandoverError::Refused("a child is being started".into());
            }
            shared.held.send_replace(true);
        }
        let mut undo = Undo { shared, kept: Vec::new(), signals_held: false };
        let baggage = (state, fds);
        let held = Held { kept: &mut undo.kept, signals: &mut undo.signals_held, stops_before };
        self.hand_over_held(program, args, baggage, held).await
    }

    /// Why this host cannot hand over now, if it cannot.
    fn refusal(&self) -> Result<(), String> {
        let shared = &self.shared;
        if shared.spawner.uses_pid_namespace() {
            return Err("the children run in a PID namespace, whose init ends with the spawner thread".into());
        }
        let children = self.children();
        if let Some(child) = children.iter().find(|child| child.running().is_stopping()) {
            return Err(format!("child {} is being stopped", child.name()));
        }
        if let Some(child) = children.iter().find(|child| child.running().carry.v1_limits) {
            return Err(format!("child {} has cgroup v1 limits, which a hand-over does not carry yet", child.name()));
        }
        // With the spawner on the main thread every child has that one parent thread.
        let adopted = children.iter().filter(|child| child.running().carry.adopted).count();
        if !shared.spawner.on_main_thread() && adopted > 0 && adopted < children.len() {
            return Err(format!(
                "{adopted} children were taken over from an earlier image and {} started by this one: their \
                 parent-death signals follow two different threads, and exec ends one of them (warren::handover_main \
                 puts them on one)",
                children.len() - adopted
            ));
        }
        if !shared.spawner.on_main_thread() && adopted > 0 && !sys::is_main_thread() {
            return Err("the children were taken over from an earlier image, so their parent is the main thread: \
                        call hand_over from it"
                .into());
        }
        Ok(())
    }

    async fn hand_over_held(
        &self,
        program: &Path,
        args: &[OsString],
        (baggage, baggage_fds): (serde_json::Value, &[(&str, BorrowedFd<'_>)]),
        held: Held<'_>,
    ) -> HandoverError {
        let Held { kept, signals: signals_held, stops_before } = held;
        let shared = &self.shared;
        let children = self.children();
        let deadline = Instant::now() + SETTLE;
        for child in &children {
            let carry = &child.running().carry;
            let mut reap_at = carry.reap_at.clone();
            let settled = tokio::time::timeout_at(deadline.into(), async {
                let _ = reap_at.wait_for(|at| *at != ReapAt::Watching).await;
                for pipe in &carry.pipes {
                    let mut at = pipe.at.clone();
                    let _ = at.wait_for(|at| !matches!(at, PumpAt::Reading)).await;
                }
            });
            if settled.await.is_err() || !carry.settled() {
                return HandoverError::NotSettled(format!("child {}", child.name()), SETTLE);
            }
            if *carry.reap_at.borrow() == ReapAt::Unholdable {
                return HandoverError::Refused(format!(
                    "the exit of child {} is watched by a blocking wait (no pidfd on this kernel)",
                    child.name()
                ));
            }
        }
        // Held until the exec; released if this returns (the hand-over did not happen).
        let mut connections = std::collections::HashMap::new();
        for child in &children {
            let Some(client) = &child.running().client else { continue };
            match client.hold(HOLD_RPC).await {
                Ok(held) => {
                    connections.insert(child.name().to_owned(), held);
                }
                Err(err) => tracing::info!(child = %child.name(), "{err}; the next image connects anew"),
            }
        }
        let mut keep = |fd: RawFd| -> std::io::Result<i32> {
            sys::keep_number_across_exec(fd, true)?;
            kept.push(fd);
            Ok(fd)
        };
        let mut states = Vec::new();
        for child in &children {
            let running = child.running();
            // Reaped (or settling its group) while being held: it is not handed over.
            if *running.carry.reap_at.borrow() != ReapAt::Held {
                continue;
            }
            match child_state(child, connections.get(child.name()), &mut keep) {
                Ok(state) => states.push(state),
                Err(err) => return HandoverError::State(err),
            }
        }
        let mut kept_baggage = Vec::new();
        for (name, fd) in baggage_fds {
            match keep(fd.as_raw_fd()) {
                Ok(fd) => kept_baggage.push(((*name).to_owned(), fd)),
                Err(err) => return HandoverError::State(err),
            }
        }
        let watchdog = match shared.watchdog.as_ref().map(|watchdog| watchdog.hand_over(true)).transpose() {
            Ok(watchdog) => watchdog.map(|(fd, pid, groups)| WatchdogState { fd, pid, groups }),
            Err(err) => return HandoverError::State(err),
        };
        let state = HostState {
            version: VERSION,
            runtime_dir: shared.runtime_dir.path().to_owned(),
            watchdog,
            cgroup: shared.cgroup.as_ref().map(crate::cgroup::HostCgroup::handed_over),
            remove_on_death: shared.remove_on_death.clone(),
            escaped: shared.escaped.load(std::sync::atomic::Ordering::Relaxed),
            children: states,
            baggage,
            baggage_fds: kept_baggage,
        };
        let memfd = match serde_json::to_vec(&state).map_err(std::io::Error::other).and_then(|bytes| {
            let memfd = sys::sealed_memfd(&bytes)?;
            sys::keep_across_exec(&memfd, true)?;
            Ok(memfd)
        }) {
            Ok(memfd) => memfd,
            Err(err) => return HandoverError::State(err),
        };
        // Every line the pumps gave before the hold is written down before the image goes.
        shared.sink.flush();
        // From here a stop signal waits, pending, for the next image's handlers.
        super::signal_thread::hold_all();
        *signals_held = true;
        if sys::stop_signals_taken() != stops_before {
            // Taken by this image's handlers, so its owner stops: it must not be lost here.
            return HandoverError::Refused("a stop signal came during the hand-over".into());
        }
        let exec = match exec_self(program, args, &memfd) {
            Ok(exec) => exec,
            Err(err) => return HandoverError::Exec { program: program.to_owned(), source: err },
        };
        let inline = !shared.spawner.on_main_thread() && children.iter().any(|child| child.running().carry.adopted);
        let source = if inline {
            // Checked by `refusal`: this is the main thread, every child's parent.
            sys::exec(&exec.program, &exec.argv, &exec.envp)
        } else {
            shared.spawner.exec(exec)
        };
        drop(memfd);
        HandoverError::Exec { program: program.to_owned(), source }
    }
}

/// What a hand-over under way has changed (for [`Undo`]), and the stop signals taken when it
/// began.
struct Held<'a> {
    kept: &'a mut Vec<RawFd>,
    signals: &'a mut bool,
    stops_before: u64,
}

/// Undoes a hand-over that did not happen, when it returns or its future is dropped: the
/// descriptors close at exec again, and the pumps and reapers go on from where they stood.
struct Undo<'a> {
    shared: &'a crate::host::HostShared,
    kept: Vec<RawFd>,
    /// The stop signals were blocked for the exec.
    signals_held: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        for &fd in &self.kept {
            let _ = sys::keep_number_across_exec(fd, false);
        }
        if let Some(watchdog) = &self.shared.watchdog {
            let _ = watchdog.hand_over(false);
        }
        if self.signals_held {
            super::signal_thread::restore();
        }
        self.shared.held.send_replace(false);
    }
}

/// One child's state, keeping its descriptors across exec through `keep`.
fn child_state(
    child: &crate::Child,
    connection: Option<&warren_rpc::HeldConnection>,
    keep: &mut impl FnMut(RawFd) -> std::io::Result<i32>,
) -> std::io::Result<ChildState> {
    let running = child.running();
    let mut pipes = Vec::new();
    for pipe in &running.carry.pipes {
        // A pipe at end-of-file has nothing more to carry.
        if let PumpAt::Held(carried) = &*pipe.at.borrow() {
            let fd = keep(pipe.fd.as_raw_fd())?;
            pipes.push(PipeState {
                stderr: pipe.stream == Stream::Stderr,
                fd,
                seq: carried.seq,
                rest: carried.rest.clone(),
            });
        }
    }
    let notify = match &running.notify {
        Some(listener) => Some(NotifyState { fd: keep(listener.fd().as_raw_fd())?, path: listener.path().to_owned() }),
        None => None,
    };
    let stdin = child.stdin_fd().map(&mut *keep).transpose()?;
    let rpc = match connection {
        Some(held) => Some(RpcState { fd: keep(held.fd().as_raw_fd())?, session: held.session() }),
        None => None,
    };
    let notices = running.notices.borrow().clone();
    Ok(ChildState {
        name: child.name().to_owned(),
        slot: child.slot().to_owned(),
        program: child.program().to_owned(),
        pid: running.pid,
        stop_signal: running.stop_signal.number(),
        cgroup: running.cgroup.clone(),
        memory_max: running.carry.memory_max,
        socket_path: running.socket_path.clone(),
        protocol: running.carry.protocol.into(),
        transport: running.carry.transport,
        rpc,
        notify,
        notices: Notices {
            status: notices.status,
            watchdog_pings: notices.watchdog_pings,
            watchdog_triggered: notices.watchdog_triggered,
        },
        stdin,
        pipes,
        max_line: running.carry.max_line,
        uptime_ms: u64::try_from(child.uptime().as_millis()).unwrap_or(u64::MAX),
    })
}

/// `program args…` with this process's environment and the state's descriptor in it.
fn exec_self(program: &Path, args: &[OsString], memfd: &OwnedFd) -> std::io::Result<ExecSelf> {
    let c_string = |bytes: Vec<u8>| {
        CString::new(bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
    };
    let mut argv = vec![c_string(program.as_os_str().as_bytes().to_vec())?];
    for arg in args {
        argv.push(c_string(arg.clone().into_vec())?);
    }
    let mut envp = Vec::new();
    for (key, value) in std::env::vars_os() {
        if key == STATE_VAR {
            continue;
        }
        let mut pair = key.into_vec();
        pair.push(b'=');
        pair.extend(value.into_vec());
        envp.push(c_string(pair)?);
    }
    envp.push(c_string(format!("{STATE_VAR}={}", memfd.as_raw_fd()).into_bytes())?);
    Ok(ExecSelf { program: argv[0].clone(), argv, envp })
}
