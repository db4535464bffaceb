//! What a ModelDeployment has in a target account: SageMaker models made from a model package
//! of the dev account's registry, endpoint configs, and one endpoint per stage that moves from
//! config to config (blue/green). Each is found by name and adopted only with our owner-uid.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::types::{
    Alarm, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize, CapacitySizeType, CaptureMode, CaptureOption,
    ContainerDefinition, DataCaptureConfig, DeploymentConfig, ProductionVariant, ProductionVariantInstanceType, Tag,
    TrafficRoutingConfig, TrafficRoutingConfigType, VariantStatus, VpcConfig,
};

use crate::errors::{AwsError, ErrorKind, Optional, Required};
use crate::sagemaker_tags::{pairs, tags};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Owner, Step, StepResult};

/// Tag on an endpoint: the config sagekeeper last moved it to, the endpoint's own last
/// modification time (AWS's clock) when it did, and when the update was sent (the controller's
/// clock): `<config>@<unix milliseconds>@<unix milliseconds>`. Written before
/// UpdateEndpoint and left in place, so after a crash a rollback that happened after the mark is
/// recognised as that config's failure and the update is not started a second time; taken off
/// once the failure is recorded.
pub const UPDATING_TO_TAG: &str = "sagekeeper.io/updating-to";

/// The config and time (unix milliseconds) of the update mark among an endpoint's tags.
pub fn update_mark(tags: &[(String, String)]) -> Option<(String, u128)> {
    let (_, value) = tags.iter().find(|(k, _)| k == UPDATING_TO_TAG)?;
    let mut parts = value.split('@');
    let (config, at) = (parts.next()?, parts.next()?);
    Some((config.to_owned(), at.parse().ok()?))
}

/// When the marked update was sent, by the controller's clock (the mark's third part; a mark
/// written before it had one gives the endpoint's change instead).
pub fn marked_at(tags: &[(String, String)]) -> Option<SystemTime> {
    let (_, value) = tags.iter().find(|(k, _)| k == UPDATING_TO_TAG)?;
    let millis: u64 = value.split('@').skip(1).last()?.parse().ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

/// When the endpoint last changed, in unix milliseconds (the mark's resolution).
fn changed_millis(endpoint: &EndpointState) -> Option<u128> {
    endpoint.changed.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_millis())
}

/// The mark for a move of `endpoint` to `config`: the endpoint's last change (AWS's clock, to
/// tell a later rollback) and now (to tell which alarms went off since).
fn mark(endpoint: &EndpointState, config: &str) -> Tag {
    let at = changed_millis(endpoint).unwrap_or_default();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    Tag::builder().key(UPDATING_TO_TAG).value(format!("{config}@{at}@{now}")).build()
}

/// A model served from a model package (any account's registry), in the account's network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPlan {
    /// The model name.
    pub name: String,
    /// The versioned model package ARN.
    pub package_arn: String,
    /// The role SageMaker runs the model as.
    pub role_arn: String,
    /// Private subnets of the account's VPC.
    pub subnets: Vec<String>,
    /// The security group of the model's network interfaces.
    pub security_group: String,
}

/// An endpoint config: one variant of one model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigPlan {
    /// The endpoint config name.
    pub name: String,
    /// The model it serves.
    pub model: String,
    /// The hosting instance type.
    pub instance_type: String,
    /// Instances behind the endpoint.
    pub instance_count: i32,
    /// The key for the instances' storage volumes (`None` for instance types with local NVMe
    /// storage, which AWS refuses a volume key for).
    pub volume_key: Option<String>,
    /// Data capture, when enabled.
    pub capture: Option<CapturePlan>,
}

/// Where and how much of the traffic is captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturePlan {
    /// Share of requests, 1 to 100.
    pub percentage: i32,
    /// `s3://<bucket>/<prefix>`.
    pub destination: String,
    /// The key captures are encrypted with.
    pub key: String,
}

/// What DescribeEndpoint says about an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointState {
    /// The endpoint ARN.
    pub arn: String,
    /// Where it stands.
    pub status: EndpointStatus,
    /// The config it serves.
    pub config: String,
    /// The config an update in flight moves it to.
    pub pending_config: Option<String>,
    /// SageMaker's reason for the last failure (a failed create, or a rolled-back update).
    pub failure_reason: Option<String>,
    /// When it last changed.
    pub changed: Option<SystemTime>,
    /// How far a guarded update in flight has got, when one is.
    pub rollout: Option<Progress>,
    /// The instances its variant runs now (the scaler may have changed them).
    pub instances: Option<i32>,
}

