//! Scalers: pure functions from (desired, observed) to the commands that close the gap.
//!
//! A scaler looks at one concern of one application — where a component runs, where a
//! provider runs, which links exist, which config maps exist — compares what the manifest
//! asks for ([`AppDesired`]) with what the lattice runs ([`Observed`]) and returns the
//! [`Command`]s that move the second toward the first. Scalers hold no state and do no I/O:
//! the server feeds them a fresh snapshot after every event (or on a timer) and sends what
//! they return, so "reconcile again" is always safe, and a lattice that already matches the
//! manifest yields no command at all.
//!
//! [`reconcile`] composes them for one app version:
//!
//! | scaler | file | decides |
//! |---|---|---|
//! | component spread / daemon | `component.rs` | a scale count per host for each component |
//! | provider spread / daemon | `provider.rs` | which hosts run each provider (one per host) |
//! | links | `link.rs` | `PutLink` for missing or different links, `DeleteLink` for retired ones |
//! | configs | `config.rs` | `PutConfig` for missing or different maps, `DeleteConfig` for retired ones |
//!
//! and the spread arithmetic they share (wadm's weight split, eligible hosts, stable slot
//! matching) is in `spread.rs`; `index.rs` indexes [`Observed`] once per call.
//!
//! # Ownership
//!
//! Everything a plan starts carries [`ownership`]`(app, version)`.
//! A scaler only scales, updates or stops instances whose annotations say
//! [`owned_by`]`(app)`. An instance with a declared id that the app
//! does not own (started by hand, or by another app) is never touched and never counted, and
//! the app places nothing on that host for that id; each one is reported in
//! [`Plan::conflicts`]. Instances the app owns under ids the current version no longer
//! declares (a renamed or removed component) are stopped.
//!
//! # Order of a plan
//!
//! Make before break. [`Plan::commands`] comes in these phases, each in manifest order and,
//! within one item, host-id order:
//!
//! 1. `PutConfig` — what components and providers read at start;
//! 2. providers: `StartProvider`, and `StopProvider` + `StartProvider` pairs for image
//!    changes (sent in order on the same host);
//! 3. components: `UpdateComponent` (in-place image swap), `ScaleComponent` with a count > 0;
//! 4. `PutLink` — after their ends are asked for (like wadm, a link does not wait for its
//!    ends to be running: it is lattice data that hosts read when they start them);
//! 5. `DeleteLink` for retired links;
//! 6. `ScaleComponent` to 0 for instances no longer wanted, then `StopProvider`;
//! 7. `DeleteConfig` for retired configs.
//!
//! # Problems
//!
//! What cannot be placed is reported in [`Plan::problems`] rather than dropped, e.g.
//! ``spread `edge` of component `api` needs hosts labelled zone=edge; none are live``; the
//! server turns a non-empty list into a "failed" status with those reasons. The rest of the
//! plan still applies: spreads that can be satisfied are.
//!
//! # Cost
//!
//! [`LatticeIndex`] answers "where does id X run", "what does app A own" and "is link K
//! there" by lookup, so reconciling one app costs its spreads' label checks over the hosts
//! plus the places its own ids run, and a full resync ([`reconcile_all`]) indexes the
//! lattice once for every app.

mod component;
mod config;
mod index;
mod link;
mod provider;
mod spread;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use trellis_protocol::ctl::Link;

pub use index::LatticeIndex;
pub use spread::split_by_weight;

use crate::model::{AppDesired, Command, Observed, owned_by, ownership};

/// What [`reconcile`] decided for one app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The commands to send, in order (see the module docs). Empty when converged.
    pub commands: Vec<Command>,
    /// What the app asks for that cannot be placed now (the app is "failed" while this is not
    /// empty); one sentence each.
    pub problems: Vec<String>,
    /// Instances with a declared id that the app does not own, left alone; one sentence each.
    /// Informational: the app can still be deployed around them.
    pub conflicts: Vec<String>,
}

impl Plan {
    /// Whether the lattice already matches the app (nothing to send, nothing missing).
    pub fn is_converged(&self) -> bool {
        self.commands.is_empty() && self.problems.is_empty()
    }
}

/// The phases of a plan, in the order they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    PutConfig,
    Provider,
    Component,
    PutLink,
    DeleteLink,
    RemoveComponent,
    RemoveProvider,
    DeleteConfig,
}

