//! Key-value and SQL capabilities through linked providers, on hosts started with the
//! `trellis` binary, against real NATS JetStream, Redis, MariaDB and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::two_hosts::{Mode, TwoHosts, ok, reference, request, signed, wait_listed};
use common::{HostProcess, wait_for_hosts};
use futures::StreamExt as _;
use trellis_testing::nats::{NatsServer, free_port};

/// The headline of the key-value capability: 1,000 increments from two hosts, concurrently,
/// through the same provider type running inside each host, end at exactly 1,000.
async fn counter_from_two_hosts(reference: &str, link_config: Vec<String>) {
    let lattice = TwoHosts::start();
    let url = lattice.url();
    let counter = lattice.kv_counter();
    let mut put = vec!["config".to_string(), "put".into(), "kv-link".into()];
    put.extend(link_config);
    ok(&url, &put.iter().map(String::as_str).collect::<Vec<_>>());
    let bucket = format!("counter{}", free_port().unwrap());
    ok(
        &url,
        &["config", "put", "counter", &format!("bucket={bucket}")],
    );
    lattice.provider_everywhere(reference, "kv");
    lattice.link_counter("kv", &["--target-config", "kv-link"]);
    lattice.component_everywhere(&counter, "counter", &["counter"]);

    let client = reqwest::Client::new();
    let calls = (0..1000).map(|i| {
        let client = client.clone();
        let addr = lattice.http[i % 2].clone();
        async move {
            request(
                &client,
                &addr,
                "counter",
                reqwest::Method::POST,
                "/increment/hits",
                None,
            )
            .await
        }
    });
    let mut seen = BTreeSet::new();
    let results: Vec<(u16, String)> = futures::stream::iter(calls)
        .buffer_unordered(64)
        .collect()
        .await;
    for (status, body) in results {
        assert_eq!(status, 200, "{body}");
        seen.insert(body.parse::<u64>().unwrap());
    }
    assert_eq!(
        seen,
        (1..=1000).collect::<BTreeSet<u64>>(),
        "every increment returned a distinct value"
    );
    for addr in &lattice.http {
        let (status, body) = request(
            &client,
            addr,
            "counter",
            reqwest::Method::GET,
            "/value/hits",
            None,
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "1000"));
    }
}

async fn counter_on_nats_kv(mode: Mode) {
    // The provider's JetStream KV: a NATS server of its own, as a user's would be.
    let kv = NatsServer::start().unwrap();
    let config = vec![format!("cluster_uri={}", kv.url())];
    counter_from_two_hosts(&reference("keyvalue-nats", mode), config).await;
}

