//! `MLOpsProject`: the model registry (a model package group shared read-only with the target
//! accounts) and the build-train-evaluate-register pipeline of one model.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::DeletionPolicy;
use crate::schema::{MAX_NAME, OBJECT_NAME, SAGEMAKER_NAME, bound_map};

/// The project's environment, registry and pipeline settings.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sagekeeper.io",
    version = "v1alpha1",
    kind = "MLOpsProject",
    plural = "mlopsprojects",
    shortname = "mlp",
    category = "sagekeeper",
    namespaced,
    status = "MLOpsProjectStatus",
    doc = "The model registry and the build-train-evaluate-register pipeline of one model.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Environment", type_ = "string", json_path = ".spec.environment"),
    printcolumn(name = "Last-Run", type_ = "string", json_path = ".status.lastExecution.status"),
    printcolumn(name = "Latest-Approved", type_ = "integer", json_path = ".status.latestApprovedModelPackage.version"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new(
    "has(self.modelPackageGroupName) == has(oldSelf.modelPackageGroupName) && (!has(self.modelPackageGroupName) || self.modelPackageGroupName == oldSelf.modelPackageGroupName)"
).message("spec.modelPackageGroupName cannot be set, changed or removed after creation").field_path(".modelPackageGroupName"))]
#[serde(rename_all = "camelCase")]
pub struct MLOpsProjectSpec {
    /// Name of the DataScienceEnvironment in the same namespace. Immutable.
    #[schemars(length(max = MAX_NAME), pattern(OBJECT_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.environment is immutable"))]
    pub environment: String,

    /// Name of the model package group. Absent: `<namespace>-<name>-<short hash>` cut to 63
    /// characters, chosen once and pinned in status. Cannot be set, changed or removed after
    /// creation. A group that exists and belongs to anything else is a NameConflict: sagekeeper
    /// never adopts it, and the environment's roles are never granted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), pattern(SAGEMAKER_NAME))]
    pub model_package_group_name: Option<String>,

    /// Manual (default): registered versions wait as PendingManualApproval for a person.
    /// Automatic: the pipeline registers them Approved.
    #[serde(default)]
    pub model_approval: ModelApproval,

    /// The pipeline that builds, trains, evaluates and registers the model.
    #[serde(default)]
    pub pipeline: PipelineSpec,

    /// Delete (default): remove the pipeline and the group's policy on deletion. Retain:
    /// release the object and touch nothing in AWS.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// On deletion, also delete the registered model versions and the group. Default false.
    #[serde(default)]
    pub delete_data_on_delete: bool,
}

/// Whether registered model versions need a person's approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ModelApproval {
    /// Versions wait as PendingManualApproval.
    #[default]
    Manual,
    /// Versions are registered Approved.
    Automatic,
}

/// The project's SageMaker pipeline.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// Built-in pipeline: preprocess -> train (XGBoost) -> evaluate -> condition -> register.
    /// Ignored when definition is set.
    #[serde(default)]
    pub template: PipelineTemplate,

    /// A full SageMaker pipeline definition (JSON) instead of the template. Network and key
    /// settings are enforced on every job; only allowed step types are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 524288))]
    pub definition: Option<String>,

    /// Pipeline parameter values, e.g. MseThreshold, TrainingInstanceType.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = |s: &mut schemars::Schema| bound_map(s, 50, serde_json::json!({"maxLength": 2500})))]
    pub parameters: BTreeMap<String, String>,

    /// Run once at creation and whenever the definition or parameters change. Default true.
    #[serde(default = "yes")]
    pub run_on_change: bool,

    /// Change this value to start one more run. Not part of the definition hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub run_request: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for PipelineSpec {
    /// The built-in template, run on change, as an absent `pipeline` means.
    fn default() -> Self {
        Self {
            template: PipelineTemplate::default(),
            definition: None,
            parameters: BTreeMap::new(),
            run_on_change: true,
            run_request: None,
        }
    }
}

/// The built-in pipeline templates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PipelineTemplate {
    /// scikit-learn preprocessing, XGBoost training, evaluation, MSE condition, registration.
    #[default]
    AbaloneXGBoost,
}

/// What sagekeeper last observed of an MLOpsProject.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MLOpsProjectStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Reconciling, Stalled, EnvironmentReady, RegistryReady, PipelineReady, LastRunSucceeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The effective model package group name, pinned at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_package_group_name: Option<String>,

    /// The model package group's ARN, once sagekeeper created the group or found it carrying
    /// this project's owner tags. Only a group reported here is granted to the environment's roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_package_group_arn: Option<String>,

    /// The pipeline's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_arn: Option<String>,

    /// sha256 of the effective pipeline definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_definition_hash: Option<String>,

    /// The runRequest value already acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_request: Option<String>,

    /// The definition hash a run was last started for (runOnChange), so a restart can tell a
    /// change was already acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_definition_hash: Option<String>,

    /// The latest pipeline execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_execution: Option<ExecutionStatus>,

    /// The newest registered model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_model_package: Option<ModelPackageRef>,

    /// The newest Approved model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_approved_model_package: Option<ModelPackageRef>,

    /// The keys of the environment's `spec.tags` that may still be on the project's resources.
    /// A key removed there is taken off the group and the pipeline; others' tags stay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_keys: Vec<String>,
}

/// One pipeline execution.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatus {
    /// The execution ARN.
    pub arn: String,
    /// Executing, Stopping, Stopped, Failed or Succeeded.
    pub status: String,
    /// When it started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Why it failed, as SageMaker reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// A model version in the registry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPackageRef {
    /// The model package ARN.
    pub arn: String,
    /// The version number within the group.
    pub version: i64,
    /// PendingManualApproval, Approved or Rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_status: Option<String>,
}
