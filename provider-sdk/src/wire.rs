//! Capability calls as lattice calls: how a host reaches a provider that runs in another
//! process, and how that provider answers.
//!
//! A call to a provider is an ordinary lattice call (`trellis_protocol::rpc`): a signed
//! `CallRequest` on `wasmbus.rpc.{lattice}.{provider}.{ns:pkg/iface}.{function}`. Its `caller`
//! carries the calling component and link name, which become the provider's [`CallContext`].
//! Arguments are the trait method's arguments (after the context) as MessagePack values, in
//! order; the reply holds one value: the method's `Result<T, CapabilityError>`, so typed
//! errors (`KvError`, `SqlError`) reach the component exactly as an in-process provider
//! returns them.
//!
//! - Host side: [`RemoteKeyValue`] / [`RemoteSql`] implement the capability traits over a
//!   [`Transport`] (the host's NATS client), so the host treats a remote provider like an
//!   in-process one.
//! - Provider side: [`dispatch`] decodes a call and runs it on the provider's
//!   [`Capabilities`](crate::Capabilities).
//!
//! Lifecycle messages go to the one process a host started ([`lifecycle_target`]), with
//! reserved function names on the interface [`LIFECYCLE`]: `link-put`, `link-del` (a [`LinkConfig`](crate::LinkConfig)),
//! `config-update` (the merged config map), `health`, `shutdown`.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_protocol::rpc::{CallError, CallErrorKind};

use crate::http::HttpResponse;
use crate::http_client::{HttpClient, HttpClientError, OUTGOING_HANDLER, OutgoingRequest};
use crate::keyvalue::{KeyPage, KeyValue, KvError};
use crate::link::CallContext;
use crate::provider::Capabilities;
use crate::sql::{Row, Sql, SqlError, SqlValue};

/// The interface name of lifecycle messages from a host to its provider.
pub const LIFECYCLE: &str = "trellis:provider/lifecycle";
pub const LINK_PUT: &str = "link-put";
pub const LINK_DEL: &str = "link-del";
pub const HEALTH: &str = "health";
pub const CONFIG_UPDATE: &str = "config-update";
pub const SHUTDOWN: &str = "shutdown";

/// The call target of lifecycle messages for the instance of `provider_id` that `host_id`
/// started: several hosts may run a provider under one id (capability calls are shared
/// through a queue group), but each host manages only its own process.
pub fn lifecycle_target(provider_id: &str, host_id: &str) -> String {
    format!("{provider_id}@{host_id}")
}

const STORE: &str = "wasi:keyvalue/store";
const ATOMICS: &str = "wasi:keyvalue/atomics";
const BATCH: &str = "wasi:keyvalue/batch";
const READWRITE: &str = "wasi:sql/readwrite";
const SQL_TYPES: &str = "wasi:sql/types";

/// Why a call did not reach the provider or came back unreadable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Sends one call to a provider and returns the reply values (the host's NATS client).
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn call(
        &self,
        cx: &CallContext,
        interface: &str,
        function: &str,
        args: Vec<rmpv::Value>,
    ) -> Result<Vec<rmpv::Value>, TransportError>;
}

/// Encodes one argument.
pub fn arg(value: &impl Serialize) -> rmpv::Value {
    rmpv::ext::to_value(value).unwrap_or(rmpv::Value::Nil)
}

async fn remote<T: DeserializeOwned, E>(
    transport: &dyn Transport,
    cx: &CallContext,
    interface: &str,
    function: &str,
    args: Vec<rmpv::Value>,
    transport_error: fn(String) -> E,
) -> Result<T, E>
where
    E: DeserializeOwned,
{
    let reply = transport
        .call(cx, interface, function, args)
        .await
        .map_err(|e| transport_error(e.0))?;
    let Some(value) = reply.into_iter().next() else {
        return Err(transport_error(format!(
            "the provider's reply to `{interface}.{function}` is empty"
        )));
    };
    rmpv::ext::from_value::<Result<T, E>>(value).unwrap_or_else(|e| {
        Err(transport_error(format!(
            "the provider's reply to `{interface}.{function}` is malformed: {e}"
        )))
    })
}

