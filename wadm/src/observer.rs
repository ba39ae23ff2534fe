//! What wadm believes the lattice runs, kept from the hosts' events.
//!
//! Hosts publish a `host_heartbeat` with their whole inventory every few seconds; that is the
//! source of truth for which hosts are alive and what they run. `host_started`,
//! `host_stopped` and `component_scaled` update the view between heartbeats, and wadm applies
//! each command it sends ([`LatticeView::apply`]) at once, so the next reconcile pass does not
//! send it again while the host's confirmation is on its way. A host whose heartbeat stops
//! (killed without a goodbye) is dropped after [`LatticeView::expiry`]; its instances are then
//! missing from the view and the scalers place them elsewhere.
//!
//! Links and config maps are not tracked from events: the server reads them with `link.get`
//! and `config.get` before each pass ([`LatticeView::set_links`], [`LatticeView::set_config`]).
//! Everything here is synchronous and clock-injected, so it is tested without NATS.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use trellis_protocol::ctl::{HostInventory, Link};

use crate::model::{Command, Observed, ObservedComponent, ObservedHost, ObservedProvider};

/// The lattice as seen from events, with when each host was last heard from.
#[derive(Debug)]
pub struct LatticeView {
    observed: Observed,
    last_seen: BTreeMap<String, Instant>,
    expiry: Duration,
    /// Placements wadm applied and no host event has confirmed yet: `(host, id)` → when, and
    /// the expected entry (`None`: removed). A heartbeat older than the command would undo
    /// them, so they are re-applied over heartbeats until confirmed or [`PENDING_GRACE`] old.
    pending: BTreeMap<(String, String), (Instant, Option<ObservedComponent>)>,
}

/// How long an unconfirmed placement outlives contrary heartbeats.
pub const PENDING_GRACE: Duration = Duration::from_secs(6);

/// What an event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing the scalers care about.
    None,
    /// Something placed changed: reconcile soon.
    Placement,
}

impl LatticeView {
    /// A view that forgets a host `expiry` after its last event.
    pub fn new(expiry: Duration) -> Self {
        Self {
            observed: Observed::default(),
            last_seen: BTreeMap::new(),
            expiry,
            pending: BTreeMap::new(),
        }
    }

    /// How long a silent host is kept.
    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    /// Takes in one lattice event (`event_type` without the `com.wasmcloud.lattice.` prefix).
    pub fn on_event(&mut self, event_type: &str, data: &Value, now: Instant) -> Change {
        match event_type {
            "host_heartbeat" => {
                let Ok(inventory) = HostInventory::deserialize(data) else {
                    return Change::None;
                };
                let mut host = host_from_inventory(&inventory);
                self.pending
                    .retain(|_, (at, _)| now.saturating_duration_since(*at) < PENDING_GRACE);
                for ((host_id, id), (_, expected)) in &self.pending {
                    if *host_id == inventory.host_id {
                        match expected {
                            Some(c) => host.components.insert(id.clone(), c.clone()),
                            None => host.components.remove(id),
                        };
                    }
                }
                let known = self.observed.hosts.get(&inventory.host_id);
                let changed = known != Some(&host);
                self.last_seen.insert(inventory.host_id.clone(), now);
                self.observed.hosts.insert(inventory.host_id, host);
                if changed {
                    Change::Placement
                } else {
                    Change::None
                }
            }
            "host_started" => {
                let Some(id) = data["host_id"].as_str() else {
                    return Change::None;
                };
                let labels = string_map(&data["labels"]);
                self.last_seen.insert(id.to_string(), now);
                let host = self.observed.hosts.entry(id.to_string()).or_default();
                host.labels = labels;
                Change::Placement
            }
            "host_stopped" => {
                let Some(id) = data["host_id"].as_str() else {
                    return Change::None;
                };
                self.last_seen.remove(id);
                match self.observed.hosts.remove(id) {
                    Some(_) => Change::Placement,
                    None => Change::None,
                }
            }
            "component_scaled" => {
                let (Some(host_id), Some(component)) =
                    (data["host_id"].as_str(), data["component_id"].as_str())
                else {
                    return Change::None;
                };
                self.pending
                    .remove(&(host_id.to_string(), component.to_string()));
                let Some(host) = self.observed.hosts.get_mut(host_id) else {
                    return Change::None;
                };
                let count = data["max_instances"].as_u64().unwrap_or(0) as u32;
                if count == 0 {
                    host.components.remove(component);
                } else {
                    host.components.insert(
                        component.to_string(),
                        ObservedComponent {
                            image: data["image_ref"].as_str().unwrap_or_default().to_string(),
                            count,
                            annotations: string_map(&data["annotations"]),
                        },
                    );
                }
                Change::Placement
            }
            "host_stopped_unexpectedly"
            | "provider_started"
            | "provider_stopped"
            | "component_scale_failed"
            | "provider_start_failed" => Change::Placement,
            _ => Change::None,
        }
    }

