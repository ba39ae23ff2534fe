//! Lifecycle: ownership, undeclared leftovers, upgrades, providers, links and configs, plan
//! order, undeploy.

use std::collections::BTreeMap;

use super::*;
use crate::model::{ObservedProvider, Placement, ownership};
use crate::scaler::{reconcile, undeploy};

#[test]
fn ownership_hand_made_and_other_apps_are_left_alone() {
    let desired = app(vec![component("api", "api:1", spread_of(2, vec![]))]);
    let mut observed = Observed::default();
    add_hosts(&mut observed, "h", "x", 3);
    // Hand-made instance with our id on h-0, another app's on h-1, and that app's own stuff.
    run_component(&mut observed, "h-0", "shop-api", "api:0", 5, "");
    run_component(&mut observed, "h-1", "shop-api", "api:1", 1, "other");
    run_component(&mut observed, "h-2", "other-web", "web:1", 1, "other");
    let plan = reconcile(&desired, &observed);
    // Neither counts, neither host is used: both instances go to h-2.
    assert_eq!(plan.commands.len(), 1);
    assert!(matches!(&plan.commands[0],
        Command::ScaleComponent { host_id, count: 2, .. } if host_id == "h-2"));
    assert_eq!(
        plan.conflicts,
        [
            "component `shop-api` on host `h-0` was not started by wadm: left alone, and `shop` places none there",
            "component `shop-api` on host `h-1` belongs to app `other`: left alone, and `shop` places none there",
        ]
    );
    assert!(plan.problems.is_empty());
    let (_, lattice) = converge(&desired, &observed);
    assert_eq!(lattice.hosts["h-0"].components["shop-api"].count, 5);
    assert_eq!(
        lattice.hosts["h-1"].components["shop-api"].annotations,
        ownership("other", "v0")
    );
    assert!(lattice.hosts["h-2"].components.contains_key("other-web"));

    // With only foreign hosts left, the spread is a problem that says why.
    let mut squeezed = observed.clone();
    squeezed.hosts.remove("h-2");
    let plan = reconcile(&desired, &squeezed);
    assert_eq!(
        plan.problems,
        [
            "component `api` needs a live host; the 2 live one(s) already run a component with this id \
         that the app does not manage",
        ]
    );
    assert!(plan.commands.is_empty());
}

#[test]
fn undeclared_components_and_providers_of_the_app_are_removed() {
    let desired = app(vec![component("api", "api:1", spread_of(1, vec![]))]);
    let mut observed = Observed::default();
    add_hosts(&mut observed, "h", "x", 1);
    run_component(&mut observed, "h-0", "shop-api", "api:1", 1, APP);
    run_component(&mut observed, "h-0", "shop-old", "old:1", 3, APP);
    run_component(&mut observed, "h-0", "other-old", "old:1", 3, "other");
    observed.hosts.get_mut("h-0").unwrap().providers.insert(
        "shop-kv".into(),
        ObservedProvider {
            image: "kv:1".into(),
            annotations: ownership(APP, "v0"),
        },
    );
    let plan = reconcile(&desired, &observed);
    assert_eq!(
        plan.commands,
        vec![
            Command::ScaleComponent {
                host_id: "h-0".into(),
                component_id: "shop-old".into(),
                image: "old:1".into(),
                count: 0,
                config: vec![],
                annotations: ownership(APP, "v1"),
            },
            Command::StopProvider {
                host_id: "h-0".into(),
                provider_id: "shop-kv".into()
            },
        ]
    );
}

#[test]
fn a_new_image_is_an_in_place_update() {
    let mut observed = Observed::default();
    add_hosts(&mut observed, "h", "x", 2);
    run_component(&mut observed, "h-0", "shop-api", "api:1", 2, APP);
    run_component(&mut observed, "h-1", "shop-api", "api:1", 2, APP);
    let v2 = app(vec![component("api", "api:2", spread_of(4, vec![]))]);
    let plan = reconcile(&v2, &observed);
    let update = |host: &str| Command::UpdateComponent {
        host_id: host.into(),
        component_id: "shop-api".into(),
        image: "api:2".into(),
        annotations: ownership(APP, "v1"),
    };
    assert_eq!(plan.commands, vec![update("h-0"), update("h-1")]);
    // Image and count at once: update, then scale with the new image.
    let v3 = app(vec![component("api", "api:3", spread_of(6, vec![]))]);
    let (plan, lattice) = converge(&v3, &observed);
    assert!(
        matches!(&plan.commands[0], Command::UpdateComponent { image, .. } if image == "api:3")
    );
    assert!(matches!(&plan.commands[1],
        Command::ScaleComponent { image, count: 3, .. } if image == "api:3"));
    assert_eq!(lattice.hosts["h-1"].components["shop-api"].image, "api:3");
}

