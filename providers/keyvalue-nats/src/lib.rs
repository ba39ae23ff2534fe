//! `wasi:keyvalue` (store, atomics, batch) on NATS JetStream key-value buckets.
//!
//! Each link gets its own NATS connection, opened when the link is put, from the link's
//! target config; it reconnects by itself if the server goes away. The NATS server must run
//! JetStream (`nats-server -js`, version 2.10 or later).
//!
//! ```text
//! trellis config put orders-kv cluster_uri=nats://nats.internal:4222
//! trellis link put counter kv-nats wasi:keyvalue --interface store,atomics,batch \
//!     --target-config orders-kv
//! ```
//!
//! # Link target config
//!
//! | key                          | default                 | meaning                          |
//! |------------------------------|-------------------------|----------------------------------|
//! | `cluster_uri` (or `url`)     | `nats://127.0.0.1:4222` | the NATS server(s), comma-separated for several |
//! | `js_domain`                  | none                    | the JetStream domain of the buckets (e.g. a leaf node's hub) |
//! | `page_size`                  | `1000`                  | how many keys one `list-keys` call returns at most |
//!
//! `cluster_uri` is wasmCloud's name for the setting; when both are given it wins over `url`.
//!
//! # How identifiers map onto JetStream
//!
//! - The bucket identifier a component opens **is the JetStream KV bucket name** (`""` means
//!   `default`). A bucket that does not exist yet is **created** on first use, with history 1
//!   and file storage; make it yourself beforehand (`nats kv add NAME …`) for other settings
//!   such as replicas or a TTL: an existing bucket is used as it is. Bucket names are letters,
//!   digits, `-` and `_`; keys are letters, digits and `-/_=.`, not starting or ending with
//!   `.` — anything else is `KvError::Other` saying so.
//! - `increment` reads the entry and writes the sum with `update(key, value, revision)`, a
//!   compare-and-set on the entry's revision, retried when another writer got there first:
//!   exact across any number of hosts. Within one provider, increments of one key wait for each
//!   other instead of racing, so contention is between hosts only. Counters are decimal text
//!   (`get` returns e.g. `b"42"`); a non-numeric value is `KvError::Other` naming the key.
//! - `delete` writes a delete marker (deleted keys read as absent and are not listed).
//! - `list-keys` reads every key of the bucket (`keys()`), sorts them, and returns the page
//!   starting at the cursor, which is an offset in that order.
//! - A health check reports whether every link's connection is up.
//! - A call through a link the provider was not given fails with `KvError::Other` saying which
//!   component and link, and how to put the link.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, kv};
use futures::{StreamExt, TryStreamExt, future};
use trellis_provider_sdk::keyvalue::{
    self, KeyPage, KeyValue, KvError, add_to_counter, parse_counter,
};
use trellis_provider_sdk::link::setting;
use trellis_provider_sdk::{
    CallContext, Capabilities, HealthStatus, InitContext, LinkConfig, LinkTable, Provider,
    ProviderError, ProviderIdCell, async_trait,
};

/// `url` with any `user:password@` (or token) replaced by `***@`, for messages and logs.
pub use trellis_provider_sdk::link::redact_userinfo as redact;

/// The server used when a link sets neither `cluster_uri` nor `url`.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";
/// `list-keys` page size when the link does not set `page_size`.
pub use trellis_provider_sdk::keyvalue::DEFAULT_PAGE_SIZE;

/// How long connecting to NATS may take at link put.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many compare-and-set rounds one increment may take before giving up.
const MAX_INCREMENT_ATTEMPTS: u32 = 500;
/// How many locks increments of this provider spread their keys over.
const INCREMENT_STRIPES: usize = 64;

/// The settings of one link, read from its target config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// The server URLs.
    pub urls: Vec<String>,
    pub js_domain: Option<String>,
    pub page_size: usize,
}

