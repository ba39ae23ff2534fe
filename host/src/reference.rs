//! Component references: `file:///abs/path.wasm` or a plain path. Registry references
//! (`oci://…`, `ghcr.io/…`) get a clear error until OCI support lands.

use std::path::PathBuf;

/// Why a reference cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "component reference `{0}`: registry references are not supported yet; use a file path or file:///abs/path.wasm"
    )]
    Unsupported(String),
    #[error("empty component reference")]
    Empty,
}

/// The file a reference points at.
pub fn resolve(reference: &str) -> Result<PathBuf, ReferenceError> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if let Some(path) = reference.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    let looks_like_registry = reference.contains("://")
        || (!reference.starts_with('/')
            && !reference.starts_with('.')
            && reference
                .split('/')
                .next()
                .is_some_and(|host| host.contains('.') && !host.ends_with(".wasm"))
            && reference.contains(':'));
    if looks_like_registry {
        return Err(ReferenceError::Unsupported(reference.to_string()));
    }
    Ok(PathBuf::from(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_resolve_and_registries_are_named() {
        assert_eq!(
            resolve("file:///a/b.wasm").unwrap(),
            PathBuf::from("/a/b.wasm")
        );
        assert_eq!(resolve("b.wasm").unwrap(), PathBuf::from("b.wasm"));
        assert_eq!(resolve("./x/b.wasm").unwrap(), PathBuf::from("./x/b.wasm"));
        for registry in ["oci://ghcr.io/x:1", "ghcr.io/wasmcloud/http-server:0.27.0"] {
            let err = resolve(registry).unwrap_err();
            assert!(err.to_string().contains("not supported yet"), "{registry}");
        }
        assert_eq!(resolve("  ").unwrap_err(), ReferenceError::Empty);
    }
}
