//! HTTP requests handed to components by providers (`wasi:http/incoming-handler`).
//!
//! An HTTP server provider gets a [`HostInvoker`] when it runs inside this host: a request
//! for a component that runs here goes straight to the HTTP handler (a fresh instance, the
//! component's deadline and concurrency limit, as for `trellis run`); one for a component
//! elsewhere is sent over NATS, where [`serve_http`] answers it on a host that runs it.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use trellis_protocol::ctl::DEFAULT_LINK_NAME;
use trellis_protocol::rpc::{CallError, CallErrorKind, CallReply, CallRequest, Caller};
use trellis_provider_sdk::http::{
    ComponentInvoker, HANDLE, HttpRequest, HttpResponse, INCOMING_HANDLER,
};
use trellis_provider_sdk::wire::arg;

use super::HostCore;
use super::rpc::{Exchange, exchange};
use crate::Component;

/// The most of a response body that is collected for a provider (larger ones are refused).
const MAX_BODY: usize = 64 << 20;
/// How long a request sent to another host may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one request through a component running here.
pub(crate) async fn run(
    component: Arc<Component>,
    request: HttpRequest,
) -> Result<HttpResponse, String> {
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path_and_query.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    if let Some(authority) = &request.authority
        && !request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
    {
        builder = builder.header(http::header::HOST, authority.as_str());
    }
    let body = Full::new(Bytes::from(request.body)).map_err(
        |never| -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode { match never {} },
    );
    let hyper_request = builder
        .body(body)
        .map_err(|e| format!("malformed request for component `{}`: {e}", component.id()))?;
    let response = crate::http::handle(component.clone(), hyper_request).await;
    let (parts, body) = response.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    let body = limited
        .collect()
        .await
        .map_err(|e| format!("the response of component `{}` failed: {e}", component.id()))?
        .to_bytes();
    Ok(HttpResponse {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    serde_bytes::ByteBuf::from(v.as_bytes().to_vec()),
                )
            })
            .collect(),
        body: body.to_vec(),
    })
}

/// The reply to an HTTP request that came over NATS for `component`.
pub(crate) async fn serve_http(component: Arc<Component>, request: CallRequest) -> CallReply {
    let failure = |kind, message: String| CallReply::Err(CallError { kind, message });
    let Some(value) = request.args.into_iter().next() else {
        return failure(CallErrorKind::BadRequest, "missing the HTTP request".into());
    };
    let http_request: HttpRequest = match rmpv::ext::from_value(value) {
        Ok(r) => r,
        Err(e) => {
            return failure(
                CallErrorKind::BadRequest,
                format!("malformed HTTP request: {e}"),
            );
        }
    };
    match run(component, http_request).await {
        Ok(response) => CallReply::Ok(vec![arg(&response)]),
        Err(message) => failure(CallErrorKind::Trapped, message),
    }
}

/// The invoker of in-process providers.
pub(crate) struct HostInvoker {
    pub(crate) core: Weak<HostCore>,
}

#[trellis_provider_sdk::async_trait]
impl ComponentInvoker for HostInvoker {
    async fn handle_http(
        &self,
        component: &str,
        request: HttpRequest,
    ) -> Result<HttpResponse, String> {
        let core = self
            .core
            .upgrade()
            .ok_or_else(|| "the host is shutting down".to_string())?;
        let local = core
            .components()
            .get(component)
            .map(|r| r.component.clone());
        if let Some(local) = local {
            return run(local, request).await;
        }
        let call = CallRequest::new(
            Caller::new(&core.identity.host_id, None, DEFAULT_LINK_NAME),
            &core.identity.lattice,
            component,
            INCOMING_HANDLER,
            HANDLE,
            REMOTE_TIMEOUT,
            vec![arg(&request)],
        );
        let started = Instant::now();
        match exchange(&core, &call, REMOTE_TIMEOUT).await {
            Ok(CallReply::Ok(values)) => {
                let value = values.into_iter().next().unwrap_or(rmpv::Value::Nil);
                rmpv::ext::from_value(value)
                    .map_err(|e| format!("malformed response from component `{component}`: {e}"))
            }
            Ok(CallReply::Err(e)) => Err(format!("component `{component}`: {e}")),
            Err(Exchange::NoResponders) => Err(format!(
                "component `{component}` is not running in lattice `{}`",
                core.identity.lattice
            )),
            Err(Exchange::Failed(m)) => Err(format!(
                "request to component `{component}` {m} (after {:?})",
                started.elapsed()
            )),
        }
    }
}
