//! Where a server listens or a client connects, written as a short URL-like string.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::EndpointError;

/// The longest Unix socket path the OS accepts, in bytes (`sun_path` minus its NUL).
#[cfg(target_os = "linux")]
pub const MAX_UNIX_PATH: usize = 107;
#[cfg(not(target_os = "linux"))]
pub const MAX_UNIX_PATH: usize = 103;

/// An address for the warren protocol: `unix:/run/x.sock` (or a bare path), `tcp:127.0.0.1:7000`,
/// or `stdio:` for a child serving on its own stdin/stdout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP `host:port`.
    Tcp(String),
    /// This process's stdin and stdout, or a child's.
    Stdio,
}

impl Endpoint {
    /// Parses `unix:/path`, `/path`, `tcp:host:port` or `stdio:`.
    pub fn parse(input: &str) -> Result<Endpoint, EndpointError> {
        let bad = |why: &str| EndpointError { input: input.to_owned(), why: why.to_owned() };
        let trimmed = input.trim();
        if let Some(rest) = trimmed.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad("the unix path is empty"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = trimmed.strip_prefix("tcp:") {
            let addr = rest.strip_prefix("//").unwrap_or(rest);
            let Some((host, port)) = addr.rsplit_once(':') else {
                return Err(bad("a tcp endpoint needs host:port"));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad("a tcp endpoint needs a host and a port number between 0 and 65535"));
            }
            return Ok(Endpoint::Tcp(addr.to_owned()));
        }
        if trimmed == "stdio:" || trimmed == "stdio" {
            return Ok(Endpoint::Stdio);
        }
        if trimmed.contains("://") {
            return Err(bad("unknown scheme"));
        }
        if trimmed.contains('/') || trimmed.ends_with(".sock") {
            return Ok(Endpoint::Unix(PathBuf::from(trimmed)));
        }
        // `127.0.0.1:6379`, `localhost:8080`, `[::1]:80`: what people write for TCP.
        if let Some((host, port)) = trimmed.rsplit_once(':')
            && !host.is_empty()
            && port.parse::<u16>().is_ok()
        {
            return Ok(Endpoint::Tcp(trimmed.to_owned()));
        }
        Err(bad("expected tcp:HOST:PORT, HOST:PORT, unix:PATH or a path"))
    }

    /// A Unix endpoint for `path`.
    pub fn unix(path: impl AsRef<Path>) -> Endpoint {
        Endpoint::Unix(path.as_ref().to_path_buf())
    }

    /// The socket path of a Unix endpoint.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Endpoint::Unix(path) => Some(path),
            _ => None,
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp:{addr}"),
            Endpoint::Stdio => f.write_str("stdio:"),
        }
    }
}

/// Anything a client can be pointed at: an [`Endpoint`], or a string or path to parse as one.
pub trait ToEndpoint {
    /// The endpoint this names.
    fn to_endpoint(&self) -> Result<Endpoint, EndpointError>;
}

impl ToEndpoint for Endpoint {
    fn to_endpoint(&self) -> Result<Endpoint, EndpointError> {
        Ok(self.clone())
    }
}

impl ToEndpoint for str {
    fn to_endpoint(&self) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(self)
    }
}

impl ToEndpoint for String {
    fn to_endpoint(&self) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(self)
    }
}

impl ToEndpoint for Path {
    fn to_endpoint(&self) -> Result<Endpoint, EndpointError> {
        Ok(Endpoint::unix(self))
    }
}

impl ToEndpoint for PathBuf {
    fn to_endpoint(&self) -> Result<Endpoint, EndpointError> {
        Ok(Endpoint::unix(self))
    }
}

impl<T: ToEndpoint + ?Sized> ToEndpoint for &T {
    fn to_endpoint(&self) -> Result<Endpoint, EndpointError> {
        (**self).to_endpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(Endpoint::parse("unix:/run/a.sock").ok(), Some(Endpoint::unix("/run/a.sock")));
        assert_eq!(Endpoint::parse("unix:///run/a.sock").ok(), Some(Endpoint::unix("/run/a.sock")));
        assert_eq!(Endpoint::parse("/tmp/b.sock").ok(), Some(Endpoint::unix("/tmp/b.sock")));
        assert_eq!(Endpoint::parse("rpc.sock").ok(), Some(Endpoint::unix("rpc.sock")));
        assert_eq!(Endpoint::parse("tcp:127.0.0.1:7000").ok(), Some(Endpoint::Tcp("127.0.0.1:7000".into())));
        assert_eq!(Endpoint::parse("stdio:").ok(), Some(Endpoint::Stdio));
        assert_eq!(Endpoint::parse("tcp:[::1]:80").ok(), Some(Endpoint::Tcp("[::1]:80".into())));
        assert_eq!(Endpoint::parse("127.0.0.1:6379").ok(), Some(Endpoint::Tcp("127.0.0.1:6379".into())));
        assert_eq!(Endpoint::parse("localhost:80").ok(), Some(Endpoint::Tcp("localhost:80".into())));
    }

    #[test]
    fn rejects_with_the_input_named() {
        for input in ["http://x", "tcp:localhost", "tcp::80", "unix:", "tcp:h:99999", "host:http", ":80"] {
            let err = Endpoint::parse(input).expect_err(input);
            assert!(err.to_string().contains(input), "{err}");
        }
    }

    #[test]
    fn displays_as_parsed() {
        for input in ["unix:/run/a.sock", "tcp:127.0.0.1:7000", "stdio:"] {
            assert_eq!(Endpoint::parse(input).expect(input).to_string(), input);
        }
    }
}
