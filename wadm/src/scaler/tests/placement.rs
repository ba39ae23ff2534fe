//! Placement: weight splits, spreads over uneven host groups, daemons, host churn, and the
//! fixed-point property (a converged lattice yields no command).

use std::collections::BTreeMap;

use super::*;
use crate::model::{ObservedHost, Placement, owned_by, ownership};
use crate::scaler::{Plan, reconcile, reconcile_all};

#[test]
fn weights_40_40_20_over_three_label_groups() {
    let mut observed = Observed::default();
    add_hosts(&mut observed, "a", "a", 1);
    add_hosts(&mut observed, "b", "b", 1);
    add_hosts(&mut observed, "c", "c", 1);
    let (plan, next) = converge(&three_zones(), &observed);
    assert!(plan.problems.is_empty());
    let expected = BTreeMap::from([("a-0".to_string(), 4), ("b-0".into(), 4), ("c-0".into(), 2)]);
    assert_eq!(counts(&next, "shop-api"), expected);
    for command in &plan.commands {
        let Command::ScaleComponent {
            annotations,
            config,
            image,
            ..
        } = command
        else {
            panic!("unexpected {command:?}")
        };
        assert_eq!(annotations, &ownership(APP, "v1"));
        assert_eq!(image, "api:1");
        assert!(config.is_empty());
    }
}

#[test]
fn uneven_host_counts_within_spreads() {
    let mut observed = Observed::default();
    add_hosts(&mut observed, "a", "a", 3);
    add_hosts(&mut observed, "b", "b", 2);
    add_hosts(&mut observed, "c", "c", 5);
    let (_, next) = converge(&three_zones(), &observed);
    let got = counts(&next, "shop-api");
    assert_eq!((got["a-0"], got["a-1"], got["a-2"]), (2, 1, 1));
    assert_eq!((got["b-0"], got["b-1"]), (2, 2));
    // 2 instances over 5 hosts: two hosts run one each, the rest nothing.
    assert_eq!(got.keys().filter(|h| h.starts_with("c-")).count(), 2);
    assert_eq!(zone_total(&next, "shop-api", "c"), 2);
    assert_eq!(got.values().sum::<u32>(), 10);
}

#[test]
fn converged_lattice_yields_no_commands() {
    let mut desired = three_zones();
    desired.components.push(component(
        "worker",
        "worker:1",
        Placement::Daemon {
            instances: 3,
            spreads: vec![],
        },
    ));
    desired
        .providers
        .push(provider("kv", "kv:1", spread_of(2, vec![])));
    desired.links.push(link("shop-api", "shop-kv", "keyvalue"));
    desired
        .configs
        .insert("api-config".into(), labels(&[("greeting", "hi")]));
    let mut observed = Observed::default();
    add_hosts(&mut observed, "a", "a", 2);
    add_hosts(&mut observed, "b", "b", 3);
    add_hosts(&mut observed, "c", "c", 1);
    let (plan, next) = converge(&desired, &observed);
    assert!(!plan.commands.is_empty());
    let again = reconcile(&desired, &next);
    assert!(again.is_converged(), "{again:#?}");
    assert_eq!(again, Plan::default());
}

#[test]
fn a_dead_hosts_instances_move_to_the_remaining_eligible_hosts() {
    let mut observed = Observed::default();
    add_hosts(&mut observed, "a", "a", 2);
    add_hosts(&mut observed, "b", "b", 2);
    add_hosts(&mut observed, "c", "c", 1);
    let desired = three_zones();
    let (_, mut lattice) = converge(&desired, &observed);
    assert_eq!(counts(&lattice, "shop-api")["a-0"], 2);
    lattice.hosts.remove("a-0");
    let plan = reconcile(&desired, &lattice);
    assert_eq!(
        plan.commands,
        vec![Command::ScaleComponent {
            host_id: "a-1".into(),
            component_id: "shop-api".into(),
            image: "api:1".into(),
            count: 4,
            config: vec![],
            annotations: ownership(APP, "v1"),
        }]
    );
    // Spread c loses its only host: reported, and the others are untouched.
    lattice.hosts.remove("c-0");
    let plan = reconcile(&desired, &lattice);
    assert_eq!(
        plan.problems,
        ["spread `c` of component `api` needs hosts labelled zone=c; none are live"]
    );
}

