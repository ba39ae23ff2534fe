//! Answers control-interface operations addressed to this host (or to every host).
//!
//! `handle` is synchronous and cheap: it parses the request, replies, and spawns whatever
//! takes time. Operations for other hosts get no reply from this one; operations this host
//! does not implement yet get an error naming them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use trellis_protocol::claims::format_time;
use trellis_protocol::ctl::{
    ComponentDescription, CtlResponse, ScaleComponentCommand, UpdateComponentCommand,
};

use super::HostCore;
use crate::{Component, ComponentLimits};

/// What the control loop does after an operation.
pub(crate) enum Next {
    Continue,
    Stop,
}

/// A component scaled onto this host.
pub(crate) struct Running {
    pub(crate) component: Arc<Component>,
    pub(crate) image_ref: String,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) max_instances: u32,
    /// Names of the config maps merged into the component's configuration.
    pub(crate) config_names: Vec<String>,
    /// Serves lattice calls to the component while it runs.
    pub(crate) serving: Option<super::AbortOnDrop>,
}

impl Running {
    pub(crate) fn describe(&self) -> ComponentDescription {
        let claims = self.component.claims();
        ComponentDescription {
            id: self.component.id().to_string(),
            image_ref: self.image_ref.clone(),
            name: claims.and_then(|c| c.wascap.name.clone()),
            annotations: self.annotations.clone(),
            revision: claims.and_then(|c| c.wascap.rev).unwrap_or_default(),
            max_instances: self.max_instances,
        }
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn error(message: String) -> Option<Vec<u8>> {
    Some(to_json(&CtlResponse::<()>::error(message)))
}

/// The reply (if this host should answer) to one control operation.
pub(crate) fn handle(
    core: &Arc<HostCore>,
    operation: &str,
    payload: &[u8],
) -> (Option<Vec<u8>>, Next) {
    let me = &core.identity.host_id;
    // `Some(true)`: `{op}.{this host}`; `Some(false)`: `{op}.{another host}`.
    let for_host = |op: &str| {
        operation
            .strip_prefix(op)
            .and_then(|rest| rest.strip_prefix('.'))
            .map(|host| host == me)
    };
    // Answered through the queue group by one host (see `lattice_wide`).
    let lattice_wide = ["link.", "config.", "claims."];
    if lattice_wide.iter().any(|p| operation.starts_with(p)) {
        return (None, Next::Continue);
    }
    if operation == "host.ping" {
        return (
            Some(to_json(&CtlResponse::ok(core.identity.host()))),
            Next::Continue,
        );
    }
    if let Some(mine) = for_host("host.get") {
        return (
            mine.then(|| to_json(&CtlResponse::ok(core.inventory()))),
            Next::Continue,
        );
    }
    if let Some(mine) = for_host("host.stop") {
        if !mine {
            return (None, Next::Continue);
        }
        // The body is optional; when present it must be a StopHostCommand, and when it names
        // a host, it must be this one. Anything else is refused: stopping is not undoable.
        let named = match stop_target(payload) {
            Ok(named) => named,
            Err(message) => return (error(message), Next::Continue),
        };
        if let Some(named) = named.filter(|id| id != me) {
            return (
                error(format!(
                    "invalid host_id [{named}]: this request was sent to host {me}"
                )),
                Next::Continue,
            );
        }
        let reply = CtlResponse::success(format!("host {me} is stopping"));
        return (Some(to_json(&reply)), Next::Stop);
    }
    if let Some(mine) = for_host("component.update") {
        if !mine {
            return (None, Next::Continue);
        }
        return (update(core, payload), Next::Continue);
    }
    if let Some(mine) = for_host("component.scale") {
        if !mine {
            return (None, Next::Continue);
        }
        return (scale(core, payload), Next::Continue);
    }
    for (op, apply) in [
        (
            "provider.start",
            super::providers::start as fn(&Arc<HostCore>, &[u8]) -> Vec<u8>,
        ),
        ("provider.stop", super::providers::stop),
    ] {
        if let Some(mine) = for_host(op) {
            return (mine.then(|| apply(core, payload)), Next::Continue);
        }
    }
    for (op, apply) in [
        ("label.put", put_label as fn(&Arc<HostCore>, &[u8]) -> Reply),
        ("label.del", delete_label),
    ] {
        if let Some(mine) = for_host(op) {
            if !mine {
                return (None, Next::Continue);
            }
            let (reply, labels) = apply(core, payload);
            if let Some(labels) = labels {
                let core = core.clone();
                tokio::spawn(async move {
                    let data =
                        serde_json::json!({"host_id": core.identity.host_id, "labels": labels});
                    core.publish_event("labels_changed", data).await;
                });
            }
            return (Some(reply), Next::Continue);
        }
    }
    let addressed_elsewhere = operation
        .rsplit_once('.')
        .is_some_and(|(_, last)| last.starts_with('N') && last.len() == 56 && last != me.as_str());
    if addressed_elsewhere {
        return (None, Next::Continue);
    }
    (
        error(format!(
            "control operation `{operation}` is not supported by this Trellis host yet"
        )),
        Next::Continue,
    )
}

/// The host named by a `host.stop` body (`None`: no body, or no `host_id`).
fn stop_target(payload: &[u8]) -> Result<Option<String>, String> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let usage = "expected no body or {\"host_id\": \"N…\", \"timeout\": MILLISECONDS}";
    let body: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| format!("invalid host.stop request ({usage}): {e}"))?;
    let Some(body) = body.as_object() else {
        return Err(format!(
            "invalid host.stop request ({usage}): not a JSON object"
        ));
    };
    match body.get("host_id") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(id)) if id.is_empty() => Ok(None),
        Some(serde_json::Value::String(id)) => Ok(Some(id.clone())),
        Some(other) => Err(format!(
            "invalid host.stop request ({usage}): `host_id` must be a string, got {other}"
        )),
    }
}

