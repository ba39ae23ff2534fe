//! The component scalers: `spreadscaler` and `daemonscaler` for one manifest component.
//!
//! Each works in three steps, all pure:
//!
//! 1. **Observe**: where the component id runs. Instances whose annotations say
//!    [`owned_by`] this app are ours and count; an instance with the same id that is not ours
//!    (hand-made, or another app's) is left alone, never counted, and its host is taken out
//!    of placement for this component (a host holds one scale count per component id, so
//!    placing ours there would take theirs over). Each such instance adds a note to the
//!    plan's `conflicts`.
//! 2. **Place**: compute a target count per host.
//!    - *Spread*: split `instances` over the spreads by weight (wadm's rule,
//!      [`split_by_weight`]); within a spread of `count` instances
//!      over `k` eligible hosts each host gets `count / k` and `count % k` of them get one
//!      more, the extras going first to hosts that already run more than their base (a
//!      maximum matching, so a converged lattice reproduces itself exactly), then to the
//!      least-loaded hosts, lowest host id first. A host's target is the sum over the spreads
//!      it serves. No spreads means one spread over every host.
//!    - *Daemon*: `instances` on every host that meets at least one spread's requirements
//!      (every host when there are no spreads), so a host that joins later gets it too.
//!
//!    A spread that has instances to place but no eligible host becomes a plan problem
//!    (`spread `edge` of component `api` needs hosts labelled zone=edge; none are live`).
//! 3. **Diff** target against observed, host by host: not running → `ScaleComponent`;
//!    running another image → `UpdateComponent` (an in-place swap, no downtime) and, if the
//!    count differs too, a `ScaleComponent` with the new image; running with another count →
//!    `ScaleComponent`; running where the target is 0 → `ScaleComponent` to 0 (emitted in the
//!    teardown phase, after everything new is in place).
//!
//! Placement is strictly even: when an eligible host joins a spread that has at least as many
//! instances as hosts, the spread rebalances onto it (one host scales down by one, the new
//! one scales up; both are count changes, nothing restarts). A spread with fewer instances
//! than hosts leaves a new host idle unless the spread is short.

use std::collections::{BTreeMap, BTreeSet};

use super::index::{LatticeIndex, owner};
use super::spread::{Matcher, no_host_problem, split_by_weight, weight_order};
use super::{Ctx, Draft, Phase};
use crate::model::{
    Command, DesiredComponent, ObservedComponent, Placement, Requirements, Spread, owned_by,
};

static ANYWHERE: Requirements = Requirements::new();

/// Hosts meeting `spread` (every host for `None`) that are not `blocked`, plus how many
/// matched before blocked ones were removed.
pub(crate) fn eligible(
    index: &LatticeIndex<'_>,
    spread: Option<&Spread>,
    blocked: &[bool],
) -> (Vec<usize>, usize) {
    let mut hosts = index.hosts_matching(spread.map_or(&ANYWHERE, |s| &s.requirements));
    let matching = hosts.len();
    hosts.retain(|&h| !blocked[h]);
    (hosts, matching)
}

/// The spreads in placement order (heaviest first) with their share of `instances`; no
/// spreads is one implicit spread over every host.
pub(crate) fn shares(instances: u32, spreads: &[Spread]) -> Vec<(Option<&Spread>, u32)> {
    if spreads.is_empty() {
        return vec![(None, instances)];
    }
    let counts = split_by_weight(instances, spreads);
    weight_order(spreads)
        .into_iter()
        .map(|i| (Some(&spreads[i]), counts[i]))
        .collect()
}

