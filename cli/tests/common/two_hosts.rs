//! A two-host lattice for capability tests: a private `nats-server`, two `trellis host`
//! processes labelled `zone=a` / `zone=b` serving HTTP, a signer their claims trust, and the
//! CLI calls the tests make against them.

use std::process::Output;
use std::time::{Duration, Instant};

use trellis_testing::Signer;
use trellis_testing::nats::{NatsServer, free_port};

use super::{HostProcess, trellis, trellis_json, wait_for_hosts};

pub fn run(url: &str, args: &[&str]) -> Output {
    trellis(url).args(args).output().unwrap()
}

pub fn ok(url: &str, args: &[&str]) -> String {
    let out = run(url, args);
    assert!(
        out.status.success(),
        "trellis {args:?} on {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Scales a component on `host` (count 10, with named configs) and waits until the host's
/// inventory lists it.
pub fn scale_and_wait(url: &str, host: &str, reference: &str, id: &str, config: &[&str]) {
    let mut args = vec!["scale", host, reference, id, "--count", "10"];
    for c in config {
        args.extend(["--config", c]);
    }
    ok(url, &args);
    wait_listed(url, host, "components", id);
}

/// Signs a guest with grants; returns its `file://` reference.
pub fn signed(signer: &Signer, dir: &tempfile::TempDir, guest: &str, grants: &[&str]) -> String {
    let wasm = trellis_testing::guest(guest).unwrap();
    let path = dir.path().join(format!("{guest}.wasm"));
    std::fs::write(&path, signer.sign(&wasm, guest, grants).unwrap()).unwrap();
    format!("file://{}", path.display())
}

/// Polls a host's inventory until `field` (components or providers) lists `id`.
pub fn wait_listed(url: &str, host: &str, field: &str, id: &str) {
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
pub struct TwoHosts {
    pub nats: NatsServer,
    pub signer: Signer,
    pub dir: tempfile::TempDir,
    pub ids: Vec<String>,
    pub http: Vec<String>,
    pub log: std::path::PathBuf,
    _hosts: Vec<HostProcess>,
}

impl TwoHosts {
    pub fn start() -> Self {
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

    pub fn url(&self) -> String {
        self.nats.url()
    }

    /// The signed `kv-counter` example (granted key-value and config).
    pub fn kv_counter(&self) -> String {
        let grants = [
            "wasi:keyvalue/store",
            "wasi:keyvalue/atomics",
            "wasi:config/store",
        ];
        signed(&self.signer, &self.dir, "kv_counter", &grants)
    }

    /// Links `counter`'s key-value imports to `provider`, with more `link put` flags.
    pub fn link_counter(&self, provider: &str, flags: &[&str]) {
        let mut args = vec![
            "link",
            "put",
            "counter",
            provider,
            "wasi:keyvalue",
            "--interface",
            "store",
            "--interface",
            "atomics",
        ];
        args.extend(flags);
        ok(&self.url(), &args);
    }

    /// Starts provider `id` from `reference` on every host.
    pub fn provider_everywhere(&self, reference: &str, id: &str) {
        for host in &self.ids {
            ok(&self.url(), &["provider", "start", host, reference, id]);
        }
        for host in &self.ids {
            wait_listed(&self.url(), host, "providers", id);
        }
    }

    /// Scales a component on every host.
    pub fn component_everywhere(&self, reference: &str, id: &str, config: &[&str]) {
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
pub async fn request(
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

/// Where the provider runs: inside each host, or as its own process started by each host.
#[derive(Clone, Copy)]
pub enum Mode {
    InProcess,
    OutOfProcess,
}

/// The `provider.start` reference of first-party provider `name` in `mode`.
pub fn reference(name: &str, mode: Mode) -> String {
    match mode {
        Mode::InProcess => format!("builtin://{name}"),
        Mode::OutOfProcess => {
            let path = trellis_testing::provider_binary(name).unwrap();
            format!("file://{}", path.display())
        }
    }
}
