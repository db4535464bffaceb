//! One account of one stage: the model (from the dev registry's package, in the account's
//! private network), the endpoint config (the account's key, unless the instance type has local
//! NVMe storage; data capture to the account's bucket) and the endpoint, moved blue/green.

use std::time::Duration;

use sagekeeper_api::deployment::{
    CapacitySize, CapacityType, Rollout, RolloutAlarms, RolloutStrategy, Stage, StageAccountStatus,
};
use sagekeeper_api::environment::TargetAccountStatus;
use sagekeeper_api::naming::{DeploymentNames, EnvironmentNames};
use sagekeeper_aws::AwsError;
use sagekeeper_aws::Session;
use sagekeeper_aws::alarms::{self, AlarmPlan, Alarms, Watch};
use sagekeeper_aws::autoscaling;
use sagekeeper_aws::sagemaker_endpoints::{
    self as aws, Capacity, CapturePlan, ConfigPlan, EndpointState, EndpointStatus, Guardrails, ModelPlan, Traffic,
};
use sagekeeper_aws::steps::{Changes, Owner, Step, StepResult};

/// Where one account of a stage stands after a pass.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum AccountState {
    /// The endpoint is InService on the wanted config.
    Serving,
    /// Creating, updating or waiting on something that changes by itself; look again after this.
    Deploying(Duration, String),
    /// A guarded update shifts traffic to the new fleet, or keeps the old one for its
    /// termination wait, while the alarms are watched; look again after this.
    Baking(Duration, String),
    /// The wanted config failed (SageMaker's reason), or the endpoint is in a state a person
    /// must look at; not retried until the spec or the version changes.
    Failed(String),
    /// An alarm rolled the update to the wanted config back (named, with SageMaker's reason):
    /// failed, as above.
    RolledBack(String),
    /// The version may not be deployed anew (it is no longer Approved): what exists is left
    /// as it is, nothing is created or moved.
    Held(String),
    /// The environment has not prepared the account yet.
    NotPrepared(String),
}

/// Where one account's endpoint goes and what it serves.
pub(super) struct Place<'a> {
    pub(super) names: &'a DeploymentNames,
    pub(super) owner: &'a Owner,
    pub(super) stage: &'a Stage,
    pub(super) version: i64,
    pub(super) package_arn: &'a str,
    /// What the environment prepared in the account (network, role, key, capture bucket).
    pub(super) prepared: &'a Prepared,
    /// Why the version may only be kept, not deployed anew (it is not Approved), if so.
    pub(super) hold: Option<String>,
    /// The rollback alarms in the account, when the stage has a rollout.
    pub(super) alarms: Option<&'a Alarms>,
}

/// The alarms sagekeeper owns on a stage's endpoint, with the thresholds of `watch`.
pub(super) fn alarm_plans(
    names: &DeploymentNames,
    env: &EnvironmentNames,
    stage: &str,
    watch: &RolloutAlarms,
) -> Vec<AlarmPlan> {
    let endpoint = names.endpoint(stage);
    let plan = |what: &str, watch| AlarmPlan { name: names.alarm(env, stage, what), endpoint: endpoint.clone(), watch };
    vec![
        plan("5xx-errors", Watch::Invocation5xxErrors { max: watch.invocation5xx_errors_max }),
        plan("model-latency-p99", Watch::ModelLatencyP99 { millis: watch.model_latency_p99_millis }),
    ]
}

/// The alarms sagekeeper owns on a stage's endpoint, by name.
pub(super) fn alarm_names(names: &DeploymentNames, env: &EnvironmentNames, stage: &str) -> Vec<String> {
    alarm_plans(names, env, stage, &RolloutAlarms::default()).into_iter().map(|p| p.name).collect()
}

