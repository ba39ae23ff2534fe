//! Outgoing HTTP through the `http-client` provider: a component fetches URLs, the link's
//! `allowed_hosts` decides where it may go. The same test body runs with the provider inside
//! each host and as its own process, against a real HTTP server on a local socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::two_hosts::{Mode, TwoHosts, ok, reference, request, signed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP/1.1 server answering every request with `200 upstream says hi`; its address.
async fn upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "upstream says hi";
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

async fn fetch(lattice: &TwoHosts, host: usize, component: &str, url: &str) -> (u16, String) {
    let client = reqwest::Client::new();
    let path = format!("/fetch?url={url}");
    let addr = &lattice.http[host];
    request(&client, addr, component, reqwest::Method::GET, &path, None).await
}

async fn outgoing_http_goes_where_the_link_allows(mode: Mode) {
    let lattice = TwoHosts::start();
    let url = lattice.url();
    let upstream = upstream().await;
    let fetcher = signed(
        &lattice.signer,
        &lattice.dir,
        "fetch",
        &["wasi:http/outgoing-handler"],
    );
    ok(
        &url,
        &[
            "config",
            "put",
            "fetch-hosts",
            &format!("allowed_hosts=example.com, 127.0.0.1:{}", upstream.port()),
        ],
    );
    lattice.provider_everywhere(&reference("http-client", mode), "http-client");
    lattice.component_everywhere(&fetcher, "fetch", &[]);
    lattice.component_everywhere(&fetcher, "unlinked", &[]);
    ok(
        &url,
        &[
            "link",
            "put",
            "fetch",
            "http-client",
            "wasi:http",
            "--interface",
            "outgoing-handler",
            "--target-config",
            "fetch-hosts",
        ],
    );

    let allowed = format!("http://{upstream}/hello");
    for host in 0..2 {
        let (status, body) = fetch(&lattice, host, "fetch", &allowed).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "200\nupstream says hi"),
            "host {host}"
        );
    }

    // The same server under a name the list does not hold, and a port it does not hold.
    let other_name = format!("http://localhost:{}/hello", upstream.port());
    let (status, body) = fetch(&lattice, 0, "fetch", &other_name).await;
    assert_eq!(
        (status, body.as_str()),
        (502, "error: ErrorCode::HttpRequestDenied")
    );
    let other_port = format!("http://127.0.0.1:{}/", upstream.port().wrapping_add(1));
    let (status, body) = fetch(&lattice, 1, "fetch", &other_port).await;
    assert_eq!(
        (status, body.as_str()),
        (502, "error: ErrorCode::HttpRequestDenied")
    );

    // No link: the component is told which link to put.
    let (status, body) = fetch(&lattice, 0, "unlinked", &allowed).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains(
            "component `unlinked` has no link `default` for `wasi:http/outgoing-handler`"
        ),
        "{body}"
    );
    assert!(body.contains("trellis link put unlinked"), "{body}");

    // Deleting the link takes the access away.
    ok(&url, &["link", "del", "fetch", "wasi:http"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = fetch(&lattice, 1, "fetch", &allowed).await;
        if status == 502 && body.contains("has no link") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still allowed: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_http_through_the_http_client_provider_in_process() {
    outgoing_http_goes_where_the_link_allows(Mode::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_http_through_the_http_client_provider_out_of_process() {
    outgoing_http_goes_where_the_link_allows(Mode::OutOfProcess).await;
}
