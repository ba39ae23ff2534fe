//! Write a Trellis capability provider once; run it inside a host (`builtin://NAME`) or as its
//! own process on the lattice.
//!
//! A provider is a Rust type that implements [`Provider`] (the lifecycle every provider
//! shares) and one or more capability traits ([`keyvalue::KeyValue`], [`sql::Sql`], …). It
//! says which capabilities it serves through [`Provider::capabilities`].
//!
//! ```text
//!            component ── import wasi:keyvalue/store ──▶ host
//!                                                      │ link (source = component,
//!                                                      │       target = provider, name)
//!        in-process (builtin://)                       │        out-of-process
//!   Arc<dyn KeyValue>::get(cx, …)  ◀───────────────────┴──▶  NATS request (signed frame)
//!                                                              ▶ provider process: the same
//!                                                                KeyValue::get(cx, …)
//! ```
//!
//! Every call carries a [`CallContext`]: which component called and through which link, so a
//! provider keeps per-link state (a database pool per link, say) in a [`link::LinkTable`],
//! filled by [`Provider::receive_link_config_as_target`] and emptied by
//! [`Provider::delete_link_as_target`]. Settings such as a database URL come from the link's
//! target config, never from code.
//!
//! Errors: capability methods return the capability's own typed error (e.g.
//! [`keyvalue::KvError`]), which reaches the component as the WIT error value — never a trap.
//! Lifecycle methods return [`ProviderError`], which the host logs and reports as an event.

pub mod http;
pub mod http_client;
pub mod keyvalue;
pub mod link;
pub mod process;
pub mod provider;
pub mod sql;
pub mod wire;

pub use link::{CallContext, LinkConfig, LinkTable};
pub use provider::{
    Capabilities, HealthStatus, InitContext, Provider, ProviderError, ProviderIdCell,
};

/// Re-exported so that providers implement the traits with the same macro version.
pub use async_trait::async_trait;
