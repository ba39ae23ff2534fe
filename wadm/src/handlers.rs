//! The wadm API requests (see [`crate::api`]), answered from the [`Store`].
//!
//! Handlers only read and write application records and statuses; they never talk to hosts.
//! A deploy or undeploy is recorded here and carried out by the leader's reconciler, which
//! watches the records. Any wadm instance can answer (they share one queue group).

use std::collections::BTreeSet;

use serde::Serialize;
use trellis_protocol::ctl::Link;

use crate::api::{
    DeleteModelRequest, DeleteModelResponse, DeleteResult, DeployModelRequest, DeployModelResponse,
    DeployResult, GetModelRequest, GetModelResponse, GetResult, ModelSummary, PutModelResponse,
    PutResult, Status, StatusInfo, StatusResponse, StatusResult, StatusType, VersionInfo,
    VersionResponse,
};
use crate::manifest::Manifest;
use crate::model::AppDesired;
use crate::store::{AppRecord, Store, StoreError, StoredVersion};

fn json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Parses an optional JSON request body (empty means defaults).
fn body<T: serde::de::DeserializeOwned + Default>(payload: &[u8]) -> Result<T, String> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(payload).map_err(|e| format!("invalid request body: {e}"))
}

/// Answers one API request: `operation` is `put`, `list`, `get`, `versions`, `del`,
/// `deploy`, `undeploy` or `status`; `name` the application for all but `put` and `list`.
pub async fn handle(store: &Store, operation: &str, name: Option<&str>, payload: &[u8]) -> Vec<u8> {
    let result = match (operation, name) {
        ("put", None) => put(store, payload).await,
        ("list", None) => list(store).await,
        ("get", Some(name)) => get(store, name, payload).await,
        ("versions", Some(name)) => versions(store, name).await,
        ("del", Some(name)) => delete(store, name, payload).await,
        ("deploy", Some(name)) => deploy(store, name, payload).await,
        ("undeploy", Some(name)) => undeploy(store, name).await,
        ("status", Some(name)) => status(store, name).await,
        _ => Ok(json(&serde_json::json!({
            "result": "error",
            "message": format!(
                "unknown wadm API request `model.{operation}{}`: use put, list, get.NAME, \
                 versions.NAME, del.NAME, deploy.NAME, undeploy.NAME or status.NAME",
                name.map(|n| format!(".{n}")).unwrap_or_default()
            ),
        }))),
    };
    result
        .unwrap_or_else(|e| json(&serde_json::json!({"result": "error", "message": e.to_string()})))
}

async fn put(store: &Store, payload: &[u8]) -> Result<Vec<u8>, StoreError> {
    let error = |message: String| PutModelResponse {
        result: PutResult::Error,
        total_versions: 0,
        current_version: String::new(),
        message,
        name: String::new(),
    };
    let Ok(text) = std::str::from_utf8(payload) else {
        return Ok(json(&error("the manifest is not UTF-8 text".into())));
    };
    let manifest = match Manifest::parse(text, None) {
        Ok(m) => m,
        Err(errors) => return Ok(json(&error(errors.to_string()))),
    };
    let name = manifest.name().to_string();
    let given = manifest.version().map(str::to_string);
    let stored = store
        .update(&name, |record| {
            if record.deleted {
                *record = AppRecord {
                    name: name.clone(),
                    ..AppRecord::default()
                };
            }
            let version = match &given {
                Some(v) if record.version(v).is_some() => {
                    return Err(format!(
                        "version `{v}` of application `{name}` already exists and versions are \
                         immutable: change `metadata.annotations.version` (or remove it to get \
                         one assigned)"
                    ));
                }
                Some(v) => v.clone(),
                None => next_version(record),
            };
            record.versions.push(StoredVersion {
                version: version.clone(),
                manifest: text.to_string(),
            });
            Ok((version, record.versions.len()))
        })
        .await?;
    Ok(json(&match stored {
        Ok((version, total)) => PutModelResponse {
            result: if total == 1 {
                PutResult::Created
            } else {
                PutResult::NewVersion
            },
            total_versions: total,
            current_version: version.clone(),
            message: format!("stored version `{version}` of application `{name}`"),
            name,
        },
        Err(message) => error(message),
    }))
}

