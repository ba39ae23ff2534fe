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

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use trellis_provider_sdk::{CallContext, Capabilities};

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

/// The link name in force for `interface` given the names a component picked (`default`
/// when it picked none).
pub(crate) fn link_name_in(link_names: &BTreeMap<String, String>, interface: &str) -> String {
    link_names
        .get(interface)
        .cloned()
        .unwrap_or_else(|| trellis_protocol::ctl::DEFAULT_LINK_NAME.to_string())
}

/// An invocation's access to providers: who calls, the router, the link names it picked with
/// `wasmcloud:bus/lattice.set-link-name` (by `ns:pkg/iface`), and when it runs out of time.
pub(crate) struct ProviderAccess {
    pub(crate) component: Arc<str>,
    /// `None` without a lattice (`trellis run`).
    pub(crate) router: Option<Arc<dyn ProviderRouter>>,
    pub(crate) link_names: BTreeMap<String, String>,
    pub(crate) deadline: Instant,
}

impl ProviderAccess {
    /// Borrowed routing data for one call.
    pub(crate) fn routing(&self) -> Routing<'_> {
        Routing {
            component: &self.component,
            router: self.router.as_ref(),
            link_names: &self.link_names,
            deadline: self.deadline,
        }
    }
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
        link_name_in(self.link_names, interface)
    }

    /// The provider's `what` capability (picked by `pick`) behind the component's link for
    /// `interface`, with the call context of that link. A failure (no link, or a provider that
    /// does not serve it) is logged once per component, interface and message, and returned
    /// for the guest.
    pub(crate) fn provider<T: ?Sized>(
        &self,
        interface: &str,
        what: &str,
        pick: impl FnOnce(Capabilities) -> Option<Arc<T>>,
    ) -> Result<(Arc<T>, CallContext), String> {
        let component = self.component;
        let found = self
            .resolve(interface)
            .and_then(|(capabilities, link_name)| {
                let provider = pick(capabilities).ok_or_else(|| {
                    format!(
                        "the provider that link `{link_name}` of component `{component}` targets \
                     for `{interface}` does not serve {what}; link it to a {what} provider"
                    )
                })?;
                Ok((provider, CallContext::new(component, link_name)))
            });
        if let Err(message) = &found {
            log_once(component, interface, message);
        }
        found
    }

    /// The provider for `interface`, and the link name used.
    fn resolve(&self, interface: &str) -> Result<(Capabilities, String), String> {
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

/// Logs a routing failure once per (component, interface, message).
fn log_once(component: &str, interface: &str, message: &str) {
    static SEEN: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    let key = format!("{component}\u{0}{interface}\u{0}{message}");
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if seen.len() < 10_000 && seen.insert(key) {
        tracing::warn!(component, interface, "{message}");
    }
}
