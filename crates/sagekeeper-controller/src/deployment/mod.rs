//! ModelDeployment reconciler: resolve the project, its environment and every stage's accounts;
//! plan the deployment as a graph (`plan`): the project's registry read once (the newest
//! hundred versions with their approval), each stage's promotion gate (`gate`) after the stage
//! before it, each account's model, endpoint config and endpoint (`sagemaker_endpoint`:
//! blue/green, a new version or setting is a new model and config, and the endpoint is moved
//! with UpdateEndpoint), and the cleanup of accounts and stages that left the spec; run it;
//! fold the results into each stage's status (`status`). Deletion removes endpoints, configs and
//! models in every account, in that order.

mod gate;
mod plan;
mod run;
mod sagemaker_endpoint;
mod status;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use sagekeeper_api::conditions::{self, Component, Outcome, Reason};
use sagekeeper_api::deployment::Stage;
use sagekeeper_api::naming::{DeploymentNames, EnvironmentNames};
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment, ModelDeploymentStatus};
use sagekeeper_aws::steps::Changes;

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Report, Retry, change_notes, namespaced_kind, status_fields};
use crate::resolve::{self, Unresolved};
use crate::run::Error;

impl Kind for ModelDeployment {
    type Status = ModelDeploymentStatus;

    namespaced_kind!();
    status_fields!();

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let status = self.status.clone().unwrap_or_default();
        let resolved = match resolve_all(self, ctx).await {
            Ok(resolved) => resolved,
            Err(unresolved) => return Ok(Report::new(status, unresolved.outcome()?)),
        };
        let env_names = EnvironmentNames::new(&self.namespace().unwrap_or_default(), &resolved.env.name_any());
        if let Some(message) = foreign_alarms(self, &env_names) {
            return Ok(Report::new(status, Outcome::stalled(Reason::InvalidConfiguration, message)));
        }
        // Only a group the project owns: a name alone could be another tenant's registry.
        let Some((group, group_arn)) = crate::project::owned_group(&resolved.project) else {
            let message =
                format!("MLOpsProject {} does not report a model package group it owns yet", self.spec.project);
            return Ok(Report::new(status, Outcome::progressing(Reason::DependencyNotReady, message)));
        };
        let find = |name: &str| ctx.stores.accounts.get(&ObjectRef::new(name));
        let plan = plan::plan(self, &resolved.env, &resolved.dev, &resolved.stages, (group, group_arn), find);
        let changes = Changes::default();
        let results = run::run(ctx, &plan, &changes).await;
        let was_ready = conditions::is_ready(&status.conditions, self.meta().generation);
        let (mut report, drift) = status::fold(&plan, &status, was_ready, &results, ctx.settings.poll_interval);
        report.notes.extend(change_notes(&changes.take(), drift));
        Ok(report)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let status = self.status.clone().unwrap_or_default();
        let namespace = self.namespace().unwrap_or_default();
        let waiting = |status, message: String| {
            Ok(Cleanup::Wait(Report::new(status, Outcome::progressing(Reason::DependencyNotReady, message))))
        };
        // A project is held while a deployment names it, and its environment while the project
        // exists: both are there unless removed with deletionPolicy Retain.
        let Some(project) = resolve::fetch::<MLOpsProject>(ctx, Some(&namespace), &self.spec.project).await? else {
            if status.stages.iter().all(|s| s.accounts.is_empty()) {
                return Ok(Cleanup::Done);
            }
            return waiting(status, format!("MLOpsProject {} not found: cannot tell the region", self.spec.project));
        };
        let env_name = &project.spec.environment;
        let Some(env) = resolve::fetch::<DataScienceEnvironment>(ctx, Some(&namespace), env_name).await? else {
            if status.stages.iter().all(|s| s.accounts.is_empty()) {
                return Ok(Cleanup::Done);
            }
            return waiting(status, format!("DataScienceEnvironment {env_name} not found: cannot tell the region"));
        };
        // Everything the status knows of; and what the spec would have made (a crash may have come
        // between a create and the status write), in accounts that admit this namespace.
        let known: BTreeSet<(String, String)> =
            status.stages.iter().flat_map(|s| s.accounts.iter().map(|a| (s.name.clone(), a.account.clone()))).collect();
        let labels = resolve::namespace_labels(ctx, &namespace).await?;
        let mut places: Vec<(String, Arc<AwsAccount>)> = Vec::new();
        let mut pending = Vec::new();
        // Tenancy is checked again: an account that stopped admitting the namespace is not
        // touched (deletion waits, or deletionPolicy: Retain releases the object).
        for (stage, name) in &known {
            match resolve::account_for_teardown(ctx, name, &namespace, &labels).await {
                Ok(account) => places.push((stage.clone(), account)),
                Err(unresolved) => {
                    pending.push(format!("cannot clean up stage {stage}: {}", unresolved.outcome()?.message()));
                }
            }
        }
        let env_stages = match env_stage_accounts(ctx, &env).await {
            Ok(stages) => stages,
            Err(unresolved) => return Ok(Cleanup::Wait(Report::new(status, unresolved.outcome()?))),
        };
        for stage in &self.spec.stages {
            let wanted = match stage_accounts(ctx, stage, &env_stages).await {
                Ok(wanted) => wanted,
                Err(unresolved) => return Ok(Cleanup::Wait(Report::new(status, unresolved.outcome()?))),
            };
            for name in wanted {
                if known.contains(&(stage.name.clone(), name.clone())) {
                    continue;
                }
                // An account that never admitted this namespace (or region) holds nothing of it;
                // one that is not Ready yet may, so deletion waits for it.
                let outcome = match resolve::account(ctx, &name, &namespace, &labels, Some(&env.spec.region)).await {
                    Ok(account) => {
                        places.push((stage.name.clone(), account));
                        continue;
                    }
                    Err(unresolved) => unresolved.outcome()?,
                };
                match outcome {
                    Outcome::Stalled { reason: Reason::AccountNotPermitted | Reason::InvalidConfiguration, .. } => {}
                    _ if ctx.stores.accounts.get(&ObjectRef::new(&name)).is_none() => {}
                    outcome => pending.push(format!(
                        "cannot clean up stage {} in AwsAccount {name} yet: {}",
                        stage.name,
                        outcome.message()
                    )),
                }
            }
        }
        let names = DeploymentNames::new(&namespace, &self.name_any());
        let env_names = EnvironmentNames::new(&namespace, env_name);
        let extras = |stage: &str, account: &str| {
            let recorded = status.stages.iter().filter(|s| s.name == stage).flat_map(|s| &s.accounts);
            let recorded = recorded.into_iter().find(|a| a.account == account);
            plan::Extras::of(recorded, self.spec.stages.iter().find(|s| s.name == stage))
        };
        let places: Vec<(String, plan::Place, plan::Extras)> = places
            .iter()
            .map(|(stage, account)| {
                let extras = extras(stage, &account.name_any());
                (stage.clone(), plan::Place::of(account, &env.spec.region), extras)
            })
            .collect();
        let changes = Changes::default();
        let results = run::teardown(ctx, (&names, &env_names), &plan::owner(self), &places, &changes).await;
        let notes = change_notes(&changes.take(), false);
        let folded = crate::fold::deletion(&results);
        let outcome = match (folded.outcome, pending.is_empty()) {
            (None, true) => return Ok(Cleanup::Done),
            (Some(outcome @ Outcome::Stalled { .. }), _) => outcome,
            (outcome, _) => {
                pending.extend(outcome.map(|o| o.message().to_owned()));
                Outcome::progressing(Reason::Pending(Component::Deletion), pending.join("; "))
            }
        };
        let mut report = Report { failure: folded.failure, ..Report::new(status, outcome) };
        report.retry = match folded.retry {
            Retry::Drift | Retry::Pending => Retry::After(Duration::from_secs(2)),
            retry => retry,
        };
        report.notes = notes;
        Ok(Cleanup::Wait(report))
    }
}

