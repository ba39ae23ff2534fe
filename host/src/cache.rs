//! Compiled artifacts on disk, keyed by component hash.
//!
//! Compiling a component with Cranelift takes from tens of milliseconds to seconds; loading a
//! precompiled artifact takes about a millisecond. The key is the SHA-256 of the component
//! bytes plus wasmtime's compatibility hash of the engine settings, so a different wasmtime
//! version or engine configuration never loads a stale artifact. Each artifact is written to a
//! temporary file and renamed into place (a crash never leaves a half-written artifact) and a
//! `.sha256` sidecar is checked before loading, so a corrupted file is recompiled, not trusted.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from: the cache or a fresh compilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    Disabled,
}

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// Opens (creating it with mode 0700) a cache directory. Loading an artifact runs native
    /// code, so the directory must belong to this user and be writable by nobody else;
    /// otherwise this fails and the host compiles without a cache.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        secure_dir(&dir)?;
        Ok(Self { dir })
    }

    fn paths(&self, engine: &Engine, code_hash: &str) -> (PathBuf, PathBuf) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let key = format!(
            "{}-{:016x}",
            code_hash.to_ascii_lowercase(),
            hasher.finish()
        );
        (
            self.dir.join(format!("{key}.cwasm")),
            self.dir.join(format!("{key}.sha256")),
        )
    }

    /// Loads the component whose code hashes to `code_hash` from the cache, or compiles
    /// `bytes` and stores the result.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        code_hash: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let (artifact, checksum) = self.paths(engine, code_hash);
        if let Some(component) = load_verified(engine, &artifact, &checksum) {
            return Ok((component, CacheOutcome::Hit));
        }
        let serialized = engine.precompile_component(bytes)?;
        if let Err(e) = store(&self.dir, &artifact, &checksum, &serialized) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the compiled-artifact cache; continuing without it");
        }
        let component = deserialize(engine, &serialized)?;
        Ok((component, CacheOutcome::Miss))
    }
}

#[cfg(unix)]
fn secure_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    // A file we create is owned by our effective uid.
    let probe = tempfile::NamedTempFile::new_in(dir)?;
    let me = probe.as_file().metadata()?.uid();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a directory owned by this user and not writable by group or others (chmod 700)",
                dir.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn secure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn load_verified(engine: &Engine, artifact: &Path, checksum: &Path) -> Option<Component> {
    let expected = std::fs::read_to_string(checksum).ok()?;
    let data = std::fs::read(artifact).ok()?;
    if hex::encode(Sha256::digest(&data)) != expected.trim() {
        tracing::warn!(path = %artifact.display(), "cached artifact does not match its checksum; recompiling");
        return None;
    }
    match deserialize(engine, &data) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %artifact.display(), error = %e, "cached artifact unusable; recompiling");
            None
        }
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, data: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `data` is either what `Engine::precompile_component` just returned, or an
    // artifact read from a cache directory that only this user can write (checked in
    // `ArtifactCache::open`), whose SHA-256 matches the sidecar written with it (which
    // catches corruption, not an attacker who can already write as this user). wasmtime
    // additionally checks the artifact's version and engine compatibility.
    unsafe { Component::deserialize(engine, data) }
}

/// Writes through uniquely named temporary files (no symlink following) and renames them
/// into place, so readers never see a partial artifact.
fn store(dir: &Path, artifact: &Path, checksum: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let write = |target: &Path, bytes: &[u8]| -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.persist(target).map_err(|e| e.error)?;
        Ok(())
    };
    write(artifact, data)?;
    write(checksum, hex::encode(Sha256::digest(data)).as_bytes())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = ArtifactCache::open(&shared).unwrap_err();
        assert!(err.to_string().contains("chmod 700"), "{err}");
        let private = root.path().join("a/b/private");
        ArtifactCache::open(&private).unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "created with mode {mode:o}");
    }

    #[test]
    fn a_corrupted_artifact_is_recompiled_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path().join("c")).unwrap();
        let engine = Engine::default();
        let wasm = wat::parse_str("(component)").unwrap();
        let (_, first) = cache.load_or_compile(&engine, &wasm, "AB").unwrap();
        assert_eq!(first, CacheOutcome::Miss);
        let (_, second) = cache.load_or_compile(&engine, &wasm, "AB").unwrap();
        assert_eq!(second, CacheOutcome::Hit);
        let (artifact, _) = cache.paths(&engine, "AB");
        let mut bytes = std::fs::read(&artifact).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&artifact, bytes).unwrap();
        let (_, third) = cache.load_or_compile(&engine, &wasm, "AB").unwrap();
        assert_eq!(third, CacheOutcome::Miss);
    }
}
