//! Signed component claims (wascap-compatible).
//!
//! A signed component carries a JWT in a custom section named `wasmcloud_jwt`. The JWT is
//! signed (ed25519, nkeys) by an **account** key (`iss`, `A…`) and names the component's
//! **module** key as its subject (`sub`, `M…`). Its `wascap` object holds the component's name,
//! version, tags, the SHA-256 `hash` of the component *without* the `wasmcloud_jwt` section, and
//! `caps`: the WIT interfaces the component is **granted** (`wasi:keyvalue/atomics`,
//! `wasi:http/outgoing-handler`, or a whole package with `wasi:keyvalue/*`).
//!
//! [`sign`] embeds claims; [`verify`] checks, in this order, framing, presence, signature, hash,
//! time window and issuer trust, and returns the first failure as a [`ClaimsError`] whose
//! message says what is wrong and how to fix it.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{KeyKind, is_public_key_of};
use crate::wasm::{WasmError, WasmKind, WasmLayout, append_custom_section, strip_custom_section};

/// The custom section that holds the claims JWT.
pub const JWT_SECTION: &str = "wasmcloud_jwt";
/// The wascap claims revision Trellis writes.
pub const WASCAP_REVISION: u32 = 3;

const JWT_HEADER: &str = r#"{"typ":"jwt","alg":"Ed25519"}"#;

/// The JWT claims of a signed component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    pub jti: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// The issuing account's public key (`A…`).
    pub iss: String,
    /// The component's module public key (`M…`).
    pub sub: String,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub wascap: ComponentMetadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wascap_revision: Option<u32>,
}

/// The `wascap` object of component claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Upper-case hex SHA-256 of the component without its `wasmcloud_jwt` section.
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_alias: Option<String>,
    /// Granted capabilities: WIT interfaces as `ns:pkg/iface` or `ns:pkg/*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
}

impl Claims {
    /// The component's name, or its subject key when it has none.
    pub fn name(&self) -> &str {
        self.wascap.name.as_deref().unwrap_or(&self.sub)
    }

    /// The granted interfaces.
    pub fn grants(&self) -> &[String] {
        self.wascap.caps.as_deref().unwrap_or_default()
    }

    /// Whether `interface` (`ns:pkg/iface`, any `@version` ignored) is granted.
    pub fn grants_interface(&self, interface: &str) -> bool {
        self.grants().iter().any(|g| grant_covers(g, interface))
    }
}

/// Whether the grant `grant` (`ns:pkg/iface`, `ns:pkg/*` or `ns:pkg`) covers `interface`.
/// Versions on either side are ignored: a grant is for an interface, not a release of it.
pub fn grant_covers(grant: &str, interface: &str) -> bool {
    let grant = strip_version(grant);
    let interface = strip_version(interface);
    if grant == interface {
        return true;
    }
    let package = grant.strip_suffix("/*").unwrap_or(grant);
    !package.contains('/')
        && interface
            .strip_prefix(package)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `ns:pkg/iface@1.2.3` → `ns:pkg/iface`.
pub fn strip_version(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// What to put in new claims.
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    pub name: String,
    pub grants: Vec<String>,
    pub tags: Vec<String>,
    pub rev: Option<i32>,
    pub ver: Option<String>,
    /// Claims expire this long after `now`.
    pub expires_in: Option<Duration>,
    /// Claims become valid this long after `now`.
    pub not_before: Option<Duration>,
}

/// How a host decides which issuers it trusts.
#[derive(Debug, Clone)]
pub enum TrustedIssuers {
    /// Any issuer (used by `trellis claims inspect`, which checks integrity only).
    Any,
    /// Only these account public keys.
    Only(BTreeSet<String>),
}

/// The verification policy of a host.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub issuers: TrustedIssuers,
    /// Accept components with no claims at all (development only).
    pub allow_unsigned: bool,
}

/// A component that passed verification.
#[derive(Debug, Clone)]
pub struct Verified {
    pub kind: WasmKind,
    /// Upper-case hex SHA-256 of the component without its claims section.
    pub hash: String,
    /// `None` only when the policy allows unsigned components and this one is.
    pub claims: Option<Claims>,
}