/// The places an id runs, split into the app's own instances (by host index) and the hosts
/// blocked by someone else's instance under that id (each noted in the plan's conflicts).
pub(crate) fn owned_or_blocked<'o, T>(
    kind: &str,
    id: &str,
    places: &[(usize, &'o T)],
    annotations: impl Fn(&T) -> &BTreeMap<String, String>,
    ctx: &Ctx<'_, '_>,
    draft: &mut Draft,
) -> (BTreeMap<usize, &'o T>, Vec<bool>) {
    let mut running = BTreeMap::new();
    let mut blocked = vec![false; ctx.index.host_count()];
    for &(h, observed) in places {
        if owned_by(annotations(observed), ctx.app) {
            running.insert(h, observed);
        } else {
            blocked[h] = true;
            let note = conflict_note(
                kind,
                id,
                ctx.index.host_id(h),
                annotations(observed),
                ctx.app,
            );
            draft.conflicts.push(note);
        }
    }
    (running, blocked)
}

/// Why an item is left alone, for the plan's conflicts.
pub(crate) fn conflict_note(
    kind: &str,
    id: &str,
    host: &str,
    annotations: &BTreeMap<String, String>,
    app: &str,
) -> String {
    let whose = match owner(annotations) {
        Some(other) => format!("belongs to app `{other}`"),
        None => "was not started by wadm".to_string(),
    };
    format!("{kind} `{id}` on host `{host}` {whose}: left alone, and `{app}` places none there")
}

/// Reconciles one desired component into `draft`.
pub(crate) fn scale_component(desired: &DesiredComponent, ctx: &Ctx<'_, '_>, draft: &mut Draft) {
    let index = ctx.index;
    let places = index.component(&desired.id);
    let (running, blocked) = owned_or_blocked(
        "component",
        &desired.id,
        places,
        |c| &c.annotations,
        ctx,
        draft,
    );
    let what = format!("component `{}`", desired.name);
    let target = match &desired.placement {
        Placement::Spread { instances, spreads } => spread_targets(
            index,
            *instances,
            spreads,
            &blocked,
            &running,
            &what,
            &mut draft.problems,
        ),
        Placement::Daemon { instances, spreads } => daemon_targets(
            index,
            *instances,
            spreads,
            &blocked,
            &what,
            &mut draft.problems,
        ),
    };
    for (h, &want) in target.iter().enumerate() {
        let host_id = index.host_id(h);
        let scale = |count: u32, image: &str| Command::ScaleComponent {
            host_id: host_id.to_string(),
            component_id: desired.id.clone(),
            image: image.to_string(),
            count,
            config: desired.config.clone(),
            annotations: ctx.annotations.clone(),
        };
        match running.get(&h) {
            None if want == 0 => {}
            None => draft.push(Phase::Component, scale(want, &desired.image)),
            Some(have) if want == 0 => draft.push(Phase::RemoveComponent, scale(0, &have.image)),
            Some(have) => {
                if have.image != desired.image {
                    draft.push(
                        Phase::Component,
                        Command::UpdateComponent {
                            host_id: host_id.to_string(),
                            component_id: desired.id.clone(),
                            image: desired.image.clone(),
                            annotations: ctx.annotations.clone(),
                        },
                    );
                }
                if have.count != want {
                    draft.push(Phase::Component, scale(want, &desired.image));
                }
            }
        }
    }
}

const BLOCKED: &str = "already run a component with this id that the app does not manage";

fn spread_targets(
    index: &LatticeIndex<'_>,
    instances: u32,
    spreads: &[Spread],
    blocked: &[bool],
    running: &BTreeMap<usize, &ObservedComponent>,
    what: &str,
    problems: &mut Vec<String>,
) -> Vec<u32> {
    let n = index.host_count();
    let mut target = vec![0u32; n];
    let mut hosts_of = Vec::new();
    let mut extras = Vec::new();
    for (spread, count) in shares(instances, spreads) {
        let (hosts, matching) = eligible(index, spread, blocked);
        let k = u32::try_from(hosts.len()).unwrap_or(u32::MAX);
        match (count.checked_div(k), count.checked_rem(k)) {
            (Some(base), Some(extra)) => {
                for &h in &hosts {
                    target[h] += base;
                }
                extras.push(extra as usize);
            }
            _ => {
                if count > 0 {
                    problems.push(no_host_problem(what, spread, matching, BLOCKED));
                }
                extras.push(0);
            }
        }
        hosts_of.push(hosts);
    }
    // Extras go first to hosts running more than their base already...
    let surplus: Vec<u32> = (0..n)
        .map(|h| {
            running
                .get(&h)
                .map_or(0, |c| c.count)
                .saturating_sub(target[h])
        })
        .collect();
    let candidates = hosts_of
        .iter()
        .map(|hosts| hosts.iter().copied().filter(|&h| surplus[h] > 0).collect())
        .collect();
    let mut matcher = Matcher::new(n, candidates);
    for (g, &want) in extras.iter().enumerate() {
        matcher.grow(g, want, &surplus);
    }
    for g in 0..hosts_of.len() {
        for &h in matcher.chosen(g) {
            target[h] += 1;
        }
    }
    // ...then to the least-loaded hosts, lowest id first.
    for (g, hosts) in hosts_of.iter().enumerate() {
        let chosen: &BTreeSet<usize> = matcher.chosen(g);
        let short = extras[g].saturating_sub(chosen.len());
        if short == 0 {
            continue;
        }
        let mut free: Vec<usize> = hosts
            .iter()
            .copied()
            .filter(|h| !chosen.contains(h))
            .collect();
        free.sort_by_key(|&h| (target[h], h));
        for &h in free.iter().take(short) {
            target[h] += 1;
        }
    }
    target
}

fn daemon_targets(
    index: &LatticeIndex<'_>,
    instances: u32,
    spreads: &[Spread],
    blocked: &[bool],
    what: &str,
    problems: &mut Vec<String>,
) -> Vec<u32> {
    let mut target = vec![0u32; index.host_count()];
    if instances == 0 {
        return target;
    }
    for h in daemon_hosts(index, spreads, blocked, what, BLOCKED, problems) {
        target[h] = instances;
    }
    target
}

/// The hosts a daemon runs on: every free host that meets one of `spreads`' requirements
/// (every free host when there are no spreads). A spread no free host meets is a problem;
/// `blocked_note` says what blocks a host.
pub(crate) fn daemon_hosts(
    index: &LatticeIndex<'_>,
    spreads: &[Spread],
    blocked: &[bool],
    what: &str,
    blocked_note: &str,
    problems: &mut Vec<String>,
) -> Vec<usize> {
    let groups: Vec<Option<&Spread>> = if spreads.is_empty() {
        vec![None]
    } else {
        spreads.iter().map(Some).collect()
    };
    let mut chosen = Vec::new();
    for spread in groups {
        let (hosts, matching) = eligible(index, spread, blocked);
        if hosts.is_empty() {
            problems.push(no_host_problem(what, spread, matching, blocked_note));
        }
        chosen.extend(hosts);
    }
    chosen
}

/// Scales to 0 every instance of a component `ctx.app` owns but no longer declares.
pub(crate) fn remove_undeclared(declared: &BTreeSet<&str>, ctx: &Ctx<'_, '_>, draft: &mut Draft) {
    let index = ctx.index;
    for id in index.owned_components(ctx.app) {
        if declared.contains(id) {
            continue;
        }
        for &(h, observed) in index.component(id) {
            if owned_by(&observed.annotations, ctx.app) {
                draft.push(
                    Phase::RemoveComponent,
                    Command::ScaleComponent {
                        host_id: index.host_id(h).to_string(),
                        component_id: id.to_string(),
                        image: observed.image.clone(),
                        count: 0,
                        config: Vec::new(),
                        annotations: ctx.annotations.clone(),
                    },
                );
            }
        }
    }
}
