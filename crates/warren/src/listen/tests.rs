use std::io::{Read, Write};

use super::{Address, Listen, Sockets, valid_name};

#[test]
fn addresses_parse_or_say_why_not() {
    assert_eq!(Address::parse("tcp:127.0.0.1:8080"), Ok(Address::Tcp("127.0.0.1:8080".into())));
    assert_eq!(Address::parse("tcp:[::1]:80"), Ok(Address::Tcp("[::1]:80".into())));
    assert_eq!(Address::parse("unix:api.sock"), Ok(Address::Unix("api.sock".into())));
    assert!(Address::parse("tcp:127.0.0.1:99999").unwrap_err().contains("not a port"));
    assert!(Address::parse("tcp::80").unwrap_err().contains("host"));
    assert!(Address::parse("udp:1.2.3.4:5").unwrap_err().contains("expected"));
    assert!(Address::parse("unix:").unwrap_err().contains("path"));
    assert!(valid_name("http") && !valid_name("a:b") && !valid_name("") && !valid_name("a b"));
}

#[test]
fn a_unix_socket_is_bound_once_kept_0600_and_removed_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let entry = Listen { address: "unix:api.sock".into(), name: "api".into(), mode: None };
    let path = dir.path().join("api.sock");
    // A stale file (nobody accepts on it) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let sockets = Sockets::default();
    let first = sockets.get(std::slice::from_ref(&entry), Some(dir.path())).unwrap();
    let again = sockets.get(std::slice::from_ref(&entry), Some(dir.path())).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first[0].1, &again[0].1), "the same socket for the next instance");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    // A connection made while nobody accepts waits in the backlog.
    let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    client.write_all(b"hi").unwrap();
    let listener = std::os::unix::net::UnixListener::from(first[0].1.try_clone().unwrap());
    let (mut server, _) = listener.accept().unwrap();
    let mut got = [0; 2];
    server.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi");
    // A live socket is never taken over.
    let other = Sockets::default();
    assert!(other.get(std::slice::from_ref(&entry), Some(dir.path())).unwrap_err().contains("in use"));
    drop((first, again, listener, sockets));
    assert!(!path.exists(), "removed when warren lets go of it");
}

#[test]
fn a_tcp_socket_in_use_is_an_error_naming_the_entry() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let entry = Listen { address: format!("tcp:{}", taken.local_addr().unwrap()), name: "x".into(), mode: None };
    let err = Sockets::default().get(&[entry.clone()], None).unwrap_err();
    assert!(err.contains(&entry.address), "{err}");
}