    /// Drops hosts not heard from within the expiry; returns their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let expiry = self.expiry;
        let gone: Vec<String> = self
            .last_seen
            .iter()
            .filter(|(_, seen)| now.saturating_duration_since(**seen) > expiry)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.last_seen.remove(id);
            self.observed.hosts.remove(id);
        }
        gone
    }

    /// Replaces the known links (from `link.get`).
    pub fn set_links(&mut self, links: Vec<Link>) {
        self.observed.links = links;
    }

    /// Records a config map's values, or that it does not exist.
    pub fn set_config(&mut self, name: &str, values: Option<BTreeMap<String, String>>) {
        match values {
            Some(values) => self.observed.configs.insert(name.to_string(), values),
            None => self.observed.configs.remove(name),
        };
    }

    /// Whether a placement of component `id` awaits its host's confirmation.
    pub fn is_pending(&self, id: &str, now: Instant) -> bool {
        self.pending
            .iter()
            .any(|((_, c), (at, _))| c == id && now.saturating_duration_since(*at) < PENDING_GRACE)
    }

    /// Records the expected effect of a command the host accepted, at `now`.
    pub fn apply(&mut self, command: &Command, now: Instant) {
        self.apply_inner(command);
        let placed = match command {
            Command::ScaleComponent {
                host_id,
                component_id,
                ..
            }
            | Command::UpdateComponent {
                host_id,
                component_id,
                ..
            } => Some((host_id, component_id)),
            _ => None,
        };
        if let Some((host_id, id)) = placed {
            let expected = self
                .observed
                .hosts
                .get(host_id)
                .and_then(|h| h.components.get(id))
                .cloned();
            self.pending
                .insert((host_id.clone(), id.clone()), (now, expected));
        }
    }

    fn apply_inner(&mut self, command: &Command) {
        let hosts = &mut self.observed.hosts;
        match command {
            Command::ScaleComponent {
                host_id,
                component_id,
                image,
                count,
                annotations,
                ..
            } => {
                let Some(host) = hosts.get_mut(host_id) else {
                    return;
                };
                if *count == 0 {
                    host.components.remove(component_id);
                } else {
                    host.components.insert(
                        component_id.clone(),
                        ObservedComponent {
                            image: image.clone(),
                            count: *count,
                            annotations: annotations.clone(),
                        },
                    );
                }
            }
            Command::UpdateComponent {
                host_id,
                component_id,
                image,
                annotations,
            } => {
                if let Some(c) = hosts
                    .get_mut(host_id)
                    .and_then(|h| h.components.get_mut(component_id))
                {
                    c.image.clone_from(image);
                    c.annotations.clone_from(annotations);
                }
            }
            Command::StartProvider {
                host_id,
                provider_id,
                image,
                annotations,
                ..
            } => {
                if let Some(host) = hosts.get_mut(host_id) {
                    host.providers.insert(
                        provider_id.clone(),
                        ObservedProvider {
                            image: image.clone(),
                            annotations: annotations.clone(),
                        },
                    );
                }
            }
            Command::StopProvider {
                host_id,
                provider_id,
            } => {
                if let Some(host) = hosts.get_mut(host_id) {
                    host.providers.remove(provider_id);
                }
            }
            Command::PutLink(link) => {
                self.observed.links.retain(|l| !same_link_key(l, link));
                self.observed.links.push(link.clone());
            }
            Command::DeleteLink {
                source_id,
                wit_namespace,
                wit_package,
                name,
            } => self.observed.links.retain(|l| {
                !(l.source_id == *source_id
                    && l.wit_namespace == *wit_namespace
                    && l.wit_package == *wit_package
                    && l.name == *name)
            }),
            Command::PutConfig { name, values } => {
                self.observed.configs.insert(name.clone(), values.clone());
            }
            Command::DeleteConfig { name } => {
                self.observed.configs.remove(name);
            }
        }
    }
}

