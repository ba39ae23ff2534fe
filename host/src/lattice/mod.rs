//! Joining a lattice: identity, labels, heartbeats and the host part of the control interface.
//!
//! [`join`] connects to NATS and starts one task that owns the subscription to
//! `wasmbus.ctl.v1.{lattice}.>`: it answers the requests addressed to this host (or to every
//! host, like `host.ping`), publishes `host_started`, a `host_heartbeat` carrying the inventory
//! every `heartbeat_interval`, and `host_stopped` on the way out. Other tasks talk to it
//! through the returned [`LatticeHandle`] (`shutdown`, `stopped`).
//!
//! `control.rs` answers each operation; work that takes time (loading a component for
//! `component.scale`) is acknowledged at once and finished in a spawned task that reports
//! with an event (`component_scaled` or `component_scale_failed`), as wasmCloud hosts do.
//! Control operations that this host does not implement yet get an error reply naming the
//! operation, never a silent success.

mod control;
mod http_calls;
mod lattice_wide;
mod providers;
mod rpc;
mod shared;
mod supervisor;

pub use providers::{BuiltinProviders, ProviderFactory, builtin_name};
pub use rpc::call_as_client;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use trellis_protocol::ctl::{
    CloudEvent, ComponentDescription, CtlResponse, Host, HostInventory, ProviderDescription,
    subjects,
};

use crate::http::Router;
use crate::{Component, Runtime};
use trellis_protocol::keys::KeyKind;

/// How to join a lattice.
#[derive(Debug, Clone)]
pub struct LatticeConfig {
    /// Where NATS is and how to authenticate (credentials, TLS, connect timeout).
    pub nats: trellis_protocol::nats::NatsConnect,
    pub lattice: String,
    /// Labels given by the operator; `hostcore.*` labels are added automatically.
    pub labels: BTreeMap<String, String>,
    pub heartbeat_interval: Duration,
    /// When set, components running here that export `wasi:http/incoming-handler` are
    /// routed from this router by Host header = component id (until the http-server
    /// provider and its links take over routing).
    pub http_router: Option<Arc<Router<Arc<Component>>>>,
    /// First-party providers that `provider.start` can run in-process (`builtin://NAME`).
    pub builtin_providers: BuiltinProviders,
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// `reason` is the [`ConnectError`](trellis_protocol::nats::ConnectError) message: it
    /// names the URL and what to fix (credentials, TLS CA, or a server that is not there).
    #[error("{reason}")]
    Connect { url: String, reason: String },
    #[error("cannot subscribe to the control interface on {url}: {reason}")]
    Subscribe { url: String, reason: String },
    #[error("cannot open the lattice state on {url}: {reason}")]
    State { url: String, reason: String },
    #[error("label `{0}` is reserved: `hostcore.*` labels are set by the host")]
    ReservedLabel(String),
}

/// A running lattice membership.
pub struct LatticeHandle {
    host_id: String,
    core: Arc<HostCore>,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl LatticeHandle {
    /// This host's server public key (`N…`).
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// Resolves when the host has left the lattice (after `host.stop` or [`shutdown`]).
    ///
    /// [`shutdown`]: LatticeHandle::shutdown
    pub async fn stopped(&mut self) {
        let _ = self.stopped.wait_for(|s| *s).await;
    }

    /// Calls an export of a component running on this host, in this process, exactly as a
    /// lattice call to it would run here (its own linked imports go through its links). For
    /// embedding and benchmarks; other processes use `trellis call`.
    pub async fn call(
        &self,
        component_id: &str,
        interface: &str,
        function: &str,
        args: Vec<wasmtime::component::Val>,
        timeout: Duration,
    ) -> anyhow::Result<Vec<wasmtime::component::Val>> {
        let component = self
            .core
            .components()
            .get(component_id)
            .map(|r| r.component.clone())
            .ok_or_else(|| {
                anyhow::anyhow!("component `{component_id}` is not running on this host")
            })?;
        let export = component
            .exported_function(interface, function)
            .ok_or_else(|| {
                anyhow::anyhow!("`{component_id}` does not export `{interface}.{function}`")
            })?
            .clone();
        Ok(component
            .call_export(&export, args, Instant::now() + timeout)
            .await?)
    }

    /// Leaves the lattice: publishes `host_stopped`, flushes NATS and ends the task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// `hostcore.*` labels (any case) describe the platform and are set by the host only.
pub(crate) fn is_reserved_label(key: &str) -> bool {
    key.to_ascii_lowercase().starts_with("hostcore.")
}

/// The labels every host carries: `hostcore.arch`, `hostcore.os`, `hostcore.osfamily`.
pub fn builtin_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("hostcore.arch".into(), std::env::consts::ARCH.into()),
        ("hostcore.os".into(), std::env::consts::OS.into()),
        ("hostcore.osfamily".into(), std::env::consts::FAMILY.into()),
    ])
}