/// The DeploymentConfig of a stage's rollout: blue/green, every traffic step and the old
/// fleet's termination wait baked for bakeSeconds, rolled back by `alarms`. The deployment may
/// run for its waits plus 30 minutes of provisioning (600 to 28,800 s, as AWS takes it).
pub(super) fn guardrails(rollout: &Rollout, instances: i32, alarms: &[String]) -> Guardrails {
    let capacity = |size: &Option<CapacitySize>| match size {
        Some(CapacitySize { kind: CapacityType::InstanceCount, value }) => Capacity::Instances(*value),
        Some(CapacitySize { value, .. }) => Capacity::Percent(*value),
        None => Capacity::Percent(50),
    };
    let (traffic, steps) = match rollout.strategy {
        RolloutStrategy::AllAtOnce => (Traffic::AllAtOnce, 1),
        RolloutStrategy::Canary => (Traffic::Canary(capacity(&rollout.canary_size)), 2),
        RolloutStrategy::Linear => {
            let step = capacity(&rollout.linear_step_size);
            let steps = match step {
                Capacity::Percent(p) => (100 + p.max(1) - 1) / p.max(1),
                Capacity::Instances(n) => (instances + n.max(1) - 1) / n.max(1),
            };
            (Traffic::Linear(step), steps)
        }
    };
    let bake = rollout.bake_seconds;
    let timeout = (steps.saturating_add(1).saturating_mul(bake)).saturating_add(1800).clamp(600, 28_800);
    Guardrails { traffic, bake_seconds: bake, timeout_seconds: timeout, alarms: alarms.to_vec() }
}

/// Instance types with local NVMe instance storage, which AWS refuses a volume key for: every
/// family with a `d` in its name (m5d, c6gd, g4dn, p4d, dl1, ...), and the newer GPU and
/// Trainium families that have it without saying so.
pub(super) fn local_nvme(instance_type: &str) -> bool {
    const NVME: &[&str] = &["g5", "g6", "g6e", "p5", "p5e", "p5en", "p6-b200", "p6-b300", "trn1", "trn1n", "trn2"];
    let family = instance_type.trim_start_matches("ml.").split('.').next().unwrap_or_default();
    family.contains('d') || NVME.contains(&family)
}

/// What the environment prepared in a target account for a stage, every part present.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Prepared {
    account: String,
    account_id: Option<String>,
    subnets: Vec<String>,
    security_group: String,
    role_arn: String,
    key_arn: String,
    /// Only when the stage captures data.
    capture_bucket: Option<String>,
}

impl Prepared {
    /// The environment's report of an account, if it has every part `stage` needs; else the
    /// parts it lacks, by name.
    pub(super) fn of(status: &TargetAccountStatus, stage: &Stage) -> Result<Self, Vec<&'static str>> {
        let capture = stage.data_capture.as_ref().is_some_and(|c| c.enabled);
        let missing: Vec<&'static str> = [
            ("private subnets", status.private_subnet_ids.is_empty()),
            ("security group", status.security_group_id.is_none()),
            ("model execution role", status.model_execution_role_arn.is_none()),
            ("endpoint key", status.endpoint_key_arn.is_none()),
            ("data capture bucket", capture && status.data_capture_bucket.is_none()),
        ]
        .into_iter()
        .filter_map(|(what, missing)| missing.then_some(what))
        .collect();
        match (&status.security_group_id, &status.model_execution_role_arn, &status.endpoint_key_arn) {
            (Some(group), Some(role), Some(key)) if missing.is_empty() => Ok(Self {
                account: status.account.clone(),
                account_id: status.account_id.clone(),
                subnets: status.private_subnet_ids.clone(),
                security_group: group.clone(),
                role_arn: role.clone(),
                key_arn: key.clone(),
                capture_bucket: status.data_capture_bucket.clone().filter(|_| capture),
            }),
            _ => Err(missing),
        }
    }
}

