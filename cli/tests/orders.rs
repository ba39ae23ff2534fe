//! The example manifests, deployed for real: the orders demo (`examples/orders`) on MariaDB
//! through wadm, surviving a SIGKILLed host; the multi-host manifest placing http-hello by
//! weight over cloud / k8s / edge hosts; and every `examples/*/wadm.yaml` validating.
//!
//! Each test starts its own `nats-server`, `trellis host`s and `trellis wadm`; the orders test
//! also needs the MariaDB that `trellis_testing::sql` finds (a throw-away database per run).
//! The manifests are the files in `examples/`, with the Docker image paths, the database URL
//! and the listen address rewritten to this run's signed components, database and free port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::two_hosts::{ok, run, signed};
use common::{HostProcess, WadmProcess, trellis_json, wait_for_hosts};
use futures::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use trellis_testing::Signer;
use trellis_testing::nats::{NatsServer, free_port};

/// What the orders manifest says that each run replaces.
const ORDERS_IMAGE: &str = "file:///opt/trellis/components/orders.wasm";
const ORDERS_DB_URL: &str = "${ORDERS_DB_URL:-mysql://orders:orders@mariadb:3306/orders}";
const ORDERS_ADDRESS: &str = "${ORDERS_HTTP_ADDRESS:-0.0.0.0:8080}";
const HELLO_IMAGE: &str = "file:///opt/trellis/components/http_hello.wasm";
const HELLO_ADDRESS: &str = "${HELLO_HTTP_ADDRESS:-0.0.0.0:8080}";
const COUNTER_IMAGE: &str = "file:///opt/trellis/components/kv_counter.wasm";
const COUNTER_ADDRESS: &str = "${COUNTER_HTTP_ADDRESS:-0.0.0.0:8080}";

fn examples_dir() -> PathBuf {
    trellis_testing::repo_root().join("examples")
}

/// `examples/{name}/wadm.yaml` with each `(from, to)` replaced; every `from` must occur, so a
/// change to the manifest that this test does not follow fails here, by name.
fn example_manifest(name: &str, replacements: &[(&str, &str)]) -> String {
    let path = examples_dir().join(name).join("wadm.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "{} no longer contains `{from}`: update this test",
            path.display()
        );
        text = text.replace(from, to);
    }
    // What is left of `${VAR:-default}` takes its default, as `trellis app deploy` does with
    // the variable unset.
    let text = trellis_wadm::manifest::env::interpolate(&text, |_| None).unwrap();
    assert!(!text.contains("${"), "unreplaced variable left in {text}");
    text
}

