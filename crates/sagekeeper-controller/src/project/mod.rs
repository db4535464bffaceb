//! MLOpsProject reconciler: resolve the environment (Ready, its outputs) and the dev account;
//! plan the model package group with its policy for the target accounts, the template's
//! assets, the pipeline (its definition checked before any AWS call) and a run per trigger
//! (definition change, new runRequest, recorded in status and on the execution itself so a
//! crash never starts a second); run the graph; fold the results. A converged project between
//! drift checks only polls: the running execution and the registry, one call each. Deletion
//! waits while deployments name the project.

mod plan;
mod run;
mod status;
mod teardown;

use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use sagekeeper_api::conditions::{self, Component, ComponentState, Outcome, Reason};
use sagekeeper_api::naming::{EnvironmentNames, ProjectNames};
use sagekeeper_api::{DataScienceEnvironment, MLOpsProject, MLOpsProjectStatus};
use sagekeeper_aws::Session;
use sagekeeper_aws::steps::Changes;
use sagekeeper_policy::pipeline;

use crate::context::Context;
use crate::lifecycle::{
    Cleanup, EventReason, Kind, Report, Retry, change_notes, namespaced_kind, publish, status_fields,
};
use crate::resolve::{self, Unresolved, project_users, unless_in_use};
use crate::run::Error;
use crate::steps::{Done, Ran};
use plan::ProjectStep;

impl Kind for MLOpsProject {
    type Status = MLOpsProjectStatus;

    namespaced_kind!();
    status_fields!();

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let previous = self.status.clone().unwrap_or_default();
        let uid = self.meta().uid.clone().unwrap_or_default();
        let (env, account, session) = match resolve_environment(self, ctx).await {
            Ok(resolved) => resolved,
            Err(unresolved) => {
                let outcome = unresolved.outcome()?;
                ctx.forget_check(&uid);
                let mut report = Report::new(previous, outcome.clone());
                report.components = vec![ComponentState { component: Component::Environment, outcome }];
                return Ok(report);
            }
        };
        let plan = match plan::plan(self, &env) {
            Ok(plan) => plan,
            Err(outcome) => {
                ctx.forget_check(&uid);
                let mut report = Report::new(previous, outcome.clone());
                report.components =
                    vec![environment_ready(&env), ComponentState { component: Component::Pipeline, outcome }];
                return Ok(report);
            }
        };
        let fingerprint = plan::fingerprint(self, &env);
        let light = ctx.recently_checked(&uid, fingerprint)
            && conditions::is_ready(&previous.conditions, self.meta().generation)
            && previous.pipeline_definition_hash.as_deref() == Some(plan.hash.as_str())
            && plan.trigger.is_none();
        let changes = Changes::default();
        let results = run::run(ctx, &plan, &account, &session, light, &changes).await;
        let folded = status::fold(&plan, &previous, &results);
        if folded.outcome.is_ready() {
            if !light {
                ctx.checked(&uid, fingerprint);
            }
        } else {
            ctx.forget_check(&uid);
        }
        let mut report = Report::new(folded.status, folded.outcome);
        report.retry = folded.retry.unwrap_or(Retry::After(ctx.settings.poll_interval));
        report.failure = folded.failure;
        report.components = folded.components;
        report.notes = folded.notes;
        report.notes.extend(change_notes(&changes.take(), false));
        // Removed tag keys are forgotten only once a full pass took them off everything.
        let mut tag_keys: std::collections::BTreeSet<String> = env.spec.tags.keys().cloned().collect();
        if light || !report.outcome.is_ready() {
            tag_keys.extend(report.status.tag_keys.iter().cloned());
        }
        report.status.tag_keys = tag_keys.into_iter().collect();
        report.components.insert(0, environment_ready(&env));
        report.extra = status::last_run(report.status.last_execution.as_ref()).into_iter().collect();
        Ok(report)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let status = self.status.clone().unwrap_or_default();
        let namespace = self.namespace().unwrap_or_default();
        let users = project_users(ctx, &namespace, &self.name_any()).await?;
        if !users.is_empty() {
            return Ok(unless_in_use(&users, status));
        }
        ctx.forget_check(&self.meta().uid.clone().unwrap_or_default());
        let env_name = &self.spec.environment;
        let waiting = |message: String| {
            Ok(Cleanup::Wait(Report::new(status.clone(), Outcome::progressing(Reason::DependencyNotReady, message))))
        };
        let Some(env) = resolve::fetch::<DataScienceEnvironment>(ctx, Some(&namespace), env_name).await? else {
            return waiting(format!(
                "DataScienceEnvironment {env_name} not found: cannot clean up in its account; set deletionPolicy: Retain to release"
            ));
        };
        let Some(account) = ctx.stores.accounts.get(&kube::runtime::reflector::ObjectRef::new(&env.spec.account))
        else {
            return waiting(format!("AwsAccount {} not found: cannot clean up there", env.spec.account));
        };
        let session = ctx.sessions.session(&resolve::access_of(&account, Some(&env.spec.region)));
        let names = ProjectNames::new(&namespace, &self.name_any());
        let data_bucket = env.status.as_ref().and_then(|s| s.storage.as_ref()).and_then(|s| s.data_bucket.clone());
        let down = teardown::Teardown {
            owner: plan::owner(self, &env),
            pipeline: names.pipeline(&EnvironmentNames::new(&namespace, env_name)),
            group: ProjectNames::group(self),
            assets: data_bucket
                .filter(|_| self.spec.pipeline.definition.is_none())
                .map(|bucket| (bucket, format!("{}{}", names.prefix(), pipeline::ASSETS))),
            delete_versions: self.spec.delete_data_on_delete,
        };
        let changes = Changes::default();
        let results = teardown::run(ctx, &down, &account.spec.account_id, &session, &changes).await;
        let folded = crate::fold::deletion(&results);
        if let Some(outcome) = folded.outcome {
            let report = Report { retry: folded.retry, failure: folded.failure, ..Report::new(status, outcome) };
            return Ok(Cleanup::Wait(report));
        }
        if let Some(Ran::Done(Done::Ready(versions @ 1..))) = results.get(&ProjectStep::Group) {
            let group = &down.group;
            let note = format!(
                "model package group {group} kept with its {versions} registered version(s) (deleteDataOnDelete is false)"
            );
            publish(ctx, self, EventType::Warning, EventReason::DataRetained.as_str(), &note).await;
        }
        Ok(Cleanup::Done)
    }
}

