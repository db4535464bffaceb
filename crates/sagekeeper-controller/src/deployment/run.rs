//! Run: the work of each step of a deployment's graph, handed to the one runner.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use sagekeeper_api::deployment::StageAccountStatus;
use sagekeeper_api::naming::{DeploymentNames, EnvironmentNames};
use sagekeeper_aws::alarms::{self, Alarms};
use sagekeeper_aws::autoscaling::{self, ScalingPlan};
use sagekeeper_aws::registry::{self, Approval as Registered, Version};
use sagekeeper_aws::steps::{Changes, Owner};
use sagekeeper_aws::{AwsError, Session, Shared, Snapshot};

use super::gate::{self, Decision};
use super::plan::{DeployStep, Extras, Place, Plan};
use super::sagemaker_endpoint::{self, AccountState, Place as Target};
use super::status;
use crate::context::Context;
use crate::steps::{Done, Failure, Inputs, Lane, Results, Service, Step};

/// What a step of a deployment produces.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum DeployOutput {
    /// The registry's versions the pass decides from.
    Versions(Arc<Vec<Version>>),
    /// A stage's gate.
    Gate(Arc<Gated>),
    /// The rollback alarms of an account's endpoint (none once the stage has no rollout).
    Alarms(Arc<Alarms>),
    /// An account's endpoint and where it stands.
    Endpoint(Box<(StageAccountStatus, AccountState)>),
    /// The scalable target of an account's endpoint once the step ran (`None`: none of ours).
    Scaling(Option<String>),
    /// The stage has nothing to deploy (no version yet, or no package ARN), or a step had
    /// nothing to do this pass.
    Idle,
    /// A leaving account's endpoint, configs and models are gone.
    Removed,
}

/// What the gate decided for a stage, and what it was decided from.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Gated {
    pub(super) decision: Decision,
    /// The package ARN of the target version.
    pub(super) package_arn: Option<String>,
    /// Each earlier stage with what it has verified, this pass included.
    pub(super) earlier: Vec<(String, Vec<i64>)>,
}

/// Runs the deployment's graph once.
pub(super) async fn run(ctx: &Context, plan: &Plan, changes: &Changes) -> Results<DeployStep, DeployOutput> {
    let seen = Snapshot::default();
    let pass = Pass { ctx, plan, changes, seen: &seen };
    let steps = plan
        .graph()
        .into_iter()
        .map(|(id, needs, after)| {
            let lane = pass.lane(&id);
            let step = id.clone();
            Step::new(id, needs, lane, move |inputs| pass.ensure(step.clone(), inputs).boxed()).after(after)
        })
        .collect();
    let results = ctx.runner().run("ModelDeployment", steps, &BTreeMap::new()).await;
    ctx.metrics.observed("ModelDeployment", seen.reads());
    results
}

#[derive(Clone, Copy)]
struct Pass<'a> {
    ctx: &'a Context,
    plan: &'a Plan,
    changes: &'a Changes,
    /// What the pass has read of AWS so far.
    seen: &'a Snapshot,
}

