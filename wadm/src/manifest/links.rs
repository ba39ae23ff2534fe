//! Link trait rules: WIT names and well-known interfaces, targets, link configs.

use super::names::{did_you_mean, is_subject_safe, is_wit_identifier, known_interfaces};
use super::types::{Component, ComponentType, Trait};
use super::validate::{LINK_FIELDS, Validator};

impl<'a> Validator<'a> {
    pub(super) fn link(&mut self, at: &str, source: &Component, tr: &'a Trait) {
        self.foreign_fields(at, tr, &LINK_FIELDS);
        let p = &tr.properties;
        let pat = format!("{at}.properties");
        let namespace = self.wit_name(&pat, "namespace", p.namespace.as_deref(), "wasi");
        let package = self.wit_name(&pat, "package", p.package.as_deref(), "http");
        match &p.interfaces {
            None => self.error(
                format!("{pat}.interfaces"),
                "missing; list the interfaces the link carries, e.g. \
                 `interfaces: [incoming-handler]`",
            ),
            Some(list) if list.is_empty() => self.error(
                format!("{pat}.interfaces"),
                "empty; list at least one interface, e.g. `interfaces: [store]`",
            ),
            Some(list) => {
                let known = match (namespace, package) {
                    (Some(ns), Some(pkg)) => known_interfaces(ns, pkg).map(|k| (ns, pkg, k)),
                    _ => None,
                };
                for (k, iface) in list.iter().enumerate() {
                    let iat = format!("{pat}.interfaces[{k}]");
                    if list[..k].contains(iface) {
                        self.warn(iat, format!("`{iface}` is listed twice"));
                    } else if iface.contains(['/', ':', '@']) {
                        self.error(
                            iat,
                            format!(
                                "`{iface}` is not a bare interface name; give namespace and \
                                 package in their own fields and only the name here, without \
                                 a version (e.g. `incoming-handler`)"
                            ),
                        );
                    } else if !is_wit_identifier(iface) {
                        self.error(iat, wit_message("interface", iface, "incoming-handler"));
                    } else if let Some((ns, pkg, interfaces)) = known
                        && !interfaces.contains(&iface.as_str())
                    {
                        self.error(
                            iat,
                            format!(
                                "`{ns}:{pkg}` has no interface `{iface}`; it defines {}{}",
                                interfaces
                                    .iter()
                                    .map(|i| format!("`{i}`"))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                did_you_mean(iface, interfaces)
                            ),
                        );
                    }
                }
            }
        }
        if let Some(name) = &p.name
            && !is_subject_safe(name)
        {
            self.error(
                format!("{pat}.name"),
                format!(
                    "`{name}` is not a valid link name: it must be non-empty without spaces, \
                     `.`, `*` or `>` (leave `name` out for `default`)"
                ),
            );
        }
        self.link_configs(&pat, tr);
        let Some(target) = &p.target else {
            self.error(
                format!("{pat}.target"),
                "missing; name the component this link points at, e.g. \
                 `target: {name: http-component}`",
            );
            return;
        };
        if target.legacy {
            self.warn(
                format!("{pat}.target"),
                format!(
                    "a bare-string target is deprecated since wadm 0.13; write \
                     `target: {{name: {}}}`",
                    target.name
                ),
            );
        }
        for key in &target.unknown_fields {
            self.error(
                format!("{pat}.target.{key}"),
                format!(
                    "unknown field `{key}`; a link target has `name`, `config` and `secrets`{}",
                    did_you_mean(key, &["name", "config", "secrets"])
                ),
            );
        }
        if !target.secrets.is_empty() {
            self.warn(
                format!("{pat}.target.secrets"),
                "secrets are accepted and ignored: Trellis has no secrets backend yet",
            );
        }
        let manifest = self.manifest;
        let components = &manifest.spec.components;
        if target.name.is_empty() {
            self.error(
                format!("{pat}.target.name"),
                "missing; the `name` of the component this link points at",
            );
        } else if let Some(t) = components.iter().find(|c| c.name == target.name) {
            if !source.component_type.is_component()
                && t.component_type == ComponentType::Capability
            {
                self.error(
                    format!("{pat}.target.name"),
                    format!(
                        "`{}` is a capability provider, and a provider can link only to a \
                         component",
                        target.name
                    ),
                );
            } else if t.name == source.name {
                self.warn(
                    format!("{pat}.target.name"),
                    "the link points at its own source component",
                );
            }
        } else {
            let all: Vec<&str> = components.iter().map(|c| c.name.as_str()).collect();
            self.error(
                format!("{pat}.target.name"),
                format!(
                    "no component named `{}` in this manifest (components: {}){}",
                    target.name,
                    all.join(", "),
                    did_you_mean(&target.name, &all)
                ),
            );
        }
    }

    /// Checks a namespace or package field; returns it when it is a valid identifier.
    fn wit_name<'t>(
        &mut self,
        pat: &str,
        field: &str,
        value: Option<&'t str>,
        example: &str,
    ) -> Option<&'t str> {
        match value {
            None | Some("") => {
                self.error(
                    format!("{pat}.{field}"),
                    format!("missing; the WIT {field} of the link, e.g. `{field}: {example}`"),
                );
                None
            }
            Some(v) if v.contains(['@', ':', '/']) => {
                self.error(
                    format!("{pat}.{field}"),
                    format!(
                        "`{v}` is not a bare {field} name; write namespace, package and \
                         interfaces in their own fields, without a version \
                         (e.g. `namespace: wasi`, `package: http`)"
                    ),
                );
                None
            }
            Some(v) if !is_wit_identifier(v) => {
                self.error(format!("{pat}.{field}"), wit_message(field, v, example));
                None
            }
            Some(v) => Some(v),
        }
    }

    fn link_configs(&mut self, pat: &str, tr: &'a Trait) {
        let p = &tr.properties;
        if let Some(source) = &p.source {
            self.configs(&format!("{pat}.source.config"), &source.config);
            if !source.secrets.is_empty() {
                self.warn(
                    format!("{pat}.source.secrets"),
                    "secrets are accepted and ignored: Trellis has no secrets backend yet",
                );
            }
        }
        if let Some(list) = &p.source_config {
            if p.source.is_some() {
                self.error(
                    format!("{pat}.source_config"),
                    "both `source` and the deprecated `source_config` are given; move these \
                     entries to `source.config`",
                );
            } else {
                self.warn(
                    format!("{pat}.source_config"),
                    "deprecated since wadm 0.13; write `source: {config: [...]}`",
                );
            }
            self.configs(&format!("{pat}.source_config"), list);
        }
        if let Some(target) = &p.target {
            self.configs(&format!("{pat}.target.config"), &target.config);
        }
        if let Some(list) = &p.target_config {
            match &p.target {
                Some(target) if !target.legacy => self.error(
                    format!("{pat}.target_config"),
                    "`target_config` is only read with a bare-string `target`; move these \
                     entries to `target.config`",
                ),
                _ => self.warn(
                    format!("{pat}.target_config"),
                    "deprecated since wadm 0.13; write `target: {name: ..., config: [...]}`",
                ),
            }
            self.configs(&format!("{pat}.target_config"), list);
        }
    }
}

fn wit_message(field: &str, value: &str, example: &str) -> String {
    format!(
        "`{value}` is not a valid WIT {field} name: lowercase words of letters and digits, \
         each starting with a letter, joined by single `-` (e.g. `{example}`)"
    )
}
