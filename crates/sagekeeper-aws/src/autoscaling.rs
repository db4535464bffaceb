//! Application Auto Scaling of an endpoint's variant: a scalable target on its desired instance
//! count and a target-tracking policy on invocations per instance, registered with our tags,
//! kept as planned, changed or removed only with our owner-uid.

use aws_sdk_applicationautoscaling::Client;
use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ScalableTarget, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};

use crate::alarms::VARIANT;
use crate::errors::{AwsError, Optional};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Owner};

/// The target-tracking policy's name (one per variant).
pub const POLICY: &str = "sagekeeper-invocations-per-instance";

/// How an endpoint's variant scales.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingPlan {
    /// The endpoint.
    pub endpoint: String,
    /// The fewest instances.
    pub min: i32,
    /// The most instances.
    pub max: i32,
    /// Invocations per instance per minute the scaler keeps each instance at.
    pub target_invocations: i32,
    /// Seconds after a scale-in before another.
    pub scale_in_cooldown: i32,
    /// Seconds after a scale-out before another.
    pub scale_out_cooldown: i32,
}

/// The scalable target's resource id of an endpoint's variant.
pub fn resource_id(endpoint: &str) -> String {
    format!("endpoint/{endpoint}/variant/{VARIANT}")
}

/// The endpoint's scalable target, if one is registered.
async fn target(client: &Client, endpoint: &str) -> Result<Option<ScalableTarget>, AwsError> {
    let out = client
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .resource_ids(resource_id(endpoint))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(out.scalable_targets().first().cloned())
}

/// The target's tags.
async fn tags_of(client: &Client, target: &ScalableTarget) -> Result<Vec<(String, String)>, AwsError> {
    let Some(arn) = target.scalable_target_arn() else { return Ok(Vec::new()) };
    let out = client.list_tags_for_resource().resource_arn(arn).send().await.map_err(AwsError::from_sdk)?;
    Ok(out.tags().into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn pairs(tags: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Registers the variant's scalable target and puts its policy, or repairs them; `known`: the
/// last pass saw the target as ours, so its tags are not read again unless it must change.
pub async fn ensure(
    session: &Session,
    owner: &Owner,
    plan: &ScalingPlan,
    known: bool,
    changes: &Changes,
) -> Result<(), AwsError> {
    let client = session.autoscaling();
    let what = format!("scalable target {}", resource_id(&plan.endpoint));
    let found = target(client, &plan.endpoint).await?;
    let range_fine = found.as_ref().is_some_and(|t| t.min_capacity() == plan.min && t.max_capacity() == plan.max);
    if let Some(t) = &found
        && (!known || !range_fine)
    {
        let tags = tags_of(client, t).await?;
        if !owner.owns(pairs(&tags)) {
            return Err(owner.conflict(&what, pairs(&tags)));
        }
    }
    if !range_fine {
        let register = client
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Sagemaker)
            .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
            .resource_id(resource_id(&plan.endpoint))
            .min_capacity(plan.min)
            .max_capacity(plan.max);
        // Tags only on a new target (AWS ignores them on an update, and the policy lets the
        // deployer send them only for a target that has none).
        let register = match &found {
            None => register.set_tags(Some(owner.tags("hosting/scaling").into_iter().collect())),
            Some(_) => register,
        };
        register.send().await.map_err(AwsError::from_sdk)?;
        changes.record(if found.is_some() { Action::Updated } else { Action::Created }, what);
    }
    ensure_policy(client, plan, changes).await
}

async fn ensure_policy(client: &Client, plan: &ScalingPlan, changes: &Changes) -> Result<(), AwsError> {
    let id = resource_id(&plan.endpoint);
    let described = client
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .resource_id(&id)
        .policy_names(POLICY)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let existing = described.scaling_policies().first();
    let fine = existing.and_then(|p| p.target_tracking_scaling_policy_configuration()).is_some_and(|c| {
        c.target_value() == f64::from(plan.target_invocations)
            && c.predefined_metric_specification().map(|m| m.predefined_metric_type())
                == Some(&MetricType::SageMakerVariantInvocationsPerInstance)
            && c.scale_in_cooldown() == Some(plan.scale_in_cooldown)
            && c.scale_out_cooldown() == Some(plan.scale_out_cooldown)
            && c.disable_scale_in() != Some(true)
    });
    if fine {
        return Ok(());
    }
    let metric = PredefinedMetricSpecification::builder()
        .predefined_metric_type(MetricType::SageMakerVariantInvocationsPerInstance)
        .build()
        .map_err(|e| AwsError::from_code("ValidationException", &e.to_string(), None))?;
    let tracking = TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(f64::from(plan.target_invocations))
        .predefined_metric_specification(metric)
        .scale_in_cooldown(plan.scale_in_cooldown)
        .scale_out_cooldown(plan.scale_out_cooldown)
        .build()
        .map_err(|e| AwsError::from_code("ValidationException", &e.to_string(), None))?;
    client
        .put_scaling_policy()
        .policy_name(POLICY)
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .resource_id(&id)
        .policy_type(PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(tracking)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let action = if existing.is_some() { Action::Updated } else { Action::Created };
    changes.record(action, format!("scaling policy {POLICY} of {id}"));
    Ok(())
}

/// Deregisters the variant's scalable target (its policies go with it) if it is ours; Ok when
/// there is none.
pub async fn deregister(session: &Session, owner: &Owner, endpoint: &str, changes: &Changes) -> Result<(), AwsError> {
    let client = session.autoscaling();
    let Some(t) = target(client, endpoint).await? else { return Ok(()) };
    if !owner.owns(pairs(&tags_of(client, &t).await?)) {
        return Ok(());
    }
    let gone = client
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .resource_id(resource_id(endpoint))
        .send()
        .await
        .map_err(AwsError::from_sdk)
        .optional()?;
    if gone.is_some() {
        changes.record(Action::Deleted, format!("scalable target {}", resource_id(endpoint)));
    }
    Ok(())
}