/// A key-value provider in another process.
pub struct RemoteKeyValue(pub Arc<dyn Transport>);

impl RemoteKeyValue {
    async fn call<T: DeserializeOwned>(
        &self,
        cx: &CallContext,
        interface: &str,
        function: &str,
        args: Vec<rmpv::Value>,
    ) -> Result<T, KvError> {
        remote(&*self.0, cx, interface, function, args, KvError::Other).await
    }
}

#[async_trait]
impl KeyValue for RemoteKeyValue {
    async fn open(&self, cx: &CallContext, bucket: &str) -> Result<(), KvError> {
        self.call(cx, STORE, "open", vec![arg(&bucket)]).await
    }
    async fn get(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError> {
        let value: Option<serde_bytes::ByteBuf> = self
            .call(cx, STORE, "get", vec![arg(&bucket), arg(&key)])
            .await?;
        Ok(value.map(serde_bytes::ByteBuf::into_vec))
    }
    async fn set(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        let value = rmpv::Value::Binary(value);
        self.call(cx, STORE, "set", vec![arg(&bucket), arg(&key), value])
            .await
    }
    async fn delete(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<(), KvError> {
        self.call(cx, STORE, "delete", vec![arg(&bucket), arg(&key)])
            .await
    }
    async fn exists(&self, cx: &CallContext, bucket: &str, key: &str) -> Result<bool, KvError> {
        self.call(cx, STORE, "exists", vec![arg(&bucket), arg(&key)])
            .await
    }
    async fn list_keys(
        &self,
        cx: &CallContext,
        bucket: &str,
        cursor: Option<u64>,
    ) -> Result<KeyPage, KvError> {
        self.call(cx, STORE, "list-keys", vec![arg(&bucket), arg(&cursor)])
            .await
    }
    async fn increment(
        &self,
        cx: &CallContext,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, KvError> {
        let args = vec![arg(&bucket), arg(&key), arg(&delta)];
        self.call(cx, ATOMICS, "increment", args).await
    }
    async fn get_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let found: Vec<Option<(String, serde_bytes::ByteBuf)>> = self
            .call(cx, BATCH, "get-many", vec![arg(&bucket), arg(&keys)])
            .await?;
        Ok(found
            .into_iter()
            .map(|e| e.map(|(k, v)| (k, v.into_vec())))
            .collect())
    }
    async fn set_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        items: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        let items: Vec<(String, serde_bytes::ByteBuf)> = items
            .into_iter()
            .map(|(k, v)| (k, serde_bytes::ByteBuf::from(v)))
            .collect();
        self.call(cx, BATCH, "set-many", vec![arg(&bucket), arg(&items)])
            .await
    }
    async fn delete_many(
        &self,
        cx: &CallContext,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        self.call(cx, BATCH, "delete-many", vec![arg(&bucket), arg(&keys)])
            .await
    }
}

/// A SQL provider in another process.
pub struct RemoteSql(pub Arc<dyn Transport>);

#[async_trait]
impl Sql for RemoteSql {
    async fn open(&self, cx: &CallContext, name: &str) -> Result<(), SqlError> {
        remote(
            &*self.0,
            cx,
            SQL_TYPES,
            "open",
            vec![arg(&name)],
            SqlError::Other,
        )
        .await
    }
    async fn query(
        &self,
        cx: &CallContext,
        connection: &str,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> Result<Vec<Row>, SqlError> {
        let args = vec![arg(&connection), arg(&statement), arg(&params)];
        remote(&*self.0, cx, READWRITE, "query", args, SqlError::Other).await
    }
    async fn exec(
        &self,
        cx: &CallContext,
        connection: &str,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> Result<u64, SqlError> {
        let args = vec![arg(&connection), arg(&statement), arg(&params)];
        remote(&*self.0, cx, READWRITE, "exec", args, SqlError::Other).await
    }
}

/// An HTTP client provider in another process.
pub struct RemoteHttpClient(pub Arc<dyn Transport>);

#[async_trait]
impl HttpClient for RemoteHttpClient {
    async fn send(
        &self,
        cx: &CallContext,
        request: OutgoingRequest,
    ) -> Result<HttpResponse, HttpClientError> {
        let args = vec![arg(&request)];
        remote(
            &*self.0,
            cx,
            OUTGOING_HANDLER,
            crate::http_client::HANDLE,
            args,
            HttpClientError::Other,
        )
        .await
    }
}

/// The arguments of a call, decoded into the method's parameter types.
struct Args(std::vec::IntoIter<rmpv::Value>);

impl Args {
    fn next<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, CallError> {
        let value = self.0.next().ok_or_else(|| CallError {
            kind: CallErrorKind::NoSuchFunction,
            message: format!("missing argument `{name}`"),
        })?;
        rmpv::ext::from_value(value).map_err(|e| CallError {
            kind: CallErrorKind::NoSuchFunction,
            message: format!("argument `{name}` has the wrong type: {e}"),
        })
    }
}

fn reply<T: Serialize, E: Serialize>(result: Result<T, E>) -> Vec<rmpv::Value> {
    vec![arg(&result)]
}

fn not_served(interface: &str) -> CallError {
    CallError {
        kind: CallErrorKind::NoSuchFunction,
        message: format!("this provider does not serve `{interface}`"),
    }
}

/// Runs one capability call on a provider (the provider side of [`RemoteKeyValue`] and
/// [`RemoteSql`]). `Err` means the call itself was wrong (unknown interface or function,
/// arguments of the wrong shape); the capability's own errors are inside `Ok`.
pub async fn dispatch(
    capabilities: &Capabilities,
    cx: &CallContext,
    interface: &str,
    function: &str,
    args: Vec<rmpv::Value>,
) -> Result<Vec<rmpv::Value>, CallError> {
    let mut a = Args(args.into_iter());
    match interface {
        STORE | ATOMICS | BATCH => {
            let kv = capabilities
                .keyvalue
                .as_ref()
                .ok_or_else(|| not_served(interface))?;
            let bucket: String = a.next("bucket")?;
            Ok(match (interface, function) {
                (STORE, "open") => reply(kv.open(cx, &bucket).await),
                (STORE, "get") => {
                    let got = kv.get(cx, &bucket, &a.next::<String>("key")?).await;
                    reply(got.map(|v| v.map(serde_bytes::ByteBuf::from)))
                }
                (STORE, "set") => {
                    let key: String = a.next("key")?;
                    let value: serde_bytes::ByteBuf = a.next("value")?;
                    reply(kv.set(cx, &bucket, &key, value.into_vec()).await)
                }
                (STORE, "delete") => reply(kv.delete(cx, &bucket, &a.next::<String>("key")?).await),
                (STORE, "exists") => reply(kv.exists(cx, &bucket, &a.next::<String>("key")?).await),
                (STORE, "list-keys") => reply(kv.list_keys(cx, &bucket, a.next("cursor")?).await),
                (ATOMICS, "increment") => {
                    let key: String = a.next("key")?;
                    reply(kv.increment(cx, &bucket, &key, a.next("delta")?).await)
                }
                (BATCH, "get-many") => {
                    let got = kv.get_many(cx, &bucket, a.next("keys")?).await;
                    reply(got.map(|found| {
                        found
                            .into_iter()
                            .map(|e| e.map(|(k, v)| (k, serde_bytes::ByteBuf::from(v))))
                            .collect::<Vec<_>>()
                    }))
                }
                (BATCH, "set-many") => {
                    let items: Vec<(String, serde_bytes::ByteBuf)> = a.next("items")?;
                    let items = items.into_iter().map(|(k, v)| (k, v.into_vec())).collect();
                    reply(kv.set_many(cx, &bucket, items).await)
                }
                (BATCH, "delete-many") => reply(kv.delete_many(cx, &bucket, a.next("keys")?).await),
                _ => return Err(no_such_function(interface, function)),
            })
        }
        SQL_TYPES | READWRITE => {
            let sql = capabilities
                .sql
                .as_ref()
                .ok_or_else(|| not_served(interface))?;
            let connection: String = a.next("connection")?;
            Ok(match (interface, function) {
                (SQL_TYPES, "open") => reply(sql.open(cx, &connection).await),
                (READWRITE, "query") => {
                    let statement: String = a.next("statement")?;
                    reply(
                        sql.query(cx, &connection, &statement, a.next("params")?)
                            .await,
                    )
                }
                (READWRITE, "exec") => {
                    let statement: String = a.next("statement")?;
                    reply(
                        sql.exec(cx, &connection, &statement, a.next("params")?)
                            .await,
                    )
                }
                _ => return Err(no_such_function(interface, function)),
            })
        }
        OUTGOING_HANDLER => {
            let client = capabilities
                .http_client
                .as_ref()
                .ok_or_else(|| not_served(interface))?;
            if function != crate::http_client::HANDLE {
                return Err(no_such_function(interface, function));
            }
            Ok(reply(client.send(cx, a.next("request")?).await))
        }
        _ => Err(not_served(interface)),
    }
}

fn no_such_function(interface: &str, function: &str) -> CallError {
    CallError {
        kind: CallErrorKind::NoSuchFunction,
        message: format!("`{interface}` has no function `{function}`"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::sql::Column;

    /// A map behind the trait: the encoding under test is what sits between it and the caller.
    #[derive(Default)]
    struct MapStore(Mutex<BTreeMap<(String, String), Vec<u8>>>);

    #[async_trait]
    impl KeyValue for MapStore {
        async fn open(&self, _: &CallContext, bucket: &str) -> Result<(), KvError> {
            if bucket == "missing" {
                return Err(KvError::NoSuchStore);
            }
            Ok(())
        }
        async fn get(&self, _: &CallContext, b: &str, k: &str) -> Result<Option<Vec<u8>>, KvError> {
            let map = self.0.lock().unwrap();
            Ok(map.get(&(b.into(), k.into())).cloned())
        }
        async fn set(&self, _: &CallContext, b: &str, k: &str, v: Vec<u8>) -> Result<(), KvError> {
            self.0.lock().unwrap().insert((b.into(), k.into()), v);
            Ok(())
        }
        async fn delete(&self, _: &CallContext, b: &str, k: &str) -> Result<(), KvError> {
            self.0.lock().unwrap().remove(&(b.into(), k.into()));
            Ok(())
        }
        async fn exists(&self, cx: &CallContext, b: &str, k: &str) -> Result<bool, KvError> {
            Ok(self.get(cx, b, k).await?.is_some())
        }
        async fn list_keys(
            &self,
            _: &CallContext,
            b: &str,
            cursor: Option<u64>,
        ) -> Result<KeyPage, KvError> {
            let map = self.0.lock().unwrap();
            let keys: Vec<String> = map
                .keys()
                .filter(|(bucket, _)| bucket == b)
                .map(|(_, k)| k.clone())
                .skip(cursor.unwrap_or(0) as usize)
                .take(2)
                .collect();
            let next = cursor.unwrap_or(0) + keys.len() as u64;
            let more = map.keys().filter(|(bucket, _)| bucket == b).count() as u64 > next;
            Ok(KeyPage {
                keys,
                cursor: more.then_some(next),
            })
        }
        async fn increment(
            &self,
            _: &CallContext,
            b: &str,
            k: &str,
            delta: u64,
        ) -> Result<u64, KvError> {
            let mut map = self.0.lock().unwrap();
            let current = map.get(&(b.into(), k.into())).map(Vec::as_slice);
            let now = crate::keyvalue::parse_counter(k, current)?;
            let next = crate::keyvalue::add_to_counter(k, now, delta)?;
            map.insert((b.into(), k.into()), next.to_string().into_bytes());
            Ok(next)
        }
    }

    struct Failing;

    #[async_trait]
    impl Sql for Failing {
        async fn open(&self, _: &CallContext, name: &str) -> Result<(), SqlError> {
            Err(SqlError::NoSuchConnection(name.into()))
        }
        async fn query(
            &self,
            _: &CallContext,
            _: &str,
            statement: &str,
            params: Vec<SqlValue>,
        ) -> Result<Vec<Row>, SqlError> {
            if statement.starts_with("SELEC ") {
                return Err(SqlError::Syntax("near SELEC".into()));
            }
            Ok(vec![Row {
                columns: params
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| Column {
                        name: format!("c{i}"),
                        value,
                    })
                    .collect(),
            }])
        }
        async fn exec(
            &self,
            _: &CallContext,
            _: &str,
            _: &str,
            p: Vec<SqlValue>,
        ) -> Result<u64, SqlError> {
            Ok(p.len() as u64)
        }
    }

    /// Answers with the request's URL and body, or refuses hosts other than `allowed.test`.
    struct Echo;

    #[async_trait]
    impl HttpClient for Echo {
        async fn send(
            &self,
            cx: &CallContext,
            request: OutgoingRequest,
        ) -> Result<HttpResponse, HttpClientError> {
            if request.authority != "allowed.test" {
                return Err(HttpClientError::Denied(format!(
                    "`{}` may not reach {}",
                    cx.source_id, request.authority
                )));
            }
            let mut body = request.url().into_bytes();
            body.extend(&request.body);
            Ok(HttpResponse {
                status: 201,
                headers: request.headers,
                body,
            })
        }
    }

    /// Calls `dispatch` directly, as the provider process would after NATS.
    struct Loopback(Capabilities);

    #[async_trait]
    impl Transport for Loopback {
        async fn call(
            &self,
            cx: &CallContext,
            interface: &str,
            function: &str,
            args: Vec<rmpv::Value>,
        ) -> Result<Vec<rmpv::Value>, TransportError> {
            dispatch(&self.0, cx, interface, function, args)
                .await
                .map_err(|e| TransportError(e.message))
        }
    }

    fn loopback() -> Arc<Loopback> {
        Arc::new(Loopback(Capabilities {
            keyvalue: Some(Arc::new(MapStore::default())),
            sql: Some(Arc::new(Failing)),
            http_client: Some(Arc::new(Echo)),
        }))
    }

    #[tokio::test]
    async fn key_value_calls_round_trip_with_typed_errors() {
        let kv = RemoteKeyValue(loopback());
        let cx = CallContext::new("counter", "default");
        assert_eq!(kv.open(&cx, "missing").await, Err(KvError::NoSuchStore));
        kv.open(&cx, "b").await.unwrap();
        assert_eq!(kv.get(&cx, "b", "k").await, Ok(None));
        kv.set(&cx, "b", "k", vec![0, 159, 255]).await.unwrap();
        assert_eq!(kv.get(&cx, "b", "k").await, Ok(Some(vec![0, 159, 255])));
        assert_eq!(kv.exists(&cx, "b", "k").await, Ok(true));
        let not_a_number = kv.increment(&cx, "b", "k", 1).await.unwrap_err();
        assert!(matches!(not_a_number, KvError::Other(m) if m.contains("`k`")));
        assert_eq!(kv.increment(&cx, "b", "n", 5).await, Ok(5));
        assert_eq!(kv.increment(&cx, "b", "n", 2).await, Ok(7));
        kv.set_many(&cx, "b", vec![("x".into(), b"1".to_vec())])
            .await
            .unwrap();
        let many = kv
            .get_many(&cx, "b", vec!["x".into(), "nope".into()])
            .await
            .unwrap();
        assert_eq!(many, vec![Some(("x".into(), b"1".to_vec())), None]);
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = kv.list_keys(&cx, "b", cursor).await.unwrap();
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(keys, ["k", "n", "x"]);
        kv.delete_many(&cx, "b", vec!["x".into(), "k".into()])
            .await
            .unwrap();
        kv.delete(&cx, "b", "n").await.unwrap();
        assert_eq!(kv.exists(&cx, "b", "n").await, Ok(false));
    }

    #[tokio::test]
    async fn sql_calls_carry_typed_values_and_errors() {
        let sql = RemoteSql(loopback());
        let cx = CallContext::new("orders", "default");
        assert_eq!(
            sql.open(&cx, "reports").await,
            Err(SqlError::NoSuchConnection("reports".into()))
        );
        let params = vec![
            SqlValue::Null,
            SqlValue::Boolean(true),
            SqlValue::Int32(-3),
            SqlValue::Int64(i64::MIN),
            SqlValue::Uint32(u32::MAX),
            SqlValue::Uint64(u64::MAX),
            SqlValue::Float(1.5),
            SqlValue::Double(-0.25),
            SqlValue::Str("'; DROP TABLE x; --".into()),
            SqlValue::Date("2026-11-29".into()),
            SqlValue::Time("23:59:59".into()),
            SqlValue::Timestamp("2026-11-29 23:59:59".into()),
            SqlValue::Binary(vec![0, 1, 255]),
        ];
        let rows = sql
            .query(&cx, "default", "SELECT", params.clone())
            .await
            .unwrap();
        let back: Vec<SqlValue> = rows[0].columns.iter().map(|c| c.value.clone()).collect();
        assert_eq!(back, params);
        assert_eq!(
            sql.query(&cx, "default", "SELEC 1", vec![]).await,
            Err(SqlError::Syntax("near SELEC".into()))
        );
        assert_eq!(sql.exec(&cx, "default", "x", params).await, Ok(13));
    }

    #[tokio::test]
    async fn http_requests_and_refusals_cross_whole() {
        let client = RemoteHttpClient(loopback());
        let cx = CallContext::new("fetcher", "default");
        let mut request = OutgoingRequest {
            method: "POST".into(),
            scheme: "https".into(),
            authority: "allowed.test".into(),
            path_and_query: "/a?b=1".into(),
            headers: vec![("x-k".into(), serde_bytes::ByteBuf::from(vec![0, 255]))],
            body: vec![1, 2, 3],
            connect_timeout_ms: Some(5),
            first_byte_timeout_ms: None,
        };
        let response = client.send(&cx, request.clone()).await.unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.headers, request.headers);
        assert_eq!(
            response.body,
            b"https://allowed.test/a?b=1\x01\x02\x03".to_vec()
        );
        request.authority = "other.test".into();
        assert_eq!(
            client.send(&cx, request).await,
            Err(HttpClientError::Denied(
                "`fetcher` may not reach other.test".into()
            ))
        );
    }

    #[tokio::test]
    async fn wrong_calls_are_refused_with_what_is_wrong() {
        let caps = Capabilities::default();
        let cx = CallContext::new("c", "default");
        let err = dispatch(&caps, &cx, STORE, "get", vec![])
            .await
            .unwrap_err();
        assert!(err.message.contains("does not serve"), "{}", err.message);
        let caps = loopback().0.clone();
        let err = dispatch(&caps, &cx, STORE, "fly", vec![arg(&"b")])
            .await
            .unwrap_err();
        assert!(err.message.contains("no function `fly`"), "{}", err.message);
        let err = dispatch(&caps, &cx, STORE, "get", vec![arg(&"b")])
            .await
            .unwrap_err();
        assert!(
            err.message.contains("missing argument `key`"),
            "{}",
            err.message
        );
        let err = dispatch(&caps, &cx, STORE, "get", vec![arg(&"b"), arg(&7)])
            .await
            .unwrap_err();
        assert!(
            err.message.contains("`key` has the wrong type"),
            "{}",
            err.message
        );
    }
}
