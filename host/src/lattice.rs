//! Joining a lattice: identity, labels, heartbeats and the host part of the control interface.
//!
//! [`join`] connects to NATS and starts one task that owns the subscription to
//! `wasmbus.ctl.v1.{lattice}.>`: it answers the requests addressed to this host (or to every
//! host, like `host.ping`), publishes `host_started`, a `host_heartbeat` carrying the inventory
//! every `heartbeat_interval`, and `host_stopped` on the way out. Other tasks talk to it
//! through the returned [`LatticeHandle`] (`shutdown`, `stopped`).
//!
//! Control operations that this host does not implement yet get an error reply naming the
//! operation, never a silent success.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use trellis_protocol::ctl::{CloudEvent, CtlResponse, Host, HostInventory, subjects};
use trellis_protocol::keys::KeyKind;

/// How to join a lattice.
#[derive(Debug, Clone)]
pub struct LatticeConfig {
    pub nats_url: String,
    pub lattice: String,
    /// Labels given by the operator; `hostcore.*` labels are added automatically.
    pub labels: BTreeMap<String, String>,
    pub heartbeat_interval: Duration,
    /// How long to wait for NATS when connecting.
    pub connect_timeout: Duration,
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "cannot connect to NATS at {url}: {reason}; is nats-server (>= 2.10, with -js) running there? Start one with `nats-server -js`, or pass --nats-url"
    )]
    Connect { url: String, reason: String },
    #[error("cannot subscribe to the control interface on {url}: {reason}")]
    Subscribe { url: String, reason: String },
    #[error("label `{0}` is reserved: `hostcore.*` labels are set by the host")]
    ReservedLabel(String),
}

/// A running lattice membership.
pub struct LatticeHandle {
    host_id: String,
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

    /// Leaves the lattice: publishes `host_stopped`, flushes NATS and ends the task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The labels every host carries: `hostcore.arch`, `hostcore.os`, `hostcore.osfamily`.
pub fn builtin_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("hostcore.arch".into(), std::env::consts::ARCH.into()),
        ("hostcore.os".into(), std::env::consts::OS.into()),
        ("hostcore.osfamily".into(), std::env::consts::FAMILY.into()),
    ])
}

/// Connects to NATS and joins `config.lattice`.
pub async fn join(config: LatticeConfig) -> Result<LatticeHandle, JoinError> {
    if let Some(reserved) = config.labels.keys().find(|k| k.starts_with("hostcore.")) {
        return Err(JoinError::ReservedLabel(reserved.clone()));
    }
    let key = KeyKind::Server.generate();
    let host_id = key.public_key();
    let client = async_nats::ConnectOptions::new()
        .name(format!("trellis-host {host_id}"))
        .connection_timeout(config.connect_timeout)
        .connect(config.nats_url.as_str())
        .await
        .map_err(|e| JoinError::Connect {
            url: config.nats_url.clone(),
            reason: e.to_string(),
        })?;
    let ctl = client
        .subscribe(subjects::ctl_wildcard(&config.lattice))
        .await
        .map_err(|e| JoinError::Subscribe {
            url: config.nats_url.clone(),
            reason: e.to_string(),
        })?;
    let mut labels = config.labels.clone();
    labels.extend(builtin_labels());
    let identity = Identity {
        friendly_name: friendly_name(&host_id),
        host_id: host_id.clone(),
        lattice: config.lattice.clone(),
        labels,
        started: Instant::now(),
    };
    let (stop, stop_rx) = watch::channel(false);
    let (stopped_tx, stopped) = watch::channel(false);
    let task = tokio::spawn(run(
        client,
        ctl,
        identity,
        config.heartbeat_interval,
        stop_rx,
        stopped_tx,
    ));
    tracing::info!(host_id = %host_id, lattice = %config.lattice, url = %config.nats_url, "joined the lattice");
    Ok(LatticeHandle {
        host_id,
        stop,
        stopped,
        task,
    })
}

/// What a host says about itself.
struct Identity {
    host_id: String,
    friendly_name: String,
    lattice: String,
    labels: BTreeMap<String, String>,
    started: Instant,
}

impl Identity {
    fn uptime(&self) -> (u64, String) {
        let secs = self.started.elapsed().as_secs();
        (secs, humantime_secs(secs))
    }

    fn host(&self) -> Host {
        let (uptime_seconds, uptime_human) = self.uptime();
        Host {
            id: self.host_id.clone(),
            friendly_name: self.friendly_name.clone(),
            labels: self.labels.clone(),
            lattice: self.lattice.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds,
            uptime_human: Some(uptime_human),
            rpc_host: None,
            ctl_host: None,
            js_domain: None,
        }
    }

