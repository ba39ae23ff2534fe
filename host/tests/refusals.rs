//! Components the host must refuse, each with a specific message, while it keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestHost, client};
use trellis_host::{ComponentLimits, LoadError};
use trellis_testing::{CORE_MODULE_WAT, Signer, guest, tamper};

fn refusal(host: &TestHost, bytes: &[u8]) -> String {
    match host.load_bytes("candidate", bytes, ComponentLimits::default()) {
        Ok(_) => panic!("the component was accepted"),
        Err(e) => e.to_string(),
    }
}

async fn assert_still_serving(host: &TestHost) {
    let response = client().get(host.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_component_is_refused_with_its_own_reason_and_the_host_stays_up() {
    let host = TestHost::start().await;
    let hello = host.load_guest("http_hello", &[], ComponentLimits::default());
    host.route(None, "/", hello);
    let wasm = guest("http_hello").unwrap();
    let signed = host.signer.sign(&wasm, "hello", &[]).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("unsigned", wasm.clone(), "is not signed"),
        ("tampered", tamper(&signed).unwrap(), "hash mismatch"),
        (
            "untrusted issuer",
            Signer::new().sign(&wasm, "hello", &[]).unwrap(),
            "is not trusted",
        ),
        (
            "expired",
            host.signer.sign_expired(&wasm, "hello").unwrap(),
            "expired at",
        ),
        (
            "not yet valid",
            host.signer.sign_not_yet_valid(&wasm, "hello").unwrap(),
            "not valid yet",
        ),
        (
            "truncated",
            signed[..signed.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "not wasm",
            b"#!/bin/sh\necho hello\n".to_vec(),
            "not a WebAssembly file",
        ),
        ("empty", Vec::new(), "not a WebAssembly file"),
        (
            "core module",
            host.signer
                .sign(&wat::parse_str(CORE_MODULE_WAT).unwrap(), "core", &[])
                .unwrap(),
            "core WebAssembly module, not a component",
        ),
    ];
    for (case, bytes, expected) in cases {
        let message = refusal(&host, &bytes);
        assert!(message.contains(expected), "{case}: {message}");
        assert!(
            message.contains("candidate"),
            "{case} names the component: {message}"
        );
        assert_still_serving(&host).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_issuer_message_says_how_to_trust_it() {
    let host = TestHost::start().await;
    let other = Signer::new();
    let signed = other
        .sign(&guest("http_hello").unwrap(), "hello", &[])
        .unwrap();
    let message = refusal(&host, &signed);
    assert!(
        message.contains(&format!("--trusted-issuer {}", other.public_key())),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_not_granted_is_refused_naming_the_interface() {
    let host = TestHost::start().await;
    let wasm = guest("config_logging").unwrap();
    let only_logging = host
        .signer
        .sign(&wasm, "config-logging", &["wasi:logging/logging"])
        .unwrap();
    let err = host
        .load_bytes("config-logging", &only_logging, ComponentLimits::default())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::NotGranted { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("wasi:config/store@0.2.0-draft"),
        "{message}"
    );
    assert!(message.contains("--grant wasi:config/store"), "{message}");

    let both = host
        .signer
        .sign(
            &wasm,
            "config-logging",
            &["wasi:config/store", "wasi:logging/*"],
        )
        .unwrap();
    assert!(
        host.load_bytes("config-logging", &both, ComponentLimits::default())
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_runs_only_when_the_host_allows_it() {
    let host = TestHost::start_with(true).await;
    let component = host
        .load_bytes(
            "dev",
            &guest("http_hello").unwrap(),
            ComponentLimits::default(),
        )
        .unwrap();
    assert!(component.claims().is_none());
    host.route(None, "/", component);
    assert_still_serving(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_needing_an_interface_the_host_lacks_is_refused_by_name() {
    // A component importing an interface no capability serves.
    let wat = r#"(component
        (import "wasi:blobstore/container@0.2.0-draft" (instance))
    )"#;
    let host = TestHost::start().await;
    let signed = host
        .signer
        .sign(
            &wat::parse_str(wat).unwrap(),
            "blobs",
            &["wasi:blobstore/*"],
        )
        .unwrap();
    let message = refusal(&host, &signed);
    assert!(
        message.contains("wasi:blobstore/container@0.2.0-draft"),
        "{message}"
    );
    assert!(message.contains("does not provide"), "{message}");
}
