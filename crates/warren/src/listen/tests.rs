use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;

use super::{Address, Listen, Sockets, valid_name};

fn error_of(text: &str) -> String {
    Address::parse(text).expect_err(text)
}

#[test]
fn addresses_parse_or_say_why_not() {
    assert_eq!(Address::parse("tcp:127.0.0.1:8080"), Ok(Address::Tcp("127.0.0.1:8080".into())));
    assert_eq!(Address::parse("tcp:[::1]:80"), Ok(Address::Tcp("[::1]:80".into())));
    assert_eq!(Address::parse("unix:api.sock"), Ok(Address::Unix("api.sock".into())));
    assert!(error_of("tcp:127.0.0.1:99999").contains("not a port"));
    assert!(error_of("tcp::80").contains("host"));
    assert!(error_of("udp:1.2.3.4:5").contains("expected"));
    assert!(error_of("unix:").contains("path"));
    assert!(valid_name("http") && !valid_name("a:b") && !valid_name("") && !valid_name("a b"));
}

#[test]
fn a_unix_socket_is_bound_once_kept_0600_and_removed_at_the_end() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let entry = Listen { address: "unix:api.sock".into(), name: "api".into(), mode: None };
    let path = dir.path().join("api.sock");
    // A stale file (nobody accepts on it) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("a stale socket file"));
    let sockets = Sockets::default();
    let first = sockets.get(std::slice::from_ref(&entry), Some(dir.path())).expect("bound");
    let again = sockets.get(std::slice::from_ref(&entry), Some(dir.path())).expect("bound already");
    assert!(std::sync::Arc::ptr_eq(&first[0].1, &again[0].1), "the same socket for the next instance");
    let mode = std::fs::metadata(&path).expect("the socket file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A connection made while nobody accepts waits in the backlog.
    let mut client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    client.write_all(b"hi").expect("write");
    let listener = std::os::unix::net::UnixListener::from(first[0].1.try_clone().expect("dup"));
    let (mut server, _) = listener.accept().expect("accept");
    let mut got = [0; 2];
    server.read_exact(&mut got).expect("read");
    assert_eq!(&got, b"hi");
    // A live socket is never taken over.
    let taken = Sockets::default().get(std::slice::from_ref(&entry), Some(dir.path()));
    assert!(taken.expect_err("in use").contains("in use"));
    drop((first, again, listener, sockets));
    assert!(!path.exists(), "removed when warren lets go of it");
}

#[test]
fn a_tcp_socket_in_use_is_an_error_naming_the_entry() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("tcp:{}", taken.local_addr().expect("address"));
    let entry = Listen { address: address.clone(), name: "x".into(), mode: None };
    let err = Sockets::default().get(&[entry], None).expect_err("in use");
    assert!(err.contains(&address), "{err}");
}

#[test]
fn a_file_that_is_not_a_socket_is_never_removed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "keep me").expect("a regular file");
    let entry = Listen { address: "unix:notes.txt".into(), name: "api".into(), mode: None };
    let err = Sockets::default().get(std::slice::from_ref(&entry), Some(dir.path())).expect_err("refused");
    assert!(err.contains("is not a socket; not removing it"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).expect("still there"), "keep me");
}

#[test]
fn sockets_no_entry_names_any_more_are_let_go() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let kept = Listen { address: "unix:kept.sock".into(), name: "a".into(), mode: None };
    let dropped = Listen { address: "unix:dropped.sock".into(), name: "b".into(), mode: None };
    let sockets = Sockets::default();
    sockets.get(&[kept.clone(), dropped], Some(dir.path())).expect("bound");
    assert!(dir.path().join("dropped.sock").exists());
    sockets.keep_only([(std::slice::from_ref(&kept), Some(dir.path()))]);
    assert!(!dir.path().join("dropped.sock").exists(), "its file is removed with it");
    assert!(dir.path().join("kept.sock").exists());
    // Bound again, the kept one is the same socket (not bound a second time).
    sockets.get(std::slice::from_ref(&kept), Some(dir.path())).expect("still held");
}
