//! wadm end to end: `trellis wadm` processes and labelled `trellis host`s on a private
//! `nats-server`, driven with `trellis app …`: weighted spreads, daemons on late hosts,
//! healing after SIGKILL, upgrades and rollbacks under HTTP load, a wadm restarted mid-deploy,
//! and refused manifests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::two_hosts::{ok, run, signed};
use common::{HostProcess, WadmProcess, trellis_json, wait_for_hosts};
use trellis_testing::Signer;
use trellis_testing::nats::{NatsServer, free_port};

/// A lattice under test: NATS, a signer, a temp dir for manifests and signed components.
struct Lattice {
    nats: NatsServer,
    signer: Signer,
    dir: tempfile::TempDir,
    hosts: Vec<HostProcess>,
}

impl Lattice {
    fn new() -> Self {
        Self {
            nats: NatsServer::start().unwrap(),
            signer: Signer::new(),
            dir: tempfile::tempdir().unwrap(),
            hosts: Vec::new(),
        }
    }

    fn url(&self) -> String {
        self.nats.url()
    }

    /// Starts a host with `labels` (and `--http ADDR` when given); waits until `want` hosts are
    /// listed.
    fn host(&mut self, labels: &[&str], http: Option<&str>, want: usize) {
        let extra: Vec<&str> = http.map(|a| vec!["--http", a]).unwrap_or_default();
        let issuer = self.signer.public_key();
        self.hosts.push(HostProcess::start_with(
            &self.url(),
            labels,
            Some(&issuer),
            &extra,
        ));
        wait_for_hosts(&self.url(), want);
    }

    fn component(&self, guest: &str) -> String {
        signed(&self.signer, &self.dir, guest, &[])
    }

