//! Binding one socket: TCP, or Unix with stale-file hygiene and a file mode set before anyone
//! can connect.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::Address;

/// Pending connections a socket holds while no instance accepts: the kernel caps it at
/// `net.core.somaxconn` (4096 on current kernels).
const BACKLOG: i32 = 1024;

/// A listening socket warren holds; a Unix socket's file is removed when it is dropped (if it
/// is still this socket's).
#[derive(Debug)]
pub struct Bound {
    fd: Arc<OwnedFd>,
    /// The file of a Unix socket and its (device, inode), to remove only our own.
    file: Option<(PathBuf, (u64, u64))>,
}

impl Bound {
    pub(super) fn new(address: &Address, mode: Option<u32>) -> io::Result<Bound> {
        match address {
            Address::Tcp(host_port) => {
                let addr = Address::socket_addr(host_port)?;
                let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
                let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
                rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
                rustix::net::bind(&fd, &addr)?;
                rustix::net::listen(&fd, BACKLOG)?;
                Ok(Bound { fd: Arc::new(fd), file: None })
            }
            Address::Unix(path) => {
                remove_stale_socket(path)?;
                let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
                let addr = rustix::net::SocketAddrUnix::new(path.as_path())?;
                rustix::net::bind(&fd, &addr)
                    .map_err(|err| io::Error::new(err.kind(), format!("bind {}: {err}", path.display())))?;
                // Between bind and listen a connect is refused: the mode is in place before
                // anyone can get in.
                let metadata = std::fs::metadata(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode.unwrap_or(0o600)))?;
                rustix::net::listen(&fd, BACKLOG)?;
                Ok(Bound { fd: Arc::new(fd), file: Some((path.clone(), (metadata.dev(), metadata.ino()))) })
            }
        }
    }

    /// warren's descriptor of the socket.
    pub fn fd(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.fd)
    }

    /// What a hand-over carries of it beside the descriptor: the file it removes at the end.
    pub(super) fn file(&self) -> Option<(PathBuf, (u64, u64))> {
        self.file.clone()
    }

    /// A socket an earlier image bound and handed over.
    pub(super) fn adopt(fd: OwnedFd, file: Option<(PathBuf, (u64, u64))>) -> Bound {
        Bound { fd: Arc::new(fd), file }
    }
}

/// A socket file left at `path` by an earlier run is removed; a socket someone accepts on is
/// not (`AddrInUse`), nor is anything that is not a socket (`AlreadyExists`: a path written by
/// mistake must not cost a file). Returns whether a file was removed.
pub fn remove_stale_socket(path: &std::path::Path) -> io::Result<bool> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
        Ok(metadata) if !metadata.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket; not removing it", path.display()),
            ));
        }
        Ok(_) => {}
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {
            Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{} is in use by another process", path.display())))
        }
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path).map(|()| true),
        Err(_) => Ok(false),
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Some((path, id)) = &self.file
            && std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == *id)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}
