//! The wasmCloud v1 control interface: subjects and JSON bodies.
//!
//! Requests go to `wasmbus.ctl.v1.{lattice}.{operation}` and every reply is a
//! [`CtlResponse`] envelope `{success, message, response}`. Field names follow the
//! `wasmcloud-control-interface` crate so that existing clients of that protocol work against
//! a Trellis host. `docs/research/wasmcloud-v1-protocol.md` lists the sources of each shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Subject builders. Every control subject has the form `wasmbus.ctl.v1.{lattice}.{op}`.
pub mod subjects {
    /// The control-interface subject prefix (before the lattice name).
    pub const CTL_PREFIX: &str = "wasmbus.ctl.v1";
    /// The event subject prefix (before the lattice name).
    pub const EVT_PREFIX: &str = "wasmbus.evt";

    fn ctl(lattice: &str, op: &str) -> String {
        format!("{CTL_PREFIX}.{lattice}.{op}")
    }

    pub fn host_ping(lattice: &str) -> String {
        ctl(lattice, "host.ping")
    }
    pub fn host_get(lattice: &str, host: &str) -> String {
        ctl(lattice, &format!("host.get.{host}"))
    }
    pub fn host_stop(lattice: &str, host: &str) -> String {
        ctl(lattice, &format!("host.stop.{host}"))
    }
    pub fn component_scale(lattice: &str, host: &str) -> String {
        ctl(lattice, &format!("component.scale.{host}"))
    }
    pub fn component_update(lattice: &str, host: &str) -> String {
        ctl(lattice, &format!("component.update.{host}"))
    }
    pub fn provider_start(lattice: &str, host: &str) -> String {
        ctl(lattice, &format!("provider.start.{host}"))
    }
    pub fn provider_stop(lattice: &str, host: &str) -> String {
        ctl(lattice, &format!("provider.stop.{host}"))
    }
    pub fn link_put(lattice: &str) -> String {
        ctl(lattice, "link.put")
    }
    pub fn link_del(lattice: &str) -> String {
        ctl(lattice, "link.del")
    }
    pub fn link_get(lattice: &str) -> String {
        ctl(lattice, "link.get")
    }
    pub fn config_put(lattice: &str, name: &str) -> String {
        ctl(lattice, &format!("config.put.{name}"))
    }
    pub fn config_get(lattice: &str, name: &str) -> String {
        ctl(lattice, &format!("config.get.{name}"))
    }
    pub fn config_del(lattice: &str, name: &str) -> String {
        ctl(lattice, &format!("config.del.{name}"))
    }
    pub fn label_put(lattice: &str, host: &str) -> String {
        ctl(lattice, &format!("label.put.{host}"))
    }
    pub fn label_del(lattice: &str, host: &str) -> String {
        ctl(lattice, &format!("label.del.{host}"))
    }
    pub fn claims_get(lattice: &str) -> String {
        ctl(lattice, "claims.get")
    }
    /// What a host subscribes to: every control subject of its lattice.
    pub fn ctl_wildcard(lattice: &str) -> String {
        ctl(lattice, ">")
    }
    /// The queue group of the lattice-wide operations (`link.*`, `config.*`, `claims.get`):
    /// one host answers each request, from the state in JetStream KV.
    pub fn ctl_queue_group(lattice: &str) -> String {
        format!("{CTL_PREFIX}.{lattice}.lattice-wide")
    }
    /// The lattice-wide operations, for a queue subscription.
    pub fn ctl_lattice_wide(lattice: &str) -> [String; 3] {
        [
            ctl(lattice, "link.>"),
            ctl(lattice, "config.>"),
            ctl(lattice, "claims.get"),
        ]
    }
    /// `wasmbus.evt.{lattice}.{event_type}`.
    pub fn event(lattice: &str, event_type: &str) -> String {
        format!("{EVT_PREFIX}.{lattice}.{event_type}")
    }
}

/// The reply envelope of every control request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtlResponse<T> {
    pub success: bool,
    #[serde(default)]
    pub message: String,
    #[serde(default = "none")]
    pub response: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

impl<T> CtlResponse<T> {
    pub fn ok(response: T) -> Self {
        Self {
            success: true,
            message: String::new(),
            response: Some(response),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
            response: None,
        }
    }
}

impl CtlResponse<()> {
    /// Success without a body.
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            success: true,
            message: message.into(),
            response: None,
        }
    }
}

