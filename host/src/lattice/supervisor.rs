//! Providers in their own processes: start, hand over the lattice, supervise, stop.
//!
//! `provider.start` with a reference that is not builtin (`file:///path/to/provider` or a
//! path) runs that executable as a child process. The host writes one line of
//! [`HostData`] (lattice, NATS URL and credentials, provider id, config, current links) to
//! its stdin and keeps the pipe open: the SDK's process runner (`provider-sdk::process`)
//! exits when it closes, so a provider never outlives its host, even one killed with SIGKILL.
//!
//! The host side is a [`ProcessProvider`]: it implements the SDK's [`Provider`] trait by
//! sending lifecycle messages (link put/delete, health, shutdown) to the process over NATS,
//! signed with the host key, so the rest of the host treats it like an in-process provider.
//! Capability calls do not go through it: components reach the process over NATS like any
//! provider elsewhere in the lattice.
//!
//! Supervision: one task per provider waits for the child; when it exits without being told
//! to, the host publishes `provider_stopped` (reason `crashed: …`) and starts it again after a
//! backoff (100 ms doubling to 5 s, reset after a minute of uptime), publishing
//! `provider_started` once it answers a health check again.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use trellis_protocol::rpc::{CallReply, CallRequest, Caller};
use trellis_provider_sdk::process::HostData;
use trellis_provider_sdk::wire::{self, arg};
use trellis_provider_sdk::{Capabilities, HealthStatus, LinkConfig, Provider, ProviderError};

use super::HostCore;
use super::rpc::{Exchange, exchange};

/// How long a new process may take to answer its first health check.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a provider gets to shut down before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The executable a provider reference names.
pub(crate) fn executable(reference: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(reference.strip_prefix("file://").unwrap_or(reference));
    if reference.contains("://") && !reference.starts_with("file://") {
        return Err(format!(
            "cannot start a provider from `{reference}`: use `builtin://NAME` for a first-party \
             provider or `file:///abs/path` for a provider executable"
        ));
    }
    let meta = std::fs::metadata(&path)
        .map_err(|e| format!("cannot start provider executable {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "{} is not an executable file (chmod +x it, or build the provider)",
                path.display()
            ));
        }
    }
    Ok(path)
}

/// The host's handle on a provider process.
pub(crate) struct ProcessProvider {
    core: Weak<HostCore>,
    id: String,
    stop: watch::Sender<bool>,
    stopped: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The current process id (0 while none runs).
    pid: Arc<std::sync::atomic::AtomicU32>,
}

impl ProcessProvider {
    /// Starts the process and waits until it answers a health check.
    pub(crate) async fn start(
        core: &Arc<HostCore>,
        id: &str,
        path: PathBuf,
        config_names: Vec<String>,
    ) -> Result<Arc<Self>, String> {
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let pid = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let provider = Arc::new(Self {
            core: Arc::downgrade(core),
            id: id.to_string(),
            stop,
            stopped: tokio::sync::Mutex::new(None),
            pid: pid.clone(),
        });
        let task = tokio::spawn(supervise(
            Arc::downgrade(core),
            id.to_string(),
            path,
            config_names,
            stop_rx,
            ready_tx,
            pid,
        ));
        *provider.stopped.lock().await = Some(task);
        match ready_rx.await {
            Ok(Ok(())) => Ok(provider),
            Ok(Err(e)) => {
                let _ = provider.stop.send(true);
                Err(e)
            }
            Err(_) => Err("the provider supervisor ended before the provider was ready".into()),
        }
    }