/// Why claims could not be made, read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error(transparent)]
    Wasm(#[from] WasmError),
    #[error(
        "component is not signed (it has no `{JWT_SECTION}` section): sign it with `trellis claims sign`, or pass --allow-unsigned for development"
    )]
    Unsigned,
    #[error("malformed claims JWT in the `{JWT_SECTION}` section: {0}")]
    Malformed(String),
    #[error(
        "invalid claims signature: the JWT is not signed by its issuer {issuer}; the claims were altered after signing, re-sign the component"
    )]
    BadSignature { issuer: String },
    #[error(
        "component hash mismatch: the claims were signed for code with SHA-256 {claimed}, but this file's code hashes to {actual}; it was modified after signing, re-sign it"
    )]
    HashMismatch { claimed: String, actual: String },
    #[error("claims expired at {at} ({ago} ago); re-sign the component with a later --expires-in")]
    Expired { at: String, ago: String },
    #[error(
        "claims are not valid yet: not before {at} (in {wait}); wait, or re-sign without --not-before"
    )]
    NotYetValid { at: String, wait: String },
    #[error(
        "issuer {issuer} is not trusted by this host; trust it with --trusted-issuer {issuer} (env TRELLIS_TRUSTED_ISSUERS)"
    )]
    UntrustedIssuer { issuer: String },
    #[error("cannot sign: {0}")]
    Signing(String),
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The section name older wascap versions used for claims; stripped before hashing too.
const LEGACY_JWT_SECTION: &str = "jwt";

/// `wasm` without any (current or legacy) claims section: the bytes the hash covers.
fn without_claims(wasm: &[u8]) -> Result<Vec<u8>, ClaimsError> {
    let stripped = strip_custom_section(wasm, JWT_SECTION)?;
    Ok(strip_custom_section(&stripped, LEGACY_JWT_SECTION)?)
}

/// SHA-256 (upper-case hex) of `wasm` without its claims section.
pub fn code_hash(wasm: &[u8]) -> Result<String, ClaimsError> {
    Ok(hex::encode_upper(Sha256::digest(without_claims(wasm)?)))
}

/// The latest time claims can carry: 9999-12-31T23:59:59Z.
const MAX_TIME: u64 = 253_402_300_799;

fn time_after(now: u64, offset: Option<Duration>, flag: &str) -> Result<Option<u64>, ClaimsError> {
    offset
        .map(|d| {
            now.checked_add(d.as_secs())
                .filter(|t| *t <= MAX_TIME)
                .ok_or_else(|| ClaimsError::Signing(format!("{flag} reaches past the year 9999")))
        })
        .transpose()
}

/// Signs `wasm` (a component or core module), replacing any claims it already has.
pub fn sign(
    wasm: &[u8],
    issuer: &KeyPair,
    subject: &KeyPair,
    options: &SignOptions,
    now: u64,
) -> Result<Vec<u8>, ClaimsError> {
    if !is_public_key_of(&issuer.public_key(), KeyKind::Account) {
        return Err(ClaimsError::Signing(
            "the issuer must be an account key (seed `SA…`)".into(),
        ));
    }
    let sub = subject.public_key();
    if !is_public_key_of(&sub, KeyKind::Module) && !is_public_key_of(&sub, KeyKind::Service) {
        return Err(ClaimsError::Signing(
            "the subject must be a module key (`SM…`) or a service key (`SV…`)".into(),
        ));
    }
    let exp = time_after(now, options.expires_in, "--expires-in")?;
    let nbf = time_after(now, options.not_before, "--not-before")?;
    let mut out = without_claims(wasm)?;
    let hash = hex::encode_upper(Sha256::digest(&out));
    let claims = Claims {
        exp,
        jti: hex::encode(rand::random::<[u8; 16]>()),
        iat: now,
        iss: issuer.public_key(),
        sub,
        nbf,
        wascap: ComponentMetadata {
            name: Some(options.name.clone()),
            hash,
            tags: (!options.tags.is_empty()).then(|| options.tags.clone()),
            rev: options.rev,
            ver: options.ver.clone(),
            call_alias: None,
            caps: Some(options.grants.clone()),
        },
        wascap_revision: Some(WASCAP_REVISION),
    };
    let jwt = encode_jwt(&claims, issuer)?;
    append_custom_section(&mut out, JWT_SECTION, jwt.as_bytes());
    Ok(out)
}

fn encode_jwt(claims: &Claims, issuer: &KeyPair) -> Result<String, ClaimsError> {
    let body = serde_json::to_vec(claims).map_err(|e| ClaimsError::Signing(e.to_string()))?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(JWT_HEADER),
        URL_SAFE_NO_PAD.encode(body)
    );
    let sig = issuer
        .sign(signing_input.as_bytes())
        .map_err(|e| ClaimsError::Signing(e.to_string()))?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// The claims embedded in `wasm`, decoded but **not verified**, with the raw JWT.