impl Pass<'_> {
    fn lane(&self, id: &DeployStep) -> Lane {
        let account = match id {
            DeployStep::Registry | DeployStep::Gate(_) => &self.plan.dev.account_id,
            DeployStep::Alarms(n, name) | DeployStep::Endpoint(n, name) | DeployStep::Scaling(n, name) => {
                self.plan.stages[*n]
                    .accounts
                    .iter()
                    .find(|a| &a.place.name == name)
                    .map_or(name, |a| &a.place.account_id)
            }
            DeployStep::Remove(stage, name) => self
                .plan
                .leaving
                .iter()
                .find(|l| &l.stage == stage && &l.status.account == name)
                .and_then(|l| l.place.as_ref())
                .map_or(name, |p| &p.account_id),
        };
        let service = match id {
            DeployStep::Alarms(..) => Service::CloudWatch,
            DeployStep::Scaling(..) => Service::AutoScaling,
            _ => Service::SageMaker,
        };
        Lane::new(account, service)
    }

    fn session(&self, access: &sagekeeper_aws::AccountAccess) -> Arc<Session> {
        self.ctx.sessions.session(access)
    }

    async fn ensure(self, id: DeployStep, inputs: Inputs<DeployStep, DeployOutput>) -> Done<DeployOutput> {
        use DeployStep as S;
        let plan = self.plan;
        match &id {
            S::Registry => {
                let session = self.session(&plan.dev.access);
                let found = versions(plan, &session, self.seen, &self.ctx.shared).await;
                Done::from_aws(found.map(DeployOutput::Versions), format!("model package group {}", plan.group))
            }
            S::Gate(n) => {
                let Some(DeployOutput::Versions(versions)) = inputs.get(&S::Registry) else {
                    return Done::missing(&S::Registry);
                };
                let earlier = match n.checked_sub(1) {
                    None => Vec::new(),
                    Some(before) => {
                        let Some(DeployOutput::Gate(gated)) = inputs.get(&S::Gate(before)) else {
                            return Done::missing(&S::Gate(before));
                        };
                        let stage = &plan.stages[before];
                        let endpoint = |account: &str| inputs.get(&S::Endpoint(before, account.to_owned()));
                        let verified = status::verified(stage, gated, endpoint);
                        let mut earlier = gated.earlier.clone();
                        earlier.push((stage.stage.name.clone(), verified));
                        earlier
                    }
                };
                Done::Ready(DeployOutput::Gate(Arc::new(decide(plan, *n, versions, earlier))))
            }
            S::Alarms(n, name) => {
                let stage = &plan.stages[*n];
                let Some(account) = stage.accounts.iter().find(|a| &a.place.name == name) else {
                    return Done::missing(&id);
                };
                let session = self.session(&account.place.access);
                let (names, env, owner) = (&plan.names, &plan.env_names, &plan.owner);
                let known = account.before.as_ref().map(|b| b.rollback_alarms.as_slice()).unwrap_or_default();
                // While an update is in flight AWS watches the alarms it was given: they are
                // neither read again nor removed (a rollback names them), and the Endpoint step
                // reads them afresh before it starts another update.
                let in_flight = !known.is_empty()
                    && account.before.as_ref().is_some_and(|b| {
                        matches!(b.endpoint_status.as_deref(), Some("Creating" | "Updating" | "RollingBack"))
                    });
                let kept = match &stage.stage.rollout {
                    _ if in_flight => Ok(Alarms { names: known.to_vec(), missing: Vec::new(), checked: false }),
                    Some(rollout) => {
                        let ours = sagemaker_endpoint::alarm_plans(names, env, &stage.stage.name, &rollout.alarms);
                        let theirs = &rollout.alarms.alarm_names;
                        alarms::ensure(&session, owner, &ours, theirs, known, self.changes).await
                    }
                    None => {
                        let ours = sagemaker_endpoint::alarm_names(names, env, &stage.stage.name);
                        alarms::remove(&session, owner, &ours, self.changes).await.map(|()| Alarms::default())
                    }
                };
                let what = format!("the rollback alarms of endpoint {} in AwsAccount {name}", stage.endpoint);
                Done::from_aws(kept.map(|a| DeployOutput::Alarms(Arc::new(a))), what)
            }
            S::Endpoint(n, name) => {
                let Some(DeployOutput::Gate(gated)) = inputs.get(&S::Gate(*n)) else {
                    return Done::missing(&S::Gate(*n));
                };
                let stage = &plan.stages[*n];
                let Some(account) = stage.accounts.iter().find(|a| &a.place.name == name) else {
                    return Done::missing(&id);
                };
                let (Some(version), Some(package_arn)) = (gated.decision.target, gated.package_arn.as_deref()) else {
                    return Done::Ready(DeployOutput::Idle);
                };
                let prepared = match &account.prepared {
                    Ok(prepared) => prepared,
                    Err(why) => {
                        let kept = account
                            .before
                            .clone()
                            .unwrap_or(StageAccountStatus { account: name.clone(), ..Default::default() });
                        return Done::Ready(DeployOutput::Endpoint(Box::new((
                            kept,
                            AccountState::NotPrepared(why.clone()),
                        ))));
                    }
                };
                let target = Target {
                    names: &plan.names,
                    owner: &plan.owner,
                    stage: &stage.stage,
                    version,
                    package_arn,
                    prepared,
                    hold: gated.decision.hold.clone(),
                    alarms: match inputs.get(&S::Alarms(*n, name.clone())) {
                        Some(DeployOutput::Alarms(alarms)) => Some(alarms),
                        _ => None,
                    },
                };
                let session = self.session(&account.place.access);
                match sagemaker_endpoint::converge(&session, &target, account.before.as_ref(), self.changes).await {
                    Ok(endpoint) => Done::Ready(DeployOutput::Endpoint(Box::new(endpoint))),
                    Err((e, resource)) => Done::Failed(Failure::new(e, format!("{resource} in AwsAccount {name}"))),
                }
            }
            S::Scaling(n, name) => {
                let stage = &plan.stages[*n];
                let Some(account) = stage.accounts.iter().find(|a| &a.place.name == name) else {
                    return Done::missing(&id);
                };
                let Some(DeployOutput::Endpoint(endpoint)) = inputs.get(&S::Endpoint(*n, name.clone())) else {
                    return Done::Ready(DeployOutput::Idle);
                };
                let (status, state) = &**endpoint;
                let session = self.session(&account.place.access);
                let what = format!("the scalable target of endpoint {} in AwsAccount {name}", stage.endpoint);
                let scaled = match &stage.stage.autoscaling {
                    // Registered on an endpoint in service and not in transition (SageMaker
                    // refuses one that is): the wanted config, or the last good one after a
                    // failed update.
                    Some(scaling) if status.endpoint_status.as_deref() == Some("InService") && settled(state) => {
                        let plan = ScalingPlan {
                            endpoint: stage.endpoint.clone(),
                            min: scaling.min_instances,
                            max: scaling.max_instances,
                            target_invocations: scaling.target_invocations_per_instance,
                            scale_in_cooldown: scaling.scale_in_cooldown_seconds,
                            scale_out_cooldown: scaling.scale_out_cooldown_seconds,
                        };
                        let known = status.scaling_target.is_some();
                        autoscaling::ensure(&session, &self.plan.owner, &plan, known, self.changes)
                            .await
                            .map(|()| DeployOutput::Scaling(Some(autoscaling::resource_id(&stage.endpoint))))
                    }
                    Some(_) => Ok(DeployOutput::Idle),
                    None => autoscaling::deregister(&session, &self.plan.owner, &stage.endpoint, self.changes)
                        .await
                        .map(|()| DeployOutput::Scaling(None)),
                };
                Done::from_aws(scaled, what)
            }
            S::Remove(stage, name) => {
                let Some(place) = plan
                    .leaving
                    .iter()
                    .find(|l| &l.stage == stage && &l.status.account == name)
                    .and_then(|l| l.place.as_ref())
                else {
                    return Done::missing(&id);
                };
                let leaving = plan.leaving.iter().find(|l| &l.stage == stage && &l.status.account == name);
                let spec = plan.stages.iter().find(|s| &s.stage.name == stage).map(|s| &s.stage);
                let extras = Extras::of(leaving.map(|l| &l.status), spec);
                let names = (&plan.names, &plan.env_names);
                match remove(self.ctx, names, &plan.owner, (stage, extras), place, self.changes).await {
                    Done::Pending { why, retry_after } => {
                        Done::Pending { why: format!("removing: {why}"), retry_after }
                    }
                    done => done,
                }
            }
        }
    }
}