    fn inventory(&self) -> HostInventory {
        let (uptime_seconds, uptime_human) = self.uptime();
        HostInventory {
            host_id: self.host_id.clone(),
            friendly_name: self.friendly_name.clone(),
            labels: self.labels.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds,
            uptime_human,
            components: Vec::new(),
            providers: Vec::new(),
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

/// What to do after a control message.
enum Next {
    Continue,
    Stop,
}

async fn run(
    client: async_nats::Client,
    mut ctl: async_nats::Subscriber,
    identity: Identity,
    heartbeat_interval: Duration,
    mut stop: watch::Receiver<bool>,
    stopped: watch::Sender<bool>,
) {
    let publish = |(subject, payload): (String, Vec<u8>)| {
        let client = client.clone();
        async move {
            if let Err(e) = client.publish(subject.clone(), payload.into()).await {
                tracing::warn!(%subject, error = %e, "cannot publish an event");
            }
        }
    };
    let started = serde_json::json!({
        "labels": identity.labels,
        "friendly_name": identity.friendly_name,
        "version": env!("CARGO_PKG_VERSION"),
        "host_id": identity.host_id,
    });
    publish(identity.event("host_started", started)).await;
    let mut heartbeat = tokio::time::interval(heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prefix = format!("{}.{}.", subjects::CTL_PREFIX, identity.lattice);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = heartbeat.tick() => {
                let inventory = serde_json::to_value(identity.inventory()).unwrap_or_default();
                publish(identity.event("host_heartbeat", inventory)).await;
            }
            message = ctl.next() => {
                let Some(message) = message else { break };
                let operation = message.subject.as_str().strip_prefix(&prefix).unwrap_or_default();
                let (reply, next) = handle(&identity, operation);
                if let (Some(reply), Some(inbox)) = (reply, message.reply)
                    && let Err(e) = client.publish(inbox, reply.into()).await
                {
                    tracing::warn!(operation, error = %e, "cannot send a control reply");
                }
                if let Next::Stop = next {
                    tracing::info!("host.stop received: leaving the lattice");
                    break;
                }
            }
        }
    }
    let (uptime_seconds, _) = identity.uptime();
    publish(identity.event(
        "host_stopped",
        serde_json::json!({"labels": identity.labels, "uptime_seconds": uptime_seconds}),
    ))
    .await;
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "cannot flush NATS while leaving");
    }
    let _ = stopped.send(true);
}

/// The reply (if this host should answer) to one control operation.
fn handle(identity: &Identity, operation: &str) -> (Option<Vec<u8>>, Next) {
    let json = |value: serde_json::Result<Vec<u8>>| value.unwrap_or_default();
    let for_me = |op: &str| {
        operation
            .strip_prefix(op)
            .and_then(|rest| rest.strip_prefix('.'))
            .map(|host| host == identity.host_id)
    };
    if operation == "host.ping" {
        return (
            Some(json(serde_json::to_vec(&CtlResponse::ok(identity.host())))),
            Next::Continue,
        );
    }
    if let Some(mine) = for_me("host.get") {
        let reply = mine.then(|| json(serde_json::to_vec(&CtlResponse::ok(identity.inventory()))));
        return (reply, Next::Continue);
    }
    if let Some(mine) = for_me("host.stop") {
        if !mine {
            return (None, Next::Continue);
        }
        let reply = CtlResponse::success(format!("host {} is stopping", identity.host_id));
        return (Some(json(serde_json::to_vec(&reply))), Next::Stop);
    }
    // Addressed to another host: not ours to answer.
    let addressed_elsewhere = operation.rsplit_once('.').is_some_and(|(_, last)| {
        last.starts_with('N') && last.len() == 56 && last != identity.host_id
    });
    if addressed_elsewhere {
        return (None, Next::Continue);
    }
    let reply: CtlResponse<()> = CtlResponse::error(format!(
        "control operation `{operation}` is not supported by this Trellis host yet"
    ));
    (Some(json(serde_json::to_vec(&reply))), Next::Continue)
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

    fn identity() -> Identity {
        Identity {
            host_id: KeyKind::Server.generate().public_key(),
            friendly_name: "x".into(),
            lattice: "default".into(),
            labels: builtin_labels(),
            started: Instant::now(),
        }
    }

    fn reply_json(reply: Option<Vec<u8>>) -> serde_json::Value {
        serde_json::from_slice(&reply.unwrap()).unwrap()
    }

    #[test]
    fn ping_and_get_answer_with_the_wasmcloud_shapes() {
        let me = identity();
        let (reply, _) = handle(&me, "host.ping");
        let v = reply_json(reply);
        assert_eq!(v["success"], true);
        assert_eq!(v["response"]["id"], me.host_id.as_str());
        assert_eq!(v["response"]["labels"]["hostcore.os"], std::env::consts::OS);
        let (reply, _) = handle(&me, &format!("host.get.{}", me.host_id));
        let v = reply_json(reply);
        assert_eq!(v["response"]["host_id"], me.host_id.as_str());
        assert!(v["response"]["components"].as_array().unwrap().is_empty());
    }

    #[test]
    fn requests_for_other_hosts_get_no_reply_from_this_one() {
        let me = identity();
        let other = KeyKind::Server.generate().public_key();
        for op in ["host.get", "host.stop", "component.scale", "label.put"] {
            let (reply, _) = handle(&me, &format!("{op}.{other}"));
            assert!(reply.is_none(), "{op}");
        }
    }

    #[test]
    fn stop_for_this_host_replies_then_stops_and_unknown_ops_are_errors_not_successes() {
        let me = identity();
        let (reply, next) = handle(&me, &format!("host.stop.{}", me.host_id));
        assert_eq!(reply_json(reply)["success"], true);
        assert!(matches!(next, Next::Stop));
        let (reply, _) = handle(&me, "link.put");
        let v = reply_json(reply);
        assert_eq!(v["success"], false);
        assert!(v["message"].as_str().unwrap().contains("link.put"));
    }

    #[test]
    fn uptime_reads_like_a_person_would_write_it() {
        assert_eq!(humantime_secs(5), "5s");
        assert_eq!(humantime_secs(65), "1m 5s");
        assert_eq!(humantime_secs(3 * 86_400 + 3661), "3d 1h 1m 1s");
    }
}
