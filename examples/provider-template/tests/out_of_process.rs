//! The same provider as its own process: the binary (`src/main.rs`) started the way a host
//! starts it — host data on stdin, stdin kept open — on a private `nats-server`, called the
//! way a host calls it: signed frames on the lattice, through the SDK's `RemoteKeyValue`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;
use trellis_protocol::keys::{KeyKind, KeyPair};
use trellis_protocol::rpc::{self, CallReply, CallRequest, Caller};
use trellis_provider_sdk::keyvalue::{KeyValue, KvError};
use trellis_provider_sdk::process::HostData;
use trellis_provider_sdk::wire::{self, RemoteKeyValue, Transport, TransportError};
use trellis_provider_sdk::{CallContext, LinkConfig, ProviderError, async_trait};
use trellis_provider_template::FileKvProvider;
use trellis_testing::nats::NatsServer;

const LATTICE: &str = "default";
const PROVIDER: &str = "tmpl";

/// What a host does for a remote provider: sign each call with the host key and send it.
struct HostTransport {
    client: async_nats::Client,
    host: Arc<KeyPair>,
    target: String,
}

impl HostTransport {
    async fn send(
        &self,
        caller: Caller,
        interface: &str,
        function: &str,
        args: Vec<rmpv::Value>,
    ) -> Result<Vec<rmpv::Value>, TransportError> {
        let request = CallRequest {
            caller,
            lattice: LATTICE.into(),
            target: self.target.clone(),
            interface: interface.into(),
            function: function.into(),
            timeout_ms: 5_000,
            sent_at_ms: rpc::now_ms(),
            args,
        };
        let frame = rpc::sign(&request, &self.host).map_err(|e| TransportError(e.to_string()))?;
        let subject = rpc::call_subject(LATTICE, &self.target, interface, function);
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            self.client.request(subject, frame.into()),
        )
        .await
        .map_err(|_| TransportError("no reply within 10 s".into()))?
        .map_err(|e| TransportError(e.to_string()))?;
        match rpc::decode_reply(&reply.payload) {
            Ok(CallReply::Ok(values)) => Ok(values),
            Ok(CallReply::Err(e)) => Err(TransportError(e.to_string())),
            Err(e) => Err(TransportError(e.to_string())),
        }
    }
}

#[async_trait]
impl Transport for HostTransport {
    async fn call(
        &self,
        cx: &CallContext,
        interface: &str,
        function: &str,
        args: Vec<rmpv::Value>,
    ) -> Result<Vec<rmpv::Value>, TransportError> {
        let caller = Caller {
            key: self.host.public_key(),
            component_id: Some(cx.source_id.clone()),
            link_name: cx.link_name.clone(),
        };
        self.send(caller, interface, function, args).await
    }
}

fn link(name: &str, config: &[(&str, String)]) -> LinkConfig {
    LinkConfig {
        source_id: "counter".into(),
        target: PROVIDER.into(),
        link_name: name.into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into()],
        target_config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..LinkConfig::default()
    }
}

/// A lifecycle message (`link-put`, …) from the host that started the process.
async fn lifecycle(host: &HostTransport, function: &str, link: &LinkConfig) -> Result<(), String> {
    let caller = Caller {
        key: host.host.public_key(),
        component_id: None,
        link_name: String::new(),
    };
    let lifecycle = HostTransport {
        client: host.client.clone(),
        host: host.host.clone(),
        target: wire::lifecycle_target(PROVIDER, &host.host.public_key()),
    };
    let values = lifecycle
        .send(caller, wire::LIFECYCLE, function, vec![wire::arg(link)])
        .await
        .map_err(|e| e.0)?;
    let value = values.into_iter().next().unwrap_or(rmpv::Value::Nil);
    let result: Result<(), ProviderError> =
        rmpv::ext::from_value(value).map_err(|e| e.to_string())?;
    result.map_err(|e| e.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_lattice_and_shares_the_files() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir_setting = ("dir", dir.path().display().to_string());
    let host = Arc::new(KeyKind::Server.generate());

    // What `provider.start` writes on the provider's stdin: the lattice, and the links the
    // host already knows (here one, with a usable `dir`).
    let host_data = HostData {
        lattice: LATTICE.into(),
        host_id: host.public_key(),
        provider_id: PROVIDER.into(),
        nats_url: nats.url(),
        config: BTreeMap::new(),
        links: vec![link("default", std::slice::from_ref(&dir_setting))],
        ..HostData::default()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trellis-provider-template"))
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut line = serde_json::to_vec(&host_data).unwrap();
    line.push(b'\n');
    stdin.write_all(&line).await.unwrap();
    stdin.flush().await.unwrap();

    let transport = Arc::new(HostTransport {
        client: async_nats::connect(nats.url()).await.unwrap(),
        host,
        target: PROVIDER.into(),
    });
    let kv = RemoteKeyValue(transport.clone());
    let cx = CallContext::new("counter", "default");

    // Ready once it answers (it subscribes after connecting and putting its links).
    let started = Instant::now();
    while let Err(e) = kv.open(&cx, "orders").await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the provider never answered: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    kv.set(&cx, "orders", "greeting", b"hello".to_vec())
        .await
        .unwrap();
    assert_eq!(kv.increment(&cx, "orders", "n", 2).await.unwrap(), 2);
    assert_eq!(
        kv.get(&cx, "orders", "greeting").await.unwrap(),
        Some(b"hello".to_vec())
    );
    // Typed errors cross the process boundary as they are.
    kv.set(&cx, "orders", "word", b"abc".to_vec())
        .await
        .unwrap();
    assert!(matches!(
        kv.increment(&cx, "orders", "word", 1).await,
        Err(KvError::Other(m)) if m.contains("word")
    ));

    // A link put at run time without `dir` is refused, and the host gets the message.
    let refused = lifecycle(&transport, wire::LINK_PUT, &link("nodir", &[])).await;
    assert!(
        matches!(&refused, Err(m) if m.contains("`dir`")),
        "{refused:?}"
    );
    // One with a `dir` is accepted and used.
    lifecycle(&transport, wire::LINK_PUT, &link("other", &[dir_setting]))
        .await
        .unwrap();
    let other = CallContext::new("counter", "other");
    assert_eq!(kv.increment(&other, "orders", "n", 1).await.unwrap(), 3);

    // The process wrote ordinary bucket files: the in-process provider reads the same data.
    let local = Arc::new(FileKvProvider::new());
    let local_kv = trellis_testing::keyvalue::start(local.clone()).await;
    trellis_testing::keyvalue::put_link(
        local.as_ref(),
        &trellis_testing::keyvalue::link(
            "default",
            &BTreeMap::from([("dir".to_string(), dir.path().display().to_string())]),
        ),
    )
    .await;
    let local_cx = CallContext::new(trellis_testing::keyvalue::COMPONENT, "default");
    assert_eq!(
        local_kv.get(&local_cx, "orders", "n").await.unwrap(),
        Some(b"3".to_vec())
    );

    // Closing stdin means "the host is gone": the provider shuts down and exits cleanly.
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the provider exits when its stdin closes")
        .unwrap();
    assert!(status.success(), "{status}");
}