/// One host, as returned by `host.ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// The host's server public key (`N…`).
    pub id: String,
    pub friendly_name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub lattice: String,
    pub version: String,
    pub uptime_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_human: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctl_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_domain: Option<String>,
}

/// What runs on a host, as returned by `host.get.{host}` and carried by heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInventory {
    pub host_id: String,
    pub friendly_name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub version: String,
    pub uptime_seconds: u64,
    #[serde(default)]
    pub uptime_human: String,
    #[serde(default)]
    pub components: Vec<ComponentDescription>,
    #[serde(default)]
    pub providers: Vec<ProviderDescription>,
}

/// A component running on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentDescription {
    pub id: String,
    pub image_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub revision: i32,
    /// The most instances that may run at once (the scale count).
    pub max_instances: u32,
}

/// A provider running on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderDescription {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub revision: i32,
}

/// `component.scale.{host}`: run up to `max_instances` instances of a component (0 stops it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleComponentCommand {
    /// Where the component comes from: a path, `file:///abs/path.wasm`, or a registry ref.
    #[serde(default)]
    pub component_ref: String,
    pub component_id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Called `count` on the wire.
    #[serde(default, rename = "count", alias = "max_instances")]
    pub max_instances: u32,
    #[serde(default)]
    pub host_id: String,
    /// Names of config maps for the component.
    #[serde(default)]
    pub config: Vec<String>,
    #[serde(default)]
    pub allow_update: bool,
}

/// `component.update.{host}`: replace a running component with another version, in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateComponentCommand {
    #[serde(default)]
    pub component_id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub host_id: String,
    #[serde(default)]
    pub new_component_ref: String,
}

/// A link: calls from `source_id` to the interfaces `wit_namespace:wit_package/{interfaces}`
/// go to `target`, under the link `name`. Also the data of `linkdef_set` and the items of
/// a component spec in `LATTICEDATA_{lattice}`. Always serialised with all eight fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub source_id: String,
    pub target: String,
    #[serde(default = "default_link_name")]
    pub name: String,
    pub wit_namespace: String,
    pub wit_package: String,
    pub interfaces: Vec<String>,
    /// Names of config maps (in `CONFIGDATA_{lattice}`) for the source side.
    #[serde(default)]
    pub source_config: Vec<String>,
    /// Names of config maps for the target side.
    #[serde(default)]
    pub target_config: Vec<String>,
}

/// The link name used when none is given.
pub const DEFAULT_LINK_NAME: &str = "default";

fn default_link_name() -> String {
    DEFAULT_LINK_NAME.to_string()
}

impl Link {
    /// Whether this link carries calls to `ns:pkg/iface` (no version).
    pub fn covers(&self, namespace: &str, package: &str, interface: &str) -> bool {
        self.wit_namespace == namespace
            && self.wit_package == package
            && self.interfaces.iter().any(|i| i == interface)
    }

    /// `ns:pkg/iface` for each interface of the link.
    pub fn qualified_interfaces(&self) -> impl Iterator<Item = String> + '_ {
        self.interfaces
            .iter()
            .map(|i| format!("{}:{}/{i}", self.wit_namespace, self.wit_package))
    }
}

/// `link.del`: removes the link of `source_id` for `wit_namespace:wit_package` named `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteLinkRequest {
    pub source_id: String,
    #[serde(default = "default_link_name")]
    pub name: String,
    pub wit_namespace: String,
    pub wit_package: String,
}

/// The value of `COMPONENT_{id}` in `LATTICEDATA_{lattice}`: where the component comes from
/// (`url`, empty when a link was put before the component ran) and its links as a source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSpec {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub links: Vec<Link>,
    /// Trellis extension (ignored by wasmCloud hosts): the interfaces the running
    /// component's signed claims grant, so any host can refuse a link the source could never
    /// use. `None` when unknown (not started yet, a provider, or an unsigned component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<String>>,
}

/// Names in the JetStream key-value buckets that hold lattice state.
pub mod kv {
    /// Bucket of links (`COMPONENT_{id}`) and claims (`CLAIMS_{subject}`).
    pub fn lattice_bucket(lattice: &str) -> String {
        format!("LATTICEDATA_{lattice}")
    }
    /// Bucket of named config maps (key = config name).
    pub fn config_bucket(lattice: &str) -> String {
        format!("CONFIGDATA_{lattice}")
    }
    pub const COMPONENT_PREFIX: &str = "COMPONENT_";
    pub const CLAIMS_PREFIX: &str = "CLAIMS_";
    pub fn component_key(id: &str) -> String {
        format!("{COMPONENT_PREFIX}{id}")
    }
    pub fn claims_key(subject: &str) -> String {
        format!("{CLAIMS_PREFIX}{subject}")
    }
}