/// Connects to NATS and joins `config.lattice`; components scaled onto this host run in
/// `runtime`.
pub async fn join(runtime: Runtime, config: LatticeConfig) -> Result<LatticeHandle, JoinError> {
    join_in_domain(runtime, config, None).await
}

/// [`join`], with the lattice state (the JetStream key-value buckets) in the JetStream domain
/// `js_domain` when given. A host connected to a leaf `nats-server` passes the hub's domain
/// (`jetstream { domain: hub }` on the hub): nats-server keeps the default `$JS.API` of a
/// leaf's clients away from the hub, while `$JS.hub.API` reaches it (docs/EDGE.md).
pub async fn join_in_domain(
    runtime: Runtime,
    config: LatticeConfig,
    js_domain: Option<String>,
) -> Result<LatticeHandle, JoinError> {
    if let Some(reserved) = config.labels.keys().find(|k| is_reserved_label(k)) {
        return Err(JoinError::ReservedLabel(reserved.clone()));
    }
    let key = KeyKind::Server.generate();
    let host_id = key.public_key();
    let nats = trellis_protocol::nats::NatsConnect {
        name: format!("{} {host_id}", config.nats.name),
        ..config.nats.clone()
    };
    let client = nats.connect().await.map_err(|e| JoinError::Connect {
        url: nats.url.clone(),
        reason: e.to_string(),
    })?;
    let ctl = client
        .subscribe(subjects::ctl_wildcard(&config.lattice))
        .await
        .map_err(|e| JoinError::Subscribe {
            url: config.nats.url.clone(),
            reason: e.to_string(),
        })?;
    let subscribe_error = |e: async_nats::SubscribeError| JoinError::Subscribe {
        url: config.nats.url.clone(),
        reason: e.to_string(),
    };
    let mut lattice_wide = Vec::new();
    for subject in subjects::ctl_lattice_wide(&config.lattice) {
        let queue = subjects::ctl_queue_group(&config.lattice);
        lattice_wide.push(
            client
                .queue_subscribe(subject, queue)
                .await
                .map_err(subscribe_error)?,
        );
    }
    let (shared, link_changes) =
        shared::SharedState::open(&client, &config.lattice, js_domain.as_deref())
            .await
            .map_err(|reason| JoinError::State {
                url: config.nats.url.clone(),
                reason,
            })?;
    let mut labels = config.labels.clone();
    labels.extend(builtin_labels());
    let identity = Identity {
        friendly_name: friendly_name(&host_id),
        host_id: host_id.clone(),
        key,
        lattice: config.lattice.clone(),
        labels: Mutex::new(labels),
        started: Instant::now(),
    };
    let core = Arc::new(HostCore {
        identity,
        runtime,
        components: Mutex::new(BTreeMap::new()),
        client,
        shared,
        http_router: config.http_router.clone(),
        providers: Mutex::new(BTreeMap::new()),
        builtin_providers: config.builtin_providers.clone(),
        nats,
    });
    shared::SharedState::watch(&core);
    providers::follow_link_changes(&core, link_changes);
    let (stop, stop_rx) = watch::channel(false);
    let (stopped_tx, stopped) = watch::channel(false);
    let task = tokio::spawn(run(
        core.clone(),
        ctl,
        futures::stream::select_all(lattice_wide),
        config.heartbeat_interval,
        stop_rx,
        stopped_tx,
    ));
    tracing::info!(host_id = %host_id, lattice = %config.lattice, url = %config.nats.url, "joined the lattice");
    Ok(LatticeHandle {
        host_id,
        core: core.clone(),
        stop,
        stopped,
        task,
    })
}

/// What the control task and the work it spawns share.
pub(crate) struct HostCore {
    pub(crate) identity: Identity,
    pub(crate) runtime: Runtime,
    /// Running components by id; use [`HostCore::components`].
    components: Mutex<BTreeMap<String, control::Running>>,
    pub(crate) client: async_nats::Client,
    /// Links, named config and claims, mirrored from JetStream KV.
    pub(crate) shared: shared::SharedState,
    http_router: Option<Arc<Router<Arc<Component>>>>,
    /// Providers running in-process, by id; use [`HostCore::providers`].
    providers: Mutex<BTreeMap<String, providers::RunningProvider>>,
    builtin_providers: BuiltinProviders,
    /// How this host reached NATS (handed to the provider processes it starts).
    pub(crate) nats: trellis_protocol::nats::NatsConnect,
}

