//! Capability providers on this host, and how components reach providers anywhere.
//!
//! **Starting** (`provider.start.{host}`): the reference picks the provider. `builtin://NAME`
//! (and the well-known wasmCloud images, see [`builtin_name`]) runs a first-party provider
//! inside this host: calls to it are plain Rust calls. The host then feeds the provider its
//! lifecycle: `init` with its named configs, every existing link that names it (as target or
//! source), later link puts/deletes as the lattice state changes, and `shutdown` on
//! `provider.stop` or when the host leaves. Events: `provider_started`,
//! `provider_start_failed`, `provider_stopped`, `health_check_passed|failed`.
//!
//! **Routing** ([`LatticeProviders`]): a component's `wasi:keyvalue` / `wasi:sql` call goes to
//! the target of its link for that interface: the provider object when it runs here, else a
//! proxy ([`ProviderTransport`]) that sends a signed call over NATS to whichever host or
//! process serves it (`wasmbus.rpc.{lattice}.{provider}.…`, queue group per provider).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use trellis_protocol::ctl::Link;
use trellis_protocol::rpc::{self, CallReply, CallRequest, Caller};
use trellis_provider_sdk::wire::{
    RemoteHttpClient, RemoteKeyValue, RemoteSql, Transport, TransportError,
};
use trellis_provider_sdk::{CallContext, Capabilities, InitContext, LinkConfig, Provider};

use super::HostCore;
use super::rpc::{Exchange, exchange};
use crate::capabilities::provided::ProviderRouter;

/// Makes a first-party provider.
pub type ProviderFactory = Arc<dyn Fn() -> Arc<dyn Provider> + Send + Sync>;

/// The first-party providers this host can run in-process, by name (`builtin://NAME`).
#[derive(Clone, Default)]
pub struct BuiltinProviders(pub BTreeMap<String, ProviderFactory>);

impl std::fmt::Debug for BuiltinProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// The builtin provider a reference names: `builtin://NAME`, `wasmcloud+builtin://NAME`, or
/// a well-known wasmCloud provider image (`ghcr.io/wasmcloud/keyvalue-redis:0.28`, …).
pub fn builtin_name(reference: &str) -> Option<String> {
    if let Some(name) = reference
        .strip_prefix("builtin://")
        .or_else(|| reference.strip_prefix("wasmcloud+builtin://"))
    {
        return Some(name.to_string());
    }
    let image = reference.strip_prefix("oci://").unwrap_or(reference);
    let name = image
        .strip_prefix("ghcr.io/wasmcloud/")?
        .split([':', '@'])
        .next()?;
    Some(
        match name {
            "sqldb-postgres" => "sql-postgres",
            other => other,
        }
        .to_string(),
    )
}

/// A provider running inside this host.
pub(crate) struct RunningProvider {
    pub(crate) reference: String,
    pub(crate) annotations: BTreeMap<String, String>,
    /// The provider, or for a process the host's handle on it.
    pub(crate) provider: Arc<dyn Provider>,
    /// For in-process providers: served by direct calls. `None`: calls go over NATS.
    pub(crate) capabilities: Option<Capabilities>,
    /// Named configs it was started with.
    pub(crate) config_names: Vec<String>,
    /// Ends the health checks when the provider is removed.
    pub(crate) _health: super::AbortOnDrop,
}

#[derive(serde::Deserialize)]
struct StartProviderCommand {
    provider_id: String,
    #[serde(default)]
    provider_ref: String,
    #[serde(default)]
    config: Vec<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(serde::Deserialize)]
struct StopProviderCommand {
    #[serde(default, alias = "provider_ref")]
    provider_id: String,
}

fn refuse(message: String) -> Vec<u8> {
    serde_json::to_vec(&trellis_protocol::ctl::CtlResponse::<()>::error(message))
        .unwrap_or_default()
}

fn success(message: &str) -> Vec<u8> {
    serde_json::to_vec(&trellis_protocol::ctl::CtlResponse::success(message)).unwrap_or_default()
}

