//! Starts children from one long-lived thread, without `fork`.
//!
//! The parent-death signal fires when the *thread* that started the child exits, not the
//! process. tokio's blocking-pool threads exit after being idle, so a child spawned from one of
//! them would be killed at random. This thread lives as long as the host or any of its
//! children, so the signal fires exactly when the host process dies — or when everything that
//! owns the children has been dropped.
//!
//! The child is started the way `posix_spawn` starts one (`sys::spawn`: the new process shares
//! the host's memory until it execs), not by `fork`, which copies the host's page tables and
//! turns every page the host writes afterwards into a copy-on-write fault. `posix_spawn` itself
//! cannot arm the death signal, and `std`'s `Command` falls back to `fork` as soon as a
//! `pre_exec` hook asks for it.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::mpsc;

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use crate::sys;

/// What the spawner thread is asked to do.
enum Job {
    Spawn(sys::Exec, oneshot::Sender<io::Result<u32>>),
    /// Replace the process image from this thread (a hand-over, docs/UPGRADE.md): the
    /// children's parent-death signal follows the thread that started them, and `execve`
    /// from any other thread ends this one first, which would fire it. Answered only if the
    /// exec failed.
    Exec(ExecSelf, mpsc::Sender<io::Error>),
    /// The program's body has returned: the main thread's loop ends.
    Quit,
}

/// A program to replace this process with.
pub(crate) struct ExecSelf {
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

#[derive(Debug)]
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
    /// The host's pid as its children see it: 0 from inside a PID namespace, whose processes
    /// cannot see their parent outside it.
    parent_seen_by_children: u32,
    pid_namespace: bool,
    /// Its jobs run on the process's main thread ([`main_thread::run`]).
    on_main: bool,
}

impl Spawner {
    /// `pid_namespace`: start every child in a new PID namespace of this thread's
    /// (`sys::pid_namespace`), which ends when the thread does.
    pub fn start(pid_namespace: bool) -> Result<Spawner, crate::HostError> {
        // A PID namespace is a spawner thread's own: its init ends with the thread.
        if !pid_namespace && let Some(jobs) = main_thread::jobs() {
            return Ok(Spawner { jobs, parent_seen_by_children: sys::current_pid(), pid_namespace, on_main: true });
        }
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::sync_channel::<io::Result<()>>(1);
        std::thread::Builder::new()
            .name("warren-spawner".into())
            .spawn(move || {
                let anchor = if pid_namespace {
                    match crate::reaper::register(sys::enter_new_pid_namespace, |anchor| Some(anchor.pid)) {
                        Ok(anchor) => Some(anchor),
                        Err(err) => {
                            let _ = ready.send(Err(err));
                            return;
                        }
                    }
                } else {
                    None
                };
                let _ = ready.send(Ok(()));
                serve(&queue);
                // Every owner of the children is gone: the anchor ends (at once if the namespace is
                // empty, as it is after an orderly stop) and is reaped here.
                if let Some(anchor) = anchor {
                    let _ = sys::kill_process(anchor.pid, crate::Signal::TERM);
                    let _ = sys::wait_for(anchor.pid);
                    crate::reaper::unregister(anchor.pid);
                }
            })
            .map_err(crate::HostError::Spawner)?;
        match started.recv() {
            Ok(Ok(())) => {
                let parent_seen_by_children = if pid_namespace { 0 } else { sys::current_pid() };
                Ok(Spawner { jobs, parent_seen_by_children, pid_namespace, on_main: false })
            }
            Ok(Err(err)) => Err(crate::HostError::PidNamespace(err)),
            Err(_) => Err(crate::HostError::Spawner(io::Error::other("the spawner thread ended at its start"))),
        }
    }

