//! `trellis host` and `trellis get hosts` on a private nats-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{HostProcess, get_hosts, trellis, trellis_json, wait_for_host_ids, wait_for_hosts};
use futures::StreamExt as _;
use trellis_testing::nats::{NatsServer, free_port};

#[test]
fn three_labelled_hosts_are_listed_and_leave_cleanly() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let hosts = [
        HostProcess::start(&url, &["zone=cloud"]),
        HostProcess::start(&url, &["zone=k8s", "tier=gold"]),
        HostProcess::start(&url, &["zone=edge"]),
    ];
    let listed = wait_for_hosts(&url, 3);
    assert_eq!(listed.len(), 3, "{listed:?}");
    let mut zones: Vec<&str> = listed
        .iter()
        .map(|h| h["labels"]["zone"].as_str().unwrap())
        .collect();
    zones.sort();
    assert_eq!(zones, ["cloud", "edge", "k8s"]);
    for host in &listed {
        assert!(host["id"].as_str().unwrap().starts_with('N'));
        assert_eq!(host["lattice"], "test");
        assert_eq!(host["labels"]["hostcore.arch"], std::env::consts::ARCH);
        assert_eq!(host["labels"]["hostcore.os"], std::env::consts::OS);
        assert!(host["labels"]["hostcore.osfamily"].is_string());
    }
    let gold = listed
        .iter()
        .find(|h| h["labels"]["zone"] == "k8s")
        .unwrap();
    assert_eq!(gold["labels"]["tier"], "gold");

    for host in hosts {
        assert!(host.terminate(), "SIGTERM must leave cleanly");
    }
    assert!(get_hosts(&url).is_empty());
}

#[tokio::test]
async fn hosts_announce_themselves_and_heartbeat_their_inventory() {
    let nats = NatsServer::start().unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut events = client.subscribe("wasmbus.evt.test.>").await.unwrap();
    client.flush().await.unwrap();
    let _host = HostProcess::start(&nats.url(), &["zone=edge"]);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(seen.contains(&"host_started".to_string())
        && seen.contains(&"host_heartbeat".to_string()))
    {
        let message = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap()
            .unwrap();
        let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(event["specversion"], "1.0");
        let short = event["type"]
            .as_str()
            .unwrap()
            .trim_start_matches("com.wasmcloud.lattice.");
        assert_eq!(
            message.subject.as_str(),
            format!("wasmbus.evt.test.{short}")
        );
        if short == "host_heartbeat" {
            assert_eq!(event["data"]["labels"]["zone"], "edge");
            assert!(event["data"]["components"].is_array());
            assert_eq!(event["data"]["host_id"], event["source"]);
        }
        seen.push(short.to_string());
    }
}

