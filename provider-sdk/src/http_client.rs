//! Outgoing HTTP: components calling the web through a provider (`wasi:http/outgoing-handler`).
//!
//! A component that imports `wasi:http/outgoing-handler` on a lattice host does not get a
//! socket. Its request goes to the provider its link for that interface targets, which
//! decides whether the destination is allowed (the link's `allowed_hosts`) and sends it:
//!
//! ```text
//! component ── outgoing-handler.handle(req) ──▶ host ── link (default) ──▶ HttpClient::send
//!                                                     in-process call or a NATS call
//! ```
//!
//! Requests and responses cross whole ([`OutgoingRequest`], [`HttpResponse`]): bodies are
//! buffered, bounded by the provider's limits. A refusal or failure is an [`HttpClientError`],
//! which the host turns into the matching `wasi:http` `error-code` for the guest (a refused
//! host is `HTTP-request-denied`); the message goes to the host's log.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::http::HttpResponse;
use crate::link::CallContext;

/// The interface a component imports to send HTTP requests.
pub const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler";
/// The function name of a request on [`OUTGOING_HANDLER`].
pub const HANDLE: &str = "handle";
/// The interfaces an HTTP client provider serves (`ns:pkg/iface`).
pub const INTERFACES: [&str; 1] = [OUTGOING_HANDLER];

/// One request a component sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingRequest {
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// `host` or `host:port`.
    pub authority: String,
    /// Path and query, e.g. `/orders?limit=5`.
    pub path_and_query: String,
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// How long the component allows for connecting, in milliseconds.
    pub connect_timeout_ms: Option<u64>,
    /// How long the component allows until the response starts, in milliseconds.
    pub first_byte_timeout_ms: Option<u64>,
}

impl OutgoingRequest {
    /// The URL the request goes to.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme, self.authority, self.path_and_query
        )
    }
}

/// Why a request was not sent or got no response. Each maps to one `wasi:http` error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum HttpClientError {
    /// The link's allow-list does not admit the destination.
    #[error("{0}")]
    Denied(String),
    /// The request cannot be sent as it is (bad URL, method or header).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The host name does not resolve.
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// Nothing listens at the destination.
    #[error("connection refused: {0}")]
    ConnectionRefused(String),
    /// Connecting took longer than allowed.
    #[error("connecting timed out: {0}")]
    ConnectionTimeout(String),
    /// The response did not arrive in time.
    #[error("the response timed out: {0}")]
    ResponseTimeout(String),
    /// TLS failed (certificate, handshake).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The response body is larger than the provider allows (the limit, in bytes).
    #[error("the response body exceeds {0} bytes")]
    ResponseTooLarge(u64),
    /// Anything else, with what happened.
    #[error("{0}")]
    Other(String),
}

/// Sends HTTP requests for components.
#[async_trait]
pub trait HttpClient: Send + Sync + 'static {
    /// Sends `request` for the component and link in `cx`.
    async fn send(
        &self,
        cx: &CallContext,
        request: OutgoingRequest,
    ) -> Result<HttpResponse, HttpClientError>;
}

/// Whether `authority` (`host` or `host:port`, for `scheme`) matches one of `patterns`.
///
/// A pattern is `*` (anything), `host`, `host:port`, `*.domain` (any subdomain, not the
/// domain itself) or `*.domain:port`. A pattern without a port matches any port. Host names
/// compare case-insensitively; IPv6 literals are written in brackets (`[::1]:8080`).
pub fn host_allowed(patterns: &[String], scheme: &str, authority: &str) -> bool {
    let (host, port) = split_authority(authority, scheme);
    patterns.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern == "*" {
            return true;
        }
        let (pattern_host, pattern_port) = match pattern.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && p.parse::<u16>().is_ok() && !h.is_empty() => {
                (h.to_string(), p.parse::<u16>().ok())
            }
            _ => (pattern.clone(), None),
        };
        if pattern_port.is_some_and(|p| Some(p) != port) {
            return false;
        }
        match pattern_host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => host == pattern_host,
        }
    })
}

/// `(lowercase host, port)` of an authority; the port defaults from the scheme.
fn split_authority(authority: &str, scheme: &str) -> (String, Option<u16>) {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default_port = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, tail)) => (
                format!("[{ip}]"),
                tail.strip_prefix(':').and_then(|p| p.parse().ok()),
            ),
            None => (authority.to_string(), None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()),
            None => (authority.to_string(), None),
        }
    };
    (host.to_ascii_lowercase(), port.or(default_port))
}

/// Splits an `allowed_hosts` setting (comma- or whitespace-separated patterns).
pub fn parse_allowed_hosts(setting: &str) -> Vec<String> {
    setting
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(patterns: &str, scheme: &str, authority: &str) -> bool {
        host_allowed(&parse_allowed_hosts(patterns), scheme, authority)
    }

    #[test]
    fn exact_hosts_match_any_port_unless_one_is_given() {
        assert!(allowed("example.com", "https", "example.com"));
        assert!(allowed("example.com", "http", "EXAMPLE.com:8080"));
        assert!(!allowed("example.com", "https", "example.org"));
        assert!(!allowed("example.com", "https", "evil-example.com"));
        assert!(allowed("127.0.0.1:8080", "http", "127.0.0.1:8080"));
        assert!(!allowed("127.0.0.1:8080", "http", "127.0.0.1:8081"));
        assert!(allowed("example.com:443", "https", "example.com"));
        assert!(!allowed("example.com:443", "http", "example.com"));
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        assert!(allowed("*.example.com", "https", "api.example.com"));
        assert!(allowed("*.example.com", "https", "a.b.example.com"));
        assert!(!allowed("*.example.com", "https", "example.com"));
        assert!(!allowed("*.example.com", "https", "badexample.com"));
        assert!(allowed("*", "http", "anything:1"));
        assert!(!allowed("", "http", "anything"));
    }

    #[test]
    fn ipv6_and_userinfo_are_handled() {
        assert!(allowed("[::1]:8080", "http", "[::1]:8080"));
        assert!(allowed("[::1]", "http", "[::1]:9"));
        assert!(!allowed("[::1]:8080", "http", "[::1]:9"));
        assert!(allowed("example.com", "http", "user:pw@example.com"));
        assert!(!allowed("user", "http", "user:pw@example.com"));
    }

    #[test]
    fn lists_split_on_commas_and_spaces() {
        assert_eq!(
            parse_allowed_hosts(" a.com, *.b.org  c:1,,"),
            vec!["a.com", "*.b.org", "c:1"]
        );
    }
}
