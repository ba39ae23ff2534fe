//! Where wadm keeps applications: JetStream key-value buckets, so a restarted (or a second)
//! wadm finds every manifest version, what is deployed, and the last status.
//!
//! | bucket | key | value |
//! |---|---|---|
//! | `WADM_APPS_{lattice}` | app name | [`AppRecord`] (JSON): every version's manifest text, the deployed version |
//! | `WADM_STATUS_{lattice}` | app name | [`crate::api::Status`] (JSON) |
//! | `WADM_LEASE_{lattice}` | `leader` | the id of the wadm instance that reconciles (expires unless renewed) |
//!
//! Every write of an [`AppRecord`] is a compare-and-swap on the key's revision, so two API
//! requests (possibly answered by two wadm processes) never lose each other's change.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use trellis_protocol::ctl::Link;

use crate::manifest::Manifest;

/// One stored version of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVersion {
    pub version: String,
    /// The manifest as the user sent it (YAML or JSON).
    pub manifest: String,
}

/// Everything wadm knows about one application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    pub name: String,
    /// In the order they were put; versions are immutable.
    pub versions: Vec<StoredVersion>,
    /// The version that should run, if any.
    pub deployed: Option<String>,
    /// The version that ran last (what an undeploy removes).
    pub last_deployed: Option<String>,
    /// Links and configs of the previously deployed version that the deployed one dropped.
    #[serde(default)]
    pub retired_links: Vec<Link>,
    #[serde(default)]
    pub retired_configs: Vec<String>,
    /// Deleted: the reconciler undeploys what is left, then removes the record.
    #[serde(default)]
    pub deleted: bool,
}

impl AppRecord {
    pub fn version(&self, version: &str) -> Option<&StoredVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    pub fn latest(&self) -> Option<&StoredVersion> {
        self.versions.last()
    }

    /// The parsed manifest of `version`.
    pub fn manifest(&self, version: &str) -> Option<Manifest> {
        let stored = self.version(version)?;
        let mut manifest = Manifest::parse(&stored.manifest, Some(&self.name)).ok()?;
        manifest.set_version(stored.version.clone());
        Some(manifest)
    }
}

/// A store operation failed (NATS or JetStream); the message says which and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// The three buckets of one lattice.
#[derive(Clone)]
pub struct Store {
    apps: kv::Store,
    status: kv::Store,
    lease: kv::Store,
}

/// How long a leader's lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
const LEASE_KEY: &str = "leader";

async fn bucket(
    js: &jetstream::Context,
    name: String,
    max_age: Duration,
) -> Result<kv::Store, StoreError> {
    let config = kv::Config {
        bucket: name,
        history: 1,
        max_age,
        ..Default::default()
    };
    trellis_protocol::nats::open_or_create_bucket(js, config)
        .await
        .map_err(StoreError)
}

impl Store {
    pub async fn open(js: &jetstream::Context, lattice: &str) -> Result<Self, StoreError> {
        Ok(Self {
            apps: bucket(js, format!("WADM_APPS_{lattice}"), Duration::ZERO).await?,
            status: bucket(js, format!("WADM_STATUS_{lattice}"), Duration::ZERO).await?,
            lease: bucket(js, format!("WADM_LEASE_{lattice}"), LEASE_TTL).await?,
        })
    }

    /// The record of `name` and its revision (for [`Store::update`]).
    pub async fn get(&self, name: &str) -> Result<Option<(AppRecord, u64)>, StoreError> {
        let entry = self
            .apps
            .entry(name)
            .await
            .map_err(|e| StoreError(format!("cannot read application `{name}`: {e}")))?;
        Ok(entry.and_then(|e| {
            (e.operation == kv::Operation::Put)
                .then(|| {
                    serde_json::from_slice(&e.value)
                        .ok()
                        .map(|r| (r, e.revision))
                })
                .flatten()
        }))
    }

