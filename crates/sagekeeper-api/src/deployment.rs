//! `ModelDeployment`: an approved model version served by SageMaker endpoints, promoted stage by
//! stage across the environment's target accounts.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::DeletionPolicy;
use crate::schema::{INSTANCE_TYPE, MAX_NAME, OBJECT_NAME, STAGE_NAME, VERSION_NUMBER};

/// The value of `modelVersion` that follows the project's newest Approved version.
pub const LATEST_APPROVED: &str = "LatestApproved";

/// Which model version to serve, and the stages to promote it through.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sagekeeper.io",
    version = "v1alpha1",
    kind = "ModelDeployment",
    plural = "modeldeployments",
    shortname = "mdep",
    category = "sagekeeper",
    namespaced,
    status = "ModelDeploymentStatus",
    doc = "An approved model version served by SageMaker endpoints, stage by stage, across accounts.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Project", type_ = "string", json_path = ".spec.project"),
    printcolumn(name = "Version", type_ = "integer", json_path = ".status.resolvedModelPackage.version"),
    printcolumn(name = "Stages", type_ = "string", json_path = ".status.summary"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentSpec {
    /// Name of the MLOpsProject in the same namespace whose registry holds the model. Immutable.
    #[schemars(length(max = MAX_NAME), pattern(OBJECT_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.project is immutable"))]
    pub project: String,

    /// LatestApproved (default): the project's newest Approved version. Or a version number
    /// such as "7", which must exist and be Approved.
    #[serde(default = "latest_approved")]
    #[schemars(length(max = 16), pattern(r"^(LatestApproved|[1-9][0-9]{0,8})$"))]
    pub model_version: String,

    /// Stages in promotion order, keyed by name. A stage deploys version N only when every
    /// earlier stage has verified N.
    #[schemars(length(min = 1, max = 10))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub stages: Vec<Stage>,

    /// Delete (default): remove endpoints, configs and models in every account on deletion.
    /// Retain: release the object and touch nothing in AWS.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn latest_approved() -> String {
    LATEST_APPROVED.to_owned()
}

/// One promotion stage: where and how the model is served.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.approval == 'Manual' || !has(self.approvedVersion)")
    .message("spec.stages[].approvedVersion is only used with approval: Manual").field_path(".approvedVersion"))]
