//! HTTP: providers that call components (`wasi:http/incoming-handler`).
//!
//! An HTTP server provider is the **source** of links to components: each link says (in its
//! source config) which address, host and path prefix reach that component. When a request
//! arrives, the provider hands it to a [`ComponentInvoker`], which runs the target
//! component's `wasi:http/incoming-handler` and returns its response:
//! - in-process (`builtin://http-server`), the host's invoker calls the component directly
//!   when it runs in that host, or over NATS when it runs elsewhere;
//! - out-of-process, the SDK's invoker sends the request over NATS to
//!   `wasmbus.rpc.{lattice}.{component}.wasi:http/incoming-handler.handle`.
//!
//! Requests and responses cross as [`HttpRequest`] / [`HttpResponse`] with whole bodies.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The interface components export to receive HTTP requests.
pub const INCOMING_HANDLER: &str = "wasi:http/incoming-handler";
/// The function name of a request on [`INCOMING_HANDLER`].
pub const HANDLE: &str = "handle";

/// One HTTP request for a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    /// Path and query, e.g. `/orders?limit=5`.
    pub path_and_query: String,
    /// The `Host` the client asked for, when it sent one.
    pub authority: Option<String>,
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A component's HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A plain-text response (errors the provider produces itself).
    pub fn text(status: u16, message: impl Into<String>) -> Self {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        Self {
            status,
            headers: vec![(
                "content-type".into(),
                serde_bytes::ByteBuf::from(b"text/plain; charset=utf-8".to_vec()),
            )],
            body,
        }
    }
}

/// Runs components' HTTP handlers for a provider.
#[async_trait]
pub trait ComponentInvoker: Send + Sync + 'static {
    /// Sends `request` to `component`; `Err` says why it could not run (not running, timed
    /// out, trapped) for the provider to turn into a 5xx.
    async fn handle_http(
        &self,
        component: &str,
        request: HttpRequest,
    ) -> Result<HttpResponse, String>;
}
