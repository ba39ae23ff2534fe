//! Compatibility proof: wasmCloud's own `wasmcloud-control-interface` client (2.4, on its own
//! async-nats 0.39), not our code, lists Trellis hosts and scales a component on one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::HostProcess;
use trellis_testing::nats::NatsServer;
use wasmcloud_control_interface::ClientBuilder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasmcloud_client_lists_hosts_and_scales_a_component_on_trellis() {
    let signer = trellis_testing::Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let signed = dir.path().join("hello.wasm");
    let wasm = trellis_testing::guest("http_hello").unwrap();
    std::fs::write(&signed, signer.sign(&wasm, "hello", &[]).unwrap()).unwrap();
    let reference = format!("file://{}", signed.display());

    let nats = NatsServer::start().unwrap();
    let issuer = signer.public_key();
    let _hosts = [
        HostProcess::start_trusting(&nats.url(), &["zone=cloud"], Some(&issuer)),
        HostProcess::start_trusting(&nats.url(), &["zone=edge"], Some(&issuer)),
    ];
    let nc = nats039::connect(nats.url()).await.unwrap();
    let client = ClientBuilder::new(nc)
        .lattice("test")
        .auction_timeout(Duration::from_millis(800))
        .timeout(Duration::from_secs(5))
        .build();

    let deadline = Instant::now() + Duration::from_secs(30);
    let hosts = loop {
        let replies = client.get_hosts().await.unwrap();
        let hosts: Vec<_> = replies.into_iter().filter_map(|r| r.into_data()).collect();
        if hosts.len() == 2 || Instant::now() > deadline {
            break hosts;
        }
    };
    assert_eq!(hosts.len(), 2);
    let edge = hosts
        .iter()
        .find(|h| h.labels().get("zone").map(String::as_str) == Some("edge"))
        .expect("the edge host with its label");
    assert_eq!(edge.lattice(), "test");
    assert_eq!(edge.labels()["hostcore.os"], std::env::consts::OS);
    assert!(edge.id().starts_with('N'));

    let scaled = client
        .scale_component(edge.id(), &reference, "hello-compat", 2, None, vec![])
        .await
        .unwrap();
    assert!(scaled.succeeded(), "{}", scaled.message());

    let deadline = Instant::now() + Duration::from_secs(60);
    let component = loop {
        let inventory = client.get_host_inventory(edge.id()).await.unwrap();
        assert!(inventory.succeeded(), "{}", inventory.message());
        let inventory = inventory.into_data().unwrap();
        assert_eq!(inventory.host_id(), edge.id());
        if let Some(c) = inventory
            .components()
            .iter()
            .find(|c| c.id() == "hello-compat")
        {
            break c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "component never appeared in the inventory"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(component.max_instances(), 2);
    assert_eq!(component.image_ref(), reference);
    assert_eq!(component.name(), Some("hello"));
}
