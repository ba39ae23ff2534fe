//! Compatibility proof: wasmCloud's own `wasmcloud-control-interface` client (2.4, on its own
//! async-nats 0.39), not our code, lists Trellis hosts, scales a component on one, puts config
//! and links (and sees an invalid link refused), reads claims.
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
    std::fs::write(
        &signed,
        signer
            .sign(&wasm, "hello", &["trellis:test/greet"])
            .unwrap(),
    )
    .unwrap();
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

    // Config and links, through the same client.
    let put = client
        .put_config("compat-config", [("site".to_string(), "edge".to_string())])
        .await
        .unwrap();
    assert!(put.succeeded(), "{}", put.message());
    let config = client.get_config("compat-config").await.unwrap();
    assert_eq!(config.into_data().unwrap()["site"], "edge");
    let link = wasmcloud_control_interface::Link::builder()
        .source_id("hello-compat")
        .target("greeter")
        .name("default")
        .wit_namespace("trellis")
        .wit_package("test")
        .interfaces(vec!["greet".to_string()])
        .source_config(vec!["compat-config".to_string()])
        .build()
        .unwrap();
    let put = client.put_link(link).await.unwrap();
    assert!(put.succeeded(), "{}", put.message());
    let links = client.get_links().await.unwrap().into_data().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].source_id(), "hello-compat");
    assert_eq!(links[0].target(), "greeter");
    assert_eq!(links[0].interfaces(), &vec!["greet".to_string()]);
    // A link to an interface the component was not granted is refused, with the reason.
    let ungranted = wasmcloud_control_interface::Link::builder()
        .source_id("hello-compat")
        .target("cache")
        .name("default")
        .wit_namespace("wasi")
        .wit_package("keyvalue")
        .interfaces(vec!["store".to_string()])
        .build()
        .unwrap();
    let refused = client.put_link(ungranted).await.unwrap();
    assert!(!refused.succeeded());
    assert!(
        refused
            .message()
            .contains("not granted `wasi:keyvalue/store`"),
        "{}",
        refused.message()
    );
    let claims = client.get_claims().await.unwrap().into_data().unwrap();
    assert!(
        claims
            .iter()
            .any(|c| c.get("name").map(String::as_str) == Some("hello")),
        "{claims:?}"
    );
    let deleted = client
        .delete_link("hello-compat", "default", "trellis", "test")
        .await
        .unwrap();
    assert!(deleted.succeeded(), "{}", deleted.message());
    assert!(
        client
            .get_links()
            .await
            .unwrap()
            .into_data()
            .unwrap()
            .is_empty()
    );
}
