//! Sockets warren binds and holds for its programs, passed to them as systemd's socket
//! activation passes them (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`, fds from 3).
//!
//! warren keeps its own copy of each socket for as long as it runs: between one instance of a
//! program and the next, connections wait in the socket's backlog instead of being refused,
//! and during a rolling restart the old and the new instance accept on the same socket.

mod bind;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

pub use bind::{Bound, remove_stale_socket};

/// The longest name `LISTEN_FDNAMES` allows for one socket (systemd's limit).
pub const MAX_NAME: usize = 255;

/// One entry of a program's `listen`: where, under which name, with which file mode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listen {
    /// `tcp:HOST:PORT` or `unix:PATH` (a relative path is relative to the program's `cwd`).
    pub address: String,
    /// Its name in `LISTEN_FDNAMES`.
    pub name: String,
    /// The mode of a Unix socket's file (default 0600); not used for TCP.
    pub mode: Option<u32>,
}

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Address {
    /// A TCP address, as written (resolved when bound).
    Tcp(String),
    /// A Unix socket's path.
    Unix(PathBuf),
}

impl Address {
    /// Parses `tcp:HOST:PORT` or `unix:PATH`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Address, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a path".to_owned());
            }
            if path.len() > warren_rpc::MAX_UNIX_PATH {
                return Err(format!(
                    "the path is {} bytes, over the {} a Unix socket allows",
                    path.len(),
                    warren_rpc::MAX_UNIX_PATH
                ));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let Some(hostport) = text.strip_prefix("tcp:") else {
            return Err("expected `tcp:HOST:PORT` or `unix:PATH`".to_owned());
        };
        let Some((host, port)) = hostport.rsplit_once(':') else {
            return Err("`tcp:` needs HOST:PORT".to_owned());
        };
        if host.is_empty() {
            return Err("`tcp:` needs a host before the port (0.0.0.0 for every interface)".to_owned());
        }
        port.parse::<u16>().map_err(|_| format!("{port:?} is not a port number (0 to 65535)"))?;
        Ok(Address::Tcp(hostport.to_owned()))
    }

    /// The address with a relative Unix path made relative to `cwd`.
    fn resolved(self, cwd: Option<&Path>) -> Address {
        match (self, cwd) {
            (Address::Unix(path), Some(cwd)) if path.is_relative() => Address::Unix(cwd.join(path)),
            (other, _) => other,
        }
    }

    fn socket_addr(host_port: &str) -> std::io::Result<SocketAddr> {
        host_port.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::other("the host resolves to no address"))
    }
}

/// The name of a `listen` entry that is the program's RPC endpoint for its dependents.
pub const RPC_NAME: &str = "rpc";

/// Where the dependents of a program with `listen` entries reach its RPC: the entry named
/// [`RPC_NAME`], a socket warren holds across the program's restarts and rolls (its own
/// endpoint, by contrast, is each instance's and goes away with it).
pub fn rpc_endpoint(listen: &[Listen], cwd: Option<&Path>) -> Option<warren_rpc::Endpoint> {
    let entry = listen.iter().find(|entry| entry.name == RPC_NAME)?;
    match Address::parse(&entry.address).ok()?.resolved(cwd) {
        Address::Unix(path) => Some(warren_rpc::Endpoint::unix(path)),
        Address::Tcp(host_port) => Some(warren_rpc::Endpoint::Tcp(host_port)),
    }
}

/// Whether `name` can go into `LISTEN_FDNAMES`: printable ASCII without `:`, at most
/// [`MAX_NAME`] bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// Every socket bound so far, by address, held until this is dropped (when the supervisor
/// has stopped everything): a program's next instance gets the same sockets.
#[derive(Debug, Default)]
pub struct Sockets {
    bound: Mutex<HashMap<Address, Arc<Bound>>>,
}

/// One socket for a child: its name and the descriptor warren holds.
pub type Passed = (String, Arc<OwnedFd>);

impl Sockets {
    /// The sockets of `listen` for a program started in `cwd`, bound on first use; the error
    /// names the entry that could not be bound and why.
    pub fn get(&self, listen: &[Listen], cwd: Option<&Path>) -> Result<Vec<Passed>, String> {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        let mut passed = Vec::with_capacity(listen.len());
        for entry in listen {
            let address = Address::parse(&entry.address).map_err(|why| format!("listen {:?}: {why}", entry.address))?;
            let address = address.resolved(cwd);
            let socket = match bound.get(&address) {
                Some(socket) => Arc::clone(socket),
                None => {
                    let socket = Arc::new(
                        Bound::new(&address, entry.mode).map_err(|err| format!("listen {:?}: {err}", entry.address))?,
                    );
                    bound.insert(address, Arc::clone(&socket));
                    socket
                }
            };
            passed.push((entry.name.clone(), socket.fd()));
        }
        Ok(passed)
    }
}

impl Sockets {
    /// Lets go of every socket no entry of `listen` (each with its program's `cwd`) names any
    /// more — after a reload took the address out: connections would otherwise queue there
    /// with nobody to answer them. An instance still running keeps its own copy until it ends.
    pub fn keep_only<'a>(&self, listen: impl IntoIterator<Item = (&'a [Listen], Option<&'a Path>)>) {
        let wanted: std::collections::HashSet<Address> = listen
            .into_iter()
            .flat_map(|(entries, cwd)| {
                entries.iter().filter_map(move |entry| Some(Address::parse(&entry.address).ok()?.resolved(cwd)))
            })
            .collect();
        self.bound.lock().unwrap_or_else(PoisonError::into_inner).retain(|address, _| wanted.contains(address));
    }
}

/// One held socket as a hand-over carries it; its descriptor crosses by number beside it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct HeldSocket {
    address: Address,
    file: Option<(PathBuf, (u64, u64))>,
}

impl Sockets {
    /// Every socket held, for a hand-over.
    pub(crate) fn held(&self) -> Vec<(HeldSocket, Arc<OwnedFd>)> {
        let bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        bound
            .iter()
            .map(|(address, socket)| (HeldSocket { address: address.clone(), file: socket.file() }, socket.fd()))
            .collect()
    }

    /// The sockets an earlier image held, with their descriptors.
    pub(crate) fn adopt(held: impl IntoIterator<Item = (HeldSocket, OwnedFd)>) -> Sockets {
        let bound = held.into_iter().map(|(held, fd)| (held.address, Arc::new(Bound::adopt(fd, held.file)))).collect();
        Sockets { bound: Mutex::new(bound) }
    }
}

#[cfg(test)]
mod tests;
