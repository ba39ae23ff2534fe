//! The lattice-wide control operations: `link.put|del|get`, `config.put|get|del.{name}` and
//! `claims.get`.
//!
//! Every host queue-subscribes to them in one group, so exactly one host answers each
//! request, from (and into) the JetStream KV buckets of [`super::shared`]. Validation
//! happens here, before anything is written: a link must name config maps that exist, must
//! not conflict with another link of the same source, name and interface, and must only carry
//! interfaces the source component's signed claims grant.

use std::sync::Arc;

use serde::Serialize;
use trellis_protocol::claims::grant_covers;
use trellis_protocol::ctl::{CtlResponse, DeleteLinkRequest, Link};
use trellis_protocol::rpc::is_subject_token;

use super::HostCore;
use super::shared::ConfigMap;

fn reply(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn refuse(message: impl Into<String>) -> Vec<u8> {
    reply(&CtlResponse::<()>::error(message))
}

fn done(message: &str) -> Vec<u8> {
    reply(&CtlResponse::success(message))
}

/// Answers one lattice-wide operation (`operation` is the subject after the lattice name).
pub(crate) async fn handle(core: &Arc<HostCore>, operation: &str, payload: &[u8]) -> Vec<u8> {
    let named = |prefix: &str| operation.strip_prefix(prefix).filter(|n| !n.is_empty());
    match operation {
        "link.put" => put_link(core, payload).await,
        "link.del" => delete_link(core, payload).await,
        "link.get" => match core.shared.links().await {
            Ok(links) => reply(&CtlResponse::ok(links)),
            Err(e) => refuse(e.to_string()),
        },
        "claims.get" => match core.shared.claims().await {
            Ok(claims) => reply(&CtlResponse::ok(claims)),
            Err(e) => refuse(e.to_string()),
        },
        _ => {
            if let Some(name) = named("config.put.") {
                put_config(core, name, payload).await
            } else if let Some(name) = named("config.get.") {
                match core.shared.config(name).await {
                    Ok(Some(values)) => reply(&CtlResponse::ok(values)),
                    Ok(None) => done("Configuration not found"),
                    Err(e) => refuse(e.to_string()),
                }
            } else if let Some(name) = named("config.del.") {
                delete_config(core, name).await
            } else {
                refuse(format!(
                    "unknown control operation `{operation}` (expected link.put|del|get, config.put|get|del.NAME or claims.get)"
                ))
            }
        }
    }
}

/// Checks the fields of a link that need no lattice state.
fn check_link_fields(link: &Link) -> Result<(), String> {
    for (field, value) in [
        ("source_id", &link.source_id),
        ("target", &link.target),
        ("name", &link.name),
        ("wit_namespace", &link.wit_namespace),
        ("wit_package", &link.wit_package),
    ] {
        if !is_subject_token(value) {
            return Err(format!(
                "invalid link: `{field}` is {value:?}; it must be non-empty, without spaces, dots, `*` or `>`"
            ));
        }
    }
    if link.interfaces.is_empty() {
        return Err("invalid link: `interfaces` is empty; name at least one interface of the package, e.g. [\"store\"]".into());
    }
    if let Some(bad) = link
        .interfaces
        .iter()
        .find(|i| !is_subject_token(i) || i.contains('/'))
    {
        return Err(format!(
            "invalid link: interface {bad:?} must be a bare interface name such as `store` (the package goes in wit_namespace/wit_package)"
        ));
    }
    if link.source_id == link.target {
        return Err(format!(
            "invalid link: `{}` cannot be linked to itself",
            link.source_id
        ));
    }
    Ok(())
}

/// Whether `link` may be added to the source's links; the refusal says why and how to fix it.
fn admit(existing: &[Link], grants: Option<&[String]>, link: &Link) -> Result<(), String> {
    if let Some(grants) = grants {
        for interface in link.qualified_interfaces() {
            if !grants.iter().any(|g| grant_covers(g, &interface)) {
                return Err(format!(
                    "component `{}` is not granted `{interface}` by its signed claims (it is granted: {}); re-sign it with `trellis claims sign ... --grant {interface}`",
                    link.source_id,
                    if grants.is_empty() {
                        "nothing".to_string()
                    } else {
                        grants.join(", ")
                    },
                ));
            }
        }
    }
    let conflict = existing.iter().find(|l| {
        l.name == link.name
            && l.wit_namespace == link.wit_namespace
            && l.wit_package == link.wit_package
            && l.target != link.target
            && l.interfaces.iter().any(|i| link.interfaces.contains(i))
    });
    if let Some(other) = conflict {
        return Err(format!(
            "link conflicts with the existing link `{}` from `{}` to `{}` for {}:{}/{{{}}}; use another link name, or delete that link first (`trellis link del {} {}:{} --link-name {}`)",
            other.name,
            other.source_id,
            other.target,
            other.wit_namespace,
            other.wit_package,
            other.interfaces.join(","),
            other.source_id,
            other.wit_namespace,
            other.wit_package,
            other.name,
        ));
    }
    Ok(())
}

async fn put_link(core: &Arc<HostCore>, payload: &[u8]) -> Vec<u8> {
    let link: Link = match serde_json::from_slice(payload) {
        Ok(link) => link,
        Err(e) => {
            return refuse(format!(
                "invalid link.put request: {e} (expected a Link: source_id, target, name, wit_namespace, wit_package, interfaces, source_config, target_config)"
            ));
        }
    };
    let outcome = async {
        check_link_fields(&link)?;
        for name in link.source_config.iter().chain(&link.target_config) {
            match core.shared.config(name).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(format!(
                        "configuration `{name}` not found in the config store; create it first with `trellis config put {name} KEY=VALUE`"
                    ));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let stored = core
            .shared
            .update_spec(&link.source_id, |spec| {
                let others: Vec<Link> = spec
                    .links
                    .iter()
                    .filter(|l| !same_link(l, &link))
                    .cloned()
                    .collect();
                admit(&others, spec.grants.as_deref(), &link)?;
                spec.links = others;
                spec.links.push(link.clone());
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
        stored.map(|_| ())
    }
    .await;
    let mut data = serde_json::to_value(&link).unwrap_or_default();
    match outcome {
        Ok(()) => {
            core.publish_event("linkdef_set", data).await;
            done("successfully set link")
        }
        Err(message) => {
            data["error"] = message.clone().into();
            core.publish_event("linkdef_set_failed", data).await;
            refuse(message)
        }
    }
}

/// Two links are the same link when they agree on source, target, package and name.
fn same_link(a: &Link, b: &Link) -> bool {
    a.source_id == b.source_id
        && a.target == b.target
        && a.wit_namespace == b.wit_namespace
        && a.wit_package == b.wit_package
        && a.name == b.name
}

async fn delete_link(core: &Arc<HostCore>, payload: &[u8]) -> Vec<u8> {
    let request: DeleteLinkRequest = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => {
            return refuse(format!(
                "invalid link.del request: {e} (expected source_id, wit_namespace, wit_package and optionally name)"
            ));
        }
    };
    if !is_subject_token(&request.source_id) {
        return refuse("invalid link.del request: `source_id` is empty or not a valid id");
    }
    let mut removed: Vec<Link> = Vec::new();
    let result = core
        .shared
        .update_spec(&request.source_id, |spec| {
            removed.clear();
            spec.links.retain(|l| {
                let matches = l.name == request.name
                    && l.wit_namespace == request.wit_namespace
                    && l.wit_package == request.wit_package;
                if matches {
                    removed.push(l.clone());
                }
                !matches
            });
            Ok(())
        })
        .await;
    if let Err(e) = result {
        return refuse(e.to_string());
    }
    let mut data = serde_json::json!({
        "source_id": request.source_id, "name": request.name,
        "wit_namespace": request.wit_namespace, "wit_package": request.wit_package,
    });
    if let Some(link) = removed.first() {
        data["target"] = link.target.clone().into();
        data["interfaces"] = link.interfaces.clone().into();
    }
    core.publish_event("linkdef_deleted", data).await;
    done(if removed.is_empty() {
        "successfully deleted link (no such link)"
    } else {
        "successfully deleted link"
    })
}

/// The most a named config may hold (keys plus values): it is replicated to every host and
/// read back whole by `config.get`, which must fit one NATS message.
const MAX_CONFIG_BYTES: usize = 256 * 1024;

fn valid_config_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '=' | '.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
}

async fn put_config(core: &Arc<HostCore>, name: &str, payload: &[u8]) -> Vec<u8> {
    if !valid_config_name(name) {
        return refuse(format!(
            "invalid config name `{name}`: use letters, digits, `-`, `_`, `/`, `=` or inner dots"
        ));
    }
    let values: ConfigMap = match serde_json::from_slice(payload) {
        Ok(values) => values,
        Err(e) => {
            return refuse(format!(
                "config data should be a map of string -> string, e.g. {{\"key\": \"value\"}}: {e}"
            ));
        }
    };
    let size: usize = values.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_CONFIG_BYTES {
        return refuse(format!(
            "config `{name}` holds {size} bytes of keys and values, more than the limit of \
             {MAX_CONFIG_BYTES}: keep large data (certificates, files) outside config"
        ));
    }
    if let Err(e) = core.shared.put_config(name, &values).await {
        return refuse(e.to_string());
    }
    core.config_changed(name);
    core.publish_event("config_set", serde_json::json!({"config_name": name}))
        .await;
    done("successfully put config")
}

async fn delete_config(core: &Arc<HostCore>, name: &str) -> Vec<u8> {
    if let Err(e) = core.shared.delete_config(name).await {
        return refuse(e.to_string());
    }
    core.config_changed(name);
    core.publish_event("config_deleted", serde_json::json!({"config_name": name}))
        .await;
    done("successfully deleted config")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(source: &str, target: &str, name: &str, interfaces: &[&str]) -> Link {
        Link {
            source_id: source.into(),
            target: target.into(),
            name: name.into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            source_config: vec![],
            target_config: vec![],
        }
    }

    #[test]
    fn a_link_to_another_target_for_a_shared_interface_conflicts() {
        let existing = [link("app", "redis", "default", &["store", "atomics"])];
        let refused = admit(
            &existing,
            None,
            &link("app", "nats", "default", &["atomics"]),
        );
        assert!(
            refused
                .unwrap_err()
                .contains("conflicts with the existing link `default`")
        );
        // Another name, or a disjoint interface, is fine.
        assert!(admit(&existing, None, &link("app", "nats", "cache", &["atomics"])).is_ok());
        assert!(admit(&existing, None, &link("app", "nats", "default", &["batch"])).is_ok());
    }

    #[test]
    fn a_link_must_carry_only_granted_interfaces() {
        let grants = vec!["wasi:keyvalue/store".to_string()];
        let refused = admit(
            &[],
            Some(&grants),
            &link("app", "redis", "default", &["store", "atomics"]),
        );
        let message = refused.unwrap_err();
        assert!(
            message.contains("not granted `wasi:keyvalue/atomics`"),
            "{message}"
        );
        assert!(
            message.contains("--grant wasi:keyvalue/atomics"),
            "{message}"
        );
        let all = vec!["wasi:keyvalue/*".to_string()];
        assert!(
            admit(
                &[],
                Some(&all),
                &link("app", "redis", "default", &["store", "atomics"])
            )
            .is_ok()
        );
        // Unknown grants (component not seen yet, or a provider): accepted here, enforced at load.
        assert!(admit(&[], None, &link("app", "redis", "default", &["atomics"])).is_ok());
    }

    #[test]
    fn link_fields_are_checked() {
        assert!(check_link_fields(&link("app", "redis", "default", &["store"])).is_ok());
        assert!(check_link_fields(&link("", "redis", "default", &["store"])).is_err());
        assert!(check_link_fields(&link("app", "redis", "default", &[])).is_err());
        assert!(check_link_fields(&link("app", "a.b", "default", &["store"])).is_err());
        assert!(
            check_link_fields(&link("app", "redis", "default", &["wasi:keyvalue/store"])).is_err()
        );
        assert!(check_link_fields(&link("app", "app", "default", &["store"])).is_err());
    }
}
