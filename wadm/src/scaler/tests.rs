//! Scenario tests for the scalers: plain builders for desired and observed state, and a tiny
//! executor ([`apply`]) that plays a plan onto an observed lattice, so that tests can check
//! both the commands and where things end up. The scenarios are in `tests/`: placement
//! (spreads, daemons, host churn, stability) and lifecycle (ownership, upgrades, providers,
//! links, configs, plan order, undeploy).

mod lifecycle;
mod placement;

use std::collections::BTreeMap;

use trellis_protocol::ctl::Link;

use super::*;
use crate::model::{
    DesiredComponent, DesiredProvider, ObservedComponent, ObservedHost, ObservedProvider,
    Placement, Spread,
};

const APP: &str = "shop";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn spread(name: &str, reqs: &[(&str, &str)], weight: u32) -> Spread {
    Spread {
        name: name.into(),
        requirements: labels(reqs),
        weight,
    }
}

fn spread_of(instances: u32, spreads: Vec<Spread>) -> Placement {
    Placement::Spread { instances, spreads }
}

fn component(name: &str, image: &str, placement: Placement) -> DesiredComponent {
    DesiredComponent {
        name: name.into(),
        id: format!("{APP}-{name}"),
        image: image.into(),
        config: vec![],
        placement,
    }
}

fn provider(name: &str, image: &str, placement: Placement) -> DesiredProvider {
    DesiredProvider {
        name: name.into(),
        id: format!("{APP}-{name}"),
        image: image.into(),
        config: vec![],
        placement,
    }
}

fn app(components: Vec<DesiredComponent>) -> AppDesired {
    AppDesired {
        app: APP.into(),
        version: "v1".into(),
        components,
        ..AppDesired::default()
    }
}

fn link(source: &str, target: &str, package: &str) -> Link {
    Link {
        source_id: source.into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: package.into(),
        interfaces: vec!["store".into()],
        source_config: vec![],
        target_config: vec![],
    }
}

/// `n` hosts `{prefix}-{i}` labelled `zone={zone}` added to `observed`.
fn add_hosts(observed: &mut Observed, prefix: &str, zone: &str, n: usize) {
    for i in 0..n {
        observed.hosts.insert(
            format!("{prefix}-{i}"),
            ObservedHost {
                labels: labels(&[("zone", zone)]),
                ..ObservedHost::default()
            },
        );
    }
}

fn run_component(
    observed: &mut Observed,
    host: &str,
    id: &str,
    image: &str,
    count: u32,
    owner: &str,
) {
    let annotations = if owner.is_empty() {
        BTreeMap::new()
    } else {
        ownership(owner, "v0")
    };
    observed.hosts.get_mut(host).unwrap().components.insert(
        id.into(),
        ObservedComponent {
            image: image.into(),
            count,
            annotations,
        },
    );
}

/// Plays `commands` onto `observed`, the way a lattice of obedient hosts would.
fn apply(observed: &Observed, commands: &[Command]) -> Observed {
    let mut next = observed.clone();
    for command in commands {
        match command.clone() {
            Command::ScaleComponent {
                host_id,
                component_id,
                image,
                count,
                annotations,
                ..
            } => {
                let host = next.hosts.get_mut(&host_id).unwrap();
                if count == 0 {
                    host.components.remove(&component_id);
                } else {
                    let c = host.components.entry(component_id).or_default();
                    assert!(
                        c.image.is_empty() || c.image == image,
                        "scale must not swap images"
                    );
                    *c = ObservedComponent {
                        image,
                        count,
                        annotations,
                    };
                }
            }
            Command::UpdateComponent {
                host_id,
                component_id,
                image,
                annotations,
            } => {
                let c = next
                    .hosts
                    .get_mut(&host_id)
                    .unwrap()
                    .components
                    .get_mut(&component_id);
                let c = c.expect("update of a running component");
                c.image = image;
                c.annotations = annotations;
            }
            Command::StartProvider {
                host_id,
                provider_id,
                image,
                annotations,
                ..
            } => {
                let host = next.hosts.get_mut(&host_id).unwrap();
                assert!(
                    !host.providers.contains_key(&provider_id),
                    "one provider per host"
                );
                host.providers
                    .insert(provider_id, ObservedProvider { image, annotations });
            }
            Command::StopProvider {
                host_id,
                provider_id,
            } => {
                next.hosts
                    .get_mut(&host_id)
                    .unwrap()
                    .providers
                    .remove(&provider_id);
            }
            Command::PutLink(l) => {
                next.links
                    .retain(|o| index::link_key(o) != index::link_key(&l));
                next.links.push(l);
            }
            Command::DeleteLink {
                source_id,
                wit_namespace,
                wit_package,
                name,
            } => next.links.retain(|o| {
                index::link_key(o) != (&*source_id, &*wit_namespace, &*wit_package, &*name)
            }),
            Command::PutConfig { name, values } => {
                next.configs.insert(name, values);
            }
            Command::DeleteConfig { name } => {
                next.configs.remove(&name);
            }
        }
    }
    next
}

/// Reconciles, applies, and checks the result is a fixed point; returns the new lattice.
fn converge(desired: &AppDesired, observed: &Observed) -> (Plan, Observed) {
    let plan = reconcile(desired, observed);
    let next = apply(observed, &plan.commands);
    let again = reconcile(desired, &next);
    assert!(
        again.commands.is_empty(),
        "not a fixed point: {:#?}",
        again.commands
    );
    (plan, next)
}

/// host → count of component `id`.
fn counts(observed: &Observed, id: &str) -> BTreeMap<String, u32> {
    observed
        .hosts
        .iter()
        .filter_map(|(h, host)| host.components.get(id).map(|c| (h.clone(), c.count)))
        .collect()
}

fn zone_total(observed: &Observed, id: &str, zone: &str) -> u32 {
    observed
        .hosts
        .values()
        .filter(|h| h.labels.get("zone").map(String::as_str) == Some(zone))
        .filter_map(|h| h.components.get(id).map(|c| c.count))
        .sum()
}

fn three_zones() -> AppDesired {
    app(vec![component(
        "api",
        "api:1",
        spread_of(
            10,
            vec![
                spread("a", &[("zone", "a")], 40),
                spread("b", &[("zone", "b")], 40),
                spread("c", &[("zone", "c")], 20),
            ],
        ),
    )])
}
