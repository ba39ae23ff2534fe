//! `wasi:keyvalue@0.2.0-draft` (`store`, `atomics`, `batch`), served by key-value providers.
//!
//! `store::open(identifier)` resolves the calling component's link for `wasi:keyvalue/store`
//! (see [`super::provided`]) once and keeps the provider in the `bucket` resource; every
//! later call on that bucket goes to the same provider with the component's id and link name
//! as its [`CallContext`]. Provider errors, a missing link included, come back to the guest
//! as the WIT `error` value (`other(message)` naming the component, interface and link), never
//! as a trap; a missing link is also logged once per component, interface and link.

use std::sync::Arc;

use trellis_provider_sdk::CallContext;
use trellis_provider_sdk::keyvalue::{KeyValue, KvError};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::provided::Routing;
use super::{Capability, Served};
use crate::InvocationState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wasi-keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

const STORE: &str = "wasi:keyvalue/store";

/// An open bucket: the provider it lives in and the link it was opened through.
pub struct Bucket {
    identifier: String,
    cx: CallContext,
    provider: Arc<dyn KeyValue>,
}

/// The `wasi:keyvalue` capability.
pub struct WasiKeyValue;

struct KeyValueData;

impl HasData for KeyValueData {
    type Data<'a> = KeyValueView<'a>;
}

struct KeyValueView<'a> {
    table: &'a mut ResourceTable,
    routing: Routing<'a>,
}

fn to_wit(error: KvError) -> store::Error {
    match error {
        KvError::NoSuchStore => store::Error::NoSuchStore,
        KvError::AccessDenied => store::Error::AccessDenied,
        KvError::Other(message) => store::Error::Other(message),
    }
}

impl KeyValueView<'_> {
    fn bucket(
        &self,
        bucket: &Resource<Bucket>,
    ) -> wasmtime::Result<(Arc<dyn KeyValue>, CallContext, String)> {
        let bucket = self.table.get(bucket)?;
        Ok((
            bucket.provider.clone(),
            bucket.cx.clone(),
            bucket.identifier.clone(),
        ))
    }
}

impl store::Host for KeyValueView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        let (provider, cx) = match self.routing.provider(STORE, "key-value", |c| c.keyvalue) {
            Ok(found) => found,
            Err(message) => return Ok(Err(store::Error::Other(message))),
        };
        if let Err(e) = provider.open(&cx, &identifier).await {
            return Ok(Err(to_wit(e)));
        }
        let bucket = Bucket {
            identifier,
            cx,
            provider,
        };
        Ok(Ok(self.table.push(bucket)?))
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let (kv, cx, id) = self.bucket(&bucket)?;
        Ok(kv.get(&cx, &id, &key).await.map_err(to_wit))
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (kv, cx, id) = self.bucket(&bucket)?;
        Ok(kv.set(&cx, &id, &key, value).await.map_err(to_wit))
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (kv, cx, id) = self.bucket(&bucket)?;
        Ok(kv.delete(&cx, &id, &key).await.map_err(to_wit))
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let (kv, cx, id) = self.bucket(&bucket)?;
        Ok(kv.exists(&cx, &id, &key).await.map_err(to_wit))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let (kv, cx, id) = self.bucket(&bucket)?;
        Ok(kv
            .list_keys(&cx, &id, cursor)
            .await
            .map(|page| store::KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            })
            .map_err(to_wit))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, store::Error>> {
        let (kv, cx, id) = self.bucket(&bucket)?;
        Ok(kv.increment(&cx, &id, &key, delta).await.map_err(to_wit))
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, store::Error>> {
        let (kv, cx, id) = self.bucket(&bucket)?;
        Ok(kv.get_many(&cx, &id, keys).await.map_err(to_wit))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (kv, cx, id) = self.bucket(&bucket)?;
        Ok(kv.set_many(&cx, &id, key_values).await.map_err(to_wit))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (kv, cx, id) = self.bucket(&bucket)?;
        Ok(kv.delete_many(&cx, &id, keys).await.map_err(to_wit))
    }
}

impl Capability for WasiKeyValue {
    fn name(&self) -> &'static str {
        "wasi:keyvalue"
    }

    fn serves(&self) -> &'static [Served] {
        &[
            Served {
                interface: "wasi:keyvalue/store",
                grant: true,
            },
            Served {
                interface: "wasi:keyvalue/atomics",
                grant: true,
            },
            Served {
                interface: "wasi:keyvalue/batch",
                grant: true,
            },
        ]
    }

    fn add_to_linker(&self, linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        fn view(state: &mut InvocationState) -> KeyValueView<'_> {
            let (table, routing) = state.routing();
            KeyValueView { table, routing }
        }
        store::add_to_linker::<InvocationState, KeyValueData>(linker, view)?;
        atomics::add_to_linker::<InvocationState, KeyValueData>(linker, view)?;
        batch::add_to_linker::<InvocationState, KeyValueData>(linker, view)
    }
}
