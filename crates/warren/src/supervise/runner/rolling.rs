//! Rolling restarts, the runner's side: a new instance starts beside the program's current
//! one, takes its place once ready, and the old one is stopped gracefully.
//!
//! The machine sees none of the overlap: the program stays `Ready` throughout, and hears
//! `Rolled` when the new instance takes over and `Retired` when the old one has ended. The two
//! instances share the program's `listen` sockets (warren's copies), so the kernel hands each
//! connection to whichever accepts it and none is refused; the old instance, once asked to stop,
//! stops accepting and finishes what it has. Their runtime files (RPC and notify sockets) are
//! apart: the new instance's are named after its slot.

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Current, Runner};
use crate::child::Child;
use crate::supervise::channel::{Report, Rolled};
use crate::supervise::machine::{Event, State};

type Reply = oneshot::Sender<Result<Rolled, String>>;

/// An instance beside a program's current one.
pub(super) struct Extra {
    name: String,
    role: Role,
    child: Option<Child>,
    /// Asks the instance to stop (a new one that is given up on); taken by the first stop.
    stop: Option<oneshot::Sender<()>>,
    /// Who asked for the rolling restart, answered when it is over.
    reply: Option<Reply>,
}

#[derive(PartialEq, Eq)]
enum Role {
    /// The new instance, not ready yet.
    Next,
    /// An old instance being stopped.
    Leaving,
    /// A new instance given up on, being stopped: its end is no news for the machine.
    GivenUp,
}

impl Runner {
    /// Starts a rolling restart of `name`; the event for the machine when it falls back to a
    /// plain restart (nothing ready to keep serving).
    pub(super) fn roll(&mut self, name: &str, reply: Reply) -> Option<Event> {
        if self.machine.is_shutting_down() {
            let _ = reply.send(Err("warren is shutting down".to_owned()));
            return None;
        }
        if self.extra.values().any(|e| e.name == name && e.role == Role::Next) {
            let _ = reply.send(Err("a rolling restart of it is already under way".to_owned()));
            return None;
        }
        let serving = self.current.get(name).is_some_and(|c| c.child.is_some());
        if self.machine.state(name) != Some(&State::Ready) || !serving {
            let _ = reply.send(Ok(Rolled::Restarted));
            return Some(Event::Restart { name: name.to_owned() });
        }
        let instance = self.next_instance;
        let stop = self.launch(name, instance, Some(format!("{name}~{instance}")))?;
        info!("{name}: rolling restart: starting a new instance beside the running one");
        let extra =
            Extra { name: name.to_owned(), role: Role::Next, child: None, stop: Some(stop), reply: Some(reply) };
        self.extra.insert(instance, extra);
        None
    }

    /// What an extra instance reported; the event for the machine, if any.
    pub(super) fn extra_report(&mut self, instance: u64, report: Report) -> Option<Event> {
        let extra = self.extra.get_mut(&instance)?;
        match report {
            Report::Spawned(child) => {
                extra.child = Some(child);
                None
            }
            Report::Event(Event::Ready { name }) if extra.role == Role::Next => self.take_over(instance, name),
            Report::Event(Event::StartFailed { error, .. }) if extra.role == Role::Next => {
                let why = format!("the new instance did not come up: {}; the old one keeps serving", error.describe());
                let spawned = extra.child.is_some();
                self.give_up(instance, why);
                // A spawn that failed leaves no process, and its task reports nothing more.
                if !spawned {
                    self.extra.remove(&instance);
                }
                None
            }
            // A spawn that failed leaves no process, and its task reports nothing more.
            Report::Event(Event::StartFailed { .. }) if extra.child.is_none() => {
                self.extra.remove(&instance);
                None
            }
            Report::Event(Event::Exited { name, exit }) => {
                let extra = self.extra.remove(&instance)?;
                if extra.role == Role::Next {
                    let why = format!("the new instance ended before it was ready: {exit}; the old one keeps serving");
                    warn!("{name}: rolling restart: {why}");
                    if let Some(reply) = extra.reply {
                        let _ = reply.send(Err(why));
                    }
                    return None;
                }
                if extra.role == Role::GivenUp {
                    let pid = extra.child.as_ref().map_or(0, Child::pid);
                    info!("{name}: rolling restart: the new instance given up on (pid {pid}) ended: {exit}");
                    return None;
                }
                let old_pid = extra.child.as_ref().map_or(0, Child::pid);
                info!("{name}: rolling restart: the old instance (pid {old_pid}) ended: {exit}");
                if let Some(reply) = extra.reply {
                    let pid = self.current.get(&name).and_then(|c| c.child.as_ref()).map_or(0, Child::pid);
                    let _ = reply.send(Ok(Rolled::Replaced { pid, old_pid, old_exit: exit }));
                }
                Some(Event::Retired { name, pid: old_pid, exit })
            }
            // Health, socket loss, a failure after take-over: the old instance is leaving anyway.
            Report::Event(_) => None,
        }
    }

    /// The new instance is ready: it becomes the program's, and the old one is asked to stop.
    fn take_over(&mut self, instance: u64, name: String) -> Option<Event> {
        let next = self.extra.remove(&instance)?;
        let new = Current { instance, stop: next.stop, child: next.child };
        let Some(mut old) = self.current.insert(name.clone(), new) else {
            return Some(Event::Rolled { name });
        };
        if let Some(stop) = old.stop.take() {
            let _ = stop.send(());
        }
        let leaving =
            Extra { name: name.clone(), role: Role::Leaving, child: old.child, stop: None, reply: next.reply };
        self.extra.insert(old.instance, leaving);
        Some(Event::Rolled { name })
    }

    /// Gives up on a new instance: it is stopped (if it runs) and the requester told why.
    fn give_up(&mut self, instance: u64, why: String) {
        let Some(extra) = self.extra.get_mut(&instance) else { return };
        warn!("{}: rolling restart: {why}", extra.name);
        if let Some(reply) = extra.reply.take() {
            let _ = reply.send(Err(why));
        }
        extra.role = Role::GivenUp;
        if let Some(stop) = extra.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Gives up on `name`'s rolling restart, if one is under way (the program is stopped, or
    /// its current instance ended).
    pub(super) fn abandon_roll(&mut self, name: &str, why: &str) {
        let next: Vec<u64> =
            self.extra.iter().filter(|(_, e)| e.name == name && e.role == Role::Next).map(|(&i, _)| i).collect();
        for instance in next {
            self.give_up(instance, why.to_owned());
        }
    }
}