/// A guarded update in flight, from `PendingDeploymentSummary`: its variants' status and weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Traffic is on the new fleet, or the old one waits out its termination: the alarms are
    /// watched (variant status Baking, ActivatingTraffic or Deleting).
    pub baking: bool,
    /// The share of the traffic on the new fleet, in percent (current against desired weight).
    pub traffic_percent: Option<i32>,
}

/// How an update shifts traffic to the new fleet, and what rolls it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guardrails {
    /// How traffic moves to the new fleet.
    pub traffic: Traffic,
    /// Each step's baking period, and the old fleet's termination wait.
    pub bake_seconds: i32,
    /// MaximumExecutionTimeoutInSeconds.
    pub timeout_seconds: i32,
    /// The alarms whose ALARM rolls the update back.
    pub alarms: Vec<String>,
}

/// A traffic routing type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// Every request at once, then a bake.
    AllAtOnce,
    /// A canary of this size first, baked, then the rest.
    Canary(Capacity),
    /// Steps of this size, each baked.
    Linear(Capacity),
}

/// A share of the new fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    /// A percentage of the new fleet.
    Percent(i32),
    /// A number of its instances.
    Instances(i32),
}

impl Capacity {
    fn size(self) -> CapacitySize {
        let (kind, value) = match self {
            Self::Percent(p) => (CapacitySizeType::CapacityPercent, p),
            Self::Instances(n) => (CapacitySizeType::InstanceCount, n),
        };
        CapacitySize::builder().r#type(kind).value(value).build()
    }
}

impl Guardrails {
    /// The DeploymentConfig of an update (blue/green, the termination wait the bake time).
    fn config(&self) -> DeploymentConfig {
        let (kind, canary, linear) = match self.traffic {
            Traffic::AllAtOnce => (TrafficRoutingConfigType::AllAtOnce, None, None),
            Traffic::Canary(size) => (TrafficRoutingConfigType::Canary, Some(size.size()), None),
            Traffic::Linear(size) => (TrafficRoutingConfigType::Linear, None, Some(size.size())),
        };
        let routing = TrafficRoutingConfig::builder()
            .r#type(kind)
            .wait_interval_in_seconds(self.bake_seconds)
            .set_canary_size(canary)
            .set_linear_step_size(linear)
            .build();
        let policy = BlueGreenUpdatePolicy::builder()
            .traffic_routing_configuration(routing)
            .termination_wait_in_seconds(self.bake_seconds)
            .maximum_execution_timeout_in_seconds(self.timeout_seconds)
            .build();
        let alarms = self.alarms.iter().map(|a| Alarm::builder().alarm_name(a).build());
        DeploymentConfig::builder()
            .blue_green_update_policy(policy)
            .auto_rollback_configuration(AutoRollbackConfig::builder().set_alarms(Some(alarms.collect())).build())
            .build()
    }
}

/// A SageMaker endpoint's status; statuses this version does not know are kept by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointStatus {
    /// Being created.
    Creating,
    /// Moving to another endpoint config.
    Updating,
    /// AWS patching a serving endpoint.
    SystemUpdating,
    /// An update failed and the old config is coming back.
    RollingBack,
    /// Serving.
    InService,
    /// Being deleted.
    Deleting,
    /// Creation failed.
    Failed,
    /// Not serving; a person looks.
    OutOfService,
    /// A rollback failed; a person looks.
    UpdateRollbackFailed,
    /// A status AWS added after this version.
    Unknown(String),
}

impl EndpointStatus {
    /// The status of a DescribeEndpoint answer.
    pub fn of(status: &str) -> Self {
        match status {
            "Creating" => Self::Creating,
            "Updating" => Self::Updating,
            "SystemUpdating" => Self::SystemUpdating,
            "RollingBack" => Self::RollingBack,
            "InService" => Self::InService,
            "Deleting" => Self::Deleting,
            "Failed" => Self::Failed,
            "OutOfService" => Self::OutOfService,
            "UpdateRollbackFailed" => Self::UpdateRollbackFailed,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// Its name, as AWS spells it (and status reports it).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Creating => "Creating",
            Self::Updating => "Updating",
            Self::SystemUpdating => "SystemUpdating",
            Self::RollingBack => "RollingBack",
            Self::InService => "InService",
            Self::Deleting => "Deleting",
            Self::Failed => "Failed",
            Self::OutOfService => "OutOfService",
            Self::UpdateRollbackFailed => "UpdateRollbackFailed",
            Self::Unknown(other) => other,
        }
    }

