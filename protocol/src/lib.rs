//! Wire types shared by everything that speaks on a Trellis lattice.
//!
//! This crate depends on nothing else of Trellis (see `docs/ARCHITECTURE.md`): the host, the
//! provider SDK, wadm and the CLI all use it, so a format is defined exactly once.
//!
//! - [`claims`]: signed component claims, wascap-compatible JWTs embedded in the
//!   `wasmcloud_jwt` custom section of a component, and their verification.
//! - [`ctl`]: the wasmCloud v1 control interface: subjects, the `CtlResponse` envelope, host
//!   and inventory shapes, CloudEvents.
//! - [`keys`]: the nkeys (ed25519) key kinds Trellis uses: accounts sign components, modules are
//!   their subjects, services are providers, servers are hosts.
//! - [`nats`]: connecting to the lattice's NATS with credentials (creds file or nkey) and
//!   TLS, with errors that name the flag to fix.
//! - [`rpc`]: calls across the lattice: subjects, the signed MessagePack call frame, replies.
//! - [`wasm`]: a minimal reader of the top-level structure of a wasm binary (enough to tell a
//!   component from a core module and to strip or append a custom section).

pub mod claims;
pub mod ctl;
pub mod keys;
pub mod nats;
pub mod rpc;
pub mod wasm;