/// Limits on dynamic labels, so that host replies and heartbeats that carry them stay far
/// below NATS' max_payload (Kubernetes keeps label keys to 253 and values to 63 characters).
const MAX_LABEL_KEY_BYTES: usize = 253;
const MAX_LABEL_VALUE_BYTES: usize = 1024;
const MAX_LABELS: usize = 64;

/// A reply, and the new label map when the labels changed.
type Reply = (Vec<u8>, Option<BTreeMap<String, String>>);

#[derive(serde::Deserialize)]
struct HostLabel {
    key: String,
    value: String,
}

#[derive(serde::Deserialize)]
struct HostLabelKey {
    key: String,
}

fn put_label(core: &Arc<HostCore>, payload: &[u8]) -> Reply {
    let refuse = |message: String| (to_json(&CtlResponse::<()>::error(message)), None);
    let label: HostLabel = match serde_json::from_slice(payload) {
        Ok(l) => l,
        Err(e) => {
            return refuse(format!(
                "invalid label.put request (expected {{\"key\", \"value\"}}): {e}"
            ));
        }
    };
    let key = label.key.trim().to_string();
    if key.is_empty() {
        return refuse("invalid label.put request: `key` is empty".into());
    }
    if super::is_reserved_label(&key) {
        return refuse(format!(
            "label `{key}` is reserved: hostcore.* labels cannot be set dynamically"
        ));
    }
    if key.len() > MAX_LABEL_KEY_BYTES || label.value.len() > MAX_LABEL_VALUE_BYTES {
        return refuse(format!(
            "label `{}` is too long: keys may have at most {MAX_LABEL_KEY_BYTES} bytes and \
             values {MAX_LABEL_VALUE_BYTES} bytes (this key has {}, this value {})",
            key.chars().take(40).collect::<String>(),
            key.len(),
            label.value.len()
        ));
    }
    let mut too_many = false;
    let labels = core.identity.update_labels(|labels| {
        if !labels.contains_key(&key) && labels.len() >= MAX_LABELS {
            too_many = true;
            return false;
        }
        labels.insert(key, label.value);
        true
    });
    if too_many {
        return refuse(format!(
            "this host already has {MAX_LABELS} labels, the most it keeps: delete one first"
        ));
    }
    (
        to_json(&CtlResponse::success("successfully put label")),
        labels,
    )
}

