//! The shared key-value conformance body against a private `redis-server`: two provider
//! instances (two hosts) with their own connections to database 0, and a link to database 1
//! as the "other store".

use std::sync::Arc;

use trellis_provider_keyvalue_redis::RedisProvider;
use trellis_testing::keyvalue::{Backend, conformance};
use trellis_testing::redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_provider_conforms() {
    let redis = RedisServer::start().unwrap();
    let backend =
        Backend::new([("url", redis.url()), ("page_size", "7".into())]).with_other_store([
            ("URL", format!("{}/1", redis.url())),
            ("page_size", "7".into()),
        ]);
    conformance(|| Arc::new(RedisProvider::new()), backend).await;
}
