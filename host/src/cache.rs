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
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn paths(&self, engine: &Engine, bytes: &[u8]) -> (PathBuf, PathBuf) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let key = format!(
            "{}-{:016x}",
            hex::encode(Sha256::digest(bytes)),
            hasher.finish()
        );
        (
            self.dir.join(format!("{key}.cwasm")),
            self.dir.join(format!("{key}.sha256")),
        )
    }

    /// Loads `bytes` from the cache, or compiles and stores them.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let (artifact, checksum) = self.paths(engine, bytes);
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
    // SAFETY: `data` is either what `Engine::precompile_component` just returned, or an artifact
    // this cache wrote into its own directory whose SHA-256 matches the sidecar written with it.
    // wasmtime additionally checks the artifact's version and engine compatibility.
    unsafe { Component::deserialize(engine, data) }
}

fn store(dir: &Path, artifact: &Path, checksum: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = artifact.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, artifact)?;
    let tmp = checksum.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, hex::encode(Sha256::digest(data)))?;
    std::fs::rename(&tmp, checksum)
}