#[tokio::test]
async fn malformed_and_unknown_control_messages_never_take_a_host_down() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let _host = HostProcess::start(&url, &[]);
    assert_eq!(
        tokio::task::spawn_blocking({
            let u = url.clone();
            move || wait_for_hosts(&u, 1)
        })
        .await
        .unwrap()
        .len(),
        1
    );
    // Requests addressed to no host get no reply; do not wait the default 10 s for those.
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_millis(500)))
        .connect(&url)
        .await
        .unwrap();
    let payloads: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"null".to_vec(),
        br#"{"component_ref": 42}"#.to_vec(),
        vec![0xff; 1 << 20],
        (0..4096u32).map(|i| (i * 7919 % 256) as u8).collect(),
    ];
    for subject in [
        "host.ping",
        "link.put",
        "component.scale.NXXX",
        "config.put.x",
        "host.get.nonsense",
        "zzz",
    ] {
        for payload in &payloads {
            let reply = client
                .request(
                    format!("wasmbus.ctl.v1.test.{subject}"),
                    payload.clone().into(),
                )
                .await;
            if let Ok(reply) = reply {
                let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
                assert!(v["success"].is_boolean(), "{subject}: {v}");
                if subject != "host.ping" {
                    assert_eq!(v["success"], false, "{subject} must not pretend: {v}");
                }
            }
        }
    }
    assert_eq!(
        tokio::task::spawn_blocking(move || get_hosts(&url))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn unreachable_nats_fails_fast_with_a_clear_message() {
    let url = format!("nats://127.0.0.1:{}", free_port().unwrap());
    let started = Instant::now();
    let out = trellis(&url)
        .args(["host", "--connect-timeout", "2s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot connect to NATS at {url}")),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "no hang");
    let out = trellis(&url).args(["get", "hosts"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to NATS"));
}

#[test]
fn reserved_and_malformed_labels_are_refused() {
    let nats = NatsServer::start().unwrap();
    for (label, expected) in [
        ("hostcore.os=plan9", "reserved"),
        ("novalue", "must be `key=value`"),
    ] {
        let out = trellis(&nats.url())
            .args(["host", "--label", label])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{label}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{label}: {stderr}");
    }
}

/// Waits for an event of `short_type` about `component_id`.
async fn next_component_event(
    events: &mut async_nats::Subscriber,
    short_type: &str,
    component_id: &str,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let message = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("no {short_type} event for {component_id}"))
            .unwrap();
        let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        if event["type"] == format!("com.wasmcloud.lattice.{short_type}")
            && event["data"]["component_id"] == component_id
        {
            return event;
        }
    }
}

fn inventory(nats: &str, host: &str) -> serde_json::Value {
    trellis_json(nats, &["get", "inventory", host])
}

