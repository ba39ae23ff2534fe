//! A running wadm: the API responder and the reconciler, started together and stopped
//! together.
//!
//! ```text
//! wadm.api.{lattice}.model.*  ──▶ handlers ──▶ WADM_APPS / WADM_STATUS (JetStream KV)
//!                                                   │ watch
//! wasmbus.evt.{lattice}.>  ──▶ LatticeView ──▶ reconciler (leader only) ──▶ wasmbus.ctl.v1.…
//! ```
//!
//! [`Wadm::start`] returns a handle; [`Wadm::shutdown`] stops taking requests, lets the ones in
//! flight finish, gives up the leader lease (another wadm takes over at once) and flushes.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::api;
use crate::reconciler::{self, ReconcileOptions};
use crate::store::{Store, StoreError};

/// A wadm joined to one lattice.
pub struct Wadm {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    nats: async_nats::Client,
}

impl Wadm {
    /// Opens the buckets, subscribes to the API (queue group `wadm.{lattice}`) and starts the
    /// reconciler. `id` names this instance in the leader lease and the logs.
    pub async fn start(
        nats: async_nats::Client,
        lattice: &str,
        id: &str,
        options: ReconcileOptions,
    ) -> Result<Self, StoreError> {
        let js = async_nats::jetstream::new(nats.clone());
        let store = Store::open(&js, lattice).await?;
        let requests = nats
            .queue_subscribe(api::wildcard(lattice), format!("wadm.{lattice}"))
            .await
            .map_err(|e| StoreError(format!("cannot subscribe to the wadm API: {e}")))?;
        let (stop, stopped) = watch::channel(false);
        let api_task = tokio::spawn(serve_api(
            nats.clone(),
            store.clone(),
            lattice.to_string(),
            requests,
            stopped.clone(),
        ));
        let reconcile_task = tokio::spawn(reconciler::run(
            nats.clone(),
            store,
            lattice.to_string(),
            id.to_string(),
            options,
            stopped,
        ));
        Ok(Self {
            stop,
            tasks: vec![api_task, reconcile_task],
            nats,
        })
    }

    /// Stops both tasks (bounded), releases the lease and flushes NATS.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.nats.flush()).await;
    }
}

async fn serve_api(
    nats: async_nats::Client,
    store: Store,
    lattice: String,
    mut requests: async_nats::Subscriber,
    mut stop: watch::Receiver<bool>,
) {
    let prefix = format!("{}.{lattice}.model.", api::API_PREFIX);
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let message = tokio::select! {
            _ = stop.changed() => break,
            message = requests.next() => match message {
                Some(m) => m,
                None => break,
            },
        };
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let rest = message
            .subject
            .as_str()
            .strip_prefix(&prefix)
            .unwrap_or_default()
            .to_string();
        let (operation, name) = match rest.split_once('.') {
            Some((op, name)) => (op.to_string(), Some(name.to_string())),
            None => (rest, None),
        };
        let (nats, store) = (nats.clone(), store.clone());
        let span = tracing::info_span!("wadm.api", operation = %operation, app = name.as_deref().unwrap_or(""));
        in_flight.spawn(
            async move {
                let answer =
                    crate::handlers::handle(&store, &operation, name.as_deref(), &message.payload)
                        .await;
                if let Err(e) = nats.publish(reply, answer.into()).await {
                    tracing::warn!("wadm cannot reply: {e}");
                }
            }
            .instrument(span),
        );
        while in_flight.try_join_next().is_some() {}
    }
    let _ = requests.unsubscribe().await;
    while in_flight.join_next().await.is_some() {}
}
