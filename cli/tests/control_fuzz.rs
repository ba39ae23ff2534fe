//! A fuzz-style test of the control interface: thousands of hostile request bodies, sent to
//! every control subject of a real `trellis host`, must each get a well-formed reply, and the
//! host must survive them.
//!
//! The bodies come from a seeded generator (splitmix64), so a failure reproduces: the seed is
//! printed, and `TRELLIS_FUZZ_SEED=N` replays it. For each operation the generator knows the
//! body's schema (field names and types, from `trellis_protocol::ctl`) and mixes:
//! random bytes, valid bodies truncated or with bytes garbled, valid bodies with one field of
//! the wrong type, random JSON, deeply nested JSON, a few payloads close to NATS's 1 MiB
//! `max_payload`, and plain valid bodies with random values.
//!
//! The oracle: every request gets, within 5 s, a reply that parses as the `CtlResponse`
//! envelope `{success, message, response?}` with `message` present; a body that does not
//! even deserialize into the operation's type (checked here with the same serde types)
//! gets `success: false` and a non-empty message. Message texts are not asserted.
//!
//! `host.stop` is special: a valid or unparseable body stops the host, so it only gets
//! objects naming *another* host (which the host must refuse).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use trellis_protocol::ctl::{
    DeleteLinkRequest, Link, ScaleComponentCommand, UpdateComponentCommand,
};
use trellis_testing::nats::NatsServer;

const LATTICE: &str = "test";
const REQUESTS: usize = 4000;
const MAX_PAYLOAD: usize = 1024 * 1024;

/// splitmix64: tiny, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// The JSON type a field expects.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    U32,
    Bool,
    StrList,
    StrMap,
}

/// The control operations and the schema of their bodies (`None`: the body is ignored).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Ping,
    Get,
    StopOther,
    Scale,
    Update,
    LabelPut,
    LabelDel,
    LinkPut,
    LinkDel,
    LinkGet,
    ConfigPut,
    ConfigGet,
    ConfigDel,
    ClaimsGet,
    ProviderStart,
    ProviderStop,
}

const OPS: [Op; 16] = [
    Op::Ping,
    Op::Get,
    Op::StopOther,
    Op::Scale,
    Op::Update,
    Op::LabelPut,
    Op::LabelDel,
    Op::LinkPut,
    Op::LinkDel,
    Op::LinkGet,
    Op::ConfigPut,
    Op::ConfigGet,
    Op::ConfigDel,
    Op::ClaimsGet,
    Op::ProviderStart,
    Op::ProviderStop,
];