/// The endpoint serves something and nothing moves it now: serving the wanted config, or kept
/// after a failed one.
fn settled(state: &AccountState) -> bool {
    matches!(
        state,
        AccountState::Serving | AccountState::Failed(_) | AccountState::RolledBack(_) | AccountState::Held(_)
    )
}

/// Removes a stage's endpoint, configs and models in one account.
async fn remove(
    ctx: &Context,
    (names, env): (&DeploymentNames, &EnvironmentNames),
    owner: &Owner,
    (stage, extras): (&str, Extras),
    place: &Place,
    changes: &Changes,
) -> Done<DeployOutput> {
    let (endpoint, name) = (names.endpoint(stage), &place.name);
    let session = ctx.sessions.session(&place.access);
    let alarms = if extras.alarms { sagemaker_endpoint::alarm_names(names, env, stage) } else { Vec::new() };
    let removed = sagemaker_endpoint::teardown(&session, owner, &endpoint, (&alarms, extras.scaling), changes).await;
    match Done::from_step(removed, format!("endpoint {endpoint} in AwsAccount {name}")) {
        Done::Pending { why, .. } => {
            Done::Pending { why: format!("{why} in AwsAccount {name}"), retry_after: Some(Duration::from_secs(2)) }
        }
        done => done.map(|()| DeployOutput::Removed),
    }
}

