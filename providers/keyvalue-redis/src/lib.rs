//! `wasi:keyvalue` (store, atomics, batch) on Redis.
//!
//! Each link gets its own Redis connection (a `ConnectionManager`, which reconnects by
//! itself), opened when the link is put, from the link's target config:
//!
//! ```text
//! trellis config put cache-redis url=redis://cache.internal:6379/2
//! trellis link put counter kv-redis wasi:keyvalue --interface store,atomics,batch \
//!     --target-config cache-redis
//! ```
//!
//! # Link target config
//!
//! | key              | default                  | meaning                                     |
//! |------------------|--------------------------|---------------------------------------------|
//! | `url` (or `URL`) | `redis://127.0.0.1:6379` | the Redis server: `redis://[user:pass@]host:port[/db]`, or `rediss://` for TLS |
//! | `page_size`      | `1000`                   | the `COUNT` hint of each `SCAN` behind `list-keys` |
//!
//! # How identifiers map onto Redis
//!
//! - A bucket identifier is a **key prefix**: key `k` of bucket `orders` is the Redis key
//!   `orders:k`. The bucket `""` or `default` has no prefix (key `k` is `k`), as wasmCloud's
//!   Redis provider treats keys plainly; so listing the default bucket lists every key of the
//!   database, prefixed ones included. Buckets need no creation: `open` only checks that the
//!   server answers.
//! - `increment` is `INCRBY` (atomic in Redis, exact across any number of hosts); counters
//!   are stored as decimal text, so `get` returns e.g. `b"42"`. Redis counters are signed
//!   64-bit: a delta or total above `i64::MAX`, or a non-numeric value, is `KvError::Other`
//!   naming the key.
//! - `list-keys` is `SCAN cursor MATCH prefix* COUNT page_size`: the cursor is Redis's own.
//!   A page may hold fewer keys than `page_size` (even none) before the last page, whose
//!   cursor is `None`. Keys that are not UTF-8 are skipped.
//! - `get-many` is `MGET`, `set-many` is `MSET` (atomic), `delete-many` is `DEL`.
//! - A health check `PING`s every link's server.
//! - A call through a link the provider was not given fails with `KvError::Other` saying which
//!   component and link, and how to put the link.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use trellis_provider_sdk::keyvalue::{self, KeyPage, KeyValue, KvError};
use trellis_provider_sdk::link::setting;
use trellis_provider_sdk::{
    CallContext, Capabilities, HealthStatus, InitContext, LinkConfig, LinkTable, Provider,
    ProviderError, ProviderIdCell, async_trait,
};

/// `url` with any `user:password@` replaced by `***@`, for messages and logs.
pub use trellis_provider_sdk::link::redact_userinfo as redact;

/// The server used when a link sets no `url`.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// `SCAN`'s `COUNT` when the link does not set `page_size`.
pub use trellis_provider_sdk::keyvalue::DEFAULT_PAGE_SIZE;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may wait for its answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of one link, read from its target config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub url: String,
    pub page_size: usize,
}

impl RedisSettings {
    /// Reads `url`/`URL` and `page_size`, with their defaults.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        Ok(Self {
            url: setting(config, &["url", "URL"])
                .unwrap_or(DEFAULT_URL)
                .to_string(),
            page_size: keyvalue::page_size(config)?,
        })
    }
}

/// One link's connection.
struct LinkState {
    /// The server's URL without credentials, for messages.
    server: String,
    conn: ConnectionManager,
    page_size: usize,
}

/// The Redis key-value provider.
#[derive(Default)]
pub struct RedisProvider {
    links: LinkTable<LinkState>,
    provider_id: ProviderIdCell,
}

impl RedisProvider {
    pub fn new() -> Self {
        Self::default()
    }

    fn link(&self, cx: &CallContext) -> Result<Arc<LinkState>, KvError> {
        self.links.get(cx).ok_or_else(|| {
            let id = self.provider_id.get();
            let example = Some("url=redis://HOST:PORT");
            keyvalue::unknown_link(cx, "the Redis key-value provider", &id, example)
        })
    }
}

/// The Redis key of `key` in `bucket`: `bucket:key`, or `key` for `""` and `default`.
pub fn redis_key(bucket: &str, key: &str) -> String {
    format!("{}{key}", prefix(bucket))
}