impl Op {
    fn fields(self) -> &'static [(&'static str, Kind)] {
        use Kind::*;
        match self {
            Op::Scale => &[
                ("component_ref", Str),
                ("component_id", Str),
                ("annotations", StrMap),
                ("count", U32),
                ("host_id", Str),
                ("config", StrList),
                ("allow_update", Bool),
            ],
            Op::Update => &[
                ("component_id", Str),
                ("annotations", StrMap),
                ("host_id", Str),
                ("new_component_ref", Str),
            ],
            Op::LabelPut => &[("key", Str), ("value", Str)],
            Op::LabelDel => &[("key", Str)],
            Op::LinkPut => &[
                ("source_id", Str),
                ("target", Str),
                ("name", Str),
                ("wit_namespace", Str),
                ("wit_package", Str),
                ("interfaces", StrList),
                ("source_config", StrList),
                ("target_config", StrList),
            ],
            Op::LinkDel => &[
                ("source_id", Str),
                ("name", Str),
                ("wit_namespace", Str),
                ("wit_package", Str),
            ],
            Op::ProviderStart => &[
                ("provider_id", Str),
                ("provider_ref", Str),
                ("host_id", Str),
                ("config", StrList),
                ("annotations", StrMap),
            ],
            Op::ProviderStop => &[("provider_id", Str), ("host_id", Str)],
            _ => &[],
        }
    }

    fn subject(self, host: &str, rng: &mut Rng) -> String {
        let name = config_name(rng);
        let op = match self {
            Op::Ping => "host.ping".to_string(),
            Op::Get => format!("host.get.{host}"),
            Op::StopOther => format!("host.stop.{host}"),
            Op::Scale => format!("component.scale.{host}"),
            Op::Update => format!("component.update.{host}"),
            Op::LabelPut => format!("label.put.{host}"),
            Op::LabelDel => format!("label.del.{host}"),
            Op::LinkPut => "link.put".into(),
            Op::LinkDel => "link.del".into(),
            Op::LinkGet => "link.get".into(),
            Op::ConfigPut => format!("config.put.{name}"),
            Op::ConfigGet => format!("config.get.{name}"),
            Op::ConfigDel => format!("config.del.{name}"),
            Op::ClaimsGet => "claims.get".into(),
            Op::ProviderStart => format!("provider.start.{host}"),
            Op::ProviderStop => format!("provider.stop.{host}"),
        };
        format!("wasmbus.ctl.v1.{LATTICE}.{op}")
    }

    /// Whether `body` does not even deserialize into what the host parses it as.
    fn malformed(self, body: &[u8]) -> bool {
        #[derive(serde::Deserialize)]
        struct Label {
            #[allow(dead_code)]
            key: String,
            #[allow(dead_code)]
            value: String,
        }
        #[derive(serde::Deserialize)]
        struct LabelKey {
            #[allow(dead_code)]
            key: String,
        }
        fn fails<T: serde::de::DeserializeOwned>(body: &[u8]) -> bool {
            serde_json::from_slice::<T>(body).is_err()
        }
        match self {
            Op::Scale => fails::<ScaleComponentCommand>(body),
            Op::Update => fails::<UpdateComponentCommand>(body),
            Op::LabelPut => fails::<Label>(body),
            Op::LabelDel => fails::<LabelKey>(body),
            Op::LinkPut => fails::<Link>(body),
            Op::LinkDel => fails::<DeleteLinkRequest>(body),
            Op::ConfigPut => fails::<BTreeMap<String, String>>(body),
            _ => false,
        }
    }
}

/// A subject token for a config name (valid on the wire; the host may still refuse it).
fn config_name(rng: &mut Rng) -> String {
    let names = [
        "app",
        "db-creds",
        "a_b",
        "x=y",
        "with/slash",
        "inner.dot",
        "Ünï",
        "-",
    ];
    if rng.chance(70) {
        rng.pick(&names).to_string()
    } else {
        format!("cfg{}", rng.below(50))
    }
}

fn random_string(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => String::new(),
        1 => "ünïcødé 😀 \u{0}\t\n\"\\".into(),
        2 => "a.b.*.>".into(),
        3 => "hostcore.os".into(),
        4 => "file:///nonexistent/fuzz.wasm".into(),
        5 => "x".repeat(rng.below(4000)),
        6 => format!("N{}", "A".repeat(55)),
        _ => {
            let len = rng.below(16);
            (0..len)
                .map(|_| (b'a' + rng.below(26) as u8) as char)
                .collect()
        }
    }
}

fn valid_value(rng: &mut Rng, kind: Kind) -> Value {
    match kind {
        Kind::Str => json!(random_string(rng)),
        Kind::U32 => json!(*rng.pick(&[0u64, 1, 3, 1000, u32::MAX as u64])),
        Kind::Bool => json!(rng.chance(50)),
        Kind::StrList => Value::Array(
            (0..rng.below(4))
                .map(|_| json!(random_string(rng)))
                .collect(),
        ),
        Kind::StrMap => Value::Object(
            (0..rng.below(4))
                .map(|_| (random_string(rng), json!(random_string(rng))))
                .collect(),
        ),
    }
}