impl NatsSettings {
    /// Reads `cluster_uri`/`url`, `js_domain` and `page_size`, with their defaults.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        let url = setting(config, &["cluster_uri", "url"]).unwrap_or(DEFAULT_URL);
        let urls: Vec<String> = url
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(ProviderError::new(format!(
                "link setting `cluster_uri` names no server: `{url}`"
            )));
        }
        Ok(Self {
            urls,
            js_domain: setting(config, &["js_domain"]).map(str::to_string),
            page_size: keyvalue::page_size(config)?,
        })
    }

    /// The servers without credentials, for messages and logs.
    pub fn server(&self) -> String {
        self.urls
            .iter()
            .map(|u| redact(u))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One link's connection and the buckets it opened.
struct LinkState {
    /// The servers without credentials, for messages.
    server: String,
    client: async_nats::Client,
    js: jetstream::Context,
    page_size: usize,
    stores: RwLock<HashMap<String, kv::Store>>,
}

/// The NATS JetStream key-value provider.
pub struct NatsKvProvider {
    links: LinkTable<LinkState>,
    provider_id: ProviderIdCell,
    /// Increments of keys that hash to one stripe run one at a time in this provider.
    increment_locks: Vec<tokio::sync::Mutex<()>>,
    hasher: RandomState,
}

impl Default for NatsKvProvider {
    fn default() -> Self {
        Self {
            links: LinkTable::new(),
            provider_id: ProviderIdCell::default(),
            increment_locks: (0..INCREMENT_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: RandomState::new(),
        }
    }
}

impl NatsKvProvider {
    pub fn new() -> Self {
        Self::default()
    }

    fn link(&self, cx: &CallContext) -> Result<Arc<LinkState>, KvError> {
        self.links.get(cx).ok_or_else(|| {
            let id = self.provider_id.get();
            let example = Some("cluster_uri=nats://HOST:PORT");
            keyvalue::unknown_link(cx, "the NATS key-value provider", &id, example)
        })
    }

    fn increment_lock(&self, server: &str, bucket: &str, key: &str) -> &tokio::sync::Mutex<()> {
        let hash = self.hasher.hash_one((server, bucket, key));
        let stripe = (hash % INCREMENT_STRIPES as u64) as usize;
        &self.increment_locks[stripe % self.increment_locks.len()]
    }
}

/// `""` means the bucket `default`.
fn bucket_name(bucket: &str) -> &str {
    if bucket.is_empty() { "default" } else { bucket }
}

/// Whether JetStream accepts `name` as a KV bucket name.
fn valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether JetStream accepts `key` as a KV key.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'=' | b'.'))
}

fn check_key(key: &str) -> Result<(), KvError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(KvError::Other(format!(
            "`{key}` is not a valid JetStream KV key: use letters, digits and `-/_=.`, not \
             starting or ending with `.`"
        )))
    }
}

/// A pause before compare-and-set round `attempt` (0: none), growing and jittered so that
/// contending hosts spread out.
async fn backoff(attempt: u32, hasher: &RandomState) {
    if attempt == 0 {
        return;
    }
    let ceiling_us = 100u64.saturating_mul(1 << attempt.min(8)); // up to 25.6 ms
    let jitter = hasher.hash_one((attempt, std::time::Instant::now())) % ceiling_us;
    tokio::time::sleep(Duration::from_micros(jitter)).await;
}

async fn connect(settings: &NatsSettings) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .name("trellis-keyvalue-nats")
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(settings.urls.clone())
        .await
        .map_err(|e| e.to_string())
}

impl LinkState {
    fn fail(&self, what: &str, err: impl std::fmt::Display) -> KvError {
        KvError::Other(format!("nats {}: {what} failed: {err}", self.server))
    }

    /// The JetStream KV bucket of `bucket`, created when missing.
    async fn store(&self, bucket: &str) -> Result<kv::Store, KvError> {
        let name = bucket_name(bucket);
        if let Some(store) = self.stores.read().ok().and_then(|s| s.get(name).cloned()) {
            return Ok(store);
        }
        if !valid_bucket_name(name) {
            return Err(KvError::Other(format!(
                "`{bucket}` is not a valid JetStream KV bucket name: use letters, digits, `-` \
                 and `_`"
            )));
        }
        let store = match self.js.get_key_value(name).await {
            Ok(store) => store,
            Err(get_err) => {
                let config = kv::Config {
                    bucket: name.to_string(),
                    history: 1,
                    ..Default::default()
                };
                match self.js.create_key_value(config).await {
                    Ok(store) => {
                        tracing::info!(server = %self.server, bucket = name, "created JetStream KV bucket");
                        store
                    }
                    // Another host may have created it meanwhile, with other settings.
                    Err(create_err) => self.js.get_key_value(name).await.map_err(|_| {
                        self.fail(
                            &format!("opening or creating KV bucket `{name}`"),
                            format!("{create_err} (opening it: {get_err}); is JetStream enabled?"),
                        )
                    })?,
                }
            }
        };
        if let Ok(mut stores) = self.stores.write() {
            stores.insert(name.to_string(), store.clone());
        }
        Ok(store)
    }

