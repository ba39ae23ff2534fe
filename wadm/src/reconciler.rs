//! The reconcile loop: events in, commands out, statuses written.
//!
//! Every wadm instance keeps a [`LatticeView`] warm from `wasmbus.evt.{lattice}.>`, but only
//! the holder of the lease in `WADM_LEASE_{lattice}` acts, so two wadm processes never send
//! the same command twice. The leader runs a **pass** when something changed (an event that
//! moves placement, a host that went silent, an application record written by the API) and
//! at least every `resync` interval (a full resync). A pass, for each application:
//!
//! 1. reads the records (`WADM_APPS_{lattice}`), the links (`link.get`) and the configs the
//!    apps use (`config.get`);
//! 2. deployed: `scaler::reconcile(desired, observed)`; undeployed or deleted:
//!    `scaler::undeploy(…)` (a deleted record is removed once nothing is left);
//! 3. sends the commands in plan order, applying each accepted one to the view;
//! 4. writes the status: failed (with the scalers' problems or the hosts' refusals),
//!    reconciling (commands sent, or placements awaiting confirmation), deployed, undeployed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;
use tracing::Instrument;

use crate::api::{ScalerStatus, Status, StatusInfo, StatusType};
use crate::lattice::{CtlFailure, LatticeClient};
use crate::model::{AppDesired, Command, Placement};
use crate::observer::{Change, LatticeView};
use crate::scaler;
use crate::store::{AppRecord, Store};

/// Tuning of the loop.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// A full pass at least this often.
    pub resync: Duration,
    /// A host silent for this long is considered gone (its heartbeat interval × 2.5 or so).
    pub host_expiry: Duration,
    /// After (re)starting, wait this long for heartbeats before the first pass.
    pub warmup: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(5),
            host_expiry: Duration::from_secs(5),
            warmup: Duration::from_millis(2500),
        }
    }
}

/// Runs until `stop` turns true.
pub async fn run(
    nats: async_nats::Client,
    store: Store,
    lattice: String,
    me: String,
    options: ReconcileOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = match nats
        .subscribe(format!(
            "{}.{lattice}.>",
            trellis_protocol::ctl::subjects::EVT_PREFIX
        ))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("wadm cannot subscribe to lattice events: {e}");
            return;
        }
    };
    let client = LatticeClient::new(nats.clone(), &lattice);
    let mut view = LatticeView::new(options.host_expiry);
    let mut lease: Option<u64> = None;
    let mut leader = false;
    let started = Instant::now();
    let mut last_pass: Option<Instant> = None;
    let mut dirty = true;
    let mut written: BTreeMap<String, Status> = BTreeMap::new();
    let mut lease_tick = tokio::time::interval(Duration::from_secs(1));
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let records_changed = store.watch_apps().await;
    tokio::pin!(records_changed);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = lease_tick.tick() => {
                let now_leader = store.lease(&me, &mut lease).await;
                if now_leader && !leader {
                    tracing::info!(wadm = %me, "this wadm is the leader: it reconciles the lattice");
                    dirty = true;
                } else if leader && !now_leader {
                    tracing::warn!(wadm = %me, "this wadm lost the lease: another one reconciles");
                }
                leader = now_leader;
            }
            Some(message) = events.next() => {
                let event_type = message.subject.as_str().rsplit('.').next().unwrap_or_default();
                let data = serde_json::from_slice::<serde_json::Value>(&message.payload)
                    .map(|mut e| e["data"].take())
                    .unwrap_or_default();
                if view.on_event(event_type, &data, Instant::now()) == Change::Placement {
                    dirty = true;
                }
            }
            Some(()) = records_changed.next() => dirty = true,
            _ = tick.tick() => {
                let now = Instant::now();
                if !view.expire(now).is_empty() {
                    dirty = true;
                }
                let due = last_pass.is_none_or(|at| now.duration_since(at) >= options.resync);
                let warm = now.duration_since(started) >= options.warmup;
                if leader && warm && (dirty || due) {
                    dirty = false;
                    last_pass = Some(now);
                    let span = tracing::debug_span!("wadm.reconcile");
                    pass(&store, &client, &mut view, &mut written).instrument(span).await;
                }
            }
        }
    }
    store.release(lease).await;
}

