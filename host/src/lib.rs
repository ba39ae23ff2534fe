//! The Trellis host runtime.
//!
//! A [`Runtime`] owns one wasmtime [`Engine`](wasmtime::Engine) configured for serving: the
//! pooling allocator with copy-on-write memory images, epoch interruption for deadlines, and a
//! disk cache of compiled artifacts keyed by component hash. [`Runtime::load`] turns signed
//! component bytes into a [`Component`]: claims are verified first (signature, hash, time window,
//! trusted issuer), then every import is checked against the claims' grants, then the component
//! is compiled (or loaded from the cache) and pre-linked into one `InstancePre`. Each invocation
//! gets a fresh store, so no state leaks between requests.
//!
//! Capabilities are composed, not hard-wired: each implements [`Capability`] (one small trait)
//! and is added with [`RuntimeBuilder::capability`]. The WASI 0.2 base interfaces and
//! `wasi:http` come built in; `wasi:config` and `wasi:logging` are in [`capabilities`].
//!
//! [`lattice`] joins a NATS lattice: host identity, labels, heartbeats, the host's part of
//! the wasmCloud v1 control interface.
//!
//! [`http`] serves components that export `wasi:http/incoming-handler` on one listener,
//! routed by Host header and path prefix.

mod cache;
pub mod capabilities;
mod component;
mod error;
pub mod http;
pub mod imports;
pub mod lattice;
pub mod reference;
mod runtime;
mod state;
pub mod values;

pub use capabilities::Capability;
pub use component::{CallFailure, ExportedFunction};
pub use component::{Component, ComponentLimits};
pub use error::LoadError;
pub use runtime::{Runtime, RuntimeBuilder, RuntimeConfig};
pub use state::InvocationState;
pub use trellis_protocol::claims::{TrustPolicy, TrustedIssuers};
