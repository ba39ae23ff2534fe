//! The serde types of a wadm manifest, field for field as wadm 0.21 reads them.
//!
//! Required fields are plain `String`s that default to empty, so that a missing one is
//! reported by [`validate`](super::Manifest::validate) with its path and a hint instead of
//! stopping the parse at the first problem. Scalars are read from their YAML text
//! (`port: 8080` and `version: 1.10` give the strings `"8080"` and `"1.10"`), as wadm does.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The only `apiVersion` wadm accepts.
pub const OAM_API_VERSION: &str = "core.oam.dev/v1beta1";
/// The only `kind` wadm accepts.
pub const APPLICATION_KIND: &str = "Application";
/// The `metadata.annotations` key holding the manifest version.
pub const VERSION_ANNOTATION_KEY: &str = "version";
/// The `metadata.annotations` key holding the description.
pub const DESCRIPTION_ANNOTATION_KEY: &str = "description";
/// A version wadm refuses: it names "the newest version" in the API.
pub const LATEST_VERSION: &str = "latest";
/// Trait type: spread `instances` over hosts by weight.
pub const SPREADSCALER_TRAIT: &str = "spreadscaler";
/// Trait type: run `instances` on every matching host.
pub const DAEMONSCALER_TRAIT: &str = "daemonscaler";
/// Trait type: a link from this component to another.
pub const LINK_TRAIT: &str = "link";
/// Weight of a spread that gives none.
pub const DEFAULT_SPREAD_WEIGHT: u32 = 100;

/// A whole manifest: `apiVersion`, `kind`, `metadata`, `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must be [`OAM_API_VERSION`].
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// Must be [`APPLICATION_KIND`].
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: Specification,
}

/// `metadata`: the application's name, annotations (`version`, `description`, any
/// `prefix/key`) and labels. Unknown keys are ignored, as in wadm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The application name, unique per lattice.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `spec`: the components and (accepted, unused) policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Specification {
    #[serde(default)]
    pub components: Vec<Component>,
    /// Application-wide policies (wadm uses them for secret backends). Accepted and ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
}

/// One entry of `spec.policies`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub policy_type: String,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// One entry of `spec.components`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Component {
    /// Unique within the manifest; links name their target by it.
    pub name: String,
    #[serde(rename = "type")]
    pub component_type: ComponentType,
    pub properties: ComponentProperties,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<Trait>,
    /// Keys wadm ignores here (reported as warnings: usually a typo of `traits`).
    #[serde(skip)]
    pub unknown_fields: Vec<String>,
}

/// `type` of a component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ComponentType {
    /// `component`: a WebAssembly component.
    #[default]
    Component,
    /// `actor`: the pre-1.0 name of `component`, still accepted.
    Actor,
    /// `capability`: a capability provider.
    Capability,
    /// Anything else (refused by validation; empty when `type` is missing).
    Other(String),
}

impl ComponentType {
    /// The text as written in a manifest.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Component => "component",
            Self::Actor => "actor",
            Self::Capability => "capability",
            Self::Other(other) => other,
        }
    }

    /// Whether this is a WebAssembly component (`component` or `actor`).
    pub fn is_component(&self) -> bool {
        matches!(self, Self::Component | Self::Actor)
    }
}

impl From<&str> for ComponentType {
    fn from(text: &str) -> Self {
        match text {
            "component" => Self::Component,
            "actor" => Self::Actor,
            "capability" => Self::Capability,
            other => Self::Other(other.to_string()),
        }
    }
}

impl Serialize for ComponentType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ComponentType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::from(text.as_str()))
    }
}

/// `properties` of a component or capability (both have the same shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentProperties {
    /// Image reference: `oci` reference, `file://` path, or (providers) `builtin://NAME`.
    #[serde(default)]
    pub image: String,
    /// Lattice id to use instead of the computed `{app}-{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Named configs: with `properties` wadm creates them, without it they must exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    /// Secret references. Accepted and ignored (Trellis has no secrets backend yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<serde_json::Value>,
    /// A shared component of another application (wadm 0.19+). Not supported: refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<serde_json::Value>,
}

/// One named config: `{name, properties?}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigProperty {
    #[serde(default)]
    pub name: String,
    /// Present: an inline config wadm creates. Absent: a reference to an existing config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, String>>,
}

/// A link's `source` block: the config (and ignored secrets) for the source side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDefinition {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<serde_json::Value>,
}

/// A link's `target`: `{name, config?, secrets?}`, or just the name (before wadm 0.13).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkTarget {
    /// The `name` of a component in this manifest.
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<serde_json::Value>,
    /// Written as a bare string (the pre-0.13 form).
    #[serde(skip)]
    pub legacy: bool,
    #[serde(skip)]
    pub unknown_fields: Vec<String>,
}

/// One entry of a component's `traits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trait {
    /// `spreadscaler`, `daemonscaler` or `link`.
    #[serde(rename = "type", default)]
    pub trait_type: String,
    #[serde(default)]
    pub properties: TraitProperties,
}