    pub async fn spawn(&self, command: &Command) -> io::Result<Process> {
        let (exec, ends) = command.prepare(self.parent_seen_by_children)?;
        // Made ready for the reactor before the child exists, so that nothing can fail once it
        // runs.
        let [stdin, stdout, stderr] = ends;
        let stdin = pipe::Sender::from_owned_fd(stdin)?;
        let stdout = pipe::Receiver::from_owned_fd(stdout)?;
        let stderr = pipe::Receiver::from_owned_fd(stderr)?;
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Spawn(exec, reply)).map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        let pid = answer.await.map_err(|_| io::Error::other("the spawner thread has stopped"))??;
        Ok(Process { pid, stdin: Some(stdin), stdout: Some(stdout), stderr: Some(stderr), exit: ExitWatch::new(pid) })
    }

    /// Whether its jobs run on the main thread, which survives every exec.
    pub fn on_main_thread(&self) -> bool {
        self.on_main
    }

    /// Whether children start in a PID namespace of this thread's.
    pub fn uses_pid_namespace(&self) -> bool {
        self.pid_namespace
    }

    /// Replaces the process image from the spawner thread; returns only if that failed.
    /// Blocks: with no await between asking and the answer, a caller's future cannot be
    /// dropped while the exec may still happen (and undo what the exec needs).
    pub fn exec(&self, program: ExecSelf) -> io::Error {
        let (reply, answer) = mpsc::channel();
        if self.jobs.send(Job::Exec(program, reply)).is_err() {
            return io::Error::other("the spawner thread has stopped");
        }
        answer.recv().unwrap_or_else(|_| io::Error::other("the spawner thread has stopped"))
    }
}

/// Runs jobs until every sender is gone (or [`Job::Quit`]).
fn serve(queue: &mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        let (exec, reply) = match job {
            Job::Spawn(exec, reply) => (exec, reply),
            Job::Exec(program, reply) => {
                let _ = reply.send(sys::handover::exec(&program.program, &program.argv, &program.envp));
                continue;
            }
            Job::Quit => return,
        };
        let started = crate::reaper::register(|| sys::spawn(&exec), |pid| Some(*pid));
        // Closes the child's ends of its pipes here, so the host sees end-of-file when the child
        // closes them.
        drop(exec);
        if let Err(Ok(pid)) = reply.send(started) {
            // Nobody waits for this child any more (the spawn was cancelled): it must not run on
            // unowned.
            let _ = sys::kill_group(pid, crate::Signal::KILL);
            let _ = sys::wait_for(pid);
            crate::reaper::unregister(pid);
        }
    }
}

/// What to start: a program, its arguments, environment and working directory — the subset of
/// `std::process::Command` that warren uses, with the same meaning. The child always gets
/// pipes for stdin, stdout and stderr, a process group of its own and the parent-death signal.
#[derive(Debug)]
pub struct Command {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<EnvChange>,
    cwd: Option<PathBuf>,
    cgroup: Option<(RawFd, RawFd)>,
    join: Vec<RawFd>,
    user: Option<sys::User>,
    listen: Vec<std::sync::Arc<OwnedFd>>,
}

#[derive(Debug)]
enum EnvChange {
    Clear,
    Set(OsString, OsString),
    Remove(OsString),
}