pub fn read(wasm: &[u8]) -> Result<Option<(String, Claims)>, ClaimsError> {
    let layout = WasmLayout::parse(wasm)?;
    let Some(section) = layout.custom_section(JWT_SECTION) else {
        return Ok(None);
    };
    let jwt = std::str::from_utf8(section)
        .map_err(|_| ClaimsError::Malformed("the section is not UTF-8 text".into()))?;
    let claims = decode_jwt(jwt)?.0;
    Ok(Some((jwt.to_string(), claims)))
}

/// Splits and decodes a JWT; returns the claims, the signing input and the signature.
fn decode_jwt(jwt: &str) -> Result<(Claims, &str, Vec<u8>), ClaimsError> {
    let malformed = |what: &str| ClaimsError::Malformed(what.to_string());
    let (signing_input, sig) = jwt
        .trim()
        .rsplit_once('.')
        .ok_or_else(|| malformed("expected three `.`-separated parts"))?;
    let (header, body) = signing_input
        .split_once('.')
        .ok_or_else(|| malformed("expected three `.`-separated parts"))?;
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|e| ClaimsError::Malformed(format!("header is not base64url: {e}")))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| ClaimsError::Malformed(format!("header is not JSON: {e}")))?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("Ed25519") {
        return Err(malformed("header `alg` must be `Ed25519`"));
    }
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| ClaimsError::Malformed(format!("claims are not base64url: {e}")))?;
    let claims: Claims = serde_json::from_slice(&body).map_err(|e| {
        ClaimsError::Malformed(format!("claims do not match the wascap shape: {e}"))
    })?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|e| ClaimsError::Malformed(format!("signature is not base64url: {e}")))?;
    Ok((claims, signing_input, sig))
}

/// Verifies `wasm` against `policy` at time `now` (seconds since the Unix epoch).
pub fn verify(wasm: &[u8], policy: &TrustPolicy, now: u64) -> Result<Verified, ClaimsError> {
    let layout = WasmLayout::parse(wasm)?;
    let kind = layout.kind;
    let actual = code_hash(wasm)?;
    let Some(section) = layout.custom_section(JWT_SECTION) else {
        return if policy.allow_unsigned {
            Ok(Verified {
                kind,
                hash: actual,
                claims: None,
            })
        } else {
            Err(ClaimsError::Unsigned)
        };
    };
    let jwt = std::str::from_utf8(section)
        .map_err(|_| ClaimsError::Malformed("the section is not UTF-8 text".into()))?;
    let (claims, signing_input, sig) = decode_jwt(jwt)?;

    let issuer = KeyPair::from_public_key(&claims.iss).map_err(|_| {
        ClaimsError::Malformed(format!("`iss` {:?} is not a public key", claims.iss))
    })?;
    if !is_public_key_of(&claims.iss, KeyKind::Account) {
        return Err(ClaimsError::Malformed(format!(
            "`iss` {} is not an account key (`A…`)",
            claims.iss
        )));
    }
    issuer
        .verify(signing_input.as_bytes(), &sig)
        .map_err(|_| ClaimsError::BadSignature {
            issuer: claims.iss.clone(),
        })?;
    if let TrustedIssuers::Only(trusted) = &policy.issuers
        && !trusted.contains(&claims.iss)
    {
        return Err(ClaimsError::UntrustedIssuer {
            issuer: claims.iss.clone(),
        });
    }

    if !claims.wascap.hash.eq_ignore_ascii_case(&actual) {
        return Err(ClaimsError::HashMismatch {
            claimed: claims.wascap.hash.clone(),
            actual,
        });
    }
    if let Some(exp) = claims.exp.filter(|exp| *exp <= now) {
        return Err(ClaimsError::Expired {
            at: format_time(exp),
            ago: format_secs(now - exp),
        });
    }
    if let Some(nbf) = claims.nbf.filter(|nbf| *nbf > now) {
        return Err(ClaimsError::NotYetValid {
            at: format_time(nbf),
            wait: format_secs(nbf - now),
        });
    }
    Ok(Verified {
        kind,
        hash: actual,
        claims: Some(claims),
    })
}

