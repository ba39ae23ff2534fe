//! The key-value capability: `wasi:keyvalue@0.2.0-draft` (`store`, `atomics`, `batch`).
//!
//! A component opens a bucket by identifier (`store::open("orders")`), then reads and writes
//! keys in it. A provider maps the identifier onto its backend (a JetStream KV bucket, a
//! Redis key prefix, a map in memory); which backend, and where, comes from the link's target
//! config. Values are bytes; `increment` treats a value as a decimal `u64` (wasmCloud's
//! convention), so `get` of a counter returns e.g. `b"42"`.
//!
//! Errors are [`KvError`], the WIT `error` variant: `no-such-store`, `access-denied`,
//! `other(string)`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::link::{CallContext, positive_setting};
use crate::provider::ProviderError;

/// The interfaces a key-value provider serves.
pub const INTERFACES: [&str; 3] = [
    "wasi:keyvalue/store",
    "wasi:keyvalue/atomics",
    "wasi:keyvalue/batch",
];

/// The link target config key for how many keys one `list-keys` call returns at most.
pub const PAGE_SIZE: &str = "page_size";
/// The `list-keys` page size when a link does not set `page_size`.
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// The arguments of `trellis link put` that link a component to a key-value provider.
pub const LINK_PUT_ARGS: &str = "wasi:keyvalue --interface store,atomics,batch";

/// `wasi:keyvalue/store.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum KvError {
    /// The bucket identifier names no store this provider can open.
    #[error("no such store")]
    NoSuchStore,
    /// The link does not allow this operation.
    #[error("access denied")]
    AccessDenied,
    /// Anything else: the backend's error, with what to do about it.
    #[error("{0}")]
    Other(String),
}

/// One page of keys (`store.list-keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<u64>,
}

/// A key-value provider. `bucket` is the identifier the component passed to `store::open`.
#[async_trait]
pub trait KeyValue: Send + Sync + 'static {
    /// `store.open`: checks that the bucket can be used through this link.
    async fn open(&self, cx: &CallContext, bucket: &str) -> Result<(), KvError>;

    /// `bucket.get`: the value, or `None` when the key is absent.
    async fn get(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError>;

    /// `bucket.set`: creates or replaces.
    async fn set(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), KvError>;

    /// `bucket.delete`: absent keys are not an error.
    async fn delete(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<(), KvError>;

    /// `bucket.exists`.
    async fn exists(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<bool, KvError>;

    /// `bucket.list-keys`, one page from `cursor` (`None`: from the start).
    async fn list_keys(
        &self,
        cx: &CallContext,
        bucket: &str,
        cursor: Option<u64>,
    ) -> Result<KeyPage, KvError>;

    /// `atomics.increment`: adds `delta` to the decimal `u64` at `key` (absent = 0) as one
    /// atomic step and returns the new value. Concurrent increments from any number of hosts
    /// must never lose an update.
    async fn increment(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, KvError>;

    /// `batch.get-many`: for each key, its value or `None`.
    async fn get_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.get(cx, bucket, &key).await?;
            found.push(value.map(|v| (key, v)));
        }
        Ok(found)
    }

    /// `batch.set-many`.
    async fn set_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        items: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        for (key, value) in items {
            self.set(cx, bucket, &key, value).await?;
        }
        Ok(())
    }

    /// `batch.delete-many`.
    async fn delete_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        for key in keys {
            self.delete(cx, bucket, &key).await?;
        }
        Ok(())
    }
}

/// Parses a stored counter for `increment` (a decimal `u64`; absent = 0).
pub fn parse_counter(key: &str, value: Option<&[u8]>) -> Result<u64, KvError> {
    let Some(value) = value else { return Ok(0) };
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            KvError::Other(format!(
                "cannot increment `{key}`: its value is not a decimal u64 ({} bytes)",
                value.len()
            ))
        })
}

/// Adds `delta` to a counter, refusing to wrap.
pub fn add_to_counter(key: &str, current: u64, delta: u64) -> Result<u64, KvError> {
    current.checked_add(delta).ok_or_else(|| {
        KvError::Other(format!(
            "cannot increment `{key}` by {delta}: {current} + {delta} overflows u64"
        ))
    })
}

/// The `page_size` a link's target config sets: a whole number above 0, or
/// [`DEFAULT_PAGE_SIZE`] when it sets none.
pub fn page_size(config: &BTreeMap<String, String>) -> Result<usize, ProviderError> {
    positive_setting(config, PAGE_SIZE, DEFAULT_PAGE_SIZE)
}

/// The error for a call through a link a key-value provider was not given: it names the
/// component and the link, and gives the `trellis link put` command that makes one.
///
/// `provider` describes the provider (`"the Redis key-value provider"`), `provider_id` is its
/// id in the lattice (see [`crate::ProviderIdCell`]), and `target_config` an example of the
/// setting a link needs (`"url=redis://HOST:PORT"`), if it needs one.
pub fn unknown_link(
    cx: &CallContext,
    provider: &str,
    provider_id: &str,
    target_config: Option<&str>,
) -> KvError {
    let (component, link) = (&cx.source_id, &cx.link_name);
    let config = match target_config {
        Some(example) => format!(" --target-config NAME` (NAME holding `{example}`)"),
        None => "`".to_string(),
    };
    KvError::Other(format!(
        "component `{component}` has no link named `{link}` to {provider}: put one with \
         `trellis link put {component} {provider_id} {LINK_PUT_ARGS} --link-name {link}{config}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_must_be_positive() {
        let config = |v: &str| BTreeMap::from([(PAGE_SIZE.to_string(), v.to_string())]);
        assert_eq!(page_size(&BTreeMap::new()), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(&config("2")), Ok(2));
        let err = page_size(&config("0")).unwrap_err();
        assert!(
            err.0.contains("`page_size`") && err.0.contains("`0`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_links_say_how_to_put_one() {
        let cx = CallContext::new("counter", "cache");
        let KvError::Other(plain) =
            unknown_link(&cx, "the in-memory key-value provider", "kv", None)
        else {
            panic!("not Other");
        };
        assert_eq!(
            plain,
            "component `counter` has no link named `cache` to the in-memory key-value provider: \
             put one with `trellis link put counter kv wasi:keyvalue --interface \
             store,atomics,batch --link-name cache`"
        );
        let KvError::Other(with_config) = unknown_link(
            &cx,
            "the Redis key-value provider",
            "PROVIDER_ID",
            Some("url=redis://HOST:PORT"),
        ) else {
            panic!("not Other");
        };
        assert!(
            with_config.ends_with(
                "--link-name cache --target-config NAME` (NAME holding `url=redis://HOST:PORT`)"
            ),
            "{with_config}"
        );
    }
}
