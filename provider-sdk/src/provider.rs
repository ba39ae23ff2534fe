//! The provider lifecycle, shared by every capability.
//!
//! The host (in-process) or the SDK's process runner (out-of-process) drives a provider
//! through these calls, in this order: [`Provider::init`] once; then, at any time and in any
//! order, link puts/deletes (as target: a component imports the capability; as source: the
//! provider calls a component, e.g. an HTTP server), [`Provider::update_config`] and
//! [`Provider::health`]; finally [`Provider::shutdown`] once. All methods have defaults, so a
//! provider implements only what it needs.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::http_client::HttpClient;
use crate::keyvalue::KeyValue;
use crate::link::LinkConfig;
use crate::sql::Sql;

/// A lifecycle step failed; the message says what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{0}")]
pub struct ProviderError(pub String);

impl ProviderError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// What a provider learns when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitContext {
    /// The provider's id in the lattice (link targets name it).
    pub provider_id: String,
    /// The lattice it serves.
    pub lattice: String,
    /// The host that started it.
    pub host_id: String,
    /// The named configs given at start, merged in order.
    pub config: BTreeMap<String, String>,
}

/// A provider's own id, remembered at [`Provider::init`] so that messages can show the
/// exact `trellis link put … PROVIDER_ID …` command to run.
#[derive(Debug, Default)]
pub struct ProviderIdCell(RwLock<String>);

impl ProviderIdCell {
    /// The placeholder [`ProviderIdCell::get`] answers before `init`.
    pub const PLACEHOLDER: &'static str = "PROVIDER_ID";

    /// Remembers the id `init` gave (call it from [`Provider::init`]).
    pub fn remember(&self, init: &InitContext) {
        let mut id = self.0.write().unwrap_or_else(|p| p.into_inner());
        id.clone_from(&init.provider_id);
    }

    /// The id, or [`ProviderIdCell::PLACEHOLDER`] while none is known.
    pub fn get(&self) -> String {
        let id = self.0.read().unwrap_or_else(|p| p.into_inner());
        if id.is_empty() {
            Self::PLACEHOLDER.to_string()
        } else {
            id.clone()
        }
    }
}

/// The answer to a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    pub healthy: bool,
    pub message: String,
}

impl HealthStatus {
    pub fn healthy() -> Self {
        Self {
            healthy: true,
            message: String::new(),
        }
    }
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self {
            healthy: false,
            message: message.into(),
        }
    }
}

/// The capability traits a provider implements, as trait objects.
#[derive(Clone, Default)]
pub struct Capabilities {
    pub keyvalue: Option<Arc<dyn KeyValue>>,
    pub sql: Option<Arc<dyn Sql>>,
    pub http_client: Option<Arc<dyn HttpClient>>,
}

impl Capabilities {
    /// `ns:pkg/iface` names (no version) of every interface served.
    pub fn interfaces(&self) -> Vec<&'static str> {
        let mut served = Vec::new();
        if self.keyvalue.is_some() {
            served.extend(crate::keyvalue::INTERFACES);
        }
        if self.sql.is_some() {
            served.extend(crate::sql::INTERFACES);
        }
        if self.http_client.is_some() {
            served.extend(crate::http_client::INTERFACES);
        }
        served
    }
}

/// The lifecycle of a provider.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Called once, before [`Provider::init`]: how this provider reaches components (for
    /// providers that call them, such as an HTTP server). Others ignore it.
    fn set_invoker(&self, invoker: Arc<dyn crate::http::ComponentInvoker>) {
        let _ = invoker;
    }

    /// Called once before anything else (after [`Provider::set_invoker`]).
    async fn init(&self, init: &InitContext) -> Result<(), ProviderError> {
        let _ = init;
        Ok(())
    }

    /// A link whose target is this provider was put (a component will call it).
    async fn receive_link_config_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let _ = link;
        Ok(())
    }

    /// A link whose source is this provider was put (it will call a component).
    async fn receive_link_config_as_source(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let _ = link;
        Ok(())
    }

    /// A link whose target is this provider was deleted.
    async fn delete_link_as_target(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let _ = link;
        Ok(())
    }

    /// A link whose source is this provider was deleted.
    async fn delete_link_as_source(&self, link: &LinkConfig) -> Result<(), ProviderError> {
        let _ = link;
        Ok(())
    }

    /// A named config given at start changed; `config` is the new merged map.
    async fn update_config(&self, config: &BTreeMap<String, String>) -> Result<(), ProviderError> {
        let _ = config;
        Ok(())
    }

    /// Whether the provider can serve calls (e.g. its database answers).
    async fn health(&self) -> HealthStatus {
        HealthStatus::healthy()
    }

    /// Called once; release connections and stop background work.
    async fn shutdown(&self) -> Result<(), ProviderError> {
        Ok(())
    }

    /// The capabilities served (usually `self` as each trait it implements).
    fn capabilities(self: Arc<Self>) -> Capabilities;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_id_is_a_placeholder_until_init() {
        let id = ProviderIdCell::default();
        assert_eq!(id.get(), "PROVIDER_ID");
        id.remember(&InitContext {
            provider_id: "kv-redis".into(),
            ..InitContext::default()
        });
        assert_eq!(id.get(), "kv-redis");
    }
}