/// `provider.start.{host}`: validates, replies, then starts in the background.
pub(crate) fn start(core: &Arc<HostCore>, payload: &[u8]) -> Vec<u8> {
    let command: StartProviderCommand = match serde_json::from_slice(payload) {
        Ok(c) => c,
        Err(e) => {
            return refuse(format!(
                "invalid provider.start request (expected {{\"provider_id\", \"provider_ref\", \"config\": [names]}}): {e}"
            ));
        }
    };
    let id = command.provider_id.trim().to_string();
    if id.is_empty() || !rpc::is_subject_token(&id) {
        return refuse(format!(
            "invalid provider_id `{id}`: it must be a non-empty name without `.`, `*`, `>` or spaces"
        ));
    }
    if core.providers().contains_key(&id) {
        return refuse("provider with that ID is already running".into());
    }
    let process = match builtin_name(&command.provider_ref) {
        Some(_) => None,
        None => match super::supervisor::executable(&command.provider_ref) {
            Ok(path) => Some(path),
            Err(message) => return refuse(message),
        },
    };
    let core = core.clone();
    tokio::spawn(async move {
        let reference = command.provider_ref.clone();
        if let Err(error) = start_provider(&core, command, &id, process).await {
            tracing::warn!(provider = %id, %reference, %error, "provider start failed");
            let data = serde_json::json!({
                "provider_ref": reference, "provider_id": id,
                "host_id": core.identity.host_id, "error": error, "link_name": "default",
            });
            core.publish_event("provider_start_failed", data).await;
        }
    });
    success("successfully started provider")
}

async fn start_provider(
    core: &Arc<HostCore>,
    command: StartProviderCommand,
    id: &str,
    process: Option<std::path::PathBuf>,
) -> Result<(), String> {
    let mut pid = None;
    let (provider, capabilities): (Arc<dyn Provider>, Option<Capabilities>) = match process {
        Some(path) => {
            let process =
                super::supervisor::ProcessProvider::start(core, id, path, command.config.clone())
                    .await?;
            pid = process.pid();
            (process, None)
        }
        None => {
            let provider = builtin(core, &command, id).await?;
            let capabilities = provider.clone().capabilities();
            (provider, Some(capabilities))
        }
    };
    let health = super::AbortOnDrop(tokio::spawn(health_checks(
        Arc::downgrade(core),
        id.to_string(),
        provider.clone(),
    )));
    let annotations = command.annotations.unwrap_or_default();
    {
        let mut providers = core.providers();
        if providers.contains_key(id) {
            return Err("provider with that ID is already running".into());
        }
        providers.insert(
            id.to_string(),
            RunningProvider {
                reference: command.provider_ref.clone(),
                annotations: annotations.clone(),
                provider: provider.clone(),
                capabilities,
                config_names: command.config,
                _health: health,
            },
        );
    }
    for link in core.shared.links_naming(id) {
        put_link(core, &*provider, id, &link).await;
    }
    let data = serde_json::json!({
        "host_id": core.identity.host_id, "provider_id": id,
        "image_ref": command.provider_ref, "annotations": annotations, "pid": pid,
    });
    core.publish_event("provider_started", data).await;
    tracing::info!(provider = id, reference = %command.provider_ref, "provider started");
    Ok(())
}

/// Makes and initializes a first-party provider.
async fn builtin(
    core: &Arc<HostCore>,
    command: &StartProviderCommand,
    id: &str,
) -> Result<Arc<dyn Provider>, String> {
    let name = builtin_name(&command.provider_ref).unwrap_or_default();
    let factory = core
        .builtin_providers
        .0
        .get(&name)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = core
                .builtin_providers
                .0
                .keys()
                .map(String::as_str)
                .collect();
            format!(
                "this host has no builtin provider `{name}` (it has: {})",
                known.join(", ")
            )
        })?;
    let config = core
        .shared
        .load_config(&command.config)
        .await
        .map_err(|e| e.to_string())?;
    let provider = factory();
    provider.set_invoker(Arc::new(super::http_calls::HostInvoker {
        core: Arc::downgrade(core),
    }));
    provider
        .init(&InitContext {
            provider_id: id.to_string(),
            lattice: core.identity.lattice.clone(),
            host_id: core.identity.host_id.clone(),
            config,
        })
        .await
        .map_err(|e| format!("init failed: {e}"))?;
    Ok(provider)
}

/// `provider.stop.{host}`.
pub(crate) fn stop(core: &Arc<HostCore>, payload: &[u8]) -> Vec<u8> {
    let command: StopProviderCommand = match serde_json::from_slice(payload) {
        Ok(c) => c,
        Err(e) => {
            return refuse(format!(
                "invalid provider.stop request (expected {{\"provider_id\"}}): {e}"
            ));
        }
    };
    let Some(running) = core.providers().remove(&command.provider_id) else {
        return refuse("provider with that ID is not running".into());
    };
    let core = core.clone();
    tokio::spawn(async move {
        stopped(&core, &command.provider_id, running, "stop").await;
    });
    success("successfully stopped provider")
}