impl Place<'_> {
    fn model(&self) -> ModelPlan {
        let t = self.prepared;
        let plan = ModelPlan {
            name: String::new(),
            package_arn: self.package_arn.to_owned(),
            role_arn: t.role_arn.clone(),
            subnets: t.subnets.clone(),
            security_group: t.security_group.clone(),
        };
        // Everything that makes the model what it is, in a fixed form: a change is a new name.
        let settings =
            [plan.package_arn.as_str(), &plan.role_arn, &plan.subnets.join(","), &plan.security_group].join("|");
        ModelPlan { name: self.names.versioned(&self.stage.name, self.version, &settings), ..plan }
    }

    fn config(&self, model: &ModelPlan) -> ConfigPlan {
        let key = self.prepared.key_arn.clone();
        let capture = self.stage.data_capture.as_ref().filter(|c| c.enabled).zip(self.prepared.capture_bucket.as_ref());
        let capture = capture.map(|(c, bucket)| CapturePlan {
            percentage: c.sampling_percentage,
            destination: format!("s3://{bucket}/{}{}", self.names.prefix(), self.stage.name),
            key: key.clone(),
        });
        let volume_key = (!local_nvme(&self.stage.instance_type)).then_some(key);
        // With autoscaling the count is the scaler's: not part of what makes the config, so a
        // scale event never makes a new one (and a new one carries the count it finds).
        let count = match &self.stage.autoscaling {
            Some(_) => "autoscaled".to_owned(),
            None => self.stage.initial_instance_count.to_string(),
        };
        let settings = [
            model.name.clone(),
            self.stage.instance_type.clone(),
            count,
            volume_key.clone().unwrap_or_default(),
            capture.as_ref().map(|c| format!("{}|{}|{}", c.percentage, c.destination, c.key)).unwrap_or_default(),
        ]
        .join("|");
        ConfigPlan {
            name: self.names.versioned(&self.stage.name, self.version, &settings),
            model: model.name.clone(),
            instance_type: self.stage.instance_type.clone(),
            instance_count: self.stage.initial_instance_count,
            volume_key,
            capture,
        }
    }
}

/// Converges one account's endpoint to the stage's version: creates the model, config and
/// endpoint, or moves the endpoint to a new config; a failed config is recorded and not tried
/// again; once it serves, the models and configs it no longer uses go. An AWS failure names the
/// resource it was on.
pub(super) async fn converge(
    session: &Session,
    place: &Place<'_>,
    before: Option<&StageAccountStatus>,
    changes: &Changes,
) -> Result<(StageAccountStatus, AccountState), (AwsError, String)> {
    let mut out = before.cloned().unwrap_or_default();
    out.account = place.prepared.account.clone();
    out.account_id = place.prepared.account_id.clone();
    out.endpoint_name = Some(place.names.endpoint(&place.stage.name));
    out.traffic_percent = None;
    // The alarms an update started in an earlier pass was watched by, for a rollback's cause.
    let watched = before.map(|b| b.rollback_alarms.clone()).unwrap_or_default();
    out.rollback_alarms = place.alarms.map(|a| a.names.clone()).unwrap_or_default();
    let state = converge_endpoint(session, place, before, &watched, &mut out, changes).await?;
    Ok((out, state))
}

/// The model and the endpoint config, made unless they exist.
async fn ensure_both(
    session: &Session,
    owner: &Owner,
    (model, config): (&ModelPlan, &ConfigPlan),
    changes: &Changes,
) -> Result<(), (AwsError, String)> {
    aws::ensure_model(session, owner, model, changes).await.map_err(on(format!("model {}", model.name)))?;
    aws::ensure_config(session, owner, config, changes).await.map_err(on(format!("endpoint config {}", config.name)))
}

/// An AWS failure on `what`.
fn on(what: impl Into<String>) -> impl FnOnce(AwsError) -> (AwsError, String) {
    let what = what.into();
    move |e| (e, what)
}

