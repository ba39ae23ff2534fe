//! An edge host on ARM (DESIGN §6): the `aarch64-unknown-linux-gnu` build of `trellis`
//! (`scripts/build-aarch64`), run under qemu-user, joins the same lattice as a native host
//! and serves a component that wadm places on it through a `zone=edge` spread.
//!
//! Emulation makes it slow (minutes: the component is compiled by an emulated Cranelift), so it
//! only runs with `TRELLIS_TEST_AARCH64=1`; otherwise it says so and passes. Overrides:
//! `TRELLIS_AARCH64_BINARY` (default `target/aarch64-unknown-linux-gnu/release/trellis`),
//! `TRELLIS_QEMU_AARCH64` (default `qemu-aarch64`), `TRELLIS_AARCH64_SYSROOT` (default
//! `/usr/aarch64-linux-gnu`, where Debian's cross toolchain keeps the ARM glibc). The emulated
//! host runs with `--max-instances 16` (see below).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::two_hosts::{ok, signed};
use common::{HostProcess, get_hosts, trellis, trellis_json};
use trellis_testing::Signer;
use trellis_testing::nats::{NatsServer, free_port};

/// Generous: an emulated host compiles the component with an emulated compiler.
const EMULATED: Duration = Duration::from_secs(900);

fn env_or(name: &str, default: impl Into<PathBuf>) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| default.into())
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.0 GET with a Host header; (status, body), or `None` while nothing answers.
fn http_get(addr: &str, host: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    write!(
        stream,
        "GET / HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

#[test]
fn an_aarch64_host_under_qemu_joins_the_lattice_and_serves_what_an_edge_spread_places() {
    if std::env::var("TRELLIS_TEST_AARCH64").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set TRELLIS_TEST_AARCH64=1 to run the aarch64 host under qemu \
             (build it first with scripts/build-aarch64; see docs/EDGE.md)"
        );
        return;
    }
    let binary = env_or(
        "TRELLIS_AARCH64_BINARY",
        trellis_testing::repo_root().join("target/aarch64-unknown-linux-gnu/release/trellis"),
    );
    assert!(
        binary.is_file(),
        "{} is missing: run scripts/build-aarch64",
        binary.display()
    );
    let qemu = env_or("TRELLIS_QEMU_AARCH64", "qemu-aarch64");
    let sysroot = env_or("TRELLIS_AARCH64_SYSROOT", "/usr/aarch64-linux-gnu");

    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let issuer = signer.public_key();
    let _cloud = HostProcess::start_with(&url, &["zone=cloud"], Some(&issuer), &[]);

    let http = format!("127.0.0.1:{}", free_port().unwrap());
    let log_path = dir.path().join("aarch64-host.log");
    let started = Instant::now();
    let _edge = Killed(
        Command::new(&qemu)
            .arg("-L")
            .arg(&sysroot)
            .arg(&binary)
            .args([
                "host",
                "--heartbeat-interval",
                "500ms",
                "--label",
                "zone=edge",
            ])
            .args(["--trusted-issuer", &issuer, "--http", &http])
            .args(["--connect-timeout", "60s"])
            // qemu-user 7.2 (Debian 12) takes many minutes to reserve the address space of the
            // default 1000 pooling slots (about 4 TiB); a handful start in about a second.
            .args(["--max-instances", "16"])
            .env("TRELLIS_NATS_URL", &url)
            .env("TRELLIS_LATTICE", "test")
            .env("TRELLIS_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("TRELLIS_LABELS")
            // Its own compile cache: the first request pays for a cold compile.
            .env("TRELLIS_CACHE_DIR", dir.path().join("aarch64-cache"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", qemu.display())),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Both hosts in one lattice; the emulated one says what it runs on.
    let edge = loop {
        let hosts = get_hosts(&url);
        if hosts.len() == 2
            && let Some(edge) = hosts.iter().find(|h| h["labels"]["zone"] == "edge")
        {
            break edge.clone();
        }
        assert!(
            started.elapsed() < EMULATED,
            "the aarch64 host never joined: {hosts:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let joined = started.elapsed();
    assert_eq!(edge["labels"]["hostcore.arch"], "aarch64", "{edge}");
    let edge_id = edge["id"].as_str().unwrap().to_string();

    let _wadm = Killed(
        trellis(&url)
            .arg("wadm")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let hello = signed(&signer, &dir, "http_hello", &[]);
    let greeter = signed(&signer, &dir, "greeter", &["wasi:config/store"]);
    let manifest = dir.path().join("edge.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: edge
  annotations:
    version: v1
spec:
  components:
    - name: web
      type: component
      properties:
        image: {hello}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
            spread:
              - name: edge
                requirements: {{zone: edge}}
    - name: greeter
      type: component
      properties:
        image: {greeter}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
            spread:
              - name: edge
                requirements: {{zone: edge}}
"#
        ),
    )
    .unwrap();
    let deploying = Instant::now();
    let timeout = format!("{}s", EMULATED.as_secs());
    let out = ok(
        &url,
        &[
            "app",
            "deploy",
            manifest.to_str().unwrap(),
            "--wait",
            "--timeout",
            &timeout,
        ],
    );
    let deployed = deploying.elapsed();
    assert!(out.contains("deployed"), "{out}\n{}", log());

    // Placed on the aarch64 host only.
    let inventory: serde_json::Value = trellis_json(&url, &["get", "inventory", &edge_id]);
    let mut ids: Vec<&str> = inventory["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["edge-greeter", "edge-web"], "{inventory}");

    // Served by the aarch64 host's own router, Host header = `{app}-{name}`.
    let answer = loop {
        match http_get(&http, "edge-web") {
            Some((200, body)) => break body,
            other => assert!(
                deploying.elapsed() < EMULATED,
                "the aarch64 host never served edge-web: {other:?}\n{}",
                log()
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let first_request = deploying.elapsed();
    assert_eq!(answer, "Hello from Trellis!\n");
    // A lattice call from the native side (signed there, verified on ARM) is served there.
    let call = trellis(&url)
        .args(["call", "edge-greeter", "trellis:test/greet.greet", "arm"])
        .args(["--output", "json", "--timeout", "60s"])
        .output()
        .unwrap();
    assert!(
        call.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&call.stderr),
        log()
    );
    let answer: serde_json::Value = serde_json::from_slice(&call.stdout).unwrap();
    assert_eq!(answer, serde_json::json!(["hello arm from unknown"]));
    let again = Instant::now();
    assert_eq!(
        http_get(&http, "edge-web"),
        Some((200, "Hello from Trellis!\n".to_string()))
    );
    eprintln!(
        "aarch64 under qemu: joined the lattice after {joined:.1?}; deployed (--wait) after \
         {deployed:.1?}; first request served {first_request:.1?} after the deploy started; \
         next request {:.1?}",
        again.elapsed()
    );
}