/// Shuts a removed provider down and reports it.
pub(crate) async fn stopped(core: &HostCore, id: &str, running: RunningProvider, reason: &str) {
    if let Err(e) = running.provider.shutdown().await {
        tracing::warn!(provider = id, error = %e, "provider shutdown failed");
    }
    let data = serde_json::json!({
        "host_id": core.identity.host_id, "provider_id": id,
        "annotations": running.annotations, "reason": reason, "public_key": id,
    });
    core.publish_event("provider_stopped", data).await;
}

/// Checks health every 10 s; reports changes as `health_check_passed|failed`.
async fn health_checks(core: Weak<HostCore>, id: String, provider: Arc<dyn Provider>) {
    let mut last: Option<bool> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let status = provider.health().await;
        let Some(core) = core.upgrade() else { return };
        let event = match (last, status.healthy) {
            (Some(before), now) if before == now => "health_check_status",
            (_, true) => "health_check_passed",
            (_, false) => "health_check_failed",
        };
        last = Some(status.healthy);
        let data = serde_json::json!({
            "host_id": core.identity.host_id, "provider_id": id, "message": status.message,
        });
        core.publish_event(event, data).await;
    }
}

/// A link as the provider sees it: configs resolved from the lattice's config store.
pub(crate) fn provider_view(core: &HostCore, link: &Link) -> LinkConfig {
    LinkConfig {
        source_id: link.source_id.clone(),
        target: link.target.clone(),
        link_name: link.name.clone(),
        wit_namespace: link.wit_namespace.clone(),
        wit_package: link.wit_package.clone(),
        interfaces: link.interfaces.clone(),
        source_config: core.shared.merged_config(&link.source_config),
        target_config: core.shared.merged_config(&link.target_config),
    }
}

async fn put_link(core: &HostCore, provider: &dyn Provider, id: &str, link: &Link) {
    let view = provider_view(core, link);
    let result = if link.target == id {
        provider.receive_link_config_as_target(&view).await
    } else {
        provider.receive_link_config_as_source(&view).await
    };
    match result {
        Ok(()) => {
            tracing::debug!(provider = id, source = %link.source_id, link = %link.name, "link delivered to the provider")
        }
        Err(e) => {
            tracing::warn!(provider = id, source = %link.source_id, link = %link.name, error = %e, "the provider refused a link")
        }
    }
}

async fn delete_link(core: &HostCore, provider: &dyn Provider, id: &str, link: &Link) {
    let view = provider_view(core, link);
    let result = if link.target == id {
        provider.delete_link_as_target(&view).await
    } else {
        provider.delete_link_as_source(&view).await
    };
    if let Err(e) = result {
        tracing::warn!(provider = id, source = %link.source_id, error = %e, "link delete failed");
    }
}

/// Tells the providers running here about links that appear, change or go away, for as
/// long as the host runs.
pub(crate) fn follow_link_changes(
    core: &Arc<HostCore>,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<super::shared::LinkChange>,
) {
    let core = Arc::downgrade(core);
    tokio::spawn(async move {
        while let Some((before, after)) = changes.recv().await {
            let Some(core) = core.upgrade() else { return };
            let removed: Vec<Link> = before
                .iter()
                .filter(|l| !after.contains(l))
                .cloned()
                .collect();
            let added: Vec<Link> = after
                .iter()
                .filter(|l| !before.contains(l))
                .cloned()
                .collect();
            notify(&core, removed, added).await;
        }
    });
}

/// Re-sends the links whose configs include `config_name` (their settings changed).
pub(crate) fn config_changed(core: &Arc<HostCore>, config_name: &str) {
    let touched: Vec<Link> = core
        .shared
        .all_links()
        .into_iter()
        .filter(|l| {
            l.source_config
                .iter()
                .chain(&l.target_config)
                .any(|n| n == config_name)
        })
        .collect();
    let to_notify = core.clone();
    tokio::spawn(async move { notify(&to_notify, Vec::new(), touched).await });
    let providers: Vec<(Arc<dyn Provider>, Vec<String>)> = core
        .providers()
        .values()
        .filter(|p| p.config_names.iter().any(|n| n == config_name))
        .map(|p| (p.provider.clone(), p.config_names.clone()))
        .collect();
    let core = core.clone();
    tokio::spawn(async move {
        for (provider, names) in providers {
            let config = core.shared.merged_config(&names);
            if let Err(e) = provider.update_config(&config).await {
                tracing::warn!(error = %e, "provider config update failed");
            }
        }
    });
}

/// A provider running here, with its id.
type Named = (String, Arc<dyn Provider>);

