//! Connecting to the lattice's NATS: credentials, TLS, and errors that say what to fix.
//!
//! Every Trellis process that joins a lattice (a host, the CLI, wadm) connects the same way:
//! fill in a [`NatsConnect`] from the command line and call [`NatsConnect::connect`].
//!
//! **Credentials** (DESIGN.md §3), at most one of:
//! - `creds_file`: a `.creds` file as written by `nsc generate creds`, holding a user JWT
//!   (signed by an account, itself signed by the server's operator) and the user's nkey seed.
//!   The server checks the JWT chain; the seed signs the server's nonce.
//! - `nkey_seed`: a bare user nkey seed (`SU…`, as printed by `trellis keys gen user`), or
//!   `@path` to a file holding one; the server lists the public key (`U…`) in its
//!   `authorization { users = [ { nkey: U… } ] }`.
//!
//! **TLS** is used when the URL is `tls://…` (then TLS is required), when a CA or client
//! certificate is given, or when the server itself announces `tls_required`. The server's
//! certificate is checked against `tls_ca_file` when given, else against the platform's
//! roots; `tls_client_cert` + `tls_client_key` answer a server that verifies clients.
//!
//! Every file is read and checked *before* dialling, so a typo in a path is reported as
//! such and not as a vague handshake failure. Failures of the connection itself are sorted
//! into [`ConnectError::Unauthorized`], [`ConnectError::Tls`] and
//! [`ConnectError::Unreachable`], each with the flag that fixes it.
//!
//! Only the first connection is attempted once (bounded by `connect_timeout`): a host that
//! cannot reach NATS at start-up must say so and exit. After that first success, async-nats
//! reconnects forever on its own (its default), re-subscribing as it goes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::rustls;

/// How to reach and authenticate to a NATS server.
#[derive(Clone)]
pub struct NatsConnect {
    /// `nats://host:port` or `tls://host:port` (TLS required).
    pub url: String,
    /// A `.creds` file: user JWT + user nkey seed.
    pub creds_file: Option<PathBuf>,
    /// A user nkey seed `SU…`, or `@path` to a file holding it.
    pub nkey_seed: Option<String>,
    /// PEM file of the CA(s) that signed the server's certificate.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate (with `tls_client_key`), for servers that verify clients.
    pub tls_client_cert: Option<PathBuf>,
    /// PEM private key of `tls_client_cert`.
    pub tls_client_key: Option<PathBuf>,
    /// Bound on the first connection attempt (TCP, TLS and the NATS handshake).
    pub connect_timeout: Duration,
    /// The connection name the server shows (`nats-server` monitoring, logs).
    pub name: String,
}

impl fmt::Debug for NatsConnect {
    /// Like a derived `Debug`, except that a literal seed is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seed = self.nkey_seed.as_deref().map(|s| {
            if s.starts_with('@') {
                s.to_string()
            } else {
                "<redacted seed>".to_string()
            }
        });
        f.debug_struct("NatsConnect")
            .field("url", &self.url)
            .field("creds_file", &self.creds_file)
            .field("nkey_seed", &seed)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_client_cert", &self.tls_client_cert)
            .field("tls_client_key", &self.tls_client_key)
            .field("connect_timeout", &self.connect_timeout)
            .field("name", &self.name)
            .finish()
    }
}