impl Command {
    pub fn new(program: impl AsRef<Path>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            cgroup: None,
            join: Vec::new(),
            user: None,
            listen: Vec::new(),
        }
    }

    pub fn args<S: AsRef<OsStr>>(&mut self, args: impl IntoIterator<Item = S>) -> &mut Command {
        self.args.extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Starts the environment empty instead of from the host's.
    pub fn env_clear(&mut self) -> &mut Command {
        self.env.push(EnvChange::Clear);
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env.push(EnvChange::Set(key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, vars: impl IntoIterator<Item = (K, V)>) -> &mut Command {
        for (key, value) in vars {
            self.env(key, value);
        }
        self
    }

    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.push(EnvChange::Remove(key.as_ref().to_owned()));
        self
    }

    /// The child starts in the cgroup of this directory (or, where it cannot be created in it,
    /// joins it through its `cgroup.procs` before it execs); the caller keeps both descriptors
    /// open until the spawn has returned.
    pub fn cgroup(&mut self, dir: RawFd, procs: RawFd) -> &mut Command {
        self.cgroup = Some((dir, procs));
        self
    }

    /// The child joins the cgroups of these `cgroup.procs` descriptors (cgroup v1 hierarchies)
    /// before it execs, or is not started; the caller keeps them open until the spawn returns.
    pub fn join_cgroups(&mut self, procs: impl IntoIterator<Item = RawFd>) -> &mut Command {
        self.join.extend(procs);
        self
    }

    /// Runs the child as this user, with these groups (set before exec; needs root).
    pub fn user(&mut self, uid: u32, gid: u32, groups: &[u32]) -> &mut Command {
        self.user = Some(sys::User { uid, gid, groups: groups.to_vec() });
        self
    }

    /// Passes these sockets as fds 3, 4, … with `LISTEN_PID` set to the child's pid (the
    /// caller sets `LISTEN_FDS` and `LISTEN_FDNAMES`).
    pub fn listen(&mut self, fds: impl IntoIterator<Item = std::sync::Arc<OwnedFd>>) -> &mut Command {
        self.listen.extend(fds);
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The child's side as C strings and pipe ends, and the host's ends of the pipes (stdin's
    /// write end, stdout's and stderr's read ends).
    fn prepare(&self, parent: u32) -> io::Result<(sys::Exec, [OwnedFd; 3])> {
        // The few variables this command sets or removes, in a short list searched linearly;
        // the host's others are copied as they are (this runs on every spawn: no map of the
        // whole environment).
        let mut inherit = true;
        let mut changed: Vec<(&OsStr, Option<&OsStr>)> = Vec::new();
        for change in &self.env {
            match change {
                EnvChange::Clear => {
                    inherit = false;
                    changed.clear();
                }
                EnvChange::Set(key, value) => set_var(&mut changed, key, Some(value)),
                EnvChange::Remove(key) => set_var(&mut changed, key, None),
            }
        }
        let mut envp = Vec::new();
        let mut path = None;
        if inherit {
            for (key, value) in std::env::vars_os() {
                if changed.iter().any(|(name, _)| *name == key) {
                    continue;
                }
                envp.push(env_pair(&key, &value)?);
                if key == "PATH" {
                    path = Some(value);
                }
            }
        }
        for &(key, value) in &changed {
            if let Some(value) = value {
                envp.push(env_pair(key, value)?);
                if key == "PATH" {
                    path = Some(value.to_owned());
                }
            }
        }
        let listen_pid = (!self.listen.is_empty()).then(|| {
            envp.push(CString::from(c"LISTEN_PID=0"));
            envp.len() - 1
        });
        // Copies numbered above every target (3 + i), so that placing one never closes another
        // in the child; close-on-exec here, dropped with the `Exec` after the spawn.
        let lowest = i32::try_from(3 + self.listen.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many sockets to pass"))?;
        let listen = self
            .listen
            .iter()
            .map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, lowest).map_err(io::Error::from))
            .collect::<io::Result<Vec<_>>>()?;
        let candidates =
            search_path(&self.program, path.as_deref()).into_iter().map(c_string).collect::<io::Result<Vec<_>>>()?;
        let argv = std::iter::once(self.program.clone().into_os_string())
            .chain(self.args.iter().cloned())
            .map(c_string)
            .collect::<io::Result<Vec<_>>>()?;
        let cwd = self.cwd.clone().map(|dir| c_string(dir.into_os_string())).transpose()?;
        let cloexec = rustix::pipe::PipeFlags::CLOEXEC;
        let (stdin_read, stdin_write) = rustix::pipe::pipe_with(cloexec)?;
        let (stdout_read, stdout_write) = rustix::pipe::pipe_with(cloexec)?;
        let (stderr_read, stderr_write) = rustix::pipe::pipe_with(cloexec)?;
        let exec = sys::Exec {
            candidates,
            argv,
            envp,
            cwd,
            stdio: [stdin_read, stdout_write, stderr_write],
            parent,
            cgroup: self.cgroup,
            join: self.join.clone(),
            user: self.user.clone(),
            listen,
            listen_pid,
        };
        Ok((exec, [stdin_write, stdout_read, stderr_read]))
    }
}

/// Records that `key` is set to `value` (or removed, for `None`), replacing an earlier change.
fn set_var<'a>(changed: &mut Vec<(&'a OsStr, Option<&'a OsStr>)>, key: &'a OsStr, value: Option<&'a OsStr>) {
    match changed.iter_mut().find(|(name, _)| *name == key) {
        Some(slot) => slot.1 = value,
        None => changed.push((key, value)),
    }
}

fn env_pair(key: &OsStr, value: &OsStr) -> io::Result<CString> {
    let mut pair = Vec::with_capacity(key.len() + value.len() + 1);
    pair.extend_from_slice(key.as_bytes());
    pair.push(b'=');
    pair.extend_from_slice(value.as_bytes());
    c_string(OsString::from_vec(pair))
}

fn c_string(text: OsString) -> io::Result<CString> {
    CString::new(text.into_vec())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a program, argument or variable contains a NUL byte"))
}

/// The paths `execvp` would try for `program`, with the child's `PATH` (or the C library's
/// default when the child has none).
pub(crate) fn search_path(program: &Path, path: Option<&OsStr>) -> Vec<OsString> {
    let name = program.as_os_str();
    if name.is_empty() {
        return Vec::new();
    }
    if name.as_bytes().contains(&b'/') {
        return vec![name.to_owned()];
    }
    let path = path.unwrap_or(OsStr::new("/bin:/usr/bin"));
    path.as_bytes()
        .split(|&byte| byte == b':')
        .map(|dir| {
            // An empty entry means the working directory.
            if dir.is_empty() {
                return name.to_owned();
            }
            let mut candidate = OsStr::from_bytes(dir).to_owned();
            candidate.push("/");
            candidate.push(name);
            candidate
        })
        .collect()
}

/// A started child: its pipes, and its exit.
#[derive(Debug)]
pub struct Process {
    pid: u32,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
    exit: ExitWatch,
}

impl Process {
    /// A child started by an earlier image of this process (a hand-over): still this
    /// process's child, so its exit is watched and reaped as any other's.
    pub fn adopt(pid: u32) -> Process {
        let _ = crate::reaper::register(|| Ok(()), |()| Some(pid));
        Process { pid, stdin: None, stdout: None, stderr: None, exit: ExitWatch::new(pid) }
    }

    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Whether its exit is watched through a pidfd, which [`exited`](Self::exited) can stop
    /// watching at any await without losing it.
    pub fn watched_by_pidfd(&self) -> bool {
        matches!(self.exit, ExitWatch::PidFd(_))
    }

    /// Waits for the child to exit and reaps it. Cancel-safe with a pidfd: a wait dropped
    /// before it returns has reaped nothing.
    pub async fn exited(&mut self) -> io::Result<ExitStatus> {
        match &self.exit {
            ExitWatch::PidFd(pidfd) => loop {
                let mut ready = pidfd.readable().await?;
                let options = rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOHANG;
                match rustix::process::waitid(rustix::process::WaitId::PidFd(pidfd.get_ref().as_fd()), options) {
                    Ok(Some(status)) => return Ok(exit_status(&status)),
                    Ok(None) => ready.clear_ready(),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(err) => return Err(err.into()),
                }
            },
            ExitWatch::Blocking => {
                let pid = self.pid;
                tokio::task::spawn_blocking(move || sys::wait_for(pid)).await.map_err(io::Error::other)?
            }
        }
    }

    /// Waits for the child to exit and reaps it.
    pub async fn wait(mut self) -> io::Result<ExitStatus> {
        // `self` is dropped (and the pid unregistered) only once the child is reaped.
        self.exited().await
    }
}

/// Nobody waits for this child by pid any more: the orphan reaper may take it.
impl Drop for Process {
    fn drop(&mut self) {
        crate::reaper::unregister(self.pid);
    }
}

/// How the exit is noticed: a pidfd the reactor watches, or (kernels before 5.3, or no
/// descriptor left) a blocking wait on a thread of its own.
#[derive(Debug)]
enum ExitWatch {
    PidFd(AsyncFd<OwnedFd>),
    Blocking,
}

impl ExitWatch {
    fn new(pid: u32) -> ExitWatch {
        let pidfd = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK).ok())
            .and_then(|fd| sys::async_fd(fd).ok());
        pidfd.map_or(ExitWatch::Blocking, ExitWatch::PidFd)
    }
}

fn exit_status(status: &rustix::process::WaitIdStatus) -> ExitStatus {
    let raw = match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => (code & 0xff) << 8,
        (None, Some(signal)) => signal | if status.dumped() { 0x80 } else { 0 },
        (None, None) => 0,
    };
    ExitStatus::from_raw(raw)
}

pub(crate) mod main_thread;
#[cfg(test)]
mod tests;
