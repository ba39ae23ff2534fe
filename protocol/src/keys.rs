//! Key kinds and seed loading.
//!
//! Trellis identities are nkeys (ed25519). The first letter of a public key names its role:
//! `A` account (signs components and providers), `M` module (a component's subject), `V`
//! service (a provider's subject), `N` server (a host), `U` user (a NATS client).

use std::fmt;
use std::str::FromStr;

pub use nkeys::KeyPair;

/// The role of a key pair, as printed by `trellis keys gen <kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Account,
    Module,
    Service,
    Server,
    User,
}

impl KeyKind {
    /// All kinds, in the order the CLI lists them.
    pub const ALL: [KeyKind; 5] = [
        KeyKind::Account,
        KeyKind::Module,
        KeyKind::Service,
        KeyKind::Server,
        KeyKind::User,
    ];

    /// A fresh random key pair of this kind.
    pub fn generate(self) -> KeyPair {
        match self {
            KeyKind::Account => KeyPair::new_account(),
            KeyKind::Module => KeyPair::new_module(),
            KeyKind::Service => KeyPair::new_service(),
            KeyKind::Server => KeyPair::new_server(),
            KeyKind::User => KeyPair::new_user(),
        }
    }

    /// The first character of a public key of this kind.
    pub fn public_prefix(self) -> char {
        match self {
            KeyKind::Account => 'A',
            KeyKind::Module => 'M',
            KeyKind::Service => 'V',
            KeyKind::Server => 'N',
            KeyKind::User => 'U',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Account => "account",
            KeyKind::Module => "module",
            KeyKind::Service => "service",
            KeyKind::Server => "server",
            KeyKind::User => "user",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown key kind name.
#[derive(Debug, thiserror::Error)]
#[error("unknown key kind `{0}`: expected one of account, module, service, server, user")]
pub struct UnknownKeyKind(String);

impl FromStr for KeyKind {
    type Err = UnknownKeyKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownKeyKind(s.to_string()))
    }
}

/// Why a seed could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("invalid nkey seed: {0} (a seed starts with `S`, e.g. `SA…` for an account)")]
    Invalid(String),
    #[error("the seed is a {actual} key, but a {expected} key is needed here")]
    WrongKind { expected: KeyKind, actual: String },
}

/// Parses a seed and checks that it is of the expected kind.
pub fn key_pair_from_seed(seed: &str, expected: KeyKind) -> Result<KeyPair, SeedError> {
    let kp = KeyPair::from_seed(seed.trim()).map_err(|e| SeedError::Invalid(e.to_string()))?;
    let public = kp.public_key();
    if !public.starts_with(expected.public_prefix()) {
        let actual = KeyKind::ALL
            .into_iter()
            .find(|k| public.starts_with(k.public_prefix()))
            .map(|k| k.name().to_string())
            .unwrap_or_else(|| format!("`{}…`", &public[..1]));
        return Err(SeedError::WrongKind { expected, actual });
    }
    Ok(kp)
}

/// Checks that `key` is a well-formed public key of the given kind.
pub fn is_public_key_of(key: &str, kind: KeyKind) -> bool {
    key.starts_with(kind.public_prefix()) && KeyPair::from_public_key(key).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_their_prefix_and_round_trip_through_seed() {
        for kind in KeyKind::ALL {
            let kp = kind.generate();
            assert!(kp.public_key().starts_with(kind.public_prefix()), "{kind}");
            let seed = kp.seed().unwrap();
            let again = key_pair_from_seed(&seed, kind).unwrap();
            assert_eq!(again.public_key(), kp.public_key());
            assert!(is_public_key_of(&kp.public_key(), kind));
        }
    }

    #[test]
    fn wrong_kind_of_seed_is_named() {
        let seed = KeyKind::Module.generate().seed().unwrap();
        let err = key_pair_from_seed(&seed, KeyKind::Account).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the seed is a module key, but a account key is needed here"
        );
        assert!(key_pair_from_seed("not a seed", KeyKind::Account).is_err());
    }
}