async fn converge_endpoint(
    session: &Session,
    place: &Place<'_>,
    before: Option<&StageAccountStatus>,
    watched: &[String],
    out: &mut StageAccountStatus,
    changes: &Changes,
) -> Result<AccountState, (AwsError, String)> {
    let (model, endpoint) = (place.model(), place.names.endpoint(&place.stage.name));
    if let Some(alarms) = place.alarms.filter(|a| !a.missing.is_empty()) {
        return Ok(AccountState::Failed(format!(
            "spec.stages[{}].rollout.alarms.alarmNames: no alarm {} in this account (create it here, or take it off the list)",
            place.stage.name,
            alarms.missing.join(", "),
        )));
    }
    let mut config = place.config(&model);
    // A failure of another config is history once the spec or the version moved on.
    if out.failed_endpoint_config_name.as_deref() != Some(config.name.as_str()) {
        out.failed_endpoint_config_name = None;
        out.failure_reason = None;
    }
    let failed_before = out.failed_endpoint_config_name.is_some();
    let described = aws::describe_endpoint(session, &endpoint).await.map_err(on(format!("endpoint {endpoint}")))?;
    let Some(state) = described else {
        if let Some(why) = &place.hold {
            return Ok(AccountState::Held(format!("no endpoint here, and {why}")));
        }
        if failed_before {
            let reason = out.failure_reason.clone().unwrap_or_default();
            return Ok(AccountState::Failed(format!(
                "{reason} (the endpoint is gone; the failed config is not tried again until the spec or the version changes)"
            )));
        }
        ensure_both(session, place.owner, (&model, &config), changes).await?;
        let arn = aws::create_endpoint(session, place.owner, &endpoint, &config.name, changes)
            .await
            .map_err(on(format!("endpoint {endpoint}")))?;
        out.endpoint_arn = Some(arn);
        out.endpoint_status = Some("Creating".into());
        out.endpoint_config_name = Some(config.name.clone());
        out.model_name = Some(model.name.clone());
        return Ok(AccountState::Deploying(Duration::from_secs(1), format!("creating endpoint {endpoint}")));
    };
    // The endpoint's tags: read on first sight (it is adopted only if ours), and before any
    // write to it or any judgement of a failure.
    let first_sight = before.and_then(|b| b.endpoint_arn.as_deref()) != Some(state.arn.as_str());
    let wrong_config = state.config != config.name;
    // The scaler changing the instance count makes the endpoint Updating on the same config,
    // with no deployment pending: it serves all along.
    let scaling_now = place.stage.autoscaling.is_some() && state.status == EndpointStatus::Updating && !wrong_config;
    let serving = (state.status.serves() || scaling_now) && state.pending_config.is_none();
    let tags = if first_sight || ((wrong_config || !serving) && !state.in_progress()) {
        aws::endpoint_tags(session, place.owner, &state, &endpoint).await.map_err(on(format!("endpoint {endpoint}")))?
    } else {
        Vec::new()
    };
    out.endpoint_arn = Some(state.arn.clone());
    out.endpoint_status = Some(state.status.to_string());
    out.endpoint_config_name = Some(state.config.clone());
    out.current_instance_count = state.instances;
    if let (Some(scaling), Some(now)) = (&place.stage.autoscaling, state.instances) {
        // A new config carries the count the scaler chose.
        config.instance_count = now.clamp(scaling.min_instances, scaling.max_instances);
    }
    if serving && !wrong_config {
        // Newly serving (or its last cleanup failed): the models and configs it used before go.
        // `modelName` is recorded only once that is done, so a failed cleanup is tried again.
        let settled = before.is_some_and(|b| {
            b.endpoint_status.as_deref() == Some(state.status.as_str())
                && b.endpoint_config_name.as_deref() == Some(config.name.as_str())
                && b.model_name.as_deref() == Some(model.name.as_str())
        });
        if !settled && place.hold.is_none() {
            out.model_name = None;
            aws::remove_unused(session, place.owner, &endpoint, &[&config.name, &model.name], changes)
                .await
                .map_err(on(format!("unused models and configs of endpoint {endpoint}")))?;
        }
        out.model_name = Some(model.name.clone());
        return Ok(AccountState::Serving);
    }
    if let Some(why) = &place.hold {
        // Not moved while the version may not be deployed anew: it serves as it is.
        return Ok(if serving {
            AccountState::Held(format!("not moved to new settings: {why}"))
        } else {
            AccountState::Held(format!("endpoint {endpoint} is {}: {why}", state.status))
        });
    }
    if state.in_progress() {
        let to = state.pending_config.as_deref().unwrap_or(&state.config);
        out.traffic_percent = state.rollout.as_ref().and_then(|p| p.traffic_percent);
        if state.rollout.as_ref().is_some_and(|p| p.baking) {
            let share = out.traffic_percent.map(|t| format!(" with {t}% of the traffic on it")).unwrap_or_default();
            return Ok(AccountState::Baking(state.poll_after(), format!("endpoint {endpoint} bakes {to}{share}")));
        }
        return Ok(AccountState::Deploying(
            state.poll_after(),
            format!("endpoint {endpoint} is {} ({to})", state.status),
        ));
    }
    match &state.status {
        EndpointStatus::InService => {
            // While the wanted config is the failed one, nothing moves (not even drift back):
            // a person decides with a new version or a change of the stage.
            if failed_before {
                // The failure is in the status now: the mark may go, so the same config can be
                // tried again once the spec or the version moved away and back.
                if aws::update_mark(&tags).is_some_and(|(marked, _)| marked == config.name) {
                    aws::clear_mark(session, &state).await.map_err(on(format!("endpoint {endpoint}")))?;
                }
                return Ok(AccountState::Failed(out.failure_reason.clone().unwrap_or_default()));
            }
            if aws::rolled_back_from(&state, &tags, &config.name) {
                let watched: Vec<String> =
                    watched.iter().chain(&out.rollback_alarms).fold(Vec::new(), |mut all, name| {
                        if !all.contains(name) {
                            all.push(name.clone());
                        }
                        all
                    });
                // Alarms that went off since the update was sent, less a minute for the clocks.
                let since = aws::marked_at(&tags).and_then(|t| t.checked_sub(Duration::from_secs(60)));
                let fired = match since {
                    Some(since) if !watched.is_empty() => alarms::fired_since(session, &watched, since)
                        .await
                        .map_err(on(format!("the rollback alarms of endpoint {endpoint}")))?,
                    _ => Vec::new(),
                };
                // The mark stays until the status holds the failure (the next pass takes it
                // off): a crash before the status write must not send the update again.
                let state = failed(out, &config, &state);
                return Ok(match (fired.is_empty(), state) {
                    (false, AccountState::Failed(reason)) => {
                        let reason = format!("rolled back: alarm {} went into ALARM ({reason})", fired.join(", "));
                        out.failure_reason = Some(reason.clone());
                        AccountState::RolledBack(reason)
                    }
                    (_, state) => state,
                });
            }
            if place.alarms.is_some_and(|a| !a.checked) {
                // The alarms were carried over from the update that just ended: read them again.
                return Ok(AccountState::Deploying(
                    Duration::from_secs(1),
                    format!("reading the rollback alarms of endpoint {endpoint} before moving it"),
                ));
            }
            ensure_both(session, place.owner, (&model, &config), changes).await?;
            if out.scaling_target.is_some() {
                // SageMaker refuses to change a scaled variant's instance type: the target goes
                // first, and the Scaling step registers it again once the update is done.
                let from = aws::config_instance_type(session, &state.config)
                    .await
                    .map_err(on(format!("endpoint config {}", state.config)))?;
                if from.as_deref() != Some(config.instance_type.as_str()) {
                    autoscaling::deregister(session, place.owner, &endpoint, changes)
                        .await
                        .map_err(on(format!("the scalable target of endpoint {endpoint}")))?;
                    out.scaling_target = None;
                }
            }
            let guard = place.stage.rollout.as_ref().zip(place.alarms);
            let guard = guard.map(|(rollout, alarms)| guardrails(rollout, config.instance_count, &alarms.names));
            match aws::update_endpoint(session, &state, &endpoint, &config.name, guard.as_ref(), changes).await {
                Ok(Step::Ready(())) => {
                    out.endpoint_status = Some("Updating".into());
                    let how = (place.stage.rollout.as_ref().filter(|_| guard.is_some()))
                        .map(|r| format!(" ({:?} rollout, {} s of baking per step)", r.strategy, r.bake_seconds))
                        .unwrap_or_default();
                    let why = format!("updating endpoint {endpoint} to {}{how}", config.name);
                    Ok(AccountState::Deploying(Duration::from_secs(1), why))
                }
                Ok(Step::Pending(why)) => Ok(AccountState::Deploying(Duration::from_secs(2), why)),
                Err(e) => Err((e, format!("endpoint {endpoint}"))),
            }
        }
        // A failed create: recorded for its config; a new config replaces the endpoint, since a
        // failed endpoint cannot be updated.
        EndpointStatus::Failed if !wrong_config => Ok(failed(out, &config, &state)),
        EndpointStatus::Failed => match aws::delete_endpoint(session, place.owner, &endpoint, changes).await {
            Ok(_) => {
                Ok(AccountState::Deploying(Duration::from_secs(1), format!("replacing failed endpoint {endpoint}")))
            }
            Err(e) => Err((e, format!("endpoint {endpoint}"))),
        },
        // OutOfService, UpdateRollbackFailed: nothing sagekeeper can safely do on its own.
        other => {
            let reason = state.failure_reason.clone().map(|r| format!(": {r}")).unwrap_or_default();
            Ok(AccountState::Failed(format!("endpoint {endpoint} is {other}{reason}")))
        }
    }
}

