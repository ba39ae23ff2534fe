//! Rules for the names a manifest uses: application and component names, ids, config
//! names, WIT identifiers, OAM label keys, and the interfaces of the well-known packages.

/// The interfaces a link may name in the WIT packages Trellis (and wasmCloud) serve.
/// A link to a package not listed here is not checked beyond the WIT identifier rules.
pub const KNOWN_INTERFACES: &[(&str, &str, &[&str])] = &[
    ("wasi", "http", &["incoming-handler", "outgoing-handler"]),
    (
        "wasi",
        "keyvalue",
        &["store", "atomics", "batch", "watcher"],
    ),
    ("wasi", "config", &["store", "runtime"]),
    ("wasi", "logging", &["logging"]),
    ("wasi", "sql", &["types", "readwrite"]),
    ("wasi", "blobstore", &["blobstore", "container", "types"]),
    ("wasmcloud", "bus", &["lattice"]),
    ("wasmcloud", "messaging", &["consumer", "handler", "types"]),
];

/// The interfaces of `namespace:package` when it is a well-known package.
pub fn known_interfaces(namespace: &str, package: &str) -> Option<&'static [&'static str]> {
    KNOWN_INTERFACES
        .iter()
        .find(|(ns, pkg, _)| *ns == namespace && *pkg == package)
        .map(|(_, _, interfaces)| *interfaces)
}

/// Application names end up in NATS subjects, KV keys and component ids: letters, digits,
/// `-` and `_` only (wadm's rule is `^[-\w]+$`; Trellis keeps to ASCII).
pub fn is_valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A lattice id given in `properties.id`: same characters as an application name.
pub fn is_valid_id(id: &str) -> bool {
    is_valid_app_name(id)
}

/// A name that appears as one NATS subject token (config names, link names): not empty,
/// and none of whitespace, `.`, `*`, `>`.
pub fn is_subject_safe(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>'))
}

/// A WIT identifier (namespace, package or interface name): words separated by single
/// `-`, each all lowercase starting with a letter (`incoming-handler`) or all uppercase
/// (an acronym).
pub fn is_wit_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.split('-').all(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) if first.is_ascii_lowercase() => {
                    chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                }
                Some(first) if first.is_ascii_uppercase() => {
                    chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                }
                _ => false,
            }
        })
}

/// wadm's id rule: `{app}-{name}` with both lowercased and every character that is not an
/// ASCII letter or digit replaced by `_` (`compute_component_id` in wadm's
/// `scaler/convert.rs`), unless the manifest gives an explicit id, which is used as is.
pub fn component_id(app: &str, explicit: Option<&str>, name: &str) -> String {
    match explicit {
        Some(id) => id.to_string(),
        None => format!("{}-{}", sanitize(app), sanitize(name)),
    }
}

/// wadm's name for an inline config (one with `properties`): the same rule as component
/// ids, `{app}-{config name}` sanitized. Configs without properties keep their name.
pub fn inline_config_name(app: &str, config: &str) -> String {
    component_id(app, None, config)
}

fn sanitize(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// An OAM label or annotation key: `name` or `dns.prefix/name`, where the name has at most
/// 63 characters of letters, digits, `-`, `_`, `.`, starting and ending alphanumeric
/// (wadm's `valid_oam_label`).
pub fn is_valid_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(key),
    }
}

fn is_dns_subdomain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_label_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The candidate closest to `text` by edit distance, when it is close enough to be a typo.
pub fn suggest<'a>(text: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let text = text.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            // A shortened or extended name (`watch` for `watcher`) is the likeliest slip.
            let prefix = text.len() >= 3 && (c.starts_with(&text) || text.starts_with(c));
            let distance = if prefix { 0 } else { edit_distance(&text, c) };
            (distance, *c)
        })
        .filter(|(distance, c)| *distance <= 2 && distance * 2 < c.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// ` (did you mean `x`?)` or nothing.
pub fn did_you_mean(text: &str, candidates: &[&str]) -> String {
    suggest(text, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_wadm() {
        assert_eq!(
            component_id("rust-hello-world", None, "http-component"),
            "rust_hello_world-http_component"
        );
        assert_eq!(component_id("My App", None, "Echo"), "my_app-echo");
        assert_eq!(component_id("app", Some("Custom.Id"), "x"), "Custom.Id");
        assert_eq!(
            inline_config_name("app", "default-http"),
            "app-default_http"
        );
    }

    #[test]
    fn wit_identifiers() {
        for ok in ["wasi", "incoming-handler", "kv2", "HTTP", "my-API-v2"] {
            assert!(is_wit_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "x-",
            "a--b",
            "Http",
            "2fa",
            "a_b",
            "wasi:http",
            "a/b",
        ] {
            assert!(!is_wit_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("spreadscalar", &["spreadscaler", "link"]),
            Some("spreadscaler")
        );
        assert_eq!(suggest("watch", &["store", "watcher"]), Some("watcher"));
        assert_eq!(suggest("imgae", &["image", "id"]), Some("image"));
        assert_eq!(
            suggest("autoscaler", &["spreadscaler", "daemonscaler"]),
            None
        );
        assert_eq!(suggest("completely-else", &["store"]), None);
    }
}
