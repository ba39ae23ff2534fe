//! Test support shared by the workspace's integration tests.
//!
//! - [`guest`]: the path of a guest component from `examples/`, built once per test run (the
//!   first caller runs `cargo build --release --target wasm32-wasip2` on the examples
//!   workspace; cargo's own lock makes concurrent test processes wait, and a fresh build is a
//!   no-op).
//! - [`Signer`]: an account key that signs test components with chosen grants and times.
//! - [`tamper`]: flips one byte inside the code of a wasm file.
//! - [`nats::NatsServer`]: a private `nats-server -js` per test, on a free port.
//! - [`redis::RedisServer`]: a private `redis-server` per test, on a free port.
//! - [`keyvalue`], [`sql`]: one conformance test body per capability, run against every
//!   provider of it (in-process and out-of-process).
//! - [`sql`] also makes a throw-away database per test on the MariaDB / PostgreSQL servers.

pub mod keyvalue;
pub mod nats;
pub mod redis;
pub mod sql;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use trellis_protocol::claims::{self, SignOptions};
use trellis_protocol::keys::KeyPair;
use trellis_protocol::wasm::WasmLayout;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds the guest components (once per process) and returns the output directory.
pub fn guest_dir() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_guests().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_guests() -> anyhow::Result<PathBuf> {
    let examples = repo_root().join("examples");
    let target_dir = examples.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        .arg("--manifest-path")
        .arg(examples.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("cannot run cargo to build the guest components")?;
    if !status.success() {
        bail!(
            "building the guest components failed ({status}); is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`"
        );
    }
    Ok(target_dir.join("wasm32-wasip2").join("release"))
}

/// The bytes of a built guest component, e.g. `guest("http_hello")`.
pub fn guest(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = guest_dir()?.join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The executable of a first-party provider (`provider_binary("keyvalue-nats")` →
/// `trellis-provider-keyvalue-nats`), for tests that run providers as their own processes.
///
/// `cargo test --workspace` (and `scripts/test`, which builds every binary first) leaves them
/// next to the test executables; when one is missing, it is built once into
/// `target/provider-bins` (a separate target directory, so the build never waits on the lock
/// of the running `cargo test`).
pub fn provider_binary(name: &str) -> anyhow::Result<PathBuf> {
    let file = format!("trellis-provider-{name}");
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(&file)));
    if let Some(path) = beside.filter(|p| p.is_file()) {
        return Ok(path);
    }
    static BUILT: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let target_dir = repo_root().join("target").join("provider-bins");
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if !built.contains(&file) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", &file, "--bin", &file])
            .arg("--manifest-path")
            .arg(repo_root().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .context("cannot run cargo to build a provider")?;
        if !status.success() {
            bail!("building provider {file} failed ({status})");
        }
        built.push(file.clone());
    }
    Ok(target_dir.join("debug").join(file))
}

/// An account key that signs test components.
pub struct Signer {
    pub account: KeyPair,
}

impl Default for Signer {
    fn default() -> Self {
        Self::new()
    }
}

impl Signer {
    pub fn new() -> Self {
        Self {
            account: KeyPair::new_account(),
        }
    }

    pub fn public_key(&self) -> String {
        self.account.public_key()
    }

    pub fn seed(&self) -> String {
        self.account.seed().unwrap_or_default()
    }

    /// Signs `wasm` as `name` with the given grants, valid from now on.
    pub fn sign(&self, wasm: &[u8], name: &str, grants: &[&str]) -> anyhow::Result<Vec<u8>> {
        self.sign_with(
            wasm,
            SignOptions {
                name: name.into(),
                grants: grants.iter().map(|g| g.to_string()).collect(),
                ..Default::default()
            },
            claims::now_secs(),
        )
    }

    /// Signs with full control of the options and of "now".
    pub fn sign_with(
        &self,
        wasm: &[u8],
        options: SignOptions,
        now: u64,
    ) -> anyhow::Result<Vec<u8>> {
        Ok(claims::sign(
            wasm,
            &self.account,
            &KeyPair::new_module(),
            &options,
            now,
        )?)
    }

    /// Claims that expired an hour ago.
    pub fn sign_expired(&self, wasm: &[u8], name: &str) -> anyhow::Result<Vec<u8>> {
        let options = SignOptions {
            name: name.into(),
            expires_in: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        self.sign_with(wasm, options, claims::now_secs() - 3600)
    }

    /// Claims valid only from an hour from now.
    pub fn sign_not_yet_valid(&self, wasm: &[u8], name: &str) -> anyhow::Result<Vec<u8>> {
        let options = SignOptions {
            name: name.into(),
            not_before: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        self.sign_with(wasm, options, claims::now_secs())
    }
}

/// Flips one byte in the middle of the largest non-custom section (the code), keeping the
/// section framing intact so the file still parses.
pub fn tamper(wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
    let layout = WasmLayout::parse(wasm)?;
    let section = layout
        .sections
        .iter()
        .filter(|s| s.id != 0)
        .max_by_key(|s| s.range.len())
        .context("no code section to tamper with")?;
    let mut out = wasm.to_vec();
    let middle = section.range.start + section.range.len() / 2;
    out[middle] ^= 0x01;
    Ok(out)
}

/// A minimal core module (not a component).
pub const CORE_MODULE_WAT: &str = r#"(module (func (export "_start")))"#;