fn delete_label(core: &Arc<HostCore>, payload: &[u8]) -> Reply {
    let request: HostLabelKey = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => {
            let message = format!("invalid label.del request (expected {{\"key\"}}): {e}");
            return (to_json(&CtlResponse::<()>::error(message)), None);
        }
    };
    if super::is_reserved_label(&request.key) {
        let message = format!(
            "label `{}` is reserved: hostcore.* labels cannot be deleted",
            request.key
        );
        return (to_json(&CtlResponse::<()>::error(message)), None);
    }
    match core
        .identity
        .update_labels(|labels| labels.remove(&request.key).is_some())
    {
        Some(labels) => (
            to_json(&CtlResponse::success("successfully deleted label")),
            Some(labels),
        ),
        None => (
            to_json(&CtlResponse::success(
                "successfully deleted label (no such label)",
            )),
            None,
        ),
    }
}

/// Validates an update request and swaps the component in the background: the new version is
/// loaded next to the old one, then replaces it in one step, so invocations never find it
/// missing. Reported as `component_scaled` (new ref) then `component_scaled` (old ref, 0).
fn update(core: &Arc<HostCore>, payload: &[u8]) -> Option<Vec<u8>> {
    let command: UpdateComponentCommand = match serde_json::from_slice(payload) {
        Ok(c) => c,
        Err(e) => return error(format!("invalid component.update request: {e}")),
    };
    if command.new_component_ref.trim().is_empty() {
        return error("invalid component.update request: `new_component_ref` is empty".into());
    }
    let id = &command.component_id;
    let running = core.components().get(id).map(|r| {
        (
            r.image_ref.clone(),
            r.max_instances,
            r.annotations.clone(),
            r.config_names.clone(),
        )
    });
    let Some((old_ref, max_instances, annotations, config)) = running else {
        return error(format!("component {id} not found on this host"));
    };
    if old_ref == command.new_component_ref {
        return Some(to_json(&CtlResponse::success(format!(
            "component {id} already updated to {old_ref}"
        ))));
    }
    let message = format!(
        "component {id} updating from {old_ref} to {}",
        command.new_component_ref
    );
    let core = core.clone();
    tokio::spawn(async move {
        let scale = ScaleComponentCommand {
            component_ref: command.new_component_ref.clone(),
            component_id: command.component_id.clone(),
            annotations: if command.annotations.is_empty() {
                annotations.clone()
            } else {
                command.annotations.clone()
            },
            max_instances,
            host_id: core.identity.host_id.clone(),
            config,
            allow_update: true,
        };
        if apply_scale(core.clone(), scale).await {
            let data = scale_event(&core, &command.component_id, &old_ref, 0, &annotations);
            core.publish_event("component_scaled", data).await;
        }
    });
    Some(to_json(&CtlResponse::success(message)))
}

/// Validates a scale request, acknowledges it, and loads or stops the component in the
/// background (reported by `component_scaled` / `component_scale_failed`).
fn scale(core: &Arc<HostCore>, payload: &[u8]) -> Option<Vec<u8>> {
    let command: ScaleComponentCommand = match serde_json::from_slice(payload) {
        Ok(c) => c,
        Err(e) => return error(format!("invalid component.scale request: {e}")),
    };
    if command.component_id.trim().is_empty() {
        return error("invalid component.scale request: `component_id` is empty".into());
    }
    if command.max_instances > 0 && command.component_ref.trim().is_empty() {
        return error("invalid component.scale request: `component_ref` is empty".into());
    }
    tokio::spawn(apply_scale(core.clone(), command));
    Some(to_json(&CtlResponse::success("")))
}

/// The fields every `component_scaled` / `component_scale_failed` event carries.
fn scale_event(
    core: &HostCore,
    component_id: &str,
    image_ref: &str,
    max_instances: u32,
    annotations: &BTreeMap<String, String>,
) -> serde_json::Value {
    serde_json::json!({
        "annotations": annotations, "host_id": core.identity.host_id,
        "image_ref": image_ref, "max_instances": max_instances, "component_id": component_id,
    })
}

