//! Capabilities served by providers: which provider a component's import reaches.
//!
//! `wasi:keyvalue` and `wasi:sql` are not implemented by the host itself. Each call goes to
//! the provider that the calling component's **link** for that interface targets (link
//! `default` unless the component picked another name with `wasmcloud:bus/lattice`). The
//! lattice implements [`ProviderRouter`]: it looks the link up and returns the provider's
//! [`Capabilities`] — the provider object itself when it runs inside this host, or a proxy
//! that forwards over NATS when it runs elsewhere. Without a lattice (`trellis run`) every
//! such call fails with a message saying so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use trellis_provider_sdk::Capabilities;

/// Finds the provider behind a component's link.
pub trait ProviderRouter: Send + Sync + 'static {
    /// The capabilities of the provider that `component`'s link `link_name` for `interface`
    /// (`ns:pkg/iface`, no version) targets, or a message naming what is missing and how to
    /// fix it.
    fn resolve(
        &self,
        component: &str,
        interface: &str,
        link_name: &str,
        deadline: Instant,
    ) -> Result<Capabilities, String>;
}

/// What one invocation needs to route provider calls.
#[derive(Clone, Copy)]
pub(crate) struct Routing<'a> {
    pub(crate) component: &'a str,
    pub(crate) router: Option<&'a Arc<dyn ProviderRouter>>,
    pub(crate) link_names: &'a BTreeMap<String, String>,
    pub(crate) deadline: Instant,
}

impl Routing<'_> {
    /// The link name in force for `interface` (`default` unless set by the component).
    pub(crate) fn link_name(&self, interface: &str) -> String {
        self.link_names
            .get(interface)
            .cloned()
            .unwrap_or_else(|| trellis_protocol::ctl::DEFAULT_LINK_NAME.to_string())
    }

    /// The provider for `interface`, and the link name used.
    pub(crate) fn resolve(&self, interface: &str) -> Result<(Capabilities, String), String> {
        let link_name = self.link_name(interface);
        let Some(router) = self.router else {
            return Err(format!(
                "`{interface}` is served by providers on a lattice; component `{}` runs \
                 without one (`trellis run`): run it on a `trellis host` and link it to a \
                 provider",
                self.component
            ));
        };
        let capabilities = router.resolve(self.component, interface, &link_name, self.deadline)?;
        Ok((capabilities, link_name))
    }
}
