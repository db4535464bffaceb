//! MLOpsProject reconciler: resolve the environment (Ready, its outputs) and the dev account;
//! check the pipeline definition before any AWS call; converge the model package group with
//! its policy for the target accounts, the template's assets and the pipeline; start a run once
//! per trigger (definition change, new runRequest), recorded in status and on the execution
//! itself so a crash never starts a second; follow the latest run and the registry. A converged
//! project between drift checks only polls: the running execution and the registry, one call
//! each. Deletion waits while deployments name the project.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use sagekeeper_api::conditions::{self, Component, ComponentState, Extra, Outcome, Reason};
use sagekeeper_api::naming::{EnvironmentNames, OWNER_TAG, OWNER_UID_TAG, ProjectNames};
use sagekeeper_api::project::{ExecutionStatus, ModelApproval, ModelPackageRef};
use sagekeeper_api::{DataScienceEnvironment, MLOpsProject, MLOpsProjectStatus};
use sagekeeper_aws::project::{self as aws, Execution, GroupTeardown, PipelinePlan, Version};
use sagekeeper_aws::steps::{Changes, Owner, Step};
use sagekeeper_aws::{AccountAccess, AwsError, Session};
use sagekeeper_policy::iam::REGISTRY_TAG_KEY;
use sagekeeper_policy::pipeline::{self, ABALONE_ASSETS, JobSettings, Violation};

use crate::context::Context;
use crate::lifecycle::{
    Cleanup, EventReason, Kind, Note, Report, Retry, change_notes, namespaced_kind, publish, status_fields,
};
use crate::resolve::{self, project_users, unless_in_use};
use crate::run::Error;

/// The condition that reports the latest run.
const LAST_RUN: &str = "LastRunSucceeded";

impl Kind for MLOpsProject {
    type Status = MLOpsProjectStatus;

    namespaced_kind!();
    status_fields!();

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let status = self.status.clone().unwrap_or_default();
        let uid = self.meta().uid.clone().unwrap_or_default();
        let (env, session) = match resolve_environment(self, ctx).await? {
            Ok(resolved) => resolved,
            Err(outcome) => {
                ctx.forget_check(&uid);
                let mut report = Report::new(status, outcome.clone());
                report.components = vec![ComponentState { component: Component::Environment, outcome }];
                return Ok(report);
            }
        };
        let plan = match plan(self, &env) {
            Ok(plan) => plan,
            Err(outcome) => {
                ctx.forget_check(&uid);
                let mut report = Report::new(status, outcome.clone());
                report.components =
                    vec![environment_ready(&env), ComponentState { component: Component::Pipeline, outcome }];
                return Ok(report);
            }
        };
        let fingerprint = fingerprint(self, &env);
        let light = ctx.recently_checked(&uid, fingerprint)
            && conditions::is_ready(&status.conditions, self.meta().generation)
            && status.pipeline_definition_hash.as_deref() == Some(plan.hash.as_str())
            && plan.trigger(&status).is_none();
        let mut report =
            if light { poll(ctx, &plan, &session, status).await } else { converge(ctx, &plan, &session, status).await };
        if report.outcome.is_ready() {
            if !light {
                ctx.checked(&uid, fingerprint);
            }
        } else {
            ctx.forget_check(&uid);
        }
        // Removed tag keys are forgotten only once a full pass took them off everything.
        let mut tag_keys: std::collections::BTreeSet<String> = env.spec.tags.keys().cloned().collect();
        if light || !report.outcome.is_ready() {
            tag_keys.extend(report.status.tag_keys.iter().cloned());
        }
        report.status.tag_keys = tag_keys.into_iter().collect();
        report.components.insert(0, environment_ready(&env));
        report.extra = last_run(report.status.last_execution.as_ref()).into_iter().collect();
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
        let session = ctx.sessions.session(&access(&account, &env.spec.region));
        let names = ProjectNames::new(&namespace, &self.name_any());
        let owner = owner(self, &env);
        let group = ProjectNames::group(self);
        let pipeline_name = names.pipeline(&EnvironmentNames::new(&namespace, env_name));
        let changes = Changes::default();
        let fail = |e: AwsError, resource: String| {
            let remedy = "sagekeeper retries; fix the cause or set deletionPolicy: Retain to release it";
            Ok(Cleanup::Wait(resolve::aws_failure(status.clone(), Component::Deletion, &e, &resource, remedy)))
        };
        match aws::delete_pipeline(session.sagemaker(), &owner, &pipeline_name, &changes).await {
            Ok(Step::Ready(())) => {}
            Ok(Step::Pending(why)) => {
                let outcome = Outcome::progressing(Reason::Pending(Component::Deletion), why);
                return Ok(Cleanup::Wait(Report::new(status, outcome)));
            }
            Err(e) => return fail(e, format!("pipeline {pipeline_name}")),
        }
        if self.spec.pipeline.definition.is_none()
            && let Some(bucket) =
                env.status.as_ref().and_then(|s| s.storage.as_ref()).and_then(|s| s.data_bucket.clone())
        {
            let prefix = format!("{}{}", names.prefix(), pipeline::ASSETS);
            if let Err(e) = aws::delete_assets(session.s3(), &bucket, &prefix).await {
                return fail(e, format!("s3://{bucket}/{prefix}"));
            }
        }
        match aws::delete_group(session.sagemaker(), &owner, &group, self.spec.delete_data_on_delete, &changes).await {
            Ok(GroupTeardown::Deleted) => {}
            Ok(GroupTeardown::Kept(versions)) => {
                let note = format!(
                    "model package group {group} kept with its {versions} registered version(s) (deleteDataOnDelete is false)"
                );
                publish(ctx, self, EventType::Warning, EventReason::DataRetained.as_str(), &note).await;
            }
            Err(e) => return fail(e, format!("model package group {group}")),
        }
        Ok(Cleanup::Done)
    }
}