async fn counter_on_redis(mode: Mode) {
    let redis = trellis_testing::redis::RedisServer::start().unwrap();
    counter_from_two_hosts(
        &reference("keyvalue-redis", mode),
        vec![format!("url={}", redis.url())],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_on_nats_kv_from_two_hosts_in_process() {
    counter_on_nats_kv(Mode::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_on_nats_kv_from_two_hosts_out_of_process() {
    counter_on_nats_kv(Mode::OutOfProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_on_redis_from_two_hosts_in_process() {
    counter_on_redis(Mode::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_on_redis_from_two_hosts_out_of_process() {
    counter_on_redis(Mode::OutOfProcess).await;
}

/// One SQL request through the `sql-crud` fixture: (HTTP status, JSON body).
async fn sql(
    client: &reqwest::Client,
    addr: &str,
    op: &str,
    statement: &str,
    params: serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"statement": statement, "params": params}).to_string();
    let (status, text) = request(
        client,
        addr,
        "crud",
        reqwest::Method::POST,
        &format!("/sql/{op}"),
        Some(body),
    )
    .await;
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json)
}

/// Create, read, update and delete with parameters from a component, through a SQL provider
/// linked with the database URL in its target config.
async fn crud_through_a_component(provider: &str, mode: Mode, url: &str, placeholders: [&str; 3]) {
    let lattice = TwoHosts::start();
    let nats = lattice.url();
    let crud = signed(
        &lattice.signer,
        &lattice.dir,
        "sql_crud",
        &["wasi:sql/types", "wasi:sql/readwrite"],
    );
    ok(&nats, &["config", "put", "db", &format!("url={url}")]);
    lattice.provider_everywhere(&reference(provider, mode), "db");
    ok(
        &nats,
        &[
            "link",
            "put",
            "crud",
            "db",
            "wasi:sql",
            "--interface",
            "types",
            "--interface",
            "readwrite",
            "--target-config",
            "db",
        ],
    );
    lattice.component_everywhere(&crud, "crud", &[]);
    let client = reqwest::Client::new();
    let [p1, p2, p3] = placeholders;
    let a = &lattice.http[0];
    let b = &lattice.http[1];

    let (status, body) = sql(
        &client,
        a,
        "exec",
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, item VARCHAR(200) NOT NULL, qty INT)",
        serde_json::json!([]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let insert = format!("INSERT INTO orders (id, item, qty) VALUES ({p1}, {p2}, {p3})");
    let evil = "'; DROP TABLE orders; --";
    for (id, item, qty) in [
        (1, "apple", serde_json::json!({"int32": 3})),
        (2, evil, serde_json::json!({"null": null})),
    ] {
        let params = serde_json::json!([{"int64": id}, {"str": item}, qty]);
        let (status, body) = sql(&client, a, "exec", &insert, params).await;
        assert_eq!((status, &body), (200, &serde_json::json!({"affected": 1})));
    }
    // Read from the other host: the same database, typed values, the injection stored as data.
    let (status, rows) = sql(
        &client,
        b,
        "query",
        "SELECT id, item, qty FROM orders ORDER BY id",
        serde_json::json!([]),
    )
    .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(
        rows,
        serde_json::json!([
            {"id": {"int64": 1}, "item": {"str": "apple"}, "qty": {"int32": 3}},
            {"id": {"int64": 2}, "item": {"str": evil}, "qty": {"null": null}},
        ])
    );
    let update = format!("UPDATE orders SET qty = {p1} WHERE id = {p2}");
    let (status, body) = sql(
        &client,
        b,
        "exec",
        &update,
        serde_json::json!([{"int32": 7}, {"int64": 1}]),
    )
    .await;
    assert_eq!((status, &body), (200, &serde_json::json!({"affected": 1})));
    let select = format!("SELECT qty FROM orders WHERE id = {p1}");
    let (_, rows) = sql(
        &client,
        a,
        "query",
        &select,
        serde_json::json!([{"int64": 1}]),
    )
    .await;
    assert_eq!(rows, serde_json::json!([{"qty": {"int32": 7}}]));
    let delete = format!("DELETE FROM orders WHERE id = {p1}");
    let (status, body) = sql(
        &client,
        a,
        "exec",
        &delete,
        serde_json::json!([{"int64": 2}]),
    )
    .await;
    assert_eq!((status, &body), (200, &serde_json::json!({"affected": 1})));
    // Typed errors reach the component, which answers 422 with the kind: no trap.
    let (status, body) = sql(
        &client,
        a,
        "query",
        "SELEC oops FROM",
        serde_json::json!([]),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["kind"], "syntax", "{body}");
    let (status, body) = sql(
        &client,
        b,
        "exec",
        &insert,
        serde_json::json!([{"int64": 1}, {"str": "dup"}, {"int32": 1}]),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["kind"], "constraint-violation", "{body}");
    let (_, rows) = sql(
        &client,
        b,
        "query",
        "SELECT COUNT(*) AS n FROM orders",
        serde_json::json!([]),
    )
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_crud_on_mariadb_in_process() {
    let db = trellis_testing::sql::mysql_database().await;
    crud_through_a_component("sql-mysql", Mode::InProcess, db.url(), ["?", "?", "?"]).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_crud_on_mariadb_out_of_process() {
    let db = trellis_testing::sql::mysql_database().await;
    crud_through_a_component("sql-mysql", Mode::OutOfProcess, db.url(), ["?", "?", "?"]).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_crud_on_postgres_in_process() {
    let db = trellis_testing::sql::postgres_database().await;
    crud_through_a_component(
        "sql-postgres",
        Mode::InProcess,
        db.url(),
        ["$1", "$2", "$3"],
    )
    .await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_crud_on_postgres_out_of_process() {
    let db = trellis_testing::sql::postgres_database().await;
    crud_through_a_component(
        "sql-postgres",
        Mode::OutOfProcess,
        db.url(),
        ["$1", "$2", "$3"],
    )
    .await;
    db.drop().await;
}

/// SIGKILL a provider process: the host restarts it (a `provider_started` event says so, with
/// the new pid) and the component's calls succeed again, with the data kept by the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_provider_process_is_restarted() {
    let redis = trellis_testing::redis::RedisServer::start().unwrap();
    let lattice = TwoHosts::start();
    let url = lattice.url();
    let events = async_nats::connect(url.as_str()).await.unwrap();
    let mut started = events
        .subscribe("wasmbus.evt.test.provider_started")
        .await
        .unwrap();
    let counter = lattice.kv_counter();
    ok(
        &url,
        &["config", "put", "kv-link", &format!("url={}", redis.url())],
    );
    let host = &lattice.ids[0];
    ok(
        &url,
        &[
            "provider",
            "start",
            host,
            &reference("keyvalue-redis", Mode::OutOfProcess),
            "kv",
        ],
    );
    let first = next_event(&mut started).await;
    let pid = first["data"]["pid"]
        .as_u64()
        .expect("the event names the process id");
    lattice.link_counter("kv", &["--target-config", "kv-link"]);
    lattice.component_everywhere(&counter, "counter", &[]);
    let client = reqwest::Client::new();
    let addr = &lattice.http[1];
    let increment = || {
        request(
            &client,
            addr,
            "counter",
            reqwest::Method::POST,
            "/increment/k",
            None,
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = increment().await;
        if status == 200 {
            assert_eq!(body, "1");
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let again = next_event(&mut started).await;
    assert_ne!(again["data"]["pid"].as_u64(), Some(pid), "{again}");
    assert_eq!(again["data"]["provider_id"], "kv");
    // Calls succeed again (the first may race the restart and fail with a clear error).
    let value = loop {
        let (status, body) = increment().await;
        if status == 200 {
            break body;
        }
        assert!(
            body.contains("kv"),
            "the failure names the provider: {body}"
        );
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "never recovered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(value, "2", "the counter kept its value across the restart");
    println!("provider back {:?} after SIGKILL", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(30));
}

async fn next_event(events: &mut async_nats::Subscriber) -> serde_json::Value {
    let message = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("no event within 30 s")
        .expect("event stream ended");
    serde_json::from_slice(&message.payload).unwrap()
}

/// A component whose import has no link gets an error naming the missing link (not a trap),
/// the host logs it once, and putting the link makes the next request work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_link_is_named_and_logged_once() {
    let lattice = TwoHosts::start();
    let url = lattice.url();
    let counter = lattice.kv_counter();
    lattice.component_everywhere(&counter, "counter", &[]);
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let (status, body) = request(
            &client,
            &lattice.http[0],
            "counter",
            reqwest::Method::POST,
            "/increment/x",
            None,
        )
        .await;
        assert_eq!(status, 500, "{body}");
        assert!(
            body.contains("component `counter` has no link `default` for `wasi:keyvalue/store`")
                && body.contains("trellis link put counter"),
            "{body}"
        );
    }
    let log = std::fs::read_to_string(&lattice.log).unwrap();
    let logged = log
        .matches("has no link `default` for `wasi:keyvalue/store`")
        .count();
    assert_eq!(logged, 1, "logged {logged} times:\n{log}");

    // A provider that is linked but not running anywhere: named, no hang.
    lattice.link_counter("nowhere", &[]);
    let started = Instant::now();
    let (status, body) = request(
        &client,
        &lattice.http[1],
        "counter",
        reqwest::Method::POST,
        "/increment/x",
        None,
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("provider `nowhere` is not running"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Link to a running provider: the next request works.
    lattice.provider_everywhere("builtin://keyvalue-memory", "mem");
    ok(&url, &["link", "del", "counter", "wasi:keyvalue"]);
    lattice.link_counter("mem", &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = request(
            &client,
            &lattice.http[0],
            "counter",
            reqwest::Method::POST,
            "/increment/x",
            None,
        )
        .await;
        if status == 200 {
            assert_eq!(body, "1");
            break;
        }
        assert!(Instant::now() < deadline, "still failing: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// HTTP through the `http-server` provider: it runs on host A, the component only on host B,
/// the link (source = provider) says address and path; a stopped component gives 503.
async fn hello_through_the_http_server(mode: Mode) {
    let lattice = TwoHosts::start();
    let url = lattice.url();
    let hello = signed(&lattice.signer, &lattice.dir, "http_hello", &[]);
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    ok(
        &url,
        &["config", "put", "web", &format!("address={address}")],
    );
    let (a, b) = (&lattice.ids[0], &lattice.ids[1]);
    ok(
        &url,
        &[
            "provider",
            "start",
            a,
            &reference("http-server", mode),
            "http",
        ],
    );
    wait_listed(&url, a, "providers", "http");
    ok(&url, &["scale", b, &hello, "hello", "--count", "10"]);
    wait_listed(&url, b, "components", "hello");
    ok(
        &url,
        &[
            "link",
            "put",
            "http",
            "hello",
            "wasi:http",
            "--interface",
            "incoming-handler",
            "--source-config",
            "web",
        ],
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(response) = client.get(format!("http://{address}/")).send().await {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            if status == 200 {
                assert!(body.contains("Hello from Trellis"), "{body}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the provider never served the component"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Many requests, concurrently, all served.
    let requests = (0..200).map(|_| {
        let client = client.clone();
        let address = address.clone();
        async move {
            client
                .get(format!("http://{address}/x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses: Vec<u16> = futures::stream::iter(requests)
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The component stops: a clear 503 naming it, at once.
    ok(&url, &["scale", b, &hello, "hello", "--count", "0"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = client
            .get(format!("http://{address}/"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if status == 503 {
            assert!(body.contains("component `hello` is not running"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Deleting the link closes the listener (new connections are refused).
    ok(&url, &["link", "del", "http", "wasi:http"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still listening after the link was deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_through_the_http_server_provider_in_process() {
    hello_through_the_http_server(Mode::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_through_the_http_server_provider_out_of_process() {
    hello_through_the_http_server(Mode::OutOfProcess).await;
}

/// A provider process never outlives its host: SIGKILL the host (no chance to clean up) and
/// the provider exits by itself, because its stdin — held by the host — closes, even when
/// NATS is gone too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_process_dies_with_its_killed_host() {
    let mut nats = NatsServer::start().unwrap();
    let url = nats.url();
    let events = async_nats::connect(url.as_str()).await.unwrap();
    let mut started = events
        .subscribe("wasmbus.evt.test.provider_started")
        .await
        .unwrap();
    let mut host = HostProcess::start(&url, &["zone=a"]);
    let id = wait_for_hosts(&url, 1)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let provider = reference("keyvalue-memory", Mode::OutOfProcess);
    ok(&url, &["provider", "start", &id, &provider, "mem"]);
    let event = next_event(&mut started).await;
    let pid = event["data"]["pid"]
        .as_u64()
        .expect("the event names the process id");
    let alive = |pid: u64| {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    assert!(alive(pid));
    // The host and its NATS server go down together (as in a machine loss): the provider
    // must not wait for NATS to come back before exiting.
    host.kill();
    nats.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "provider {pid} outlived its host"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Named links: the component picks link `other` with `wasmcloud:bus/lattice.set-link-name`
/// (here when its config says `link=other`), and its key-value calls go to that link's
/// provider instead of the `default` one; the choice lasts one invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_links_route_to_their_own_provider() {
    let lattice = TwoHosts::start();
    let url = lattice.url();
    let counter = lattice.kv_counter();
    let host = &lattice.ids[0];
    for id in ["mem-a", "mem-b"] {
        ok(
            &url,
            &["provider", "start", host, "builtin://keyvalue-memory", id],
        );
        wait_listed(&url, host, "providers", id);
    }
    lattice.link_counter("mem-a", &[]);
    lattice.link_counter("mem-b", &["--link-name", "other"]);
    ok(&url, &["config", "put", "pick", "bucket=default"]);
    ok(
        &url,
        &[
            "scale", host, &counter, "counter", "--count", "10", "--config", "pick",
        ],
    );
    wait_listed(&url, host, "components", "counter");
    let client = reqwest::Client::new();
    let addr = &lattice.http[0];
    let increment = || async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = request(
                &client,
                addr,
                "counter",
                reqwest::Method::POST,
                "/increment/n",
                None,
            )
            .await;
            if status == 200 {
                return body;
            }
            assert!(Instant::now() < deadline, "{status}: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(increment().await, "1", "default link: mem-a");
    ok(
        &url,
        &["config", "put", "pick", "bucket=default", "link=other"],
    );
    // Config is live on the next invocation: now mem-b, a separate store.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = increment().await;
        if value == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "still on mem-a: {value}");
    }
    assert_eq!(increment().await, "2", "mem-b again");
    ok(&url, &["config", "put", "pick", "bucket=default"]);
    // Back on the default link: mem-a's counter goes from 1 to 2 (mem-b's is past 2).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = increment().await;
        if value == "2" {
            break;
        }
        assert!(Instant::now() < deadline, "never back on mem-a: {value}");
    }
}
