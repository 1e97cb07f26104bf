//! `warren completions SHELL` and `warren man`: generated from the same clap definitions as the
//! parser (`cli.rs`), so they cannot drift from it.
//!
//! Both print to stdout rather than write files: where completions and man pages go differs by
//! shell, distribution and user (`~/.local/share/…`, `/usr/share/man/man1`), and a redirect
//! says it plainly (`warren man > warren.1`). A build script was not chosen either: it would
//! put the page in `target/`, where no installed `warren` can find it.

use std::io::Write;

use anyhow::Context as _;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit;

/// Writes everything or fails: clap_complete's own writer panics on a write error.
fn print(bytes: &[u8]) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err).context("cannot write to stdout"),
        _ => Ok(exit::OK),
    }
}

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "warren", &mut script);
    print(&script)
}

/// The page of `warren`, or of one of its subcommands (`warren-restart(1)`).
pub fn man(subcommand: Option<&str>) -> Result<u8, crate::Failure> {
    let mut command = Cli::command();
    command.build();
    let page = match subcommand {
        None => command,
        Some(name) => {
            let known: Vec<&str> = command.get_subcommands().map(clap::Command::get_name).collect();
            let Some(sub) = command.find_subcommand(name).cloned() else {
                let message = format!("no subcommand {name:?} (known: {})", known.join(", "));
                return Err(crate::Failure { message, code: exit::USAGE });
            };
            // Built, a subcommand's display name is warren-restart: the page's title.
            sub
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff).context("cannot render the manual page")?;
    Ok(print(&roff)?)
}
