//! The shared key-value conformance body against a private `nats-server -js`: two provider
//! instances (two hosts) with their own connections, and a link to a second private server as
//! the "other store".

use std::sync::Arc;

use trellis_provider_keyvalue_nats::NatsKvProvider;
use trellis_testing::keyvalue::{Backend, conformance};
use trellis_testing::nats::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_provider_conforms() {
    let nats = NatsServer::start().unwrap();
    let other = NatsServer::start().unwrap();
    let backend = Backend::new([("cluster_uri", nats.url()), ("page_size", "7".into())])
        .with_other_store([("url", other.url()), ("page_size", "7".into())]);
    conformance(|| Arc::new(NatsKvProvider::new()), backend).await;
}
