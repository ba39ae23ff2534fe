//! Manifest parsing, validation and `desired()` against files in `tests/valid/` (real
//! manifests that must deploy) and `tests/invalid/` (one defect per file, named for it,
//! whose first line says what the error must be: `# expect: PATH | MESSAGE [| line N]`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use trellis_protocol::ctl::Link;
use trellis_wadm::manifest::{Diagnostic, Manifest, Severity};
use trellis_wadm::model::{AppDesired, Placement, Spread};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

fn yaml_files(name: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Parses `tests/valid/{file}`: it must have no errors; returns it with its warnings.
fn valid(file: &str) -> (Manifest, Vec<Diagnostic>) {
    let path = dir("valid").join(file);
    match Manifest::from_file(&path) {
        Ok(parsed) => parsed,
        Err(errors) => panic!("{file} must be valid:\n{errors}"),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn spread(name: &str, requirements: &[(&str, &str)], weight: u32) -> Spread {
    Spread {
        name: name.to_string(),
        requirements: map(requirements),
        weight,
    }
}

#[allow(clippy::too_many_arguments)]
fn link(
    source: &str,
    target: &str,
    name: &str,
    ns: &str,
    pkg: &str,
    interfaces: &[&str],
    source_config: &[&str],
    target_config: &[&str],
) -> Link {
    Link {
        source_id: source.to_string(),
        target: target.to_string(),
        name: name.to_string(),
        wit_namespace: ns.to_string(),
        wit_package: pkg.to_string(),
        interfaces: strings(interfaces),
        source_config: strings(source_config),
        target_config: strings(target_config),
    }
}

fn hello_world_desired(version: &str, address: &str) -> AppDesired {
    let mut desired = AppDesired {
        app: "rust-hello-world".into(),
        version: version.into(),
        ..AppDesired::default()
    };
    desired
        .components
        .push(trellis_wadm::model::DesiredComponent {
            name: "http-component".into(),
            id: "rust_hello_world-http_component".into(),
            image: "ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0".into(),
            config: vec![],
            placement: Placement::Spread {
                instances: 1,
                spreads: vec![],
            },
        });
    desired.links.push(link(
        "rust_hello_world-httpserver",
        "rust_hello_world-http_component",
        "default",
        "wasi",
        "http",
        &["incoming-handler"],
        &["rust_hello_world-default_http"],
        &[],
    ));
    desired.configs.insert(
        "rust_hello_world-default_http".into(),
        map(&[("address", address)]),
    );
    desired
}

#[test]
fn hello_world() {
    let (manifest, warnings) = valid("hello-world.yaml");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        manifest.version(),
        None,
        "no version: the server assigns one"
    );
    let desired = manifest.desired();
    let mut expected = hello_world_desired("", "0.0.0.0:8000");
    expected
        .providers
        .push(trellis_wadm::model::DesiredProvider {
            name: "httpserver".into(),
            id: "rust_hello_world-httpserver".into(),
            image: "ghcr.io/wasmcloud/http-server:0.25.0".into(),
            config: vec![],
            // No scaler trait: one instance anywhere.
            placement: Placement::Spread {
                instances: 1,
                spreads: vec![],
            },
        });
    assert_eq!(desired, expected);

    let mut versioned = manifest.clone();
    versioned.set_version("v7");
    assert_eq!(versioned.desired().version, "v7");
}

#[test]
fn hello_world_legacy_form() {
    let (manifest, warnings) = valid("hello-world-legacy.yaml");
    let paths: Vec<&str> = warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.components[1].traits[0].properties.source_config",
            "spec.components[1].traits[0].properties.target",
        ],
        "{warnings:?}"
    );
    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
    assert!(
        warnings[0]
            .to_string()
            .contains("hello-world-legacy.yaml: warning: ")
    );
    let mut expected = hello_world_desired("v0.0.1", "127.0.0.1:8080");
    expected
        .providers
        .push(trellis_wadm::model::DesiredProvider {
            name: "httpserver".into(),
            id: "rust_hello_world-httpserver".into(),
            image: "ghcr.io/wasmcloud/http-server:0.20.0".into(),
            config: vec![],
            placement: Placement::Spread {
                instances: 1,
                spreads: vec![],
            },
        });
    assert_eq!(manifest.desired(), expected);
}

#[test]
fn weighted_spread() {
    let (manifest, warnings) = valid("weighted-spread.yaml");
    assert!(warnings.is_empty(), "{warnings:?}");
    // `version: 1.10` is read as written, not as the number 1.1.
    assert_eq!(manifest.version(), Some("1.10"));
    let desired = manifest.desired();
    assert_eq!(desired.version, "1.10");
    assert_eq!(desired.components.len(), 1);
    let echo = &desired.components[0];
    assert_eq!(echo.id, "echo-main", "an explicit id is used as is");
    assert_eq!(echo.image, "file:///opt/trellis/echo.wasm");
    assert_eq!(
        echo.placement,
        Placement::Spread {
            instances: 5,
            spreads: vec![
                spread("east", &[("zone", "us-east-1")], 40),
                spread("west", &[("zone", "us-west-1")], 40),
                spread("edge", &[("zone", "eu-central-1"), ("tier", "edge")], 20),
            ],
        }
    );
    assert!(desired.providers.is_empty() && desired.links.is_empty());
    assert!(desired.configs.is_empty());
}

