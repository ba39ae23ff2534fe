//! One conformance test body for every key-value provider (`wasi:keyvalue` store, atomics,
//! batch), run by each provider crate against a real backend.
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn conforms() {
//!     let redis = RedisServer::start().unwrap();
//!     let backend = Backend::new([("url", redis.url())])
//!         .with_other_store([("url", format!("{}/1", redis.url()))]);
//!     conformance(|| Arc::new(RedisProvider::new()), backend).await;
//! }
//! ```
//!
//! `make` is called twice: the two instances stand for two hosts of a lattice, each with its
//! own link (and so its own connection) to one shared backend. The body covers `open`, `get`
//! of absent and present keys, `set` replacing, `delete` (absent keys too), `exists`,
//! `list_keys` paged through cursors, the batch calls, `increment` (absent = 0, the new value,
//! stored as decimal bytes, a clear error on a non-numeric value), bucket isolation, link
//! isolation and link deletion, the error for a call without a link, and the headline: 1,000
//! concurrent increments split across the two instances end at exactly 1,000, each
//! increment returning a different value.
//!
//! Every failure panics with what was being checked. Keys are plain (`[a-z0-9-]`) so that
//! every backend accepts them, and the backend is expected to be private to the test.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;

use trellis_provider_sdk::keyvalue::{INTERFACES, KeyValue, KvError};
use trellis_provider_sdk::{CallContext, HealthStatus, InitContext, LinkConfig, Provider};

/// The provider id the links of the conformance body target.
pub const PROVIDER_ID: &str = "kv-under-test";
/// The component that calls the provider in the conformance body.
pub const COMPONENT: &str = "counter";
/// How many increments the headline check runs (half through each instance).
pub const INCREMENTS: u64 = 1_000;
/// How many keys the listing check writes; a backend's `page_size` should be well below it
/// so that listing takes several pages.
pub const LISTED_KEYS: usize = 60;

/// Where the provider under test keeps its data, as link target configs.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    /// The target config of a link that reaches the shared backend.
    pub config: BTreeMap<String, String>,
    /// The target config of a link that reaches a different store of the same kind (another
    /// Redis database, another NATS server), to check that links are scoped by their config.
    /// `None` when the provider keeps one store for every link (memory).
    pub other_store: Option<BTreeMap<String, String>>,
}

impl Backend {
    pub fn new<K: Into<String>, V: Into<String>>(config: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            config: to_config(config),
            other_store: None,
        }
    }

    pub fn with_other_store<K: Into<String>, V: Into<String>>(
        mut self,
        config: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.other_store = Some(to_config(config));
        self
    }
}

fn to_config<K: Into<String>, V: Into<String>>(
    config: impl IntoIterator<Item = (K, V)>,
) -> BTreeMap<String, String> {
    config
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// A link from [`COMPONENT`] named `link_name` to the provider, with `target_config`.
pub fn link(link_name: &str, target_config: &BTreeMap<String, String>) -> LinkConfig {
    LinkConfig {
        source_id: COMPONENT.into(),
        target: PROVIDER_ID.into(),
        link_name: link_name.into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into(), "batch".into()],
        source_config: BTreeMap::new(),
        target_config: target_config.clone(),
    }
}

/// Starts a provider as a host would: `init`, then the capability it serves.
pub async fn start(provider: Arc<dyn Provider>) -> Arc<dyn KeyValue> {
    let init = InitContext {
        provider_id: PROVIDER_ID.into(),
        lattice: "default".into(),
        host_id: "conformance-host".into(),
        config: BTreeMap::new(),
    };
    must(provider.init(&init).await, "init");
    let capabilities = provider.capabilities();
    let mut interfaces = capabilities.interfaces();
    interfaces.sort_unstable();
    let mut expected = INTERFACES.to_vec();
    expected.sort_unstable();
    assert_eq!(
        interfaces, expected,
        "a key-value provider serves store, atomics and batch"
    );
    match capabilities.keyvalue {
        Some(kv) => kv,
        None => panic!("the provider's capabilities() has no keyvalue"),
    }
}