impl HostCore {
    /// The providers running in this host (same locking rule as [`HostCore::components`]).
    pub(crate) fn providers(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, providers::RunningProvider>> {
        self.providers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running components (a poisoned lock is taken over: the map stays consistent,
    /// every change to it is a single insert or remove).
    pub(crate) fn components(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, control::Running>> {
        self.components.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How components loaded here reach what they are linked to: other components
    /// (linked imports) and providers.
    pub(crate) fn calls(self: &Arc<Self>) -> crate::imports::LatticeLinks {
        crate::imports::LatticeLinks {
            imports: Arc::new(rpc::LatticeCalls {
                core: Arc::downgrade(self),
            }),
            providers: Arc::new(providers::LatticeProviders {
                core: Arc::downgrade(self),
            }),
        }
    }

    /// Makes a loaded component reachable: serves lattice calls to it and routes HTTP to it;
    /// replaces (and stops serving) the previous version, if any.
    pub(crate) fn install(self: &Arc<Self>, mut running: control::Running) {
        let id = running.component.id().to_string();
        running.serving = Some(AbortOnDrop(rpc::serve(self, running.component.clone())));
        if let Some(router) = &self.http_router
            && running.component.http().is_some()
        {
            router.insert(Some(&id), "/", running.component.clone());
        }
        self.components().insert(id, running);
    }

    /// Stops a component: no more calls or HTTP requests reach it.
    pub(crate) fn uninstall(&self, id: &str) {
        if let Some(router) = &self.http_router {
            router.remove(Some(id), "/");
        }
        self.components().remove(id);
    }

    /// Re-applies config to the running components that use the named config.
    pub(crate) fn config_changed(self: &Arc<Self>, name: &str) {
        providers::config_changed(self, name);
        for running in self.components().values() {
            if running.config_names.iter().any(|n| n == name) {
                let values = self.shared.merged_config(&running.config_names);
                running.component.set_config(values);
                tracing::info!(component = %running.component.id(), config = name, "configuration updated");
            }
        }
    }

    pub(crate) fn inventory(&self) -> HostInventory {
        let components = self
            .components()
            .values()
            .map(control::Running::describe)
            .collect();
        let providers = self
            .providers()
            .iter()
            .map(|(id, p)| ProviderDescription {
                id: id.clone(),
                image_ref: Some(p.reference.clone()),
                name: builtin_name(&p.reference),
                annotations: p.annotations.clone(),
                revision: 0,
            })
            .collect();
        self.identity.inventory(components, providers)
    }

    /// Sends a control reply. A reply larger than the server's `max_payload` could never be
    /// delivered (the requester would wait for its timeout), so it is replaced by an error
    /// reply that says why.
    pub(crate) async fn send_reply(
        &self,
        inbox: async_nats::Subject,
        operation: &str,
        reply: Vec<u8>,
    ) {
        let limit = self.client.server_info().max_payload;
        let reply = if reply.len() > limit {
            tracing::warn!(
                operation,
                bytes = reply.len(),
                limit,
                "control reply too large"
            );
            let message = format!(
                "the reply to `{operation}` would be {} bytes, more than the NATS server's \
                 max_payload of {limit} bytes",
                reply.len()
            );
            serde_json::to_vec(&CtlResponse::<()>::error(message)).unwrap_or_default()
        } else {
            reply
        };
        if let Err(e) = self.client.publish(inbox, reply.into()).await {
            tracing::warn!(operation, error = %e, "cannot send a control reply");
        }
    }

    /// Publishes a CloudEvent of `event_type`; failures are logged (events are best effort).
    pub(crate) async fn publish_event(&self, event_type: &str, data: serde_json::Value) {
        let (subject, payload) = self.identity.event(event_type, data);
        if let Err(e) = self.client.publish(subject.clone(), payload.into()).await {
            tracing::warn!(%subject, error = %e, "cannot publish an event");
        }
    }
}

/// What a host says about itself.
pub(crate) struct Identity {
    host_id: String,
    /// The host's server key: signs the calls its components make.
    key: nkeys::KeyPair,
    friendly_name: String,
    lattice: String,
    /// Changed at run time by `label.put` / `label.del`.
    labels: Mutex<BTreeMap<String, String>>,
    started: Instant,
}

impl Identity {
    pub(crate) fn labels(&self) -> BTreeMap<String, String> {
        self.labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies `change` to the labels and returns the new full map.
    pub(crate) fn update_labels(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> bool,
    ) -> Option<BTreeMap<String, String>> {
        let mut labels = self.labels.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut labels).then(|| labels.clone())
    }

    pub(crate) fn uptime(&self) -> (u64, String) {
        let secs = self.started.elapsed().as_secs();
        (secs, humantime_secs(secs))
    }

    pub(crate) fn host(&self) -> Host {
        let (uptime_seconds, uptime_human) = self.uptime();
        Host {
            id: self.host_id.clone(),
            friendly_name: self.friendly_name.clone(),
            labels: self.labels(),
            lattice: self.lattice.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds,
            uptime_human: Some(uptime_human),
            rpc_host: None,
            ctl_host: None,
            js_domain: None,
        }
    }

    fn inventory(
        &self,
        components: Vec<ComponentDescription>,
        providers: Vec<ProviderDescription>,
    ) -> HostInventory {
        let (uptime_seconds, uptime_human) = self.uptime();
        HostInventory {
            host_id: self.host_id.clone(),
            friendly_name: self.friendly_name.clone(),
            labels: self.labels(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds,
            uptime_human,
            components,
            providers,
        }
    }

    fn event(&self, event_type: &str, data: serde_json::Value) -> (String, Vec<u8>) {
        let event = CloudEvent::new(&self.host_id, event_type, data);
        (
            subjects::event(&self.lattice, event_type),
            serde_json::to_vec(&event).unwrap_or_default(),
        )
    }
}

async fn run(
    core: Arc<HostCore>,
    mut ctl: async_nats::Subscriber,
    mut lattice_wide: futures::stream::SelectAll<async_nats::Subscriber>,
    heartbeat_interval: Duration,
    mut stop: watch::Receiver<bool>,
    stopped: watch::Sender<bool>,
) {
    let identity = &core.identity;
    let started = serde_json::json!({
        "labels": identity.labels(),
        "friendly_name": identity.friendly_name,
        "version": env!("CARGO_PKG_VERSION"),
        "host_id": identity.host_id,
    });
    core.publish_event("host_started", started).await;
    let mut heartbeat = tokio::time::interval(heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prefix = format!("{}.{}.", subjects::CTL_PREFIX, identity.lattice);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = heartbeat.tick() => {
                let inventory = serde_json::to_value(core.inventory()).unwrap_or_default();
                core.publish_event("host_heartbeat", inventory).await;
            }
            message = lattice_wide.next() => {
                let Some(message) = message else { break };
                let core = core.clone();
                let prefix = prefix.clone();
                tokio::spawn(async move {
                    let operation = message.subject.as_str().strip_prefix(&prefix).unwrap_or_default();
                    let reply = lattice_wide::handle(&core, operation, &message.payload).await;
                    if let Some(inbox) = message.reply {
                        core.send_reply(inbox, operation, reply).await;
                    }
                });
            }
            message = ctl.next() => {
                let Some(message) = message else { break };
                let operation = message.subject.as_str().strip_prefix(&prefix).unwrap_or_default();
                let (reply, next) = control::handle(&core, operation, &message.payload);
                if let (Some(reply), Some(inbox)) = (reply, message.reply) {
                    core.send_reply(inbox, operation, reply).await;
                }
                if let control::Next::Stop = next {
                    tracing::info!("host.stop received: leaving the lattice");
                    break;
                }
            }
        }
    }
    let leaving: Vec<(String, providers::RunningProvider)> =
        std::mem::take(&mut *core.providers()).into_iter().collect();
    for (id, running) in leaving {
        providers::stopped(&core, &id, running, "host stopping").await;
    }
    let (uptime_seconds, _) = identity.uptime();
    core.publish_event(
        "host_stopped",
        serde_json::json!({"labels": identity.labels(), "uptime_seconds": uptime_seconds}),
    )
    .await;
    // Bounded: when NATS is down, a flush would wait for it to come back, and a host that
    // was told to stop must stop.
    match tokio::time::timeout(Duration::from_secs(2), core.client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot flush NATS while leaving"),
        Err(_) => tracing::warn!("NATS did not take the last messages within 2 s; leaving anyway"),
    }
    let _ = stopped.send(true);
}

/// Aborts a task when dropped (the lattice-call server of a running component).
pub(crate) struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn friendly_name(host_id: &str) -> String {
    let base = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "trellis".into());
    let suffix: String = host_id.chars().skip(1).take(6).collect();
    format!("{base}-{}", suffix.to_ascii_lowercase())
}

fn humantime_secs(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_a_person_would_write_it() {
        assert_eq!(humantime_secs(5), "5s");
        assert_eq!(humantime_secs(65), "1m 5s");
        assert_eq!(humantime_secs(3 * 86_400 + 3661), "3d 1h 1m 1s");
    }

    #[test]
    fn builtin_labels_name_the_platform() {
        let labels = builtin_labels();
        assert_eq!(labels["hostcore.arch"], std::env::consts::ARCH);
        assert_eq!(labels["hostcore.os"], std::env::consts::OS);
        assert_eq!(labels["hostcore.osfamily"], std::env::consts::FAMILY);
    }
}
