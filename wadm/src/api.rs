//! The wadm API: subjects and request/reply bodies, with wadm's field names so that wadm
//! clients (e.g. `wash app`) work against Trellis.
//!
//! | subject (`wadm.api.{lattice}.model.…`) | request body | reply |
//! |---|---|---|
//! | `put` | the manifest, YAML or JSON | [`PutModelResponse`] |
//! | `get.{name}` | [`GetModelRequest`] (optional) | [`GetModelResponse`] (the manifest as JSON) |
//! | `list` | — | `[ModelSummary]` |
//! | `versions.{name}` | — | [`VersionResponse`] |
//! | `del.{name}` | [`DeleteModelRequest`] (optional) | [`DeleteModelResponse`] |
//! | `deploy.{name}` | [`DeployModelRequest`] (optional) | [`DeployModelResponse`] |
//! | `undeploy.{name}` | — | [`DeployModelResponse`] |
//! | `status.{name}` | — | [`StatusResponse`] |

use serde::{Deserialize, Serialize};

/// Subject prefix of the API.
pub const API_PREFIX: &str = "wadm.api";

/// `wadm.api.{lattice}.model.{operation}` (`put`, `list`) or with `.{name}`.
pub fn subject(lattice: &str, operation: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{API_PREFIX}.{lattice}.model.{operation}.{name}"),
        None => format!("{API_PREFIX}.{lattice}.model.{operation}"),
    }
}

/// Everything the API serves for `lattice`.
pub fn wildcard(lattice: &str) -> String {
    format!("{API_PREFIX}.{lattice}.model.>")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PutResult {
    Error,
    Created,
    NewVersion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutModelResponse {
    pub result: PutResult,
    #[serde(default)]
    pub total_versions: usize,
    #[serde(default)]
    pub current_version: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetModelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GetResult {
    Error,
    Success,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetModelResponse {
    pub result: GetResult,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<serde_json::Value>,
}

/// One application in `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub name: String,
    /// The newest version.
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub deployed_version: Option<String>,
    #[serde(default)]
    pub detailed_status: Status,
    /// Same as `detailed_status.status.type` (older clients read this).
    pub status: StatusType,
    #[serde(default)]
    pub status_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: String,
    pub deployed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    pub result: GetResult,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub versions: Vec<VersionInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteModelRequest {
    /// One version to delete; none deletes the whole application (undeploying it).
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteResult {
    Deleted,
    Error,
    Noop,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteModelResponse {
    pub result: DeleteResult,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub undeploy: bool,
}

/// Deploy a version (`None` or `latest`: the newest). Deploying an older one rolls back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployModelRequest {
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployResult {
    Error,
    Acknowledged,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployModelResponse {
    pub result: DeployResult,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusResult {
    Error,
    Ok,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub result: StatusResult,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

/// An application's status: overall, and per scaler.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(rename = "status")]
    pub info: StatusInfo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scalers: Vec<ScalerStatus>,
    /// The version the status is for.
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalerStatus {
    #[serde(default)]
    pub id: String,
    /// `SpreadScaler`, `DaemonScaler`, `LinkScaler`, `ConfigScaler`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "status")]
    pub info: StatusInfo,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    #[serde(rename = "type")]
    pub status_type: StatusType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl StatusInfo {
    pub fn new(status_type: StatusType, message: impl Into<String>) -> Self {
        Self {
            status_type,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusType {
    Waiting,
    #[default]
    Undeployed,
    #[serde(alias = "compensating")]
    Reconciling,
    #[serde(alias = "ready")]
    Deployed,
    Failed,
}

impl StatusType {
    /// The status of a whole made of parts: failed beats undeployed beats waiting beats
    /// reconciling beats deployed.
    pub fn combine(self, other: Self) -> Self {
        use StatusType::*;
        for worst in [Failed, Undeployed, Waiting, Reconciling] {
            if self == worst || other == worst {
                return worst;
            }
        }
        Deployed
    }
}

impl std::fmt::Display for StatusType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StatusType::Waiting => "waiting",
            StatusType::Undeployed => "undeployed",
            StatusType::Reconciling => "reconciling",
            StatusType::Deployed => "deployed",
            StatusType::Failed => "failed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_combine_worst_first() {
        use StatusType::*;
        assert_eq!(Deployed.combine(Deployed), Deployed);
        assert_eq!(Deployed.combine(Reconciling), Reconciling);
        assert_eq!(Reconciling.combine(Failed), Failed);
        assert_eq!(Undeployed.combine(Deployed), Undeployed);
    }

    #[test]
    fn replies_use_wadm_field_names() {
        let status = StatusResponse {
            result: StatusResult::Ok,
            message: String::new(),
            status: Some(Status {
                info: StatusInfo::new(StatusType::Failed, "spread `edge` has no host"),
                scalers: vec![],
                version: "v1".into(),
            }),
        };
        let json = serde_json::to_value(&status).unwrap_or_default();
        assert_eq!(json["result"], "ok");
        assert_eq!(json["status"]["status"]["type"], "failed");
        assert_eq!(
            json["status"]["status"]["message"],
            "spread `edge` has no host"
        );
        let back: StatusType = serde_json::from_str("\"compensating\"").unwrap_or_default();
        assert_eq!(back, StatusType::Reconciling);
    }
}
