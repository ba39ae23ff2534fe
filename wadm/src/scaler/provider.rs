//! The provider scalers: `spreadscaler` and `daemonscaler` for one `capability` component.
//!
//! Same three steps as the component scalers (observe what this app owns, place, diff), with
//! one difference: a host runs a provider id at most once, so for a provider `instances`
//! counts hosts, and placement picks a set of hosts rather than a count per host.
//!
//! - *Spread*: each spread's share (wadm's weight split) is a number of hosts among the
//!   spread's eligible ones. Hosts already running the provider for this app are kept first
//!   (a maximum matching over spreads, so overlapping spreads do not shuffle a converged
//!   lattice), then free eligible hosts are added lowest host id first. A host taken by one
//!   spread is not available to another. A spread that cannot get its share becomes a plan
//!   problem.
//! - *Daemon*: one provider on every host meeting a spread's requirements (every host when
//!   there are no spreads), as long as `instances > 0`.
//!
//! A host running this app's provider with another image gets `StopProvider` then
//! `StartProvider` with the new image: a provider process cannot be swapped in place, so the
//! executor must send the two in order (the plan keeps them adjacent). Providers that
//! another app or a person started under the same id are left alone, like components.

use std::collections::{BTreeMap, BTreeSet};

use super::component::{self, eligible, owned_or_blocked, shares};
use super::index::LatticeIndex;
use super::spread::{Matcher, no_host_problem};
use super::{Ctx, Draft, Phase};
use crate::model::{Command, DesiredProvider, ObservedProvider, Placement, Spread, owned_by};

const BLOCKED: &str = "already run a provider with this id that the app does not manage";

/// Reconciles one desired provider into `draft`.
pub(crate) fn scale_provider(desired: &DesiredProvider, ctx: &Ctx<'_, '_>, draft: &mut Draft) {
    let index = ctx.index;
    let places = index.provider(&desired.id);
    let (running, blocked) = owned_or_blocked(
        "provider",
        &desired.id,
        places,
        |p: &ObservedProvider| &p.annotations,
        ctx,
        draft,
    );
    let what = format!("provider `{}`", desired.name);
    let wanted = match &desired.placement {
        Placement::Spread { instances, spreads } => spread_hosts(
            index,
            *instances,
            spreads,
            &blocked,
            &running,
            &what,
            &mut draft.problems,
        ),
        Placement::Daemon { instances, spreads } => daemon_hosts(
            index,
            *instances,
            spreads,
            &blocked,
            &what,
            &mut draft.problems,
        ),
    };
    for (h, &want) in wanted.iter().enumerate() {
        let host_id = index.host_id(h);
        let stop = || Command::StopProvider {
            host_id: host_id.to_string(),
            provider_id: desired.id.clone(),
        };
        let start = || Command::StartProvider {
            host_id: host_id.to_string(),
            provider_id: desired.id.clone(),
            image: desired.image.clone(),
            config: desired.config.clone(),
            annotations: ctx.annotations.clone(),
        };
        match (running.get(&h), want) {
            (None, false) => {}
            (None, true) => draft.push(Phase::Provider, start()),
            (Some(_), false) => draft.push(Phase::RemoveProvider, stop()),
            (Some(have), true) => {
                if have.image != desired.image {
                    draft.push(Phase::Provider, stop());
                    draft.push(Phase::Provider, start());
                }
            }
        }
    }
}

fn spread_hosts(
    index: &LatticeIndex<'_>,
    instances: u32,
    spreads: &[Spread],
    blocked: &[bool],
    running: &BTreeMap<usize, &ObservedProvider>,
    what: &str,
    problems: &mut Vec<String>,
) -> Vec<bool> {
    let n = index.host_count();
    let groups = shares(instances, spreads);
    let mut hosts_of = Vec::with_capacity(groups.len());
    let mut matching_of = Vec::with_capacity(groups.len());
    for &(spread, _) in &groups {
        let (hosts, matching) = eligible(index, spread, blocked);
        hosts_of.push(hosts);
        matching_of.push(matching);
    }
    let mut matcher = Matcher::new(n, hosts_of.clone());
    let mut got = vec![0usize; groups.len()];
    // Keep hosts that run it already, then add free ones.
    let running_only: Vec<u32> = (0..n)
        .map(|h| u32::from(running.contains_key(&h)))
        .collect();
    let any_free = vec![1u32; n];
    for capacity in [&running_only, &any_free] {
        for (g, &(_, count)) in groups.iter().enumerate() {
            got[g] += matcher.grow(g, (count as usize).saturating_sub(got[g]), capacity);
        }
    }
    for (g, &(spread, count)) in groups.iter().enumerate() {
        let count = count as usize;
        if got[g] >= count {
            continue;
        }
        problems.push(if hosts_of[g].is_empty() {
            no_host_problem(what, spread, matching_of[g], BLOCKED)
        } else {
            let name = spread.map_or_else(String::new, |s| format!("spread `{}` of ", s.name));
            format!(
                "{name}{what} wants {count} host(s), one provider per host; only {} of its {} \
                 eligible host(s) are available",
                got[g],
                hosts_of[g].len()
            )
        });
    }
    (0..n).map(|h| matcher.is_taken(h)).collect()
}

fn daemon_hosts(
    index: &LatticeIndex<'_>,
    instances: u32,
    spreads: &[Spread],
    blocked: &[bool],
    what: &str,
    problems: &mut Vec<String>,
) -> Vec<bool> {
    let mut wanted = vec![false; index.host_count()];
    if instances == 0 {
        return wanted;
    }
    for h in component::daemon_hosts(index, spreads, blocked, what, BLOCKED, problems) {
        wanted[h] = true;
    }
    wanted
}

/// Stops every provider `ctx.app` owns but no longer declares.
pub(crate) fn remove_undeclared(declared: &BTreeSet<&str>, ctx: &Ctx<'_, '_>, draft: &mut Draft) {
    let index = ctx.index;
    for id in index.owned_providers(ctx.app) {
        if declared.contains(id) {
            continue;
        }
        for &(h, observed) in index.provider(id) {
            if owned_by(&observed.annotations, ctx.app) {
                draft.push(
                    Phase::RemoveProvider,
                    Command::StopProvider {
                        host_id: index.host_id(h).to_string(),
                        provider_id: id.to_string(),
                    },
                );
            }
        }
    }
}
