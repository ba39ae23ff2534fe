//! Manifest validation: every rule, each problem reported with its field path.

use std::collections::{BTreeMap, HashMap};

use super::error::Diagnostic;
use super::names::{
    self, did_you_mean, is_subject_safe, is_valid_app_name, is_valid_id, is_valid_label_key,
};
use super::types::{
    APPLICATION_KIND, Component, ComponentType, ConfigProperty, DAEMONSCALER_TRAIT, LATEST_VERSION,
    LINK_TRAIT, Manifest, OAM_API_VERSION, SPREADSCALER_TRAIT, Trait, VERSION_ANNOTATION_KEY,
};

const TRAIT_TYPES: [&str; 3] = [SPREADSCALER_TRAIT, DAEMONSCALER_TRAIT, LINK_TRAIT];
const SCALER_FIELDS: [&str; 3] = ["instances", "replicas", "spread"];
pub(super) const LINK_FIELDS: [&str; 8] = [
    "namespace",
    "package",
    "interfaces",
    "name",
    "source",
    "target",
    "source_config",
    "target_config",
];

/// All problems of `manifest`, errors and warnings, in document order.
pub(crate) fn validate(manifest: &Manifest) -> Vec<Diagnostic> {
    let mut v = Validator {
        manifest,
        out: Vec::new(),
        inline_configs: BTreeMap::new(),
    };
    v.header();
    v.components();
    v.out
}

pub(super) struct Validator<'a> {
    pub(super) manifest: &'a Manifest,
    out: Vec<Diagnostic>,
    /// Computed inline config name → (path of its first definition, properties).
    inline_configs: BTreeMap<String, (String, &'a BTreeMap<String, String>)>,
}

