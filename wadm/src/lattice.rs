//! wadm's side of the control interface: each [`Command`] becomes one
//! `wasmbus.ctl.v1.{lattice}.…` request, and links and configs are read back for the
//! reconciler.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_protocol::ctl::{
    CtlResponse, DeleteLinkRequest, Link, ScaleComponentCommand, UpdateComponentCommand, subjects,
};

use crate::model::Command;

/// How long a host has to answer one control request.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a command did not take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlFailure {
    /// No answer in time (host gone or busy): try again on the next pass.
    NoAnswer(String),
    /// The host answered no; the message says why (e.g. an unsigned component).
    Refused(String),
}

/// Sends control requests for one lattice.
#[derive(Clone)]
pub struct LatticeClient {
    nats: async_nats::Client,
    lattice: String,
}

impl LatticeClient {
    pub fn new(nats: async_nats::Client, lattice: &str) -> Self {
        Self {
            nats,
            lattice: lattice.to_string(),
        }
    }

    async fn request<T: DeserializeOwned>(
        &self,
        subject: String,
        body: &impl Serialize,
    ) -> Result<Option<T>, CtlFailure> {
        let payload = serde_json::to_vec(body).unwrap_or_default();
        let reply = tokio::time::timeout(
            CTL_TIMEOUT,
            self.nats.request(subject.clone(), payload.into()),
        )
        .await
        .map_err(|_| CtlFailure::NoAnswer(format!("no answer on `{subject}` within 3 s")))?
        .map_err(|e| CtlFailure::NoAnswer(format!("`{subject}`: {e}")))?;
        let reply: CtlResponse<T> = serde_json::from_slice(&reply.payload)
            .map_err(|e| CtlFailure::Refused(format!("unreadable reply on `{subject}`: {e}")))?;
        if reply.success {
            Ok(reply.response)
        } else {
            Err(CtlFailure::Refused(reply.message))
        }
    }

    /// Sends one command.
    pub async fn execute(&self, command: &Command) -> Result<(), CtlFailure> {
        let lattice = &self.lattice;
        match command {
            Command::ScaleComponent {
                host_id,
                component_id,
                image,
                count,
                config,
                annotations,
            } => {
                let body = ScaleComponentCommand {
                    component_ref: image.clone(),
                    component_id: component_id.clone(),
                    annotations: annotations.clone(),
                    max_instances: *count,
                    host_id: host_id.clone(),
                    config: config.clone(),
                    allow_update: true,
                };
                let subject = subjects::component_scale(lattice, host_id);
                self.request::<serde_json::Value>(subject, &body).await?;
            }
            Command::UpdateComponent {
                host_id,
                component_id,
                image,
                annotations,
            } => {
                let body = UpdateComponentCommand {
                    component_id: component_id.clone(),
                    annotations: annotations.clone(),
                    host_id: host_id.clone(),
                    new_component_ref: image.clone(),
                };
                let subject = subjects::component_update(lattice, host_id);
                self.request::<serde_json::Value>(subject, &body).await?;
            }
            Command::StartProvider {
                host_id,
                provider_id,
                image,
                config,
                annotations,
            } => {
                let body = serde_json::json!({
                    "provider_id": provider_id, "provider_ref": image, "host_id": host_id,
                    "config": config, "annotations": annotations,
                });
                let subject = subjects::provider_start(lattice, host_id);
                self.request::<serde_json::Value>(subject, &body).await?;
            }
            Command::StopProvider {
                host_id,
                provider_id,
            } => {
                let body = serde_json::json!({"provider_id": provider_id, "host_id": host_id});
                let subject = subjects::provider_stop(lattice, host_id);
                self.request::<serde_json::Value>(subject, &body).await?;
            }
            Command::PutLink(link) => {
                let subject = subjects::link_put(lattice);
                self.request::<serde_json::Value>(subject, link).await?;
            }
            Command::DeleteLink {
                source_id,
                wit_namespace,
                wit_package,
                name,
            } => {
                let body = DeleteLinkRequest {
                    source_id: source_id.clone(),
                    name: name.clone(),
                    wit_namespace: wit_namespace.clone(),
                    wit_package: wit_package.clone(),
                };
                let subject = subjects::link_del(lattice);
                self.request::<serde_json::Value>(subject, &body).await?;
            }
            Command::PutConfig { name, values } => {
                let subject = subjects::config_put(lattice, name);
                self.request::<serde_json::Value>(subject, values).await?;
            }
            Command::DeleteConfig { name } => {
                let subject = subjects::config_del(lattice, name);
                self.request::<serde_json::Value>(subject, &()).await?;
            }
        }
        Ok(())
    }

    /// Every link in the lattice.
    pub async fn links(&self) -> Result<Vec<Link>, CtlFailure> {
        let subject = subjects::link_get(&self.lattice);
        Ok(self
            .request::<Vec<Link>>(subject, &())
            .await?
            .unwrap_or_default())
    }

    /// A config map's values; `None` when it does not exist.
    pub async fn config(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, CtlFailure> {
        let subject = subjects::config_get(&self.lattice, name);
        match self.request::<BTreeMap<String, String>>(subject, &()).await {
            Ok(values) => Ok(values.filter(|v| !v.is_empty())),
            Err(CtlFailure::Refused(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