    async fn get(&self, store: &kv::Store, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        store
            .get(key)
            .await
            .map(|v| v.map(|b| b.to_vec()))
            .map_err(|e| self.fail(&format!("get `{key}` in `{}`", store.name), e))
    }

    async fn put(&self, store: &kv::Store, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        check_key(key)?;
        store
            .put(key, value.into())
            .await
            .map(drop)
            .map_err(|e| self.fail(&format!("put `{key}` in `{}`", store.name), e))
    }

    async fn delete(&self, store: &kv::Store, key: &str) -> Result<(), KvError> {
        check_key(key)?;
        store
            .delete(key)
            .await
            .map_err(|e| self.fail(&format!("delete `{key}` in `{}`", store.name), e))
    }
}

#[async_trait]
impl Provider for NatsKvProvider {
    async fn init(&self, init: &InitContext) -> Result<(), ProviderError> {
        self.provider_id.remember(init);
        Ok(())
    }

    async fn receive_link_config_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let settings = NatsSettings::from_config(&link.target_config)?;
        let server = settings.server();
        let client = connect(&settings).await.map_err(|e| {
            ProviderError::new(format!(
                "link `{}` of component `{}`: cannot connect to nats {server}: {e} (set the \
                 link's target config `cluster_uri` to a reachable server)",
                link.link_name, link.source_id
            ))
        })?;
        let js = match &settings.js_domain {
            Some(domain) => jetstream::with_domain(client.clone(), domain),
            None => jetstream::new(client.clone()),
        };
        tracing::debug!(
            component = %link.source_id,
            link = %link.link_name,
            %server,
            js_domain = ?settings.js_domain,
            "nats key-value link put"
        );
        self.links.insert(
            link.target_key(),
            LinkState {
                server,
                client,
                js,
                page_size: settings.page_size,
                stores: RwLock::new(HashMap::new()),
            },
        );
        Ok(())
    }

    async fn delete_link_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        if let Some(state) = self.links.remove(&link.target_key()) {
            // Flush what was published; the connection closes when the last call using it ends.
            let _ = state.client.flush().await;
        }
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        let down: Vec<String> = self
            .links
            .all()
            .into_iter()
            .filter(|(_, link)| link.client.connection_state() != State::Connected)
            .map(|(key, link)| {
                format!(
                    "link `{}` of `{}`: not connected to nats {}",
                    key.link_name, key.component, link.server
                )
            })
            .collect();
        if down.is_empty() {
            HealthStatus::healthy()
        } else {
            HealthStatus::unhealthy(down.join("; "))
        }
    }

    async fn shutdown(&self) -> Result<(), ProviderError> {
        for (_, state) in self.links.drain() {
            let _ = state.client.flush().await;
        }
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
impl KeyValue for NatsKvProvider {
    async fn open(&self, cx: &CallContext, bucket: &str) -> Result<(), KvError> {
        let link = self.link(cx)?;
        link.store(bucket).await.map(drop)
    }

    async fn get(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError> {
        let link = self.link(cx)?;
        let store = link.store(bucket).await?;
        link.get(&store, key).await
    }

    async fn set(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        let link = self.link(cx)?;
        let store = link.store(bucket).await?;
        link.put(&store, key, value).await
    }

    async fn delete(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<(), KvError> {
        let link = self.link(cx)?;
        let store = link.store(bucket).await?;
        link.delete(&store, key).await
    }

    async fn exists(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<bool, KvError> {
        let link = self.link(cx)?;
        let store = link.store(bucket).await?;
        Ok(link.get(&store, key).await?.is_some())
    }

    async fn list_keys(
        &self,
        cx: &CallContext,
        bucket: &str,
        cursor: Option<u64>,
    ) -> Result<KeyPage, KvError> {
        let link = self.link(cx)?;
        let store = link.store(bucket).await?;
        let what = format!("listing the keys of `{}`", store.name);
        let mut keys: Vec<String> = store
            .keys()
            .await
            .map_err(|e| link.fail(&what, e))?
            .try_collect()
            .await
            .map_err(|e| link.fail(&what, e))?;
        keys.sort_unstable();
        keys.dedup();
        let start = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let total = keys.len();
        let page: Vec<String> = keys.into_iter().skip(start).take(link.page_size).collect();
        let next = start.saturating_add(page.len());
        Ok(KeyPage {
            keys: page,
            cursor: (next < total).then_some(next as u64),
        })
    }

    async fn increment(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, KvError> {
        let link = self.link(cx)?;
        let store = link.store(bucket).await?;
        check_key(key)?;
        let _turn = self
            .increment_lock(&link.server, &store.name, key)
            .lock()
            .await;
        let what = format!("increment `{key}` in `{}`", store.name);
        for attempt in 0..MAX_INCREMENT_ATTEMPTS {
            backoff(attempt, &self.hasher).await;
            let entry = store.entry(key).await.map_err(|e| link.fail(&what, e))?;
            let (current, revision) = match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    (parse_counter(key, Some(&entry.value))?, entry.revision)
                }
                // Deleted or purged: start again from 0 over the marker's revision.
                Some(entry) => (0, entry.revision),
                // Never written: revision 0 means "only if there is still no entry".
                None => (0, 0),
            };
            let new = add_to_counter(key, current, delta)?;
            match store.update(key, new.to_string().into(), revision).await {
                Ok(_) => return Ok(new),
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::trace!(
                        key,
                        attempt,
                        "increment lost a compare-and-set race; retrying"
                    );
                }
                Err(err) => return Err(link.fail(&what, err)),
            }
        }
        Err(KvError::Other(format!(
            "nats {}: {what} failed: still contended after {MAX_INCREMENT_ATTEMPTS} \
             compare-and-set attempts; try again",
            link.server
        )))
    }

    async fn get_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let link = self.link(cx)?;
        let store = link.store(bucket).await?;
        let link = link.as_ref();
        let store = &store;
        futures::stream::iter(keys)
            .map(|key| async move {
                let value = link.get(store, &key).await?;
                Ok(value.map(|v| (key, v)))
            })
            .buffered(64)
            .try_collect()
            .await
    }

    async fn set_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        items: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        let link = self.link(cx)?;
        let store = link.store(bucket).await?;
        for (key, _) in &items {
            check_key(key)?;
        }
        let puts = items.into_iter().map(|(key, value)| {
            let (link, store) = (&link, &store);
            async move { link.put(store, &key, value).await }
        });
        future::try_join_all(puts).await.map(drop)
    }

    async fn delete_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        let link = self.link(cx)?;
        let store = link.store(bucket).await?;
        for key in &keys {
            check_key(key)?;
        }
        let deletes = keys.iter().map(|key| link.delete(&store, key));
        future::try_join_all(deletes).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_default_and_prefer_cluster_uri() {
        let defaults = NatsSettings::from_config(&config(&[])).unwrap();
        assert_eq!(defaults.urls, [DEFAULT_URL]);
        assert_eq!(defaults.js_domain, None);
        assert_eq!(defaults.page_size, DEFAULT_PAGE_SIZE);
        let both = NatsSettings::from_config(&config(&[
            ("cluster_uri", "nats://a:1, nats://b:2"),
            ("url", "nats://c:3"),
            ("js_domain", "hub"),
        ]))
        .unwrap();
        assert_eq!(both.urls, ["nats://a:1", "nats://b:2"]);
        assert_eq!(both.js_domain.as_deref(), Some("hub"));
        let url = NatsSettings::from_config(&config(&[("url", "nats://c:3")])).unwrap();
        assert_eq!(url.urls, ["nats://c:3"]);
        let err = NatsSettings::from_config(&config(&[("page_size", "x")])).unwrap_err();
        assert!(err.0.contains("page_size"), "{err}");
    }

    #[test]
    fn names_and_keys_are_checked_like_jetstream_does() {
        assert!(valid_bucket_name("orders-2024_a"));
        assert!(!valid_bucket_name("orders.eu"));
        assert!(!valid_bucket_name(""));
        assert!(valid_key("a/b=c.d-e_f"));
        assert!(!valid_key(".hidden"));
        assert!(!valid_key("with space"));
        assert!(!valid_key(""));
        assert_eq!(bucket_name(""), "default");
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_the_link_put_with_the_url() {
        let port = trellis_testing::nats::free_port().unwrap();
        let provider = NatsKvProvider::new();
        let link = LinkConfig {
            source_id: "counter".into(),
            link_name: "default".into(),
            target_config: config(&[("cluster_uri", &format!("nats://u:pw@127.0.0.1:{port}"))]),
            ..LinkConfig::default()
        };
        let err = provider
            .receive_link_config_as_target(&link)
            .await
            .unwrap_err();
        assert!(err.0.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(!err.0.contains("pw"), "{err}");
        assert!(provider.links.is_empty());
    }
}