/// Links are keyed by source, package and name (a put replaces the same key).
fn same_link_key(a: &Link, b: &Link) -> bool {
    a.source_id == b.source_id
        && a.wit_namespace == b.wit_namespace
        && a.wit_package == b.wit_package
        && a.name == b.name
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn host_from_inventory(inventory: &HostInventory) -> ObservedHost {
    ObservedHost {
        labels: inventory.labels.clone(),
        components: inventory
            .components
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    ObservedComponent {
                        image: c.image_ref.clone(),
                        count: c.max_instances,
                        annotations: c.annotations.clone(),
                    },
                )
            })
            .collect(),
        providers: inventory
            .providers
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    ObservedProvider {
                        image: p.image_ref.clone().unwrap_or_default(),
                        annotations: p.annotations.clone(),
                    },
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn heartbeat(host: &str, zone: &str, components: Value) -> Value {
        json!({
            "host_id": host, "friendly_name": host, "labels": {"zone": zone},
            "version": "0.1.0", "uptime_seconds": 1, "components": components, "providers": [],
        })
    }

    #[test]
    fn heartbeats_place_and_silence_expires() {
        let mut view = LatticeView::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let one = json!([{"id": "app-web", "image_ref": "file:///w.wasm", "max_instances": 3,
            "annotations": {"wasmcloud.dev/appspec": "app"}}]);
        assert_eq!(
            view.on_event("host_heartbeat", &heartbeat("N1", "a", one.clone()), t0),
            Change::Placement
        );
        assert_eq!(
            view.on_event("host_heartbeat", &heartbeat("N1", "a", one), t0),
            Change::None,
            "an unchanged heartbeat changes nothing"
        );
        view.on_event("host_heartbeat", &heartbeat("N2", "b", json!([])), t0);
        let host = &view.observed().hosts["N1"];
        assert_eq!(host.labels["zone"], "a");
        assert_eq!(host.components["app-web"].count, 3);

        let later = t0 + Duration::from_secs(4);
        view.on_event("host_heartbeat", &heartbeat("N2", "b", json!([])), later);
        assert!(view.expire(later).is_empty());
        assert_eq!(view.expire(t0 + Duration::from_secs(6)), vec!["N1"]);
        assert!(!view.observed().hosts.contains_key("N1"));
        assert!(view.observed().hosts.contains_key("N2"));
    }

    #[test]
    fn scale_events_and_applied_commands_update_between_heartbeats() {
        let mut view = LatticeView::new(Duration::from_secs(5));
        let now = Instant::now();
        view.on_event(
            "host_started",
            &json!({"host_id": "N1", "labels": {"zone": "a"}}),
            now,
        );
        view.on_event(
            "component_scaled",
            &json!({"host_id": "N1", "component_id": "c", "image_ref": "x", "max_instances": 2,
                    "annotations": {}}),
            now,
        );
        assert_eq!(view.observed().hosts["N1"].components["c"].count, 2);
        view.apply(
            &Command::UpdateComponent {
                host_id: "N1".into(),
                component_id: "c".into(),
                image: "y".into(),
                annotations: BTreeMap::new(),
            },
            now,
        );
        assert_eq!(view.observed().hosts["N1"].components["c"].image, "y");
        view.apply(
            &Command::ScaleComponent {
                host_id: "N1".into(),
                component_id: "c".into(),
                image: "y".into(),
                count: 0,
                config: vec![],
                annotations: BTreeMap::new(),
            },
            now,
        );
        assert!(view.observed().hosts["N1"].components.is_empty());
        assert!(view.is_pending("c", now));
        // A heartbeat sent before the host acted does not bring the component back.
        let stale = heartbeat(
            "N1",
            "a",
            json!([{"id": "c", "image_ref": "y", "max_instances": 2}]),
        );
        view.on_event("host_heartbeat", &stale, now + Duration::from_secs(1));
        assert!(view.observed().hosts["N1"].components.is_empty());
        // Past the grace period the heartbeat wins again.
        view.on_event("host_heartbeat", &stale, now + PENDING_GRACE);
        assert_eq!(view.observed().hosts["N1"].components["c"].count, 2);
        assert!(!view.is_pending("c", now + PENDING_GRACE));
        view.on_event("host_stopped", &json!({"host_id": "N1"}), now);
        assert!(view.observed().hosts.is_empty());
    }

    #[test]
    fn malformed_events_are_ignored() {
        let mut view = LatticeView::new(Duration::from_secs(5));
        let now = Instant::now();
        for (kind, data) in [
            ("host_heartbeat", json!({"host_id": 7})),
            ("host_started", json!("nope")),
            (
                "component_scaled",
                json!({"host_id": "unknown", "component_id": "c"}),
            ),
        ] {
            assert_eq!(view.on_event(kind, &data, now), Change::None, "{kind}");
        }
        assert!(view.observed().hosts.is_empty());
    }
}
