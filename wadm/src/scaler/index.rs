//! One pass over [`Observed`] that every scaler then reads by key.
//!
//! Scalers ask three questions many times: "where does component (or provider) `id` run?",
//! "which ids does app `a` own?" and "is there a link with this key?". Answering them by
//! walking every host each time would make a full resync cost apps × hosts × components;
//! the index answers each in one map lookup, so reconciling an app costs roughly the hosts
//! its spreads look at plus the places its own ids run.
//!
//! Hosts are numbered `0..n` in host-id order (the order of `Observed::hosts`), so a scaler can
//! keep per-host state in a plain `Vec` and "lowest index" means "lowest host id", which is
//! the deterministic tie-break everywhere.

use std::collections::{BTreeSet, HashMap};

use trellis_protocol::ctl::Link;

use crate::model::{
    APP_ANNOTATION, MANAGED_BY, MANAGED_BY_ANNOTATION, Observed, ObservedComponent, ObservedHost,
    ObservedProvider, Requirements,
};

/// What identifies a link in the lattice: `(source_id, wit_namespace, wit_package, name)`, the
/// key `link.put` replaces and `link.del` removes.
pub(crate) type LinkKey<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The key of `link`.
pub(crate) fn link_key(link: &Link) -> LinkKey<'_> {
    (
        &link.source_id,
        &link.wit_namespace,
        &link.wit_package,
        &link.name,
    )
}

/// [`Observed`] indexed for the scalers; build it once and reconcile many apps against it.
#[derive(Debug)]
pub struct LatticeIndex<'a> {
    observed: &'a Observed,
    hosts: Vec<(&'a str, &'a ObservedHost)>,
    components: HashMap<&'a str, Vec<(usize, &'a ObservedComponent)>>,
    providers: HashMap<&'a str, Vec<(usize, &'a ObservedProvider)>>,
    owned_components: HashMap<&'a str, BTreeSet<&'a str>>,
    owned_providers: HashMap<&'a str, BTreeSet<&'a str>>,
    links: HashMap<LinkKey<'a>, &'a Link>,
}

/// The app named by wadm ownership annotations, if wadm manages the thing.
pub(crate) fn owner(annotations: &std::collections::BTreeMap<String, String>) -> Option<&str> {
    (annotations.get(MANAGED_BY_ANNOTATION).map(String::as_str) == Some(MANAGED_BY))
        .then(|| annotations.get(APP_ANNOTATION).map(String::as_str))
        .flatten()
}

impl<'a> LatticeIndex<'a> {
    /// Indexes `observed` (one walk over every host's components and providers).
    pub fn new(observed: &'a Observed) -> Self {
        let mut index = LatticeIndex {
            observed,
            hosts: Vec::with_capacity(observed.hosts.len()),
            components: HashMap::new(),
            providers: HashMap::new(),
            owned_components: HashMap::new(),
            owned_providers: HashMap::new(),
            links: observed.links.iter().map(|l| (link_key(l), l)).collect(),
        };
        for (i, (host_id, host)) in observed.hosts.iter().enumerate() {
            index.hosts.push((host_id.as_str(), host));
            for (id, component) in &host.components {
                index.components.entry(id).or_default().push((i, component));
                if let Some(app) = owner(&component.annotations) {
                    index.owned_components.entry(app).or_default().insert(id);
                }
            }
            for (id, provider) in &host.providers {
                index.providers.entry(id).or_default().push((i, provider));
                if let Some(app) = owner(&provider.annotations) {
                    index.owned_providers.entry(app).or_default().insert(id);
                }
            }
        }
        index
    }

    /// The state this index was built from.
    pub fn observed(&self) -> &'a Observed {
        self.observed
    }

    /// Number of live hosts; host indices run `0..host_count()`.
    pub(crate) fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// The id of host `i`.
    pub(crate) fn host_id(&self, i: usize) -> &'a str {
        self.hosts[i].0
    }

    /// Indices of the hosts whose labels contain every `requirements` entry, in host-id order.
    pub(crate) fn hosts_matching(&self, requirements: &Requirements) -> Vec<usize> {
        self.hosts
            .iter()
            .enumerate()
            .filter(|(_, (_, host))| {
                requirements
                    .iter()
                    .all(|(k, v)| host.labels.get(k) == Some(v))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Where component `id` runs (whoever owns it), in host order.
    pub(crate) fn component(&self, id: &str) -> &[(usize, &'a ObservedComponent)] {
        self.components.get(id).map_or(&[], Vec::as_slice)
    }

    /// Where provider `id` runs (whoever owns it), in host order.
    pub(crate) fn provider(&self, id: &str) -> &[(usize, &'a ObservedProvider)] {
        self.providers.get(id).map_or(&[], Vec::as_slice)
    }

    /// Ids of the components wadm runs for `app` anywhere, sorted.
    pub(crate) fn owned_components(&self, app: &str) -> impl Iterator<Item = &'a str> + '_ {
        self.owned_components
            .get(app)
            .into_iter()
            .flat_map(|ids| ids.iter().copied())
    }

    /// Ids of the providers wadm runs for `app` anywhere, sorted.
    pub(crate) fn owned_providers(&self, app: &str) -> impl Iterator<Item = &'a str> + '_ {
        self.owned_providers
            .get(app)
            .into_iter()
            .flat_map(|ids| ids.iter().copied())
    }

    /// The observed link with `key`, if any.
    pub(crate) fn link(&self, key: LinkKey<'_>) -> Option<&'a Link> {
        self.links.get(&key).copied()
    }
}