/// The environment, Ready, its dev account's id and a session there; or why not.
async fn resolve_environment(
    project: &MLOpsProject,
    ctx: &Context,
) -> Result<(DataScienceEnvironment, String, std::sync::Arc<Session>), Unresolved> {
    let namespace = project.namespace().unwrap_or_default();
    let name = &project.spec.environment;
    let Some(env) = resolve::fetch::<DataScienceEnvironment>(ctx, Some(&namespace), name).await? else {
        let why = format!("DataScienceEnvironment {name} not found");
        return Err(Outcome::progressing(Reason::DependencyNotReady, why).into());
    };
    let list = env.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    resolve::ready("DataScienceEnvironment", name, list, env.meta().generation)?;
    let labels = resolve::namespace_labels(ctx, &namespace).await?;
    let account = resolve::account(ctx, &env.spec.account, &namespace, &labels, Some(&env.spec.region)).await?;
    let session = ctx.sessions.session(&resolve::access_of(&account, Some(&env.spec.region)));
    Ok((env, account.spec.account_id.clone(), session))
}

fn environment_ready(env: &DataScienceEnvironment) -> ComponentState {
    let message = format!("DataScienceEnvironment {} is Ready", env.name_any());
    ComponentState { component: Component::Environment, outcome: Outcome::Ready { message } }
}

/// The model package group the project owns, with its ARN: only once sagekeeper created it or
/// found it carrying the project's owner tags (status names its ARN), and only under the name the
/// project uses. A name in a spec alone never counts: any tenant can write any name there.
pub(crate) fn owned_group(project: &MLOpsProject) -> Option<(String, String)> {
    let status = project.status.as_ref()?;
    let (name, arn) = (status.model_package_group_name.clone()?, status.model_package_group_arn.clone()?);
    let suffix = format!(":model-package-group/{}", name.to_lowercase());
    (name == ProjectNames::group(project) && arn.to_lowercase().ends_with(&suffix)).then_some((name, arn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(spec_group: Option<&str>, pinned: Option<&str>, arn: Option<&str>) -> MLOpsProject {
        let mut p: MLOpsProject = serde_json::from_value(serde_json::json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "MLOpsProject",
            "metadata": {"name": "churn", "namespace": "team-b"},
            "spec": {"environment": "fraud", "modelPackageGroupName": spec_group},
        }))
        .expect("a project");
        p.status = Some(MLOpsProjectStatus {
            model_package_group_name: pinned.map(str::to_owned),
            model_package_group_arn: arn.map(str::to_owned),
            ..Default::default()
        });
        p
    }

    const ARN: &str = "arn:aws:sagemaker:us-east-1:111111111111:model-package-group/team-a-churn";

    #[test]
    fn a_group_counts_as_owned_only_with_its_arn_pinned_under_the_name_the_project_uses() {
        let owned = project(Some("team-a-churn"), Some("team-a-churn"), Some(ARN));
        assert_eq!(owned_group(&owned), Some(("team-a-churn".into(), ARN.into())));
        // Named in the spec, pinned, but never created or verified (NameConflict): not owned.
        assert_eq!(owned_group(&project(Some("team-a-churn"), Some("team-a-churn"), None)), None);
        // An ARN of another group than the one the project uses.
        assert_eq!(owned_group(&project(Some("team-b-churn"), Some("team-b-churn"), Some(ARN))), None);
        // Nothing pinned yet.
        let mut fresh = project(None, None, None);
        fresh.status = None;
        assert_eq!(owned_group(&fresh), None);
    }
}