#[test]
fn providers_one_per_host_and_image_changes_restart() {
    let mut desired = app(vec![]);
    desired.providers.push(provider(
        "kv",
        "kv:1",
        spread_of(
            3,
            vec![
                spread("a", &[("zone", "a")], 50),
                spread("b", &[("zone", "b")], 50),
            ],
        ),
    ));
    let mut observed = Observed::default();
    add_hosts(&mut observed, "a", "a", 3);
    add_hosts(&mut observed, "b", "b", 1);
    let (plan, lattice) = converge(&desired, &observed);
    // 3 hosts at 50/50: a gets 2 (remainder goes first to the first of equal weights), b 1.
    let running: Vec<&String> = lattice
        .hosts
        .iter()
        .filter(|(_, h)| h.providers.contains_key("shop-kv"))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(running, ["a-0", "a-1", "b-0"]);
    assert!(plan.problems.is_empty());

    // More hosts wanted than a spread has: placed what it can, and says so.
    desired.providers[0].placement = spread_of(4, vec![spread("b", &[("zone", "b")], 1)]);
    let plan = reconcile(&desired, &lattice);
    assert_eq!(
        plan.problems,
        [
            "spread `b` of provider `kv` wants 4 host(s), one provider per host; only 1 of its 1 eligible host(s) are available",
        ]
    );
    assert_eq!(plan.commands.len(), 2, "{:#?}", plan.commands);

    // New image: stop then start on the same host, adjacent.
    desired.providers[0] = provider("kv", "kv:2", spread_of(1, vec![]));
    let mut one = Observed::default();
    add_hosts(&mut one, "h", "x", 1);
    one.hosts.get_mut("h-0").unwrap().providers.insert(
        "shop-kv".into(),
        ObservedProvider {
            image: "kv:1".into(),
            annotations: ownership(APP, "v0"),
        },
    );
    let (plan, _) = converge(&desired, &one);
    assert_eq!(
        plan.commands,
        vec![
            Command::StopProvider {
                host_id: "h-0".into(),
                provider_id: "shop-kv".into()
            },
            Command::StartProvider {
                host_id: "h-0".into(),
                provider_id: "shop-kv".into(),
                image: "kv:2".into(),
                config: vec![],
                annotations: ownership(APP, "v1"),
            },
        ]
    );

    // Daemon: every matching host, and a hand-made provider with our id is left alone.
    desired.providers[0] = provider(
        "kv",
        "kv:1",
        Placement::Daemon {
            instances: 1,
            spreads: vec![spread("a", &[("zone", "a")], 100)],
        },
    );
    let mut manual = observed.clone();
    manual.hosts.get_mut("a-1").unwrap().providers.insert(
        "shop-kv".into(),
        ObservedProvider {
            image: "mine".into(),
            annotations: BTreeMap::new(),
        },
    );
    let (plan, _) = converge(&desired, &manual);
    let hosts: Vec<&str> = plan
        .commands
        .iter()
        .map(|c| match c {
            Command::StartProvider { host_id, .. } => host_id.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(hosts, ["a-0", "a-2"]);
    assert_eq!(plan.conflicts.len(), 1);
}

#[test]
fn links_and_configs_are_put_and_retired() {
    let mut desired = app(vec![]);
    let kv = link("shop-api", "shop-kv", "keyvalue");
    let http = link("shop-http", "shop-api", "http");
    desired.links = vec![kv.clone(), http.clone()];
    desired.configs.insert("a".into(), labels(&[("k", "1")]));
    desired.configs.insert("b".into(), labels(&[("k", "2")]));
    let old = link("shop-api", "shop-blob", "blobstore");
    desired.retired_links = vec![old.clone(), link("shop-api", "gone", "gone")];
    desired.retired_configs = vec!["old".into(), "never-made".into()];

    let mut observed = Observed::default();
    let mut stale_http = http.clone();
    stale_http.target_config = vec!["tls".into()];
    observed.links = vec![
        kv.clone(),
        stale_http,
        old.clone(),
        link("other-x", "y", "z"),
    ];
    observed.configs.insert("a".into(), labels(&[("k", "1")]));
    observed.configs.insert("b".into(), labels(&[("k", "old")]));
    observed.configs.insert("old".into(), labels(&[]));

    let (plan, lattice) = converge(&desired, &observed);
    assert_eq!(
        plan.commands,
        vec![
            Command::PutConfig {
                name: "b".into(),
                values: labels(&[("k", "2")])
            },
            Command::PutLink(http.clone()),
            Command::DeleteLink {
                source_id: "shop-api".into(),
                wit_namespace: "wasi".into(),
                wit_package: "blobstore".into(),
                name: "default".into(),
            },
            Command::DeleteConfig { name: "old".into() },
        ]
    );
    assert_eq!(lattice.links.len(), 3, "the other app's link stays");
}

#[test]
fn plan_phases_make_before_break() {
    let mut desired = app(vec![component(
        "api",
        "api:2",
        spread_of(1, vec![spread("new", &[("zone", "new")], 100)]),
    )]);
    desired
        .providers
        .push(provider("kv", "kv:1", spread_of(1, vec![])));
    desired.links.push(link("shop-api", "shop-kv", "keyvalue"));
    desired.configs.insert("c".into(), labels(&[]));
    desired.retired_configs.push("gone".into());
    let mut observed = Observed::default();
    add_hosts(&mut observed, "old", "old", 1);
    add_hosts(&mut observed, "new", "new", 1);
    run_component(&mut observed, "old-0", "shop-api", "api:1", 1, APP);
    observed.configs.insert("gone".into(), labels(&[]));
    let plan = reconcile(&desired, &observed);
    let kinds: Vec<&str> = plan
        .commands
        .iter()
        .map(|c| match c {
            Command::PutConfig { .. } => "put-config",
            Command::StartProvider { .. } => "start-provider",
            Command::ScaleComponent { count: 0, .. } => "remove-component",
            Command::ScaleComponent { .. } => "scale-component",
            Command::PutLink(_) => "put-link",
            Command::DeleteConfig { .. } => "delete-config",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "put-config",
            "start-provider",
            "scale-component",
            "put-link",
            "remove-component",
            "delete-config",
        ]
    );
}

#[test]
fn undeploy_stops_only_what_the_app_owns() {
    let mut observed = Observed::default();
    add_hosts(&mut observed, "h", "x", 2);
    run_component(&mut observed, "h-0", "shop-api", "api:1", 2, APP);
    run_component(&mut observed, "h-1", "shop-api", "api:1", 1, "");
    run_component(&mut observed, "h-1", "other-web", "web:1", 1, "other");
    observed.hosts.get_mut("h-1").unwrap().providers.insert(
        "shop-kv".into(),
        ObservedProvider {
            image: "kv:1".into(),
            annotations: ownership(APP, "v3"),
        },
    );
    let kv = link("shop-api", "shop-kv", "keyvalue");
    observed.links = vec![kv.clone()];
    observed.configs.insert("shop-config".into(), labels(&[]));
    let commands = undeploy(
        APP,
        &observed,
        &[kv.clone(), link("shop-api", "x", "absent")],
        &["shop-config".into(), "absent".into()],
    );
    assert_eq!(
        commands,
        vec![
            Command::DeleteLink {
                source_id: "shop-api".into(),
                wit_namespace: "wasi".into(),
                wit_package: "keyvalue".into(),
                name: "default".into(),
            },
            Command::ScaleComponent {
                host_id: "h-0".into(),
                component_id: "shop-api".into(),
                image: "api:1".into(),
                count: 0,
                config: vec![],
                annotations: ownership(APP, "v0"),
            },
            Command::StopProvider {
                host_id: "h-1".into(),
                provider_id: "shop-kv".into()
            },
            Command::DeleteConfig {
                name: "shop-config".into()
            },
        ]
    );
    let after = apply(&observed, &commands);
    assert!(undeploy(APP, &after, &[kv], &["shop-config".into()]).is_empty());
    assert_eq!(after.hosts["h-1"].components.len(), 2);
}
