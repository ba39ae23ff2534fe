//! Links as a provider sees them, and a table for per-link state.
//!
//! A link is identified, from the provider's side, by the component at its other end and its
//! name ([`LinkKey`]). Its config is the merge of the named configs the link lists (later
//! names win), already resolved from the lattice's config store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::provider::ProviderError;

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

/// The first of `keys` that a link config sets to something other than blanks, trimmed.
///
/// For settings with several accepted spellings, in order of preference:
/// `setting(config, &["cluster_uri", "url"])`.
pub fn setting<'a>(config: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .filter_map(|key| config.get(*key))
        .map(|value| value.trim())
        .find(|value| !value.is_empty())
}

/// The whole number above 0 that a link config sets under `key`, or `default` when the key is
/// absent. Anything else is refused with a message naming the key and the value.
pub fn positive_setting(
    config: &BTreeMap<String, String>,
    key: &str,
    default: usize,
) -> Result<usize, ProviderError> {
    match config.get(key) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ProviderError::new(format!(
                "link setting `{key}` must be a whole number above 0, not `{text}`"
            ))),
        },
    }
}

/// `url` with its user info (`user:password@`, or a bare token such as NATS's `token@`)
/// replaced by `***@`, for messages and logs. A URL without a scheme is read as an authority
/// (`token@host:4222`); anything without `@` before the path comes back as it is.
pub fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_string(),
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

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_take_the_first_spelling_that_is_set() {
        let both = config(&[("cluster_uri", " nats://a:1 "), ("url", "nats://b:2")]);
        assert_eq!(setting(&both, &["cluster_uri", "url"]), Some("nats://a:1"));
        let blank = config(&[("cluster_uri", "  "), ("url", "nats://b:2")]);
        assert_eq!(setting(&blank, &["cluster_uri", "url"]), Some("nats://b:2"));
        assert_eq!(setting(&config(&[]), &["cluster_uri", "url"]), None);
        assert_eq!(setting(&config(&[("dir", "")]), &["dir"]), None);
    }

    #[test]
    fn positive_settings_name_the_key_and_value_when_refused() {
        assert_eq!(positive_setting(&config(&[]), "page_size", 10), Ok(10));
        let seven = config(&[("page_size", " 7 ")]);
        assert_eq!(positive_setting(&seven, "page_size", 10), Ok(7));
        for bad in ["0", "-1", "many", ""] {
            let err =
                positive_setting(&config(&[("page_size", bad)]), "page_size", 10).unwrap_err();
            assert_eq!(
                err.0,
                format!("link setting `page_size` must be a whole number above 0, not `{bad}`")
            );
        }
    }

    #[test]
    fn user_info_never_reaches_messages() {
        assert_eq!(
            redact_userinfo("redis://user:secret@host:6379/1"),
            "redis://***@host:6379/1"
        );
        assert_eq!(
            redact_userinfo("nats://u:p@host:4222"),
            "nats://***@host:4222"
        );
        assert_eq!(redact_userinfo("token@host:4222"), "***@host:4222");
        assert_eq!(redact_userinfo("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact_userinfo("redis://host/a@b"), "redis://host/a@b");
        assert_eq!(redact_userinfo("not a url"), "not a url");
    }

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
