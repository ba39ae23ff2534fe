//! Lattice-wide state: links, named config and claims, kept in JetStream KV and mirrored in
//! memory on every host.
//!
//! Two buckets hold it (names as wasmCloud v1 uses them, so its tools read them too):
//! `LATTICEDATA_{lattice}` with `COMPONENT_{id}` (a [`ComponentSpec`]: image ref and the
//! component's links as a source) and `CLAIMS_{subject}`; `CONFIGDATA_{lattice}` with one
//! string map per config name. Every host watches both from the first revision on, so a host
//! that starts late (or restarts, or reconnects after a NATS outage) converges without any
//! command being sent again. Writes that read-modify-write a spec use the KV revision as a
//! compare-and-swap, so two hosts answering `link.put`s at once cannot lose one.
//!
//! The in-memory mirror serves the hot path (which target a call goes to, which config a
//! component sees); control replies that must reflect a write just made (`link.get`,
//! `config.get`, `claims.get`) read the bucket itself.

use std::collections::BTreeMap;
use std::sync::{RwLock, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::StreamExt as _;
use trellis_protocol::ctl::{ComponentSpec, Link, kv as names};

use super::HostCore;

/// A named string map from `CONFIGDATA_{lattice}`.
pub(crate) type ConfigMap = BTreeMap<String, String>;

/// The buckets and their in-memory mirror.
pub(crate) struct SharedState {
    lattice_kv: kv::Store,
    config_kv: kv::Store,
    specs: RwLock<BTreeMap<String, ComponentSpec>>,
    configs: RwLock<BTreeMap<String, ConfigMap>>,
    /// Every change of a component's links in the mirror, (before, after), in order.
    link_changes: tokio::sync::mpsc::UnboundedSender<LinkChange>,
}

/// A component's links before and after one change of the mirror.
pub(crate) type LinkChange = (Vec<Link>, Vec<Link>);

/// Why a KV operation failed (the message names the bucket and key).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StateError(String);

impl SharedState {
    /// Opens (creating when missing) both buckets. The receiver gets every change of links
    /// in the mirror, whether made here or seen through the watch.
    ///
    /// `js_domain` names the JetStream domain that holds them (API prefix
    /// `$JS.{domain}.API`, key-value writes to `$JS.{domain}.API.$KV.…`): a host on a leaf
    /// `nats-server` reaches the hub's JetStream that way. `None`: the default `$JS.API`.
    pub(crate) async fn open(
        client: &async_nats::Client,
        lattice: &str,
        js_domain: Option<&str>,
    ) -> Result<(Self, tokio::sync::mpsc::UnboundedReceiver<LinkChange>), String> {
        let js = match js_domain {
            Some(domain) => jetstream::with_domain(client.clone(), domain),
            None => jetstream::new(client.clone()),
        };
        let (link_changes, changes) = tokio::sync::mpsc::unbounded_channel();
        let state = Self {
            lattice_kv: bucket(&js, &names::lattice_bucket(lattice)).await?,
            config_kv: bucket(&js, &names::config_bucket(lattice)).await?,
            specs: RwLock::default(),
            configs: RwLock::default(),
            link_changes,
        };
        Ok((state, changes))
    }

    /// Starts the two watchers that keep the mirror current; they end when `core` is gone.
    pub(crate) fn watch(core: &std::sync::Arc<HostCore>) {
        let weak = std::sync::Arc::downgrade(core);
        tokio::spawn(watch_bucket(weak.clone(), Bucket::Lattice));
        tokio::spawn(watch_bucket(weak, Bucket::Config));
    }

    /// The link `name` from `source` that carries `ns:pkg/iface`.
    pub(crate) fn link_for(
        &self,
        source: &str,
        namespace: &str,
        package: &str,
        interface: &str,
        name: &str,
    ) -> Option<Link> {
        let specs = self.specs.read().unwrap_or_else(|p| p.into_inner());
        specs
            .get(source)?
            .links
            .iter()
            .find(|l| l.name == name && l.covers(namespace, package, interface))
            .cloned()
    }

    /// Whether any link from `source` to `target` carries `ns:pkg/iface`.
    pub(crate) fn is_linked(&self, source: &str, target: &str, interface: &str) -> bool {
        let Some((ns_pkg, iface)) = interface.split_once('/') else {
            return false;
        };
        let Some((ns, pkg)) = ns_pkg.split_once(':') else {
            return false;
        };
        let specs = self.specs.read().unwrap_or_else(|p| p.into_inner());
        specs.get(source).is_some_and(|spec| {
            spec.links
                .iter()
                .any(|l| l.target == target && l.covers(ns, pkg, iface))
        })
    }

    /// The named configs merged in order (a later name's keys win); missing names are skipped.
    pub(crate) fn merged_config(&self, names: &[String]) -> ConfigMap {
        let configs = self.configs.read().unwrap_or_else(|p| p.into_inner());
        let mut merged = ConfigMap::new();
        for name in names {
            if let Some(values) = configs.get(name) {
                merged.extend(values.clone());
            }
        }
        merged
    }

    /// Reads named configs from the bucket itself (not the mirror) and merges them; fails
    /// naming the first config that does not exist.
    pub(crate) async fn load_config(&self, names: &[String]) -> Result<ConfigMap, StateError> {
        let mut merged = ConfigMap::new();
        for name in names {
            match self.config(name).await? {
                Some(values) => {
                    self.mirror_config(name, Some(values.clone()));
                    merged.extend(values);
                }
                None => {
                    return Err(StateError(format!(
                        "configuration `{name}` not found in the config store; create it with `trellis config put {name} KEY=VALUE`"
                    )));
                }
            }
        }
        Ok(merged)
    }

    /// One named config from the bucket.
    pub(crate) async fn config(&self, name: &str) -> Result<Option<ConfigMap>, StateError> {
        let bytes = self.config_kv.get(name).await.map_err(|e| {
            StateError(format!(
                "cannot read config `{name}` from the config bucket: {e}"
            ))
        })?;
        match bytes {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                StateError(format!(
                    "config `{name}` in the config bucket is not a string map: {e}"
                ))
            }),
        }
    }

    pub(crate) async fn put_config(
        &self,
        name: &str,
        values: &ConfigMap,
    ) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(values).unwrap_or_default();
        self.config_kv
            .put(name, Bytes::from(bytes))
            .await
            .map_err(|e| StateError(format!("cannot store config `{name}`: {e}")))?;
        self.mirror_config(name, Some(values.clone()));
        Ok(())
    }

    pub(crate) async fn delete_config(&self, name: &str) -> Result<(), StateError> {
        self.config_kv
            .purge(name)
            .await
            .map_err(|e| StateError(format!("cannot delete config `{name}`: {e}")))?;
        self.mirror_config(name, None);
        Ok(())
    }

    fn mirror_config(&self, name: &str, values: Option<ConfigMap>) -> bool {
        let mut configs = self.configs.write().unwrap_or_else(|p| p.into_inner());
        match values {
            Some(values) => {
                configs.insert(name.to_string(), values.clone()).as_ref() != Some(&values)
            }
            None => configs.remove(name).is_some(),
        }
    }

    /// Applies `change` to the spec of `id` with compare-and-swap on its KV revision; returns
    /// the spec as stored. `change` returns `Err(message)` to refuse.
    pub(crate) async fn update_spec(
        &self,
        id: &str,
        mut change: impl FnMut(&mut ComponentSpec) -> Result<(), String>,
    ) -> Result<Result<ComponentSpec, String>, StateError> {
        let key = names::component_key(id);
        for _ in 0..10 {
            let entry = self
                .lattice_kv
                .entry(key.as_str())
                .await
                .map_err(|e| StateError(format!("cannot read `{key}`: {e}")))?;
            let (mut spec, revision) = match &entry {
                Some(e) if e.operation == kv::Operation::Put => (
                    serde_json::from_slice::<ComponentSpec>(&e.value).unwrap_or_default(),
                    Some(e.revision),
                ),
                Some(e) => (ComponentSpec::default(), Some(e.revision)),
                None => (ComponentSpec::default(), None),
            };
            if let Err(refused) = change(&mut spec) {
                return Ok(Err(refused));
            }
            let bytes = Bytes::from(serde_json::to_vec(&spec).unwrap_or_default());
            let written = match revision {
                Some(revision) => self
                    .lattice_kv
                    .update(key.as_str(), bytes, revision)
                    .await
                    .is_ok(),
                None => self.lattice_kv.create(key.as_str(), bytes).await.is_ok(),
            };
            if written {
                self.mirror_spec(id, Some(spec.clone()));
                return Ok(Ok(spec));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(StateError(format!(
            "`{key}` kept changing under this update; try again"
        )))
    }

    /// Updates the mirror, reporting a change of links.
    fn mirror_spec(&self, id: &str, spec: Option<ComponentSpec>) {
        let mut specs = self.specs.write().unwrap_or_else(|p| p.into_inner());
        let after = spec.as_ref().map(|s| s.links.clone()).unwrap_or_default();
        let before = match spec {
            Some(spec) => specs.insert(id.to_string(), spec),
            None => specs.remove(id),
        };
        let before = before.map(|s| s.links).unwrap_or_default();
        if before != after {
            // Sent under the lock, so changes are reported in the order they were made.
            let _ = self.link_changes.send((before, after));
        }
    }

    /// Every link in the mirror.
    pub(crate) fn all_links(&self) -> Vec<Link> {
        let specs = self.specs.read().unwrap_or_else(|p| p.into_inner());
        specs
            .values()
            .flat_map(|s| s.links.iter().cloned())
            .collect()
    }

    /// The links (from the mirror) whose source or target is `id`.
    pub(crate) fn links_naming(&self, id: &str) -> Vec<Link> {
        self.all_links()
            .into_iter()
            .filter(|l| l.source_id == id || l.target == id)
            .collect()
    }

    /// Every link, read from the bucket.
    pub(crate) async fn links(&self) -> Result<Vec<Link>, StateError> {
        let mut links = Vec::new();
        for (_, value) in self.entries(names::COMPONENT_PREFIX).await? {
            if let Ok(spec) = serde_json::from_slice::<ComponentSpec>(&value) {
                links.extend(spec.links);
            }
        }
        Ok(links)
    }

    /// Every claims record, read from the bucket.
    pub(crate) async fn claims(&self) -> Result<Vec<serde_json::Value>, StateError> {
        Ok(self
            .entries(names::CLAIMS_PREFIX)
            .await?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect())
    }

    pub(crate) async fn put_claims(
        &self,
        subject: &str,
        claims: &serde_json::Value,
    ) -> Result<(), StateError> {
        let key = names::claims_key(subject);
        self.lattice_kv
            .put(
                key.as_str(),
                Bytes::from(serde_json::to_vec(claims).unwrap_or_default()),
            )
            .await
            .map(|_| ())
            .map_err(|e| StateError(format!("cannot store `{key}`: {e}")))
    }

    async fn entries(&self, prefix: &str) -> Result<Vec<(String, Bytes)>, StateError> {
        let bucket_error =
            |e: &dyn std::fmt::Display| StateError(format!("cannot list the lattice bucket: {e}"));
        let mut keys = match self.lattice_kv.keys().await {
            Ok(keys) => keys,
            Err(e) => return Err(bucket_error(&e)),
        };
        let mut wanted = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| bucket_error(&e))?;
            if key.starts_with(prefix) {
                wanted.push(key);
            }
        }
        let mut out = Vec::new();
        for key in wanted {
            if let Some(value) = self
                .lattice_kv
                .get(key.as_str())
                .await
                .map_err(|e| bucket_error(&e))?
            {
                out.push((key, value));
            }
        }
        Ok(out)
    }
}

