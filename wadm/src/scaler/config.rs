//! The config scaler: make the lattice hold the named config maps the app defines inline.
//!
//! A config the app defines that is missing, or present with different values, gets
//! `PutConfig`; a retired config (created by an earlier version, not defined by this one)
//! that still exists gets `DeleteConfig`. Configs come first in a plan (components and
//! providers read them when they start) and their deletes come last (after nothing that
//! this version runs can still refer to them).
//!
//! Configs a manifest only names (defined elsewhere) are not this scaler's business.

use super::{Ctx, Draft, Phase};
use crate::model::{AppDesired, Command};

/// Reconciles `desired.configs` and `desired.retired_configs` into `draft`.
pub(crate) fn scale_configs(desired: &AppDesired, ctx: &Ctx<'_, '_>, draft: &mut Draft) {
    let observed = &ctx.index.observed().configs;
    for (name, values) in &desired.configs {
        if observed.get(name) != Some(values) {
            draft.push(
                Phase::PutConfig,
                Command::PutConfig {
                    name: name.clone(),
                    values: values.clone(),
                },
            );
        }
    }
    let mut retired: Vec<&String> = desired
        .retired_configs
        .iter()
        .filter(|name| !desired.configs.contains_key(*name) && observed.contains_key(*name))
        .collect();
    retired.sort();
    retired.dedup();
    for name in retired {
        draft.push(
            Phase::DeleteConfig,
            Command::DeleteConfig { name: name.clone() },
        );
    }
}