#[x_kube(validation = Rule::new(
    "!has(self.rollout) || self.rollout.strategy == 'AllAtOnce' || !self.instanceType.startsWith('ml.inf1.')"
).message("spec.stages[].rollout.strategy: Canary and Linear are not available on ml.inf1 instances (SageMaker shifts their traffic all at once); use AllAtOnce").field_path(".rollout.strategy"))]
#[x_kube(validation = Rule::new(
    "!has(self.rollout) || self.rollout.strategy == 'AllAtOnce' || self.initialInstanceCount >= 2"
).message("spec.stages[].rollout.strategy: Canary and Linear need initialInstanceCount of at least 2 (a canary or a step is at most half of the new fleet)").field_path(".rollout.strategy"))]
#[x_kube(validation = Rule::new(
    "!has(self.rollout) || !has(self.rollout.canarySize) || self.rollout.canarySize.type != 'InstanceCount' || self.rollout.canarySize.value * 2 <= self.initialInstanceCount"
).message("spec.stages[].rollout.canarySize: at most half of initialInstanceCount").field_path(".rollout.canarySize"))]
#[x_kube(validation = Rule::new(
    "!has(self.rollout) || !has(self.rollout.linearStepSize) || self.rollout.linearStepSize.type != 'InstanceCount' || (self.rollout.linearStepSize.value * 10 >= self.initialInstanceCount && self.rollout.linearStepSize.value * 2 <= self.initialInstanceCount)"
).message("spec.stages[].rollout.linearStepSize: 10% to 50% of initialInstanceCount").field_path(".rollout.linearStepSize"))]
#[x_kube(validation = Rule::new(
    "!has(self.rollout) || !has(self.rollout.linearStepSize) || self.rollout.linearStepSize.type != 'InstanceCount' || ((self.initialInstanceCount + self.rollout.linearStepSize.value - 1) / self.rollout.linearStepSize.value + 1) * self.rollout.bakeSeconds <= 27000"
).message("spec.stages[].rollout.bakeSeconds: every linear step and the termination wait bake this long, and a deployment may take at most 8 hours (27000 s of baking)").field_path(".rollout.bakeSeconds"))]
#[x_kube(validation = Rule::new(
    "!has(self.rollout) || !has(self.autoscaling) || self.rollout.strategy == 'AllAtOnce' || self.autoscaling.minInstances >= 2"
).message("spec.stages[].autoscaling.minInstances: Canary and Linear need at least 2 instances at any scale").field_path(".autoscaling.minInstances"))]
#[x_kube(validation = Rule::new(
    "!has(self.rollout) || !has(self.autoscaling) || !has(self.rollout.canarySize) || self.rollout.canarySize.type != 'InstanceCount' || self.rollout.canarySize.value * 2 <= self.autoscaling.minInstances"
).message("spec.stages[].rollout.canarySize: at most half of autoscaling.minInstances (the fleet may be scaled down to it)").field_path(".rollout.canarySize"))]
#[x_kube(validation = Rule::new(
    "!has(self.rollout) || !has(self.autoscaling) || !has(self.rollout.linearStepSize) || self.rollout.linearStepSize.type != 'InstanceCount' || (self.rollout.linearStepSize.value * 10 >= self.autoscaling.maxInstances && self.rollout.linearStepSize.value * 2 <= self.autoscaling.minInstances && ((self.autoscaling.maxInstances + self.rollout.linearStepSize.value - 1) / self.rollout.linearStepSize.value + 1) * self.rollout.bakeSeconds <= 27000)"
).message("spec.stages[].rollout.linearStepSize: 10% of autoscaling.maxInstances to 50% of autoscaling.minInstances, within 27000 s of baking at the most instances (the fleet may be scaled anywhere between)").field_path(".rollout.linearStepSize"))]
#[x_kube(validation = Rule::new(
    "!has(self.autoscaling) || (self.autoscaling.minInstances <= self.initialInstanceCount && self.initialInstanceCount <= self.autoscaling.maxInstances)"
).message("spec.stages[].autoscaling: minInstances <= initialInstanceCount <= maxInstances").field_path(".autoscaling"))]
pub struct Stage {
    /// A stage name of the environment's spec.targetAccounts.
    #[schemars(length(max = 32), pattern(STAGE_NAME))]
    pub name: String,

    /// AwsAccount names to serve from. Absent with accountSets absent too: all accounts of this
    /// stage in the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10), inner(length(max = MAX_NAME), pattern(OBJECT_NAME)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub accounts: Option<Vec<String>>,

    /// AwsAccountSet names to serve from, besides accounts: every member account of each set,
    /// now and later (the environment must name the set for this stage too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10), inner(length(max = MAX_NAME), pattern(OBJECT_NAME)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub account_sets: Option<Vec<String>>,

    /// SageMaker hosting instance type, e.g. ml.m5.large.
    #[schemars(length(max = 32), pattern(INSTANCE_TYPE))]
    pub instance_type: String,

    /// Instances behind each endpoint, at least 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub initial_instance_count: i32,

    /// Automatic (default): deploy as soon as earlier stages verified the version. Manual:
    /// serve only the version named in approvedVersion.
    #[serde(default)]
    pub approval: Approval,

    /// The version a person approved for this stage (Manual only), e.g. "6".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 9), pattern(VERSION_NUMBER))]
    pub approved_version: Option<String>,

    /// Capture of requests and responses to the target account's data capture bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_capture: Option<DataCapture>,

    /// How the stage's endpoints move to a new version: traffic shifted in steps while alarms
    /// are watched, rolled back by SageMaker when one fires. Absent: all at once, unwatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,

    /// Application Auto Scaling of each endpoint's variant on invocations per instance. While
    /// on, sagekeeper never resets the instance count the scaler chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
}

/// A guarded rollout: SageMaker's deployment guardrails with alarms sagekeeper owns.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.strategy == 'Canary' ? has(self.canarySize) : !has(self.canarySize)")
    .message("spec.stages[].rollout.canarySize is required with strategy: Canary and only used with it").field_path(".canarySize"))]
#[x_kube(validation = Rule::new("self.strategy == 'Linear' ? has(self.linearStepSize) : !has(self.linearStepSize)")
    .message("spec.stages[].rollout.linearStepSize is required with strategy: Linear and only used with it").field_path(".linearStepSize"))]