/// Why connecting to NATS failed. Each message names the file, URL or flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "--nats-creds and --nats-nkey are alternatives: pass a creds file (user JWT + seed) or a bare user nkey seed, not both"
    )]
    CredsAndNkey,
    #[error(
        "cannot read the NATS credentials file {path}: {reason}; --nats-creds expects a `.creds` file holding a user JWT and its nkey seed (as written by `nsc generate creds`)"
    )]
    CredsFile { path: PathBuf, reason: String },
    #[error(
        "the NATS credentials file {path} is not valid: {reason}; it should hold a `-----BEGIN NATS USER JWT-----` block and a `-----BEGIN USER NKEY SEED-----` block (as written by `nsc generate creds`)"
    )]
    CredsParse { path: PathBuf, reason: String },
    #[error(
        "cannot read the nkey seed file {path} (--nats-nkey @FILE): {reason}; it should hold a user nkey seed starting with `SU`"
    )]
    NkeyFile { path: PathBuf, reason: String },
    #[error(
        "the NATS nkey seed {origin} is not valid: {reason}; --nats-nkey expects a user seed starting with `SU` (`trellis keys gen user` prints one), or `@FILE` naming a file that holds it"
    )]
    NkeySeed { origin: String, reason: String },
    #[error(
        "cannot read the {what} {path} ({flag}): {reason}; it should be a PEM file holding {what}"
    )]
    TlsFile {
        what: &'static str,
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "--nats-tls-cert and --nats-tls-key go together: a client certificate needs its private key, and the other way round"
    )]
    TlsCertWithoutKey,
    #[error(
        "`{url}` is not a NATS server URL: {reason}; expected `nats://HOST:PORT` or `tls://HOST:PORT`"
    )]
    InvalidUrl { url: String, reason: String },
    #[error("NATS at {url} refused the credentials: {reason}; check --nats-creds / --nats-nkey")]
    Unauthorized { url: String, reason: String },
    #[error(
        "NATS at {url} refused a connection without credentials ({reason}); pass --nats-creds FILE or --nats-nkey SEED"
    )]
    CredentialsRequired { url: String, reason: String },
    #[error("TLS handshake with NATS at {url} failed: {reason}; {hint}")]
    Tls {
        url: String,
        reason: String,
        hint: &'static str,
    },
    #[error(
        "cannot connect to NATS at {url}: {reason}; is nats-server (>= 2.10, with -js) running there? Start one with `nats-server -js`, or pass --nats-url"
    )]
    Unreachable { url: String, reason: String },
}