/// Applies a scale; returns whether it succeeded.
async fn apply_scale(core: Arc<HostCore>, command: ScaleComponentCommand) -> bool {
    let id = command.component_id.clone();
    let mut data = scale_event(
        &core,
        &id,
        &command.component_ref,
        command.max_instances,
        &command.annotations,
    );
    if command.max_instances == 0 {
        core.uninstall(&id);
        tracing::info!(component = %id, "component stopped (scaled to 0)");
        core.publish_event("component_scaled", data).await;
        return true;
    }
    match load(&core, &command).await {
        Ok((component, config)) => {
            component.set_config(config);
            if let Some(claims) = component.claims() {
                data["public_key"] = claims.sub.clone().into();
                data["claims"] = serde_json::json!({
                    "issuer": claims.iss, "name": claims.wascap.name, "tags": claims.wascap.tags,
                    "version": claims.wascap.ver, "revision": claims.wascap.rev,
                    "call_alias": claims.wascap.call_alias,
                    "not_before_human": claims.nbf.map_or("never".into(), format_time),
                    "expires_human": claims.exp.map_or("never".into(), format_time),
                });
            }
            record_in_lattice(&core, &command, &component).await;
            let running = Running {
                component,
                image_ref: command.component_ref.clone(),
                annotations: command.annotations.clone(),
                max_instances: command.max_instances,
                config_names: command.config.clone(),
                serving: None,
            };
            core.install(running);
            tracing::info!(component = %id, max_instances = command.max_instances, "component scaled");
            core.publish_event("component_scaled", data).await;
            true
        }
        Err(reason) => {
            tracing::warn!(component = %id, %reason, "component scale failed");
            data["error"] = reason.into();
            core.publish_event("component_scale_failed", data).await;
            false
        }
    }
}

/// Writes the component's spec (`url`, grants; links kept) and claims to the lattice state,
/// so any host can validate links from it and `claims.get` lists it. Best effort: the
/// component runs either way.
async fn record_in_lattice(
    core: &HostCore,
    command: &ScaleComponentCommand,
    component: &Component,
) {
    let grants = component.claims().map(|c| c.grants().to_vec());
    let url = command.component_ref.clone();
    let written = core
        .shared
        .update_spec(&command.component_id, |spec| {
            spec.url = url.clone();
            spec.grants = grants.clone();
            Ok(())
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(component = %command.component_id, error = %e, "cannot record the component in the lattice state");
    }
    if let Some(claims) = component.claims() {
        // `claims.get` clients read flat string maps (tags comma-separated, absent = omitted).
        let w = &claims.wascap;
        let mut record = BTreeMap::from([
            ("issuer".to_string(), claims.iss.clone()),
            ("subject".to_string(), claims.sub.clone()),
            (
                "revision".to_string(),
                w.rev.unwrap_or_default().to_string(),
            ),
        ]);
        let optional = [
            ("name", w.name.clone()),
            ("version", w.ver.clone()),
            ("call_alias", w.call_alias.clone()),
            ("tags", w.tags.as_ref().map(|t| t.join(","))),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                record.insert(key.to_string(), value);
            }
        }
        let record = serde_json::to_value(record).unwrap_or_default();
        if let Err(e) = core.shared.put_claims(&claims.sub, &record).await {
            tracing::warn!(component = %command.component_id, error = %e, "cannot record claims");
        }
    }
}

/// Reads, verifies and compiles the component (off the async threads), and reads its config.
async fn load(
    core: &Arc<HostCore>,
    command: &ScaleComponentCommand,
) -> Result<(Arc<Component>, BTreeMap<String, String>), String> {
    let config = core
        .shared
        .load_config(&command.config)
        .await
        .map_err(|e| e.to_string())?;
    let path = crate::reference::resolve(&command.component_ref).map_err(|e| e.to_string())?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| format!("cannot read component `{}`: {e}", path.display()))?;
    let runtime = core.runtime.clone();
    let id = command.component_id.clone();
    let limits = ComponentLimits {
        max_concurrent: command.max_instances as usize,
        ..ComponentLimits::default()
    };
    let router = core.calls();
    let component =
        tokio::task::spawn_blocking(move || runtime.load_linked(&id, &bytes, limits, Some(router)))
            .await
            .map_err(|e| format!("the component loader failed: {e}"))?
            .map_err(|e| e.to_string())?;
    Ok((component, config))
}