/// `v1`, `v2`, … : the first `vN` not taken.
fn next_version(record: &AppRecord) -> String {
    (record.versions.len() + 1..)
        .map(|n| format!("v{n}"))
        .find(|v| record.version(v).is_none())
        .unwrap_or_default()
}

async fn live(store: &Store, name: &str) -> Result<Option<AppRecord>, StoreError> {
    Ok(store
        .get(name)
        .await?
        .map(|(r, _)| r)
        .filter(|r| !r.deleted))
}

fn not_found(name: &str) -> String {
    format!("no application named `{name}`: `trellis app list` shows the stored ones")
}

async fn list(store: &Store) -> Result<Vec<u8>, StoreError> {
    let mut summaries = Vec::new();
    for record in store.list().await? {
        if record.deleted {
            continue;
        }
        let latest = record
            .latest()
            .map(|v| v.version.clone())
            .unwrap_or_default();
        let description = record
            .manifest(&latest)
            .and_then(|m| m.description().map(str::to_string));
        let status = store.status(&record.name).await?.unwrap_or_default();
        summaries.push(ModelSummary {
            name: record.name.clone(),
            version: latest,
            description,
            deployed_version: record.deployed.clone(),
            status: status.info.status_type,
            status_message: Some(status.info.message.clone()).filter(|m| !m.is_empty()),
            detailed_status: status,
        });
    }
    Ok(json(&summaries))
}

async fn get(store: &Store, name: &str, payload: &[u8]) -> Result<Vec<u8>, StoreError> {
    let reply = |result, message: String, manifest| GetModelResponse {
        result,
        message,
        manifest,
    };
    let request: GetModelRequest = match body(payload) {
        Ok(r) => r,
        Err(e) => return Ok(json(&reply(GetResult::Error, e, None))),
    };
    let Some(record) = live(store, name).await? else {
        return Ok(json(&reply(GetResult::NotFound, not_found(name), None)));
    };
    let version = match request.version.filter(|v| v != "latest") {
        Some(v) => v,
        None => record
            .latest()
            .map(|v| v.version.clone())
            .unwrap_or_default(),
    };
    Ok(json(&match record.manifest(&version) {
        Some(manifest) => reply(
            GetResult::Success,
            String::new(),
            serde_json::to_value(&manifest).ok(),
        ),
        None => reply(
            GetResult::NotFound,
            format!("application `{name}` has no version `{version}`"),
            None,
        ),
    }))
}

async fn versions(store: &Store, name: &str) -> Result<Vec<u8>, StoreError> {
    let Some(record) = live(store, name).await? else {
        return Ok(json(&VersionResponse {
            result: GetResult::NotFound,
            message: not_found(name),
            versions: vec![],
        }));
    };
    let versions = record
        .versions
        .iter()
        .map(|v| VersionInfo {
            version: v.version.clone(),
            deployed: record.deployed.as_deref() == Some(v.version.as_str()),
        })
        .collect();
    Ok(json(&VersionResponse {
        result: GetResult::Success,
        message: String::new(),
        versions,
    }))
}

async fn delete(store: &Store, name: &str, payload: &[u8]) -> Result<Vec<u8>, StoreError> {
    let reply = |result, message: String, undeploy| DeleteModelResponse {
        result,
        message,
        undeploy,
    };
    let request: DeleteModelRequest = match body(payload) {
        Ok(r) => r,
        Err(e) => return Ok(json(&reply(DeleteResult::Error, e, false))),
    };
    if live(store, name).await?.is_none() {
        return Ok(json(&reply(DeleteResult::Noop, not_found(name), false)));
    }
    let outcome = store
        .update(name, |record| match &request.version {
            Some(version) => {
                if record.deployed.as_deref() == Some(version.as_str()) {
                    return Err(format!(
                        "version `{version}` of `{name}` is deployed: undeploy it or deploy \
                         another version first"
                    ));
                }
                let before = record.versions.len();
                record.versions.retain(|v| v.version != *version);
                if record.versions.len() == before {
                    return Err(format!("application `{name}` has no version `{version}`"));
                }
                Ok(false)
            }
            None => {
                let was_deployed = record.deployed.take().is_some();
                record.deleted = true;
                Ok(was_deployed)
            }
        })
        .await?;
    Ok(json(&match outcome {
        Ok(undeploy) => reply(
            DeleteResult::Deleted,
            match &request.version {
                Some(v) => format!("deleted version `{v}` of `{name}`"),
                None => format!("deleted application `{name}`; what it ran is being removed"),
            },
            undeploy,
        ),
        Err(message) => reply(DeleteResult::Error, message, false),
    }))
}