    /// The id of the running process, if one runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        Some(self.pid.load(std::sync::atomic::Ordering::Relaxed)).filter(|p| *p != 0)
    }

    /// Sends one lifecycle message to the process.
    async fn lifecycle(
        &self,
        function: &str,
        args: Vec<rmpv::Value>,
        timeout: Duration,
    ) -> Result<Vec<rmpv::Value>, String> {
        let core = self
            .core
            .upgrade()
            .ok_or_else(|| "the host is shutting down".to_string())?;
        lifecycle(&core, &self.id, function, args, timeout).await
    }

    async fn link(&self, function: &str, link: &LinkConfig) -> Result<(), ProviderError> {
        let reply = self
            .lifecycle(function, vec![arg(link)], Duration::from_secs(10))
            .await
            .map_err(ProviderError)?;
        let value = reply.into_iter().next().unwrap_or(rmpv::Value::Nil);
        rmpv::ext::from_value::<Result<(), ProviderError>>(value)
            .map_err(|e| ProviderError(format!("malformed lifecycle reply: {e}")))?
    }
}

async fn lifecycle(
    core: &HostCore,
    id: &str,
    function: &str,
    args: Vec<rmpv::Value>,
    timeout: Duration,
) -> Result<Vec<rmpv::Value>, String> {
    let request = CallRequest::new(
        Caller::new(
            &core.identity.host_id,
            None,
            trellis_protocol::ctl::DEFAULT_LINK_NAME,
        ),
        &core.identity.lattice,
        &wire::lifecycle_target(id, &core.identity.host_id),
        wire::LIFECYCLE,
        function,
        timeout,
        args,
    );
    match exchange(core, &request, timeout).await {
        Ok(CallReply::Ok(values)) => Ok(values),
        Ok(CallReply::Err(e)) => Err(format!("provider `{id}` refused `{function}`: {e}")),
        Err(Exchange::NoResponders) => Err(format!("provider `{id}` is not answering")),
        Err(Exchange::Failed(m)) => Err(format!("`{function}` to provider `{id}` {m}")),
    }
}

#[trellis_provider_sdk::async_trait]
impl Provider for ProcessProvider {
    async fn receive_link_config_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        self.link(wire::LINK_PUT, link).await
    }

    async fn receive_link_config_as_source(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        self.link(wire::LINK_PUT, link).await
    }

    async fn delete_link_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        self.link(wire::LINK_DEL, link).await
    }

    async fn delete_link_as_source(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        self.link(wire::LINK_DEL, link).await
    }

    async fn update_config(
        &self,
        config: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let reply = self
            .lifecycle(
                wire::CONFIG_UPDATE,
                vec![arg(config)],
                Duration::from_secs(10),
            )
            .await
            .map_err(ProviderError)?;
        let value = reply.into_iter().next().unwrap_or(rmpv::Value::Nil);
        rmpv::ext::from_value::<Result<(), ProviderError>>(value)
            .map_err(|e| ProviderError(format!("malformed lifecycle reply: {e}")))?
    }

    async fn health(&self) -> HealthStatus {
        match self
            .lifecycle(wire::HEALTH, vec![], Duration::from_secs(5))
            .await
        {
            Ok(values) => values
                .into_iter()
                .next()
                .and_then(|v| rmpv::ext::from_value::<HealthStatus>(v).ok())
                .unwrap_or_else(|| HealthStatus::unhealthy("malformed health reply")),
            Err(e) => HealthStatus::unhealthy(e),
        }
    }

    /// Asks the process to stop, then waits for the supervisor (which kills it after the
    /// grace period).
    async fn shutdown(&self) -> Result<(), ProviderError> {
        let _ = self.stop.send(true);
        if let Some(task) = self.stopped.lock().await.take() {
            let _ = task.await;
        }
        Ok(())
    }

    fn capabilities(self: Arc<Self>) -> Capabilities {
        // Calls reach the process over NATS, not through this handle.
        Capabilities::default()
    }
}

fn host_data(core: &HostCore, id: &str, config_names: &[String]) -> HostData {
    let nats = &core.nats;
    HostData {
        lattice: core.identity.lattice.clone(),
        host_id: core.identity.host_id.clone(),
        provider_id: id.to_string(),
        nats_url: nats.url.clone(),
        nats_creds_file: nats.creds_file.clone(),
        nats_nkey_seed: nats.nkey_seed.clone(),
        nats_tls_ca_file: nats.tls_ca_file.clone(),
        nats_tls_client_cert: nats.tls_client_cert.clone(),
        nats_tls_client_key: nats.tls_client_key.clone(),
        config: core.shared.merged_config(config_names),
        links: core
            .shared
            .links_naming(id)
            .iter()
            .map(|l| super::providers::provider_view(core, l))
            .collect(),
    }
}

