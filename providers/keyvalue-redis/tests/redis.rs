//! What is particular to the Redis provider: buckets as key prefixes, Redis's signed counters,
//! health checks against a server that went away.

use std::collections::BTreeMap;
use std::sync::Arc;

use trellis_provider_keyvalue_redis::RedisProvider;
use trellis_provider_sdk::keyvalue::{KeyValue, KvError};
use trellis_provider_sdk::{CallContext, Provider};
use trellis_testing::keyvalue::{COMPONENT, link, list_all, put_link};
use trellis_testing::redis::RedisServer;

async fn linked(redis: &RedisServer) -> (Arc<RedisProvider>, CallContext) {
    let provider = Arc::new(RedisProvider::new());
    let config = BTreeMap::from([("url".to_string(), redis.url())]);
    put_link(provider.as_ref(), &link("default", &config)).await;
    (provider, CallContext::new(COMPONENT, "default"))
}

#[tokio::test]
async fn a_bucket_is_a_key_prefix_and_the_default_bucket_is_plain() {
    let redis = RedisServer::start().unwrap();
    let (kv, cx) = linked(&redis).await;
    kv.set(&cx, "orders", "k", b"v".to_vec()).await.unwrap();
    assert_eq!(
        kv.get(&cx, "default", "orders:k").await.unwrap(),
        Some(b"v".to_vec())
    );
    kv.set(&cx, "", "plain", b"p".to_vec()).await.unwrap();
    assert_eq!(
        kv.get(&cx, "default", "plain").await.unwrap(),
        Some(b"p".to_vec())
    );
    let (mut keys, _) = list_all(kv.as_ref(), &cx, "default").await;
    keys.sort();
    assert_eq!(
        keys,
        ["orders:k", "plain"],
        "the default bucket sees every key"
    );
    let (keys, _) = list_all(kv.as_ref(), &cx, "orders").await;
    assert_eq!(keys, ["k"], "a bucket lists its keys without the prefix");
    // Glob characters in a bucket name match only themselves.
    kv.set(&cx, "a*", "x", Vec::new()).await.unwrap();
    kv.set(&cx, "ab", "y", Vec::new()).await.unwrap();
    let (keys, _) = list_all(kv.as_ref(), &cx, "a*").await;
    assert_eq!(keys, ["x"]);
}

#[tokio::test]
async fn counters_beyond_redis_range_fail_naming_the_key() {
    let redis = RedisServer::start().unwrap();
    let (kv, cx) = linked(&redis).await;
    kv.set(&cx, "c", "top", i64::MAX.to_string().into_bytes())
        .await
        .unwrap();
    for (key, delta) in [("top", 1), ("small", u64::MAX)] {
        match kv.increment(&cx, "c", key, delta).await {
            Err(KvError::Other(message)) => assert!(message.contains(key), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        kv.get(&cx, "c", "top").await.unwrap(),
        Some(i64::MAX.to_string().into_bytes())
    );
    assert_eq!(kv.get(&cx, "c", "small").await.unwrap(), None);
}

#[tokio::test]
async fn health_reports_a_server_that_went_away() {
    let mut redis = RedisServer::start().unwrap();
    let (kv, cx) = linked(&redis).await;
    assert!(kv.health().await.healthy);
    redis.kill();
    let health = kv.health().await;
    assert!(!health.healthy);
    assert!(health.message.contains(&redis.url()), "{}", health.message);
    match kv.get(&cx, "b", "k").await {
        Err(KvError::Other(message)) => assert!(message.contains(&redis.url()), "{message}"),
        other => panic!("{other:?}"),
    }
}
