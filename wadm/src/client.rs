//! A client of the wadm API (what `trellis app …` uses).

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::api::{
    self, DeleteModelRequest, DeleteModelResponse, DeployModelRequest, DeployModelResponse,
    ModelSummary, PutModelResponse, StatusResponse, VersionResponse,
};

/// How long a request waits for a wadm to appear before saying none answers.
const NO_RESPONDER_GRACE: Duration = Duration::from_secs(5);

/// Why an API call got no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// Talks to whichever wadm answers on a lattice.
#[derive(Clone)]
pub struct WadmClient {
    nats: async_nats::Client,
    lattice: String,
    timeout: Duration,
}

impl WadmClient {
    pub fn new(nats: async_nats::Client, lattice: &str) -> Self {
        Self {
            nats,
            lattice: lattice.to_string(),
            timeout: Duration::from_secs(10),
        }
    }

    async fn request<T: DeserializeOwned>(
        &self,
        operation: &str,
        name: Option<&str>,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let subject = api::subject(&self.lattice, operation, name);
        // A wadm that is starting (or restarting) has not subscribed yet: give it a moment.
        let started = std::time::Instant::now();
        let reply = loop {
            let sent = tokio::time::timeout(
                self.timeout,
                self.nats.request(subject.clone(), body.clone().into()),
            )
            .await
            .map_err(|_| self.no_wadm())?;
            match sent {
                Ok(reply) => break reply,
                Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                    if started.elapsed() > NO_RESPONDER_GRACE {
                        return Err(self.no_wadm());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(ClientError(format!("the wadm API request failed: {e}"))),
            }
        };
        serde_json::from_slice(&reply.payload)
            .map_err(|e| ClientError(format!("wadm's reply is unreadable: {e}")))
    }

    fn no_wadm(&self) -> ClientError {
        ClientError(format!(
            "no wadm answers on lattice `{}`: start one with `trellis wadm` (or `trellis up`)",
            self.lattice
        ))
    }

    /// Stores a manifest (YAML or JSON text) as a new version.
    pub async fn put(&self, manifest: &str) -> Result<PutModelResponse, ClientError> {
        self.request("put", None, manifest.as_bytes().to_vec())
            .await
    }

    pub async fn deploy(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<DeployModelResponse, ClientError> {
        let body = serde_json::to_vec(&DeployModelRequest {
            version: version.map(str::to_string),
        })
        .unwrap_or_default();
        self.request("deploy", Some(name), body).await
    }

    pub async fn undeploy(&self, name: &str) -> Result<DeployModelResponse, ClientError> {
        self.request("undeploy", Some(name), b"{}".to_vec()).await
    }

    pub async fn delete(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<DeleteModelResponse, ClientError> {
        let body = serde_json::to_vec(&DeleteModelRequest {
            version: version.map(str::to_string),
        })
        .unwrap_or_default();
        self.request("del", Some(name), body).await
    }

    pub async fn list(&self) -> Result<Vec<ModelSummary>, ClientError> {
        self.request("list", None, Vec::new()).await
    }

    pub async fn versions(&self, name: &str) -> Result<VersionResponse, ClientError> {
        self.request("versions", Some(name), Vec::new()).await
    }

    pub async fn status(&self, name: &str) -> Result<StatusResponse, ClientError> {
        self.request("status", Some(name), Vec::new()).await
    }
}