#[x_kube(validation = Rule::new("!has(self.canarySize) || self.canarySize.type != 'CapacityPercent' || self.canarySize.value <= 50")
    .message("spec.stages[].rollout.canarySize: at most 50 percent of the capacity").field_path(".canarySize"))]
#[x_kube(validation = Rule::new("!has(self.linearStepSize) || self.linearStepSize.type != 'CapacityPercent' || (self.linearStepSize.value >= 10 && self.linearStepSize.value <= 50)")
    .message("spec.stages[].rollout.linearStepSize: 10 to 50 percent of the capacity").field_path(".linearStepSize"))]
#[x_kube(validation = Rule::new(
    "(self.strategy == 'Linear' && has(self.linearStepSize) && self.linearStepSize.type == 'CapacityPercent' ? (100 + self.linearStepSize.value - 1) / self.linearStepSize.value + 1 : (self.strategy == 'Canary' ? 3 : 2)) * self.bakeSeconds <= 27000"
).message("spec.stages[].rollout.bakeSeconds: every traffic step and the termination wait bake this long, and a deployment may take at most 8 hours (27000 s of baking)").field_path(".bakeSeconds"))]
pub struct Rollout {
    /// AllAtOnce (default): all traffic at once, then baking. Canary: canarySize first, baked,
    /// then the rest. Linear: linearStepSize at a time, each baked.
    #[serde(default)]
    pub strategy: RolloutStrategy,

    /// The canary's share of the new fleet: CapacityPercent (1 to 50) or InstanceCount (at most
    /// half of initialInstanceCount). Canary only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_size: Option<CapacitySize>,

    /// Each step's share of the new fleet: CapacityPercent (10 to 50) or InstanceCount (10% to
    /// 50% of initialInstanceCount). Linear only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_step_size: Option<CapacitySize>,

    /// Seconds each traffic step bakes while the alarms are watched, and the old fleet is kept
    /// after the last one (0 to 3600, default 600).
    #[serde(default = "default_bake")]
    #[schemars(range(min = 0, max = 3600))]
    pub bake_seconds: i32,

    /// The alarms whose ALARM state rolls the update back.
    #[serde(default)]
    pub alarms: RolloutAlarms,
}

fn default_bake() -> i32 {
    600
}

/// How traffic moves to the new fleet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RolloutStrategy {
    /// Every request at once, then a bake.
    #[default]
    AllAtOnce,
    /// A canary share first, baked, then the rest.
    Canary,
    /// Equal steps, each baked.
    Linear,
}

/// A share of the new fleet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CapacitySize {
    /// CapacityPercent or InstanceCount.
    #[serde(rename = "type")]
    pub kind: CapacityType,
    /// The percent, or the number of instances, at least 1.
    #[schemars(range(min = 1, max = 1000))]
    pub value: i32,
}

/// How a CapacitySize counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CapacityType {
    /// A percentage of the new fleet.
    CapacityPercent,
    /// A number of instances of the new fleet.
    InstanceCount,
}

/// The alarms of a rollout: two sagekeeper owns per endpoint, and any the team names.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAlarms {
    /// Roll back when an endpoint answers more than this many 5XX errors in a minute (the Sum
    /// of Invocation5XXErrors). Default 5.
    #[serde(default = "default_errors")]
    #[schemars(range(min = 0, max = 1000000))]
    pub invocation5xx_errors_max: i32,

    /// Roll back when the p99 of ModelLatency over a minute exceeds this many milliseconds
    /// (SageMaker reports microseconds; sagekeeper converts). Default 1000.
    #[serde(default = "default_latency")]
    #[schemars(range(min = 1, max = 3600000))]
    pub model_latency_p99_millis: i32,

    /// CloudWatch alarms of the target accounts the team owns, by name (at most 8: AWS takes 10
    /// per update, sagekeeper's two included). Read, never changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 255)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub alarm_names: Vec<String>,
}

impl Default for RolloutAlarms {
    fn default() -> Self {
        Self {
            invocation5xx_errors_max: default_errors(),
            model_latency_p99_millis: default_latency(),
            alarm_names: Vec::new(),
        }
    }
}

fn default_errors() -> i32 {
    5
}

fn default_latency() -> i32 {
    1000
}

