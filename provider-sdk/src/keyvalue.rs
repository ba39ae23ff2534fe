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

use crate::link::CallContext;

/// The interfaces a key-value provider serves.
pub const INTERFACES: [&str; 3] = [
    "wasi:keyvalue/store",
    "wasi:keyvalue/atomics",
    "wasi:keyvalue/batch",
];

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