/// The key prefix of a bucket.
fn prefix(bucket: &str) -> String {
    if bucket.is_empty() || bucket == "default" {
        String::new()
    } else {
        format!("{bucket}:")
    }
}

/// `text` with Redis glob characters escaped, for a `MATCH` pattern.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Whether an `INCRBY` failed because of the value it found (not the connection).
fn is_value_error(err: &redis::RedisError) -> bool {
    let text = err.to_string();
    ["not an integer", "overflow", "WRONGTYPE"]
        .iter()
        .any(|needle| text.contains(needle))
}

async fn connect(settings: &RedisSettings) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(settings.url.as_str()).map_err(|e| e.to_string())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(3);
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| e.to_string())
}

impl LinkState {
    fn fail(&self, what: &str, err: redis::RedisError) -> KvError {
        KvError::Other(format!("redis {}: {what} failed: {err}", self.server))
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        what: &str,
    ) -> Result<T, KvError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| self.fail(what, e))
    }
}

#[async_trait]
impl Provider for RedisProvider {
    async fn init(&self, init: &InitContext) -> Result<(), ProviderError> {
        self.provider_id.remember(init);
        Ok(())
    }

    async fn receive_link_config_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let settings = RedisSettings::from_config(&link.target_config)?;
        let server = redact(&settings.url);
        let conn = connect(&settings).await.map_err(|e| {
            ProviderError::new(format!(
                "link `{}` of component `{}`: cannot connect to redis {server}: {e} (set the \
                 link's target config `url` to a reachable server)",
                link.link_name, link.source_id
            ))
        })?;
        tracing::debug!(
            component = %link.source_id,
            link = %link.link_name,
            %server,
            "redis key-value link put"
        );
        self.links.insert(
            link.target_key(),
            LinkState {
                server,
                conn,
                page_size: settings.page_size,
            },
        );
        Ok(())
    }

    async fn delete_link_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        self.links.remove(&link.target_key());
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        let mut failures = Vec::new();
        for (key, link) in self.links.all() {
            let pong: Result<String, _> = link.query(&redis::cmd("PING"), "PING").await;
            if let Err(err) = pong {
                failures.push(format!(
                    "link `{}` of `{}`: {err}",
                    key.link_name, key.component
                ));
            }
        }
        if failures.is_empty() {
            HealthStatus::healthy()
        } else {
            HealthStatus::unhealthy(failures.join("; "))
        }
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
impl KeyValue for RedisProvider {
    async fn open(&self, cx: &CallContext, bucket: &str) -> Result<(), KvError> {
        let link = self.link(cx)?;
        let what = format!("opening bucket `{bucket}`");
        let _: String = link.query(&redis::cmd("PING"), &what).await?;
        Ok(())
    }