/// A plan being built: commands tagged with their phase.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    steps: Vec<(Phase, Command)>,
    pub(crate) problems: Vec<String>,
    pub(crate) conflicts: Vec<String>,
}

impl Draft {
    pub(crate) fn push(&mut self, phase: Phase, command: Command) {
        self.steps.push((phase, command));
    }

    fn finish(mut self) -> Plan {
        // Stable: within a phase, the order the scalers emitted.
        self.steps.sort_by_key(|(phase, _)| *phase);
        Plan {
            commands: self.steps.into_iter().map(|(_, c)| c).collect(),
            problems: self.problems,
            conflicts: self.conflicts,
        }
    }
}

/// What every scaler of one app needs.
pub(crate) struct Ctx<'i, 'o> {
    pub(crate) app: &'i str,
    pub(crate) index: &'i LatticeIndex<'o>,
    /// `ownership(app, version)`, put on everything the plan starts.
    pub(crate) annotations: BTreeMap<String, String>,
}

/// Reconciles one app version against the lattice: the commands that move `observed`
/// toward `desired`, and what cannot be placed.
pub fn reconcile(desired: &AppDesired, observed: &Observed) -> Plan {
    reconcile_indexed(desired, &LatticeIndex::new(observed))
}

/// [`reconcile`] against an index built once (for reconciling many apps in a row).
pub fn reconcile_indexed(desired: &AppDesired, index: &LatticeIndex<'_>) -> Plan {
    let ctx = Ctx {
        app: &desired.app,
        index,
        annotations: ownership(&desired.app, &desired.version),
    };
    let mut draft = Draft::default();
    config::scale_configs(desired, &ctx, &mut draft);
    for p in &desired.providers {
        provider::scale_provider(p, &ctx, &mut draft);
    }
    let declared: BTreeSet<&str> = desired.providers.iter().map(|p| p.id.as_str()).collect();
    provider::remove_undeclared(&declared, &ctx, &mut draft);
    for c in &desired.components {
        component::scale_component(c, &ctx, &mut draft);
    }
    let declared: BTreeSet<&str> = desired.components.iter().map(|c| c.id.as_str()).collect();
    component::remove_undeclared(&declared, &ctx, &mut draft);
    link::scale_links(desired, &ctx, &mut draft);
    draft.finish()
}

/// Reconciles every app against one snapshot (a full resync), indexing it once. Keyed by
/// app name.
pub fn reconcile_all<'d>(
    apps: impl IntoIterator<Item = &'d AppDesired>,
    observed: &Observed,
) -> BTreeMap<String, Plan> {
    let index = LatticeIndex::new(observed);
    apps.into_iter()
        .map(|app| (app.app.clone(), reconcile_indexed(app, &index)))
        .collect()
}

/// Takes an app down: `DeleteLink` for each of `links` still present, `ScaleComponent` to 0
/// for every component instance `app` owns, `StopProvider` for every provider it owns, and
/// `DeleteConfig` for each of `configs` still present, in that order. Things the app does not
/// own are never touched.
pub fn undeploy(
    app: &str,
    observed: &Observed,
    links: &[Link],
    configs: &[String],
) -> Vec<Command> {
    let mut commands = Vec::new();
    let present: HashSet<_> = observed.links.iter().map(index::link_key).collect();
    let mut deleted = HashSet::new();
    for l in links {
        let key = index::link_key(l);
        if present.contains(&key) && deleted.insert(key) {
            commands.push(link::delete_link(l));
        }
    }
    for (host_id, host) in &observed.hosts {
        for (id, c) in &host.components {
            if owned_by(&c.annotations, app) {
                commands.push(Command::ScaleComponent {
                    host_id: host_id.clone(),
                    component_id: id.clone(),
                    image: c.image.clone(),
                    count: 0,
                    config: Vec::new(),
                    annotations: c.annotations.clone(),
                });
            }
        }
    }
    for (host_id, host) in &observed.hosts {
        for (id, p) in &host.providers {
            if owned_by(&p.annotations, app) {
                commands.push(Command::StopProvider {
                    host_id: host_id.clone(),
                    provider_id: id.clone(),
                });
            }
        }
    }
    let configs: BTreeSet<&String> = configs
        .iter()
        .filter(|name| observed.configs.contains_key(*name))
        .collect();
    for name in configs {
        commands.push(Command::DeleteConfig { name: name.clone() });
    }
    commands
}
