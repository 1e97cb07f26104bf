//! Runs a [`Plan`]: feeds the [`Machine`] with what happens to real processes and carries out
//! the actions it returns — spawn, stop, timers.
//!
//! One task, this event loop, owns the machine, every program's current instance and its
//! child, and what users see of them (published as a [`Snapshot`] after each event). The tasks
//! working for one instance each (see [`super::instance`]) and the timers talk to it over one
//! channel, so decisions are taken one at a time, in order, without locks around them. A stop
//! is a request to the instance's task, which alone ends its child.

mod handover;
mod rolling;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::debug;

use super::channel::{Input, Report, Snapshot, Update};
use super::instance::Instance;
use super::machine::{Action, Event, Machine};
use super::plan::Plan;
use crate::child::Child;
use crate::host::Host;
use crate::listen::{Sockets, rpc_endpoint};
pub(super) use handover::{HandOver, VERSION as HANDOVER_FORMAT};
use rolling::Extra;

/// The runner's hold on a program's current instance.
struct Current {
    instance: u64,
    /// Asks the instance's task to stop its child; taken by the first stop.
    stop: Option<oneshot::Sender<()>>,
    child: Option<Child>,
}

pub(super) struct Runner {
    machine: Machine,
    host: Host,
    inputs: mpsc::UnboundedSender<Input>,
    snapshot: watch::Sender<Snapshot>,
    updates: broadcast::Sender<Update>,
    /// Each program's current instance: reports of older instances are stale.
    current: HashMap<String, Current>,
    /// Instances beside a program's current one, by instance: a rolling restart's new one
    /// until it is ready, old ones until they have ended.
    extra: HashMap<u64, Extra>,
    /// The `listen` sockets, bound on first use and held until the runner ends.
    sockets: Arc<Sockets>,
    next_instance: u64,
}

impl Runner {
    pub(super) fn new(
        plan: &Plan,
        host: Host,
        inputs: mpsc::UnboundedSender<Input>,
        snapshot: watch::Sender<Snapshot>,
        updates: broadcast::Sender<Update>,
    ) -> Runner {
        let seed = u64::from(std::process::id()) ^ 0x5eed;
        let machine = Machine::new(plan, Instant::now(), seed);
        Runner {
            machine,
            host,
            inputs,
            snapshot,
            updates,
            current: HashMap::new(),
            extra: HashMap::new(),
            sockets: Arc::default(),
            next_instance: 1,
        }
    }

    /// Runs until everything has stopped; `first` are actions to carry out before the
    /// machine's own first ones (a resumed runner's timers).
    pub(super) async fn run(
        mut self,
        first: Vec<Action>,
        mut queue: mpsc::UnboundedReceiver<Input>,
        finished: watch::Sender<Option<bool>>,
    ) {
        let mut actions = first;
        actions.extend(self.machine.begin(Instant::now()));
        self.publish();
        // Everything stopped: over once no extra instance (an old one draining) runs either.
        let mut stopped = self.execute(actions);
        while !(stopped && self.extra.is_empty()) {
            let Some(input) = queue.recv().await else { break };
            let input = match input {
                // Awaited here: no other input is read until the exec, or until it failed.
                Input::HandOver(request) => {
                    self.hand_over(request).await;
                    continue;
                }
                input => input,
            };
            let Some(event) = self.accept(input) else { continue };
            let actions = self.machine.handle(Instant::now(), event);
            self.publish();
            stopped |= self.execute(actions);
        }
        let _ = finished.send(Some(self.machine.any_failed()));
    }

    /// The event an input means for the machine, after recording what it says about children;
    /// `None` for a stale instance's report.
    fn accept(&mut self, input: Input) -> Option<Event> {
        let (name, instance, report) = match input {
            Input::Control(Event::Reload { plan, rolled }) => {
                let listen = plan.programs().iter().map(|p| (p.listen.as_slice(), p.cwd.as_deref()));
                self.sockets.keep_only(listen);
                return Some(Event::Reload { plan, rolled });
            }
            Input::Control(event) => return Some(event),
            Input::Roll { name, reply } => return self.roll(&name, reply),
            Input::HandOver(_) => return None,
            Input::Instance { name, instance, report } => (name, instance, report),
        };
        if self.extra.contains_key(&instance) {
            return self.extra_report(instance, report);
        }
        let Some(current) = self.current.get_mut(&name).filter(|c| c.instance == instance) else {
            debug!(program = name, instance, "stale report ignored");
            return None;
        };
        match report {
            Report::Spawned(child) => {
                current.child = Some(child);
                Some(Event::Started { name })
            }
            Report::Event(event) => {
                if let Event::Exited { .. } = event {
                    self.current.remove(&name);
                    self.abandon_roll(&name, "the old instance ended during the rolling restart");
                }
                Some(event)
            }
        }
    }