/// One pass over every application.
async fn pass(
    store: &Store,
    client: &LatticeClient,
    view: &mut LatticeView,
    written: &mut BTreeMap<String, Status>,
) {
    let records = match store.list().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("wadm cannot read applications: {e}");
            return;
        }
    };
    match client.links().await {
        Ok(links) => view.set_links(links),
        Err(e) => tracing::debug!("wadm cannot read links: {e:?}"),
    }
    for record in records {
        let status = if let Some(version) = record.deployed.clone() {
            reconcile_app(&record, &version, client, view).await
        } else {
            remove_app(&record, store, client, view).await
        };
        let Some(status) = status else { continue };
        if written.get(&record.name) != Some(&status) {
            if let Err(e) = store.set_status(&record.name, &status).await {
                tracing::warn!(app = %record.name, "{e}");
            }
            tracing::info!(app = %record.name, status = %status.info.status_type, "{}", status.info.message);
            written.insert(record.name.clone(), status);
        }
    }
}

fn desired_of(record: &AppRecord, version: &str) -> Option<AppDesired> {
    let mut desired = record.manifest(version)?.desired();
    desired.retired_links = record.retired_links.clone();
    desired.retired_configs = record.retired_configs.clone();
    Some(desired)
}

async fn refresh_configs(client: &LatticeClient, view: &mut LatticeView, names: Vec<String>) {
    for name in names {
        if let Ok(values) = client.config(&name).await {
            view.set_config(&name, values);
        }
    }
}

/// Sends `commands` in order; the refusals (`what: why`) and whether any went unanswered.
async fn send(
    client: &LatticeClient,
    view: &mut LatticeView,
    commands: &[Command],
) -> (Vec<String>, bool) {
    let mut refusals = Vec::new();
    let mut unanswered = false;
    for command in commands {
        match client.execute(command).await {
            Ok(()) => view.apply(command, Instant::now()),
            Err(CtlFailure::Refused(why)) => refusals.push(format!("{}: {why}", describe(command))),
            Err(CtlFailure::NoAnswer(why)) => {
                tracing::debug!("{}: {why}", describe(command));
                unanswered = true;
            }
        }
    }
    (refusals, unanswered)
}

async fn reconcile_app(
    record: &AppRecord,
    version: &str,
    client: &LatticeClient,
    view: &mut LatticeView,
) -> Option<Status> {
    let Some(desired) = desired_of(record, version) else {
        let info = StatusInfo::new(
            StatusType::Failed,
            format!("version `{version}` cannot be read back; deploy another version"),
        );
        return Some(status(info, vec![], version));
    };
    let mut configs: Vec<String> = desired.configs.keys().cloned().collect();
    configs.extend(desired.retired_configs.iter().cloned());
    refresh_configs(client, view, configs).await;
    let plan = scaler::reconcile(&desired, view.observed());
    let (refusals, unanswered) = send(client, view, &plan.commands).await;
    let now = Instant::now();
    let pending: Vec<&str> = desired
        .components
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| view.is_pending(id, now))
        .collect();
    let failures: Vec<&String> = plan.problems.iter().chain(&refusals).collect();
    let scalers = scaler_statuses(&desired, &plan.commands, &failures, &pending);
    let info = if !failures.is_empty() {
        let reasons: Vec<&str> = failures.iter().map(|s| s.as_str()).collect();
        StatusInfo::new(StatusType::Failed, reasons.join("; "))
    } else if !plan.commands.is_empty() || unanswered || !pending.is_empty() {
        StatusInfo::new(
            StatusType::Reconciling,
            format!(
                "version `{version}`: {} command(s) sent, waiting for hosts to confirm",
                plan.commands.len()
            ),
        )
    } else {
        StatusInfo::new(
            StatusType::Deployed,
            format!("version `{version}` is deployed"),
        )
    };
    Some(status(info, scalers, version))
}