    /// Every application record (deleted ones included).
    pub async fn list(&self) -> Result<Vec<AppRecord>, StoreError> {
        use futures::StreamExt;
        let mut keys = self
            .apps
            .keys()
            .await
            .map_err(|e| StoreError(format!("cannot list applications: {e}")))?;
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            match key {
                Ok(key) => names.push(key),
                Err(e) => return Err(StoreError(format!("cannot list applications: {e}"))),
            }
        }
        let mut records = Vec::new();
        for name in names {
            if let Some((record, _)) = self.get(&name).await? {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Applies `change` to the record of `name` (a new, empty one when absent) with
    /// compare-and-swap, retrying on conflict. `change` returns `Err` to refuse (nothing is
    /// written) or `Ok(value)` to write and return `value`.
    pub async fn update<T>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut AppRecord) -> Result<T, String>,
    ) -> Result<Result<T, String>, StoreError> {
        for _ in 0..20 {
            let current = self.get(name).await?;
            let (mut record, revision) = match current {
                Some((record, revision)) => (record, Some(revision)),
                None => (
                    AppRecord {
                        name: name.to_string(),
                        ..AppRecord::default()
                    },
                    None,
                ),
            };
            let value = match change(&mut record) {
                Ok(value) => value,
                Err(refused) => return Ok(Err(refused)),
            };
            let bytes = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
            let written = match revision {
                Some(revision) => self.apps.update(name, bytes, revision).await.is_ok(),
                None => self.apps.create(name, bytes).await.is_ok(),
            };
            if written {
                return Ok(Ok(value));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(StoreError(format!(
            "application `{name}` kept changing under this write; try again"
        )))
    }

    /// A stream that yields whenever an application record changes (ends never; empty when
    /// the watch cannot start, the periodic resync then covers it).
    pub async fn watch_apps(&self) -> futures::stream::BoxStream<'static, ()> {
        use futures::StreamExt;
        match self.apps.watch_all().await {
            Ok(watch) => watch.map(|_| ()).boxed(),
            Err(e) => {
                tracing::warn!("wadm cannot watch application records: {e}");
                futures::stream::pending().boxed()
            }
        }
    }

    /// Removes the record of `name`.
    pub async fn remove(&self, name: &str) -> Result<(), StoreError> {
        self.apps
            .purge(name)
            .await
            .map_err(|e| StoreError(format!("cannot remove application `{name}`: {e}")))?;
        let _ = self.status.purge(name).await;
        Ok(())
    }

    pub async fn status(&self, name: &str) -> Result<Option<crate::api::Status>, StoreError> {
        let entry = self
            .status
            .get(name)
            .await
            .map_err(|e| StoreError(format!("cannot read the status of `{name}`: {e}")))?;
        Ok(entry.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    pub async fn set_status(
        &self,
        name: &str,
        status: &crate::api::Status,
    ) -> Result<(), StoreError> {
        let bytes = Bytes::from(serde_json::to_vec(status).unwrap_or_default());
        self.status
            .put(name, bytes)
            .await
            .map(|_| ())
            .map_err(|e| StoreError(format!("cannot write the status of `{name}`: {e}")))
    }

    /// Takes or renews the leader lease for `me`; whether `me` holds it now. `held` is the
    /// revision of the lease this instance last wrote.
    pub async fn lease(&self, me: &str, held: &mut Option<u64>) -> bool {
        let value = Bytes::from(me.to_string());
        let result = match *held {
            Some(revision) => self.lease.update(LEASE_KEY, value, revision).await.ok(),
            None => self.lease.create(LEASE_KEY, value).await.ok(),
        };
        *held = result;
        held.is_some()
    }

    /// Gives the lease up (on shutdown) so another instance takes over at once.
    pub async fn release(&self, held: Option<u64>) {
        if held.is_some() {
            let _ = self.lease.purge(LEASE_KEY).await;
        }
    }
}