/// What a pass works from: the project, its environment (Ready), the dev account, and each
/// stage's accounts (permitted for the namespace and region).
struct Resolved {
    project: MLOpsProject,
    env: DataScienceEnvironment,
    dev: Arc<AwsAccount>,
    stages: Vec<Vec<Arc<AwsAccount>>>,
}

/// The project, its environment and every stage's accounts, checked in that order; the
/// project must be Ready too.
async fn resolve_all(d: &ModelDeployment, ctx: &Context) -> Result<Resolved, Unresolved> {
    let namespace = d.namespace().unwrap_or_default();
    let name = &d.spec.project;
    let Some(project) = resolve::fetch::<MLOpsProject>(ctx, Some(&namespace), name).await? else {
        return Err(Outcome::progressing(Reason::DependencyNotReady, format!("MLOpsProject {name} not found")).into());
    };
    let env_name = project.spec.environment.clone();
    let Some(env) = resolve::fetch::<DataScienceEnvironment>(ctx, Some(&namespace), &env_name).await? else {
        let message = format!("DataScienceEnvironment {env_name} (of MLOpsProject {name}) not found");
        return Err(Outcome::progressing(Reason::DependencyNotReady, message).into());
    };
    let labels = resolve::namespace_labels(ctx, &namespace).await?;
    let stages = check_stages(d, ctx, &env, &namespace, &labels).await?;
    let env_list = env.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    resolve::ready("DataScienceEnvironment", &env_name, env_list, env.meta().generation)?;
    let dev = resolve::account(ctx, &env.spec.account, &namespace, &labels, Some(&env.spec.region)).await?;
    let project_list = project.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    resolve::ready("MLOpsProject", name, project_list, project.meta().generation)?;
    Ok(Resolved { project, env, dev, stages })
}

