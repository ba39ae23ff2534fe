//! The built-in HTTP server capability.
//!
//! One listener ([`HttpServer`]) serves any number of components that export
//! `wasi:http/incoming-handler@0.2.x`. A [`Router`] picks the component for each request by
//! Host header and longest path prefix. Each request gets a fresh instance in a fresh store
//! ([`handle`]); request and response bodies are streamed through `wasmtime-wasi-http`, never
//! buffered whole, so their size is not capped.
//!
//! Failures map to status codes with a plain-text message naming the component: 404 when no
//! route matches, 503 when the component stays at its concurrency limit, 504 when it overruns
//! its execution deadline, 500 when it traps (e.g. grows memory past its limit).

mod handler;
mod router;
mod server;

pub use handler::{ResponseBody, handle, text_response};
pub use router::{Route, Router};
pub use server::HttpServer;
