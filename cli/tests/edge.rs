//! The edge over a NATS leaf node (DESIGN §6): a hub `nats-server` with JetStream in the
//! domain `hub`, a leaf `nats-server` (no JetStream) whose leafnode remote is the hub, a host
//! on each. One lattice spans both; the edge host reaches the lattice state through
//! `--js-domain hub`, and keeps serving what it runs while the hub is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::two_hosts::{ok, scale_and_wait};
use common::{HostProcess, call, trellis, trellis_json, wait_for_hosts};
use trellis_testing::Signer;
use trellis_testing::nats::{NatsServer, free_port};

/// Retries a call until it answers `want` (bounded, generous).
fn call_until(url: &str, args: &[&str], want: serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = call(url, args);
        if answer.as_ref() == Ok(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "trellis call {args:?} on {url}: {answer:?}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `zone` labels of the hosts listed from `url`, sorted, once `want` of them answer.
fn zones(url: &str, want: usize) -> Vec<String> {
    let mut zones: Vec<String> = wait_for_hosts(url, want)
        .iter()
        .map(|h| h["labels"]["zone"].as_str().unwrap_or_default().to_string())
        .collect();
    zones.sort();
    zones
}

/// One HTTP/1.0 GET with a Host header; returns (status, body), or an error when the
/// connection fails.
fn http_get(addr: &str, host: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET / HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Waits until the leaf server has (re)established its link to the hub `times` times in all.
fn wait_for_leaf_link(leaf: &NatsServer, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while leaf.log().matches("Leafnode connection created").count() < times {
        assert!(
            Instant::now() < deadline,
            "the leaf never linked to the hub:\n{}",
            leaf.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_lattice_spans_hub_and_leaf_and_the_edge_serves_while_the_hub_is_down() {
    let mut hub = NatsServer::start_hub("hub").unwrap();
    let leaf = NatsServer::start_leaf(&hub).unwrap();
    wait_for_leaf_link(&leaf, 1);
    let (hub_url, leaf_url) = (hub.url(), leaf.url());

    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let sign = |guest: &str, name: &str, grants: &[&str]| {
        let wasm = trellis_testing::guest(guest).unwrap();
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, signer.sign(&wasm, name, grants).unwrap()).unwrap();
        format!("file://{}", path.display())
    };
    let greeter = sign("greeter", "greeter", &["wasi:config/store"]);
    let relay = sign("relay", "relay", &["trellis:test/greet"]);
    let hello = sign("http_hello", "hello", &[]);
    let issuer = signer.public_key();

    let http = format!("127.0.0.1:{}", free_port().unwrap());
    let edge_log = dir.path().join("edge-host.log");
    let _cloud = HostProcess::start_with(&hub_url, &["zone=cloud"], Some(&issuer), &[]);
    let _edge = HostProcess::start_logging(
        &leaf_url,
        &["zone=edge"],
        Some(&issuer),
        &["--js-domain", "hub", "--http", &http],
        std::fs::File::create(&edge_log).unwrap(),
    );
    let edge_log = || std::fs::read_to_string(&edge_log).unwrap_or_default();

    // One lattice: a client of either server sees both hosts.
    assert_eq!(zones(&hub_url, 2), ["cloud", "edge"], "{}", edge_log());
    assert_eq!(zones(&leaf_url, 2), ["cloud", "edge"], "{}", edge_log());
    let hosts = wait_for_hosts(&hub_url, 2);
    let id = |zone: &str| {
        hosts.iter().find(|h| h["labels"]["zone"] == zone).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (cloud, edge) = (id("cloud"), id("edge"));

    // Commands from the hub side; the edge host reads the named config from the hub's
    // JetStream (through the leaf) when it scales.
    ok(&hub_url, &["config", "put", "site", "site=edge"]);
    scale_and_wait(&hub_url, &edge, &greeter, "greeter", &["site"]);
    scale_and_wait(&hub_url, &edge, &hello, "hello", &[]);
    scale_and_wait(&hub_url, &cloud, &relay, "relay", &[]);
    // A link written from the leaf side lands in the hub's bucket and reaches both mirrors.
    ok(
        &leaf_url,
        &[
            "link",
            "put",
            "relay",
            "greeter",
            "trellis:test",
            "--interface",
            "greet",
        ],
    );
    let links: Vec<serde_json::Value> = trellis_json(&hub_url, &["get", "links"]);
    assert_eq!(links.len(), 1, "{links:?}");

    // A call from the hub side is served at the edge, directly and host to host.
    let greet = ["greeter", "trellis:test/greet.greet", "hub"];
    assert_eq!(
        call(&hub_url, &greet).unwrap(),
        serde_json::json!(["hello hub from edge"])
    );
    call_until(
        &hub_url,
        &["relay", "trellis:test/relay.relay", "cloud"],
        serde_json::json!(["hello cloud from edge"]),
    );
    // The edge host serves HTTP locally.
    assert_eq!(
        http_get(&http, "hello").unwrap(),
        (200, "Hello from Trellis!\n".to_string())
    );

    // The link to the hub goes down (the hub dies): the edge keeps serving local requests.
    hub.kill();
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let answer = http_get(&http, "hello");
        assert_eq!(
            answer.as_ref().ok(),
            Some(&(200, "Hello from Trellis!\n".to_string())),
            "request {served} after the hub went down: {answer:?}\n{}",
            edge_log()
        );
        served += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(served >= 10, "{served}");
    // The edge half of the lattice still answers its own clients, calls included.
    assert_eq!(zones(&leaf_url, 1), ["edge"]);
    assert_eq!(
        call(&leaf_url, &["greeter", "trellis:test/greet.greet", "leaf"]).unwrap(),
        serde_json::json!(["hello leaf from edge"])
    );

    // The hub comes back (same ports, same JetStream store): the leaf relinks, both sides
    // list both hosts again, and hub-side calls and state changes reach the edge again.
    hub.restart().unwrap();
    wait_for_leaf_link(&leaf, 2);
    assert_eq!(zones(&hub_url, 2), ["cloud", "edge"], "{}", edge_log());
    assert_eq!(zones(&leaf_url, 2), ["cloud", "edge"], "{}", edge_log());
    call_until(&hub_url, &greet, serde_json::json!(["hello hub from edge"]));
    ok(&hub_url, &["config", "put", "site", "site=edge-again"]);
    call_until(
        &hub_url,
        &["relay", "trellis:test/relay.relay", "cloud"],
        serde_json::json!(["hello cloud from edge-again"]),
    );
    assert_eq!(http_get(&http, "hello").unwrap().0, 200);
}

#[test]
fn without_the_hub_domain_a_host_on_the_leaf_cannot_reach_jetstream_and_says_why() {
    // nats-server keeps the default `$JS.API.>` / `$KV.>` of a leaf's clients off the link to
    // the hub (it denies them on the leaf connection), so the edge host must name the domain.
    let hub = NatsServer::start_hub("hub").unwrap();
    let leaf = NatsServer::start_leaf(&hub).unwrap();
    wait_for_leaf_link(&leaf, 1);
    let out = trellis(&leaf.url())
        .args(["host", "--label", "zone=edge"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the lattice state") && stderr.contains("--js-domain"),
        "{stderr}"
    );
}
