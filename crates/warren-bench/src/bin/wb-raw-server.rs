//! The raw baseline's server: blocking std Unix sockets, one thread per connection, each frame
//! answered with its argument. `wb-raw-server [--shm] SOCKET`; prints `ready` once bound; stops
//! (and removes the socket) when its stdin closes.
//!
//! With `--shm`, the shared-memory floor (`warren_bench::shm_floor`): each connection gets a
//! segment and its bells over the socket, and its thread answers the same frames over the rings,
//! on a current-thread tokio runtime of its own.

use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;

use warren_bench::raw::{self, Conn};
use warren_bench::shm_floor;
use warren_rpc::__wire::shm::Role;

fn serve(stream: UnixStream) -> std::io::Result<()> {
    let mut write = stream.try_clone()?;
    let mut conn = Conn::new(stream);
    while let Some(body) = conn.read_frame()? {
        let arg = body.get(1..).unwrap_or_default();
        raw::write_frame(&mut write, arg, &[])?;
    }
    Ok(())
}

fn serve_shm(stream: UnixStream) -> std::io::Result<()> {
    let side = shm_floor::grant(&stream)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (read, write) = side.halves(Role::Server, &stream)?;
        shm_floor::echo(read, write).await
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shm = args.iter().any(|a| a == "--shm");
    let Some(path) = args.iter().find(|a| !a.starts_with("--")).cloned() else {
        eprintln!("usage: wb-raw-server [--shm] SOCKET");
        return ExitCode::from(2);
    };
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("wb-raw-server: bind {path}: {err}");
            return ExitCode::FAILURE;
        }
    };
    {
        let path = path.clone();
        warren_bench::on_stdin_eof(move || {
            let _ = std::fs::remove_file(&path);
            std::process::exit(0);
        });
    }
    warren_bench::say_ready();
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                std::thread::spawn(move || {
                    let served = if shm { serve_shm(stream) } else { serve(stream) };
                    // A raw connection's errors are its client going away; the floor's are news.
                    if shm && let Err(err) = served {
                        eprintln!("wb-raw-server --shm: {err}");
                    }
                });
            }
            Err(err) => eprintln!("wb-raw-server: accept: {err}"),
        }
    }
    ExitCode::SUCCESS
}