/// Puts a link on a provider, panicking with the provider's message if it refuses.
pub async fn put_link(provider: &dyn Provider, link: &LinkConfig) {
    must(
        provider.receive_link_config_as_target(link).await,
        &format!("putting link `{}`", link.link_name),
    );
}

/// The conformance body. See the module docs.
pub async fn conformance<P, F>(make: F, backend: Backend)
where
    P: Provider,
    F: Fn() -> Arc<P>,
{
    let host_a: Arc<dyn Provider> = make();
    let host_b: Arc<dyn Provider> = make();
    let kv_a = start(host_a.clone()).await;
    let kv_b = start(host_b.clone()).await;

    calls_without_a_link_fail_with_a_fix(kv_a.as_ref()).await;

    let default_link = link("default", &backend.config);
    put_link(host_a.as_ref(), &default_link).await;
    put_link(host_b.as_ref(), &default_link).await;
    let cx = CallContext::new(COMPONENT, "default");

    store(kv_a.as_ref(), kv_b.as_ref(), &cx).await;
    batch(kv_a.as_ref(), &cx).await;
    listing(kv_a.as_ref(), kv_b.as_ref(), &cx).await;
    increments(kv_a.as_ref(), kv_b.as_ref(), &cx).await;
    buckets_are_isolated(kv_a.as_ref(), &cx).await;
    links(host_a.as_ref(), kv_a.as_ref(), &cx, &backend).await;
    concurrent_increments_across_two_hosts(kv_a.clone(), kv_b.clone(), &cx).await;

    for (name, host) in [("a", &host_a), ("b", &host_b)] {
        let health: HealthStatus = host.health().await;
        assert!(health.healthy, "host {name} unhealthy: {}", health.message);
    }
    for host in [&host_a, &host_b] {
        must(
            host.delete_link_as_target(&default_link).await,
            "link delete",
        );
        must(host.shutdown().await, "shutdown");
    }
}

async fn calls_without_a_link_fail_with_a_fix(kv: &dyn KeyValue) {
    let stranger = CallContext::new("stranger", "elsewhere");
    let err = kv.get(&stranger, "conformance", "k").await;
    expect_unknown_link(err, "stranger", "elsewhere");
    let err = kv.increment(&stranger, "conformance", "k", 1).await;
    expect_unknown_link(err, "stranger", "elsewhere");
    let err = kv.open(&stranger, "conformance").await;
    expect_unknown_link(err, "stranger", "elsewhere");
}

/// Asserts that a call failed because the link is unknown, with a message naming the
/// component and the link and saying how to fix it.
pub fn expect_unknown_link<T: Debug>(result: Result<T, KvError>, component: &str, link: &str) {
    match result {
        Err(KvError::Other(message)) => {
            assert!(
                message.contains(component),
                "names the component: {message}"
            );
            assert!(message.contains(link), "names the link: {message}");
            assert!(
                message.contains("link put"),
                "says to put a link: {message}"
            );
        }
        other => panic!("a call through an unknown link must fail with Other, got {other:?}"),
    }
}