#[test]
fn a_new_host_is_used_when_its_spread_is_short() {
    let desired = app(vec![component(
        "api",
        "api:1",
        spread_of(3, vec![spread("edge", &[("zone", "edge")], 100)]),
    )]);
    let mut observed = Observed::default();
    add_hosts(&mut observed, "cloud", "cloud", 2);
    let plan = reconcile(&desired, &observed);
    assert!(plan.commands.is_empty());
    assert_eq!(
        plan.problems,
        ["spread `edge` of component `api` needs hosts labelled zone=edge; none are live"]
    );
    assert!(!plan.is_converged());

    add_hosts(&mut observed, "edge", "edge", 1);
    let (plan, mut lattice) = converge(&desired, &observed);
    assert!(plan.problems.is_empty());
    assert_eq!(
        counts(&lattice, "shop-api"),
        BTreeMap::from([("edge-0".into(), 3)])
    );

    // A second edge host: the spread rebalances onto it (count changes, nothing restarts).
    lattice
        .hosts
        .insert("edge-1".into(), lattice.hosts["edge-0"].clone());
    lattice.hosts.get_mut("edge-1").unwrap().components.clear();
    let (_, lattice) = converge(&desired, &lattice);
    assert_eq!(
        counts(&lattice, "shop-api"),
        BTreeMap::from([("edge-0".into(), 2), ("edge-1".into(), 1)])
    );
}

#[test]
fn a_spread_with_more_hosts_than_instances_keeps_its_hosts() {
    let desired = app(vec![component("api", "api:1", spread_of(2, vec![]))]);
    let mut observed = Observed::default();
    add_hosts(&mut observed, "h", "x", 3);
    run_component(&mut observed, "h-2", "shop-api", "api:1", 1, APP);
    let (_, lattice) = converge(&desired, &observed);
    // h-2 keeps its instance; the second goes to the lowest free host id.
    assert_eq!(
        counts(&lattice, "shop-api"),
        BTreeMap::from([("h-0".into(), 1), ("h-2".into(), 1)])
    );
    // A new host does not pull instances from a satisfied spread.
    let mut bigger = lattice.clone();
    add_hosts(&mut bigger, "a", "x", 1);
    assert!(reconcile(&desired, &bigger).commands.is_empty());
}

#[test]
fn daemon_runs_on_every_matching_host_and_on_late_joiners() {
    let desired = app(vec![component(
        "agent",
        "agent:1",
        Placement::Daemon {
            instances: 2,
            spreads: vec![spread("edge", &[("zone", "edge")], 100)],
        },
    )]);
    let mut observed = Observed::default();
    add_hosts(&mut observed, "edge", "edge", 2);
    add_hosts(&mut observed, "cloud", "cloud", 2);
    let (_, mut lattice) = converge(&desired, &observed);
    assert_eq!(
        counts(&lattice, "shop-agent"),
        BTreeMap::from([("edge-0".into(), 2), ("edge-1".into(), 2)])
    );
    add_hosts(&mut lattice, "late-edge", "edge", 1);
    let plan = reconcile(&desired, &lattice);
    assert_eq!(plan.commands.len(), 1);
    assert!(matches!(&plan.commands[0],
        Command::ScaleComponent { host_id, count: 2, .. } if host_id == "late-edge-0"));

    // Without spreads: every host.
    let everywhere = app(vec![component(
        "agent",
        "agent:1",
        Placement::Daemon {
            instances: 1,
            spreads: vec![],
        },
    )]);
    let (_, lattice) = converge(&everywhere, &observed);
    assert_eq!(counts(&lattice, "shop-agent").len(), 4);

    // A host whose labels no longer match loses it.
    let mut relabelled = lattice.clone();
    relabelled.hosts.get_mut("edge-1").unwrap().labels = labels(&[("zone", "cloud")]);
    let (plan, _) = converge(&desired, &relabelled);
    assert!(plan.commands.iter().any(|c| matches!(c,
        Command::ScaleComponent { host_id, count: 0, .. } if host_id == "edge-1")));
}