/// The environment, Ready, and a session in its dev account; or why not.
async fn resolve_environment(
    project: &MLOpsProject,
    ctx: &Context,
) -> Result<Result<(DataScienceEnvironment, std::sync::Arc<Session>), Outcome>, Error> {
    let namespace = project.namespace().unwrap_or_default();
    let name = &project.spec.environment;
    let Some(env) = resolve::fetch::<DataScienceEnvironment>(ctx, Some(&namespace), name).await? else {
        return Ok(Err(Outcome::progressing(
            Reason::DependencyNotReady,
            format!("DataScienceEnvironment {name} not found"),
        )));
    };
    let list = env.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    if let Err(outcome) = resolve::ready("DataScienceEnvironment", name, list, env.meta().generation) {
        return Ok(Err(outcome));
    }
    let labels = resolve::namespace_labels(ctx, &namespace).await?;
    let account = match resolve::account(ctx, &env.spec.account, &namespace, &labels, Some(&env.spec.region)).await? {
        Ok(account) => account,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let session = ctx.sessions.session(&access(&account, &env.spec.region));
    Ok(Ok((env, session)))
}

fn access(account: &sagekeeper_api::AwsAccount, region: &str) -> AccountAccess {
    AccountAccess {
        role_arn: account.spec.role_arn.clone(),
        external_id: account.spec.external_id.clone(),
        region: Some(region.to_owned()),
    }
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

fn owner(project: &MLOpsProject, env: &DataScienceEnvironment) -> Owner {
    let names = ProjectNames::new(&project.namespace().unwrap_or_default(), &project.name_any());
    let mut base_tags: BTreeMap<String, String> = env.spec.tags.clone();
    base_tags.insert(OWNER_TAG.into(), names.owner());
    base_tags.insert(OWNER_UID_TAG.into(), project.meta().uid.clone().unwrap_or_default());
    // The environment's roles are granted the groups (and versions) carrying its uid here.
    base_tags.insert(REGISTRY_TAG_KEY.into(), env.metadata.uid.clone().unwrap_or_default());
    // User tag keys applied before and no longer in the environment's spec.tags.
    let applied = project.status.as_ref().map(|s| s.tag_keys.clone()).unwrap_or_default();
    let removed_tags = applied.into_iter().filter(|k| !env.spec.tags.contains_key(k)).collect();
    Owner { uid: project.meta().uid.clone().unwrap_or_default(), base_tags, removed_tags }
}

/// Everything one pass needs, derived from the project and its environment's status.
struct Plan {
    owner: Owner,
    group: String,
    pipeline: PipelinePlan,
    hash: String,
    settings: JobSettings,
    /// The target accounts' deployer and model execution roles, which the registry is shared with.
    registry_readers: Vec<String>,
    template: bool,
    run_on_change: bool,
    run_request: Option<String>,
}

impl Plan {
    /// The run the project owes, as the description its execution carries; `None` when every
    /// trigger was acted on.
    fn trigger(&self, status: &MLOpsProjectStatus) -> Option<String> {
        let mut parts = Vec::new();
        if self.run_on_change && status.last_run_definition_hash.as_deref() != Some(self.hash.as_str()) {
            parts.push(format!("definition {}", self.hash));
        }
        if let Some(request) = self.run_request.as_ref().filter(|r| status.last_run_request.as_ref() != Some(*r)) {
            parts.push(format!("runRequest {request}"));
        }
        (!parts.is_empty()).then(|| format!("sagekeeper: {}", parts.join(", ")))
    }
}

fn plan(project: &MLOpsProject, env: &DataScienceEnvironment) -> Result<Plan, Outcome> {
    let namespace = project.namespace().unwrap_or_default();
    let env_name = env.name_any();
    let missing = |what: &str| {
        Outcome::progressing(
            Reason::DependencyNotReady,
            format!("DataScienceEnvironment {env_name} does not report its {what} yet"),
        )
    };
    let s = env.status.as_ref().ok_or_else(|| missing("status"))?;
    let network = s.network.as_ref().ok_or_else(|| missing("network"))?;
    let keys = s.encryption.as_ref().ok_or_else(|| missing("keys"))?;
    let identity = s.identity.as_ref().ok_or_else(|| missing("roles"))?;
    let storage = s.storage.as_ref().ok_or_else(|| missing("buckets"))?;
    let group = ProjectNames::group(project);
    let names = ProjectNames::new(&namespace, &project.name_any());
    let pipeline_role = identity.pipeline_role_arn.clone().ok_or_else(|| missing("pipeline role"))?;
    let partition = pipeline_role.split(':').nth(1).unwrap_or("aws").to_owned();
    let settings = JobSettings {
        partition,
        region: env.spec.region.clone(),
        subnets: network.private_subnet_ids.clone(),
        security_group: network
            .security_group_ids
            .get("workloads")
            .cloned()
            .ok_or_else(|| missing("workloads group"))?,
        volume_key: keys.ebs_key_arn.clone().ok_or_else(|| missing("ebs key"))?,
        output_key: keys.s3_key_arn.clone().ok_or_else(|| missing("s3 key"))?,
        job_role: identity.execution_role_arn.clone().ok_or_else(|| missing("execution role"))?,
        data_bucket: storage.data_bucket.clone().ok_or_else(|| missing("data bucket"))?,
        models_bucket: storage.models_bucket.clone().ok_or_else(|| missing("models bucket"))?,
        prefix: names.prefix(),
        model_package_group: group.clone(),
        approval_status: match project.spec.model_approval {
            ModelApproval::Manual => "PendingManualApproval".into(),
            ModelApproval::Automatic => "Approved".into(),
        },
        registry_tag: env.metadata.uid.clone().ok_or_else(|| missing("uid"))?,
    };
    let spec = &project.spec.pipeline;
    let template = spec.definition.is_none();
    let generated = if template {
        Some(pipeline::abalone(&settings).ok_or_else(|| {
            Outcome::stalled(
                Reason::InvalidConfiguration,
                format!(
                    "spec.pipeline.template: sagekeeper knows no official XGBoost image registry for region {}; give spec.pipeline.definition instead",
                    env.spec.region
                ),
            )
        })?)
    } else {
        None
    };
    let definition = pipeline::effective(spec.definition.as_deref(), generated, &spec.parameters, &settings).map_err(
        |violation| match violation {
            Violation::StepNotAllowed(m) => Outcome::stalled(Reason::StepNotAllowed, m),
            Violation::Invalid(m) => Outcome::stalled(Reason::InvalidConfiguration, m),
        },
    )?;
    let hash = pipeline::hash(&definition);
    let owner = owner(project, env);
    Ok(Plan {
        pipeline: PipelinePlan {
            owner: owner.clone(),
            name: names.pipeline(&EnvironmentNames::new(&namespace, &env_name)),
            role_arn: pipeline_role,
            definition,
        },
        owner,
        hash,
        settings,
        registry_readers: s
            .target_accounts
            .iter()
            .flat_map(|t| [t.deployer_arn.clone(), t.model_execution_role_arn.clone()])
            .flatten()
            .collect(),
        group,
        template,
        run_on_change: spec.run_on_change,
        run_request: spec.run_request.clone().filter(|r| !r.is_empty()),
    })
}

/// What the environment looked like at a full check: a change to it or to the project's spec
/// calls for another full check.
fn fingerprint(project: &MLOpsProject, env: &DataScienceEnvironment) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    project.meta().generation.hash(&mut hasher);
    env.meta().generation.hash(&mut hasher);
    serde_json::to_string(
        &env.status.as_ref().map(|s| (&s.network, &s.encryption, &s.identity, &s.storage, &s.target_accounts)),
    )
    .unwrap_or_default()
    .hash(&mut hasher);
    hasher.finish()
}

/// A poll that failed on `resource`: reported, and tried again (throttling backs off).
fn retrying(
    status: MLOpsProjectStatus,
    component: Component,
    e: &AwsError,
    resource: &str,
) -> Report<MLOpsProjectStatus> {
    resolve::aws_failure(status, component, e, resource, "sagekeeper retries")
}

/// A full pass: registry, assets, pipeline, runs, registry versions.
async fn converge(
    ctx: &Context,
    plan: &Plan,
    session: &Session,
    mut status: MLOpsProjectStatus,
) -> Report<MLOpsProjectStatus> {
    let sm = session.sagemaker();
    let changes = Changes::default();
    let failed = |status: MLOpsProjectStatus, component, e: &AwsError, resource: &str, remedy: &str| {
        let mut report = resolve::aws_failure(status, component, e, resource, remedy);
        report.components = vec![ComponentState { component, outcome: report.outcome.clone() }];
        report
    };
    status.model_package_group_name = Some(plan.group.clone());
    let readers = &plan.registry_readers;
    let group = match aws::ensure_group(
        sm,
        &plan.owner,
        &plan.group,
        |arn| sagekeeper_policy::registry::group_policy(arn, readers),
        &changes,
    )
    .await
    {
        Ok(Step::Ready(arn)) => arn,
        Ok(Step::Pending(why)) => return pending(status, Component::Registry, why, &changes),
        Err(e) => {
            if e.code == "NameConflict" {
                // Someone else's group: the project owns nothing, so its environment grants nothing.
                status.model_package_group_arn = None;
            }
            let remedy = "check sagekeeper's SageMaker permissions in the environment's account, or choose another spec.modelPackageGroupName";
            return failed(status, Component::Registry, &e, &format!("model package group {}", plan.group), remedy);
        }
    };
    status.model_package_group_arn = Some(group);
    let registry = registry_ready(plan);
    if plan.template {
        let assets: Vec<(String, &'static [u8])> =
            ABALONE_ASSETS.iter().map(|a| (a.path().trim_start_matches(pipeline::ASSETS).to_owned(), a.body)).collect();
        let prefix = format!("{}{}", plan.settings.prefix, pipeline::ASSETS);
        let bucket = &plan.settings.data_bucket;
        if let Err(e) =
            aws::ensure_assets(session.s3(), bucket, &prefix, &assets, &plan.settings.output_key, &changes).await
        {
            let remedy = "check sagekeeper's access to the environment's data bucket";
            let mut report = failed(status, Component::Pipeline, &e, &format!("s3://{bucket}/{prefix}"), remedy);
            report.components.insert(0, registry);
            return report;
        }
    }
    match aws::ensure_pipeline(sm, &plan.pipeline, &changes).await {
        Ok(Step::Ready(arn)) => status.pipeline_arn = Some(arn),
        Ok(Step::Pending(why)) => {
            let mut report = pending(status, Component::Pipeline, why, &changes);
            report.components.insert(0, registry);
            return report;
        }
        Err(e) => {
            let remedy = "fix spec.pipeline (SageMaker refused the definition) or sagekeeper's SageMaker permissions";
            let mut report =
                failed(status, Component::Pipeline, &e, &format!("pipeline {}", plan.pipeline.name), remedy);
            report.components.insert(0, registry);
            return report;
        }
    }
    status.pipeline_definition_hash = Some(plan.hash.clone());
    if let Some(trigger) = plan.trigger(&status) {
        match aws::start_run(sm, &plan.owner, &plan.pipeline.name, &trigger, &changes).await {
            Ok((arn, _)) => {
                if plan.run_on_change {
                    status.last_run_definition_hash = Some(plan.hash.clone());
                }
                if plan.run_request.is_some() {
                    status.last_run_request = plan.run_request.clone();
                }
                status.last_execution =
                    Some(ExecutionStatus { arn, status: "Executing".into(), ..ExecutionStatus::default() });
            }
            Err(e) => {
                let mut report = failed(
                    status,
                    Component::Pipeline,
                    &e,
                    &format!("pipeline {}", plan.pipeline.name),
                    "sagekeeper retries",
                );
                report.components.insert(0, registry);
                return report;
            }
        }
    }
    let mut report = poll(ctx, plan, session, status).await;
    report.notes.extend(change_notes(&changes.take(), false));
    report
}

/// A light pass: the running execution and the registry, one call each.
async fn poll(
    ctx: &Context,
    plan: &Plan,
    session: &Session,
    mut status: MLOpsProjectStatus,
) -> Report<MLOpsProjectStatus> {
    let sm = session.sagemaker();
    let mut notes = Vec::new();
    if let Some(last) = status.last_execution.clone().filter(|e| matches!(e.status.as_str(), "Executing" | "Stopping"))
    {
        let run = match aws::describe_run(sm, &last.arn).await {
            Ok(run) => run,
            Err(e) => return retrying(status, Component::Pipeline, &e, &format!("run {}", last.arn)),
        };
        if !run.running() {
            notes.push(run_note(&run));
        }
        status.last_execution = Some(execution_status(run));
    }
    let (latest, approved) = match aws::latest_versions(sm, &plan.group).await {
        Ok(versions) => versions,
        Err(e) => return retrying(status, Component::Registry, &e, &format!("model package group {}", plan.group)),
    };
    status.latest_model_package = latest.map(|v| package_ref(&v, true));
    status.latest_approved_model_package = approved.map(|v| package_ref(&v, false));
    let outcome = Outcome::Ready {
        message: format!("model package group {} and pipeline {} converged", plan.group, plan.pipeline.name),
    };
    let mut report = Report::new(status, outcome);
    report.components = vec![
        registry_ready(plan),
        ComponentState {
            component: Component::Pipeline,
            outcome: Outcome::Ready {
                message: format!("pipeline {} matches definition {}", plan.pipeline.name, plan.hash),
            },
        },
    ];
    report.notes = notes;
    report.retry = Retry::After(ctx.settings.poll_interval);
    report
}

fn registry_ready(plan: &Plan) -> ComponentState {
    let message = format!(
        "model package group {} shared read-only with {} role(s) of the target accounts",
        plan.group,
        plan.registry_readers.len()
    );
    ComponentState { component: Component::Registry, outcome: Outcome::Ready { message } }
}

fn pending(
    status: MLOpsProjectStatus,
    component: Component,
    why: String,
    changes: &Changes,
) -> Report<MLOpsProjectStatus> {
    let outcome = Outcome::progressing(Reason::Pending(component), why);
    let mut report = Report::new(status, outcome.clone());
    report.components = vec![ComponentState { component, outcome }];
    report.notes = change_notes(&changes.take(), false);
    report
}

fn run_note(run: &Execution) -> Note {
    let (type_, reason) = if run.status == "Succeeded" {
        (EventType::Normal, EventReason::RunSucceeded)
    } else {
        (EventType::Warning, EventReason::RunFailed)
    };
    let why = run.failure_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    Note { type_, reason, note: format!("pipeline run {} {}{why}", run.arn, run.status) }
}

fn execution_status(run: Execution) -> ExecutionStatus {
    ExecutionStatus {
        arn: run.arn,
        status: run.status,
        start_time: run.start_time,
        end_time: run.end_time,
        failure_reason: run.failure_reason,
    }
}

fn package_ref(version: &Version, with_status: bool) -> ModelPackageRef {
    ModelPackageRef {
        arn: version.arn.clone(),
        version: version.version,
        approval_status: with_status.then(|| version.approval_status.clone()),
    }
}

/// `LastRunSucceeded`, once there is a run: Unknown while it runs, True when it succeeded, False
/// with SageMaker's reason otherwise. A failed run does not make the project unready.
fn last_run(execution: Option<&ExecutionStatus>) -> Option<Extra> {
    let run = execution?;
    let (status, reason, message) = match run.status.as_str() {
        "Succeeded" => (Some(true), Reason::Converged, format!("run {} succeeded", run.arn)),
        "Executing" | "Stopping" => {
            (None, Reason::Pending(Component::Pipeline), format!("run {} is {}", run.arn, run.status))
        }
        other => (
            Some(false),
            Reason::Failed(Component::Pipeline),
            format!(
                "run {} {other}{}",
                run.arn,
                run.failure_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            ),
        ),
    };
    Some(Extra { type_: LAST_RUN, status, reason, message })
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
