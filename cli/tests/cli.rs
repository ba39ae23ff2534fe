//! The `trellis` binary end to end: keys, claims, and `trellis run` on a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use trellis_testing::{CORE_MODULE_WAT, guest, tamper};

fn trellis() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trellis"));
    cmd.env_remove("TRELLIS_TRUSTED_ISSUERS")
        .env("TRELLIS_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

fn run(args: &[&str]) -> Output {
    trellis().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Account {
    public: String,
    seed_file: PathBuf,
}

fn gen_account(dir: &Path) -> Account {
    let out = run(&["keys", "gen", "account", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let public = json["public_key"].as_str().unwrap().to_string();
    let seed_file = dir.join(format!("{public}.seed"));
    std::fs::write(&seed_file, json["seed"].as_str().unwrap()).unwrap();
    Account { public, seed_file }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Signs `input` with the CLI; extra flags appended.
fn sign(account: &Account, input: &Path, output: &Path, extra: &[&str]) {
    let issuer = format!("@{}", account.seed_file.display());
    let mut args = vec![
        "claims",
        "sign",
        input.to_str().unwrap(),
        "--issuer",
        &issuer,
        "--name",
        "hello",
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "sign failed: {}", text(&out.stderr));
}

#[test]
fn keys_gen_prints_public_key_and_seed_for_every_kind() {
    for (kind, prefix) in [
        ("account", 'A'),
        ("module", 'M'),
        ("service", 'V'),
        ("server", 'N'),
        ("user", 'U'),
    ] {
        let out = run(&["keys", "gen", kind]);
        assert!(out.status.success());
        let stdout = text(&out.stdout);
        let public = stdout
            .lines()
            .find_map(|l| l.strip_prefix("public: "))
            .unwrap();
        let seed = stdout
            .lines()
            .find_map(|l| l.strip_prefix("seed: "))
            .unwrap();
        assert!(public.starts_with(prefix), "{kind}: {public}");
        assert!(seed.starts_with(&format!("S{prefix}")), "{kind}: {seed}");
    }
    let out = run(&["keys", "gen", "planet"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown key kind `planet`"));
}

#[test]
fn sign_then_inspect_shows_the_claims_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let account = gen_account(dir.path());
    let input = write(dir.path(), "hello.wasm", &guest("http_hello").unwrap());
    let signed = dir.path().join("hello.signed.wasm");
    sign(
        &account,
        &input,
        &signed,
        &[
            "--grant",
            "wasi:config/store",
            "--ver",
            "1.2.3",
            "--expires-in",
            "30d",
        ],
    );

    let out = run(&["claims", "inspect", signed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "hello",
        &account.public,
        "wasi:config/store",
        "1.2.3",
        "component",
        "valid",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected} in:\n{stdout}"
        );
    }
    let out = run(&[
        "claims",
        "inspect",
        signed.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["claims"]["iss"], account.public.as_str());
    assert_eq!(json["claims"]["wascap"]["caps"][0], "wasi:config/store");

    let out = run(&[
        "claims",
        "inspect",
        signed.to_str().unwrap(),
        "--trusted-issuer",
        &account.public,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn inspect_exits_non_zero_for_every_broken_case() {
    let dir = tempfile::tempdir().unwrap();
    let account = gen_account(dir.path());
    let wasm = guest("http_hello").unwrap();
    let input = write(dir.path(), "hello.wasm", &wasm);
    let signed = dir.path().join("signed.wasm");
    sign(&account, &input, &signed, &[]);
    let signed_bytes = std::fs::read(&signed).unwrap();

    let expiring = dir.path().join("expiring.wasm");
    sign(&account, &input, &expiring, &["--expires-in", "1s"]);
    let later = dir.path().join("later.wasm");
    sign(&account, &input, &later, &["--not-before", "1h"]);
    let tampered = write(dir.path(), "tampered.wasm", &tamper(&signed_bytes).unwrap());
    let truncated = write(
        dir.path(),
        "truncated.wasm",
        &signed_bytes[..signed_bytes.len() / 3],
    );
    let not_wasm = write(dir.path(), "notes.txt", b"hello, not wasm");
    std::thread::sleep(Duration::from_millis(2100));

    let other = gen_account(dir.path());
    let cases: Vec<(&str, &Path, Vec<&str>, &str)> = vec![
        ("unsigned", &input, vec![], "is not signed"),
        ("tampered", &tampered, vec![], "hash mismatch"),
        ("expired", &expiring, vec![], "expired at"),
        ("not yet valid", &later, vec![], "not valid yet"),
        ("truncated", &truncated, vec![], "truncated"),
        ("not wasm", &not_wasm, vec![], "not a WebAssembly file"),
        (
            "untrusted",
            &signed,
            vec!["--trusted-issuer", &other.public],
            "is not trusted",
        ),
    ];
    for (case, file, extra, expected) in cases {
        let mut args = vec!["claims", "inspect", file.to_str().unwrap()];
        args.extend(extra);
        let out = run(&args);
        assert!(!out.status.success(), "{case}: inspect exited 0");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{case}: {stderr}");
    }
    let missing = run(&["claims", "inspect", "/nonexistent/x.wasm"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("cannot read `/nonexistent/x.wasm`"));
}

#[test]
fn sign_rejects_bad_seeds_and_grants_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "hello.wasm", &guest("http_hello").unwrap());
    let out_path = dir.path().join("o.wasm");
    let module_seed = {
        let out = run(&["keys", "gen", "module", "--output", "json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["seed"].as_str().unwrap().to_string()
    };
    let refused = |issuer: &str, extra: &[&str]| {
        let mut args = vec![
            "claims",
            "sign",
            input.to_str().unwrap(),
            "--issuer",
            issuer,
        ];
        args.extend_from_slice(&["--name", "x", "-o", out_path.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        text(&out.stderr)
    };
    let stderr = refused(&module_seed, &[]);
    assert!(stderr.contains("account key"), "{stderr}");
    let account = gen_account(dir.path());
    let issuer = format!("@{}", account.seed_file.display());
    let stderr = refused(&issuer, &["--grant", "keyvalue"]);
    assert!(stderr.contains("invalid --grant `keyvalue`"), "{stderr}");
    assert!(!out_path.exists(), "nothing is written on error");
}

/// A running `trellis run`, killed on drop.
struct Running {
    child: Child,
    addr: String,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    fn start(args: &[&str]) -> Result<Running, String> {
        let mut child = trellis()
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let (out_tx, out_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        match out_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                let addr = line.rsplit("http://").next().unwrap().to_string();
                Ok(Running {
                    child,
                    addr,
                    stderr: err_rx,
                })
            }
            Err(_) => {
                let status = child.wait().unwrap();
                let stderr: Vec<String> = err_rx.try_iter().collect();
                Err(format!("exited {status}: {}", stderr.join("\n")))
            }
        }
    }

    fn stop(mut self) -> (bool, String) {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let stderr: Vec<String> = self.stderr.try_iter().collect();
        (status.success(), stderr.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    (status, response)
}

#[test]
fn run_serves_a_signed_component_and_a_restart_reuses_the_compiled_cache() {
    let dir = tempfile::tempdir().unwrap();
    let account = gen_account(dir.path());
    let input = write(dir.path(), "hello.wasm", &guest("http_hello").unwrap());
    let signed = dir.path().join("hello.signed.wasm");
    sign(&account, &input, &signed, &[]);
    let cache = dir.path().join("cache");
    let args = [
        signed.to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--trusted-issuer",
        &account.public,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];

    let first = Running::start(&args).unwrap();
    let (status, response) = http_get(&first.addr, "/");
    assert_eq!(status, 200);
    assert!(response.contains("Hello from Trellis!\n"), "{response}");
    let (clean, log) = first.stop();
    assert!(clean, "SIGTERM must exit cleanly:\n{log}");
    assert!(log.contains("compiled artifact cache miss"), "{log}");

    let second = Running::start(&args).unwrap();
    assert_eq!(http_get(&second.addr, "/").0, 200);
    let (_, log) = second.stop();
    assert!(log.contains("compiled artifact cache hit"), "{log}");
    assert!(!log.contains("cache miss"), "{log}");
}

#[test]
fn run_refuses_bad_components_with_specific_errors() {
    let dir = tempfile::tempdir().unwrap();
    let account = gen_account(dir.path());
    let wasm = guest("http_hello").unwrap();
    let input = write(dir.path(), "hello.wasm", &wasm);
    let signed = dir.path().join("signed.wasm");
    sign(&account, &input, &signed, &[]);
    let tampered = write(
        dir.path(),
        "tampered.wasm",
        &tamper(&std::fs::read(&signed).unwrap()).unwrap(),
    );
    let core = write(
        dir.path(),
        "core.wasm",
        &wat::parse_str(CORE_MODULE_WAT).unwrap(),
    );
    let core_signed = dir.path().join("core.signed.wasm");
    sign(&account, &core, &core_signed, &[]);
    let not_wasm = write(dir.path(), "x.wasm", b"definitely not wasm");
    let other = gen_account(dir.path());

    let cases: Vec<(&str, &Path, &str, &str)> = vec![
        ("unsigned", &input, &account.public, "is not signed"),
        ("tampered", &tampered, &account.public, "hash mismatch"),
        ("untrusted", &signed, &other.public, "is not trusted"),
        (
            "core module",
            &core_signed,
            &account.public,
            "core WebAssembly module",
        ),
        (
            "not wasm",
            &not_wasm,
            &account.public,
            "not a WebAssembly file",
        ),
    ];
    for (case, file, trusted, expected) in cases {
        let out = run(&[
            "run",
            file.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--trusted-issuer",
            trusted,
            "--no-cache",
        ]);
        assert!(!out.status.success(), "{case}: accepted");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    }
    let out = run(&["run", "oci://ghcr.io/x/y:1", "--http", "127.0.0.1:0"]);
    assert!(text(&out.stderr).contains("registry references are not supported yet"));
}

#[test]
fn run_allows_unsigned_only_with_the_development_flag() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "hello.wasm", &guest("http_hello").unwrap());
    let running = Running::start(&[
        input.to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--allow-unsigned",
        "--no-cache",
    ])
    .unwrap();
    assert_eq!(http_get(&running.addr, "/").0, 200);
    let (_, log) = running.stop();
    assert!(log.contains("UNSIGNED"), "{log}");
}