/// Delivers link puts and deletes to the providers they name, in order.
async fn notify(core: &Arc<HostCore>, removed: Vec<Link>, added: Vec<Link>) {
    let involved = |link: &Link| -> Vec<Named> {
        core.providers()
            .iter()
            .filter(|(id, _)| link.target == **id || link.source_id == **id)
            .map(|(id, p)| (id.clone(), p.provider.clone()))
            .collect()
    };
    let work: Vec<(bool, Link, Vec<Named>)> = removed
        .into_iter()
        .map(|l| (false, l.clone(), involved(&l)))
        .chain(added.into_iter().map(|l| (true, l.clone(), involved(&l))))
        .filter(|(_, _, providers)| !providers.is_empty())
        .collect();
    for (put, link, providers) in work {
        for (id, provider) in providers {
            if put {
                put_link(core, &*provider, &id, &link).await;
            } else {
                delete_link(core, &*provider, &id, &link).await;
            }
        }
    }
}

/// The host's [`ProviderRouter`].
pub(crate) struct LatticeProviders {
    pub(crate) core: Weak<HostCore>,
}

impl ProviderRouter for LatticeProviders {
    fn resolve(
        &self,
        component: &str,
        interface: &str,
        link_name: &str,
        deadline: Instant,
    ) -> Result<Capabilities, String> {
        let core = self
            .core
            .upgrade()
            .ok_or_else(|| "the host is shutting down".to_string())?;
        let (namespace, package, name) = super::rpc::split_interface(interface)
            .ok_or_else(|| format!("`{interface}` is not a `ns:pkg/iface` name"))?;
        let Some(link) = core
            .shared
            .link_for(component, namespace, package, name, link_name)
        else {
            return Err(format!(
                "component `{component}` has no link `{link_name}` for `{interface}`: create \
                 one with `trellis link put {component} PROVIDER_ID {namespace}:{package} --interface {name}`"
            ));
        };
        if let Some(capabilities) = core
            .providers()
            .get(&link.target)
            .and_then(|running| running.capabilities.clone())
        {
            return Ok(capabilities);
        }
        let transport: Arc<dyn Transport> = Arc::new(ProviderTransport {
            core: self.core.clone(),
            target: link.target,
            deadline,
        });
        Ok(Capabilities {
            keyvalue: Some(Arc::new(RemoteKeyValue(transport.clone()))),
            sql: Some(Arc::new(RemoteSql(transport.clone()))),
            http_client: Some(Arc::new(RemoteHttpClient(transport))),
        })
    }
}

/// Calls a provider that runs elsewhere (another host, or its own process) over NATS.
pub(crate) struct ProviderTransport {
    core: Weak<HostCore>,
    target: String,
    deadline: Instant,
}

#[trellis_provider_sdk::async_trait]
impl Transport for ProviderTransport {
    async fn call(
        &self,
        cx: &CallContext,
        interface: &str,
        function: &str,
        args: Vec<rmpv::Value>,
    ) -> Result<Vec<rmpv::Value>, TransportError> {
        let core = self
            .core
            .upgrade()
            .ok_or_else(|| TransportError("the host is shutting down".into()))?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(TransportError(format!(
                "no time left to call provider `{}`: the component's deadline has passed",
                self.target
            )));
        }
        let request = CallRequest::new(
            Caller::new(&core.identity.host_id, Some(&cx.source_id), &cx.link_name),
            &core.identity.lattice,
            &self.target,
            interface,
            function,
            remaining,
            args,
        );
        let target = &self.target;
        match exchange(&core, &request, remaining).await {
            Ok(CallReply::Ok(values)) => Ok(values),
            Ok(CallReply::Err(e)) => Err(TransportError(format!(
                "provider `{target}` refused `{interface}.{function}`: {e}"
            ))),
            Err(Exchange::NoResponders) => Err(TransportError(format!(
                "provider `{target}` is not running in lattice `{}` (link `{}` of component \
                 `{}` names it for `{interface}`): start it with `provider.start`",
                core.identity.lattice, cx.link_name, cx.source_id
            ))),
            Err(Exchange::Failed(message)) => Err(TransportError(format!(
                "call to provider `{target}` ({interface}.{function}) {message}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_builtin_providers() {
        let name = |r| builtin_name(r);
        assert_eq!(
            name("builtin://keyvalue-nats").as_deref(),
            Some("keyvalue-nats")
        );
        assert_eq!(
            name("wasmcloud+builtin://http-server").as_deref(),
            Some("http-server")
        );
        assert_eq!(
            name("ghcr.io/wasmcloud/keyvalue-redis:0.28.1").as_deref(),
            Some("keyvalue-redis")
        );
        assert_eq!(
            name("ghcr.io/wasmcloud/sqldb-postgres:0.8.0").as_deref(),
            Some("sql-postgres")
        );
        assert_eq!(name("file:///tmp/provider"), None);
        assert_eq!(name("ghcr.io/someone/else:1"), None);
    }
}