/// Target tracking of each endpoint's variant on invocations per instance.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// The fewest instances, at least 1 and at most initialInstanceCount.
    #[schemars(range(min = 1, max = 1000))]
    pub min_instances: i32,

    /// The most instances, at least initialInstanceCount.
    #[schemars(range(min = 1, max = 1000))]
    pub max_instances: i32,

    /// Invocations per instance per minute the scaler keeps each instance at
    /// (SageMakerVariantInvocationsPerInstance).
    #[schemars(range(min = 1, max = 1000000))]
    pub target_invocations_per_instance: i32,

    /// Seconds after a scale-in before another (0 to 3600, default 300).
    #[serde(default = "default_cooldown")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_in_cooldown_seconds: i32,

    /// Seconds after a scale-out before another (0 to 3600, default 300).
    #[serde(default = "default_cooldown")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_out_cooldown_seconds: i32,
}

fn default_cooldown() -> i32 {
    300
}

fn one() -> i32 {
    1
}

/// Whether a stage needs a person's approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Approval {
    /// Deploy once earlier stages verified the version.
    #[default]
    Automatic,
    /// Deploy only the version named in approvedVersion.
    Manual,
}

/// Endpoint data capture settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataCapture {
    /// Whether to capture. Default false.
    #[serde(default)]
    pub enabled: bool,

    /// Share of requests captured, 1 to 100. Default 100.
    #[serde(default = "hundred")]
    #[schemars(range(min = 1, max = 100))]
    pub sampling_percentage: i32,
}

fn hundred() -> i32 {
    100
}

/// What sagekeeper last observed of a ModelDeployment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Reconciling, Stalled, ModelResolved, StagesReady, PromotionPending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// One line per stage for the printer column, e.g. `staging=v7 Serving, production=v6 WaitingForApproval(v7)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,

    /// The model version modelVersion resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_model_package: Option<ResolvedModelPackage>,

    /// Each stage's progress, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
}

/// The model version a deployment resolved.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedModelPackage {
    /// The model package ARN.
    pub arn: String,
    /// The version number.
    pub version: i64,
}

/// Where a stage stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StagePhase {
    /// Not started: earlier stages have not verified the version yet.
    #[default]
    Pending,
    /// Endpoints are being created or updated.
    Deploying,
    /// A guarded rollout shifts traffic to the new version and bakes it while its alarms are
    /// watched.
    Baking,
    /// Every account serves the desired version.
    Serving,
    /// A Manual stage waits for approvedVersion.
    WaitingForApproval,
    /// The last deployment failed; the previous version keeps serving.
    Failed,
}

/// One stage's progress.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// The stage name.
    pub name: String,
    /// The version the gate allows this stage to serve now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_version: Option<i64>,
    /// The version every account of the stage serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_version: Option<i64>,
    /// Versions this stage has served successfully (the last 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_versions: Vec<i64>,
    /// The version the stage serves although the registry marks it Rejected: kept until a
    /// person decides (a Warning event said so once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_serving_version: Option<i64>,
    /// Where the stage stands.
    #[serde(default)]
    pub phase: StagePhase,
    /// What it waits for or why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Each account's endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<StageAccountStatus>,
}

/// One account's endpoint within a stage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageAccountStatus {
    /// The AwsAccount name.
    pub account: String,
    /// Its account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The endpoint name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_name: Option<String>,
    /// The endpoint ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_arn: Option<String>,
    /// The endpoint config the endpoint runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_config_name: Option<String>,
    /// The SageMaker model behind the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// SageMaker's endpoint status (Creating, Updating, InService, Failed, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_status: Option<String>,
    /// An endpoint config whose deployment failed; not retried until the spec or version changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_endpoint_config_name: Option<String>,
    /// SageMaker's reason for the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// During a guarded rollout: the share of the endpoint's traffic on the new version, in
    /// percent, as SageMaker reports it (the pending variants' current against desired weight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_percent: Option<i32>,
    /// With a rollout: the CloudWatch alarms whose ALARM rolls an update back here (sagekeeper's
    /// two, then the team's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback_alarms: Vec<String>,
    /// The instances the endpoint's variant runs, as SageMaker reports them (the autoscaler's
    /// choice when the stage has autoscaling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_instance_count: Option<i32>,
    /// With autoscaling: the Application Auto Scaling target registered on the variant
    /// (`endpoint/<name>/variant/AllTraffic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_target: Option<String>,
}