/// The team's rollback alarms must carry the environment's resource prefix: the model roles
/// SageMaker checks them with may read only their environment's alarms.
fn foreign_alarms(d: &ModelDeployment, env: &EnvironmentNames) -> Option<String> {
    let prefix = &env.resource_prefix;
    let wrong: Vec<String> = (d.spec.stages.iter())
        .filter_map(|s| Some((s, s.rollout.as_ref()?)))
        .flat_map(|(s, r)| r.alarms.alarm_names.iter().filter(|n| !n.starts_with(prefix.as_str())).map(move |n| (s, n)))
        .map(|(s, n)| format!("spec.stages[{}].rollout.alarms.alarmNames: {n}", s.name))
        .collect();
    (!wrong.is_empty()).then(|| {
        format!(
            "{}: an alarm a rollout watches must be named {prefix}... (the resource prefix of its environment: only those may its model roles read)",
            wrong.join(", ")
        )
    })
}

/// The environment's accounts by stage: its targetAccounts and the members of its
/// targetAccountSets.
async fn env_stage_accounts(
    ctx: &Context,
    env: &DataScienceEnvironment,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, Unresolved> {
    Ok(resolve::stage_accounts(ctx, &env.spec.target_accounts, &env.spec.target_account_sets).await?.0)
}

/// The accounts of a stage: as the spec lists them (accounts, and the members of accountSets),
/// else all the environment has for it.
async fn stage_accounts(
    ctx: &Context,
    stage: &Stage,
    env_stages: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, Unresolved> {
    if stage.accounts.is_none() && stage.account_sets.is_none() {
        return Ok(env_stages.get(&stage.name).cloned().unwrap_or_default());
    }
    let mut wanted = stage.accounts.clone().unwrap_or_default();
    for set in stage.account_sets.iter().flatten() {
        for member in resolve::set_members(ctx, set).await?.accounts {
            if !wanted.contains(&member) {
                wanted.push(member);
            }
        }
    }
    Ok(wanted)
}

/// Every stage must be a stage of the environment, name only that stage's accounts, and each
/// account must admit the namespace. Returns each stage's accounts.
async fn check_stages(
    deployment: &ModelDeployment,
    ctx: &Context,
    environment: &DataScienceEnvironment,
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<Vec<Arc<AwsAccount>>>, Unresolved> {
    let env_name = environment.name_any();
    let targets = &env_stage_accounts(ctx, environment).await?;
    let mut out = Vec::new();
    for stage in &deployment.spec.stages {
        let Some(of_stage) = targets.get(&stage.name) else {
            let known: Vec<&str> = targets.keys().map(String::as_str).collect();
            return Err(Outcome::stalled(
                Reason::InvalidConfiguration,
                format!(
                    "spec.stages[{}]: not a stage of DataScienceEnvironment {env_name} (its spec.targetAccounts has: {})",
                    stage.name,
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            )
            .into());
        };
        let mut resolved = Vec::new();
        for account in &stage_accounts(ctx, stage, targets).await? {
            if !of_stage.contains(account) {
                return Err(Outcome::stalled(
                    Reason::InvalidConfiguration,
                    format!(
                        "spec.stages[{}]: AwsAccount {account} (of its accounts or accountSets) is not an account of stage {} in DataScienceEnvironment {env_name} (name the set in its spec.targetAccountSets)",
                        stage.name, stage.name
                    ),
                )
                .into());
            }
            resolved.push(resolve::account(ctx, account, namespace, labels, Some(&environment.spec.region)).await?);
        }
        out.push(resolved);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_alarm_without_the_environments_prefix_is_named() {
        let d: ModelDeployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "churn"},
            "spec": {"project": "churn", "stages": [{"name": "production", "instanceType": "ml.m5.large",
                "initialInstanceCount": 2, "rollout": {"alarms": {"alarmNames": ["fraud-", "other-team-errors"]}}}]}
        }))
        .unwrap();
        let env = EnvironmentNames::new("team-a", "fraud");
        let mut ok = d.clone();
        ok.spec.stages[0].rollout.as_mut().unwrap().alarms.alarm_names = vec![format!("{}errors", env.resource_prefix)];
        assert_eq!(foreign_alarms(&ok, &env), None);
        let message = foreign_alarms(&d, &env).unwrap();
        assert!(
            message.starts_with(
                "spec.stages[production].rollout.alarms.alarmNames: fraud-, spec.stages[production].rollout.alarms.alarmNames: other-team-errors: "
            ),
            "{message}"
        );
        assert!(message.contains(&env.resource_prefix), "{message}");
    }
}
