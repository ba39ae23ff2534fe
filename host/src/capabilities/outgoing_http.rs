//! `wasi:http/outgoing-handler` on a lattice: a component's requests go through the
//! `http-client` provider its link names, which enforces that link's allow-list.
//!
//! `wasmtime-wasi-http` implements the interface and hands each finished request to
//! [`WasiHttpHooks::send_request`]; this module implements that hook for an invocation's
//! [`ProviderAccess`]:
//!
//! - **on a lattice host** the request (body buffered) is sent to the provider behind the
//!   component's link for `wasi:http/outgoing-handler` (link `default` unless the component
//!   picked another name), in-process or over NATS like any provider call. No link, or a link
//!   to something that is not an HTTP client, fails the request with `internal-error` whose
//!   message says which link to put; the provider's refusals and failures come back as the
//!   matching `error-code` (a host outside the allow-list is `HTTP-request-denied`);
//! - **without a lattice** (`trellis run`, one component, no providers) the host sends the
//!   request itself, as `wasmtime serve` does; the component still needs the
//!   `wasi:http/outgoing-handler` grant to import it at all.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use trellis_provider_sdk::http_client::{HttpClientError, OUTGOING_HANDLER, OutgoingRequest};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::provided::ProviderAccess;

/// What `send_request` returns: the response, and a future reporting errors of sending the
/// request body after the response started (none here: bodies are sent whole).
type Sent = Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
)>;

type Result<T, E = Error> = std::result::Result<T, E>;

impl WasiHttpHooks for ProviderAccess {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        drop(fut);
        if self.router.is_none() {
            return Box::new(async move {
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((
                    response.map(BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn Future<Output = _> + Send>,
                ))
            });
        }
        let found = self
            .routing()
            .provider(OUTGOING_HANDLER, "outgoing HTTP", |c| c.http_client);
        Box::new(async move {
            let (client, cx) = found.map_err(|message| Error::InternalError(Some(message)))?;
            let outgoing = outgoing_request(request, options).await?;
            let response = client.send(&cx, outgoing).await.map_err(error_code)?;
            let mut builder = http::Response::builder().status(response.status);
            for (name, value) in response.headers {
                builder = builder.header(name, value.into_vec());
            }
            let body = Full::new(Bytes::from(response.body))
                .map_err(|never| match never {})
                .boxed_unsync();
            let response = builder.body(body).map_err(|e| {
                Error::InternalError(Some(format!("the provider's response is invalid: {e}")))
            })?;
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// The request as it crosses to the provider: URL parts, headers, the whole body.
async fn outgoing_request(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<OutgoingRequest> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    let millis = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok(OutgoingRequest {
        method: parts.method.to_string(),
        scheme: parts.uri.scheme_str().unwrap_or("https").to_string(),
        authority: parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    serde_bytes::ByteBuf::from(v.as_bytes().to_vec()),
                )
            })
            .collect(),
        body,
        connect_timeout_ms: millis(options.and_then(|o| o.connect_timeout)),
        first_byte_timeout_ms: millis(options.and_then(|o| o.first_byte_timeout)),
    })
}

/// The `wasi:http` error code for a provider's refusal or failure.
fn error_code(error: HttpClientError) -> Error {
    match error {
        HttpClientError::Denied(_) => Error::HttpRequestDenied,
        HttpClientError::InvalidRequest(_) => Error::HttpRequestUriInvalid,
        HttpClientError::Dns(message) => Error::DnsError {
            rcode: Some(message),
            info_code: None,
        },
        HttpClientError::ConnectionRefused(_) => Error::ConnectionRefused,
        HttpClientError::ConnectionTimeout(_) => Error::ConnectionTimeout,
        HttpClientError::ResponseTimeout(_) => Error::HttpResponseTimeout,
        HttpClientError::Tls(_) => Error::TlsProtocolError,
        HttpClientError::ResponseTooLarge(limit) => Error::HttpResponseBodySize(Some(limit)),
        HttpClientError::Other(message) => Error::InternalError(Some(message)),
    }
}