async fn spawn(
    core: &HostCore,
    id: &str,
    path: &PathBuf,
    config_names: &[String],
) -> Result<Child, String> {
    let mut line = serde_json::to_vec(&host_data(core, id, config_names))
        .map_err(|e| format!("cannot encode host data: {e}"))?;
    line.push(b'\n');
    let mut child = Command::new(path)
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let Some(stdin) = child.stdin.as_mut() else {
        return Err("the provider's stdin is not a pipe".into());
    };
    stdin
        .write_all(&line)
        .await
        .map_err(|e| format!("cannot hand host data to {}: {e}", path.display()))?;
    Ok(child)
}

/// Waits until the process answers a health check; fails if it exits first.
async fn ready(core: &HostCore, id: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "provider `{id}` exited before it was ready: {status}"
            ));
        }
        if lifecycle(core, id, wire::HEALTH, vec![], Duration::from_millis(500))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "provider `{id}` did not answer within {READY_WITHIN:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn supervise(
    core: Weak<HostCore>,
    id: String,
    path: PathBuf,
    config_names: Vec<String>,
    mut stop: watch::Receiver<bool>,
    ready_tx: tokio::sync::oneshot::Sender<Result<(), String>>,
    pid: Arc<std::sync::atomic::AtomicU32>,
) {
    let mut ready_tx = Some(ready_tx);
    let mut backoff = Duration::from_millis(100);
    let mut restarts = 0u32;
    loop {
        let Some(host) = core.upgrade() else { return };
        let started = Instant::now();
        let mut child = match spawn(&host, &id, &path, &config_names).await {
            Ok(child) => child,
            Err(e) => {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(Err(e));
                    return;
                }
                tracing::warn!(provider = %id, error = %e, "cannot restart the provider");
                drop(host);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        pid.store(
            child.id().unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        // Held open for the life of the process: `Child::wait` would close it, and the
        // provider takes a closed stdin as "the host is gone".
        let _stdin = child.stdin.take();
        let readiness = tokio::select! {
            r = ready(&host, &id, &mut child) => r,
            _ = stop.changed() => Err("stopped".into()),
        };
        match (readiness, ready_tx.take()) {
            (Ok(()), Some(tx)) => {
                let _ = tx.send(Ok(()));
            }
            (Err(e), Some(tx)) => {
                let _ = tx.send(Err(e));
                return;
            }
            (Ok(()), None) => {
                tracing::info!(provider = %id, restarts, "provider restarted");
                let data = serde_json::json!({
                    "host_id": host.identity.host_id, "provider_id": id,
                    "image_ref": format!("file://{}", path.display()),
                    "annotations": {}, "restart_count": restarts, "pid": child.id(),
                });
                host.publish_event("provider_started", data).await;
            }
            (Err(e), None) => {
                tracing::warn!(provider = %id, error = %e, "restarted provider is not ready")
            }
        }
        drop(host);
        tokio::select! {
            status = child.wait() => {
                let Some(host) = core.upgrade() else { return };
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                tracing::warn!(provider = %id, %status, "provider process exited; restarting");
                let data = serde_json::json!({
                    "host_id": host.identity.host_id, "provider_id": id,
                    "annotations": {}, "reason": format!("crashed: {status}"), "public_key": id,
                });
                host.publish_event("provider_stopped", data).await;
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(100);
                }
                restarts += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            _ = stop.changed() => {
                if let Some(host) = core.upgrade() {
                    let _ = lifecycle(&host, &id, wire::SHUTDOWN, vec![], Duration::from_secs(2)).await;
                }
                if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                    tracing::warn!(provider = %id, "provider did not stop within {STOP_GRACE:?}; killing it");
                    let _ = child.kill().await;
                }
                return;
            }
        }
    }
}