    fn manifest(&self, file: &str, text: &str) -> String {
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// `component id → (zone label → scale count)` over live hosts.
    fn placement(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut placed: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for host in common::get_hosts(&self.url()) {
            let id = host["id"].as_str().unwrap();
            let zone = host["labels"]["zone"].as_str().unwrap_or("").to_string();
            let inventory: serde_json::Value = trellis_json(&self.url(), &["get", "inventory", id]);
            for c in inventory["components"].as_array().unwrap() {
                let count = c["max_instances"].as_u64().unwrap();
                *placed
                    .entry(c["id"].as_str().unwrap().to_string())
                    .or_default()
                    .entry(zone.clone())
                    .or_default() += count;
            }
        }
        placed
    }

    /// Polls until `component`'s placement by zone equals `want`; how long it took.
    fn wait_placement(&self, component: &str, want: &[(&str, u64)], limit: Duration) -> Duration {
        let want: BTreeMap<String, u64> = want.iter().map(|(z, n)| (z.to_string(), *n)).collect();
        let started = Instant::now();
        loop {
            let now = self.placement().remove(component).unwrap_or_default();
            if now == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{component} placed {now:?}, want {want:?}; status: {}",
                String::from_utf8_lossy(&run(&self.url(), &["app", "list"]).stdout)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn spread_manifest(name: &str, version: &str, image: &str, body: &str) -> String {
    format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: {version}
spec:
  components:
{body}
    - name: web
      type: component
      properties:
        image: {image}
      traits:
        - type: spreadscaler
          properties:
            instances: 10
            spread:
              - name: a
                requirements: {{zone: a}}
                weight: 40
              - name: b
                requirements: {{zone: b}}
                weight: 40
              - name: c
                requirements: {{zone: c}}
                weight: 20
"#
    )
}

/// 40/40/20 lands 4/4/2 with two wadm processes on the lattice, and neither acts twice (each
/// host gets exactly one scale of the spread's component); a daemonscaler runs on every host,
/// including one that joins later; a component started by hand is never touched, not even by
/// undeploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_spreads_and_daemons_place_exactly() {
    let mut lattice = Lattice::new();
    for (i, zone) in ["zone=a", "zone=b", "zone=c"].iter().enumerate() {
        lattice.host(&[zone], None, i + 1);
    }
    let _wadm = [
        WadmProcess::start(&lattice.url()),
        WadmProcess::start(&lattice.url()),
    ];
    let url = lattice.url();
    let hello = lattice.component("http_hello");
    let host_a = common::get_hosts(&url)
        .into_iter()
        .find(|h| h["labels"]["zone"] == "a")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&url, &["scale", &host_a, &hello, "manual", "--count", "1"]);
    let nats = async_nats::connect(&url).await.unwrap();
    let mut scaled = nats
        .subscribe("wasmbus.evt.test.component_scaled")
        .await
        .unwrap();
    let daemon = format!(
        r#"    - name: agent
      type: component
      properties:
        image: {hello}
      traits:
        - type: daemonscaler
          properties:
            instances: 2
"#
    );
    let path = lattice.manifest(
        "spread.yaml",
        &spread_manifest("shop", "v1", &hello, &daemon),
    );
    let out = ok(&url, &["app", "deploy", &path, "--wait"]);
    assert!(out.contains("deployed"), "{out}");
    let want_web = [("a", 4), ("b", 4), ("c", 2)];
    lattice.wait_placement("shop-web", &want_web, Duration::from_secs(30));
    let want_agent = [("a", 2), ("b", 2), ("c", 2)];
    lattice.wait_placement("shop-agent", &want_agent, Duration::from_secs(30));
    // Any second scale would have been sent by now (a pass runs at least every 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut per_host: BTreeMap<String, u32> = BTreeMap::new();
    while let Ok(Some(message)) = tokio::time::timeout(
        Duration::from_millis(200),
        futures::StreamExt::next(&mut scaled),
    )
    .await
    {
        let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        if event["data"]["component_id"] == "shop-web" {
            let host = event["data"]["host_id"].as_str().unwrap().to_string();
            *per_host.entry(host).or_default() += 1;
        }
    }
    assert_eq!(per_host.len(), 3, "{per_host:?}");
    assert!(
        per_host.values().all(|n| *n == 1),
        "one scale per host, from one wadm: {per_host:?}"
    );

    // A host that joins later gets the daemon, and nothing of the spread.
    lattice.host(&["zone=d"], None, 4);
    let want_agent = [("a", 2), ("b", 2), ("c", 2), ("d", 2)];
    lattice.wait_placement("shop-agent", &want_agent, Duration::from_secs(30));
    lattice.wait_placement("shop-web", &want_web, Duration::from_secs(5));
    let status: serde_json::Value = trellis_json(&url, &["app", "status", "shop"]);
    assert_eq!(status["status"]["type"], "deployed", "{status}");

    // Undeploy removes what the app runs, and only that; delete forgets the app.
    ok(&url, &["app", "undeploy", "shop"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let placed = lattice.placement();
        if placed.keys().all(|id| id == "manual") {
            assert_eq!(placed["manual"], BTreeMap::from([("a".to_string(), 1)]));
            break;
        }
        assert!(Instant::now() < deadline, "{placed:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&url, &["app", "delete", "shop"]);
    let listed: serde_json::Value = trellis_json(&url, &["app", "list"]);
    assert_eq!(listed, serde_json::json!([]));
}

/// SIGKILL a host (no goodbye): its instances run elsewhere within 10 s.
#[test]
fn instances_of_a_killed_host_are_placed_elsewhere() {
    let mut lattice = Lattice::new();
    lattice.host(&["zone=a", "tier=web"], None, 1);
    lattice.host(&["zone=b", "tier=web"], None, 2);
    let _wadm = WadmProcess::start(&lattice.url());
    let hello = lattice.component("http_hello");
    let manifest = format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: heal
spec:
  components:
    - name: web
      type: component
      properties:
        image: {hello}
      traits:
        - type: spreadscaler
          properties:
            instances: 4
            spread:
              - name: web
                requirements: {{tier: web}}
"#
    );
    let path = lattice.manifest("heal.yaml", &manifest);
    ok(&lattice.url(), &["app", "deploy", &path, "--wait"]);
    lattice.wait_placement("heal-web", &[("a", 2), ("b", 2)], Duration::from_secs(30));
    lattice.hosts[0].kill();
    let healed = lattice.wait_placement("heal-web", &[("b", 4)], Duration::from_secs(10));
    eprintln!("healed {healed:?} after SIGKILL");
}

/// Deploying v2 swaps the component in place under continuous HTTP load, and deploying v1
/// again rolls back the same way: no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_and_rollback_under_load_lose_no_request() {
    let mut lattice = Lattice::new();
    let http = format!("127.0.0.1:{}", free_port().unwrap());
    lattice.host(&["zone=a"], Some(&http), 1);
    let _wadm = WadmProcess::start(&lattice.url());
    let v1 = lattice.component("http_hello");
    let v2 = lattice.component("echo");
    let manifest = |version: &str, image: &str| {
        format!(
            r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: up
  annotations:
    version: {version}
spec:
  components:
    - name: web
      type: component
      properties:
        image: {image}
      traits:
        - type: spreadscaler
          properties:
            instances: 20
"#
        )
    };
    let url = lattice.url();
    let first = lattice.manifest("v1.yaml", &manifest("v1", &v1));
    ok(&url, &["app", "deploy", &first, "--wait"]);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut total, mut failed, mut bodies) = (0u64, Vec::new(), BTreeMap::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = client
                    .post(format!("http://{http}/"))
                    .header("host", "up-web")
                    .body("ping")
                    .send()
                    .await;
                total += 1;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        let body = r.text().await.unwrap_or_default();
                        *bodies.entry(body).or_insert(0u64) += 1;
                    }
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (total, failed, bodies)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = lattice.manifest("v2.yaml", &manifest("v2", &v2));
    ok(&url, &["app", "deploy", &second, "--wait"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    ok(&url, &["app", "deploy-version", "up", "v1", "--wait"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (total, failed, bodies) = load.await.unwrap();
    eprintln!("{total} requests during upgrade and rollback: {bodies:?}");
    assert!(
        failed.is_empty(),
        "{} of {total} failed: {failed:?}",
        failed.len()
    );
    assert!(bodies.contains_key("ping"), "v2 (echo) served: {bodies:?}");
    assert!(
        bodies.contains_key("Hello from Trellis!\n"),
        "v1 served: {bodies:?}"
    );
    let versions: serde_json::Value = trellis_json(&url, &["app", "versions", "up"]);
    assert_eq!(versions["versions"][0]["deployed"], true, "{versions}");
}

/// wadm killed right after a deploy was accepted: another wadm finishes it.
#[test]
fn a_wadm_restarted_mid_deploy_finishes_it() {
    let mut lattice = Lattice::new();
    lattice.host(&["zone=a"], None, 1);
    lattice.host(&["zone=b"], None, 2);
    let mut wadm = WadmProcess::start(&lattice.url());
    let hello = lattice.component("http_hello");
    let manifest = format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: restart
spec:
  components:
    - name: web
      type: component
      properties:
        image: {hello}
      traits:
        - type: spreadscaler
          properties:
            instances: 6
"#
    );
    let path = lattice.manifest("restart.yaml", &manifest);
    ok(&lattice.url(), &["app", "deploy", &path]);
    wadm.kill();
    let _wadm = WadmProcess::start(&lattice.url());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value = trellis_json(&lattice.url(), &["app", "status", "restart"]);
        if status["status"]["type"] == "deployed" {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(250));
    }
    lattice.wait_placement(
        "restart-web",
        &[("a", 3), ("b", 3)],
        Duration::from_secs(10),
    );
}

/// A manifest with a defect is refused before anything is stored, naming file and field; a
/// spread no host can meet is reported as failed with the reason.
#[test]
fn bad_manifests_and_unmeetable_spreads_get_precise_errors() {
    let mut lattice = Lattice::new();
    lattice.host(&["zone=a"], None, 1);
    let _wadm = WadmProcess::start(&lattice.url());
    let url = lattice.url();
    let hello = lattice.component("http_hello");
    let bad = lattice.manifest(
        "bad.yaml",
        &spread_manifest("bad", "v1", &hello, "").replace("weight: 20", "weight: -3"),
    );
    let out = run(&url, &["app", "deploy", &bad]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    assert!(stderr.contains("weight"), "{stderr}");
    let listed: serde_json::Value = trellis_json(&url, &["app", "list"]);
    assert_eq!(listed, serde_json::json!([]), "nothing stored");

    let unmeetable = lattice.manifest(
        "edge.yaml",
        &spread_manifest("edge", "v1", &hello, "").replace("zone: c", "zone: nowhere"),
    );
    let out = run(&url, &["app", "deploy", &unmeetable, "--wait"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed"), "{stderr}");
    assert!(stderr.contains("zone=nowhere"), "{stderr}");

    let out = run(&url, &["app", "status", "ghost"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no application named `ghost`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Garbage on every wadm API subject gets an error reply (never silence, never a crash), and
/// wadm keeps answering afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_api_requests_get_error_replies() {
    let lattice = Lattice::new();
    let url = lattice.url();
    let _wadm = WadmProcess::start(&url);
    let nats = async_nats::connect(&url).await.unwrap();
    // Wait for wadm to subscribe.
    let deadline = Instant::now() + Duration::from_secs(10);
    while nats
        .request("wadm.api.test.model.list", "".into())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "wadm never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let huge = vec![b'{'; 900 * 1024];
    let payloads: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json at all".to_vec(),
        b"{\"version\": 7}".to_vec(),
        b"apiVersion: [unclosed".to_vec(),
        vec![0xff, 0xfe, 0x00],
        huge,
    ];
    for operation in [
        "put",
        "get.x",
        "versions.x",
        "del.x",
        "deploy.x",
        "undeploy.x",
        "status.x",
        "bogus",
        "put.extra",
    ] {
        for payload in &payloads {
            let subject = format!("wadm.api.test.model.{operation}");
            let reply = tokio::time::timeout(
                Duration::from_secs(10),
                nats.request(subject.clone(), payload.clone().into()),
            )
            .await
            .unwrap_or_else(|_| panic!("no reply on {subject}"))
            .unwrap();
            let answer: serde_json::Value = serde_json::from_slice(&reply.payload)
                .unwrap_or_else(|e| panic!("{subject}: unreadable reply: {e}"));
            let result = answer["result"].as_str().unwrap_or_default();
            assert!(
                ["error", "notfound", "noop"].contains(&result),
                "{subject} with {} bytes: {answer}",
                payload.len()
            );
            assert!(
                !answer["message"].as_str().unwrap_or_default().is_empty(),
                "{subject}: an error reply says why: {answer}"
            );
        }
    }
    let listed: serde_json::Value = trellis_json(&url, &["app", "list"]);
    assert_eq!(listed, serde_json::json!([]), "nothing was stored");
}