fn scale(nats: &str, host: &str, reference: &str, id: &str, count: u32) -> Output {
    trellis(nats)
        .args(["scale", host, reference, id, "--count", &count.to_string()])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_on_one_host_shows_in_its_inventory_and_events_and_zero_removes_it() {
    let signer = trellis_testing::Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let wasm = trellis_testing::guest("http_hello").unwrap();
    let signed = dir.path().join("hello.wasm");
    std::fs::write(&signed, signer.sign(&wasm, "hello", &[]).unwrap()).unwrap();
    let reference = format!("file://{}", signed.display());

    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let issuer = signer.public_key();
    let _hosts: Vec<HostProcess> = ["zone=cloud", "zone=k8s", "zone=edge"]
        .iter()
        .map(|l| HostProcess::start_trusting(&url, &[l], Some(&issuer)))
        .collect();
    let listed = tokio::task::spawn_blocking({
        let u = url.clone();
        move || wait_for_hosts(&u, 3)
    })
    .await
    .unwrap();
    assert_eq!(listed.len(), 3);
    let host_of = |zone: &str| {
        listed.iter().find(|h| h["labels"]["zone"] == zone).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (second, first) = (host_of("k8s"), host_of("cloud"));

    let client = async_nats::connect(&url).await.unwrap();
    let mut events = client.subscribe("wasmbus.evt.test.>").await.unwrap();
    client.flush().await.unwrap();

    let out = scale(&url, &second, &reference, "hello-1", 3);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scaled = next_component_event(&mut events, "component_scaled", "hello-1").await;
    assert_eq!(scaled["source"], second.as_str());
    assert_eq!(scaled["data"]["max_instances"], 3);
    assert_eq!(scaled["data"]["image_ref"], reference.as_str());
    assert_eq!(scaled["data"]["claims"]["issuer"], issuer.as_str());

    let on_second = inventory(&url, &second);
    let components = on_second["components"].as_array().unwrap();
    assert_eq!(components.len(), 1, "{on_second}");
    assert_eq!(components[0]["id"], "hello-1");
    assert_eq!(components[0]["max_instances"], 3);
    assert_eq!(components[0]["name"], "hello");
    assert!(
        inventory(&url, &first)["components"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let out = scale(&url, &second, &reference, "hello-1", 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = next_component_event(&mut events, "component_scaled", "hello-1").await;
    assert_eq!(stopped["data"]["max_instances"], 0);
    assert!(
        inventory(&url, &second)["components"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_failures_are_reported_with_the_reason() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let signer = trellis_testing::Signer::new();
    let _host = HostProcess::start_trusting(&url, &[], Some(&signer.public_key()));
    let host = wait_for_host_ids(&url, 1).await.remove(0);
    let client = async_nats::connect(&url).await.unwrap();
    let mut events = client.subscribe("wasmbus.evt.test.>").await.unwrap();
    client.flush().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let unsigned = dir.path().join("unsigned.wasm");
    std::fs::write(&unsigned, trellis_testing::guest("http_hello").unwrap()).unwrap();
    let cases = [
        (
            "missing",
            "/nonexistent/x.wasm".to_string(),
            "cannot read component `/nonexistent/x.wasm`",
        ),
        ("unsigned", unsigned.display().to_string(), "is not signed"),
        (
            "registry",
            "ghcr.io/wasmcloud/http-server:0.27.0".to_string(),
            "registry references are not supported yet",
        ),
    ];
    for (id, reference, expected) in cases {
        let out = scale(&url, &host, &reference, id, 1);
        assert!(
            out.status.success(),
            "the request itself is valid: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let failed = next_component_event(&mut events, "component_scale_failed", id).await;
        let error = failed["data"]["error"].as_str().unwrap();
        assert!(error.contains(expected), "{id}: {error}");
    }
    assert!(
        inventory(&url, &host)["components"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A request that is not a scale command at all is refused in the reply.
    let reply = client
        .request(
            format!("wasmbus.ctl.v1.test.component.scale.{host}"),
            r#"{"count": 1}"#.into(),
        )
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["success"], false);
    assert!(
        v["message"].as_str().unwrap().contains("component_id"),
        "{v}"
    );
}

#[test]
fn hosts_come_back_by_themselves_after_nats_server_restarts() {
    let mut nats = NatsServer::start().unwrap();
    let url = nats.url();
    let _hosts: Vec<HostProcess> = (0..3)
        .map(|i| HostProcess::start(&url, &[&format!("n={i}")]))
        .collect();
    assert_eq!(wait_for_hosts(&url, 3).len(), 3);
    nats.kill();
    // While NATS is down, queries fail with a clear error instead of hanging.
    let out = trellis(&url).args(["get", "hosts"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to NATS"));
    std::thread::sleep(Duration::from_secs(1));
    nats.restart().unwrap();
    let back = wait_for_hosts(&url, 3);
    assert_eq!(back.len(), 3, "hosts did not reconnect: {back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_change_at_run_time_with_an_event_and_hostcore_labels_are_protected() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let _host = HostProcess::start(&url, &["zone=edge"]);
    let host = wait_for_host_ids(&url, 1).await.remove(0);
    let client = async_nats::connect(&url).await.unwrap();
    let mut events = client
        .subscribe("wasmbus.evt.test.labels_changed")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let label = |args: &[&str]| trellis(&url).arg("label").args(args).output().unwrap();

    let out = label(&["put", &host, "tier", "gold"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap();
    let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event["data"]["labels"]["tier"], "gold");
    assert_eq!(event["data"]["labels"]["zone"], "edge");
    assert_eq!(get_hosts(&url)[0]["labels"]["tier"], "gold");

    let out = label(&["put", &host, "HostCore.os", "plan9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
    assert_eq!(
        get_hosts(&url)[0]["labels"]["hostcore.os"],
        std::env::consts::OS
    );

    let out = label(&["del", &host, "tier"]);
    assert!(out.status.success());
    let event = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap();
    let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert!(event["data"]["labels"].get("tier").is_none());
    let out = label(&["del", &host, "never-set"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no such label"));
    assert!(get_hosts(&url)[0]["labels"].get("tier").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_swaps_a_running_component_in_place() {
    let signer = trellis_testing::Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, guest: &str| {
        let path = dir.path().join(name);
        let wasm = trellis_testing::guest(guest).unwrap();
        std::fs::write(&path, signer.sign(&wasm, guest, &[]).unwrap()).unwrap();
        format!("file://{}", path.display())
    };
    let (v1, v2) = (write("v1.wasm", "http_hello"), write("v2.wasm", "echo"));
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let _host = HostProcess::start_trusting(&url, &[], Some(&signer.public_key()));
    let host = wait_for_host_ids(&url, 1).await.remove(0);
    let client = async_nats::connect(&url).await.unwrap();
    let mut events = client.subscribe("wasmbus.evt.test.>").await.unwrap();
    client.flush().await.unwrap();
    let update = |body: serde_json::Value| {
        let client = client.clone();
        let subject = format!("wasmbus.ctl.v1.test.component.update.{host}");
        async move {
            let reply = client
                .request(subject, body.to_string().into())
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };

    let missing = update(serde_json::json!({"component_id": "app", "new_component_ref": v2})).await;
    assert_eq!(missing["success"], false);
    assert!(
        missing["message"].as_str().unwrap().contains("not found"),
        "{missing}"
    );

    assert!(scale(&url, &host, &v1, "app", 4).status.success());
    next_component_event(&mut events, "component_scaled", "app").await;
    let same = update(serde_json::json!({"component_id": "app", "new_component_ref": v1})).await;
    assert!(
        same["message"]
            .as_str()
            .unwrap()
            .contains("already updated"),
        "{same}"
    );

    let reply = update(serde_json::json!({"component_id": "app", "new_component_ref": v2})).await;
    assert_eq!(reply["success"], true, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("updating from"),
        "{reply}"
    );
    let new = next_component_event(&mut events, "component_scaled", "app").await;
    assert_eq!(new["data"]["image_ref"], v2.as_str());
    assert_eq!(new["data"]["max_instances"], 4);
    let old = next_component_event(&mut events, "component_scaled", "app").await;
    assert_eq!(old["data"]["image_ref"], v1.as_str());
    assert_eq!(old["data"]["max_instances"], 0);

    let components = inventory(&url, &host)["components"].clone();
    assert_eq!(components.as_array().unwrap().len(), 1, "{components}");
    assert_eq!(components[0]["image_ref"], v2.as_str());
    assert_eq!(components[0]["max_instances"], 4);
    assert_eq!(components[0]["name"], "echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_stop_checks_the_named_host_then_leaves_the_lattice() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let mut process = HostProcess::start(&url, &[]);
    let host = wait_for_host_ids(&url, 1).await.remove(0);
    let client = async_nats::connect(&url).await.unwrap();
    let subject = format!("wasmbus.ctl.v1.test.host.stop.{host}");

    let wrong = serde_json::json!({"host_id": "NSOMEONEELSE"}).to_string();
    let reply = client.request(subject.clone(), wrong.into()).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["success"], false, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("invalid host_id"),
        "{v}"
    );
    assert_eq!(
        wait_for_host_ids(&url, 1).await,
        std::slice::from_ref(&host)
    );

    let reply = client.request(subject, "".into()).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["success"], true, "{v}");
    let status = tokio::task::spawn_blocking(move || process.wait())
        .await
        .unwrap();
    assert!(status.success(), "the host exits cleanly after host.stop");
    assert!(get_hosts(&url).is_empty());
}

/// A host told to stop (SIGTERM) stops even when NATS is already gone: its goodbye
/// (`host_stopped`, a final flush) is bounded instead of waiting for NATS to come back.
#[test]
fn a_host_stops_on_sigterm_even_when_nats_is_gone() {
    let mut nats = NatsServer::start().unwrap();
    let mut host = HostProcess::start(&nats.url(), &["zone=a"]);
    assert_eq!(wait_for_hosts(&nats.url(), 1).len(), 1);
    nats.kill();
    let status = host.terminate_within(Duration::from_secs(20));
    assert!(
        status.is_some(),
        "the host did not exit within 20 s of SIGTERM"
    );
}
