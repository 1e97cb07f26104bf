//! The supervisor across `exec` (docs/HANDOFF.md, "warren up across exec"). The old image's
//! runner, asked between two events, writes down its machine and held sockets beside the
//! host's state and hands over; while it waits for the exec it reads no input, so nothing is
//! decided that the state would not show. The new image's runner starts from that state with
//! the same children instead of from the plan.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{Current, Runner};
use crate::Baggage;
use crate::exit::Exit;
use crate::host::Host;
use crate::listen::{HeldSocket, Sockets};
use crate::supervise::channel::{Input, Snapshot, Update};
use crate::supervise::instance::Instance;
use crate::supervise::machine::{Action, Event, Machine, MachineState};

/// The supervisor state's format; a new image refuses another.
pub(in crate::supervise) const VERSION: u32 = 1;

/// The prefix of the held sockets' names among the descriptors that cross.
const SOCKET_FD: &str = "warren.listen.";

/// A hand-over asked of the runner.
pub(in crate::supervise) struct HandOver {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// What the program using the supervisor carries across beside it.
    pub baggage: Baggage,
    /// Why the hand-over did not happen; never answered when it did.
    pub reply: oneshot::Sender<String>,
    /// Ends when the requester gives up: the hand-over is undone, unless its exec has begun.
    pub abandoned: oneshot::Receiver<()>,
    /// The stop signals taken when it was asked: one more, and it is given up at its exec.
    pub stops_before: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SupervisorState {
    version: u32,
    machine: MachineState,
    next_instance: u64,
    sockets: Vec<HeldSocket>,
    app: serde_json::Value,
}

impl Runner {
    /// Hands the host over with the supervisor's state; returns only if it did not happen.
    pub(super) async fn hand_over(&mut self, request: HandOver) {
        let HandOver { program, args, baggage, reply, abandoned, stops_before } = request;
        let why = match self.carried(baggage.state) {
            Ok(state) => {
                let held = self.sockets.held();
                let names: Vec<String> = (0..held.len()).map(|i| format!("{SOCKET_FD}{i}")).collect();
                let mut fds: Vec<(&str, std::os::fd::BorrowedFd<'_>)> =
                    baggage.fds.iter().map(|(name, fd)| (name.as_str(), fd.as_fd())).collect();
                fds.extend(names.iter().zip(&held).map(|(name, (_, fd))| (name.as_str(), fd.as_fd())));
                let state =
                    SupervisorState { sockets: held.iter().map(|(socket, _)| socket.clone()).collect(), ..state };
                match serde_json::to_value(&state) {
                    Ok(state) => tokio::select! {
                        // Whenever both are ready, giving up wins.
                        biased;
                        _ = abandoned => "given up by the requester".to_owned(),
                        why = self.host.hand_over_counting_from(stops_before, &program, &args, state, &fds) => {
                            why.to_string()
                        }
                    },
                    Err(err) => format!("cannot write the supervisor's state: {err}"),
                }
            }
            Err(why) => format!("cannot hand over now: {why}"),
        };
        let _ = reply.send(why);
    }

    fn carried(&self, app: serde_json::Value) -> Result<SupervisorState, String> {
        if !self.extra.is_empty() {
            return Err("a rolling restart is under way; try again when it is over".to_owned());
        }
        let machine = self.machine.carried(Instant::now())?;
        if let Some(name) = self.current.iter().find(|(_, c)| c.child.is_none()).map(|(name, _)| name) {
            return Err(format!("{name} is starting; try again in a moment"));
        }
        Ok(SupervisorState { version: VERSION, machine, next_instance: self.next_instance, sockets: Vec::new(), app })
    }

    /// The runner an earlier image handed over, with the same children, and the actions to
    /// begin with; also what the program using the supervisor carried beside it.
    pub(in crate::supervise) fn resumed(
        host: Host,
        mut baggage: Baggage,
        inputs: mpsc::UnboundedSender<Input>,
        snapshot: watch::Sender<Snapshot>,
        updates: broadcast::Sender<Update>,
    ) -> Result<(Runner, Vec<Action>, Baggage), String> {
        let state: SupervisorState = serde_json::from_value(baggage.state.take())
            .map_err(|err| format!("the supervisor's state does not parse: {err}"))?;
        if state.version != VERSION {
            return Err(format!("supervisor state version {} (this image reads {VERSION})", state.version));
        }
        let mut sockets = Vec::new();
        for (i, socket) in state.sockets.into_iter().enumerate() {
            let fd: OwnedFd =
                baggage.take_fd(&format!("{SOCKET_FD}{i}")).ok_or_else(|| format!("held socket {i} did not cross"))?;
            sockets.push((socket, fd));
        }
        let now = Instant::now();
        let (machine, mut actions) = Machine::from_carried(state.machine, now, u64::from(std::process::id()) ^ 0x5eed);
        let mut runner = Runner {
            machine,
            host,
            inputs,
            snapshot,
            updates,
            current: std::collections::HashMap::new(),
            extra: std::collections::HashMap::new(),
            sockets: Arc::new(Sockets::adopt(sockets)),
            next_instance: state.next_instance,
        };
        actions.extend(runner.adopt_children(now));
        // Seen at once by the caller's first `status`, not only once the runner's task runs.
        runner.publish();
        let app = Baggage { state: state.app, fds: baggage.fds };
        Ok((runner, actions, app))
    }

    /// The programs it runs (to make the plan of a resumed supervisor).
    pub(in crate::supervise) fn programs(&self) -> Vec<crate::supervise::plan::Program> {
        self.machine.programs()
    }

    /// An instance task for each program that was running, around the child handed over; a
    /// program whose child ended during the hand-over (reaped before it) has that exit now.
    fn adopt_children(&mut self, now: Instant) -> Vec<Action> {
        let children = self.host.children();
        let mut actions = Vec::new();
        for program in self.machine.programs() {
            if !self.machine.state(&program.name).is_some_and(|state| state.is_active()) {
                continue;
            }
            let Some(child) = children.iter().find(|child| child.name() == program.name) else {
                let ended = Event::Exited { name: program.name.clone(), exit: Exit::Unknown };
                actions.extend(self.machine.handle(now, ended));
                continue;
            };
            let instance = self.next_instance;
            self.next_instance += 1;
            let (stop, stop_requested) = oneshot::channel();
            let work = Instance {
                name: program.name.clone(),
                instance,
                inputs: self.inputs.clone(),
                host: self.host.clone(),
                sockets: Arc::clone(&self.sockets),
                slot: None,
            };
            tokio::spawn(work.adopt(program.clone(), child.clone(), stop_requested));
            self.current.insert(program.name, Current { instance, stop: Some(stop), child: Some(child.clone()) });
        }
        actions
    }
}
