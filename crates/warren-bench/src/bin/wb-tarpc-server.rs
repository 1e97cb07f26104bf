//! tarpc's server of the `Task` service: bincode over a length-delimited Unix socket, a task per
//! request as in tarpc's examples. `wb-tarpc-server SOCKET`; prints `ready` once bound; stops
//! (and removes the socket) when its stdin closes.

use std::process::ExitCode;

use futures_util::StreamExt;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use warren_bench::service::tarpc_task::{Task, TaskServer};

async fn run(path: &str) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut incoming = tarpc::serde_transport::unix::listen(path, Bincode::default).await?;
    incoming.config_mut().max_frame_length(16 * 1024 * 1024);
    let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
    warren_bench::on_stdin_eof(move || {
        let _ = closed_tx.send(());
    });
    warren_bench::say_ready();
    loop {
        tokio::select! {
            transport = incoming.next() => match transport {
                Some(Ok(transport)) => {
                    let channel = BaseChannel::with_defaults(transport);
                    tokio::spawn(channel.execute(TaskServer.serve()).for_each(|call| async move {
                        tokio::spawn(call);
                    }));
                }
                Some(Err(err)) => eprintln!("wb-tarpc-server: accept: {err}"),
                None => break,
            },
            _ = &mut closed => break,
        }
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: wb-tarpc-server SOCKET");
        return ExitCode::from(2);
    };
    match run(&path).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wb-tarpc-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}
