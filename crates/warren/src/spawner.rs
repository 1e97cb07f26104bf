//! Starts children from one long-lived thread.
//!
//! The parent-death signal fires when the *thread* that forked the child exits, not the
//! process. tokio's blocking-pool threads exit after being idle, so a child spawned from one of
//! them would be killed at random. This thread lives as long as the host or any of its
//! children, so the signal fires exactly when the host process dies — or when everything that
//! owns the children has been dropped.

use std::io;
use std::sync::mpsc;

use tokio::sync::oneshot;

type Job = (tokio::process::Command, oneshot::Sender<io::Result<tokio::process::Child>>);

#[derive(Debug)]
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
}

impl Spawner {
    pub fn start(runtime: tokio::runtime::Handle) -> io::Result<Spawner> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("warren-spawner".into()).spawn(move || {
            // tokio's process support (pidfd or SIGCHLD reaping) needs the runtime's context.
            let _runtime = runtime.enter();
            while let Ok((mut command, reply)) = queue.recv() {
                let _ = reply.send(command.spawn());
            }
        })?;
        Ok(Spawner { jobs })
    }

    pub async fn spawn(&self, command: tokio::process::Command) -> io::Result<tokio::process::Child> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send((command, reply)).map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        answer.await.map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }
}
