//! What is particular to the NATS provider: buckets are JetStream KV buckets, created when
//! missing; JetStream's naming rules; health while the server is away.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis_provider_keyvalue_nats::NatsKvProvider;
use trellis_provider_sdk::keyvalue::{KeyValue, KvError};
use trellis_provider_sdk::{CallContext, Provider};
use trellis_testing::keyvalue::{COMPONENT, link, put_link};
use trellis_testing::nats::NatsServer;

async fn linked(nats: &NatsServer) -> (Arc<NatsKvProvider>, CallContext) {
    let provider = Arc::new(NatsKvProvider::new());
    let config = BTreeMap::from([("cluster_uri".to_string(), nats.url())]);
    put_link(provider.as_ref(), &link("default", &config)).await;
    (provider, CallContext::new(COMPONENT, "default"))
}

#[tokio::test]
async fn opening_a_missing_bucket_creates_it_and_an_existing_one_is_used_as_it_is() {
    let nats = NatsServer::start().unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let made = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "made-before".into(),
            history: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    made.put("k", "from outside".into()).await.unwrap();

    let (kv, cx) = linked(&nats).await;
    assert_eq!(
        kv.get(&cx, "made-before", "k").await.unwrap(),
        Some(b"from outside".to_vec())
    );
    let status = js
        .get_key_value("made-before")
        .await
        .unwrap()
        .status()
        .await;
    assert_eq!(
        status.unwrap().history(),
        5,
        "an existing bucket keeps its settings"
    );

    assert!(js.get_key_value("fresh").await.is_err());
    kv.open(&cx, "fresh").await.unwrap();
    let fresh = js.get_key_value("fresh").await.unwrap();
    kv.set(&cx, "fresh", "k", b"v".to_vec()).await.unwrap();
    assert_eq!(fresh.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

    kv.set(&cx, "", "k", b"d".to_vec()).await.unwrap();
    let default = js.get_key_value("default").await.unwrap();
    assert_eq!(default.get("k").await.unwrap().as_deref(), Some(&b"d"[..]));
}

#[tokio::test]
async fn names_jetstream_refuses_fail_with_the_rule() {
    let nats = NatsServer::start().unwrap();
    let (kv, cx) = linked(&nats).await;
    match kv.open(&cx, "orders.eu").await {
        Err(KvError::Other(message)) => {
            assert!(
                message.contains("orders.eu") && message.contains("bucket"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    for call in [
        kv.set(&cx, "b", "has space", Vec::new()).await.map(drop),
        kv.get(&cx, "b", "has space").await.map(drop),
        kv.increment(&cx, "b", "has space", 1).await.map(drop),
        kv.set_many(&cx, "b", vec![("has space".into(), Vec::new())])
            .await
            .map(drop),
    ] {
        match call {
            Err(KvError::Other(message)) => assert!(message.contains("has space"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn health_follows_the_connection() {
    let mut nats = NatsServer::start().unwrap();
    let (kv, cx) = linked(&nats).await;
    kv.set(&cx, "b", "k", b"v".to_vec()).await.unwrap();
    assert!(kv.health().await.healthy);

    nats.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let health = kv.health().await;
        if !health.healthy || Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!health.healthy, "a killed server is noticed");
    assert!(health.message.contains(&nats.url()), "{}", health.message);

    nats.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kv.health().await.healthy && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        kv.health().await.healthy,
        "the connection comes back by itself"
    );
    assert_eq!(
        kv.get(&cx, "b", "k").await.unwrap(),
        Some(b"v".to_vec()),
        "the data lives in JetStream, not in the provider"
    );
}
