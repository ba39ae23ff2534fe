//! wadm application manifests (the OAM format of wadm 0.21): parse, validate, and turn into
//! the [`AppDesired`](crate::model::AppDesired) the reconciler works on.
//!
//! # The format
//!
//! ```yaml
//! apiVersion: core.oam.dev/v1beta1      # the only accepted value
//! kind: Application                     # the only accepted value
//! metadata:
//!   name: rust-hello-world              # letters, digits, `-`, `_`; unique per lattice
//!   annotations:
//!     version: v0.0.1                   # optional: the server assigns one when absent
//!     description: "HTTP hello world"
//! spec:
//!   components:
//!     - name: http-component            # unique within the manifest
//!       type: component                 # a WebAssembly component (`actor` is the old name)
//!       properties:
//!         image: ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0
//!         # id: hello                   # optional lattice id, default `{app}-{name}`
//!         config:                       # optional named configs
//!           - name: greeting            # with properties: created by wadm as
//!             properties:               #   `{app}-{name}` (sanitized)
//!               lang: en
//!           - name: shared-settings     # without: an existing config, used by name
//!       traits:
//!         - type: spreadscaler          # `instances` (alias `replicas`) over `spread`s
//!           properties:
//!             instances: 4
//!             spread:
//!               - name: east
//!                 requirements: {zone: us-east-1}   # host labels, all must match
//!                 weight: 80                        # relative share, default 100
//!               - name: west
//!                 requirements: {zone: us-west-1}
//!                 weight: 20
//!     - name: httpserver
//!       type: capability                # a capability provider
//!       properties:
//!         image: ghcr.io/wasmcloud/http-server:0.25.0
//!       traits:
//!         - type: daemonscaler          # `instances` on every host matching a spread
//!           properties:
//!             instances: 1
//!         - type: link                  # a link from this component to `target`
//!           properties:
//!             namespace: wasi
//!             package: http
//!             interfaces: [incoming-handler]
//!             # name: default           # the link name, `default` when absent
//!             source:                   # config for the source side (this component)
//!               config:
//!                 - name: default-http
//!                   properties: {address: 0.0.0.0:8000}
//!             target:
//!               name: http-component    # a component of this manifest
//!               # config: [...]         # config for the target side
//! ```
//!
//! wadm's older link form (`target: http-component` with `source_config:` and
//! `target_config:` lists) is accepted with a warning. `secrets` and `spec.policies` are
//! accepted and ignored; shared components (`properties.application`) are refused.
//!
//! # Validation
//!
//! [`Manifest::parse`] refuses a manifest with any error, and reports all of them at once,
//! each with the field path (`spec.components[2].traits[0].properties.spread[1].weight`),
//! the line and column for YAML syntax and type errors, and what would be right. It checks:
//! `apiVersion` and `kind`; `metadata.name`; OAM annotation and label keys; the version is
//! not `latest`; unique component names and lattice ids; component `type`; `image`;
//! trait types and their fields; one scaler per component; `instances` ≥ 0 (0 scales to
//! zero, as in wadm); weights ≥ 0 with a positive total in a spreadscaler; unique spread
//! names; link `namespace`/`package`/`interfaces` are WIT identifiers, and name interfaces
//! the well-known packages define ([`KNOWN_INTERFACES`]); link targets are components of
//! the manifest (a provider can link only to a component); no two links from one source
//! share (namespace, package, name), the key the lattice keeps links by; config names are
//! valid and inline configs do not redefine one another.
//!
//! Stricter than wadm: dangling targets and unknown interfaces of well-known packages are
//! errors (wadm warns), duplicate links are keyed like the lattice keys them (wadm compares
//! per interface), and an empty `spec.components` is refused. More lenient: `annotations`
//! and spread `requirements` may be left out.

mod desired;
pub mod env;
mod error;
mod links;
mod names;
mod types;
mod validate;

use std::path::Path;

pub use error::{Diagnostic, ManifestErrors, Severity};
pub use names::{KNOWN_INTERFACES, component_id, inline_config_name, known_interfaces};
pub use types::*;

impl Manifest {
    /// Parses and validates a manifest (YAML, or JSON). `source` names where it came from
    /// (a file name) for the messages. Warnings are dropped; see
    /// [`Manifest::parse_with_warnings`].
    pub fn parse(text: &str, source: Option<&str>) -> Result<Manifest, ManifestErrors> {
        Self::parse_with_warnings(text, source).map(|(manifest, _)| manifest)
    }

    /// Parses and validates a manifest, returning it with its warnings.
    pub fn parse_with_warnings(
        text: &str,
        source: Option<&str>,
    ) -> Result<(Manifest, Vec<Diagnostic>), ManifestErrors> {
        let manifest = Self::from_yaml(text, source)?;
        let diagnostics: Vec<Diagnostic> = manifest
            .validate()
            .into_iter()
            .map(|d| d.with_source(source))
            .collect();
        if diagnostics.iter().any(Diagnostic::is_error) {
            Err(ManifestErrors { diagnostics })
        } else {
            Ok((manifest, diagnostics))
        }
    }

    /// Reads, parses and validates the manifest in `path`.
    pub fn from_file(path: &Path) -> Result<(Manifest, Vec<Diagnostic>), ManifestErrors> {
        let source = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_with_warnings(&text, Some(&source)),
            Err(err) => Err(ManifestErrors {
                diagnostics: vec![
                    Diagnostic::error("", format!("cannot read the manifest: {err}"))
                        .with_source(Some(&source)),
                ],
            }),
        }
    }

    /// Parses without validating: only YAML syntax and field types are checked.
    pub fn from_yaml(text: &str, source: Option<&str>) -> Result<Manifest, ManifestErrors> {
        serde_yaml::from_str(text).map_err(|err| ManifestErrors {
            diagnostics: vec![Diagnostic::from_yaml(&err).with_source(source)],
        })
    }

    /// Every problem of this manifest, errors and warnings (without a source name).
    pub fn validate(&self) -> Vec<Diagnostic> {
        validate::validate(self)
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `metadata.annotations.version`, when given.
    pub fn version(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(VERSION_ANNOTATION_KEY)
            .map(String::as_str)
    }

    /// Sets `metadata.annotations.version` (the server does when the manifest has none).
    pub fn set_version(&mut self, version: impl Into<String>) {
        self.metadata
            .annotations
            .insert(VERSION_ANNOTATION_KEY.to_string(), version.into());
    }

    /// `metadata.annotations.description`, when given.
    pub fn description(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(DESCRIPTION_ANNOTATION_KEY)
            .map(String::as_str)
    }
}
