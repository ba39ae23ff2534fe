//! The template provider against the same conformance body every key-value provider passes
//! (`trellis_testing::keyvalue::conformance`), plus what is particular to keeping data in
//! files: it survives a restart, a crashed write leaves nothing half-done, and a link without
//! a usable `dir` is refused when it is put.

use std::collections::BTreeMap;
use std::sync::Arc;

use trellis_provider_sdk::{CallContext, Provider};
use trellis_provider_template::FileKvProvider;
use trellis_testing::keyvalue::{Backend, COMPONENT, conformance, link, put_link, start};

fn dir_config(dir: &std::path::Path) -> BTreeMap<String, String> {
    BTreeMap::from([("dir".to_string(), dir.display().to_string())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_provider_conforms() {
    // Two instances on one directory stand for two hosts sharing a backend; a second
    // directory is "another store" that a differently configured link must not see.
    let shared = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let backend = Backend::new([
        ("dir", shared.path().display().to_string()),
        ("page_size", "7".to_string()),
    ])
    .with_other_store([
        ("dir", other.path().display().to_string()),
        ("page_size", "7".to_string()),
    ]);
    conformance(|| Arc::new(FileKvProvider::new()), backend).await;
}

#[tokio::test]
async fn data_survives_a_new_provider_instance_and_a_crashed_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir_config(dir.path());
    let cx = CallContext::new(COMPONENT, "default");

    let first = Arc::new(FileKvProvider::new());
    let kv = start(first.clone()).await;
    put_link(first.as_ref(), &link("default", &config)).await;
    kv.set(&cx, "orders", "greeting", b"hello".to_vec())
        .await
        .unwrap();
    kv.set(&cx, "orders", "blob", vec![0, 255, 1])
        .await
        .unwrap();
    assert_eq!(kv.increment(&cx, "orders", "n", 41).await.unwrap(), 41);
    first.shutdown().await.unwrap();
    drop((kv, first));

    // Every write went through a temporary file that was renamed into place: none is left.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"orders.json".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");

    // A crash in the middle of a write leaves, at worst, a partial temporary file beside the
    // bucket file — never a partial bucket file. Simulate one.
    std::fs::write(
        dir.path().join(".orders.json.999.0.tmp"),
        b"{\"greeting\": \"tr",
    )
    .unwrap();

    // A new instance (a restarted process) with a link to the same directory finds it all.
    let second = Arc::new(FileKvProvider::new());
    let kv = start(second.clone()).await;
    put_link(second.as_ref(), &link("default", &config)).await;
    assert_eq!(
        kv.get(&cx, "orders", "greeting").await.unwrap(),
        Some(b"hello".to_vec())
    );
    assert_eq!(
        kv.get(&cx, "orders", "blob").await.unwrap(),
        Some(vec![0, 255, 1])
    );
    assert_eq!(kv.increment(&cx, "orders", "n", 1).await.unwrap(), 42);
    let page = kv.list_keys(&cx, "orders", None).await.unwrap();
    assert_eq!(page.keys, ["blob", "greeting", "n"]);
    assert!(second.health().await.healthy);

    // The file is plain JSON an operator can read.
    let text = std::fs::read_to_string(dir.path().join("orders.json")).unwrap();
    assert!(text.contains(r#""n": "42""#), "{text}");
}

#[tokio::test]
async fn a_link_without_a_usable_dir_is_refused_with_the_key_to_set() {
    let provider = Arc::new(FileKvProvider::new());
    let kv = start(provider.clone()).await;
    let scratch = tempfile::tempdir().unwrap();
    let a_file = scratch.path().join("a-file");
    std::fs::write(&a_file, b"not a directory").unwrap();

    let bad: Vec<(&str, BTreeMap<String, String>)> = vec![
        ("missing", BTreeMap::new()),
        ("blank", BTreeMap::from([("dir".into(), "  ".into())])),
        (
            "relative",
            BTreeMap::from([("dir".into(), "data/kv".into())]),
        ),
        ("a file", dir_config(&a_file)),
        ("under a file", dir_config(&a_file.join("kv"))),
        (
            "bad page size",
            BTreeMap::from([
                ("dir".into(), scratch.path().display().to_string()),
                ("page_size".into(), "0".into()),
            ]),
        ),
    ];
    for (case, config) in bad {
        let err = provider
            .receive_link_config_as_target(&link("default", &config))
            .await
            .expect_err(case);
        let key = if case == "bad page size" {
            "`page_size`"
        } else {
            "`dir`"
        };
        assert!(err.0.contains(key), "{case}: {err}");
    }

    // Nothing was stored, so calls through that link are refused, saying how to put it.
    let cx = CallContext::new(COMPONENT, "default");
    trellis_testing::keyvalue::expect_unknown_link(
        kv.get(&cx, "b", "k").await,
        COMPONENT,
        "default",
    );

    // A directory that does not exist yet is created.
    let fresh = scratch.path().join("new").join("kv");
    put_link(provider.as_ref(), &link("default", &dir_config(&fresh))).await;
    kv.set(&cx, "b", "k", b"v".to_vec()).await.unwrap();
    assert!(fresh.join("b.json").is_file());

    // A linked directory that disappears makes the provider unhealthy, naming it.
    std::fs::remove_dir_all(&fresh).unwrap();
    let health = provider.health().await;
    assert!(!health.healthy);
    assert!(health.message.contains("kv"), "{}", health.message);
    // …and calls fail with an error value, not a panic.
    assert!(kv.set(&cx, "b", "k", b"v".to_vec()).await.is_err());
}

#[tokio::test]
async fn bucket_identifiers_cannot_escape_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("kv");
    let provider = Arc::new(FileKvProvider::new());
    let kv = start(provider.clone()).await;
    put_link(provider.as_ref(), &link("default", &dir_config(&dir))).await;
    let cx = CallContext::new(COMPONENT, "default");
    for bucket in ["../escape", "/etc/passwd", ".hidden", "a\0b"] {
        kv.set(&cx, bucket, "k", b"v".to_vec()).await.unwrap();
        assert_eq!(kv.get(&cx, bucket, "k").await.unwrap(), Some(b"v".to_vec()));
    }
    let outside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["kv"], "only the linked directory was written");
}