/// Links and configs that `old` declares and `new` does not.
fn retired(old: &AppDesired, new: &AppDesired) -> (Vec<Link>, Vec<String>) {
    let key = |l: &Link| {
        (
            l.source_id.clone(),
            l.wit_namespace.clone(),
            l.wit_package.clone(),
            l.name.clone(),
        )
    };
    let kept: BTreeSet<_> = new.links.iter().map(key).collect();
    let links = old
        .links
        .iter()
        .filter(|l| !kept.contains(&key(l)))
        .cloned()
        .collect();
    let configs = old
        .configs
        .keys()
        .filter(|c| !new.configs.contains_key(*c))
        .cloned()
        .collect();
    (links, configs)
}

async fn deploy(store: &Store, name: &str, payload: &[u8]) -> Result<Vec<u8>, StoreError> {
    let reply = |result, message: String, version| DeployModelResponse {
        result,
        message,
        name: name.to_string(),
        version,
    };
    let request: DeployModelRequest = match body(payload) {
        Ok(r) => r,
        Err(e) => return Ok(json(&reply(DeployResult::Error, e, None))),
    };
    if live(store, name).await?.is_none() {
        return Ok(json(&reply(DeployResult::NotFound, not_found(name), None)));
    }
    let outcome = store
        .update(name, |record| {
            let version = match request.version.as_deref().filter(|v| *v != "latest") {
                Some(v) => v.to_string(),
                None => record
                    .latest()
                    .map(|v| v.version.clone())
                    .unwrap_or_default(),
            };
            let Some(new) = record.manifest(&version) else {
                return Err(format!("application `{name}` has no version `{version}`"));
            };
            let previous = record.deployed.clone().or(record.last_deployed.clone());
            match previous.and_then(|v| record.manifest(&v)) {
                Some(old) => {
                    let (links, configs) = retired(&old.desired(), &new.desired());
                    record.retired_links = links;
                    record.retired_configs = configs;
                }
                None => {
                    record.retired_links.clear();
                    record.retired_configs.clear();
                }
            }
            record.deployed = Some(version.clone());
            record.last_deployed = Some(version.clone());
            Ok(version)
        })
        .await?;
    let version = match outcome {
        Ok(version) => version,
        Err(message) => return Ok(json(&reply(DeployResult::Error, message, None))),
    };
    let status = Status {
        info: StatusInfo::new(
            StatusType::Reconciling,
            format!("deploying version `{version}`"),
        ),
        scalers: vec![],
        version: version.clone(),
    };
    store.set_status(name, &status).await?;
    Ok(json(&reply(
        DeployResult::Acknowledged,
        format!("deploying version `{version}` of `{name}`"),
        Some(version),
    )))
}

async fn undeploy(store: &Store, name: &str) -> Result<Vec<u8>, StoreError> {
    let reply = |result, message: String| DeployModelResponse {
        result,
        message,
        name: name.to_string(),
        version: None,
    };
    if live(store, name).await?.is_none() {
        return Ok(json(&reply(DeployResult::NotFound, not_found(name))));
    }
    store
        .update(name, |record| {
            record.deployed = None;
            Ok(())
        })
        .await?
        .ok();
    Ok(json(&reply(
        DeployResult::Acknowledged,
        format!("undeploying `{name}`"),
    )))
}

async fn status(store: &Store, name: &str) -> Result<Vec<u8>, StoreError> {
    let Some(record) = live(store, name).await? else {
        return Ok(json(&StatusResponse {
            result: StatusResult::NotFound,
            message: not_found(name),
            status: None,
        }));
    };
    let status = store.status(name).await?.unwrap_or_else(|| Status {
        info: StatusInfo::new(StatusType::Undeployed, "never deployed"),
        scalers: vec![],
        version: record.deployed.clone().unwrap_or_default(),
    });
    Ok(json(&StatusResponse {
        result: StatusResult::Ok,
        message: String::new(),
        status: Some(status),
    }))
}
