//! The raw baseline's server: blocking std Unix sockets, one thread per connection, each frame
//! answered with its argument. `wb-raw-server SOCKET`; prints `ready` once bound; stops (and
//! removes the socket) when its stdin closes.

use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;

use warren_bench::raw::{self, Conn};

fn serve(stream: UnixStream) -> std::io::Result<()> {
    let mut write = stream.try_clone()?;
    let mut conn = Conn::new(stream);
    while let Some(body) = conn.read_frame()? {
        let arg = body.get(1..).unwrap_or_default();
        raw::write_frame(&mut write, arg, &[])?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: wb-raw-server SOCKET");
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
                std::thread::spawn(move || serve(stream));
            }
            Err(err) => eprintln!("wb-raw-server: accept: {err}"),
        }
    }
    ExitCode::SUCCESS
}
