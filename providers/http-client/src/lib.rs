//! `wasi:http/outgoing-handler`: components send HTTP requests, to the hosts their link
//! allows and nowhere else.
//!
//! A component on a lattice host has no sockets. When it imports
//! `wasi:http/outgoing-handler`, each request it sends goes to the provider its link for that
//! interface targets; this provider checks the destination against the link's allow-list,
//! sends the request, and returns the whole response.
//!
//! ```text
//! trellis config put fetch-hosts allowed_hosts='api.example.com,*.example.org'
//! trellis link put fetcher http-client wasi:http --interface outgoing-handler \
//!     --target-config fetch-hosts
//! ```
//!
//! # Link target config
//!
//! | key                  | default      | meaning                                                  |
//! |----------------------|--------------|----------------------------------------------------------|
//! | `allowed_hosts`      | (none)       | comma-separated patterns: `host`, `host:port`, `*.domain`, `*` |
//! | `max_response_bytes` | `16777216`   | a larger response body fails with `HTTP-response-body-size` |
//! | `timeout_ms`         | `30000`      | the most a request may take, from connecting to the last byte |
//!
//! A link without `allowed_hosts` allows nothing: every request through it is refused
//! (`HTTP-request-denied` for the component, the reason in the log), so a component reaches
//! the network only where an operator said it may. A pattern without a port matches any port;
//! `*.example.org` matches its subdomains, not `example.org` itself.
//!
//! # Behaviour
//!
//! - Redirects are not followed: the component sees the 3xx and decides (each hop it takes is
//!   checked against the allow-list again).
//! - Connections are pooled per provider instance; TLS uses the Mozilla root store
//!   (`webpki-roots`), so the provider needs no CA files from the machine.
//! - The component's `first-byte-timeout` shortens the link's `timeout_ms` when it is
//!   smaller; connecting is bounded by 10 s.

use std::sync::Arc;
use std::time::Duration;

use trellis_provider_sdk::http::HttpResponse;
use trellis_provider_sdk::http_client::{
    HttpClient, HttpClientError, OutgoingRequest, host_allowed, parse_allowed_hosts,
};
use trellis_provider_sdk::link::{positive_setting, setting};
use trellis_provider_sdk::{
    CallContext, Capabilities, InitContext, LinkConfig, LinkTable, Provider, ProviderError,
    ProviderIdCell, async_trait,
};

/// Response bodies larger than this fail unless the link sets `max_response_bytes`.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// How long a request may take unless the link sets `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: usize = 30_000;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Request headers the client sets itself (from the URL and the body).
const HOP_BY_HOP: [&str; 5] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
];

/// What one link allows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkPolicy {
    allowed_hosts: Vec<String>,
    max_response_bytes: usize,
    timeout: Duration,
}

impl LinkPolicy {
    fn from_config(link: &LinkConfig) -> Result<Self, ProviderError> {
        let config = &link.target_config;
        let allowed_hosts = setting(config, &["allowed_hosts"])
            .map(parse_allowed_hosts)
            .unwrap_or_default();
        Ok(Self {
            allowed_hosts,
            max_response_bytes: positive_setting(
                config,
                "max_response_bytes",
                DEFAULT_MAX_RESPONSE_BYTES,
            )?,
            timeout: Duration::from_millis(positive_setting(
                config,
                "timeout_ms",
                DEFAULT_TIMEOUT_MS,
            )? as u64),
        })
    }
}

/// The `http-client` provider.
pub struct HttpClientProvider {
    client: reqwest::Client,
    links: LinkTable<LinkPolicy>,
    provider_id: ProviderIdCell,
}

impl Default for HttpClientProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClientProvider {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            // Building fails only when TLS cannot initialise; a client without TLS then still
            // serves plain HTTP and https requests fail with a TLS error.
            .unwrap_or_else(|e| {
                tracing::error!("http-client: TLS unavailable ({e}); https requests will fail");
                reqwest::Client::new()
            });
        Self {
            client,
            links: LinkTable::new(),
            provider_id: ProviderIdCell::default(),
        }
    }

    fn policy(&self, cx: &CallContext) -> Result<Arc<LinkPolicy>, HttpClientError> {
        self.links.get(cx).ok_or_else(|| {
            let (component, link) = (&cx.source_id, &cx.link_name);
            HttpClientError::Denied(format!(
                "component `{component}` has no link named `{link}` to the http-client provider: \
                 put one with `trellis link put {component} {} wasi:http --interface \
                 outgoing-handler --link-name {link} --target-config NAME` (NAME holding \
                 `allowed_hosts=HOST,...`)",
                self.provider_id.get()
            ))
        })
    }
}