impl NatsConnect {
    /// A plain connection to `url` (no credentials, no TLS unless the URL says `tls://`),
    /// with a 5 s connect timeout.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            creds_file: None,
            nkey_seed: None,
            tls_ca_file: None,
            tls_client_cert: None,
            tls_client_key: None,
            connect_timeout: Duration::from_secs(5),
            name: name.into(),
        }
    }

    /// Whether this client insists on TLS: a `tls://` URL, a CA or a client certificate.
    pub fn requires_tls(&self) -> bool {
        self.url.trim().to_ascii_lowercase().starts_with("tls://")
            || self.tls_ca_file.is_some()
            || self.tls_client_cert.is_some()
    }

    /// Reads and checks every file, and builds the async-nats options (no network yet).
    pub fn options(&self) -> Result<async_nats::ConnectOptions, ConnectError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(&self.name)
            .connection_timeout(self.connect_timeout);
        match (&self.creds_file, &self.nkey_seed) {
            (Some(_), Some(_)) => return Err(ConnectError::CredsAndNkey),
            (Some(path), None) => {
                let text = read_text(path).map_err(|reason| ConnectError::CredsFile {
                    path: path.clone(),
                    reason,
                })?;
                options = options
                    .credentials(&text)
                    .map_err(|e| ConnectError::CredsParse {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
            }
            (None, Some(seed)) => options = options.nkey(load_seed(seed)?),
            (None, None) => {}
        }
        if let Some(ca) = &self.tls_ca_file {
            check_pem(ca, "CA certificate", "--nats-tls-ca", &["CERTIFICATE"])?;
            options = options.add_root_certificates(ca.clone());
        }
        match (&self.tls_client_cert, &self.tls_client_key) {
            (Some(cert), Some(key)) => {
                check_pem(
                    cert,
                    "client certificate",
                    "--nats-tls-cert",
                    &["CERTIFICATE"],
                )?;
                check_pem(
                    key,
                    "client private key",
                    "--nats-tls-key",
                    &["PRIVATE KEY"],
                )?;
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
            (None, None) => {}
            _ => return Err(ConnectError::TlsCertWithoutKey),
        }
        Ok(options.require_tls(self.requires_tls()))
    }

    /// Connects once (bounded by `connect_timeout`); the client then reconnects by itself.
    pub async fn connect(&self) -> Result<async_nats::Client, ConnectError> {
        let options = self.options()?;
        let url = self.url.trim();
        let address: async_nats::ServerAddr =
            url.parse()
                .map_err(|e: std::io::Error| ConnectError::InvalidUrl {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
        options
            .connect(address)
            .await
            .map_err(|e| self.classify(&e))
    }

    /// Sorts an async-nats failure into what the operator has to fix.
    fn classify(&self, error: &async_nats::ConnectError) -> ConnectError {
        use async_nats::ConnectErrorKind as Kind;
        let url = self.url.trim().to_string();
        let reason = root_cause(error);
        let has_credentials = self.creds_file.is_some() || self.nkey_seed.is_some();
        match error.kind() {
            Kind::AuthorizationViolation | Kind::Authentication if has_credentials => {
                ConnectError::Unauthorized { url, reason }
            }
            Kind::AuthorizationViolation | Kind::Authentication => {
                ConnectError::CredentialsRequired { url, reason }
            }
            Kind::Tls => tls_error(url, reason),
            Kind::ServerParse => ConnectError::InvalidUrl { url, reason },
            _ if is_tls_failure(error) => tls_error(url, reason),
            _ => ConnectError::Unreachable { url, reason },
        }
    }
}

/// A TLS failure with the most likely fix: the server refusing our (missing) client
/// certificate, else us not trusting the server's.
fn tls_error(url: String, reason: String) -> ConnectError {
    let client_refused = ["CertificateRequired", "BadCertificate", "UnknownCA"]
        .iter()
        .any(|alert| reason.contains(&format!("alert: {alert}")));
    let hint = if client_refused {
        "the server verifies clients: pass --nats-tls-cert FILE and --nats-tls-key FILE with a certificate signed by a CA the server trusts"
    } else {
        "if the server's certificate is signed by a private CA, pass that CA with --nats-tls-ca FILE; check too that the URL's host matches the certificate and that the server has TLS enabled"
    };
    ConnectError::Tls { url, reason, hint }
}

/// `SU…` directly, or the contents of the file named after `@`; checked to be a user seed.
fn load_seed(given: &str) -> Result<String, ConnectError> {
    let (seed, origin) = match given.strip_prefix('@') {
        Some(path) => {
            let path = PathBuf::from(path);
            let text = read_text(&path).map_err(|reason| ConnectError::NkeyFile {
                path: path.clone(),
                reason,
            })?;
            (text.trim().to_string(), format!("in {}", path.display()))
        }
        None => (given.trim().to_string(), "given".to_string()),
    };
    let key = nkeys::KeyPair::from_seed(&seed).map_err(|e| ConnectError::NkeySeed {
        origin: origin.clone(),
        reason: e.to_string(),
    })?;
    if !key.public_key().starts_with('U') {
        return Err(ConnectError::NkeySeed {
            origin,
            reason: format!(
                "it is the seed of `{}…`, not of a user key (`U…`)",
                key.public_key().chars().next().unwrap_or('?')
            ),
        });
    }
    Ok(seed)
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// Fails unless `path` is readable and holds a PEM block whose label contains one of `labels`.
fn check_pem(
    path: &Path,
    what: &'static str,
    flag: &'static str,
    labels: &[&str],
) -> Result<(), ConnectError> {
    let error = |reason: String| ConnectError::TlsFile {
        what,
        flag,
        path: path.to_path_buf(),
        reason,
    };
    let text = read_text(path).map_err(error)?;
    let found = text.lines().any(|line| {
        line.trim()
            .strip_prefix("-----BEGIN ")
            .is_some_and(|rest| labels.iter().any(|label| rest.contains(label)))
    });
    if found {
        Ok(())
    } else {
        Err(error(format!(
            "no `-----BEGIN …{}-----` block found",
            labels.join("/")
        )))
    }
}

/// What went wrong, in the fewest words: the innermost source (async-nats puts the server's
/// or the OS's own words there and repeats them in every outer layer), else the kind.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

/// Whether a rustls error is somewhere in the chain (tokio-rustls wraps handshake failures
/// in `io::Error`, which async-nats reports as a plain I/O failure).
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Opens the JetStream key-value bucket `config.bucket`, creating it with `config` when it
/// does not exist yet (another process creating it at the same moment is fine: it is opened
/// then). The error names the bucket and what to check on the server.
pub async fn open_or_create_bucket(
    js: &async_nats::jetstream::Context,
    config: async_nats::jetstream::kv::Config,
) -> Result<async_nats::jetstream::kv::Store, String> {
    if let Ok(store) = js.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    let name = config.bucket.clone();
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        Err(create) => js.get_key_value(&name).await.map_err(|_| {
            format!(
                "cannot open or create the JetStream key-value bucket `{name}`: {create}; does \
                 nats-server run with JetStream (`-js`), version >= 2.10?"
            )
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut NatsConnect)) -> NatsConnect {
        let mut c = NatsConnect::new("nats://127.0.0.1:1", "test");
        f(&mut c);
        c
    }

    #[test]
    fn a_missing_creds_file_is_named_with_what_it_should_hold() {
        let c = with(|c| c.creds_file = Some("/nonexistent/user.creds".into()));
        let e = c.options().err().unwrap();
        let text = e.to_string();
        assert!(matches!(e, ConnectError::CredsFile { .. }), "{text}");
        assert!(text.contains("/nonexistent/user.creds"), "{text}");
        assert!(text.contains("user JWT"), "{text}");
    }

    #[test]
    fn a_creds_file_without_jwt_and_seed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.creds");
        std::fs::write(&path, "just some text\n").unwrap();
        let e = with(|c| c.creds_file = Some(path.clone())).options().err();
        let text = e.unwrap().to_string();
        assert!(text.contains("is not valid"), "{text}");
        assert!(text.contains("BEGIN NATS USER JWT"), "{text}");
    }

    #[test]
    fn a_well_formed_creds_file_is_accepted() {
        // The format `nsc generate creds` writes; the JWT is only checked by the server.
        let user = nkeys::KeyPair::new_user();
        let creds = format!(
            "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.creds");
        std::fs::write(&path, creds).unwrap();
        assert!(
            with(|c| c.creds_file = Some(path.clone()))
                .options()
                .is_ok()
        );
    }

    #[test]
    fn a_bad_seed_says_what_a_seed_looks_like() {
        let e = with(|c| c.nkey_seed = Some("SUNOTASEED".into()))
            .options()
            .err()
            .unwrap();
        let text = e.to_string();
        assert!(matches!(e, ConnectError::NkeySeed { .. }), "{text}");
        assert!(text.contains("`SU`"), "{text}");
        assert!(!text.contains("SUNOTASEED"), "a seed is a secret: {text}");
    }

    #[test]
    fn a_seed_of_another_kind_is_refused() {
        let account = nkeys::KeyPair::new_account().seed().unwrap();
        let text = with(|c| c.nkey_seed = Some(account))
            .options()
            .err()
            .unwrap()
            .to_string();
        assert!(text.contains("not of a user key"), "{text}");
    }

    #[test]
    fn a_seed_is_read_from_a_file_after_at() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.nk");
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        std::fs::write(&path, format!("{seed}\n")).unwrap();
        let given = format!("@{}", path.display());
        assert!(with(|c| c.nkey_seed = Some(given)).options().is_ok());
        let missing = with(|c| c.nkey_seed = Some("@/nonexistent/user.nk".into()))
            .options()
            .err()
            .unwrap();
        assert!(
            matches!(missing, ConnectError::NkeyFile { .. }),
            "{missing}"
        );
    }

    #[test]
    fn a_seed_is_never_printed_by_debug() {
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        let c = with(|c| c.nkey_seed = Some(seed.clone()));
        assert!(!format!("{c:?}").contains(&seed));
    }

    #[test]
    fn creds_and_nkey_together_are_refused() {
        let c = with(|c| {
            c.creds_file = Some("/x.creds".into());
            c.nkey_seed = Some("SU".into());
        });
        assert!(matches!(c.options(), Err(ConnectError::CredsAndNkey)));
    }

    #[test]
    fn tls_files_must_exist_and_be_pem() {
        let missing = with(|c| c.tls_ca_file = Some("/nonexistent/ca.pem".into()))
            .options()
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
        assert!(missing.contains("--nats-tls-ca"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not pem").unwrap();
        let not_pem = with(|c| c.tls_ca_file = Some(path.clone()))
            .options()
            .err()
            .unwrap()
            .to_string();
        assert!(not_pem.contains("BEGIN"), "{not_pem}");
        let half = with(|c| c.tls_client_cert = Some(path.clone())).options();
        assert!(matches!(half, Err(ConnectError::TlsCertWithoutKey)));
    }

    #[test]
    fn tls_is_required_by_url_or_by_a_ca() {
        assert!(!with(|_| {}).requires_tls());
        assert!(with(|c| c.url = "tls://127.0.0.1:4222".into()).requires_tls());
        assert!(with(|c| c.tls_ca_file = Some("ca.pem".into())).requires_tls());
    }

    #[tokio::test]
    async fn nobody_listening_is_reported_as_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = with(|c| c.url = format!("nats://127.0.0.1:{port}"));
        let e = c.connect().await.err().unwrap();
        let text = e.to_string();
        assert!(matches!(e, ConnectError::Unreachable { .. }), "{text}");
        assert!(text.contains("nats-server -js"), "{text}");
    }

    #[tokio::test]
    async fn a_url_that_is_not_one_is_reported() {
        let e = with(|c| c.url = "nats://exa mple:x".into())
            .connect()
            .await
            .err()
            .unwrap();
        assert!(matches!(e, ConnectError::InvalidUrl { .. }), "{e}");
    }
}
