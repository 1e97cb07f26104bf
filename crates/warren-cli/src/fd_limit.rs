//! The open-file limit of `warren up`.
//!
//! Every program costs `up` a handful of descriptors (three pipes, a notify socket, an RPC
//! connection), and the usual soft limit of 1024 was met at ~150 programs while the hard limit
//! allowed 20 times more. The soft limit is a default for programs that use `select(2)`, which
//! `up` does not, so it takes what the hard limit allows. Its programs inherit the raised limit.

/// Raises the soft `RLIMIT_NOFILE` to the hard one.
pub fn raise() -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum })?;
    }
    Ok(())
}
