//! From a manifest to the [`AppDesired`] the scalers work on.

use std::collections::BTreeMap;

use trellis_protocol::ctl::{DEFAULT_LINK_NAME, Link};

use super::names::{component_id, inline_config_name};
use super::types::{
    Component, ComponentType, ConfigProperty, DAEMONSCALER_TRAIT, DEFAULT_SPREAD_WEIGHT,
    LINK_TRAIT, Manifest, SPREADSCALER_TRAIT, Trait,
};
use crate::model::{AppDesired, DesiredComponent, DesiredProvider, Placement, Spread};

impl Manifest {
    /// What this manifest asks the lattice for.
    ///
    /// - ids: `properties.id` when given, else `{app}-{name}` lowercased with every
    ///   character other than an ASCII letter or digit turned into `_` (wadm's rule:
    ///   `rust-hello-world` + `http-component` → `rust_hello_world-http_component`);
    /// - configs: an inline config (`{name, properties}`) is created under
    ///   `{app}-{name}` by the same rule and listed in `configs`; a config without
    ///   `properties` names an existing config map and is referenced by its name as is;
    /// - placement: the `spreadscaler` or `daemonscaler` trait; none gives
    ///   `Spread { instances: 1, spreads: [] }`; spreads without `weight` weigh 100;
    /// - links: one per `link` trait, from the component's id to the target's id, named
    ///   `default` unless `name` is given;
    /// - `version`: `metadata.annotations.version`, empty when absent (the server assigns
    ///   one with [`Manifest::set_version`] first); `retired_*` stay empty.
    ///
    /// Meant for a manifest that [`validate`](Manifest::validate)s clean; on others it does
    /// its best (links to missing targets are left out, out-of-range numbers clamped).
    pub fn desired(&self) -> AppDesired {
        let app = self.metadata.name.as_str();
        let mut desired = AppDesired {
            app: app.to_string(),
            version: self.version().unwrap_or_default().to_string(),
            ..AppDesired::default()
        };
        for c in &self.spec.components {
            let id = self.id_of(c);
            let config = config_names(app, &c.properties.config, &mut desired.configs);
            let placement = placement(&c.traits);
            if c.component_type == ComponentType::Capability {
                desired.providers.push(DesiredProvider {
                    name: c.name.clone(),
                    id: id.clone(),
                    image: c.properties.image.clone(),
                    config,
                    placement,
                });
            } else {
                desired.components.push(DesiredComponent {
                    name: c.name.clone(),
                    id: id.clone(),
                    image: c.properties.image.clone(),
                    config,
                    placement,
                });
            }
            for tr in c.traits.iter().filter(|t| t.trait_type == LINK_TRAIT) {
                if let Some(link) = self.link(app, &id, tr, &mut desired.configs) {
                    desired.links.push(link);
                }
            }
        }
        desired
    }

    /// The lattice id of `component` (see [`Manifest::desired`]).
    pub fn id_of(&self, component: &Component) -> String {
        component_id(
            &self.metadata.name,
            component.properties.id.as_deref(),
            &component.name,
        )
    }

    fn link(
        &self,
        app: &str,
        source_id: &str,
        tr: &Trait,
        configs: &mut BTreeMap<String, BTreeMap<String, String>>,
    ) -> Option<Link> {
        let p = &tr.properties;
        let target = p.target.as_ref()?;
        let target_component = self
            .spec
            .components
            .iter()
            .find(|c| c.name == target.name)?;
        // wadm: `source` wins over the deprecated `source_config`; `target_config` is read
        // only with a bare-string target.
        let source_list = match (&p.source, &p.source_config) {
            (Some(source), _) => source.config.as_slice(),
            (None, Some(list)) => list.as_slice(),
            (None, None) => &[],
        };
        let mut target_list: Vec<ConfigProperty> = target.config.clone();
        if target.legacy
            && let Some(list) = &p.target_config
        {
            target_list.extend(list.iter().cloned());
        }
        Some(Link {
            source_id: source_id.to_string(),
            target: self.id_of(target_component),
            name: p
                .name
                .clone()
                .unwrap_or_else(|| DEFAULT_LINK_NAME.to_string()),
            wit_namespace: p.namespace.clone().unwrap_or_default(),
            wit_package: p.package.clone().unwrap_or_default(),
            interfaces: p.interfaces.clone().unwrap_or_default(),
            source_config: config_names(app, source_list, configs),
            target_config: config_names(app, &target_list, configs),
        })
    }
}

/// The config names a list refers to, recording inline configs in `configs`.
fn config_names(
    app: &str,
    list: &[ConfigProperty],
    configs: &mut BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<String> {
    let mut names = Vec::with_capacity(list.len());
    for config in list {
        let name = match &config.properties {
            Some(values) => {
                let name = inline_config_name(app, &config.name);
                configs
                    .entry(name.clone())
                    .or_insert_with(|| values.clone());
                name
            }
            None => config.name.clone(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn placement(traits: &[Trait]) -> Placement {
    let Some(scaler) = traits
        .iter()
        .find(|t| t.trait_type == SPREADSCALER_TRAIT || t.trait_type == DAEMONSCALER_TRAIT)
    else {
        return Placement::Spread {
            instances: 1,
            spreads: Vec::new(),
        };
    };
    let p = &scaler.properties;
    let instances = clamp(p.instances.unwrap_or(1));
    let spreads = p
        .spread
        .iter()
        .flatten()
        .map(|s| Spread {
            name: s.name.clone(),
            requirements: s.requirements.clone(),
            weight: s.weight.map(clamp).unwrap_or(DEFAULT_SPREAD_WEIGHT),
        })
        .collect();
    if scaler.trait_type == DAEMONSCALER_TRAIT {
        Placement::Daemon { instances, spreads }
    } else {
        Placement::Spread { instances, spreads }
    }
}

fn clamp(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}