fn write(dir: &Path, file: &str, text: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The orders API at one address.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

/// One answer: status, headers, body (JSON when the body is JSON, else a string).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Api {
    async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, body.map(|b| b.to_string().into_bytes()))
            .await
    }

    async fn raw(&self, method: Method, path: &str, body: &str) -> Answer {
        self.send(method, path, Some(body.as_bytes().to_vec()))
            .await
    }

    /// `GET /orders?limit=1000` (everything, in these tests).
    async fn all(&self) -> Vec<Value> {
        let answer = self.call(Method::GET, "/orders?limit=1000", None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body.as_array().unwrap().clone()
    }

    /// Polls `GET path` until it answers 200 (connection refused and 5xx while the app comes
    /// up); the body.
    async fn wait_ready(&self, path: &str, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            let last = match self
                .client
                .get(format!("{}{path}", self.base))
                .timeout(Duration::from_secs(10))
                .send()
                .await
            {
                Ok(response) if response.status() == 200 => {
                    return response.text().await.unwrap();
                }
                Ok(response) => {
                    format!("{}: {}", response.status(), response.text().await.unwrap())
                }
                Err(e) => e.to_string(),
            };
            assert!(
                started.elapsed() < limit,
                "GET {path} never answered 200 within {limit:?}; last: {last}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The error message of a `{"error": "..."}` answer with `status`.
fn error_of(answer: &Answer, status: u16) -> String {
    assert_eq!(answer.status, status, "{}", answer.body);
    answer.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` in {}", answer.body))
        .to_string()
}

fn new_order(i: usize) -> Value {
    json!({
        "customer": format!("customer {i}"),
        "item": format!("item {} ✓", i % 7),
        "quantity": i % 5 + 1,
        "price_cents": i * 100 + 99,
    })
}

/// An order as answered, without `id` and `created_at`, compared with what was sent.
fn fields(order: &Value) -> Value {
    json!({
        "customer": order["customer"],
        "item": order["item"],
        "quantity": order["quantity"],
        "price_cents": order["price_cents"],
    })
}

/// Polls the live hosts' inventories until `field` (components or providers) lists `id`
/// on exactly `want` hosts.
fn wait_running(nats: &str, field: &str, id: &str, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = common::get_hosts(nats)
            .iter()
            .filter(|host| {
                let inventory: Value =
                    trellis_json(nats, &["get", "inventory", host["id"].as_str().unwrap()]);
                inventory[field]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|c| c["id"] == id))
            })
            .count();
        if running == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} in the {field} of {running} hosts, want {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The orders demo, deployed from `examples/orders/wadm.yaml` by wadm onto one host, against a
/// throw-away MariaDB database: 100 orders created concurrently (the first requests create
/// the table, racing each other), read back as a list, in pages and one by one, 30 updated,
/// 25 deleted; every error case answered with its status and a message; then the host is
/// SIGKILLed, a new one started, wadm places the app on it, and every committed order is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_demo_on_mariadb_survives_a_killed_host() {
    let db = trellis_testing::sql::mysql_database().await;
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let issuer = signer.public_key();
    let host_log = |n: usize| std::fs::File::create(dir.path().join(format!("host-{n}.log")));
    let mut host = HostProcess::start_logging(
        &url,
        &["zone=cloud"],
        Some(&issuer),
        &[],
        host_log(1).unwrap(),
    );
    assert_eq!(wait_for_hosts(&url, 1).len(), 1);
    let _wadm = WadmProcess::start(&url);

    let image = signed(
        &signer,
        &dir,
        "orders",
        &["wasi:sql/types", "wasi:sql/readwrite", "wasi:config/store"],
    );
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let manifest = example_manifest(
        "orders",
        &[
            (ORDERS_IMAGE, &image),
            (ORDERS_DB_URL, db.url()),
            (ORDERS_ADDRESS, &address),
        ],
    );
    let path = write(dir.path(), "orders.yaml", &manifest);
    let started = Instant::now();
    let out = ok(&url, &["app", "deploy", &path, "--wait"]);
    assert!(out.contains("deployed"), "{out}");
    let deployed_in = started.elapsed();

    // The manifest's links name the ids wadm gives (`{app}-{name}`).
    let links: Vec<Value> = trellis_json(&url, &["get", "links"]);
    let link = |source: &str, package: &str| {
        links
            .iter()
            .find(|l| l["source_id"] == source && l["wit_package"] == package)
            .unwrap_or_else(|| panic!("no {package} link from {source}: {links:?}"))
    };
    let sql = link("orders-api", "sql");
    assert_eq!(sql["target"], "orders-sqldb", "{sql}");
    assert_eq!(sql["interfaces"], json!(["types", "readwrite"]), "{sql}");
    let http = link("orders-httpserver", "http");
    assert_eq!(http["target"], "orders-api", "{http}");

    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{address}"),
    };
    let page = api.wait_ready("/", Duration::from_secs(30)).await;
    assert!(page.contains("<form") && page.contains("fetch("), "{page}");
    let served_in = started.elapsed();

    // 100 orders, 10 at a time; the table does not exist yet.
    let started = Instant::now();
    let created: Vec<(usize, Answer)> = futures::stream::iter(0..100)
        .map(|i| {
            let api = api.clone();
            async move {
                (
                    i,
                    api.call(Method::POST, "/orders", Some(new_order(i))).await,
                )
            }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    let create_time = started.elapsed();
    let mut expected: BTreeMap<i64, Value> = BTreeMap::new();
    for (i, answer) in created {
        assert_eq!(answer.status, 201, "order {i}: {}", answer.body);
        let id = answer.body["id"].as_i64().unwrap();
        assert!(id > 0, "{}", answer.body);
        assert_eq!(fields(&answer.body), new_order(i));
        assert!(
            answer.body["created_at"].as_str().unwrap().ends_with('Z'),
            "{}",
            answer.body
        );
        assert_eq!(
            answer.headers["location"].to_str().unwrap(),
            format!("/orders/{id}")
        );
        assert!(
            expected.insert(id, answer.body.clone()).is_none(),
            "id {id} given twice"
        );
    }
    assert_eq!(expected.len(), 100);

    // Read back: the whole list by id, in pages, and one by one.
    let started = Instant::now();
    let all = api.all().await;
    assert_eq!(all, expected.values().cloned().collect::<Vec<_>>());
    let default_page = api.call(Method::GET, "/orders", None).await;
    assert_eq!(default_page.body.as_array().unwrap().len(), 100);
    let mut paged = Vec::new();
    for offset in (0..100).step_by(30) {
        let answer = api
            .call(
                Method::GET,
                &format!("/orders?limit=30&offset={offset}"),
                None,
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        paged.extend(answer.body.as_array().unwrap().iter().cloned());
    }
    assert_eq!(paged, all);
    for (id, order) in &expected {
        let answer = api.call(Method::GET, &format!("/orders/{id}"), None).await;
        assert_eq!((answer.status, &answer.body), (200, order));
    }
    let read_time = started.elapsed();

    // Updates: 20 partial (quantity only, one of them by PATCH), 10 full, one to the values
    // it already has.
    let started = Instant::now();
    let ids: Vec<i64> = expected.keys().copied().collect();
    for (n, id) in ids[..20].iter().enumerate() {
        let quantity = expected[id]["quantity"].as_i64().unwrap() + 10;
        let method = if n == 0 { Method::PATCH } else { Method::PUT };
        let answer = api
            .call(
                method,
                &format!("/orders/{id}"),
                Some(json!({"quantity": quantity})),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let mut want = expected[id].clone();
        want["quantity"] = json!(quantity);
        assert_eq!(answer.body, want);
        expected.insert(*id, want);
    }
    for id in &ids[20..30] {
        let change = json!({
            "customer": format!("renamed {id}"),
            "item": "something else",
            "quantity": 3,
            "price_cents": 0,
        });
        let answer = api
            .call(Method::PUT, &format!("/orders/{id}"), Some(change.clone()))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(fields(&answer.body), change);
        assert_eq!(answer.body["id"], json!(id));
        assert_eq!(answer.body["created_at"], expected[id]["created_at"]);
        expected.insert(*id, answer.body.clone());
    }
    let unchanged = fields(&expected[&ids[29]]);
    let answer = api
        .call(
            Method::PUT,
            &format!("/orders/{}", ids[29]),
            Some(unchanged),
        )
        .await;
    assert_eq!((answer.status, &answer.body), (200, &expected[&ids[29]]));

    // Deletes: 25, each then gone.
    for id in &ids[30..55] {
        let answer = api
            .call(Method::DELETE, &format!("/orders/{id}"), None)
            .await;
        assert_eq!(answer.status, 204, "{}", answer.body);
        assert_eq!(answer.body, json!(""));
        expected.remove(id);
        let again = api
            .call(Method::DELETE, &format!("/orders/{id}"), None)
            .await;
        assert!(error_of(&again, 404).contains(&format!("no order with id {id}")));
        let gone = api.call(Method::GET, &format!("/orders/{id}"), None).await;
        error_of(&gone, 404);
        let put = api
            .call(
                Method::PUT,
                &format!("/orders/{id}"),
                Some(json!({"quantity": 1})),
            )
            .await;
        error_of(&put, 404);
    }
    let write_time = started.elapsed();
    assert_eq!(expected.len(), 75);

    // Errors: each a status and a message naming what is wrong; nothing written.
    let bad_bodies: &[(&str, &str)] = &[
        (r#"{"customer": "#, "not valid JSON"),
        ("", "body is empty"),
        ("[1, 2]", "must be a JSON object"),
        (
            r#"{"customer":"a","item":"b","quantity":1}"#,
            "missing field `price_cents`",
        ),
        (
            r#"{"customer":"a","item":"b","quantity":"2","price_cents":1}"#,
            "`quantity` must be an integer",
        ),
        (
            r#"{"customer":"a","item":"b","quantity":0,"price_cents":1}"#,
            "`quantity` must be greater than 0",
        ),
        (
            r#"{"customer":"a","item":"b","quantity":-4,"price_cents":1}"#,
            "`quantity` must be greater than 0, got -4",
        ),
        (
            r#"{"customer":"a","item":"b","quantity":1,"price_cents":-1}"#,
            "`price_cents` must be 0 or more",
        ),
        (
            r#"{"customer":"a","item":"b","quantity":1.5,"price_cents":1}"#,
            "`quantity` must be an integer, got 1.5",
        ),
        (
            r#"{"customer":7,"item":"b","quantity":1,"price_cents":1}"#,
            "`customer` must be a string",
        ),
        (
            r#"{"customer":"a","item":"b","quantity":1,"price_cents":1,"colour":"red"}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"id":1,"customer":"a","item":"b","quantity":1,"price_cents":1}"#,
            "`id` is set by the server",
        ),
    ];
    for (body, want) in bad_bodies {
        let answer = api.raw(Method::POST, "/orders", body).await;
        let message = error_of(&answer, 400);
        assert!(message.contains(want), "{body}: {message:?} lacks {want:?}");
    }
    let id = ids[0];
    for (body, want) in [
        ("{}", "nothing to update"),
        (r#"{"quantity":"many"}"#, "`quantity` must be an integer"),
        (r#"{"customer":""}"#, "`customer` must not be empty"),
    ] {
        let answer = api.raw(Method::PUT, &format!("/orders/{id}"), body).await;
        let message = error_of(&answer, 400);
        assert!(message.contains(want), "{body}: {message:?} lacks {want:?}");
    }
    let answer = api.call(Method::GET, "/orders/999999999", None).await;
    assert!(error_of(&answer, 404).contains("no order with id 999999999"));
    let answer = api.call(Method::GET, "/orders/abc", None).await;
    assert!(error_of(&answer, 400).contains("not an order id"));
    let answer = api.call(Method::GET, "/orders?limit=0", None).await;
    assert!(error_of(&answer, 400).contains("`limit`"));
    let answer = api.call(Method::GET, "/nowhere", None).await;
    assert!(error_of(&answer, 404).contains("/nowhere"));
    let answer = api.call(Method::PATCH, "/orders", None).await;
    error_of(&answer, 405);
    assert_eq!(answer.headers["allow"], "GET, POST");
    let answer = api.call(Method::POST, "/orders/5", None).await;
    error_of(&answer, 405);
    let huge = format!(
        r#"{{"customer":"{}","item":"b","quantity":1,"price_cents":1}}"#,
        "x".repeat(100 * 1024)
    );
    let answer = api.raw(Method::POST, "/orders", &huge).await;
    assert!(error_of(&answer, 413).contains("larger than"));
    assert_eq!(
        api.all().await,
        expected.values().cloned().collect::<Vec<_>>()
    );

    // SIGKILL the host; wadm puts the app on a new one; the orders are all there.
    host.kill();
    let killed = Instant::now();
    let _host = HostProcess::start_logging(
        &url,
        &["zone=cloud"],
        Some(&issuer),
        &[],
        host_log(2).unwrap(),
    );
    api.wait_ready("/orders", Duration::from_secs(60)).await;
    let recovered_in = killed.elapsed();
    // The one live host is the new one, and wadm put the whole app on it.
    assert_eq!(common::get_hosts(&url).len(), 1);
    wait_running(&url, "components", "orders-api", 1);
    wait_running(&url, "providers", "orders-sqldb", 1);
    wait_running(&url, "providers", "orders-httpserver", 1);
    assert_eq!(
        api.all().await,
        expected.values().cloned().collect::<Vec<_>>()
    );
    for id in expected.keys() {
        let answer = api.call(Method::GET, &format!("/orders/{id}"), None).await;
        assert_eq!((answer.status, &answer.body), (200, &expected[id]));
    }
    let answer = api
        .call(Method::POST, "/orders", Some(new_order(100)))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert!(answer.body["id"].as_i64().unwrap() > *ids.last().unwrap());
    // wadm settles once the dead host has expired.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = trellis_json(&url, &["app", "status", "orders"]);
        if status["status"]["type"] == "deployed" {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let settled_in = killed.elapsed();

    eprintln!(
        "orders demo: deployed in {deployed_in:?} (serving after {served_in:?}); 100 orders \
         created in {create_time:?} (10 concurrent); list + 4 pages + 100 single reads in \
         {read_time:?}; 31 updates + 25 deletes (+75 404 checks) in {write_time:?}; serving \
         all {} orders again {recovered_in:?} after the host was SIGKILLed (wadm status \
         `deployed` again after {settled_in:?})",
        expected.len()
    );
    db.drop().await;
}

/// With its database unreachable, the orders app answers 503 with the reason (no trap, no
/// hang); the page, which needs no database, is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_demo_answers_503_when_the_database_is_down() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let _host = HostProcess::start_trusting(&url, &["zone=cloud"], Some(&signer.public_key()));
    wait_for_hosts(&url, 1);
    let _wadm = WadmProcess::start(&url);
    let image = signed(
        &signer,
        &dir,
        "orders",
        &["wasi:sql/types", "wasi:sql/readwrite", "wasi:config/store"],
    );
    // Nothing listens on a port just found free.
    let closed = free_port().unwrap();
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let manifest = example_manifest(
        "orders",
        &[
            (ORDERS_IMAGE, &image),
            (
                ORDERS_DB_URL,
                &format!("mysql://orders@127.0.0.1:{closed}/orders"),
            ),
            (ORDERS_ADDRESS, &address),
        ],
    );
    let path = write(dir.path(), "orders.yaml", &manifest);
    ok(&url, &["app", "deploy", &path, "--wait"]);
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{address}"),
    };
    api.wait_ready("/", Duration::from_secs(30)).await;
    for (method, path, body) in [
        (Method::GET, "/orders", None),
        (Method::GET, "/orders/1", None),
        (Method::POST, "/orders", Some(new_order(1))),
        (Method::DELETE, "/orders/1", None),
    ] {
        let started = Instant::now();
        let answer = api.call(method.clone(), path, body).await;
        let message = error_of(&answer, 503);
        assert!(
            message.contains("cannot reach the database"),
            "{method} {path}: {message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{method} {path}"
        );
    }
    // Validation still comes first.
    let answer = api.raw(Method::POST, "/orders", "{").await;
    error_of(&answer, 400);
}

/// The same component on PostgreSQL (`dialect: postgres`, the `sql-postgres` provider): 20
/// concurrent first writes (racing `CREATE TABLE IF NOT EXISTS`, which PostgreSQL does not
/// serialize), read, update, delete, against the PostgreSQL that `trellis_testing::sql` finds
/// (`scripts/test` installs one when missing, as the SQL capability tests need it too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_demo_on_postgres() {
    let db = trellis_testing::sql::postgres_database().await;
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let _host = HostProcess::start_trusting(&url, &["zone=cloud"], Some(&signer.public_key()));
    wait_for_hosts(&url, 1);
    let _wadm = WadmProcess::start(&url);
    let image = signed(
        &signer,
        &dir,
        "orders",
        &["wasi:sql/types", "wasi:sql/readwrite", "wasi:config/store"],
    );
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let manifest = example_manifest(
        "orders",
        &[
            (ORDERS_IMAGE, &image),
            (ORDERS_DB_URL, db.url()),
            (ORDERS_ADDRESS, &address),
            ("builtin://sql-mysql", "builtin://sql-postgres"),
            ("dialect: mysql", "dialect: postgres"),
        ],
    );
    let path = write(dir.path(), "orders.yaml", &manifest);
    ok(&url, &["app", "deploy", &path, "--wait"]);
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{address}"),
    };
    api.wait_ready("/", Duration::from_secs(30)).await;
    let created: Vec<Answer> = futures::stream::iter(0..20)
        .map(|i| {
            let api = api.clone();
            async move { api.call(Method::POST, "/orders", Some(new_order(i))).await }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    let mut ids: Vec<i64> = created
        .iter()
        .map(|a| {
            assert_eq!(a.status, 201, "{}", a.body);
            a.body["id"].as_i64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    let all = api.all().await;
    assert_eq!(
        all.iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        ids
    );
    let answer = api
        .call(
            Method::PUT,
            &format!("/orders/{}", ids[0]),
            Some(json!({"item": "changed", "quantity": 9})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        (&answer.body["item"], &answer.body["quantity"]),
        (&json!("changed"), &json!(9))
    );
    let answer = api
        .call(Method::DELETE, &format!("/orders/{}", ids[1]), None)
        .await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    let answer = api
        .call(Method::GET, &format!("/orders/{}", ids[1]), None)
        .await;
    error_of(&answer, 404);
    assert_eq!(api.all().await.len(), 19);
    db.drop().await;
}

/// `examples/multi-host/wadm.yaml` over three hosts labelled zone=cloud, zone=k8s and
/// zone=edge: 10 instances of http-hello land 5 / 3 / 2, the HTTP entry point runs on the
/// cloud host only, and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_host_manifest_places_by_weight() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let issuer = signer.public_key();
    let zones = ["cloud", "k8s", "edge"];
    let _hosts: Vec<HostProcess> = zones
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            let host = HostProcess::start_trusting(&url, &[&format!("zone={zone}")], Some(&issuer));
            wait_for_hosts(&url, i + 1);
            host
        })
        .collect();
    let _wadm = WadmProcess::start(&url);
    let hello = signed(&signer, &dir, "http_hello", &[]);
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let manifest = example_manifest(
        "multi-host",
        &[(HELLO_IMAGE, &hello), (HELLO_ADDRESS, &address)],
    );
    let path = write(dir.path(), "multi-host.yaml", &manifest);
    let started = Instant::now();
    ok(&url, &["app", "deploy", &path, "--wait"]);
    let deployed_in = started.elapsed();

    let want: BTreeMap<String, u64> = [("cloud", 5), ("k8s", 3), ("edge", 2)]
        .iter()
        .map(|(z, n)| (z.to_string(), *n))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let placed = loop {
        let mut placed: BTreeMap<String, u64> = BTreeMap::new();
        let mut providers: BTreeSet<String> = BTreeSet::new();
        for host in common::get_hosts(&url) {
            let zone = host["labels"]["zone"].as_str().unwrap().to_string();
            let inventory: Value =
                trellis_json(&url, &["get", "inventory", host["id"].as_str().unwrap()]);
            for c in inventory["components"].as_array().unwrap() {
                if c["id"] == "multi_host-hello" {
                    *placed.entry(zone.clone()).or_default() +=
                        c["max_instances"].as_u64().unwrap();
                }
            }
            for p in inventory["providers"].as_array().unwrap() {
                if p["id"] == "multi_host-httpserver" {
                    providers.insert(zone.clone());
                }
            }
        }
        if placed == want && providers == BTreeSet::from(["cloud".to_string()]) {
            break placed;
        }
        assert!(
            Instant::now() < deadline,
            "placed {placed:?} (want {want:?}), http-server on {providers:?} (want cloud)"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{address}"),
    };
    let body = api.wait_ready("/", Duration::from_secs(30)).await;
    assert_eq!(body, "Hello from Trellis!\n");
    eprintln!("multi-host: deployed in {deployed_in:?}, instances per zone {placed:?}");
    wait_running(&url, "providers", "multi_host-httpserver", 1);
}

/// `examples/http-hello/wadm.yaml` and `examples/kv-counter/wadm.yaml`, deployed side by side
/// on one host (each on its own port), serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_and_counter_manifests_deploy_and_serve() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let _host = HostProcess::start_trusting(&url, &["zone=cloud"], Some(&signer.public_key()));
    wait_for_hosts(&url, 1);
    let _wadm = WadmProcess::start(&url);
    let hello = signed(&signer, &dir, "http_hello", &[]);
    let counter = signed(
        &signer,
        &dir,
        "kv_counter",
        &[
            "wasi:keyvalue/store",
            "wasi:keyvalue/atomics",
            "wasi:config/store",
        ],
    );
    let hello_address = format!("127.0.0.1:{}", free_port().unwrap());
    let counter_address = format!("127.0.0.1:{}", free_port().unwrap());
    let manifests = [
        example_manifest(
            "http-hello",
            &[(HELLO_IMAGE, &hello), (HELLO_ADDRESS, &hello_address)],
        ),
        example_manifest(
            "kv-counter",
            &[
                (COUNTER_IMAGE, &counter),
                (COUNTER_ADDRESS, &counter_address),
            ],
        ),
    ];
    for (i, manifest) in manifests.iter().enumerate() {
        let path = write(dir.path(), &format!("{i}.yaml"), manifest);
        ok(&url, &["app", "deploy", &path, "--wait"]);
    }
    let hello = Api {
        client: reqwest::Client::new(),
        base: format!("http://{hello_address}"),
    };
    assert_eq!(
        hello.wait_ready("/", Duration::from_secs(30)).await,
        "Hello from Trellis!\n"
    );
    let counter = Api {
        client: reqwest::Client::new(),
        base: format!("http://{counter_address}"),
    };
    counter
        .wait_ready("/value/visits", Duration::from_secs(30))
        .await;
    for want in 1..=3 {
        let answer = counter.call(Method::GET, "/counter/visits", None).await;
        assert_eq!((answer.status, answer.body), (200, json!(want)));
    }
}

/// Every `examples/*/wadm.yaml` is a valid manifest; its `file:///opt/trellis/components/`
/// images are components the Docker image ships (crates of the examples workspace, not
/// fixtures), and its links join components of the same manifest.
#[test]
fn every_example_manifest_validates() {
    let examples = examples_dir();
    let workspace = std::fs::read_to_string(examples.join("Cargo.toml")).unwrap();
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        let path = dir.join("wadm.yaml");
        if path.is_file() {
            manifests.push((dir, path));
        }
    }
    manifests.sort();
    let names: Vec<String> = manifests
        .iter()
        .map(|(dir, _)| dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["http-hello", "kv-counter", "multi-host", "orders"] {
        assert!(
            names.iter().any(|n| n == want),
            "no {want}/wadm.yaml in {names:?}"
        );
    }
    for (_, path) in &manifests {
        let raw = std::fs::read_to_string(path).unwrap();
        let text = trellis_wadm::manifest::env::interpolate(&raw, |_| None).unwrap();
        let source = path.display().to_string();
        let (manifest, warnings) =
            trellis_wadm::manifest::Manifest::parse_with_warnings(&text, Some(&source))
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(warnings.is_empty(), "{}: {warnings:?}", path.display());
        let desired = manifest.desired();
        let ids: BTreeSet<&str> = desired
            .components
            .iter()
            .map(|c| c.id.as_str())
            .chain(desired.providers.iter().map(|p| p.id.as_str()))
            .collect();
        assert!(!desired.links.is_empty(), "{}: no links", path.display());
        for link in &desired.links {
            assert!(
                ids.contains(link.source_id.as_str()) && ids.contains(link.target.as_str()),
                "{}: link {link:?} joins ids outside {ids:?}",
                path.display()
            );
        }
        for component in &desired.components {
            let Some(file) = component
                .image
                .strip_prefix("file:///opt/trellis/components/")
            else {
                panic!(
                    "{}: image {} is not a component of the trellis image",
                    path.display(),
                    component.image
                );
            };
            let crate_dir = file.trim_end_matches(".wasm").replace('_', "-");
            assert!(
                workspace.contains(&format!("\"{crate_dir}\"")),
                "{}: {file} is not built from a crate of examples/Cargo.toml",
                path.display()
            );
        }
    }
    eprintln!("validated {names:?}");
}

/// `trellis app deploy` refuses nothing the examples contain: each one is stored by a running
/// wadm (no hosts needed to store), and listed.
#[test]
fn every_example_manifest_is_accepted_by_wadm() {
    let nats = NatsServer::start().unwrap();
    let url = nats.url();
    let _wadm = WadmProcess::start(&url);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run(&url, &["app", "list"]).status.success() {
        assert!(Instant::now() < deadline, "wadm never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    for name in ["http-hello", "kv-counter", "multi-host", "orders"] {
        let path = examples_dir().join(name).join("wadm.yaml");
        ok(&url, &["app", "put", &path.display().to_string()]);
    }
    let listed: Value = trellis_json(&url, &["app", "list"]);
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["http-hello", "kv-counter", "multi-host", "orders"]);
}
