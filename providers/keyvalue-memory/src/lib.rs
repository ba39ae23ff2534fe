//! `wasi:keyvalue` (store, atomics, batch) kept in the provider's own memory.
//!
//! For development and tests: nothing to run beside the host, nothing survives the process.
//! Every link of one provider instance shares one [`MemoryStore`]: a map per bucket
//! identifier, so two components linked to the same provider see each other's keys, and a
//! link deleted and put again finds its data still there. Two instances (two hosts) share
//! nothing unless built with [`MemoryProvider::with_store`] on one store.
//!
//! ```text
//! trellis link put counter kv-memory wasi:keyvalue --interface store,atomics,batch
//! ```
//!
//! # Link target config
//!
//! | key         | default | meaning                                                    |
//! |-------------|---------|------------------------------------------------------------|
//! | `page_size` | `1000`  | how many keys one `list-keys` call returns at most         |
//!
//! No other setting: there is no backend to reach.
//!
//! # Semantics
//!
//! - The bucket identifier names a map; any identifier opens (and creates) one. `""` and
//!   `default` are the same bucket.
//! - `increment` parses the value as a decimal `u64` (absent = 0) and stores the sum as
//!   decimal text, under the store's lock: exact under any concurrency within the process.
//!   A non-numeric value or an overflow is `KvError::Other` naming the key.
//! - `list-keys` returns keys in byte order; the cursor is the offset of the next page in
//!   that order.
//! - A call through a link the provider was not given fails with `KvError::Other` saying which
//!   component and link, and how to put the link.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use trellis_provider_sdk::keyvalue::{
    self, KeyPage, KeyValue, KvError, add_to_counter, parse_counter,
};
use trellis_provider_sdk::{
    CallContext, Capabilities, InitContext, LinkConfig, LinkTable, Provider, ProviderError,
    ProviderIdCell, async_trait,
};

/// `list-keys` page size when the link does not set `page_size`.
pub use trellis_provider_sdk::keyvalue::DEFAULT_PAGE_SIZE;

/// Bucket → key → value.
type Buckets = HashMap<String, BTreeMap<String, Vec<u8>>>;

/// The data of a memory provider: bucket → key → value.
#[derive(Clone, Default)]
pub struct MemoryStore {
    buckets: Arc<Mutex<Buckets>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        // A panic while holding the lock cannot leave a map half-written (every change is one
        // insert or remove), so a poisoned lock is still usable.
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a link configured.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkState {
    page_size: usize,
}

impl LinkState {
    fn from_config(link: &LinkConfig) -> Result<Self, ProviderError> {
        Ok(Self {
            page_size: keyvalue::page_size(&link.target_config)?,
        })
    }
}

/// The in-memory key-value provider.
#[derive(Default)]
pub struct MemoryProvider {
    store: MemoryStore,
    links: LinkTable<LinkState>,
    provider_id: ProviderIdCell,
}

impl MemoryProvider {
    /// A provider with its own, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A provider over `store`, which other instances may share (two "hosts" in a test).
    pub fn with_store(store: MemoryStore) -> Self {
        Self {
            store,
            ..Self::default()
        }
    }

    /// The store this provider reads and writes.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    fn link(&self, cx: &CallContext) -> Result<Arc<LinkState>, KvError> {
        self.links.get(cx).ok_or_else(|| {
            let id = self.provider_id.get();
            keyvalue::unknown_link(cx, "the in-memory key-value provider", &id, None)
        })
    }
}

/// `""` and `default` name the same bucket.
fn bucket_name(bucket: &str) -> &str {
    if bucket.is_empty() { "default" } else { bucket }
}

#[async_trait]
impl Provider for MemoryProvider {
    async fn init(&self, init: &InitContext) -> Result<(), ProviderError> {
        self.provider_id.remember(init);
        Ok(())
    }

    async fn receive_link_config_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let state = LinkState::from_config(link)?;
        tracing::debug!(
            component = %link.source_id,
            link = %link.link_name,
            page_size = state.page_size,
            "in-memory key-value link put"
        );
        self.links.insert(link.target_key(), state);
        Ok(())
    }

    async fn delete_link_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        self.links.remove(&link.target_key());
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ProviderError> {
        self.links.drain();
        Ok(())
    }

    fn capabilities(self: Arc<Self>) -> Capabilities {
        Capabilities {
            keyvalue: Some(self),
            ..Default::default()
        }
    }
}

#[async_trait]
impl KeyValue for MemoryProvider {
    async fn open(&self, cx: &CallContext, bucket: &str) -> Result<(), KvError> {
        self.link(cx)?;
        self.store
            .lock()
            .entry(bucket_name(bucket).to_string())
            .or_default();
        Ok(())
    }

