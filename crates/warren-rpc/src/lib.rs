//! # warren-rpc
//!
//! Go net/rpc-style services between processes, over Unix sockets, TCP or a child's stdio
//! pipes: methods named `"Service.Method"`, typed with serde, many calls in flight on one
//! connection, deadlines and cancellation that reach the handler, typed errors, notifications
//! in both directions, and a graceful drain on shutdown.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use warren_rpc::{Client, Endpoint, Server};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Todo { id: String }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // In the child:
//! let server = Server::new().service("Task", |s| s.method("Get", |_ctx, id: String| async move { Ok(Todo { id }) }));
//! let running = server.bind(&Endpoint::parse("unix:/run/user/1000/task.sock")?).await?;
//!
//! // In the host:
//! let client = Client::connect("unix:/run/user/1000/task.sock").await?;
//! let todo: Todo = client.call("Task.Get", "new_id").await?;
//! # running.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(()) }
//! ```
//!
//! ## How it works
//! Each connection starts with a preface and a HELLO/WELCOME exchange that fixes the protocol
//! version, the payload codec (MessagePack or JSON) and both sides' frame limits. Then frames
//! flow both ways: REQUEST/RESPONSE/ERROR matched by call id, CANCEL, NOTIFY, PING/PONG and
//! GOODBYE. One task per connection writes, coalescing queued frames into one syscall; one
//! reads. The byte-level specification is `docs/PROTOCOL.md`.
//!
//! A connection whose first byte is `{` instead speaks newline-delimited JSON-RPC (Go's
//! `net/rpc/jsonrpc` shape or JSON-RPC 2.0, `docs/PROTOCOL.md` §17), served by the same
//! methods: Go programs and scripts call warren services, and [`Protocol::JsonRpc`] lets a
//! [`Client`] call JSON-RPC servers (Go's, or a child written in another language).
//!
//! ## Caveats
//! A handler is dropped (not awaited) when its call is cancelled or its deadline passes; its
//! [`Cancellation`] fires first, so code that must clean up can watch it or use drop guards.

#![warn(missing_docs)]

mod bytes;
mod client;
mod codec;
mod endpoint;
mod error;
mod frame;
mod gob;
mod hello;
mod jsonrpc;
mod kind;
mod message;
mod outgoing;
mod server;
mod shm;
mod unix_io;
mod writer;

pub use crate::bytes::Bytes;
pub use client::{
    CallOptions, CarriedSession, CarryError, Client, ClientBuilder, HeldConnection, Notification, Protocol,
    Subscription,
};
pub use codec::{Codec, CodecError};
pub use endpoint::{Endpoint, MAX_UNIX_PATH, ToEndpoint};
pub use error::{
    BindError, CallError, ConnectError, EndpointError, ErrorChain, ErrorCode, ErrorData, Foreign, FrameError,
    HandlerError, LostReason,
};
pub use kind::Kind as FrameKind;
pub use server::{
    Cancellation, Context, Inherited, Notifier, NotifyError, PeerInfo, PeerPolicy, Running, Server, ServerHandle,
    ServiceBuilder, ShutdownReport,
};
pub use shm::negotiate::Transport;

/// The version of the binary protocol this crate speaks (`docs/PROTOCOL.md`), announced in every
/// connection's preface and to the children warren starts (`WARREN_PROTOCOL`).
pub const PROTOCOL_VERSION: u8 = hello::VERSION;

/// The wire internals, re-exported for this crate's own tests and benches, which craft and
/// read raw frames. Not public API: exempt from semver, may change in any release.
#[doc(hidden)]
pub mod __wire {
    /// Frames: header, kinds, the reader.
    pub mod frame {
        pub use crate::frame::*;
    }
    /// The shared-memory transport's parts (issue #19, docs/SHM.md), for the benches until
    /// the hello negotiates it.
    pub mod shm {
        pub use crate::shm::ring::Layout;
        pub use crate::shm::spin::counts as spin_counts;
        pub use crate::shm::stream::{Bells, Role, ShmRead, ShmWrite, halves};
        pub use crate::shm::sys::Segment;
    }
    /// The preface and the HELLO/WELCOME exchange.
    pub mod hello {
        pub use crate::hello::*;
    }
    /// The bodies of REQUEST, RESPONSE, ERROR and NOTIFY frames.
    pub mod message {
        pub use crate::message::*;
    }
    /// Go's gob: whole streams to and from serde types.
    pub mod gob {
        pub use crate::gob::{GobError, decode_stream, encode_stream};
    }
}
