//! Securing the NATS connection (DESIGN.md §3), end to end: real `nats-server` processes
//! configured for nkey users, operator/JWT accounts (a `.creds` file) and TLS (with and
//! without client certificates), and real `trellis host` / `trellis get hosts` processes.
//!
//! Each test checks both sides: with the right flags the host joins and the CLI sees it;
//! without them `trellis host` exits non-zero, promptly, with a message naming the problem
//! and the flag that fixes it. Keys, JWTs and certificates are made fresh per test (nkeys,
//! rcgen), so nothing secret is checked in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::trellis;
use nkeys::KeyPair;
use serde_json::{Value, json};
use trellis_testing::nats::NatsServer;

/// A `trellis host` child whose stderr goes to a file (shown when a test fails); killed on drop.
struct Host {
    child: Child,
    log: PathBuf,
}

impl Host {
    fn start(url: &str, dir: &Path, flags: &[&str]) -> Self {
        let log = dir.join(format!("host-{}.log", rand_suffix()));
        let child = host_command(url, flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> String {
    KeyPair::new_user().public_key()[1..9].to_string()
}

fn host_command(url: &str, flags: &[&str]) -> Command {
    let mut cmd = trellis(url);
    cmd.args([
        "host",
        "--heartbeat-interval",
        "500ms",
        "--connect-timeout",
        "5s",
    ])
    .args(flags);
    cmd
}

/// Runs `cmd` to its end and returns its status and stderr; a process still running after
/// 60 s is killed and fails the test (a refused connection must not hang).
fn run_to_end(mut cmd: Command, dir: &Path) -> (ExitStatus, String) {
    let err_path = dir.join(format!("run-{}.err", rand_suffix()));
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command still ran after 60 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&err_path).unwrap())
}

/// `trellis host FLAGS` must fail; returns what it printed on stderr.
fn host_refused(url: &str, dir: &Path, flags: &[&str]) -> String {
    let (status, stderr) = run_to_end(host_command(url, flags), dir);
    assert!(!status.success(), "the host started: {stderr}");
    assert!(stderr.contains("error:"), "{stderr}");
    stderr
}

/// Polls `trellis get hosts FLAGS` until one host answers (bounded: start-up on a loaded box).
fn wait_for_one_host(url: &str, flags: &[&str], host: &Host) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = trellis(url)
            .args(["get", "hosts", "--output", "json"])
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "get hosts failed: {stderr}");
        let hosts: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        if hosts.len() == 1 {
            return hosts;
        }
        assert!(
            Instant::now() < deadline,
            "no host joined; its log:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn gen_user_key() -> (String, String) {
    let out = trellis("nats://127.0.0.1:1")
        .args(["keys", "gen", "user", "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        key["public_key"].as_str().unwrap().to_string(),
        key["seed"].as_str().unwrap().to_string(),
    )
}

#[test]
fn an_nkey_user_joins_and_a_missing_or_wrong_nkey_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (public, seed) = gen_user_key();
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, format!("{seed}\n")).unwrap();
    let server = NatsServer::start_with_config(&format!(
        "authorization {{ users = [ {{ nkey: {public} }} ] }}\n"
    ))
    .unwrap();
    let url = server.url();
    let nkey = format!("@{}", seed_file.display());

    let host = Host::start(&url, dir.path(), &["--nats-nkey", &nkey]);
    let hosts = wait_for_one_host(&url, &["--nats-nkey", &nkey], &host);
    assert!(hosts[0]["id"].as_str().unwrap().starts_with('N'));
    // The seed itself (not a file) works as well, here through the environment.
    let out = trellis(&url)
        .env("TRELLIS_NATS_NKEY", &seed)
        .args(["get", "hosts", "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_slice::<Vec<Value>>(&out.stdout)
            .unwrap()
            .len(),
        1
    );

    let none = host_refused(&url, dir.path(), &[]);
    assert!(none.contains("authorization violation"), "{none}");
    assert!(none.contains("--nats-nkey"), "{none}");
    assert!(none.contains(&url), "{none}");

    let (_, stranger) = gen_user_key();
    let wrong = host_refused(&url, dir.path(), &["--nats-nkey", &stranger]);
    assert!(wrong.contains("refused the credentials"), "{wrong}");
    assert!(!wrong.contains(&stranger), "a seed is a secret: {wrong}");

    let (status, cli) = run_to_end(
        {
            let mut cmd = trellis(&url);
            cmd.args(["get", "hosts"]);
            cmd
        },
        dir.path(),
    );
    assert!(!status.success());
    assert!(cli.contains("authorization violation"), "{cli}");

    let typo = host_refused(&url, dir.path(), &["--nats-nkey", "@/nonexistent/user.nk"]);
    assert!(typo.contains("/nonexistent/user.nk"), "{typo}");
}