fn random_json(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => match rng.below(5) {
            0 => json!(-1),
            1 => json!(1.5),
            2 => json!(u64::MAX),
            3 => json!(-(rng.next() as i64).abs()),
            _ => json!(rng.below(1000)),
        },
        3 | 4 => json!(random_string(rng)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| (random_string(rng), random_json(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// A value that is not of `kind` (and not `null` for a missing-able field by accident: any
/// non-matching type will do; serde refuses a type mismatch even for defaulted fields).
fn wrong_value(rng: &mut Rng, kind: Kind) -> Value {
    loop {
        let v = random_json(rng, 2);
        let matches = match kind {
            Kind::Str => v.is_string(),
            Kind::U32 => v.as_u64().is_some_and(|n| n <= u32::MAX as u64),
            Kind::Bool => v.is_boolean(),
            Kind::StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::StrMap => v
                .as_object()
                .is_some_and(|o| o.values().all(Value::is_string)),
        };
        if !matches {
            return v;
        }
    }
}

/// A value a real client might send: short tokens, small counts, no config references.
fn plausible_value(rng: &mut Rng, name: &str, kind: Kind) -> Value {
    let token = |rng: &mut Rng| {
        format!(
            "{}{}",
            rng.pick(&["echo", "kv", "http", "app"]),
            rng.below(4)
        )
    };
    match (name, kind) {
        ("source_config" | "target_config" | "config", _) => json!([]),
        (_, Kind::Str) => json!(token(rng)),
        (_, Kind::StrList) => json!([token(rng)]),
        (_, Kind::U32) => json!(rng.below(3)),
        _ => valid_value(rng, kind),
    }
}

/// A body of the right shape: random values, or (one time in three) plausible ones, which
/// get past validation into the state the host keeps (labels, links, config in KV).
fn valid_body(rng: &mut Rng, op: Op) -> Value {
    if op == Op::ConfigPut {
        return valid_value(rng, Kind::StrMap);
    }
    let plausible = rng.chance(33);
    let mut body = serde_json::Map::new();
    for (name, kind) in op.fields() {
        if plausible {
            body.insert(name.to_string(), plausible_value(rng, name, *kind));
        } else if rng.chance(90) {
            body.insert(name.to_string(), valid_value(rng, *kind));
        }
    }
    Value::Object(body)
}

fn nested(rng: &mut Rng) -> Vec<u8> {
    let depth = 100 + rng.below(20_000);
    let (open, close) = *rng.pick(&[("[", "]"), ("{\"key\":", "}")]);
    let mut body = open.repeat(depth);
    body.push_str("\"v\"");
    if rng.chance(50) {
        body.push_str(&close.repeat(depth));
    }
    body.into_bytes()
}

/// One hostile body for `op`; `huge` makes it close to `max_payload`.
fn body(rng: &mut Rng, op: Op, huge: bool) -> Vec<u8> {
    if huge {
        let len = MAX_PAYLOAD - 4096 - rng.below(4096);
        return match rng.below(3) {
            0 => rng.bytes(len),
            // One field of the wrong type (for config, a value that is not a string),
            // padded to size with a long string. Huge *valid* bodies are not sent: see
            // `near_max_payload_state_and_garbled_stop` below.
            1 => {
                let mut v = json!({"padding": "p".repeat(len - 200), "count": -1});
                if let Some((name, kind)) = op.fields().first() {
                    v[*name] = wrong_value(rng, *kind);
                }
                serde_json::to_vec(&v).unwrap()
            }
            _ => format!("{{\"key\": [{}", "1,".repeat(len / 2 - 8)).into_bytes(),
        };
    }
    let valid = serde_json::to_vec(&valid_body(rng, op)).unwrap();
    match rng.below(8) {
        0 => {
            let len = rng.below(300);
            rng.bytes(len)
        }
        1 => valid[..rng.below(valid.len().max(1))].to_vec(),
        2 => {
            let mut garbled = valid.clone();
            for _ in 0..=rng.below(5) {
                let at = rng.below(garbled.len().max(1));
                match rng.below(3) {
                    0 if !garbled.is_empty() => garbled[at] = rng.next() as u8,
                    1 if !garbled.is_empty() => {
                        garbled.remove(at);
                    }
                    _ => garbled.insert(at.min(garbled.len()), rng.next() as u8),
                }
            }
            garbled
        }
        3 if !op.fields().is_empty() || op == Op::ConfigPut => {
            let mut v = valid_body(rng, op);
            if op == Op::ConfigPut {
                let key = random_string(rng);
                v[key] = wrong_value(rng, Kind::Str);
            } else {
                let (name, kind) = *rng.pick(op.fields());
                v[name] = wrong_value(rng, kind);
            }
            serde_json::to_vec(&v).unwrap()
        }
        4 => serde_json::to_vec(&random_json(rng, 3)).unwrap(),
        5 => nested(rng),
        _ => valid,
    }
}

/// `host.stop` bodies that name another host, with random extra fields.
fn stop_other_body(rng: &mut Rng) -> Vec<u8> {
    let mut v = match random_json(rng, 2) {
        Value::Object(map) => Value::Object(map),
        _ => json!({}),
    };
    v["host_id"] = json!(nkeys::KeyPair::new_server().public_key());
    if rng.chance(50) {
        v["timeout"] = random_json(rng, 1);
    }
    serde_json::to_vec(&v).unwrap()
}

/// Checks the envelope; returns `success` and `message`.
fn envelope(reply: &[u8]) -> Result<(bool, String), String> {
    let v: Value = serde_json::from_slice(reply).map_err(|e| format!("reply is not JSON: {e}"))?;
    let success = v["success"]
        .as_bool()
        .ok_or("reply has no boolean `success`")?;
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .ok_or("reply has no string `message`")?;
    serde_json::from_value::<trellis_protocol::ctl::CtlResponse<Value>>(v.clone())
        .map_err(|e| format!("reply is not a CtlResponse: {e}"))?;
    Ok((success, message.to_string()))
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(160)]).into_owned();
    format!("{} bytes: {text:?}", body.len())
}

/// Sends one request; `Err` says what was wrong with the reply.
async fn check(
    client: &async_nats::Client,
    op: Op,
    subject: String,
    body: Vec<u8>,
) -> Result<Outcome, String> {
    let malformed = op.malformed(&body);
    let request = client.request(subject.clone(), body.clone().into());
    let reply = match tokio::time::timeout(Duration::from_secs(5), request).await {
        Err(_) => {
            return Err(format!(
                "no reply within 5 s on {subject} to {}",
                preview(&body)
            ));
        }
        Ok(Err(e)) => {
            return Err(format!(
                "request failed on {subject}: {e}; body {}",
                preview(&body)
            ));
        }
        Ok(Ok(reply)) => reply,
    };
    let (success, message) = envelope(&reply.payload).map_err(|e| {
        format!(
            "{e} on {subject}; body {}; reply {}",
            preview(&body),
            preview(&reply.payload)
        )
    })?;
    if malformed && (success || message.is_empty()) {
        return Err(format!(
            "a malformed {op:?} body got success={success}, message {message:?}; body {}",
            preview(&body)
        ));
    }
    if op == Op::StopOther && success {
        return Err(format!(
            "host.stop naming another host succeeded: {}",
            preview(&body)
        ));
    }
    Ok(Outcome {
        op,
        success,
        malformed,
    })
}

/// What one request showed, for the summary.
struct Outcome {
    op: Op,
    success: bool,
    malformed: bool,
}

async fn ping(client: &async_nats::Client) -> Value {
    let subject = format!("wasmbus.ctl.v1.{LATTICE}.host.ping");
    let reply = tokio::time::timeout(Duration::from_secs(5), client.request(subject, "".into()))
        .await
        .expect("host.ping got no reply within 5 s")
        .expect("host.ping failed");
    let v: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["success"], true, "{v}");
    v["response"].clone()
}

/// The host process, killed on drop; `try_wait` tells whether it is still running.
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_subject_answers_hostile_bodies_and_the_host_survives() {
    let seed = std::env::var("TRELLIS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("control_fuzz seed: {seed} (replay with TRELLIS_FUZZ_SEED={seed})");
    let nats = NatsServer::start().unwrap();
    let mut host = Host(
        common::trellis(&nats.url())
            .args(["host", "--heartbeat-interval", "500ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let host_id = common::wait_for_host_ids(&nats.url(), 1).await.remove(0);
    let client = async_nats::connect(nats.url()).await.unwrap();

    let mut rng = Rng(seed);
    let mut requests = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let op = OPS[i % OPS.len()];
        let subject = op.subject(&host_id, &mut rng);
        let body = if op == Op::StopOther {
            stop_other_body(&mut rng)
        } else {
            // One request in 300 is close to max_payload.
            body(&mut rng, op, i % 300 == 150)
        };
        requests.push((op, subject, body));
    }
    let huge = requests
        .iter()
        .filter(|(_, _, b)| b.len() > MAX_PAYLOAD / 2)
        .count();
    println!("{REQUESTS} requests, {huge} of them close to 1 MiB");

    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for (round, chunk) in requests.chunks(200).enumerate() {
        let results: Vec<Result<Outcome, String>> = futures::stream::iter(chunk.iter().cloned())
            .map(|(op, subject, body)| {
                let client = client.clone();
                async move { check(&client, op, subject, body).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for result in results {
            match result {
                Ok(outcome) => outcomes.push(outcome),
                Err(failure) => failures.push(failure),
            }
        }
        // Still there after each round (a failure names the round's requests).
        let pinged = ping(&client).await;
        assert_eq!(pinged["id"], host_id.as_str(), "after round {round}");
        assert!(failures.len() < 20, "seed {seed}: {failures:#?}");
    }
    assert!(failures.is_empty(), "seed {seed}: {failures:#?}");
    // What the run exercised: per operation, requests / accepted / malformed bodies.
    for op in OPS {
        let of_op: Vec<&Outcome> = outcomes.iter().filter(|o| o.op == op).collect();
        let accepted = of_op.iter().filter(|o| o.success).count();
        let malformed = of_op.iter().filter(|o| o.malformed).count();
        println!(
            "{op:?}: {} requests, {accepted} accepted, {malformed} malformed",
            of_op.len()
        );
    }
    let malformed = outcomes.iter().filter(|o| o.malformed).count();
    assert!(
        malformed > REQUESTS / 4,
        "the generator should mostly make bad bodies: {malformed}"
    );

    assert_eq!(ping(&client).await["id"], host_id.as_str());
    assert!(
        host.0.try_wait().unwrap().is_none(),
        "the host process exited"
    );
    let inventory = {
        let subject = format!("wasmbus.ctl.v1.{LATTICE}.host.get.{host_id}");
        let reply = client.request(subject, "".into()).await.unwrap();
        serde_json::from_slice::<Value>(&reply.payload).unwrap()
    };
    assert_eq!(inventory["success"], true, "{inventory}");
}

/// Found by the fuzzing above, now fixed: state that would make replies larger than
/// `max_payload` (a near-1 MiB label or config) is refused with a message, so `host.ping`,
/// `host.get` and `config.get` keep answering; and a garbled `host.stop` body is refused
/// instead of stopping the host.
#[tokio::test]
async fn near_max_payload_state_and_garbled_stop() {
    let nats = NatsServer::start().unwrap();
    let _host = Host(
        common::trellis(&nats.url())
            .args(["host", "--heartbeat-interval", "500ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let id = common::wait_for_host_ids(&nats.url(), 1).await.remove(0);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let ctl = |op: String| format!("wasmbus.ctl.v1.{LATTICE}.{op}");
    let big = "v".repeat(MAX_PAYLOAD - 40);
    let label = serde_json::to_vec(&json!({"key": "k", "value": big})).unwrap();
    let reply = client
        .request(ctl(format!("label.put.{id}")), label.into())
        .await
        .unwrap();
    let (success, message) = envelope(&reply.payload).unwrap();
    assert!(!success && message.contains("too long"), "{message}");
    ping(&client).await;
    let config = serde_json::to_vec(&json!({"k": big})).unwrap();
    let stored = client
        .request(ctl("config.put.big".into()), config.into())
        .await
        .unwrap();
    let (success, message) = envelope(&stored.payload).unwrap();
    assert!(!success && message.contains("limit"), "{message}");
    let got = client.request(ctl("config.get.big".into()), "".into());
    let got = tokio::time::timeout(Duration::from_secs(5), got).await;
    assert!(matches!(got, Ok(Ok(_))), "config.get got no reply");
    for garbled in ["\u{ff}garbage", "[1, 2]", "{\"host_id\": 7}"] {
        let reply = client
            .request(ctl(format!("host.stop.{id}")), garbled.into())
            .await
            .unwrap();
        let (success, message) = envelope(&reply.payload).unwrap();
        assert!(!success, "a garbled host.stop ({garbled}) stopped the host");
        assert!(message.contains("invalid host.stop request"), "{message}");
    }
    ping(&client).await;
}