async fn bucket(js: &jetstream::Context, name: &str) -> Result<kv::Store, String> {
    let config = kv::Config {
        bucket: name.to_string(),
        history: 1,
        ..Default::default()
    };
    trellis_protocol::nats::open_or_create_bucket(js, config)
        .await
        .map_err(|e| {
            format!(
                "{e} On a leaf node, name the hub's JetStream domain (`trellis host --js-domain`)"
            )
        })
}

#[derive(Clone, Copy)]
enum Bucket {
    Lattice,
    Config,
}

/// Mirrors one bucket: replays every key, then follows changes; re-watches (with a full
/// replay) when the watch ends, e.g. after NATS comes back.
async fn watch_bucket(core: Weak<HostCore>, which: Bucket) {
    loop {
        let watch = {
            let Some(core) = core.upgrade() else { return };
            let store = match which {
                Bucket::Lattice => &core.shared.lattice_kv,
                Bucket::Config => &core.shared.config_kv,
            };
            store.watch_with_history(">").await
        };
        match watch {
            Ok(mut entries) => {
                while let Some(entry) = entries.next().await {
                    let Some(core) = core.upgrade() else { return };
                    match entry {
                        Ok(entry) => apply(&core, which, entry),
                        Err(e) => {
                            tracing::warn!(error = %e, "lattice state watch interrupted");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch lattice state; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn apply(core: &std::sync::Arc<HostCore>, which: Bucket, entry: kv::Entry) {
    let removed = entry.operation != kv::Operation::Put;
    match which {
        Bucket::Lattice => {
            let Some(id) = entry.key.strip_prefix(names::COMPONENT_PREFIX) else {
                return;
            };
            let spec = (!removed)
                .then(|| serde_json::from_slice::<ComponentSpec>(&entry.value).ok())
                .flatten();
            core.shared.mirror_spec(id, spec);
        }
        Bucket::Config => {
            let values = (!removed)
                .then(|| serde_json::from_slice::<ConfigMap>(&entry.value).ok())
                .flatten();
            if core.shared.mirror_config(&entry.key, values) {
                core.config_changed(&entry.key);
            }
        }
    }
}
