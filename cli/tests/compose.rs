//! The `docker-compose.yml` topology run as processes (this machine has no Docker engine):
//! NATS with JetStream, MariaDB, three hosts labelled `zone=cloud|k8s|edge`, wadm, and the
//! orders app deployed from `examples/orders/wadm.yaml` as the compose `deploy` service does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::two_hosts::signed;
use common::{HostProcess, WadmProcess, trellis, trellis_json, wait_for_hosts};
use trellis_testing::Signer;
use trellis_testing::nats::{NatsServer, free_port};

const ZONES: [&str; 3] = ["cloud", "k8s", "edge"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_topology_runs_the_orders_app() {
    let compose =
        std::fs::read_to_string(trellis_testing::repo_root().join("docker-compose.yml")).unwrap();
    for zone in ZONES {
        assert!(
            compose.contains(&format!("zone={zone}")),
            "docker-compose.yml has no host labelled zone={zone}: keep this test in step"
        );
    }
    assert!(compose.contains("examples/orders/wadm.yaml"));

    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let db = trellis_testing::sql::mysql_database().await;
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let grants = ["wasi:sql/types", "wasi:sql/readwrite", "wasi:config/store"];
    let image = signed(&signer, &dir, "orders", &grants);
    let issuer = signer.public_key();
    let _hosts: Vec<HostProcess> = ZONES
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            let host =
                HostProcess::start_with(&url, &[&format!("zone={zone}")], Some(&issuer), &[]);
            wait_for_hosts(&url, i + 1);
            host
        })
        .collect();
    let _wadm = WadmProcess::start(&url);

    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let manifest = trellis_testing::repo_root().join("examples/orders/wadm.yaml");
    let deployed = trellis(&url)
        .args(["app", "deploy", "--wait"])
        .arg(&manifest)
        .env("ORDERS_IMAGE", &image)
        .env("ORDERS_DB_URL", db.url())
        .env("ORDERS_HTTP_ADDRESS", &address)
        .output()
        .unwrap();
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );

    // Every host runs the component and the SQL provider (its daemonscaler).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut per_zone: BTreeMap<String, (u64, bool)> = BTreeMap::new();
        for host in common::get_hosts(&url) {
            let id = host["id"].as_str().unwrap();
            let zone = host["labels"]["zone"].as_str().unwrap().to_string();
            let inventory: serde_json::Value = trellis_json(&url, &["get", "inventory", id]);
            let count = inventory["components"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["id"] == "orders-api")
                .map(|c| c["max_instances"].as_u64().unwrap())
                .sum();
            let sql = inventory["providers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == "orders-sqldb");
            per_zone.insert(zone, (count, sql));
        }
        let total: u64 = per_zone.values().map(|(n, _)| n).sum();
        if per_zone.len() == 3 && total == 20 && per_zone.values().all(|(n, sql)| *n > 0 && *sql) {
            break;
        }
        assert!(Instant::now() < deadline, "{per_zone:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let client = reqwest::Client::new();
    let order =
        serde_json::json!({"customer": "Ada", "item": "tea", "quantity": 2, "price_cents": 450});
    let created = client
        .post(format!("http://{address}/orders"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let listed: serde_json::Value = client
        .get(format!("http://{address}/orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["customer"], "Ada");

    db.drop().await;
}