    /// Serving traffic (SystemUpdating is AWS patching a serving endpoint).
    pub fn serves(&self) -> bool {
        matches!(self, Self::InService | Self::SystemUpdating)
    }
}

impl std::fmt::Display for EndpointStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EndpointState {
    /// Creating, Updating, rolling back, or deleting: wait.
    pub fn in_progress(&self) -> bool {
        use EndpointStatus as S;
        matches!(self.status, S::Creating | S::Updating | S::SystemUpdating | S::RollingBack | S::Deleting)
            || self.pending_config.is_some()
    }

    /// How long to wait before looking again: a fifth of the time it has been changing, between
    /// one and thirty seconds, so a short transition is seen soon and a long one is not polled
    /// in a tight loop.
    pub fn poll_after(&self) -> Duration {
        let elapsed = self.changed.and_then(|t| t.elapsed().ok()).unwrap_or_default();
        (elapsed / 5).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}

/// Adopts the resource `arn` only if it carries our owner-uid; returns its tags.
async fn owned(sm: &Client, owner: &Owner, arn: &str, what: &str) -> Result<Vec<(String, String)>, AwsError> {
    let listed = sm.list_tags().resource_arn(arn).send().await.map_err(AwsError::from_sdk)?;
    if !owner.owns(pairs(listed.tags())) {
        return Err(owner.conflict(what, pairs(listed.tags())));
    }
    Ok(pairs(listed.tags()).into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

/// Whether the resource carries our owner-uid (someone else's is left alone).
async fn ours(sm: &Client, owner: &Owner, arn: &str, what: &str) -> Result<bool, AwsError> {
    match owned(sm, owner, arn, what).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind == ErrorKind::Conflict => Ok(false),
        Err(e) => Err(e),
    }
}

/// The model, created unless it exists (a model never changes: a change is a new name).
pub async fn ensure_model(
    session: &Session,
    owner: &Owner,
    plan: &ModelPlan,
    changes: &Changes,
) -> Result<(), AwsError> {
    let sm = session.sagemaker();
    let what = format!("model {}", plan.name);
    if let Some(model) =
        sm.describe_model().model_name(&plan.name).send().await.map_err(AwsError::from_sdk).optional()?
    {
        owned(sm, owner, &model.model_arn().required("DescribeModel", "ModelArn")?, &what).await?;
        return Ok(());
    }
    let vpc =
        VpcConfig::builder().set_subnets(Some(plan.subnets.clone())).security_group_ids(&plan.security_group).build();
    sm.create_model()
        .model_name(&plan.name)
        .primary_container(ContainerDefinition::builder().model_package_name(&plan.package_arn).build())
        .execution_role_arn(&plan.role_arn)
        .vpc_config(vpc)
        .set_tags(Some(tags(owner, "hosting/model")))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    changes.record(Action::Created, what);
    Ok(())
}

/// The endpoint config, created unless it exists (never changed: a change is a new name).
pub async fn ensure_config(
    session: &Session,
    owner: &Owner,
    plan: &ConfigPlan,
    changes: &Changes,
) -> Result<(), AwsError> {
    let sm = session.sagemaker();
    let what = format!("endpoint config {}", plan.name);
    let described = sm.describe_endpoint_config().endpoint_config_name(&plan.name).send().await;
    if let Some(config) = described.map_err(AwsError::from_sdk).optional()? {
        owned(sm, owner, &config.endpoint_config_arn().required("DescribeEndpointConfig", "EndpointConfigArn")?, &what)
            .await?;
        return Ok(());
    }
    let variant = ProductionVariant::builder()
        .variant_name("AllTraffic")
        .model_name(&plan.model)
        .instance_type(ProductionVariantInstanceType::from(plan.instance_type.as_str()))
        .initial_instance_count(plan.instance_count)
        .initial_variant_weight(1.0)
        .build();
    let capture = plan.capture.as_ref().map(|c| {
        DataCaptureConfig::builder()
            .enable_capture(true)
            .initial_sampling_percentage(c.percentage)
            .destination_s3_uri(&c.destination)
            .kms_key_id(&c.key)
            .capture_options(CaptureOption::builder().capture_mode(CaptureMode::Input).build())
            .capture_options(CaptureOption::builder().capture_mode(CaptureMode::Output).build())
            .build()
    });
    sm.create_endpoint_config()
        .endpoint_config_name(&plan.name)
        .production_variants(variant)
        .set_kms_key_id(plan.volume_key.clone())
        .set_data_capture_config(capture)
        .set_tags(Some(tags(owner, "hosting/endpoint-config")))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    changes.record(Action::Created, what);
    Ok(())
}

/// What ListEndpoints says about one endpoint: enough to tell that it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedEndpoint {
    /// Where it stands.
    pub status: EndpointStatus,
    /// When it last changed (an update moves it, even when it ends where it was).
    pub changed: Option<SystemTime>,
}

/// Every endpoint of the session's account and region by name: one ListEndpoints call per
/// hundred endpoints.
pub async fn list_endpoints(session: &Session) -> Result<BTreeMap<String, ListedEndpoint>, AwsError> {
    let mut pages = session.sagemaker().list_endpoints().max_results(100).into_paginator().send();
    let mut listed = BTreeMap::new();
    while let Some(page) = pages.next().await {
        for e in page.map_err(AwsError::from_sdk)?.endpoints() {
            let Some(name) = e.endpoint_name() else { continue };
            let changed = e.last_modified_time().and_then(|t| SystemTime::try_from(*t).ok());
            let status = EndpointStatus::of(e.endpoint_status().map_or("", |s| s.as_str()));
            listed.insert(name.to_owned(), ListedEndpoint { status, changed });
        }
    }
    Ok(listed)
}

/// The endpoint `name` as SageMaker describes it, or `None` when there is none.
pub async fn describe_endpoint(session: &Session, name: &str) -> Result<Option<EndpointState>, AwsError> {
    let sm = session.sagemaker();
    let Some(out) = sm.describe_endpoint().endpoint_name(name).send().await.map_err(AwsError::from_sdk).optional()?
    else {
        return Ok(None);
    };
    let changed = out.last_modified_time().or(out.creation_time()).and_then(|t| SystemTime::try_from(*t).ok());
    Ok(Some(EndpointState {
        arn: out.endpoint_arn().required("DescribeEndpoint", "EndpointArn")?,
        status: EndpointStatus::of(out.endpoint_status().map_or("", |s| s.as_str())),
        config: out.endpoint_config_name().required("DescribeEndpoint", "EndpointConfigName")?,
        pending_config: out.pending_deployment_summary().and_then(|p| p.endpoint_config_name()).map(str::to_owned),
        failure_reason: out.failure_reason().filter(|r| !r.is_empty()).map(str::to_owned),
        changed,
        rollout: out.pending_deployment_summary().map(|p| progress(p.production_variants())),
        instances: out.production_variants().iter().filter_map(|v| v.current_instance_count()).reduce(|a, b| a + b),
    }))
}

/// The instance type of an endpoint config's variant, or `None` when the config is gone.
pub async fn config_instance_type(session: &Session, config: &str) -> Result<Option<String>, AwsError> {
    let described = session.sagemaker().describe_endpoint_config().endpoint_config_name(config).send().await;
    let Some(out) = described.map_err(AwsError::from_sdk).optional()? else { return Ok(None) };
    Ok(out.production_variants().first().and_then(|v| v.instance_type()).map(|t| t.as_str().to_owned()))
}

/// The progress of a pending deployment from its variants: never from fields AWS does not return.
fn progress(variants: &[aws_sdk_sagemaker::types::PendingProductionVariantSummary]) -> Progress {
    let watched = [VariantStatus::Baking, VariantStatus::ActivatingTraffic, VariantStatus::Deleting];
    let baking =
        variants.iter().flat_map(|v| v.variant_status()).any(|s| s.status().is_some_and(|s| watched.contains(s)));
    let weights = variants.iter().try_fold((0.0_f32, 0.0_f32), |(current, desired), v| {
        Some((current + v.current_weight()?, desired + v.desired_weight()?))
    });
    let traffic_percent = weights.filter(|(_, desired)| *desired > 0.0).map(|(current, desired)| {
        // A whole percent, never above 100 (weights are floats).
        ((current / desired * 100.0).round() as i32).clamp(0, 100)
    });
    Progress { baking, traffic_percent }
}

/// The endpoint's tags, adopting it only with our owner-uid.
pub async fn endpoint_tags(
    session: &Session,
    owner: &Owner,
    endpoint: &EndpointState,
    name: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let sm = session.sagemaker();
    owned(sm, owner, &endpoint.arn, &format!("endpoint {name}")).await
}

/// Creates the endpoint `name` on `config`; returns its ARN.
pub async fn create_endpoint(
    session: &Session,
    owner: &Owner,
    name: &str,
    config: &str,
    changes: &Changes,
) -> Result<String, AwsError> {
    let sm = session.sagemaker();
    let out = sm
        .create_endpoint()
        .endpoint_name(name)
        .endpoint_config_name(config)
        .set_tags(Some(tags(owner, "hosting/endpoint")))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    changes.record(Action::Created, format!("endpoint {name} on {config}"));
    out.endpoint_arn().required("CreateEndpoint", "EndpointArn")
}

/// Moves the endpoint to `config`: marks the move on the endpoint first, then UpdateEndpoint,
/// with the guardrails' DeploymentConfig when there are any (AWS keeps none from an earlier
/// update). An endpoint already being updated is Pending. The mark stays even when the call
/// fails: the call may have been taken before its answer was lost, and the mark's time tells a
/// later rollback from an earlier one.
pub async fn update_endpoint(
    session: &Session,
    endpoint: &EndpointState,
    name: &str,
    config: &str,
    guardrails: Option<&Guardrails>,
    changes: &Changes,
) -> StepResult<()> {
    let sm = session.sagemaker();
    sm.add_tags().resource_arn(&endpoint.arn).tags(mark(endpoint, config)).send().await.map_err(AwsError::from_sdk)?;
    let update = sm.update_endpoint().endpoint_name(name).endpoint_config_name(config);
    match update.set_deployment_config(guardrails.map(Guardrails::config)).send().await {
        Ok(_) => {
            changes.record(Action::Updated, format!("endpoint {name} to {config}"));
            Ok(Step::Ready(()))
        }
        Err(e) => {
            let e = AwsError::from_sdk(e);
            if e.code == "ValidationException" && e.message.contains("in-progress") {
                return Ok(Step::Pending(format!("endpoint {name} is being updated already")));
            }
            Err(e)
        }
    }
}

/// Whether SageMaker rolled the endpoint back from an update to `config` that sagekeeper
/// started: the endpoint reports a failure, and changed after the mark for that config (both
/// times from AWS).
pub fn rolled_back_from(endpoint: &EndpointState, tags: &[(String, String)], config: &str) -> bool {
    let Some((marked, at)) = update_mark(tags) else { return false };
    endpoint.failure_reason.is_some()
        && marked == config
        && changed_millis(endpoint).is_some_and(|changed| changed > at)
}

/// Takes the update mark off once its failure is recorded, so the same config may be tried
/// again after the spec or the version moved away and back.
pub async fn clear_mark(session: &Session, endpoint: &EndpointState) -> Result<(), AwsError> {
    let sm = session.sagemaker();
    sm.delete_tags().resource_arn(&endpoint.arn).tag_keys(UPDATING_TO_TAG).send().await.map_err(AwsError::from_sdk)?;
    Ok(())
}

/// Deletes the endpoint `name`: Ready once it is gone (or when it is not ours), Pending while it
/// is deleting.
pub async fn delete_endpoint(session: &Session, owner: &Owner, name: &str, changes: &Changes) -> StepResult<()> {
    let sm = session.sagemaker();
    let Some(endpoint) = describe_endpoint(session, name).await? else {
        return Ok(Step::Ready(()));
    };
    if endpoint.status != EndpointStatus::Deleting {
        // Someone else's endpoint of that name is not ours to delete.
        if !ours(sm, owner, &endpoint.arn, &format!("endpoint {name}")).await? {
            return Ok(Step::Ready(()));
        }
        if sm.delete_endpoint().endpoint_name(name).send().await.map_err(AwsError::from_sdk).optional()?.is_none() {
            return Ok(Step::Ready(()));
        }
        changes.record(Action::Deleted, format!("endpoint {name}"));
    }
    Ok(Step::Pending(format!("endpoint {name} is being deleted")))
}

/// Removes the models and endpoint configs named `<stem>-...` that carry our owner-uid, except
/// those in `keep`. Configs go first, since a config names its model.
pub async fn remove_unused(
    session: &Session,
    owner: &Owner,
    stem: &str,
    keep: &[&str],
    changes: &Changes,
) -> Result<(), AwsError> {
    let sm = session.sagemaker();
    let prefix = format!("{stem}-v");
    let mut configs = Vec::new();
    let mut pages = sm.list_endpoint_configs().name_contains(stem).into_paginator().send();
    while let Some(page) = pages.next().await {
        for c in page.map_err(AwsError::from_sdk)?.endpoint_configs() {
            let name = c.endpoint_config_name().required("ListEndpointConfigs", "EndpointConfigName")?;
            if name.starts_with(&prefix) && !keep.contains(&name.as_str()) {
                configs.push((name, c.endpoint_config_arn().required("ListEndpointConfigs", "EndpointConfigArn")?));
            }
        }
    }
    let mut models = Vec::new();
    let mut pages = sm.list_models().name_contains(stem).into_paginator().send();
    while let Some(page) = pages.next().await {
        for m in page.map_err(AwsError::from_sdk)?.models() {
            let name = m.model_name().required("ListModels", "ModelName")?;
            if name.starts_with(&prefix) && !keep.contains(&name.as_str()) {
                models.push((name, m.model_arn().required("ListModels", "ModelArn")?));
            }
        }
    }
    for (name, arn) in configs {
        if !ours(sm, owner, &arn, &name).await? {
            continue;
        }
        let deleted = sm.delete_endpoint_config().endpoint_config_name(&name).send().await;
        if deleted.map_err(AwsError::from_sdk).optional()?.is_some() {
            changes.record(Action::Deleted, format!("endpoint config {name}"));
        }
    }
    for (name, arn) in models {
        if !ours(sm, owner, &arn, &name).await? {
            continue;
        }
        if sm.delete_model().model_name(&name).send().await.map_err(AwsError::from_sdk).optional()?.is_some() {
            changes.record(Action::Deleted, format!("model {name}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_sdk_sagemaker::types::{PendingProductionVariantSummary, ProductionVariantStatus};

    use super::*;

    fn variant(status: VariantStatus, weights: Option<(f32, f32)>) -> PendingProductionVariantSummary {
        let builder = PendingProductionVariantSummary::builder()
            .variant_name(crate::alarms::VARIANT)
            .variant_status(ProductionVariantStatus::builder().status(status).build());
        let builder = match weights {
            Some((current, desired)) => builder.current_weight(current).desired_weight(desired),
            None => builder,
        };
        builder.build()
    }

    #[test]
    fn progress_is_read_from_the_pending_variants_status_and_weights_only() {
        let progress_of = |v| progress(&[v]);
        assert_eq!(
            progress_of(variant(VariantStatus::Baking, Some((0.1, 1.0)))),
            Progress { baking: true, traffic_percent: Some(10) }
        );
        assert_eq!(
            progress_of(variant(VariantStatus::Deleting, Some((2.0, 2.0)))),
            Progress { baking: true, traffic_percent: Some(100) },
            "the old fleet's termination wait is baked too"
        );
        assert_eq!(
            progress_of(variant(VariantStatus::Creating, None)),
            Progress { baking: false, traffic_percent: None },
            "no weights reported, none made up"
        );
    }

    #[test]
    fn guardrails_become_a_blue_green_deployment_config_with_its_alarms() {
        let guard = Guardrails {
            traffic: Traffic::Linear(Capacity::Instances(2)),
            bake_seconds: 300,
            timeout_seconds: 3600,
            alarms: vec!["a".into(), "b".into()],
        };
        let config = guard.config();
        let policy = config.blue_green_update_policy().unwrap();
        let routing = policy.traffic_routing_configuration().unwrap();
        assert_eq!(routing.r#type(), Some(&TrafficRoutingConfigType::Linear));
        assert_eq!(routing.wait_interval_in_seconds(), Some(300));
        let step = routing.linear_step_size().unwrap();
        assert_eq!((step.r#type(), step.value()), (Some(&CapacitySizeType::InstanceCount), Some(2)));
        assert!(routing.canary_size().is_none());
        assert_eq!(policy.termination_wait_in_seconds(), Some(300));
        assert_eq!(policy.maximum_execution_timeout_in_seconds(), Some(3600));
        let alarms: Vec<&str> =
            config.auto_rollback_configuration().unwrap().alarms().iter().filter_map(|a| a.alarm_name()).collect();
        assert_eq!(alarms, ["a", "b"]);
    }
}
