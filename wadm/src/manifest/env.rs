//! Environment variables in manifests, as `docker compose` does: `trellis app deploy` and
//! `trellis up` replace `${NAME}` and `${NAME:-default}` with the variable's value (the
//! default when it is unset or empty) before sending the manifest; `$$` is a literal `$`.
//! One manifest then serves a container (`mariadb:3306`) and a laptop (`127.0.0.1:3306`).
//! wadm itself stores the text as it receives it.

/// The manifest text with variables replaced; an unset variable without a default is an error
/// naming it.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                return Err(format!(
                    "unclosed `${{` in the manifest near `{}`",
                    &rest[..rest.len().min(40)]
                ));
            };
            let expression = &inner[..end];
            let (name, default) = match expression.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expression, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "`${{{expression}}}` in the manifest is not a variable: write `${{NAME}}` or \
                     `${{NAME:-default}}` (NAME of letters, digits and `_`), or `$$` for `$`"
                ));
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "the manifest uses `${{{name}}}` but {name} is not set: set it, or write \
                         `${{{name}:-default}}`"
                    ));
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// [`interpolate`] from the process environment (what the CLI does).
pub fn from_env(text: &str) -> Result<String, String> {
    interpolate(text, |name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DB" => Some("mysql://127.0.0.1/orders".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_defaults_and_dollars() {
        assert_eq!(
            interpolate("url: ${DB}, x: ${NOPE:-d}, e: ${EMPTY:-e}, $$5, a$b", env),
            Ok("url: mysql://127.0.0.1/orders, x: d, e: e, $5, a$b".into())
        );
        let missing = interpolate("url: ${NOPE}", env).unwrap_or_else(|e| e);
        assert!(missing.contains("NOPE is not set"), "{missing}");
        let bad = interpolate("x: ${a b}", env).unwrap_or_else(|e| e);
        assert!(bad.contains("is not a variable"), "{bad}");
        let open = interpolate("x: ${DB", env).unwrap_or_else(|e| e);
        assert!(open.contains("unclosed"), "{open}");
    }
}