    async fn get(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError> {
        self.link(cx)?;
        Ok(self
            .store
            .lock()
            .get(bucket_name(bucket))
            .and_then(|b| b.get(key).cloned()))
    }

    async fn set(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        self.link(cx)?;
        self.store
            .lock()
            .entry(bucket_name(bucket).to_string())
            .or_default()
            .insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<(), KvError> {
        self.link(cx)?;
        if let Some(b) = self.store.lock().get_mut(bucket_name(bucket)) {
            b.remove(key);
        }
        Ok(())
    }

    async fn exists(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<bool, KvError> {
        self.link(cx)?;
        Ok(self
            .store
            .lock()
            .get(bucket_name(bucket))
            .is_some_and(|b| b.contains_key(key)))
    }

    async fn list_keys(
        &self,
        cx: &CallContext,
        bucket: &str,
        cursor: Option<u64>,
    ) -> Result<KeyPage, KvError> {
        let link = self.link(cx)?;
        let start = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let buckets = self.store.lock();
        let Some(b) = buckets.get(bucket_name(bucket)) else {
            return Ok(KeyPage::default());
        };
        let keys: Vec<String> = b.keys().skip(start).take(link.page_size).cloned().collect();
        let next = start.saturating_add(keys.len());
        let cursor = (next < b.len()).then_some(next as u64);
        Ok(KeyPage { keys, cursor })
    }

    async fn increment(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, KvError> {
        self.link(cx)?;
        let mut buckets = self.store.lock();
        let b = buckets.entry(bucket_name(bucket).to_string()).or_default();
        let current = parse_counter(key, b.get(key).map(Vec::as_slice))?;
        let new = add_to_counter(key, current, delta)?;
        b.insert(key.to_string(), new.to_string().into_bytes());
        Ok(new)
    }

    async fn get_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        self.link(cx)?;
        let buckets = self.store.lock();
        let b = buckets.get(bucket_name(bucket));
        Ok(keys
            .into_iter()
            .map(|key| {
                let value = b.and_then(|b| b.get(&key).cloned());
                value.map(|v| (key, v))
            })
            .collect())
    }

    async fn set_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        items: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        self.link(cx)?;
        self.store
            .lock()
            .entry(bucket_name(bucket).to_string())
            .or_default()
            .extend(items);
        Ok(())
    }

    async fn delete_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        self.link(cx)?;
        if let Some(b) = self.store.lock().get_mut(bucket_name(bucket)) {
            for key in &keys {
                b.remove(key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, config: &[(&str, &str)]) -> LinkConfig {
        LinkConfig {
            source_id: "counter".into(),
            target: "kv".into(),
            link_name: name.into(),
            target_config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..LinkConfig::default()
        }
    }

    #[tokio::test]
    async fn data_survives_a_link_deleted_and_put_again() {
        let provider = MemoryProvider::new();
        let cx = CallContext::new("counter", "default");
        provider
            .receive_link_config_as_target(&link("default", &[]))
            .await
            .unwrap();
        provider.set(&cx, "b", "k", b"v".to_vec()).await.unwrap();
        provider
            .delete_link_as_target(&link("default", &[]))
            .await
            .unwrap();
        assert!(provider.get(&cx, "b", "k").await.is_err());
        provider
            .receive_link_config_as_target(&link("default", &[]))
            .await
            .unwrap();
        assert_eq!(
            provider.get(&cx, "b", "k").await.unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[tokio::test]
    async fn the_empty_bucket_is_the_default_bucket() {
        let provider = MemoryProvider::new();
        let cx = CallContext::new("counter", "default");
        provider
            .receive_link_config_as_target(&link("default", &[]))
            .await
            .unwrap();
        provider.set(&cx, "", "k", b"v".to_vec()).await.unwrap();
        assert_eq!(
            provider.get(&cx, "default", "k").await.unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[tokio::test]
    async fn increment_refuses_to_overflow_and_keeps_the_value() {
        let provider = MemoryProvider::new();
        let cx = CallContext::new("counter", "default");
        provider
            .receive_link_config_as_target(&link("default", &[]))
            .await
            .unwrap();
        let max = u64::MAX.to_string().into_bytes();
        provider.set(&cx, "b", "big", max.clone()).await.unwrap();
        match provider.increment(&cx, "b", "big", 1).await {
            Err(KvError::Other(message)) => assert!(message.contains("big"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(provider.get(&cx, "b", "big").await.unwrap(), Some(max));
    }

    #[tokio::test]
    async fn a_bad_page_size_is_refused_at_link_put() {
        let provider = MemoryProvider::new();
        for bad in ["0", "-1", "many"] {
            let err = provider
                .receive_link_config_as_target(&link("default", &[("page_size", bad)]))
                .await
                .unwrap_err();
            assert!(err.0.contains("page_size"), "{err}");
        }
        assert!(provider.links.is_empty());
    }

    #[tokio::test]
    async fn list_keys_pages_in_order() {
        let provider = MemoryProvider::new();
        let cx = CallContext::new("counter", "default");
        provider
            .receive_link_config_as_target(&link("default", &[("page_size", "2")]))
            .await
            .unwrap();
        for key in ["c", "a", "b"] {
            provider.set(&cx, "b", key, Vec::new()).await.unwrap();
        }
        let first = provider.list_keys(&cx, "b", None).await.unwrap();
        assert_eq!(first.keys, ["a", "b"]);
        assert_eq!(first.cursor, Some(2));
        let last = provider.list_keys(&cx, "b", first.cursor).await.unwrap();
        assert_eq!(last.keys, ["c"]);
        assert_eq!(last.cursor, None);
        let beyond = provider.list_keys(&cx, "b", Some(99)).await.unwrap();
        assert_eq!(beyond, KeyPage::default());
    }
}
