//! The implementations measured, and where a cell's two processes run.

use std::path::{Path, PathBuf};

use super::config::Config;
use crate::workload::Workload;

/// The implementations of the RPC workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Imp {
    Raw,
    /// The shared-memory floor: `raw`'s frames over the rings of a segment the server passed
    /// (docs/SHM.md §7), no warren call layer.
    ShmFloor,
    Warren,
    /// warren with its connection moved to shared memory (`Transport::Shm`, issue #19).
    WarrenShm,
    Tarpc,
    GoGob,
    GoJson,
    /// warren's server (`wb-child`) answering Go's own net/rpc client in gob.
    WarrenGob,
}

impl Imp {
    pub const ALL: [Imp; 8] =
        [Imp::Raw, Imp::ShmFloor, Imp::Warren, Imp::WarrenShm, Imp::Tarpc, Imp::GoGob, Imp::GoJson, Imp::WarrenGob];

    /// The two that measure the shared-memory transport (docs/SHM.md §7).
    pub const SHM: [Imp; 2] = [Imp::ShmFloor, Imp::WarrenShm];

    pub fn name(self) -> &'static str {
        match self {
            Imp::Raw => "raw",
            Imp::ShmFloor => "shm-floor",
            Imp::Warren => "warren",
            Imp::WarrenShm => "warren-shm",
            Imp::Tarpc => "tarpc",
            Imp::GoGob => "go-gob",
            Imp::GoJson => "go-json",
            Imp::WarrenGob => "warren-gob",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Imp::Raw => "raw (std, blocking)",
            Imp::ShmFloor => "shm floor (raw frames, rings, tokio)",
            Imp::Warren => "**warren**",
            Imp::WarrenShm => "**warren**, shared memory",
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
            Imp::ShmFloor => vec![bin("wb-raw-server"), "--shm".into(), s],
            Imp::Warren | Imp::WarrenGob => vec![bin("wb-child"), "serve".into(), s],
            Imp::WarrenShm => vec![bin("wb-child"), "serve".into(), "--transport".into(), "shm".into(), s],
            Imp::Tarpc => vec![bin("wb-tarpc-server"), s],
            Imp::GoGob => vec![go, "-codec".into(), "gob".into(), s],
            Imp::GoJson => vec![go, "-codec".into(), "json".into(), s],
        }
    }

    /// The client program and its `--impl`.
    pub(super) fn client(self, config: &Config) -> (PathBuf, &'static str) {
        match self {
            Imp::Raw | Imp::Warren | Imp::Tarpc => (config.bin.join("wb-client"), self.name()),
            Imp::ShmFloor => (config.bin.join("wb-client"), "raw-shm"),
            Imp::WarrenShm => (config.bin.join("wb-client"), "warren"),
            Imp::GoGob | Imp::WarrenGob => (config.go.join("netrpc-client"), "gob"),
            Imp::GoJson => (config.go.join("netrpc-client"), "json"),
        }
    }

    /// The client's `--transport`: `shm` makes `wb-client warren` fail unless it got it.
    pub(super) fn client_transport(self) -> Option<String> {
        (self == Imp::WarrenShm).then(|| "shm".to_owned())
    }

    /// Whether this implementation runs in the M1 cell of `workload` with `callers` callers:
    /// the shared-memory pair in the cells of docs/SHM.md §7 (tiny at c = 1, 16, 64; 4 KiB at
    /// c = 64; 1 MiB at c = 1), every other one everywhere.
    pub(super) fn in_m1_cell(self, workload: Workload, callers: usize) -> bool {
        !Imp::SHM.contains(&self)
            || match workload {
                Workload::Tiny => true,
                Workload::Echo4k => callers == 64,
                Workload::Echo1m => callers == 1,
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