async fn store(a: &dyn KeyValue, b: &dyn KeyValue, cx: &CallContext) {
    let bucket = "conformance";
    must(a.open(cx, bucket).await, "open");
    must(b.open(cx, bucket).await, "open on the second host");

    assert_eq!(
        must(a.get(cx, bucket, "greeting").await, "get absent"),
        None
    );
    assert!(!must(
        a.exists(cx, bucket, "greeting").await,
        "exists absent"
    ));

    must(
        a.set(cx, bucket, "greeting", b"hello".to_vec()).await,
        "set",
    );
    assert_eq!(
        must(a.get(cx, bucket, "greeting").await, "get"),
        Some(b"hello".to_vec())
    );
    assert!(must(a.exists(cx, bucket, "greeting").await, "exists"));
    assert_eq!(
        must(
            b.get(cx, bucket, "greeting").await,
            "get on the second host"
        ),
        Some(b"hello".to_vec()),
        "both hosts see one backend"
    );

    must(
        b.set(cx, bucket, "greeting", b"bonjour".to_vec()).await,
        "set replace",
    );
    assert_eq!(
        must(a.get(cx, bucket, "greeting").await, "get replaced"),
        Some(b"bonjour".to_vec())
    );

    let binary = vec![0u8, 255, 1, 128, b'\n'];
    must(
        a.set(cx, bucket, "binary", binary.clone()).await,
        "set bytes",
    );
    assert_eq!(
        must(a.get(cx, bucket, "binary").await, "get bytes"),
        Some(binary)
    );
    must(a.set(cx, bucket, "empty", Vec::new()).await, "set empty");
    assert_eq!(
        must(a.get(cx, bucket, "empty").await, "get empty"),
        Some(Vec::new()),
        "an empty value is present, not absent"
    );
    assert!(must(a.exists(cx, bucket, "empty").await, "exists empty"));

    must(a.delete(cx, bucket, "greeting").await, "delete");
    assert_eq!(
        must(a.get(cx, bucket, "greeting").await, "get deleted"),
        None
    );
    assert!(!must(
        b.exists(cx, bucket, "greeting").await,
        "exists deleted"
    ));
    must(a.delete(cx, bucket, "greeting").await, "delete again");
    must(a.delete(cx, bucket, "never-written").await, "delete absent");

    must(
        a.set(cx, bucket, "greeting", b"again".to_vec()).await,
        "set deleted",
    );
    assert_eq!(
        must(b.get(cx, bucket, "greeting").await, "get re-set"),
        Some(b"again".to_vec())
    );
}

async fn batch(kv: &dyn KeyValue, cx: &CallContext) {
    let bucket = "conformance-batch";
    let items: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("item-{i}"), format!("value-{i}").into_bytes()))
        .collect();
    must(kv.set_many(cx, bucket, items.clone()).await, "set_many");
    must(
        kv.set_many(cx, bucket, Vec::new()).await,
        "set_many of nothing",
    );

    let asked = vec![
        "item-0".to_string(),
        "missing".into(),
        "item-2".into(),
        "item-1".into(),
    ];
    let found = must(kv.get_many(cx, bucket, asked).await, "get_many");
    assert_eq!(
        found,
        vec![
            Some(items[0].clone()),
            None,
            Some(items[2].clone()),
            Some(items[1].clone()),
        ],
        "get_many answers in the order asked, None for absent keys"
    );
    assert_eq!(
        must(
            kv.get_many(cx, bucket, Vec::new()).await,
            "get_many of nothing"
        ),
        Vec::new()
    );

    let doomed = vec!["item-0".to_string(), "item-2".into(), "missing".into()];
    must(kv.delete_many(cx, bucket, doomed).await, "delete_many");
    must(
        kv.delete_many(cx, bucket, Vec::new()).await,
        "delete_many of nothing",
    );
    let keys = items.iter().map(|(k, _)| k.clone()).collect();
    let found = must(kv.get_many(cx, bucket, keys).await, "get_many after delete");
    assert_eq!(found, vec![None, Some(items[1].clone()), None]);
}

/// Pages through `bucket` from the start, returning every key and how many pages it took.
pub async fn list_all(kv: &dyn KeyValue, cx: &CallContext, bucket: &str) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = must(kv.list_keys(cx, bucket, cursor).await, "list_keys");
        pages += 1;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => {
                assert!(pages < 10_000, "list_keys never returned a last page");
                cursor = Some(next);
            }
            None => return (keys, pages),
        }
    }
}

