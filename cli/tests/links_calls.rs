//! Links, named config and calls between components across hosts, through the `trellis`
//! binary, on a private nats-server with JetStream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::two_hosts::{ok, run, scale_and_wait};
use common::{HostProcess, call, trellis_json, wait_for_hosts};
use trellis_testing::Signer;
use trellis_testing::nats::{NatsServer, free_port};

/// Signed copies of the fixtures, as `file://` references.
struct Fixtures {
    _dir: tempfile::TempDir,
    signer: Signer,
    greeter: String,
    relay: String,
    config_logging: String,
    hello: String,
}

impl Fixtures {
    fn new() -> Self {
        let signer = Signer::new();
        let dir = tempfile::tempdir().unwrap();
        let sign = |guest: &str, name: &str, grants: &[&str]| {
            let wasm = trellis_testing::guest(guest).unwrap();
            let path = dir.path().join(format!("{name}.wasm"));
            std::fs::write(&path, signer.sign(&wasm, name, grants).unwrap()).unwrap();
            format!("file://{}", path.display())
        };
        Self {
            greeter: sign("greeter", "greeter", &["wasi:config/store"]),
            relay: sign("relay", "relay", &["trellis:test/greet"]),
            config_logging: sign(
                "config_logging",
                "config-logging",
                &["wasi:config/store", "wasi:logging/logging"],
            ),
            hello: sign("http_hello", "hello", &[]),
            _dir: dir,
            signer,
        }
    }

    fn host(&self, url: &str, label: &str, extra: &[&str]) -> HostProcess {
        HostProcess::start_with(url, &[label], Some(&self.signer.public_key()), extra)
    }
}

