//! The link scaler: make the lattice hold exactly the links the app declares.
//!
//! A link is identified by `(source_id, wit_namespace, wit_package, name)`; `link.put` with
//! that key replaces whatever was there. So:
//!
//! - a declared link whose key is missing, or present with any field different (target,
//!   interfaces, source or target config), gets `PutLink`;
//! - a retired link (declared by an earlier version, not by this one) whose key is still
//!   present gets `DeleteLink`, unless this version declares a link with the same key (then
//!   the `PutLink` above already replaces it).
//!
//! Like wadm, links are put without waiting for their source or target to run: a link is
//! lattice data (`LATTICEDATA_{lattice}`) that hosts and providers read when they start. The
//! plan still orders puts after components and providers, and deletes after puts.

use std::collections::BTreeSet;

use super::index::link_key;
use super::{Ctx, Draft, Phase};
use crate::model::{AppDesired, Command};

/// Reconciles `desired.links` and `desired.retired_links` into `draft`.
pub(crate) fn scale_links(desired: &AppDesired, ctx: &Ctx<'_, '_>, draft: &mut Draft) {
    for link in &desired.links {
        if ctx.index.link(link_key(link)) != Some(link) {
            draft.push(Phase::PutLink, Command::PutLink(link.clone()));
        }
    }
    let declared: BTreeSet<_> = desired.links.iter().map(link_key).collect();
    for link in &desired.retired_links {
        let key = link_key(link);
        if !declared.contains(&key) && ctx.index.link(key).is_some() {
            draft.push(Phase::DeleteLink, delete_link(link));
        }
    }
}

/// The `DeleteLink` for `link`'s key.
pub(crate) fn delete_link(link: &trellis_protocol::ctl::Link) -> Command {
    Command::DeleteLink {
        source_id: link.source_id.clone(),
        wit_namespace: link.wit_namespace.clone(),
        wit_package: link.wit_package.clone(),
        name: link.name.clone(),
    }
}