#[test]
fn unmatched_requirements_are_reported() {
    let desired = app(vec![
        component(
            "api",
            "api:1",
            spread_of(
                4,
                vec![
                    spread("edge", &[("zone", "edge"), ("arch", "arm64")], 50),
                    spread("cloud", &[("zone", "cloud")], 50),
                ],
            ),
        ),
        component(
            "agent",
            "agent:1",
            Placement::Daemon {
                instances: 1,
                spreads: vec![spread("gpu", &[("gpu", "yes")], 100)],
            },
        ),
    ]);
    let mut observed = Observed::default();
    add_hosts(&mut observed, "cloud", "cloud", 1);
    let plan = reconcile(&desired, &observed);
    assert_eq!(
        plan.problems,
        [
            "spread `edge` of component `api` needs hosts labelled arch=arm64, zone=edge; none are live",
            "spread `gpu` of component `agent` needs hosts labelled gpu=yes; none are live",
        ]
    );
    // The satisfiable spread is still placed.
    assert_eq!(plan.commands.len(), 1);
    // No hosts at all, no spreads.
    let plan = reconcile(
        &app(vec![component("api", "api:1", spread_of(1, vec![]))]),
        &Observed::default(),
    );
    assert_eq!(
        plan.problems,
        ["component `api` needs a live host; none are live"]
    );
}

/// A deterministic pseudo-random source (no dependency needed for a test).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn any_plan_is_a_fixed_point_even_with_overlapping_spreads() {
    let mut rng = Lcg(7);
    let zones = ["a", "b", "c"];
    for round in 0..300 {
        let mut observed = Observed::default();
        for h in 0..1 + rng.below(8) {
            let zone = zones[rng.below(3) as usize];
            let tier = if rng.below(2) == 0 { "x" } else { "y" };
            observed.hosts.insert(
                format!("h{h}"),
                ObservedHost {
                    labels: labels(&[("zone", zone), ("tier", tier)]),
                    ..ObservedHost::default()
                },
            );
        }
        // Random leftovers from an earlier placement, some of them ours.
        let hosts: Vec<String> = observed.hosts.keys().cloned().collect();
        for host in &hosts {
            if rng.below(2) == 0 {
                let owner = if rng.below(4) == 0 { "" } else { APP };
                let count = 1 + rng.below(4) as u32;
                run_component(&mut observed, host, "shop-api", "api:1", count, owner);
            }
        }
        // Spreads that overlap: by zone, by tier, and unconstrained.
        let mut spreads = Vec::new();
        for s in 0..rng.below(4) {
            let reqs: Vec<(&str, &str)> = match rng.below(3) {
                0 => vec![("zone", zones[rng.below(3) as usize])],
                1 => vec![("tier", if rng.below(2) == 0 { "x" } else { "y" })],
                _ => vec![],
            };
            spreads.push(spread(&format!("s{s}"), &reqs, 1 + rng.below(100) as u32));
        }
        let instances = rng.below(12) as u32;
        let placement = if rng.below(4) == 0 {
            Placement::Daemon {
                instances,
                spreads: spreads.clone(),
            }
        } else {
            spread_of(instances, spreads.clone())
        };
        let desired = app(vec![component("api", "api:1", placement.clone())]);
        let (plan, lattice) = converge(&desired, &observed);
        if let Placement::Spread { .. } = placement
            && plan.problems.is_empty()
        {
            let ours: u32 = lattice
                .hosts
                .values()
                .filter_map(|h| h.components.get("shop-api"))
                .filter(|c| owned_by(&c.annotations, APP))
                .map(|c| c.count)
                .sum();
            assert_eq!(ours, instances, "round {round}: {spreads:?}");
        }
        // The same holds for providers.
        let mut with_provider = app(vec![]);
        with_provider
            .providers
            .push(provider("kv", "kv:1", placement));
        converge(&with_provider, &observed);
    }
}

#[test]
fn reconcile_all_matches_reconcile_one_by_one() {
    let mut observed = Observed::default();
    add_hosts(&mut observed, "a", "a", 2);
    add_hosts(&mut observed, "b", "b", 2);
    add_hosts(&mut observed, "c", "c", 2);
    let one = three_zones();
    let mut two = app(vec![component("web", "web:1", spread_of(3, vec![]))]);
    two.app = "other".into();
    let all = reconcile_all([&one, &two], &observed);
    assert_eq!(all["shop"], reconcile(&one, &observed));
    assert_eq!(all["other"], reconcile(&two, &observed));
}
