//! Picks a component for a request by Host header and path prefix. Pure, no I/O.

use std::sync::RwLock;

/// One route: requests whose Host matches `host` (any host when `None`) and whose path starts
/// with `path_prefix` (on a `/` boundary) go to `target`.
#[derive(Debug, Clone)]
pub struct Route<T> {
    pub host: Option<String>,
    pub path_prefix: String,
    pub target: T,
}

/// A set of routes; the most specific match wins: a route naming the host beats one that does
/// not, then the longer prefix wins.
#[derive(Debug)]
pub struct Router<T> {
    routes: RwLock<Vec<Route<T>>>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self {
            routes: RwLock::new(Vec::new()),
        }
    }
}

impl<T: Clone> Router<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the route for (`host`, `path_prefix`).
    pub fn insert(&self, host: Option<&str>, path_prefix: &str, target: T) {
        let host = host.map(normalize_host);
        let path_prefix = normalize_prefix(path_prefix);
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes.retain(|r| !(r.host == host && r.path_prefix == path_prefix));
        routes.push(Route {
            host,
            path_prefix,
            target,
        });
        // Most specific first: host routes, then longer prefixes.
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.path_prefix.len().cmp(&a.path_prefix.len()))
        });
    }

    /// Removes the route for (`host`, `path_prefix`); returns whether there was one.
    pub fn remove(&self, host: Option<&str>, path_prefix: &str) -> bool {
        let host = host.map(normalize_host);
        let path_prefix = normalize_prefix(path_prefix);
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        let before = routes.len();
        routes.retain(|r| !(r.host == host && r.path_prefix == path_prefix));
        routes.len() != before
    }

    /// The target for a request with this Host header (if any) and path.
    pub fn resolve(&self, host: Option<&str>, path: &str) -> Option<T> {
        let host = host.map(normalize_host);
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes
            .iter()
            .find(|r| {
                r.host.as_ref().is_none_or(|h| Some(h) == host.as_ref())
                    && prefix_matches(&r.path_prefix, path)
            })
            .map(|r| r.target.clone())
    }

    pub fn len(&self) -> usize {
        self.routes.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `Example.COM:8080` → `example.com`.
fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let without_port = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || host.starts_with('[') => {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }
        _ => host,
    };
    without_port.to_ascii_lowercase()
}

/// `api/` → `/api`; `` → `/`.
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_end_matches('/');
    if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        let r = Router::new();
        r.insert(None, "/", "root");
        r.insert(None, "/api", "api");
        r.insert(None, "/api/v2/", "api-v2");
        r.insert(Some("Shop.Example.com"), "/", "shop");
        r
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = router();
        assert_eq!(r.resolve(None, "/"), Some("root"));
        assert_eq!(r.resolve(None, "/api"), Some("api"));
        assert_eq!(r.resolve(None, "/api/orders"), Some("api"));
        assert_eq!(r.resolve(None, "/apix"), Some("root"));
        assert_eq!(r.resolve(None, "/api/v2/x"), Some("api-v2"));
        assert_eq!(r.resolve(Some("other.com"), "/api"), Some("api"));
    }

    #[test]
    fn host_routes_win_and_ignore_case_and_port() {
        let r = router();
        assert_eq!(
            r.resolve(Some("shop.example.com:8080"), "/api"),
            Some("shop")
        );
        assert_eq!(r.resolve(Some("SHOP.example.COM"), "/"), Some("shop"));
    }

    #[test]
    fn no_match_and_removal() {
        let r: Router<&str> = Router::new();
        r.insert(None, "/only", "x");
        assert_eq!(r.resolve(None, "/"), None);
        assert!(r.remove(None, "only/"));
        assert!(r.is_empty());
        assert!(!r.remove(None, "/only"));
    }

    #[test]
    fn inserting_the_same_route_replaces_it() {
        let r = Router::new();
        r.insert(None, "/a", 1);
        r.insert(None, "/a/", 2);
        assert_eq!(r.len(), 1);
        assert_eq!(r.resolve(None, "/a"), Some(2));
    }
}