/// RFC 3339 time of `secs` since the Unix epoch (the raw number past the year 9999, which
/// claims from elsewhere may carry).
pub fn format_time(secs: u64) -> String {
    if secs > MAX_TIME {
        return format!("{secs} (seconds since 1970, past the year 9999)");
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn format_secs(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn component() -> Vec<u8> {
        // The smallest valid component: preamble plus one custom section.
        let mut c = b"\0asm\x0d\x00\x01\x00".to_vec();
        append_custom_section(&mut c, "producers", b"x");
        c
    }

    fn keys() -> (KeyPair, KeyPair) {
        (KeyPair::new_account(), KeyPair::new_module())
    }

    fn policy_trusting(issuer: &KeyPair) -> TrustPolicy {
        TrustPolicy {
            issuers: TrustedIssuers::Only([issuer.public_key()].into()),
            allow_unsigned: false,
        }
    }

    fn signed(options: &SignOptions) -> (Vec<u8>, KeyPair) {
        let (account, module) = keys();
        let wasm = sign(&component(), &account, &module, options, NOW).unwrap();
        (wasm, account)
    }

    fn opts() -> SignOptions {
        SignOptions {
            name: "hello".into(),
            grants: vec!["wasi:config/store".into(), "wasi:keyvalue/*".into()],
            ..Default::default()
        }
    }

    #[test]
    fn sign_then_verify_round_trips_claims() {
        let (wasm, account) = signed(&opts());
        let v = verify(&wasm, &policy_trusting(&account), NOW).unwrap();
        let claims = v.claims.unwrap();
        assert_eq!(v.kind, WasmKind::Component);
        assert_eq!(claims.name(), "hello");
        assert_eq!(claims.iss, account.public_key());
        assert!(claims.sub.starts_with('M'));
        assert_eq!(claims.wascap.hash, code_hash(&component()).unwrap());
        assert!(claims.grants_interface("wasi:config/store@0.2.0-draft"));
        assert!(claims.grants_interface("wasi:keyvalue/atomics"));
        assert!(!claims.grants_interface("wasi:http/outgoing-handler"));
        let (jwt, read_back) = read(&wasm).unwrap().unwrap();
        assert_eq!(read_back, claims);
        assert_eq!(jwt.split('.').count(), 3);
    }

    #[test]
    fn re_signing_replaces_the_old_claims() {
        let (wasm, _) = signed(&opts());
        let (account, module) = keys();
        let again = sign(&wasm, &account, &module, &opts(), NOW).unwrap();
        let layout = WasmLayout::parse(&again).unwrap();
        let n = layout
            .sections
            .iter()
            .filter(|s| s.custom_name == Some(JWT_SECTION))
            .count();
        assert_eq!(n, 1);
        verify(&again, &policy_trusting(&account), NOW).unwrap();
    }

    #[test]
    fn unsigned_is_refused_unless_allowed() {
        let (account, _) = keys();
        let mut policy = policy_trusting(&account);
        assert_eq!(
            verify(&component(), &policy, NOW).unwrap_err(),
            ClaimsError::Unsigned
        );
        policy.allow_unsigned = true;
        assert!(verify(&component(), &policy, NOW).unwrap().claims.is_none());
    }

    #[test]
    fn a_changed_byte_of_code_is_a_hash_mismatch() {
        let (mut wasm, account) = signed(&opts());
        // The `producers` payload byte `x` is part of the hashed code.
        let pos = wasm.iter().position(|b| *b == b'x').unwrap();
        wasm[pos] = b'y';
        let err = verify(&wasm, &policy_trusting(&account), NOW).unwrap_err();
        assert!(matches!(err, ClaimsError::HashMismatch { .. }), "{err}");
        assert!(err.to_string().contains("hash mismatch"));
    }

    #[test]
    fn altered_claims_fail_the_signature() {
        let (wasm, account) = signed(&opts());
        let (jwt, _) = read(&wasm).unwrap().unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["wascap"]["caps"] = serde_json::json!(["wasi:http/*"]);
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
            parts[2]
        );
        let mut tampered = strip_custom_section(&wasm, JWT_SECTION).unwrap();
        append_custom_section(&mut tampered, JWT_SECTION, forged.as_bytes());
        let err = verify(&tampered, &policy_trusting(&account), NOW).unwrap_err();
        assert!(matches!(err, ClaimsError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn time_window_is_enforced() {
        let expiring = SignOptions {
            expires_in: Some(Duration::from_secs(60)),
            ..opts()
        };
        let (wasm, account) = signed(&expiring);
        let policy = policy_trusting(&account);
        assert!(verify(&wasm, &policy, NOW + 59).is_ok());
        let err = verify(&wasm, &policy, NOW + 120).unwrap_err();
        assert!(err.to_string().contains("expired at"), "{err}");

        let later = SignOptions {
            not_before: Some(Duration::from_secs(3600)),
            ..opts()
        };
        let (wasm, account) = signed(&later);
        let err = verify(&wasm, &policy_trusting(&account), NOW).unwrap_err();
        assert!(matches!(err, ClaimsError::NotYetValid { .. }), "{err}");
        assert!(err.to_string().contains("in 1h"), "{err}");
    }

    #[test]
    fn absurd_times_are_refused_when_signing_and_shown_when_read() {
        let far = SignOptions {
            expires_in: Some(Duration::from_secs(u64::MAX / 2)),
            ..opts()
        };
        let (account, module) = keys();
        let err = sign(&component(), &account, &module, &far, NOW).unwrap_err();
        assert!(err.to_string().contains("year 9999"), "{err}");
        assert!(format_time(u64::MAX).contains("past the year 9999"));
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_forged_far_future_not_before_is_an_error_not_a_panic() {
        let (account, module) = keys();
        let mut claims = read(&sign(&component(), &account, &module, &opts(), NOW).unwrap())
            .unwrap()
            .unwrap()
            .1;
        claims.nbf = Some(u64::MAX);
        let mut wasm = without_claims(&component()).unwrap();
        let jwt = encode_jwt(&claims, &account).unwrap();
        append_custom_section(&mut wasm, JWT_SECTION, jwt.as_bytes());
        let err = verify(&wasm, &policy_trusting(&account), NOW).unwrap_err();
        assert!(matches!(err, ClaimsError::NotYetValid { .. }), "{err}");
    }

    #[test]
    fn legacy_jwt_sections_do_not_count_in_the_hash() {
        let mut with_legacy = component();
        append_custom_section(&mut with_legacy, "jwt", b"old");
        assert_eq!(
            code_hash(&with_legacy).unwrap(),
            code_hash(&component()).unwrap()
        );
    }

    #[test]
    fn untrusted_issuer_is_named() {
        let (wasm, account) = signed(&opts());
        let other = KeyPair::new_account();
        let err = verify(&wasm, &policy_trusting(&other), NOW).unwrap_err();
        assert_eq!(
            err,
            ClaimsError::UntrustedIssuer {
                issuer: account.public_key()
            }
        );
        let any = TrustPolicy {
            issuers: TrustedIssuers::Any,
            allow_unsigned: false,
        };
        assert!(verify(&wasm, &any, NOW).is_ok());
    }

    #[test]
    fn garbage_in_the_claims_section_is_malformed_not_a_panic() {
        for payload in [&b""[..], b"a.b", b"a.b.c", b"\xff\xfe", b"e30.e30.AA"] {
            let mut wasm = component();
            append_custom_section(&mut wasm, JWT_SECTION, payload);
            let err = verify(&wasm, &policy_trusting(&KeyPair::new_account()), NOW).unwrap_err();
            assert!(
                matches!(err, ClaimsError::Malformed(_)),
                "{payload:?}: {err}"
            );
        }
    }

    #[test]
    fn verify_never_panics_on_any_single_bit_flip() {
        let (wasm, account) = signed(&opts());
        let policy = policy_trusting(&account);
        let mut rejected = 0;
        for i in 0..wasm.len() {
            for bit in [0, 3, 7] {
                let mut flipped = wasm.clone();
                flipped[i] ^= 1 << bit;
                if verify(&flipped, &policy, NOW).is_err() {
                    rejected += 1;
                }
            }
        }
        // Every flip lands in the preamble, the code or the signed JWT: all are caught.
        assert_eq!(rejected, wasm.len() * 3);
    }

    #[test]
    fn grants_match_interfaces_packages_and_ignore_versions() {
        assert!(grant_covers(
            "wasi:keyvalue/store",
            "wasi:keyvalue/store@0.2.0-draft"
        ));
        assert!(grant_covers("wasi:keyvalue/*", "wasi:keyvalue/atomics"));
        assert!(grant_covers("wasi:keyvalue", "wasi:keyvalue/batch"));
        assert!(!grant_covers("wasi:keyvalue/*", "wasi:keyvaluex/store"));
        assert!(!grant_covers(
            "wasi:keyvalue/store",
            "wasi:keyvalue/atomics"
        ));
        assert!(!grant_covers(
            "wasi:http/incoming-handler",
            "wasi:http/outgoing-handler"
        ));
    }

    #[test]
    fn signing_refuses_wrong_key_kinds() {
        let module = KeyPair::new_module();
        let err = sign(&component(), &module, &module, &opts(), NOW).unwrap_err();
        assert!(err.to_string().contains("account key"), "{err}");
        let account = KeyPair::new_account();
        let err = sign(&component(), &account, &account, &opts(), NOW).unwrap_err();
        assert!(err.to_string().contains("module key"), "{err}");
    }
}