    fn publish(&self) {
        let children = self.current.iter().filter_map(|(name, c)| Some((name.clone(), c.child.clone()?))).collect();
        self.snapshot.send_replace(Snapshot { status: self.machine.status(), children });
    }

    /// Carries out the actions; true once everything has stopped.
    fn execute(&mut self, actions: Vec<Action>) -> bool {
        let mut done = false;
        for action in actions {
            match action {
                Action::Spawn { name } => self.spawn(&name),
                Action::Stop { name } => self.stop(&name),
                Action::SetTimer { name, after, generation } => {
                    let inputs = self.inputs.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = inputs.send(Input::Control(Event::Timer { name, generation }));
                    });
                }
                Action::Changed { name, state, reason } => {
                    let pid = match state.is_active() {
                        true => self.current.get(&name).and_then(|c| c.child.as_ref()).map(Child::pid),
                        false => None,
                    };
                    let _ = self.updates.send(Update::Changed { name, state, pid, reason });
                }
                Action::AllReady => {
                    let _ = self.updates.send(Update::AllReady);
                }
                Action::AllStopped => {
                    let _ = self.updates.send(Update::AllStopped);
                    done = true;
                }
            }
        }
        done
    }

    fn spawn(&mut self, name: &str) {
        let instance = self.next_instance;
        let Some(stop) = self.launch(name, instance, None) else { return };
        self.current.insert(name.to_owned(), Current { instance, stop: Some(stop), child: None });
    }

    /// Starts instance `instance` of `name` in a task of its own (runtime files named after
    /// `slot` when given); returns the sender that asks it to stop.
    fn launch(&mut self, name: &str, instance: u64, slot: Option<String>) -> Option<oneshot::Sender<()>> {
        let mut program = self.machine.program(name).cloned()?;
        // A dependent finds the RPC endpoints of what it depends on in its environment, so that
        // it calls the supervised program rather than starting a copy of its own.
        for dependency in &program.depends_on {
            // A socket warren holds outlives the instance serving it now; the instance's own
            // endpoint does not (a rolling restart gives the next one another path).
            let held = self.machine.program(&dependency.name).and_then(|p| rpc_endpoint(&p.listen, p.cwd.as_deref()));
            let child = self.current.get(&dependency.name).and_then(|c| c.child.as_ref());
            if let Some(endpoint) = held.or_else(|| child.and_then(Child::endpoint).cloned()) {
                // First, so that a value the program sets itself wins.
                program.env.insert(0, (endpoint_variable(&dependency.name), endpoint.to_string()));
            }
        }
        self.next_instance = instance + 1;
        let (stop, stop_requested) = oneshot::channel();
        let work = Instance {
            name: name.to_owned(),
            instance,
            inputs: self.inputs.clone(),
            host: self.host.clone(),
            sockets: Arc::clone(&self.sockets),
            slot,
        };
        tokio::spawn(work.run(program, stop_requested));
        Some(stop)
    }

    fn stop(&mut self, name: &str) {
        self.abandon_roll(name, "the program is being stopped");
        // The instance's task stops its child and reports the exit.
        if let Some(stop) = self.current.get_mut(name).and_then(|c| c.stop.take()) {
            let _ = stop.send(());
        }
    }
}

/// `WARREN_ENDPOINT_<NAME>`: the name upper-cased, anything but letters and digits as `_`
/// (`task-rpc` → `WARREN_ENDPOINT_TASK_RPC`).
pub fn endpoint_variable(name: &str) -> String {
    let name: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("WARREN_ENDPOINT_{name}")
}
