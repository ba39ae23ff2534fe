//! The provider against a real HTTP server on a local socket.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};

use super::*;

/// Serves: `/echo` (method, path and body back), `/big` (1 MiB), `/slow` (answers after
/// 2 s), `/redirect` (302 to /echo).
async fn server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_string();
                        let method = req.method().to_string();
                        let header = req
                            .headers()
                            .get("x-trace")
                            .map(|v| v.to_str().unwrap_or("").to_string())
                            .unwrap_or_default();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let response = match path.as_str() {
                            "/big" => Response::new(Full::new(Bytes::from(vec![b'x'; 1 << 20]))),
                            "/slow" => {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                Response::new(Full::new(Bytes::from_static(b"late")))
                            }
                            "/redirect" => Response::builder()
                                .status(302)
                                .header("location", "/echo")
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                            _ => {
                                let mut text = format!("{method} {path} {header} ").into_bytes();
                                text.extend_from_slice(&body);
                                Response::builder()
                                    .status(201)
                                    .header("x-served-by", "test")
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap()
                            }
                        };
                        Ok::<_, Infallible>(response)
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    addr
}

async fn provider(config: &[(&str, &str)]) -> HttpClientProvider {
    let provider = HttpClientProvider::new();
    let link = LinkConfig {
        source_id: "fetcher".into(),
        target: "http-client".into(),
        link_name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: vec!["outgoing-handler".into()],
        source_config: BTreeMap::new(),
        target_config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    provider.receive_link_config_as_target(&link).await.unwrap();
    provider
}

fn request(authority: &str, path: &str) -> OutgoingRequest {
    OutgoingRequest {
        method: "POST".into(),
        scheme: "http".into(),
        authority: authority.into(),
        path_and_query: path.into(),
        headers: vec![
            (
                "x-trace".into(),
                serde_bytes::ByteBuf::from(b"t-1".to_vec()),
            ),
            ("host".into(), serde_bytes::ByteBuf::from(b"bogus".to_vec())),
        ],
        body: b"hello".to_vec(),
        connect_timeout_ms: None,
        first_byte_timeout_ms: None,
    }
}

fn cx() -> CallContext {
    CallContext::new("fetcher", "default")
}

#[tokio::test]
async fn an_allowed_host_is_fetched_with_method_headers_and_body() {
    let addr = server().await;
    let client = provider(&[("allowed_hosts", "example.com, 127.0.0.1")]).await;
    let response = client
        .send(&cx(), request(&addr.to_string(), "/echo?q=1"))
        .await
        .unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(response.body, b"POST /echo t-1 hello");
    assert!(
        response
            .headers
            .iter()
            .any(|(k, v)| k == "x-served-by" && v.as_slice() == b"test")
    );
}

#[tokio::test]
async fn hosts_outside_the_allow_list_are_refused_with_the_fix() {
    let addr = server().await;
    let client = provider(&[("allowed_hosts", "*.example.com,127.0.0.1:1")]).await;
    let err = client
        .send(&cx(), request(&addr.to_string(), "/echo"))
        .await
        .unwrap_err();
    let HttpClientError::Denied(message) = err else {
        panic!("expected a refusal, got {err:?}");
    };
    assert!(
        message.contains(&format!("may not reach `{addr}`")),
        "{message}"
    );
    assert!(message.contains("*.example.com,127.0.0.1:1"), "{message}");

    let client = provider(&[]).await;
    let err = client
        .send(&cx(), request(&addr.to_string(), "/echo"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HttpClientError::Denied(m) if m.contains("allows no host")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unknown_link_is_refused_naming_it() {
    let client = provider(&[("allowed_hosts", "*")]).await;
    let err = client
        .send(
            &CallContext::new("other", "special"),
            request("a.test", "/"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HttpClientError::Denied(m)
            if m.contains("`other` has no link named `special`")),
        "{err:?}"
    );
}

#[tokio::test]
async fn limits_and_failures_map_to_typed_errors() {
    let addr = server().await;
    let client = provider(&[
        ("allowed_hosts", "127.0.0.1"),
        ("max_response_bytes", "1000"),
        ("timeout_ms", "300"),
    ])
    .await;
    let authority = addr.to_string();
    assert_eq!(
        client.send(&cx(), request(&authority, "/big")).await,
        Err(HttpClientError::ResponseTooLarge(1000))
    );
    let slow = client.send(&cx(), request(&authority, "/slow")).await;
    assert!(
        matches!(slow, Err(HttpClientError::ResponseTimeout(_))),
        "{slow:?}"
    );
    let redirect = client
        .send(&cx(), request(&authority, "/redirect"))
        .await
        .unwrap();
    assert_eq!(redirect.status, 302, "redirects are not followed");

    // A port nothing listens on: bind one, then close it.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let refused = client
        .send(&cx(), request(&closed_addr.to_string(), "/"))
        .await;
    assert!(
        matches!(refused, Err(HttpClientError::ConnectionRefused(_))),
        "{refused:?}"
    );

    let mut bad = request(&authority, "/");
    bad.scheme = "ftp".into();
    assert!(matches!(
        client.send(&cx(), bad).await,
        Err(HttpClientError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn bad_link_settings_are_refused_at_link_time() {
    let provider = HttpClientProvider::new();
    let link = LinkConfig {
        source_id: "fetcher".into(),
        link_name: "default".into(),
        target_config: BTreeMap::from([("timeout_ms".into(), "soon".into())]),
        ..LinkConfig::default()
    };
    let err = provider
        .receive_link_config_as_target(&link)
        .await
        .unwrap_err();
    assert!(err.0.contains("`timeout_ms`"), "{err}");
}
