//! The three shapes the reconciler works with, kept free of I/O:
//!
//! - [`AppDesired`]: what one deployed manifest version asks for (built from a manifest by
//!   `manifest::Manifest::desired`);
//! - [`Observed`]: what the lattice runs now (built from heartbeats, events and `link.get` /
//!   `config.get` by the server's observer);
//! - [`Command`]: the control-interface actions that move observed toward desired (sent by
//!   the server's executor).
//!
//! Scalers (`scaler/`) are pure functions `(&AppDesired, &Observed) -> Vec<Command>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trellis_protocol::ctl::Link;

/// Annotation naming who manages a component or provider (`wadm` for ours).
pub const MANAGED_BY_ANNOTATION: &str = "wasmcloud.dev/managed-by";
/// The value of [`MANAGED_BY_ANNOTATION`] on everything wadm starts.
pub const MANAGED_BY: &str = "wadm";
/// Annotation naming the application (manifest name) that owns a component or provider.
pub const APP_ANNOTATION: &str = "wasmcloud.dev/appspec";
/// Annotation naming the manifest version that last placed a component or provider.
pub const VERSION_ANNOTATION: &str = "wasmcloud.dev/appspec-version";

/// Host label keys and values a spread requires (all must match).
pub type Requirements = BTreeMap<String, String>;

/// Everything one application version asks the lattice for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppDesired {
    /// The manifest's `metadata.name`.
    pub app: String,
    /// The manifest version being deployed.
    pub version: String,
    pub components: Vec<DesiredComponent>,
    pub providers: Vec<DesiredProvider>,
    /// Links to exist (source is one of this app's components or providers).
    pub links: Vec<Link>,
    /// Named config maps the app defines inline (name → values).
    pub configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Links a previous deployed version declared that this one does not: delete them when
    /// they are still present.
    pub retired_links: Vec<Link>,
    /// Config names a previous version created that this one does not.
    pub retired_configs: Vec<String>,
}

/// A component of type `component` in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredComponent {
    /// Manifest component name.
    pub name: String,
    /// Lattice component id (`{app}-{name}` unless the manifest sets `properties.id`).
    pub id: String,
    /// `properties.image` (or `file://` path).
    pub image: String,
    /// Names of config maps for the component (inline configs are named too).
    pub config: Vec<String>,
    pub placement: Placement,
}

/// A component of type `capability` in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredProvider {
    pub name: String,
    /// Lattice provider id (`{app}-{name}` unless the manifest sets `properties.id`).
    pub id: String,
    pub image: String,
    pub config: Vec<String>,
    /// For providers `instances` means hosts: at most one provider per host.
    pub placement: Placement,
}

/// How instances are placed: the `spreadscaler` or `daemonscaler` trait. A component without
/// either trait gets `Spread { instances: 1, spreads: [] }` like wadm does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Placement {
    /// `instances` in total, split over `spreads` by weight (no spreads: any host).
    Spread {
        instances: u32,
        spreads: Vec<Spread>,
    },
    /// `instances` on every host that meets a spread's requirements (no spreads: every host).
    Daemon {
        instances: u32,
        spreads: Vec<Spread>,
    },
}

/// One entry of a scaler's `spread` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub name: String,
    pub requirements: Requirements,
    /// Relative weight; wadm's default is 100.
    pub weight: u32,
}

/// The lattice as the reconciler sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Live hosts by host id.
    pub hosts: BTreeMap<String, ObservedHost>,
    /// Every link in the lattice.
    pub links: Vec<Link>,
    /// Config maps that exist (name → values).
    pub configs: BTreeMap<String, BTreeMap<String, String>>,
}

/// One live host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedHost {
    pub labels: BTreeMap<String, String>,
    /// Components running on the host by component id.
    pub components: BTreeMap<String, ObservedComponent>,
    /// Providers running on the host by provider id.
    pub providers: BTreeMap<String, ObservedProvider>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedComponent {
    pub image: String,
    /// The scale count (`max_instances`).
    pub count: u32,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedProvider {
    pub image: String,
    pub annotations: BTreeMap<String, String>,
}

/// A control-interface action. The executor maps each to one `wasmbus.ctl.v1` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// `component.scale.{host}` with `count` (0 stops it on that host).
    ScaleComponent {
        host_id: String,
        component_id: String,
        image: String,
        count: u32,
        config: Vec<String>,
        annotations: BTreeMap<String, String>,
    },
    /// `component.update.{host}`: swap a running component to a new image in place.
    UpdateComponent {
        host_id: String,
        component_id: String,
        image: String,
        annotations: BTreeMap<String, String>,
    },
    /// `provider.start.{host}`.
    StartProvider {
        host_id: String,
        provider_id: String,
        image: String,
        config: Vec<String>,
        annotations: BTreeMap<String, String>,
    },
    /// `provider.stop.{host}`.
    StopProvider {
        host_id: String,
        provider_id: String,
    },
    /// `link.put`.
    PutLink(Link),
    /// `link.del` of the link `(source_id, wit_namespace, wit_package, name)`.
    DeleteLink {
        source_id: String,
        wit_namespace: String,
        wit_package: String,
        name: String,
    },
    /// `config.put.{name}`.
    PutConfig {
        name: String,
        values: BTreeMap<String, String>,
    },
    /// `config.del.{name}`.
    DeleteConfig { name: String },
}

/// The annotations wadm puts on what it starts for `app` at `version`.
pub fn ownership(app: &str, version: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_ANNOTATION.to_string(), MANAGED_BY.to_string()),
        (APP_ANNOTATION.to_string(), app.to_string()),
        (VERSION_ANNOTATION.to_string(), version.to_string()),
    ])
}

/// Whether `annotations` say the thing belongs to `app` (managed by wadm).
pub fn owned_by(annotations: &BTreeMap<String, String>, app: &str) -> bool {
    annotations.get(MANAGED_BY_ANNOTATION).map(String::as_str) == Some(MANAGED_BY)
        && annotations.get(APP_ANNOTATION).map(String::as_str) == Some(app)
}