#[test]
fn daemonscaler() {
    let (manifest, warnings) = valid("daemon.yaml");
    // `Ingress_Logger` is valid but not lowercase.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].path, "metadata.name");
    let desired = manifest.desired();
    assert_eq!(desired.app, "Ingress_Logger");
    assert_eq!(desired.version, "v2");
    let logger = &desired.components[0];
    assert_eq!(logger.id, "ingress_logger-logger");
    assert_eq!(
        logger.placement,
        Placement::Daemon {
            instances: 2,
            spreads: vec![spread("ingress-hosts", &[("role", "ingress")], 100)],
        }
    );
    let client = &desired.providers[0];
    assert_eq!(client.id, "ingress_logger-http_client");
    assert_eq!(
        client.placement,
        Placement::Daemon {
            instances: 1,
            spreads: vec![],
        }
    );
    assert_eq!(
        desired.links,
        [link(
            "ingress_logger-logger",
            "ingress_logger-http_client",
            "default",
            "wasi",
            "http",
            &["outgoing-handler"],
            &[],
            &[],
        )]
    );
}

#[test]
fn providers_and_links_with_config() {
    let (manifest, warnings) = valid("providers-and-links.yaml");
    assert!(warnings.is_empty(), "{warnings:?}");
    let desired = manifest.desired();
    assert_eq!(desired.version, "v0.2.0");

    let counter = &desired.components[0];
    assert_eq!(counter.id, "kv_counter-counter");
    assert_eq!(
        counter.config,
        ["kv_counter-counter_settings", "shared-tracing"],
        "inline configs are prefixed, references kept"
    );
    assert_eq!(
        counter.placement,
        Placement::Spread {
            instances: 3,
            spreads: vec![]
        }
    );

    let ids: Vec<(&str, &str)> = desired
        .providers
        .iter()
        .map(|p| (p.name.as_str(), p.id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("httpserver", "http-server"),
            ("kvredis", "kv_counter-kvredis"),
            ("kvnats", "kv_counter-kvnats"),
            ("audit-db", "kv_counter-audit_db"),
        ]
    );
    assert_eq!(desired.providers[1].config, ["kv_counter-redis_defaults"]);
    assert_eq!(
        desired.providers[2].placement,
        Placement::Spread {
            instances: 0,
            spreads: vec![]
        },
        "instances: 0 scales to zero"
    );
    assert_eq!(desired.providers[3].image, "builtin://sql-mysql");

    assert_eq!(
        desired.links,
        [
            link(
                "kv_counter-counter",
                "kv_counter-kvredis",
                "default",
                "wasi",
                "keyvalue",
                &["store", "atomics"],
                &[],
                &["kv_counter-redis_url"],
            ),
            link(
                "kv_counter-counter",
                "kv_counter-kvnats",
                "cache",
                "wasi",
                "keyvalue",
                &["store"],
                &[],
                &["nats-bucket"],
            ),
            link(
                "kv_counter-counter",
                "kv_counter-audit_db",
                "default",
                "wasi",
                "sql",
                &["types", "readwrite"],
                &[],
                &["kv_counter-audit_connection"],
            ),
            link(
                "http-server",
                "kv_counter-counter",
                "default",
                "wasi",
                "http",
                &["incoming-handler"],
                &["kv_counter-listen"],
                &[],
            ),
        ]
    );

    let expected_configs: BTreeMap<String, BTreeMap<String, String>> = [
        (
            "kv_counter-counter_settings",
            map(&[("prefix", "hits"), ("start", "0")]),
        ),
        (
            "kv_counter-redis_url",
            map(&[("url", "redis://127.0.0.1:6379")]),
        ),
        (
            "kv_counter-audit_connection",
            map(&[("url", "mysql://audit@db.internal/audit")]),
        ),
        ("kv_counter-listen", map(&[("address", "0.0.0.0:8080")])),
        ("kv_counter-redis_defaults", map(&[("pool_size", "8")])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(desired.configs, expected_configs);
    assert!(desired.retired_links.is_empty() && desired.retired_configs.is_empty());
}

#[test]
fn every_valid_file_round_trips_through_json() {
    for path in yaml_files("valid") {
        let (manifest, _) = Manifest::from_file(&path).unwrap();
        let json = serde_json::to_string(&manifest).unwrap();
        let back = Manifest::parse(&json, Some("stored.json"))
            .unwrap_or_else(|e| panic!("{}: {e}\n{json}", path.display()));
        assert_eq!(back.desired(), manifest.desired(), "{}", path.display());
    }
}

struct Expectation {
    path: String,
    message: String,
    line: Option<usize>,
}

fn expectation(file: &Path, text: &str) -> Expectation {
    let first = text.lines().next().unwrap_or_default();
    let Some(spec) = first.strip_prefix("# expect:") else {
        panic!(
            "{}: first line must be `# expect: PATH | MESSAGE`",
            file.display()
        );
    };
    let mut parts = spec.split(" | ");
    let path = parts.next().unwrap_or_default().trim().to_string();
    let message = parts.next().unwrap_or_default().trim().to_string();
    let line = parts.next().map(|l| {
        l.trim()
            .strip_prefix("line ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: bad `| line N`", file.display()))
    });
    assert!(
        !message.is_empty(),
        "{}: empty expected message",
        file.display()
    );
    Expectation {
        path,
        message,
        line,
    }
}

#[test]
fn every_invalid_file_fails_with_its_error() {
    let files = yaml_files("invalid");
    assert!(files.len() >= 15, "only {} invalid manifests", files.len());
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let expect = expectation(&file, &text);
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let errors = match Manifest::parse(&text, Some(&name)) {
            Ok(_) => panic!("{name} must be refused"),
            Err(errors) => errors,
        };
        let found = errors
            .errors()
            .any(|d| d.path == expect.path && d.message.contains(&expect.message));
        assert!(
            found,
            "{name}: expected an error at `{}` containing `{}`, got:\n{errors}",
            expect.path, expect.message
        );
        let rendered = errors.to_string();
        assert!(
            rendered.contains(&name),
            "{name}: source missing in {rendered}"
        );
        if let Some(line) = expect.line {
            assert!(
                errors
                    .errors()
                    .any(|d| d.location.is_some_and(|(l, _)| l == line)),
                "{name}: expected line {line}, got:\n{errors}"
            );
            assert!(rendered.contains(&format!("{name}:{line}:")), "{rendered}");
        }
    }
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  components:\n    \
                - {name: a, type: widget, properties: {image: x}}\n    \
                - {name: a, type: component, properties: {}}\n";
    let errors = Manifest::parse(text, None).unwrap_err();
    let paths: Vec<&str> = errors.errors().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "apiVersion",
            "kind",
            "spec.components[0].type",
            "spec.components[1].name",
            "spec.components[1].properties.image",
        ],
        "{errors}"
    );
}