/// Teardown: a stage's endpoint in each of `places`, side by side (nothing a deployment makes in
/// one account needs anything of another).
pub(super) async fn teardown(
    ctx: &Context,
    names: (&DeploymentNames, &EnvironmentNames),
    owner: &Owner,
    places: &[(String, Place, Extras)],
    changes: &Changes,
) -> Results<DeployStep, DeployOutput> {
    let steps = places
        .iter()
        .map(|(stage, place, extras)| {
            let id = DeployStep::Remove(stage.clone(), place.name.clone());
            Step::new(id, vec![], Lane::new(&place.account_id, Service::SageMaker), move |_| {
                async move { remove(ctx, names, owner, (stage, *extras), place, changes).await }.boxed()
            })
        })
        .collect();
    ctx.runner().run("ModelDeployment", steps, &BTreeMap::new()).await
}

/// The gate of stage `n`.
pub(super) fn decide(plan: &Plan, n: usize, versions: &[Version], earlier: Vec<(String, Vec<i64>)>) -> Gated {
    let stage = &plan.stages[n];
    let wanted = gate::resolve_model(&plan.model_version, versions, &plan.group).ok().map(|v| v.version);
    let decision = gate::decide(&gate::Input {
        index: n,
        stage: &stage.stage,
        wanted,
        following: plan.following(),
        serving: stage.previous.serving_version,
        earlier: &earlier,
        versions,
        group: &plan.group,
    });
    let package_arn = decision.target.map(|version| {
        versions
            .iter()
            .find(|v| v.version == version)
            .map_or_else(|| versioned_arn(&plan.group_arn, version), |v| v.arn.clone())
    });
    Gated { decision, package_arn, earlier }
}

/// The versions a pass decides from: the newest hundred (the project's last poll of them, or
/// one call), and in a registry with more,
/// the ones the deployment names that are older (the newest Approved one, a pinned
/// modelVersion, approvedVersions, what the stages serve), each looked up once.
async fn versions(
    plan: &Plan,
    session: &Session,
    seen: &Snapshot,
    shared: &Shared,
) -> Result<Arc<Vec<Version>>, AwsError> {
    let mut newest = registry::versions(session, seen, shared, &plan.group).await?;
    let missing = |versions: &[Version]| plan.named.iter().any(|n| !versions.iter().any(|v| v.version == *n));
    if newest.len() < registry::NEWEST && missing(&newest) {
        // The shared read may predate a version the deployment names: read the registry now.
        newest = registry::versions_now(session, shared, &plan.group).await?;
    }
    if newest.len() < registry::NEWEST {
        return Ok(newest);
    }
    let mut versions = newest.as_ref().clone();
    if plan.following() && !versions.iter().any(|v| v.approval_status == Registered::Approved) {
        versions.extend(registry::newest_approved(session, &plan.group).await?);
    }
    for number in &plan.named {
        if !versions.iter().any(|v| v.version == *number)
            && let Some(v) = registry::version(session, &versioned_arn(&plan.group_arn, *number)).await?
        {
            versions.push(v);
        }
    }
    Ok(Arc::new(versions))
}

/// `arn:...:model-package/<group>/<version>` from the group's ARN.
pub(super) fn versioned_arn(group_arn: &str, version: i64) -> String {
    format!("{}/{version}", group_arn.replacen(":model-package-group/", ":model-package/", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_versioned_arn_is_made_from_the_group_arn() {
        assert_eq!(
            versioned_arn("arn:aws:sagemaker:us-east-1:111111111111:model-package-group/team-churn", 4),
            "arn:aws:sagemaker:us-east-1:111111111111:model-package/team-churn/4"
        );
    }
}
