//! Reconcile cost on a large in-memory lattice: 1,000 hosts (labels `zone` ∈ 5 values,
//! `region` ∈ 2, `tier` ∈ 2), ~100 apps placing ~10,000 component instances (spreads by
//! zone and by region, a few daemons) plus a provider, links and a config each, in the
//! converged state a previous round of plans produced.
//!
//! - `full resync`: every app reconciled against the snapshot, one index (target ≤ 2 s);
//! - `full resync, index per app`: the same through `reconcile`, which indexes per call;
//! - `one event`: one app after one of its hosts vanished (index included; target ≤ 10 ms).
//!
//! `cargo bench -p trellis-wadm --bench reconcile -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use trellis_protocol::ctl::Link;
use trellis_wadm::model::{
    AppDesired, Command, DesiredComponent, DesiredProvider, Observed, ObservedComponent,
    ObservedHost, ObservedProvider, Placement, Spread,
};
use trellis_wadm::scaler::{reconcile, reconcile_all};

const HOSTS: usize = 1_000;
const APPS: usize = 100;
const ZONES: [&str; 5] = ["z0", "z1", "z2", "z3", "z4"];
const REGIONS: [&str; 2] = ["us", "eu"];

fn spread(name: &str, key: &str, value: &str, weight: u32) -> Spread {
    Spread {
        name: name.to_string(),
        requirements: BTreeMap::from([(key.to_string(), value.to_string())]),
        weight,
    }
}

fn component(app: &str, name: &str, placement: Placement) -> DesiredComponent {
    DesiredComponent {
        name: name.to_string(),
        id: format!("{app}-{name}"),
        image: format!("registry.example/{app}/{name}:1.0.0"),
        config: vec![format!("{app}-config")],
        placement,
    }
}

fn lattice() -> Observed {
    let mut observed = Observed::default();
    for i in 0..HOSTS {
        let labels = BTreeMap::from([
            ("zone".to_string(), ZONES[i % ZONES.len()].to_string()),
            ("region".to_string(), REGIONS[(i / 5) % 2].to_string()),
            (
                "tier".to_string(),
                if i % 3 == 0 { "edge" } else { "cloud" }.to_string(),
            ),
            ("hostcore.os".to_string(), "linux".to_string()),
        ]);
        observed.hosts.insert(
            format!("N{i:04}"),
            ObservedHost {
                labels,
                ..ObservedHost::default()
            },
        );
    }
    observed
}

/// ~100 instances per app: `api` 50 over four zones by weight, then either `worker` 30 over
/// the regions and `web` 20 anywhere, or (every 20th app) a daemon on one zone's edge tier.
fn apps() -> Vec<AppDesired> {
    (0..APPS)
        .map(|a| {
            let app = format!("app{a:03}");
            let zones: Vec<Spread> = (0..4)
                .map(|z| {
                    spread(
                        ZONES[(a + z) % 5],
                        "zone",
                        ZONES[(a + z) % 5],
                        [40, 30, 20, 10][z],
                    )
                })
                .collect();
            let mut components = vec![component(
                &app,
                "api",
                Placement::Spread {
                    instances: 50,
                    spreads: zones,
                },
            )];
            if a % 20 == 0 {
                components.push(component(
                    &app,
                    "agent",
                    Placement::Daemon {
                        instances: 1,
                        spreads: vec![Spread {
                            name: "edge".to_string(),
                            requirements: BTreeMap::from([
                                ("zone".to_string(), ZONES[a % 5].to_string()),
                                ("tier".to_string(), "edge".to_string()),
                            ]),
                            weight: 100,
                        }],
                    },
                ));
            } else {
                components.push(component(
                    &app,
                    "worker",
                    Placement::Spread {
                        instances: 30,
                        spreads: REGIONS.iter().map(|r| spread(r, "region", r, 50)).collect(),
                    },
                ));
                components.push(component(
                    &app,
                    "web",
                    Placement::Spread {
                        instances: 20,
                        spreads: vec![],
                    },
                ));
            }
            let link = |target: &str, package: &str| Link {
                source_id: format!("{app}-api"),
                target: target.to_string(),
                name: "default".to_string(),
                wit_namespace: "wasi".to_string(),
                wit_package: package.to_string(),
                interfaces: vec!["store".to_string()],
                source_config: vec![],
                target_config: vec![],
            };
            AppDesired {
                app: app.clone(),
                version: "v1".to_string(),
                providers: vec![DesiredProvider {
                    name: "kv".to_string(),
                    id: format!("{app}-kv"),
                    image: "ghcr.io/wasmcloud/keyvalue-nats:0.3.1".to_string(),
                    config: vec![],
                    placement: Placement::Spread {
                        instances: 3,
                        spreads: vec![spread("near", "zone", ZONES[a % 5], 100)],
                    },
                }],
                links: vec![
                    link(&format!("{app}-kv"), "keyvalue"),
                    link(&format!("{app}-web"), "http"),
                ],
                configs: BTreeMap::from([(
                    format!("{app}-config"),
                    BTreeMap::from([("greeting".to_string(), "hello".to_string())]),
                )]),
                components,
                ..AppDesired::default()
            }
        })
        .collect()
}