async fn remove_app(
    record: &AppRecord,
    store: &Store,
    client: &LatticeClient,
    view: &mut LatticeView,
) -> Option<Status> {
    let previous = record
        .last_deployed
        .as_deref()
        .and_then(|v| desired_of(record, v));
    let (links, configs) = previous
        .map(|d| (d.links, d.configs.into_keys().collect::<Vec<_>>()))
        .unwrap_or_default();
    refresh_configs(client, view, configs.clone()).await;
    let commands = scaler::undeploy(&record.name, view.observed(), &links, &configs);
    let (refusals, _) = send(client, view, &commands).await;
    if record.deleted && commands.is_empty() {
        if let Err(e) = store.remove(&record.name).await {
            tracing::warn!(app = %record.name, "{e}");
        }
        return None;
    }
    let info = if !refusals.is_empty() {
        StatusInfo::new(StatusType::Failed, refusals.join("; "))
    } else if commands.is_empty() {
        StatusInfo::new(StatusType::Undeployed, "undeployed")
    } else {
        StatusInfo::new(StatusType::Reconciling, "undeploying")
    };
    Some(status(
        info,
        vec![],
        record.last_deployed.as_deref().unwrap_or_default(),
    ))
}

fn status(info: StatusInfo, scalers: Vec<ScalerStatus>, version: &str) -> Status {
    Status {
        info,
        scalers,
        version: version.to_string(),
    }
}

/// One status per component and provider: failed when a problem or refusal names it,
/// reconciling while commands for it are sent or unconfirmed, else deployed.
fn scaler_statuses(
    desired: &AppDesired,
    commands: &[Command],
    failures: &[&String],
    pending: &[&str],
) -> Vec<ScalerStatus> {
    let placements = desired
        .components
        .iter()
        .map(|c| (&c.name, &c.id, &c.placement))
        .chain(
            desired
                .providers
                .iter()
                .map(|p| (&p.name, &p.id, &p.placement)),
        );
    placements
        .map(|(name, id, placement)| {
            let named = |text: &str| {
                text.contains(&format!("`{id}`")) || text.contains(&format!("`{name}`"))
            };
            let failed: Vec<&str> = failures
                .iter()
                .map(|f| f.as_str())
                .filter(|f| named(f))
                .collect();
            let busy =
                pending.contains(&id.as_str()) || commands.iter().any(|c| named(&describe(c)));
            let info = if !failed.is_empty() {
                StatusInfo::new(StatusType::Failed, failed.join("; "))
            } else if busy {
                StatusInfo::new(StatusType::Reconciling, "")
            } else {
                StatusInfo::new(StatusType::Deployed, "")
            };
            let kind = match placement {
                Placement::Spread { .. } => "SpreadScaler",
                Placement::Daemon { .. } => "DaemonScaler",
            };
            ScalerStatus {
                id: id.clone(),
                kind: kind.to_string(),
                name: name.clone(),
                info,
            }
        })
        .collect()
}

/// A command in words, naming what it acts on in backticks.
pub fn describe(command: &Command) -> String {
    match command {
        Command::ScaleComponent {
            host_id,
            component_id,
            count,
            ..
        } => format!("scale `{component_id}` to {count} on host {host_id}"),
        Command::UpdateComponent {
            host_id,
            component_id,
            image,
            ..
        } => format!("update `{component_id}` to {image} on host {host_id}"),
        Command::StartProvider {
            host_id,
            provider_id,
            ..
        } => format!("start provider `{provider_id}` on host {host_id}"),
        Command::StopProvider {
            host_id,
            provider_id,
        } => format!("stop provider `{provider_id}` on host {host_id}"),
        Command::PutLink(link) => format!(
            "link `{}` → `{}` ({}:{}, `{}`)",
            link.source_id, link.target, link.wit_namespace, link.wit_package, link.name
        ),
        Command::DeleteLink {
            source_id,
            wit_namespace,
            wit_package,
            name,
        } => format!("delete link of `{source_id}` ({wit_namespace}:{wit_package}, `{name}`)"),
        Command::PutConfig { name, .. } => format!("put config `{name}`"),
        Command::DeleteConfig { name } => format!("delete config `{name}`"),
    }
}
