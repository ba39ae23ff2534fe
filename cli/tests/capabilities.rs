//! Key-value and SQL capabilities through linked providers, on hosts started with the
//! `trellis` binary, against real NATS JetStream, Redis, MariaDB and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{HostProcess, trellis, trellis_json, wait_for_hosts};
use trellis_testing::Signer;
use trellis_testing::nats::{NatsServer, free_port};

fn run(url: &str, args: &[&str]) -> Output {
    trellis(url).args(args).output().unwrap()
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = run(url, args);
    assert!(
        out.status.success(),
        "trellis {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Signs a guest with grants; returns its `file://` reference.
fn signed(signer: &Signer, dir: &tempfile::TempDir, guest: &str, grants: &[&str]) -> String {
    let wasm = trellis_testing::guest(guest).unwrap();
    let path = dir.path().join(format!("{guest}.wasm"));
    std::fs::write(&path, signer.sign(&wasm, guest, grants).unwrap()).unwrap();
    format!("file://{}", path.display())
}

/// Polls a host's inventory until `field` (components or providers) lists `id`.
fn wait_listed(url: &str, host: &str, field: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let inventory: serde_json::Value = trellis_json(url, &["get", "inventory", host]);
        if inventory[field]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never listed in {field} of {host}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two hosts serving HTTP, sharing one lattice.
struct TwoHosts {
    nats: NatsServer,
    signer: Signer,
    dir: tempfile::TempDir,
    ids: Vec<String>,
    http: Vec<String>,
    log: std::path::PathBuf,
    _hosts: Vec<HostProcess>,
}

impl TwoHosts {
    fn start() -> Self {
        let nats = NatsServer::start().unwrap();
        let signer = Signer::new();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("host-a.log");
        let http: Vec<String> = (0..2)
            .map(|_| format!("127.0.0.1:{}", free_port().unwrap()))
            .collect();
        let issuer = signer.public_key();
        let hosts = vec![
            HostProcess::start_logging(
                &nats.url(),
                &["zone=a"],
                Some(&issuer),
                &["--http", &http[0]],
                std::fs::File::create(&log).unwrap(),
            ),
            HostProcess::start_with(
                &nats.url(),
                &["zone=b"],
                Some(&issuer),
                &["--http", &http[1]],
            ),
        ];
        let listed = wait_for_hosts(&nats.url(), 2);
        let id = |zone: &str| {
            listed.iter().find(|h| h["labels"]["zone"] == zone).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let ids = vec![id("a"), id("b")];
        Self {
            nats,
            signer,
            dir,
            ids,
            http,
            log,
            _hosts: hosts,
        }
    }

    fn url(&self) -> String {
        self.nats.url()
    }

    /// Starts provider `id` from `reference` on every host.
    fn provider_everywhere(&self, reference: &str, id: &str) {
        for host in &self.ids {
            ok(&self.url(), &["provider", "start", host, reference, id]);
        }
        for host in &self.ids {
            wait_listed(&self.url(), host, "providers", id);
        }
    }

    /// Scales a component on every host.
    fn component_everywhere(&self, reference: &str, id: &str, config: &[&str]) {
        for host in &self.ids {
            let mut args = vec!["scale", host.as_str(), reference, id, "--count", "100"];
            for c in config {
                args.extend(["--config", c]);
            }
            ok(&self.url(), &args);
        }
        for host in &self.ids {
            wait_listed(&self.url(), host, "components", id);
        }
    }
}

/// One HTTP request to a component on a host (routed by Host header = component id).
async fn request(
    client: &reqwest::Client,
    addr: &str,
    component: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> (u16, String) {
    let mut request = client
        .request(method, format!("http://{addr}{path}"))
        .header("host", component);
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The headline of the key-value capability: 1,000 increments from two hosts, concurrently,
/// through the same provider type running inside each host, end at exactly 1,000.
async fn counter_from_two_hosts(reference: &str, link_config: Vec<String>) {
    let lattice = TwoHosts::start();
    let url = lattice.url();
    let counter = signed(
        &lattice.signer,
        &lattice.dir,
        "kv_counter",
        &[
            "wasi:keyvalue/store",
            "wasi:keyvalue/atomics",
            "wasi:config/store",
        ],
    );
    let mut put = vec!["config".to_string(), "put".into(), "kv-link".into()];
    put.extend(link_config);
    ok(&url, &put.iter().map(String::as_str).collect::<Vec<_>>());
    let bucket = format!("counter{}", free_port().unwrap());
    ok(
        &url,
        &["config", "put", "counter", &format!("bucket={bucket}")],
    );
    lattice.provider_everywhere(reference, "kv");
    ok(
        &url,
        &[
            "link",
            "put",
            "counter",
            "kv",
            "wasi:keyvalue",
            "--interface",
            "store",
            "--interface",
            "atomics",
            "--target-config",
            "kv-link",
        ],
    );
    lattice.component_everywhere(&counter, "counter", &["counter"]);

    let client = reqwest::Client::new();
    let calls = (0..1000).map(|i| {
        let client = client.clone();
        let addr = lattice.http[i % 2].clone();
        async move {
            request(
                &client,
                &addr,
                "counter",
                reqwest::Method::POST,
                "/increment/hits",
                None,
            )
            .await
        }
    });
    let mut seen = BTreeSet::new();
    let results: Vec<(u16, String)> = futures::stream::iter(calls)
        .buffer_unordered(64)
        .collect()
        .await;
    for (status, body) in results {
        assert_eq!(status, 200, "{body}");
        seen.insert(body.parse::<u64>().unwrap());
    }
    assert_eq!(
        seen,
        (1..=1000).collect::<BTreeSet<u64>>(),
        "every increment returned a distinct value"
    );
    for addr in &lattice.http {
        let (status, body) = request(
            &client,
            addr,
            "counter",
            reqwest::Method::GET,
            "/value/hits",
            None,
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "1000"));
    }
}

use futures::StreamExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_on_nats_kv_from_two_hosts_in_process() {
    // The provider's JetStream KV is on the lattice's own NATS server here.
    let nats_for_kv = NatsServer::start().unwrap();
    counter_from_two_hosts(
        "builtin://keyvalue-nats",
        vec![format!("cluster_uri={}", nats_for_kv.url())],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_on_redis_from_two_hosts_in_process() {
    let redis = trellis_testing::redis::RedisServer::start().unwrap();
    counter_from_two_hosts(
        "builtin://keyvalue-redis",
        vec![format!("url={}", redis.url())],
    )
    .await;
}

/// A component whose import has no link gets an error naming the missing link (not a trap),
/// the host logs it once, and putting the link makes the next request work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_link_is_named_and_logged_once() {
    let lattice = TwoHosts::start();
    let url = lattice.url();
    let counter = signed(
        &lattice.signer,
        &lattice.dir,
        "kv_counter",
        &[
            "wasi:keyvalue/store",
            "wasi:keyvalue/atomics",
            "wasi:config/store",
        ],
    );
    lattice.component_everywhere(&counter, "counter", &[]);
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let (status, body) = request(
            &client,
            &lattice.http[0],
            "counter",
            reqwest::Method::POST,
            "/increment/x",
            None,
        )
        .await;
        assert_eq!(status, 500, "{body}");
        assert!(
            body.contains("component `counter` has no link `default` for `wasi:keyvalue/store`")
                && body.contains("trellis link put counter"),
            "{body}"
        );
    }
    let log = std::fs::read_to_string(&lattice.log).unwrap();
    let logged = log
        .matches("has no link `default` for `wasi:keyvalue/store`")
        .count();
    assert_eq!(logged, 1, "logged {logged} times:\n{log}");

    // A provider that is linked but not running anywhere: named, no hang.
    ok(
        &url,
        &[
            "link",
            "put",
            "counter",
            "nowhere",
            "wasi:keyvalue",
            "--interface",
            "store",
            "--interface",
            "atomics",
        ],
    );
    let started = Instant::now();
    let (status, body) = request(
        &client,
        &lattice.http[1],
        "counter",
        reqwest::Method::POST,
        "/increment/x",
        None,
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("provider `nowhere` is not running"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Link to a running provider: the next request works.
    lattice.provider_everywhere("builtin://keyvalue-memory", "mem");
    ok(&url, &["link", "del", "counter", "wasi:keyvalue"]);
    ok(
        &url,
        &[
            "link",
            "put",
            "counter",
            "mem",
            "wasi:keyvalue",
            "--interface",
            "store",
            "--interface",
            "atomics",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = request(
            &client,
            &lattice.http[0],
            "counter",
            reqwest::Method::POST,
            "/increment/x",
            None,
        )
        .await;
        if status == 200 {
            assert_eq!(body, "1");
            break;
        }
        assert!(Instant::now() < deadline, "still failing: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