/// A small deterministic generator (xorshift64*), so the mutations are the same each run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"-1",
    b"0",
    b"99999999999",
    b":",
    b"- ",
    b"[",
    b"{",
    b"\"",
    b"&a",
    b"*a",
    b"~",
    b"!!binary",
    b"\n  ",
    b"\t",
    b"link",
    b"daemonscaler",
    b"capability",
    b"@",
    b"...",
];

fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => bytes.truncate(at),
            2 if at < bytes.len() => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                bytes.splice(at..at, piece.iter().copied());
            }
            _ => {
                // Duplicate a line-sized chunk elsewhere (repeated keys, components, traits).
                let start = rng.below(bytes.len());
                let end = (start + rng.below(80)).min(bytes.len());
                let chunk = bytes[start..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, chunk);
            }
        }
    }
    bytes
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng(0x5eed_7e11_15ad_0001);
    let mut sources: Vec<Vec<u8>> = yaml_files("valid")
        .into_iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    sources.extend(
        yaml_files("invalid")
            .into_iter()
            .map(|p| fs::read(p).unwrap()),
    );
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..600 {
        let source = sources[round % sources.len()].clone();
        let bytes = mutate(&mut rng, source);
        let text = String::from_utf8_lossy(&bytes);
        match Manifest::parse_with_warnings(&text, Some("mutant.yaml")) {
            Ok((manifest, _)) => {
                accepted += 1;
                let desired = manifest.desired();
                assert_eq!(desired.app, manifest.name());
                assert!(serde_json::to_string(&manifest).is_ok());
            }
            Err(errors) => {
                refused += 1;
                assert!(errors.errors().count() > 0);
                let _ = errors.to_string();
            }
        }
        // Validation and desired() of whatever parsed must not panic either.
        if let Ok(manifest) = Manifest::from_yaml(&text, None) {
            let _ = manifest.validate();
            let _ = manifest.desired();
        }
    }
    println!("mutations: {accepted} accepted, {refused} refused");
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn hostile_inputs_are_refused_not_fatal() {
    let deep = "a: ".repeat(10_000) + "b";
    let nested = "[".repeat(100_000);
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n\
                  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]\n";
    for text in [
        "",
        "~",
        "42",
        "\u{0}",
        &deep,
        &nested,
        laughs,
        "apiVersion: [",
        "{}",
    ] {
        assert!(Manifest::parse(text, None).is_err(), "{text:.40}");
    }
}