async fn listing(a: &dyn KeyValue, b: &dyn KeyValue, cx: &CallContext) {
    let bucket = "conformance-listing";
    let (keys, _) = list_all(a, cx, bucket).await;
    assert!(keys.is_empty(), "a fresh bucket lists no keys: {keys:?}");

    let expected: BTreeSet<String> = (0..LISTED_KEYS).map(|i| format!("key-{i:03}")).collect();
    let items = expected
        .iter()
        .map(|k| (k.clone(), b"x".to_vec()))
        .collect();
    must(a.set_many(cx, bucket, items).await, "set_many for listing");

    for kv in [a, b] {
        let (keys, pages) = list_all(kv, cx, bucket).await;
        let listed: BTreeSet<String> = keys.iter().cloned().collect();
        assert_eq!(keys.len(), listed.len(), "a key listed twice: {keys:?}");
        assert_eq!(listed, expected, "list_keys covers every key exactly once");
        assert!(
            pages > 1,
            "{LISTED_KEYS} keys should take several pages (set a small page size in the \
             backend config)"
        );
    }

    must(a.delete(cx, bucket, "key-000").await, "delete a listed key");
    let (keys, _) = list_all(a, cx, bucket).await;
    assert_eq!(keys.len(), LISTED_KEYS - 1, "deleted keys are not listed");
    assert!(!keys.contains(&"key-000".to_string()));
}

async fn increments(a: &dyn KeyValue, b: &dyn KeyValue, cx: &CallContext) {
    let bucket = "conformance-counters";
    assert_eq!(
        must(
            a.increment(cx, bucket, "visits", 1).await,
            "increment absent"
        ),
        1
    );
    assert_eq!(
        must(b.increment(cx, bucket, "visits", 41).await, "increment"),
        42
    );
    assert_eq!(
        must(a.increment(cx, bucket, "visits", 0).await, "increment by 0"),
        42
    );
    assert_eq!(
        must(a.get(cx, bucket, "visits").await, "get a counter"),
        Some(b"42".to_vec()),
        "a counter is stored as decimal text"
    );

    must(
        a.set(cx, bucket, "preset", b"7".to_vec()).await,
        "set a number",
    );
    assert_eq!(
        must(b.increment(cx, bucket, "preset", 3).await, "increment set"),
        10
    );

    must(a.delete(cx, bucket, "visits").await, "delete a counter");
    assert_eq!(
        must(
            a.increment(cx, bucket, "visits", 5).await,
            "increment deleted"
        ),
        5,
        "a deleted counter starts again from 0"
    );

    must(a.set(cx, bucket, "word", b"abc".to_vec()).await, "set text");
    match a.increment(cx, bucket, "word", 1).await {
        Err(KvError::Other(message)) => {
            assert!(message.contains("word"), "names the key: {message}")
        }
        other => panic!("incrementing a non-numeric value must fail with Other: {other:?}"),
    }
    assert_eq!(
        must(
            a.get(cx, bucket, "word").await,
            "get after a failed increment"
        ),
        Some(b"abc".to_vec()),
        "a failed increment leaves the value alone"
    );
}

async fn buckets_are_isolated(kv: &dyn KeyValue, cx: &CallContext) {
    let (alpha, beta) = ("conformance-alpha", "conformance-beta");
    must(kv.open(cx, alpha).await, "open alpha");
    must(kv.open(cx, beta).await, "open beta");
    must(
        kv.set(cx, alpha, "shared", b"a".to_vec()).await,
        "set in alpha",
    );
    must(
        kv.set(cx, alpha, "only-alpha", b"a".to_vec()).await,
        "set in alpha",
    );
    assert_eq!(must(kv.get(cx, beta, "shared").await, "get in beta"), None);
    assert!(!must(
        kv.exists(cx, beta, "only-alpha").await,
        "exists in beta"
    ));

    must(
        kv.set(cx, beta, "shared", b"b".to_vec()).await,
        "set in beta",
    );
    assert_eq!(
        must(kv.get(cx, alpha, "shared").await, "get in alpha"),
        Some(b"a".to_vec())
    );
    assert_eq!(
        must(kv.get(cx, beta, "shared").await, "get in beta"),
        Some(b"b".to_vec())
    );
    assert_eq!(
        must(kv.increment(cx, beta, "n", 2).await, "increment in beta"),
        2
    );
    assert_eq!(
        must(kv.increment(cx, alpha, "n", 1).await, "increment in alpha"),
        1
    );

    let (listed, _) = list_all(kv, cx, beta).await;
    let listed: BTreeSet<String> = listed.into_iter().collect();
    let expected: BTreeSet<String> = ["shared", "n"].into_iter().map(String::from).collect();
    assert_eq!(listed, expected, "beta lists only its own keys");

    must(kv.delete(cx, alpha, "shared").await, "delete in alpha");
    assert_eq!(
        must(
            kv.get(cx, beta, "shared").await,
            "get in beta after delete in alpha"
        ),
        Some(b"b".to_vec())
    );
}

