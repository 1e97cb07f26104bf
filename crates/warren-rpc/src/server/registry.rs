//! Services and their methods, registered once and looked up per call by full name.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use crate::codec::Codec;
use crate::error::{ErrorCode, HandlerError};
use crate::message::{self, EncodeError};
use crate::outgoing::Outgoing;

/// A handler's answer, already encoded (a RESPONSE frame, or the bare payload for JSON-RPC), or
/// the error to send instead.
pub(crate) type Outcome = Result<Outgoing, HandlerError>;
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A method with its argument and reply types erased, so one map holds every method.
pub(crate) trait ErasedMethod: Send + Sync {
    fn call(&self, ctx: Context, call: CallFrame) -> BoxFuture;
}

/// What a method needs from the request frame to run and frame its reply.
pub(crate) struct CallFrame {
    pub id: u32,
    pub codec: Codec,
    pub payload: Bytes,
    pub reply_limit: u32,
    pub shape: Shape,
}

/// How a handler encodes its reply, which its wire decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A whole RESPONSE frame of the binary protocol, encoded in place.
    Frame,
    /// The bare payload, which the wire puts in its own reply (a JSON-RPC line). An argument
    /// of `{}` also stands for "no value": Go has no unit type, and its callers send
    /// `struct{}{}` to methods that take none.
    Payload,
}

/// The argument, reply and future types of a method, kept only for type inference.
type Signature<A, R, Fut> = PhantomData<fn() -> (A, R, Fut)>;

struct TypedMethod<F, A, R, Fut> {
    name: Arc<str>,
    handler: F,
    // `fn() -> ..` keeps the method Send + Sync whatever A, R and Fut are.
    types: Signature<A, R, Fut>,
}

impl<F, A, R, Fut> ErasedMethod for TypedMethod<F, A, R, Fut>
where
    F: Fn(Context, A) -> Fut + Send + Sync + 'static,
    A: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
{
    fn call(&self, ctx: Context, call: CallFrame) -> BoxFuture {
        let decoded = match call.codec.decode_shared::<A>(&call.payload) {
            Err(err) if call.shape == Shape::Payload && &call.payload[..] == b"{}" => {
                call.codec.decode::<A>(b"null").map_err(|_| err)
            }
            decoded => decoded,
        };
        let arg = match decoded {
            Ok(arg) => arg,
            Err(err) => {
                let message = format!("{}: cannot decode the argument: {}", self.name, err.message);
                return Box::pin(std::future::ready(Err(HandlerError::bad_argument(message))));
            }
        };
        let reply = (self.handler)(ctx, arg);
        let name = Arc::clone(&self.name);
        Box::pin(async move {
            let value = reply.await?;
            let encoded = match call.shape {
                Shape::Frame => message::response_frame(call.id, call.codec, &value, call.reply_limit),
                Shape::Payload => message::payload_outgoing(call.codec, &value, call.reply_limit),
            };
            encoded.map_err(|err| match err {
                EncodeError::TooLarge { size, limit } => HandlerError {
                    code: ErrorCode::FrameTooLarge,
                    message: format!("{name}: reply of {size} bytes exceeds the caller's limit of {limit} bytes"),
                    data: None,
                },
                other => HandlerError::internal(format!("{name}: cannot encode the reply: {other}")),
            })
        })
    }
}

/// Collects the methods of one service; see [`Server::service`](super::Server::service).
#[must_use]
pub struct ServiceBuilder {
    service: String,
    methods: Vec<(String, Arc<dyn ErasedMethod>)>,
}

impl std::fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.methods.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ServiceBuilder").field("service", &self.service).field("methods", &names).finish()
    }
}

impl ServiceBuilder {
    pub(crate) fn new(service: &str) -> Self {
        ServiceBuilder { service: service.to_owned(), methods: Vec::new() }
    }

    /// Registers `Service.name`. The handler takes the call's [`Context`] and the decoded
    /// argument and returns the reply or a [`HandlerError`]. Clients may also send it
    /// notifications, in which case the reply is dropped.
    pub fn method<F, A, R, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    {
        let full = format!("{}.{}", self.service, name);
        let method = TypedMethod { name: Arc::from(full.as_str()), handler, types: PhantomData };
        self.methods.push((full, Arc::new(method)));
        self
    }
}

/// Hashes method names for the registry, eight bytes at a time (FxHash's step). The registry is
/// built by the server's own code and never grows from peer input, so SipHash's resistance to
/// chosen keys buys nothing, and costs more than the rest of a lookup.
#[derive(Default)]
struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Every method of every service, by full name.
#[derive(Default)]
pub(crate) struct Registry {
    methods: HashMap<String, Arc<dyn ErasedMethod>, BuildHasherDefault<NameHasher>>,
    services: HashSet<String>,
}

impl Registry {
    pub fn add(&mut self, builder: ServiceBuilder) {
        self.services.insert(builder.service);
        self.methods.extend(builder.methods);
    }

    /// The method called `method`, or the error to answer with: an unknown service and an
    /// unknown method of a known service are distinct errors, and both list what exists.
    pub fn resolve(&self, method: &str) -> Result<Arc<dyn ErasedMethod>, (ErrorCode, String)> {
        if let Some(found) = self.methods.get(method) {
            return Ok(Arc::clone(found));
        }
        let service = method.split_once('.').map_or(method, |(service, _)| service);
        let (code, what) = if self.services.contains(service) {
            (ErrorCode::UnknownMethod, "method")
        } else {
            (ErrorCode::UnknownService, "service")
        };
        let known = self.method_names().join(", ");
        Err((code, format!("no {what} for {method:?}; this server has: {known}")))
    }

    pub fn method_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.methods.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
