//! Links as a provider sees them, and a table for per-link state.
//!
//! A link is identified, from the provider's side, by the component at its other end and its
//! name ([`LinkKey`]). Its config is the merge of the named configs the link lists (later
//! names win), already resolved from the lattice's config store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// The link a call came through: which component called, and the link's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallContext {
    /// The calling component's id (the link's source).
    pub source_id: String,
    /// The link's name (`default` unless the component picked another).
    pub link_name: String,
}

impl CallContext {
    pub fn new(source_id: impl Into<String>, link_name: impl Into<String>) -> Self {
        Self {
            source_id: source_id.into(),
            link_name: link_name.into(),
        }
    }
}

/// One link, with its named configs resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkConfig {
    pub source_id: String,
    pub target: String,
    pub link_name: String,
    pub wit_namespace: String,
    pub wit_package: String,
    pub interfaces: Vec<String>,
    /// The merged source-side config.
    pub source_config: BTreeMap<String, String>,
    /// The merged target-side config (what a capability provider reads: URLs, pool sizes).
    pub target_config: BTreeMap<String, String>,
}

impl LinkConfig {
    /// The key of this link for its target (a capability provider).
    pub fn target_key(&self) -> LinkKey {
        LinkKey {
            component: self.source_id.clone(),
            link_name: self.link_name.clone(),
        }
    }

    /// The key of this link for its source (a provider that calls components).
    pub fn source_key(&self) -> LinkKey {
        LinkKey {
            component: self.target.clone(),
            link_name: self.link_name.clone(),
        }
    }
}

/// The component at the other end of a link, and the link's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LinkKey {
    pub component: String,
    pub link_name: String,
}

impl From<&CallContext> for LinkKey {
    fn from(cx: &CallContext) -> Self {
        Self {
            component: cx.source_id.clone(),
            link_name: cx.link_name.clone(),
        }
    }
}

/// Per-link state of a provider (a connection pool per link, say), shared between the link
/// callbacks that fill it and the calls that read it.
pub struct LinkTable<T> {
    links: RwLock<HashMap<LinkKey, Arc<T>>>,
}

impl<T> Default for LinkTable<T> {
    fn default() -> Self {
        Self {
            links: RwLock::new(HashMap::new()),
        }
    }
}

impl<T> LinkTable<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores the state of a link, returning what it replaces.
    pub fn insert(&self, key: LinkKey, state: T) -> Option<Arc<T>> {
        self.write().insert(key, Arc::new(state))
    }

    /// Removes the state of a link.
    pub fn remove(&self, key: &LinkKey) -> Option<Arc<T>> {
        self.write().remove(key)
    }

    /// The state of the link a call came through.
    pub fn get(&self, cx: &CallContext) -> Option<Arc<T>> {
        self.read().get(&LinkKey::from(cx)).cloned()
    }

    /// Every link's state (for health checks and shutdown).
    pub fn all(&self) -> Vec<(LinkKey, Arc<T>)> {
        self.read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Removes every link, returning their state.
    pub fn drain(&self) -> Vec<(LinkKey, Arc<T>)> {
        self.write().drain().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<LinkKey, Arc<T>>> {
        self.links.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<LinkKey, Arc<T>>> {
        self.links.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_find_the_state_of_their_link() {
        let table = LinkTable::new();
        let link = LinkConfig {
            source_id: "counter".into(),
            target: "kv".into(),
            link_name: "default".into(),
            ..LinkConfig::default()
        };
        assert!(table.insert(link.target_key(), 7).is_none());
        assert_eq!(
            table
                .get(&CallContext::new("counter", "default"))
                .as_deref(),
            Some(&7)
        );
        assert!(table.get(&CallContext::new("counter", "other")).is_none());
        assert!(table.get(&CallContext::new("else", "default")).is_none());
        assert_eq!(table.remove(&link.target_key()).as_deref(), Some(&7));
        assert!(table.is_empty());
    }
}
