//! Declarative application deployment for a Trellis lattice: wadm/OAM manifests, scalers as
//! pure functions from (desired, observed) state to control commands, and the
//! `wadm.api.{lattice}.model.*` API.
//!
//! It talks to hosts only through the lattice protocol (`trellis-protocol`), never by
//! importing the host.

pub mod api;
pub mod client;
pub mod handlers;
pub mod lattice;
pub mod manifest;
pub mod model;
pub mod observer;
pub mod reconciler;
pub mod scaler;
pub mod server;
pub mod store;