/// A NATS JWT (`alg: ed25519-nkey`) with `claims.nats = nats`, signed by `issuer`.
fn nats_jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = json!({
        "jti": rand_suffix(),
        "iat": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let signed = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let signature = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64(&signature))
}

/// An operator, its system account (JetStream needs one), one account with JetStream
/// enabled, and the server config trusting them (memory resolver, accounts preloaded).
struct Operator {
    account: KeyPair,
    config: String,
}

fn operator(dir: &Path) -> Operator {
    let operator = KeyPair::new_operator();
    let system = KeyPair::new_account();
    let account = KeyPair::new_account();
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        json!({"type": "operator", "version": 2, "system_account": system.public_key()}),
    );
    let system_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({"type": "account", "version": 2}),
    );
    let unlimited = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "test-account",
        json!({"limits": unlimited, "type": "account", "version": 2}),
    );
    let operator_file = dir.join("operator.jwt");
    std::fs::write(&operator_file, &operator_jwt).unwrap();
    let config = format!(
        "operator: \"{}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: \"{system_jwt}\"\n  {}: \"{account_jwt}\"\n}}\n",
        operator_file.display(),
        account.public_key(),
        sys = system.public_key(),
    );
    Operator { account, config }
}

/// A `.creds` file for a new user of `account`, as `nsc generate creds` writes it.
fn creds_file(dir: &Path, account: &KeyPair, name: &str) -> PathBuf {
    let user = KeyPair::new_user();
    let jwt = nats_jwt(
        account,
        &user.public_key(),
        name,
        json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}),
    );
    let path = dir.join(format!("{name}.creds"));
    std::fs::write(
        &path,
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_creds_file_user_joins_and_a_user_of_an_unknown_account_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let op = operator(dir.path());
    let server = NatsServer::start_with_config(&op.config).unwrap();
    let url = server.url();
    let creds = creds_file(dir.path(), &op.account, "host");
    let creds = creds.to_str().unwrap();

    let host = Host::start(&url, dir.path(), &["--nats-creds", creds]);
    wait_for_one_host(&url, &["--nats-creds", creds], &host);

    let stranger = creds_file(dir.path(), &KeyPair::new_account(), "stranger");
    let refused = host_refused(
        &url,
        dir.path(),
        &["--nats-creds", stranger.to_str().unwrap()],
    );
    assert!(refused.contains("refused the credentials"), "{refused}");
    assert!(refused.contains("--nats-creds"), "{refused}");

    let garbled = dir.path().join("garbled.creds");
    std::fs::write(&garbled, "not a creds file\n").unwrap();
    let bad = host_refused(
        &url,
        dir.path(),
        &["--nats-creds", garbled.to_str().unwrap()],
    );
    assert!(
        bad.contains("garbled.creds") && bad.contains("NATS USER JWT"),
        "{bad}"
    );
}

/// A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Trellis test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, stem: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    };
    let (server_cert, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "server",
    );
    let (client_cert, client_key) = leaf(
        vec!["trellis-client".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        "client",
    );
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    Pki {
        ca: ca_path,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

#[test]
fn tls_with_the_ca_joins_and_without_it_fails_with_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = NatsServer::start_with_config(&format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
        pki.server_cert.display(),
        pki.server_key.display()
    ))
    .unwrap();
    let url = server.tls_url();
    let ca = pki.ca.to_str().unwrap();

    let host = Host::start(&url, dir.path(), &["--nats-tls-ca", ca]);
    wait_for_one_host(&url, &["--nats-tls-ca", ca], &host);

    let untrusted = host_refused(&url, dir.path(), &[]);
    assert!(untrusted.contains("TLS handshake"), "{untrusted}");
    assert!(untrusted.contains("--nats-tls-ca"), "{untrusted}");
    // A plain nats:// URL to a server that requires TLS fails the same way.
    let plain = host_refused(&server.url(), dir.path(), &[]);
    assert!(plain.contains("TLS handshake"), "{plain}");
}

#[test]
fn a_server_that_verifies_clients_takes_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = NatsServer::start_with_config(&format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n}}\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    ))
    .unwrap();
    let url = server.tls_url();
    let flags = [
        "--nats-tls-ca",
        pki.ca.to_str().unwrap(),
        "--nats-tls-cert",
        pki.client_cert.to_str().unwrap(),
        "--nats-tls-key",
        pki.client_key.to_str().unwrap(),
    ];
    let host = Host::start(&url, dir.path(), &flags);
    wait_for_one_host(&url, &flags, &host);

    let anonymous = host_refused(&url, dir.path(), &flags[..2]);
    assert!(anonymous.contains(&url), "{anonymous}");
    assert!(anonymous.contains("--nats-tls-cert"), "{anonymous}");
}