fn failed(out: &mut StageAccountStatus, config: &ConfigPlan, state: &EndpointState) -> AccountState {
    let reason = state.failure_reason.clone().unwrap_or_else(|| format!("endpoint is {}", state.status));
    out.failed_endpoint_config_name = Some(config.name.clone());
    out.failure_reason = Some(reason.clone());
    AccountState::Failed(reason)
}

/// Removes a stage's endpoint in one account (its scalable target first), then its configs,
/// models and alarms (only what carries our owner-uid). Ready once all are gone.
pub(super) async fn teardown(
    session: &Session,
    owner: &Owner,
    endpoint: &str,
    (alarms, scaled): (&[String], bool),
    changes: &Changes,
) -> StepResult<()> {
    if scaled {
        autoscaling::deregister(session, owner, endpoint, changes).await?;
    }
    match aws::delete_endpoint(session, owner, endpoint, changes).await? {
        Step::Ready(()) => {
            aws::remove_unused(session, owner, endpoint, &[], changes).await?;
            if !alarms.is_empty() {
                alarms::remove(session, owner, alarms, changes).await?;
            }
            Ok(Step::Ready(()))
        }
        pending => Ok(pending),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_and_the_termination_wait_bake_within_the_execution_timeout() {
        let rollout = |value: serde_json::Value| serde_json::from_value::<Rollout>(value).unwrap();
        let guard = |value, instances| guardrails(&rollout(value), instances, &["a".to_owned()]);
        let canary =
            guard(serde_json::json!({"strategy": "Canary", "canarySize": {"type": "CapacityPercent", "value": 10}}), 4);
        assert_eq!(
            canary,
            Guardrails {
                traffic: Traffic::Canary(Capacity::Percent(10)),
                bake_seconds: 600,
                timeout_seconds: 3 * 600 + 1800,
                alarms: vec!["a".into()]
            },
            "two steps and the termination wait, 600 s each by default, and 30 minutes to provision"
        );
        let linear = |size: serde_json::Value, bake: i32, instances| {
            let g = guard(
                serde_json::json!({"strategy": "Linear", "linearStepSize": size, "bakeSeconds": bake}),
                instances,
            );
            (g.traffic, g.timeout_seconds)
        };
        assert_eq!(
            linear(serde_json::json!({"type": "CapacityPercent", "value": 25}), 300, 4),
            (Traffic::Linear(Capacity::Percent(25)), 5 * 300 + 1800)
        );
        assert_eq!(
            linear(serde_json::json!({"type": "InstanceCount", "value": 3}), 100, 10),
            (Traffic::Linear(Capacity::Instances(3)), 5 * 100 + 1800),
            "four steps of 3 of 10 instances"
        );
        assert_eq!(
            linear(serde_json::json!({"type": "CapacityPercent", "value": 10}), 3600, 10).1,
            28_800,
            "never above AWS's 8 hours"
        );
        let at_once = guard(serde_json::json!({"bakeSeconds": 0}), 1);
        assert_eq!((at_once.traffic, at_once.timeout_seconds), (Traffic::AllAtOnce, 1800));
    }

    #[test]
    fn local_nvme_types_are_recognised() {
        for t in [
            "ml.dl1.24xlarge",
            "ml.p5en.48xlarge",
            "ml.c6gd.large",
            "ml.g4dn.xlarge",
            "ml.g5.2xlarge",
            "ml.trn2.48xlarge",
            "ml.m5d.large",
            "ml.c5d.xlarge",
            "ml.r5d.large",
            "ml.r7gd.large",
            "ml.p4d.24xlarge",
        ] {
            assert!(local_nvme(t), "{t}");
        }
        for t in ["ml.m5.large", "ml.c5.xlarge", "ml.m6g.large", "ml.t2.medium", "ml.inf1.xlarge", "ml.inf2.xlarge"] {
            assert!(!local_nvme(t), "{t}");
        }
    }
}