/// The refusal for a destination the link does not allow.
fn denied(cx: &CallContext, policy: &LinkPolicy, request: &OutgoingRequest) -> HttpClientError {
    let (component, link) = (&cx.source_id, &cx.link_name);
    let allowed = if policy.allowed_hosts.is_empty() {
        "it allows no host: set `allowed_hosts` in the link's target config (e.g. \
         `allowed_hosts=api.example.com,*.example.org`, or `*` for any)"
            .to_string()
    } else {
        format!(
            "it allows only `{}`; add the host to the link's `allowed_hosts`",
            policy.allowed_hosts.join(",")
        )
    };
    HttpClientError::Denied(format!(
        "component `{component}` may not reach `{}` through link `{link}`: {allowed}",
        request.authority
    ))
}

/// The most specific error a failed `reqwest` call stands for.
fn classify(url: &str, error: &reqwest::Error) -> HttpClientError {
    let mut chain = String::new();
    let mut refused = false;
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        chain.push_str(": ");
        chain.push_str(&e.to_string());
        source = e.source();
    }
    let what = format!("{url}{chain}");
    let lower = chain.to_ascii_lowercase();
    if error.is_builder() {
        HttpClientError::InvalidRequest(what)
    } else if error.is_timeout() && error.is_connect() {
        HttpClientError::ConnectionTimeout(what)
    } else if error.is_timeout() {
        HttpClientError::ResponseTimeout(what)
    } else if refused {
        HttpClientError::ConnectionRefused(what)
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        HttpClientError::Dns(what)
    } else if lower.contains("certificate") || lower.contains("tls") {
        HttpClientError::Tls(what)
    } else {
        HttpClientError::Other(what)
    }
}

impl HttpClientProvider {
    async fn fetch(
        &self,
        policy: &LinkPolicy,
        request: OutgoingRequest,
    ) -> Result<HttpResponse, HttpClientError> {
        let url = request.url();
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| HttpClientError::InvalidRequest(format!("method `{}`", request.method)))?;
        let timeout = match request.first_byte_timeout_ms {
            Some(ms) => policy.timeout.min(Duration::from_millis(ms)),
            None => policy.timeout,
        };
        let mut builder = self.client.request(method, &url).timeout(timeout);
        for (name, value) in request.headers {
            if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                continue;
            }
            builder = builder.header(name, value.into_vec());
        }
        let mut response = builder
            .body(request.body)
            .send()
            .await
            .map_err(|e| classify(&url, &e))?;
        let limit = policy.max_response_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(HttpClientError::ResponseTooLarge(limit as u64));
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    serde_bytes::ByteBuf::from(v.as_bytes().to_vec()),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&url, &e))? {
            if body.len() + chunk.len() > limit {
                return Err(HttpClientError::ResponseTooLarge(limit as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

#[async_trait]
impl HttpClient for HttpClientProvider {
    async fn send(
        &self,
        cx: &CallContext,
        request: OutgoingRequest,
    ) -> Result<HttpResponse, HttpClientError> {
        let policy = self.policy(cx)?;
        if request.scheme != "http" && request.scheme != "https" {
            return Err(HttpClientError::InvalidRequest(format!(
                "scheme `{}` (only http and https are sent)",
                request.scheme
            )));
        }
        if !host_allowed(&policy.allowed_hosts, &request.scheme, &request.authority) {
            let refusal = denied(cx, &policy, &request);
            tracing::warn!(component = %cx.source_id, link = %cx.link_name, "{refusal}");
            return Err(refusal);
        }
        let result = self.fetch(&policy, request).await;
        if let Err(e) = &result {
            tracing::debug!(component = %cx.source_id, "http-client: {e}");
        }
        result
    }
}

#[async_trait]
impl Provider for HttpClientProvider {
    async fn init(&self, init: &InitContext) -> Result<(), ProviderError> {
        self.provider_id.remember(init);
        Ok(())
    }

    async fn receive_link_config_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let policy = LinkPolicy::from_config(link)?;
        if policy.allowed_hosts.is_empty() {
            tracing::warn!(
                component = %link.source_id,
                link = %link.link_name,
                "http-client link without `allowed_hosts`: every request through it is refused"
            );
        }
        self.links.insert(link.target_key(), policy);
        Ok(())
    }

    async fn delete_link_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        self.links.remove(&link.target_key());
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ProviderError> {
        self.links.drain();
        Ok(())
    }

    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities {
            http_client: Some(self),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests;