/// Runs a command that must fail; returns its stderr.
fn refused(url: &str, args: &[&str]) -> String {
    let out = run(url, args);
    assert!(
        !out.status.success(),
        "trellis {args:?} should have failed, printed {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The ids of the hosts, by their `zone` label.
fn host_ids(url: &str, zones: &[&str]) -> Vec<String> {
    let hosts = wait_for_hosts(url, zones.len());
    assert_eq!(hosts.len(), zones.len(), "{hosts:?}");
    zones
        .iter()
        .map(|z| {
            hosts.iter().find(|h| h["labels"]["zone"] == *z).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn links(url: &str) -> Vec<serde_json::Value> {
    trellis_json(url, &["get", "links"])
}

#[test]
fn links_round_trip_and_invalid_links_are_refused_with_the_reason() {
    let fixtures = Fixtures::new();
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let _host = fixtures.host(&url, "zone=a", &[]);
    let [host] = &host_ids(&url, &["a"])[..] else {
        unreachable!()
    };
    ok(&url, &["config", "put", "site", "site=b"]);
    scale_and_wait(&url, host, &fixtures.greeter, "greeter", &["site"]);

    let put = ok(
        &url,
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
    assert!(put.contains("successfully set link"), "{put}");
    let listed = links(&url);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["source_id"], "relay");
    assert_eq!(listed[0]["target"], "greeter");
    assert_eq!(listed[0]["name"], "default");
    assert_eq!(listed[0]["interfaces"], serde_json::json!(["greet"]));

    // The same link again is a replacement, not a second link.
    ok(
        &url,
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
    assert_eq!(links(&url).len(), 1);

    let conflict = refused(
        &url,
        &[
            "link",
            "put",
            "relay",
            "other",
            "trellis:test",
            "--interface",
            "greet",
        ],
    );
    assert!(
        conflict.contains("conflicts with the existing link `default` from `relay` to `greeter`"),
        "{conflict}"
    );
    let missing = refused(
        &url,
        &[
            "link",
            "put",
            "relay",
            "greeter",
            "trellis:test",
            "--interface",
            "greet",
            "--source-config",
            "nope",
        ],
    );
    assert!(
        missing.contains("configuration `nope` not found"),
        "{missing}"
    );
    let ungranted = refused(
        &url,
        &[
            "link",
            "put",
            "greeter",
            "cache",
            "wasi:keyvalue",
            "--interface",
            "store",
        ],
    );
    assert!(
        ungranted.contains("component `greeter` is not granted `wasi:keyvalue/store`"),
        "{ungranted}"
    );
    assert!(
        ungranted.contains("--grant wasi:keyvalue/store"),
        "{ungranted}"
    );
    let malformed = refused(
        &url,
        &[
            "link",
            "put",
            "relay",
            "greeter",
            "nopackage",
            "--interface",
            "x",
        ],
    );
    assert!(
        malformed.contains("must be `namespace:package`"),
        "{malformed}"
    );
    assert_eq!(links(&url).len(), 1, "refused links must not be stored");

    let deleted = ok(&url, &["link", "del", "relay", "trellis:test"]);
    assert!(deleted.contains("successfully deleted link"), "{deleted}");
    assert!(links(&url).is_empty());
    // Deleting again is fine (idempotent), and says so.
    let again = ok(&url, &["link", "del", "relay", "trellis:test"]);
    assert!(again.contains("no such link"), "{again}");
}

#[test]
fn calls_cross_hosts_share_load_carry_types_and_fail_fast() {
    let fixtures = Fixtures::new();
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let _a = fixtures.host(&url, "zone=a", &[]);
    let b = fixtures.host(&url, "zone=b", &[]);
    let c = fixtures.host(&url, "zone=c", &[]);
    let ids = host_ids(&url, &["a", "b", "c"]);
    ok(&url, &["config", "put", "site-b", "site=b"]);
    ok(&url, &["config", "put", "site-c", "site=c"]);
    scale_and_wait(&url, &ids[0], &fixtures.relay, "relay", &[]);
    scale_and_wait(&url, &ids[1], &fixtures.greeter, "greeter", &["site-b"]);
    scale_and_wait(&url, &ids[2], &fixtures.greeter, "greeter", &["site-c"]);

    // Without a link the caller fails at once, naming the missing link.
    let unlinked = call(&url, &["relay", "trellis:test/relay.relay", "world"]).unwrap_err();
    assert!(
        unlinked.contains("component `relay` has no link `default` for `trellis:test/greet`"),
        "{unlinked}"
    );

    ok(
        &url,
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
    let mut sites = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..30 {
        let answer = call(&url, &["relay", "trellis:test/relay.relay", "world"]).unwrap();
        *sites
            .entry(answer[0].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        sites.keys().collect::<Vec<_>>(),
        ["hello world from b", "hello world from c"],
        "both target hosts must receive calls: {sites:?}"
    );

    // Records, enums, lists, bytes, options, variants and results cross intact.
    let greeting =
        r#"{"text":"hi","mood":"grumpy","tags":["a","b"],"bytes":[1,2,255],"count":null}"#;
    let detailed = call(
        &url,
        &["relay", "trellis:test/relay.relay-describe", greeting, "7"],
    )
    .unwrap();
    assert_eq!(
        detailed,
        serde_json::json!([{"ok": {"detailed": {
            "text": "hi", "mood": "grumpy", "tags": ["a", "b"], "bytes": [1, 2, 255], "count": 7
        }}}])
    );
    let nothing = call(
        &url,
        &["relay", "trellis:test/relay.relay-describe", greeting, "-1"],
    )
    .unwrap();
    assert_eq!(nothing, serde_json::json!([{"ok": {"nothing": null}}]));
    let error = call(
        &url,
        &["relay", "trellis:test/relay.relay-describe", greeting, "-5"],
    )
    .unwrap();
    assert_eq!(error, serde_json::json!([{"err": "negative count -5"}]));

    // A lattice client calls the target directly; bad arguments name the path to the value.
    let direct = call(&url, &["greeter", "trellis:test/greet.greet", "you"]).unwrap();
    assert!(direct[0].as_str().unwrap().starts_with("hello you from "));
    let bad = call(&url, &["greeter", "trellis:test/greet.greet", "5"]).unwrap_err();
    assert!(
        bad.contains("at arg 0: expected a string, found an integer"),
        "{bad}"
    );
    let bad_field = call(
        &url,
        &[
            "greeter",
            "trellis:test/greet.describe",
            r#"{"text":"x"}"#,
            "1",
        ],
    )
    .unwrap_err();
    assert!(
        bad_field.contains("at arg 0.mood: missing field"),
        "{bad_field}"
    );
    let no_such = call(&url, &["greeter", "trellis:test/greet.shout", "x"]).unwrap_err();
    assert!(
        no_such.contains("does not export `trellis:test/greet.shout`"),
        "{no_such}"
    );

    // The caller's deadline travels with the call: a 1 s budget stops a 30 s nap early.
    let started = Instant::now();
    let late = call(
        &url,
        &[
            "relay",
            "trellis:test/relay.relay-nap",
            "30000",
            "--timeout",
            "1s",
        ],
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the deadline was not propagated"
    );
    assert!(
        late.contains("deadline") || late.contains("timed out") || late.contains("within"),
        "{late}"
    );

    // Kill one target host: calls go to the survivor (or fail with a clear error), no hang.
    drop(c);
    let mut survivors = 0;
    for _ in 0..10 {
        let started = Instant::now();
        match call(&url, &["relay", "trellis:test/relay.relay", "again"]) {
            Ok(answer) => {
                assert_eq!(answer[0], "hello again from b");
                survivors += 1;
            }
            Err(e) => assert!(!e.is_empty()),
        }
        assert!(started.elapsed() < Duration::from_secs(15));
    }
    assert!(survivors >= 8, "the surviving instance must take the calls");

    // Kill the last target: the call fails fast and names what is missing.
    drop(b);
    let started = Instant::now();
    let absent = call(&url, &["relay", "trellis:test/relay.relay", "anyone"]).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        absent.contains("no instance of component `greeter` is running in lattice `test`"),
        "{absent}"
    );
}

/// One HTTP/1.0 GET (no chunked encoding to undo) with a Host header; returns (status, body).
fn http_get(addr: &str, host: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn config_put_reaches_a_running_component_on_its_next_requests() {
    let fixtures = Fixtures::new();
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let _host = fixtures.host(&url, "zone=a", &["--http", &addr]);
    let [host] = &host_ids(&url, &["a"])[..] else {
        unreachable!()
    };
    ok(&url, &["config", "put", "greetings", "greeting=hello"]);
    scale_and_wait(&url, host, &fixtures.config_logging, "cfg", &["greetings"]);
    assert_eq!(http_get(&addr, "cfg"), (200, "greeting=hello\n".into()));
    let shown: serde_json::Value = trellis_json(&url, &["get", "config", "greetings"]);
    assert_eq!(shown, serde_json::json!({"greeting": "hello"}));

    ok(&url, &["config", "put", "greetings", "greeting=bonjour"]);
    // The host that answered the put applies it before replying; here that is the only host,
    // so the very next request sees it.
    assert_eq!(http_get(&addr, "cfg"), (200, "greeting=bonjour\n".into()));

    ok(&url, &["config", "del", "greetings"]);
    assert_eq!(http_get(&addr, "cfg"), (200, "greeting=none\n".into()));
    let missing = refused(&url, &["get", "config", "greetings"]);
    assert!(missing.contains("no config named `greetings`"), "{missing}");
    let bad = run(&url, &["config", "put", "greetings", "novalue"]);
    assert!(!bad.status.success());
    // Scaling with a config that does not exist fails with the reason, nothing half-started.
    let out = run(
        &url,
        &[
            "scale",
            host,
            &fixtures.config_logging,
            "cfg2",
            "--count",
            "1",
            "--config",
            "absent",
        ],
    );
    assert!(
        out.status.success(),
        "the scale is accepted, then fails: {out:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let inventory: serde_json::Value = trellis_json(&url, &["get", "inventory", host]);
    assert!(
        !inventory["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "cfg2"),
        "{inventory}"
    );
}

#[test]
fn a_host_that_starts_late_converges_from_the_lattice_state() {
    let fixtures = Fixtures::new();
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let first = fixtures.host(&url, "zone=early", &[]);
    host_ids(&url, &["early"]);
    ok(&url, &["config", "put", "site-x", "site=x"]);
    ok(
        &url,
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
    assert!(first.terminate());

    // A new host, after every command was sent: it reads links and config from JetStream.
    let _late = fixtures.host(&url, "zone=late", &[]);
    let [late] = &host_ids(&url, &["late"])[..] else {
        unreachable!()
    };
    assert_eq!(
        links(&url).len(),
        1,
        "the late host answers link.get from the bucket"
    );
    scale_and_wait(&url, late, &fixtures.greeter, "greeter", &["site-x"]);
    scale_and_wait(&url, late, &fixtures.relay, "relay", &[]);
    // relay -> greeter on the same host: the link from the bucket routes it (in-process).
    let answer = call(&url, &["relay", "trellis:test/relay.relay", "late"]).unwrap();
    assert_eq!(answer, serde_json::json!(["hello late from x"]));
}

#[test]
fn after_nats_restarts_hosts_rejoin_and_serve_http_and_calls_again() {
    let fixtures = Fixtures::new();
    let mut nats = NatsServer::start().unwrap();
    let url = nats.url();
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let _a = fixtures.host(&url, "zone=a", &["--http", &addr]);
    let _b = fixtures.host(&url, "zone=b", &[]);
    let ids = host_ids(&url, &["a", "b"]);
    scale_and_wait(&url, &ids[0], &fixtures.hello, "hello", &[]);
    scale_and_wait(&url, &ids[1], &fixtures.greeter, "greeter", &[]);
    assert_eq!(http_get(&addr, "hello").0, 200);

    nats.kill();
    // Local HTTP does not depend on NATS.
    assert_eq!(http_get(&addr, "hello").0, 200);
    nats.restart().unwrap();
    assert_eq!(wait_for_hosts(&url, 2).len(), 2, "both hosts must be back");
    assert_eq!(http_get(&addr, "hello").0, 200);
    // Call subscriptions came back too.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call(&url, &["greeter", "trellis:test/greet.greet", "back"]) {
            Ok(answer) => {
                assert_eq!(answer, serde_json::json!(["hello back from unknown"]));
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "calls never came back: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
