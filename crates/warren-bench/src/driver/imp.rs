//! The implementations measured, and where a cell's two processes run.

use std::path::{Path, PathBuf};

use super::config::Config;

/// The implementations of the RPC workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Imp {
    Raw,
    Warren,
    Tarpc,
    GoGob,
    GoJson,
    /// warren's server (`wb-child`) answering Go's own net/rpc client in gob.
    WarrenGob,
}

impl Imp {
    pub const ALL: [Imp; 6] = [Imp::Raw, Imp::Warren, Imp::Tarpc, Imp::GoGob, Imp::GoJson, Imp::WarrenGob];

    pub fn name(self) -> &'static str {
        match self {
            Imp::Raw => "raw",
            Imp::Warren => "warren",
            Imp::Tarpc => "tarpc",
            Imp::GoGob => "go-gob",
            Imp::GoJson => "go-json",
            Imp::WarrenGob => "warren-gob",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Imp::Raw => "raw (std, blocking)",
            Imp::Warren => "**warren**",
            Imp::Tarpc => "tarpc (bincode)",
            Imp::GoGob => "Go net/rpc (gob, HTTP)",
            Imp::GoJson => "Go net/rpc/jsonrpc",
            Imp::WarrenGob => "**warren** serving gob to Go's client",
        }
    }

    pub(super) fn server(self, config: &Config, socket: &Path) -> Vec<String> {
        let s = socket.display().to_string();
        let bin = |name: &str| config.bin.join(name).display().to_string();
        let go = config.go.join("netrpc-server").display().to_string();
        match self {
            Imp::Raw => vec![bin("wb-raw-server"), s],
            Imp::Warren | Imp::WarrenGob => vec![bin("wb-child"), "serve".into(), s],
            Imp::Tarpc => vec![bin("wb-tarpc-server"), s],
            Imp::GoGob => vec![go, "-codec".into(), "gob".into(), s],
            Imp::GoJson => vec![go, "-codec".into(), "json".into(), s],
        }
    }

    pub(super) fn client(self, config: &Config) -> (PathBuf, &'static str) {
        match self {
            Imp::Raw | Imp::Warren | Imp::Tarpc => (config.bin.join("wb-client"), self.name()),
            Imp::GoGob | Imp::WarrenGob => (config.go.join("netrpc-client"), "gob"),
            Imp::GoJson => (config.go.join("netrpc-client"), "json"),
        }
    }
}

/// Where the two processes of a cell run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pin {
    /// Wherever the scheduler puts them.
    None,
    /// Server and client both on CPU 0 (`taskset -c 0`).
    Same,
    /// Server on CPU 0, client on CPU 1.
    Split,
}

impl Pin {
    pub(super) fn cpus(self) -> (Option<u32>, Option<u32>) {
        match self {
            Pin::None => (None, None),
            Pin::Same => (Some(0), Some(0)),
            Pin::Split => (Some(0), Some(1)),
        }
    }
}