/// A CloudEvents 1.0 event as published on `wasmbus.evt.{lattice}.{type}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    /// The emitting host's id.
    pub source: String,
    /// `com.wasmcloud.lattice.{event_type}`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub datacontenttype: String,
    /// RFC 3339.
    pub time: String,
    pub data: serde_json::Value,
}

/// The prefix of every event's `type`.
pub const EVENT_TYPE_PREFIX: &str = "com.wasmcloud.lattice";

impl CloudEvent {
    /// A new event of `event_type` (e.g. `host_heartbeat`) from `source` with `data`.
    pub fn new(source: &str, event_type: &str, data: serde_json::Value) -> Self {
        Self {
            specversion: "1.0".into(),
            id: uuid::Uuid::new_v4().to_string(),
            source: source.into(),
            event_type: format!("{EVENT_TYPE_PREFIX}.{event_type}"),
            datacontenttype: "application/json".into(),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            data,
        }
    }

    /// The short type (`host_heartbeat`) of a `com.wasmcloud.lattice.host_heartbeat` event.
    pub fn short_type(&self) -> &str {
        self.event_type
            .strip_prefix(EVENT_TYPE_PREFIX)
            .and_then(|t| t.strip_prefix('.'))
            .unwrap_or(&self.event_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_v1_layout() {
        assert_eq!(
            subjects::host_ping("default"),
            "wasmbus.ctl.v1.default.host.ping"
        );
        assert_eq!(
            subjects::component_scale("prod", "NABC"),
            "wasmbus.ctl.v1.prod.component.scale.NABC"
        );
        assert_eq!(
            subjects::config_put("l", "db"),
            "wasmbus.ctl.v1.l.config.put.db"
        );
        assert_eq!(subjects::ctl_wildcard("l"), "wasmbus.ctl.v1.l.>");
        assert_eq!(
            subjects::event("l", "host_heartbeat"),
            "wasmbus.evt.l.host_heartbeat"
        );
    }

    #[test]
    fn links_default_their_name_and_serialise_all_fields() {
        let link: Link = serde_json::from_str(
            r#"{"source_id":"a","target":"b","wit_namespace":"wasi","wit_package":"keyvalue","interfaces":["store"]}"#,
        )
        .unwrap();
        assert_eq!(link.name, "default");
        assert!(link.covers("wasi", "keyvalue", "store"));
        assert!(!link.covers("wasi", "keyvalue", "atomics"));
        let v = serde_json::to_value(&link).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 8);
        assert!(serde_json::from_str::<Link>(r#"{"source_id":"a","target":"b"}"#).is_err());
    }

    #[test]
    fn envelope_field_names_and_optional_response() {
        let ok = serde_json::to_value(CtlResponse::ok(vec![1])).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"success": true, "message": "", "response": [1]})
        );
        let err: CtlResponse<Vec<u8>> =
            serde_json::from_str(r#"{"success": false, "message": "nope"}"#).unwrap();
        assert_eq!(err, CtlResponse::error("nope"));
    }

    #[test]
    fn scale_sends_max_instances_as_count_and_accepts_either() {
        let cmd: ScaleComponentCommand =
            serde_json::from_str(r#"{"component_id": "c", "count": 3}"#).unwrap();
        assert_eq!(cmd.max_instances, 3);
        let cmd: ScaleComponentCommand =
            serde_json::from_str(r#"{"component_id": "c", "max_instances": 2}"#).unwrap();
        assert_eq!(cmd.max_instances, 2);
        let v = serde_json::to_value(&cmd).unwrap();
        assert_eq!(v["count"], 2);
        assert!(serde_json::from_str::<ScaleComponentCommand>(r#"{"count": 1}"#).is_err());
    }

    #[test]
    fn events_are_cloudevents_with_wasmcloud_types() {
        let e = CloudEvent::new("NHOST", "host_heartbeat", serde_json::json!({"a": 1}));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "com.wasmcloud.lattice.host_heartbeat");
        assert_eq!(v["datacontenttype"], "application/json");
        assert_eq!(e.short_type(), "host_heartbeat");
        let back: CloudEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