/// A trait's `properties`. Which fields belong depends on the trait type, so this holds
/// the union of them; [`validate`](super::Manifest::validate) reports fields that do not
/// belong to the trait's type.
///
/// - scalers: `instances` (alias `replicas`), `spread`;
/// - link: `namespace`, `package`, `interfaces`, `name`, `source`, `target`, and the
///   deprecated `source_config` / `target_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TraitProperties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<Vec<SpreadProperty>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ConfigDefinition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<LinkTarget>,
    /// Deprecated since wadm 0.13: use `source.config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_config: Option<Vec<ConfigProperty>>,
    /// Deprecated since wadm 0.13: use `target.config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_config: Option<Vec<ConfigProperty>>,
    /// Keys present in the manifest, in order (to tell which belong to the trait type).
    #[serde(skip)]
    pub present_fields: Vec<String>,
    /// Keys that belong to no trait type.
    #[serde(skip)]
    pub unknown_fields: Vec<String>,
}

/// One entry of a scaler's `spread`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpreadProperty {
    #[serde(default)]
    pub name: String,
    /// Host labels that must all match (empty: any host).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requirements: BTreeMap<String, String>,
    /// Relative weight, [`DEFAULT_SPREAD_WEIGHT`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

/// Reads a map key by key: `known` consumes the value of a key it knows and returns
/// `true`; other keys are skipped and returned. A repeated key is an error.
fn read_fields<'de, A, F>(mut map: A, mut known: F) -> Result<Vec<String>, A::Error>
where
    A: MapAccess<'de>,
    F: FnMut(&str, &mut A) -> Result<bool, A::Error>,
{
    let mut seen: Vec<String> = Vec::new();
    let mut unknown = Vec::new();
    while let Some(key) = map.next_key::<String>()? {
        if seen.contains(&key) {
            return Err(de::Error::custom(format_args!(
                "duplicate field `{key}` (give each key once)"
            )));
        }
        if !known(&key, &mut map)? {
            map.next_value::<IgnoredAny>()?;
            unknown.push(key.clone());
        }
        seen.push(key);
    }
    Ok(unknown)
}

impl<'de> Deserialize<'de> for Component {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ComponentVisitor;
        impl<'de> Visitor<'de> for ComponentVisitor {
            type Value = Component;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a component: a map with `name`, `type`, `properties`, `traits`")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Component, A::Error> {
                let mut component = Component {
                    component_type: ComponentType::Other(String::new()),
                    ..Component::default()
                };
                let unknown = read_fields(map, |key, map| {
                    match key {
                        "name" => component.name = map.next_value()?,
                        "type" => component.component_type = map.next_value()?,
                        "properties" => component.properties = map.next_value()?,
                        "traits" => {
                            component.traits =
                                map.next_value::<Option<Vec<Trait>>>()?.unwrap_or_default()
                        }
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                component.unknown_fields = unknown;
                Ok(component)
            }
        }
        deserializer.deserialize_map(ComponentVisitor)
    }
}

impl<'de> Deserialize<'de> for LinkTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TargetVisitor;
        impl<'de> Visitor<'de> for TargetVisitor {
            type Value = LinkTarget;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a link target: `{name: COMPONENT, config: [...]}` or a name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<LinkTarget, E> {
                Ok(LinkTarget {
                    name: name.to_string(),
                    legacy: true,
                    ..LinkTarget::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LinkTarget, A::Error> {
                let mut target = LinkTarget::default();
                let unknown = read_fields(map, |key, map| {
                    match key {
                        "name" => target.name = map.next_value()?,
                        "config" => target.config = map.next_value()?,
                        "secrets" => target.secrets = map.next_value()?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                target.unknown_fields = unknown;
                Ok(target)
            }
        }
        deserializer.deserialize_any(TargetVisitor)
    }
}

impl<'de> Deserialize<'de> for TraitProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropertiesVisitor;
        impl<'de> Visitor<'de> for PropertiesVisitor {
            type Value = TraitProperties;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("trait properties: a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TraitProperties, A::Error> {
                let mut props = TraitProperties::default();
                let mut present = Vec::new();
                let unknown = read_fields(map, |key, map| {
                    match key {
                        "instances" | "replicas" => {
                            if props.instances.is_some() {
                                return Err(de::Error::custom(
                                    "both `instances` and `replicas` are given: \
                                     `replicas` is another name for `instances`, keep one",
                                ));
                            }
                            props.instances = Some(map.next_value()?)
                        }
                        "spread" => props.spread = map.next_value()?,
                        "namespace" => props.namespace = Some(map.next_value()?),
                        "package" => props.package = Some(map.next_value()?),
                        "interfaces" => props.interfaces = Some(map.next_value()?),
                        "name" => props.name = Some(map.next_value()?),
                        "source" => props.source = map.next_value()?,
                        "target" => props.target = Some(map.next_value()?),
                        "source_config" => props.source_config = map.next_value()?,
                        "target_config" => props.target_config = map.next_value()?,
                        _ => return Ok(false),
                    }
                    present.push(key.to_string());
                    Ok(true)
                })?;
                props.present_fields = present;
                props.unknown_fields = unknown;
                Ok(props)
            }
        }
        deserializer.deserialize_map(PropertiesVisitor)
    }
}
