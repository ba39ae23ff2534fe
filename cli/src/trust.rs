//! The flags that decide which components a host runs and where it caches their code, shared
//! by `trellis run` and `trellis host`.

use std::path::PathBuf;

use trellis_host::{RuntimeConfig, TrustPolicy, TrustedIssuers};
use trellis_protocol::keys::{KeyKind, is_public_key_of};

#[derive(clap::Args, Debug)]
pub struct TrustArgs {
    /// Account public key (`A…`) whose signatures are trusted; repeatable.
    #[arg(
        long = "trusted-issuer",
        env = "TRELLIS_TRUSTED_ISSUERS",
        value_delimiter = ','
    )]
    trusted_issuers: Vec<String>,
    /// Run unsigned components (development only; loudly logged).
    #[arg(long, env = "TRELLIS_ALLOW_UNSIGNED")]
    allow_unsigned: bool,
    /// Directory of compiled artifacts (default: the user cache dir, `trellis/compiled`).
    #[arg(long, env = "TRELLIS_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile on every start instead of using the artifact cache.
    #[arg(long, env = "TRELLIS_NO_CACHE")]
    no_cache: bool,
}

impl TrustArgs {
    /// The same trust as flags for a `trellis host` child process.
    pub fn child_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for issuer in &self.trusted_issuers {
            args.extend(["--trusted-issuer".to_string(), issuer.clone()]);
        }
        if self.allow_unsigned {
            args.push("--allow-unsigned".into());
        }
        if let Some(dir) = &self.cache_dir {
            args.extend(["--cache-dir".to_string(), dir.display().to_string()]);
        }
        if self.no_cache {
            args.push("--no-cache".into());
        }
        args
    }

    /// A runtime config with this trust policy and cache (other settings default).
    pub fn runtime_config(&self) -> anyhow::Result<RuntimeConfig> {
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(default_cache_dir)
        };
        Ok(RuntimeConfig {
            cache_dir,
            trust: trust_policy(&self.trusted_issuers, self.allow_unsigned)?,
            ..RuntimeConfig::default()
        })
    }
}

fn trust_policy(issuers: &[String], allow_unsigned: bool) -> anyhow::Result<TrustPolicy> {
    for issuer in issuers {
        if !is_public_key_of(issuer, KeyKind::Account) {
            anyhow::bail!(
                "--trusted-issuer `{issuer}` is not an account public key (it starts with `A`; `trellis keys gen account` prints one)"
            );
        }
    }
    Ok(TrustPolicy {
        issuers: TrustedIssuers::Only(issuers.iter().cloned().collect()),
        allow_unsigned,
    })
}

/// The user's cache dir; never a shared temporary directory, where another user could plant
/// artifacts (which are native code).
fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("trellis").join("compiled"))
}