    async fn get(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError> {
        let link = self.link(cx)?;
        let key = redis_key(bucket, key);
        link.query(redis::cmd("GET").arg(&key), &format!("GET {key}"))
            .await
    }

    async fn set(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        let link = self.link(cx)?;
        let key = redis_key(bucket, key);
        link.query(
            redis::cmd("SET").arg(&key).arg(value),
            &format!("SET {key}"),
        )
        .await
    }

    async fn delete(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<(), KvError> {
        let link = self.link(cx)?;
        let key = redis_key(bucket, key);
        let _: u64 = link
            .query(redis::cmd("DEL").arg(&key), &format!("DEL {key}"))
            .await?;
        Ok(())
    }

    async fn exists(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<bool, KvError> {
        let link = self.link(cx)?;
        let key = redis_key(bucket, key);
        link.query(redis::cmd("EXISTS").arg(&key), &format!("EXISTS {key}"))
            .await
    }

    async fn list_keys(
        &self,
        cx: &CallContext,
        bucket: &str,
        cursor: Option<u64>,
    ) -> Result<KeyPage, KvError> {
        let link = self.link(cx)?;
        let prefix = prefix(bucket);
        let pattern = format!("{}*", escape_glob(&prefix));
        let (next, raw): (u64, Vec<Vec<u8>>) = link
            .query(
                redis::cmd("SCAN")
                    .arg(cursor.unwrap_or(0))
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(link.page_size),
                &format!("SCAN MATCH {pattern}"),
            )
            .await?;
        let mut keys = Vec::with_capacity(raw.len());
        for key in raw {
            match String::from_utf8(key) {
                Ok(key) => {
                    if let Some(stripped) = key.strip_prefix(&prefix) {
                        keys.push(stripped.to_string());
                    }
                }
                Err(err) => {
                    tracing::debug!(server = %link.server, key = ?err.as_bytes(), "skipping a key that is not UTF-8");
                }
            }
        }
        Ok(KeyPage {
            keys,
            cursor: (next != 0).then_some(next),
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
        let Ok(by) = i64::try_from(delta) else {
            return Err(KvError::Other(format!(
                "cannot increment `{key}` by {delta}: Redis counters stop at {}",
                i64::MAX
            )));
        };
        let redis_key = redis_key(bucket, key);
        let mut conn = link.conn.clone();
        let result: Result<i64, _> = redis::cmd("INCRBY")
            .arg(&redis_key)
            .arg(by)
            .query_async(&mut conn)
            .await;
        match result {
            Ok(value) => u64::try_from(value).map_err(|_| {
                KvError::Other(format!(
                    "cannot increment `{key}`: it now holds {value}, below 0 (it was negative)"
                ))
            }),
            // "ERR value is not an integer or out of range", "ERR increment or decrement
            // would overflow", "WRONGTYPE …": the value, not the connection, is at fault.
            Err(err) if is_value_error(&err) => Err(KvError::Other(format!(
                "cannot increment `{key}` by {delta}: its value is not a decimal integer Redis \
                 can add to ({err})"
            ))),
            Err(err) => Err(link.fail(&format!("INCRBY {redis_key}"), err)),
        }
    }

    async fn get_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let link = self.link(cx)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in &keys {
            cmd.arg(redis_key(bucket, key));
        }
        let values: Vec<Option<Vec<u8>>> = link
            .query(&cmd, &format!("MGET of {} keys", keys.len()))
            .await?;
        if values.len() != keys.len() {
            return Err(KvError::Other(format!(
                "redis {}: MGET of {} keys answered {} values",
                link.server,
                keys.len(),
                values.len()
            )));
        }
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|v| (key, v)))
            .collect())
    }

    async fn set_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        items: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        let link = self.link(cx)?;
        if items.is_empty() {
            return Ok(());
        }
        let count = items.len();
        let mut cmd = redis::cmd("MSET");
        for (key, value) in items {
            cmd.arg(redis_key(bucket, &key)).arg(value);
        }
        link.query(&cmd, &format!("MSET of {count} keys")).await
    }

    async fn delete_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        let link = self.link(cx)?;
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("DEL");
        for key in &keys {
            cmd.arg(redis_key(bucket, key));
        }
        let _: u64 = link
            .query(&cmd, &format!("DEL of {} keys", keys.len()))
            .await?;
        Ok(())
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
    fn settings_default_and_accept_both_url_spellings() {
        let defaults = RedisSettings::from_config(&config(&[])).unwrap();
        assert_eq!(defaults.url, DEFAULT_URL);
        assert_eq!(defaults.page_size, DEFAULT_PAGE_SIZE);
        let lower = RedisSettings::from_config(&config(&[("url", "redis://a:1")])).unwrap();
        assert_eq!(lower.url, "redis://a:1");
        let upper = RedisSettings::from_config(&config(&[("URL", "redis://b:2")])).unwrap();
        assert_eq!(upper.url, "redis://b:2");
        let err = RedisSettings::from_config(&config(&[("page_size", "0")])).unwrap_err();
        assert!(err.0.contains("page_size"), "{err}");
    }

    #[test]
    fn buckets_are_key_prefixes_except_the_default() {
        assert_eq!(redis_key("orders", "k"), "orders:k");
        assert_eq!(redis_key("", "k"), "k");
        assert_eq!(redis_key("default", "k"), "k");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_the_link_put_with_the_url() {
        let port = trellis_testing::nats::free_port().unwrap();
        let provider = RedisProvider::new();
        let link = LinkConfig {
            source_id: "counter".into(),
            link_name: "default".into(),
            target_config: config(&[("url", &format!("redis://u:pw@127.0.0.1:{port}"))]),
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
