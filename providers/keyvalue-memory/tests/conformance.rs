//! The shared key-value conformance body against the in-memory provider: two instances over
//! one `MemoryStore` stand for two hosts sharing a backend.

use std::sync::Arc;

use trellis_provider_keyvalue_memory::{MemoryProvider, MemoryStore};
use trellis_testing::keyvalue::{Backend, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_provider_conforms() {
    let store = MemoryStore::new();
    let backend = Backend::new([("page_size", "7")]);
    conformance(
        || Arc::new(MemoryProvider::with_store(store.clone())),
        backend,
    )
    .await;
}