async fn links(host: &dyn Provider, kv: &dyn KeyValue, cx: &CallContext, backend: &Backend) {
    let bucket = "conformance-links";
    must(
        kv.set(cx, bucket, "seen", b"by default".to_vec()).await,
        "set",
    );

    // A second link with the same config reaches the same store.
    let twin = link("twin", &backend.config);
    put_link(host, &twin).await;
    let twin_cx = CallContext::new(COMPONENT, "twin");
    assert_eq!(
        must(
            kv.get(&twin_cx, bucket, "seen").await,
            "get through a twin link"
        ),
        Some(b"by default".to_vec())
    );

    // A link whose config names another store sees none of this one's keys.
    if let Some(other_config) = &backend.other_store {
        let other = link("other", other_config);
        put_link(host, &other).await;
        let other_cx = CallContext::new(COMPONENT, "other");
        assert_eq!(
            must(
                kv.get(&other_cx, bucket, "seen").await,
                "get through the other link"
            ),
            None,
            "a link to another store does not see this store's keys"
        );
        must(
            kv.set(&other_cx, bucket, "elsewhere", b"o".to_vec()).await,
            "set other",
        );
        assert_eq!(
            must(
                kv.increment(&other_cx, bucket, "n", 1).await,
                "increment other"
            ),
            1
        );
        assert!(!must(
            kv.exists(cx, bucket, "elsewhere").await,
            "exists via default"
        ));
        assert_eq!(
            must(kv.increment(cx, bucket, "n", 1).await, "increment default"),
            1
        );
        must(
            host.delete_link_as_target(&other).await,
            "delete the other link",
        );
        expect_unknown_link(kv.get(&other_cx, bucket, "seen").await, COMPONENT, "other");
    }

    // A deleted link is unknown again; the others keep working.
    must(
        host.delete_link_as_target(&twin).await,
        "delete the twin link",
    );
    expect_unknown_link(kv.get(&twin_cx, bucket, "seen").await, COMPONENT, "twin");
    assert_eq!(
        must(
            kv.get(cx, bucket, "seen").await,
            "get after deleting another link"
        ),
        Some(b"by default".to_vec())
    );
    // Deleting a link that is not there is not an error.
    must(
        host.delete_link_as_target(&twin).await,
        "delete an absent link",
    );
}

async fn concurrent_increments_across_two_hosts(
    a: Arc<dyn KeyValue>,
    b: Arc<dyn KeyValue>,
    cx: &CallContext,
) {
    let bucket = "conformance-race";
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..INCREMENTS {
        let kv = if i % 2 == 0 { a.clone() } else { b.clone() };
        let cx = cx.clone();
        tasks.spawn(async move { kv.increment(&cx, bucket, "hits", 1).await });
    }
    let mut returned = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let value = match joined {
            Ok(result) => must(result, "a concurrent increment"),
            Err(err) => panic!("an increment task failed: {err}"),
        };
        returned.push(value);
    }
    returned.sort_unstable();
    let expected: Vec<u64> = (1..=INCREMENTS).collect();
    assert!(
        returned == expected,
        "each increment returns a different new value, 1..={INCREMENTS}; got {} distinct, \
         max {:?}",
        returned.iter().collect::<BTreeSet<_>>().len(),
        returned.last()
    );
    let total = INCREMENTS.to_string().into_bytes();
    for (name, kv) in [("a", &a), ("b", &b)] {
        assert_eq!(
            must(kv.get(cx, bucket, "hits").await, "get the raced counter"),
            Some(total.clone()),
            "host {name} sees all {INCREMENTS} increments"
        );
    }
}

/// The value of a call that must succeed, or a panic saying which step failed and why.
pub fn must<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what} failed: {err:?}"),
    }
}