/// Plays commands onto the lattice, as obedient hosts would.
fn apply(observed: &mut Observed, commands: Vec<Command>) {
    for command in commands {
        match command {
            Command::ScaleComponent {
                host_id,
                component_id,
                image,
                count,
                annotations,
                ..
            } => {
                if let Some(host) = observed.hosts.get_mut(&host_id) {
                    if count == 0 {
                        host.components.remove(&component_id);
                    } else {
                        host.components.insert(
                            component_id,
                            ObservedComponent {
                                image,
                                count,
                                annotations,
                            },
                        );
                    }
                }
            }
            Command::UpdateComponent {
                host_id,
                component_id,
                image,
                ..
            } => {
                if let Some(c) = observed
                    .hosts
                    .get_mut(&host_id)
                    .and_then(|h| h.components.get_mut(&component_id))
                {
                    c.image = image;
                }
            }
            Command::StartProvider {
                host_id,
                provider_id,
                image,
                annotations,
                ..
            } => {
                if let Some(host) = observed.hosts.get_mut(&host_id) {
                    host.providers
                        .insert(provider_id, ObservedProvider { image, annotations });
                }
            }
            Command::StopProvider {
                host_id,
                provider_id,
            } => {
                if let Some(host) = observed.hosts.get_mut(&host_id) {
                    host.providers.remove(&provider_id);
                }
            }
            Command::PutLink(link) => observed.links.push(link),
            Command::DeleteLink { .. } => {}
            Command::PutConfig { name, values } => {
                observed.configs.insert(name, values);
            }
            Command::DeleteConfig { name } => {
                observed.configs.remove(&name);
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let apps = apps();
    let mut observed = lattice();
    for plan in reconcile_all(&apps, &observed).into_values() {
        apply(&mut observed, plan.commands);
    }
    let instances: u32 = observed
        .hosts
        .values()
        .flat_map(|h| h.components.values())
        .map(|c| c.count)
        .sum();
    let leftover: usize = reconcile_all(&apps, &observed)
        .values()
        .map(|p| p.commands.len() + p.problems.len())
        .sum();
    eprintln!(
        "lattice: {} hosts, {} apps, {instances} component instances, {} links; converged: {}",
        observed.hosts.len(),
        apps.len(),
        observed.links.len(),
        leftover == 0
    );
    assert_eq!(leftover, 0, "the lattice should be converged");

    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10);
    group.bench_function("full resync (100 apps, one index)", |b| {
        b.iter(|| reconcile_all(black_box(&apps), black_box(&observed)));
    });
    group.bench_function("full resync (100 apps, index per app)", |b| {
        b.iter(|| {
            apps.iter()
                .map(|app| {
                    reconcile(black_box(app), black_box(&observed))
                        .commands
                        .len()
                })
                .sum::<usize>()
        });
    });
    group.finish();

    // One event: a host running the app's instances vanished.
    let app = &apps[1];
    let victim = observed
        .hosts
        .iter()
        .find(|(_, h)| h.components.contains_key("app001-api"))
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    let mut after = observed.clone();
    after.hosts.remove(&victim);
    let plan = reconcile(app, &after);
    eprintln!(
        "one event: host {victim} gone → {} command(s) for {}",
        plan.commands.len(),
        app.app
    );
    c.bench_function("reconcile/one event (one app, one host gone)", |b| {
        b.iter(|| reconcile(black_box(app), black_box(&after)));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