impl<'a> Validator<'a> {
    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Diagnostic::error(path, message));
    }

    pub(super) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Diagnostic::warning(path, message));
    }

    fn header(&mut self) {
        let m = self.manifest;
        match m.api_version.as_str() {
            OAM_API_VERSION => {}
            "" => self.error(
                "apiVersion",
                format!("missing; a wadm manifest starts with `apiVersion: {OAM_API_VERSION}`"),
            ),
            other => self.error(
                "apiVersion",
                format!("unknown apiVersion `{other}`; expected `{OAM_API_VERSION}`"),
            ),
        }
        match m.kind.as_str() {
            APPLICATION_KIND => {}
            "" => self.error(
                "kind",
                format!("missing; expected `kind: {APPLICATION_KIND}`"),
            ),
            other => self.error(
                "kind",
                format!("unknown kind `{other}`; the only kind is `{APPLICATION_KIND}`"),
            ),
        }
        let name = m.metadata.name.as_str();
        if name.is_empty() {
            self.error(
                "metadata.name",
                "missing; every application needs a name, e.g. `name: my-app`",
            );
        } else if !is_valid_app_name(name) {
            self.error(
                "metadata.name",
                format!(
                    "`{name}` is not a valid application name: it is used in NATS subjects and \
                     component ids, so use only letters, digits, `-` and `_` (e.g. `my-app`)"
                ),
            );
        } else if name.chars().any(|c| c.is_ascii_uppercase()) {
            self.warn(
                "metadata.name",
                format!(
                    "`{name}` has uppercase letters; lowercase is recommended (component ids \
                     derived from it are lowercased)"
                ),
            );
        }
        for (what, map) in [
            ("annotations", &m.metadata.annotations),
            ("labels", &m.metadata.labels),
        ] {
            for key in map.keys().filter(|k| !is_valid_label_key(k)) {
                self.error(
                    format!("metadata.{what}.{key}"),
                    format!(
                        "`{key}` is not a valid OAM key: use `name` or `dns.prefix/name`, where \
                         the name has at most 63 letters, digits, `-`, `_` or `.` and starts and \
                         ends with a letter or digit (e.g. `wasmcloud.dev/authors`)"
                    ),
                );
            }
        }
        match m.metadata.annotations.get(VERSION_ANNOTATION_KEY) {
            Some(v) if v == LATEST_VERSION => self.error(
                "metadata.annotations.version",
                "`latest` is reserved (it names the newest version in the API); use e.g. \
                 `v0.1.0`, or leave `version` out to have one assigned",
            ),
            Some(v) if v.trim().is_empty() => self.error(
                "metadata.annotations.version",
                "empty; give a version such as `v0.1.0`, or leave `version` out to have one \
                 assigned",
            ),
            _ => {}
        }
        if m.spec.components.is_empty() {
            self.error(
                "spec.components",
                "no components; list at least one under `spec.components` (`type: component` \
                 or `type: capability`)",
            );
        }
        if !m.spec.policies.is_empty() {
            self.warn(
                "spec.policies",
                "policies are accepted and ignored: Trellis has no secrets backend yet",
            );
        }
    }

    fn components(&mut self) {
        let m = self.manifest;
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (i, c) in m.spec.components.iter().enumerate() {
            let at = format!("spec.components[{i}]");
            if c.name.is_empty() {
                self.error(
                    format!("{at}.name"),
                    "missing; each component needs a `name` unique in the manifest",
                );
            } else if let Some(&first) = names.get(c.name.as_str()) {
                self.error(
                    format!("{at}.name"),
                    format!(
                        "duplicate component name `{}` (also spec.components[{first}]); names \
                         must be unique, rename one",
                        c.name
                    ),
                );
                // Its computed id collides too; one error is enough.
                self.component(&at, c);
                continue;
            } else {
                names.insert(&c.name, i);
            }
            self.component(&at, c);
            if c.name.is_empty() && c.properties.id.is_none() {
                continue;
            }
            let id = names::component_id(&m.metadata.name, c.properties.id.as_deref(), &c.name);
            if let Some(first) = ids.get(&id) {
                let field = if c.properties.id.is_some() {
                    "properties.id"
                } else {
                    "name"
                };
                self.error(
                    format!("{at}.{field}"),
                    format!(
                        "lattice id `{id}` is also the id of spec.components[{first}]; two \
                         components cannot share an id (`{{app}}-{{name}}` lowercases the name \
                         and turns other characters into `_`): rename one or set `properties.id`"
                    ),
                );
            } else {
                ids.insert(id, i);
            }
        }
    }

    fn component(&mut self, at: &str, c: &'a Component) {
        for key in &c.unknown_fields {
            self.warn(
                format!("{at}.{key}"),
                format!(
                    "unknown key `{key}` is ignored; a component has `name`, `type`, \
                     `properties` and `traits`{}",
                    did_you_mean(key, &["name", "type", "properties", "traits"])
                ),
            );
        }
        match &c.component_type {
            ComponentType::Component | ComponentType::Capability => {}
            ComponentType::Actor => self.warn(
                format!("{at}.type"),
                "`actor` is the old name of `component`; write `type: component`",
            ),
            ComponentType::Other(t) if t.is_empty() => self.error(
                format!("{at}.type"),
                "missing; expected `type: component` (a WebAssembly component) or \
                 `type: capability` (a capability provider)",
            ),
            ComponentType::Other(t) => self.error(
                format!("{at}.type"),
                format!(
                    "unknown component type `{t}`; expected `component` (a WebAssembly \
                     component) or `capability` (a capability provider){}",
                    did_you_mean(t, &["component", "capability"])
                ),
            ),
        }
        let p = &c.properties;
        if p.application.is_some() {
            self.error(
                format!("{at}.properties.application"),
                "shared components of other applications are not supported by Trellis; give \
                 the component's `image` instead",
            );
        } else if p.image.trim().is_empty() {
            self.error(
                format!("{at}.properties.image"),
                "missing; give the image reference, e.g. \
                 `image: ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0` or \
                 `image: file:///path/to/component.wasm`",
            );
        } else if p.image.chars().any(char::is_whitespace) {
            self.error(
                format!("{at}.properties.image"),
                format!(
                    "`{}` contains whitespace; an image reference is one word",
                    p.image
                ),
            );
        }
        if let Some(id) = &p.id
            && !is_valid_id(id)
        {
            self.error(
                format!("{at}.properties.id"),
                format!(
                    "`{id}` is not a valid lattice id: ids appear in NATS subjects, so use only \
                     letters, digits, `-` and `_`"
                ),
            );
        }
        self.configs(&format!("{at}.properties.config"), &p.config);
        if !p.secrets.is_empty() {
            self.warn(
                format!("{at}.properties.secrets"),
                "secrets are accepted and ignored: Trellis has no secrets backend yet",
            );
        }
        let mut scaler: Option<(usize, &str)> = None;
        let mut links: Vec<(usize, String, String, String)> = Vec::new();
        for (t, tr) in c.traits.iter().enumerate() {
            let tat = format!("{at}.traits[{t}]");
            match tr.trait_type.as_str() {
                SPREADSCALER_TRAIT | DAEMONSCALER_TRAIT => {
                    if let Some((first, kind)) = scaler {
                        self.error(
                            format!("{tat}.type"),
                            format!(
                                "a second scaler: the {kind} at traits[{first}] already places \
                                 this component; keep one spreadscaler or daemonscaler"
                            ),
                        );
                    } else {
                        scaler = Some((t, &tr.trait_type));
                    }
                    self.scaler(&tat, tr);
                }
                LINK_TRAIT => {
                    self.link(&tat, c, tr);
                    let p = &tr.properties;
                    if let (Some(ns), Some(pkg)) = (&p.namespace, &p.package) {
                        let name = p.name.clone().unwrap_or_else(|| "default".to_string());
                        if let Some((first, ..)) = links
                            .iter()
                            .find(|(_, n, k, l)| n == ns && k == pkg && *l == name)
                        {
                            self.error(
                                tat.clone(),
                                format!(
                                    "duplicate link: traits[{first}] already links `{ns}:{pkg}` \
                                     from this component under the link name `{name}`, and the \
                                     lattice keeps one link per (source, namespace, package, \
                                     name); merge their `interfaces`, or give one a different \
                                     `name`"
                                ),
                            );
                        } else {
                            links.push((t, ns.clone(), pkg.clone(), name));
                        }
                    }
                }
                "" => self.error(
                    format!("{tat}.type"),
                    "missing; expected `spreadscaler`, `daemonscaler` or `link`",
                ),
                other => self.error(
                    format!("{tat}.type"),
                    format!(
                        "unknown trait type `{other}`; the trait types are `spreadscaler`, \
                         `daemonscaler` and `link`{}",
                        did_you_mean(other, &TRAIT_TYPES)
                    ),
                ),
            }
        }
    }

    /// Keys that do not belong to this trait type.
    pub(super) fn foreign_fields(&mut self, at: &str, tr: &Trait, own: &[&str]) {
        let kind = tr.trait_type.as_str();
        let expected = own
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        for key in &tr.properties.unknown_fields {
            self.error(
                format!("{at}.properties.{key}"),
                format!(
                    "unknown field `{key}` for a {kind} trait; expected {expected}{}",
                    did_you_mean(key, own)
                ),
            );
        }
        for key in &tr.properties.present_fields {
            if !own.contains(&key.as_str()) {
                let owner = if LINK_FIELDS.contains(&key.as_str()) {
                    "link traits"
                } else {
                    "spreadscaler and daemonscaler traits"
                };
                self.error(
                    format!("{at}.properties.{key}"),
                    format!(
                        "`{key}` belongs to {owner}, not to a {kind} trait (which takes \
                         {expected})"
                    ),
                );
            }
        }
    }

    fn scaler(&mut self, at: &str, tr: &'a Trait) {
        self.foreign_fields(at, tr, &SCALER_FIELDS);
        let p = &tr.properties;
        let daemon = tr.trait_type == DAEMONSCALER_TRAIT;
        match p.instances {
            None => self.error(
                format!("{at}.properties.instances"),
                "missing; how many instances, e.g. `instances: 1` (`replicas` is accepted too)",
            ),
            Some(n) if n < 0 => self.error(
                format!("{at}.properties.instances"),
                format!("{n} is negative; instances must be 0 or more (0 scales to zero)"),
            ),
            Some(n) if n > i64::from(u32::MAX) => self.error(
                format!("{at}.properties.instances"),
                format!("{n} is too large; at most {}", u32::MAX),
            ),
            Some(_) => {}
        }
        let spreads = p.spread.as_deref().unwrap_or_default();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut total: i64 = 0;
        let mut zero = Vec::new();
        for (k, s) in spreads.iter().enumerate() {
            let sat = format!("{at}.properties.spread[{k}]");
            if s.name.is_empty() {
                self.error(
                    format!("{sat}.name"),
                    "missing; each spread needs a `name` (it labels the instances it places)",
                );
            } else if let Some(first) = names.get(s.name.as_str()) {
                self.error(
                    format!("{sat}.name"),
                    format!(
                        "duplicate spread name `{}` (also spread[{first}]); spread names must be \
                         unique within a scaler",
                        s.name
                    ),
                );
            } else {
                names.insert(&s.name, k);
            }
            match s.weight {
                Some(w) if w < 0 => self.error(
                    format!("{sat}.weight"),
                    format!(
                        "{w} is negative; a weight is a relative share, 0 or more (default 100)"
                    ),
                ),
                Some(w) if w > i64::from(u32::MAX) => self.error(
                    format!("{sat}.weight"),
                    format!("{w} is too large; at most {}", u32::MAX),
                ),
                Some(_) if daemon => self.warn(
                    format!("{sat}.weight"),
                    "a daemonscaler ignores weights: it runs `instances` on every matching host",
                ),
                Some(0) => zero.push(sat),
                Some(w) => total += w,
                None => total += i64::from(super::types::DEFAULT_SPREAD_WEIGHT),
            }
        }
        if total > 0 {
            for sat in zero {
                self.warn(
                    format!("{sat}.weight"),
                    "weight 0: this spread never gets an instance",
                );
            }
        }
        let any_negative = spreads.iter().any(|s| s.weight.is_some_and(|w| w < 0));
        if !daemon && !spreads.is_empty() && total == 0 && !any_negative {
            self.error(
                format!("{at}.properties.spread"),
                "the weights add up to 0, so no spread can be given an instance; give at least \
                 one spread a positive weight (or leave `weight` out for the default 100)",
            );
        }
    }

    pub(super) fn configs(&mut self, at: &str, list: &'a [ConfigProperty]) {
        let manifest = self.manifest;
        let app = manifest.metadata.name.as_str();
        for (k, config) in list.iter().enumerate() {
            let cat = format!("{at}[{k}]");
            if config.name.is_empty() {
                self.error(
                    format!("{cat}.name"),
                    "missing; each config needs a `name` (with `properties` it is created, \
                     without it names an existing config)",
                );
                continue;
            }
            if list[..k].iter().any(|c| c.name == config.name) {
                self.error(
                    format!("{cat}.name"),
                    format!("config `{}` is listed twice here", config.name),
                );
                continue;
            }
            let Some(properties) = &config.properties else {
                if !is_subject_safe(&config.name) {
                    self.error(
                        format!("{cat}.name"),
                        format!(
                            "`{}` is not a valid config name: config names appear in NATS \
                             subjects, so no spaces, `.`, `*` or `>`",
                            config.name
                        ),
                    );
                }
                continue;
            };
            let name = names::inline_config_name(app, &config.name);
            match self.inline_configs.get(&name) {
                Some((first, values)) if *values != properties => {
                    let first = first.clone();
                    self.error(
                        format!("{cat}.properties"),
                        format!(
                            "config `{}` (created as `{name}`) is already defined with other \
                             properties at {first}; both would write the same config, so give \
                             one another name",
                            config.name
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    self.inline_configs.insert(name, (cat, properties));
                }
            }
        }
    }
}
