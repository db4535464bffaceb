//! ModelDeployment reconciler: resolve the project, its environment and every stage's accounts;
//! read the project's registry once (the newest hundred versions with their approval); walk the
//! stages in order through the promotion gate (`gate`); converge each account's model, endpoint
//! config and endpoint (`endpoint`: blue/green, a new version or setting is a new model and
//! config, and the endpoint is moved with UpdateEndpoint); report each stage in status. Accounts
//! and stages that leave the spec are cleaned up; deletion removes endpoints, configs and models
//! in every account, in that order.

mod gate;
mod sagemaker_endpoint;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use sagekeeper_api::conditions::{self, Component, ComponentState, Extra, Outcome, Reason};
use sagekeeper_api::deployment::{
    LATEST_APPROVED, ResolvedModelPackage, Stage, StageAccountStatus, StagePhase, StageStatus,
};
use sagekeeper_api::naming::{DeploymentNames, OWNER_TAG, OWNER_UID_TAG};
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment, ModelDeploymentStatus};
use sagekeeper_aws::registry::{self, Approval as Registered, Version};
use sagekeeper_aws::steps::{Changes, Owner, Step};
use sagekeeper_aws::{AccountAccess, AwsError};

use self::sagemaker_endpoint::{AccountState, Place, Prepared};
use crate::context::Context;
use crate::lifecycle::{Cleanup, EventReason, Kind, Note, Report, Retry, change_notes, namespaced_kind, status_fields};
use crate::resolve;
use crate::run::Error;

/// Versions a stage remembers as verified.
const VERIFIED_KEPT: usize = 10;
/// The longest wait between looks at an endpoint in transition.
const POLL_MAX: Duration = Duration::from_secs(30);

impl Kind for ModelDeployment {
    type Status = ModelDeploymentStatus;

    namespaced_kind!();
    status_fields!();

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let status = self.status.clone().unwrap_or_default();
        let resolved = match resolve_all(self, ctx).await? {
            Ok(resolved) => resolved,
            Err(outcome) => return Ok(Report::new(status, outcome)),
        };
        let project_list = resolved.project.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        if let Err(outcome) =
            resolve::ready("MLOpsProject", &self.spec.project, project_list, resolved.project.meta().generation)
        {
            return Ok(Report::new(status, outcome));
        }
        // Only a group the project owns: a name alone could be another tenant's registry.
        let Some((group, group_arn)) = crate::project::owned_group(&resolved.project) else {
            let message =
                format!("MLOpsProject {} does not report a model package group it owns yet", self.spec.project);
            return Ok(Report::new(status, Outcome::progressing(Reason::DependencyNotReady, message)));
        };
        let dev = ctx.sessions.session(&access(&resolved.dev, &resolved.region));
        let versions = match registry(self, &status, &dev, &group, Some(group_arn.as_str())).await {
            Ok(versions) => versions,
            Err(e) => {
                let remedy = "check sagekeeper's SageMaker permissions in the environment's account";
                let resource = format!("model package group {group}");
                return Ok(resolve::aws_failure(status, Component::Model, &e, &resource, remedy));
            }
        };
        Ok(converge(self, ctx, &resolved, &group, &versions, status).await)
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
            match resolve::account_for_teardown(ctx, name, &namespace, &labels).await? {
                Ok(account) => places.push((stage.clone(), account)),
                Err(outcome) => pending.push(format!("cannot clean up stage {stage}: {}", outcome.message())),
            }
        }
        for stage in &self.spec.stages {
            for name in stage_accounts(stage, &env) {
                if known.contains(&(stage.name.clone(), name.clone())) {
                    continue;
                }
                // An account that never admitted this namespace (or region) holds nothing of it;
                // one that is not Ready yet may, so deletion waits for it.
                match resolve::account(ctx, &name, &namespace, &labels, Some(&env.spec.region)).await? {
                    Ok(account) => places.push((stage.name.clone(), account)),
                    Err(Outcome::Stalled {
                        reason: Reason::AccountNotPermitted | Reason::InvalidConfiguration,
                        ..
                    }) => {}
                    Err(_) if ctx.stores.accounts.get(&ObjectRef::new(&name)).is_none() => {}
                    Err(outcome) => pending.push(format!(
                        "cannot clean up stage {} in AwsAccount {name} yet: {}",
                        stage.name,
                        outcome.message()
                    )),
                }
            }
        }
        let names = DeploymentNames::new(&namespace, &self.name_any());
        let owner = owner(self);
        let changes = Changes::default();
        let mut failure: Option<(AwsError, String)> = None;
        for (stage, account) in &places {
            let session = ctx.sessions.session(&access(account, &env.spec.region));
            let endpoint = names.endpoint(stage);
            match sagemaker_endpoint::teardown(&session, &owner, &endpoint, &changes).await {
                Ok(Step::Ready(())) => {}
                Ok(Step::Pending(why)) => pending.push(format!("{why} in AwsAccount {}", account.name_any())),
                Err(e) => {
                    let resource = format!("endpoint {endpoint} in AwsAccount {}", account.name_any());
                    failure.get_or_insert((e, resource));
                }
            }
        }
        let notes = change_notes(&changes.take(), false);
        if let Some((e, resource)) = failure {
            let remedy = "sagekeeper retries; fix the cause or set deletionPolicy: Retain to release it";
            let mut report = resolve::aws_failure(status, Component::Deletion, &e, &resource, remedy);
            report.notes = notes;
            return Ok(Cleanup::Wait(report));
        }
        if pending.is_empty() {
            return Ok(Cleanup::Done);
        }
        let outcome = Outcome::progressing(Reason::Pending(Component::Deletion), pending.join("; "));
        let mut report = Report::new(status, outcome);
        report.retry = Retry::After(Duration::from_secs(2));
        report.notes = notes;
        Ok(Cleanup::Wait(report))
    }
}

/// What a pass works from: the project, its environment (Ready), the dev account, and each
/// stage's accounts (permitted for the namespace and region).
struct Resolved {
    project: MLOpsProject,
    env: DataScienceEnvironment,
    region: String,
    dev: Arc<AwsAccount>,
    stages: Vec<Vec<Arc<AwsAccount>>>,
}

async fn resolve_all(d: &ModelDeployment, ctx: &Context) -> Result<Result<Resolved, Outcome>, Error> {
    let namespace = d.namespace().unwrap_or_default();
    let name = &d.spec.project;
    let Some(project) = resolve::fetch::<MLOpsProject>(ctx, Some(&namespace), name).await? else {
        return Ok(Err(Outcome::progressing(Reason::DependencyNotReady, format!("MLOpsProject {name} not found"))));
    };
    let env_name = project.spec.environment.clone();
    let Some(env) = resolve::fetch::<DataScienceEnvironment>(ctx, Some(&namespace), &env_name).await? else {
        let message = format!("DataScienceEnvironment {env_name} (of MLOpsProject {name}) not found");
        return Ok(Err(Outcome::progressing(Reason::DependencyNotReady, message)));
    };
    let labels = resolve::namespace_labels(ctx, &namespace).await?;
    let stages = match check_stages(d, ctx, &env, &namespace, &labels).await? {
        Ok(stages) => stages,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let env_list = env.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    if let Err(outcome) = resolve::ready("DataScienceEnvironment", &env_name, env_list, env.meta().generation) {
        return Ok(Err(outcome));
    }
    let dev = match resolve::account(ctx, &env.spec.account, &namespace, &labels, Some(&env.spec.region)).await? {
        Ok(dev) => dev,
        Err(outcome) => return Ok(Err(outcome)),
    };
    let region = env.spec.region.clone();
    Ok(Ok(Resolved { project, env, region, dev, stages }))
}

/// The accounts of a stage: as the spec lists them, else all the environment has for it.
fn stage_accounts(stage: &Stage, env: &DataScienceEnvironment) -> Vec<String> {
    stage.accounts.clone().unwrap_or_else(|| env.spec.target_accounts.get(&stage.name).cloned().unwrap_or_default())
}

/// Every stage must be a stage of the environment, name only that stage's accounts, and each
/// account must admit the namespace. Returns each stage's accounts.
async fn check_stages(
    deployment: &ModelDeployment,
    ctx: &Context,
    environment: &DataScienceEnvironment,
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<Result<Vec<Vec<Arc<AwsAccount>>>, Outcome>, Error> {
    let env_name = environment.name_any();
    let targets = &environment.spec.target_accounts;
    let mut out = Vec::new();
    for stage in &deployment.spec.stages {
        let Some(stage_accounts) = targets.get(&stage.name) else {
            let known: Vec<&str> = targets.keys().map(String::as_str).collect();
            return Ok(Err(Outcome::stalled(
                Reason::InvalidConfiguration,
                format!(
                    "spec.stages[{}]: not a stage of DataScienceEnvironment {env_name} (its spec.targetAccounts has: {})",
                    stage.name,
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            )));
        };
        let mut resolved = Vec::new();
        for account in stage.accounts.as_ref().unwrap_or(stage_accounts) {
            if !stage_accounts.contains(account) {
                return Ok(Err(Outcome::stalled(
                    Reason::InvalidConfiguration,
                    format!(
                        "spec.stages[{}].accounts: AwsAccount {account} is not an account of stage {} in DataScienceEnvironment {env_name}",
                        stage.name, stage.name
                    ),
                )));
            }
            match resolve::account(ctx, account, namespace, labels, Some(&environment.spec.region)).await? {
                Ok(account) => resolved.push(account),
                Err(outcome) => return Ok(Err(outcome)),
            }
        }
        out.push(resolved);
    }
    Ok(Ok(out))
}

fn access(account: &AwsAccount, region: &str) -> AccountAccess {
    AccountAccess { region: Some(region.to_owned()), ..resolve::access_of(account) }
}

fn owner(d: &ModelDeployment) -> Owner {
    let names = DeploymentNames::new(&d.namespace().unwrap_or_default(), &d.name_any());
    let uid = d.meta().uid.clone().unwrap_or_default();
    let base_tags = [(OWNER_TAG.to_owned(), names.owner()), (OWNER_UID_TAG.to_owned(), uid.clone())].into();
    Owner { uid, base_tags, removed_tags: Default::default() }
}

/// The versions a pass decides from: the newest hundred (one call), and in a registry with more,
/// the ones the deployment names that are older (the newest Approved one, a pinned
/// modelVersion, approvedVersions, what the stages serve), each looked up once.
async fn registry(
    d: &ModelDeployment,
    status: &ModelDeploymentStatus,
    session: &sagekeeper_aws::Session,
    group: &str,
    group_arn: Option<&str>,
) -> Result<Vec<Version>, AwsError> {
    let mut versions = registry::versions(session, group).await?;
    if versions.len() < registry::NEWEST {
        return Ok(versions);
    }
    if d.spec.model_version == LATEST_APPROVED && !versions.iter().any(|v| v.approval_status == Registered::Approved) {
        versions.extend(registry::newest_approved(session, group).await?);
    }
    let named: BTreeSet<i64> = std::iter::once(d.spec.model_version.as_str())
        .chain(d.spec.stages.iter().filter_map(|s| s.approved_version.as_deref()))
        .filter_map(|v| v.parse().ok())
        .chain(status.stages.iter().filter_map(|s| s.serving_version))
        .collect();
    for number in named {
        if !versions.iter().any(|v| v.version == number)
            && let Some(arn) = group_arn
            && let Some(v) = registry::version(session, &versioned_arn(arn, number)).await?
        {
            versions.push(v);
        }
    }
    Ok(versions)
}

/// The registry's ARN of `version`, if the newest hundred hold it.
fn package_arn(versions: &[Version], version: i64) -> Option<String> {
    versions.iter().find(|v| v.version == version).map(|v| v.arn.clone())
}

/// `arn:...:model-package/<group>/<version>` from the group's ARN.
fn versioned_arn(group_arn: &str, version: i64) -> String {
    format!("{}/{version}", group_arn.replacen(":model-package-group/", ":model-package/", 1))
}

/// What one pass found, over all stages.
#[derive(Default)]
struct Tally {
    /// The first AWS failure and the resource it was on.
    error: Option<(AwsError, String)>,
    /// Stages that failed, with SageMaker's reason.
    failed: Vec<String>,
    /// Stages and accounts still on their way.
    deploying: Vec<String>,
    /// The soonest look at an endpoint in transition.
    poll: Option<Duration>,
    notes: Vec<Note>,
}

impl Tally {
    fn poll_within(&mut self, after: Duration) {
        self.poll = Some(self.poll.map_or(after, |p| p.min(after)));
    }

    fn error(&mut self, e: AwsError, resource: String) {
        self.error.get_or_insert((e, resource));
    }
}

/// One full pass over the stages.
async fn converge(
    d: &ModelDeployment,
    ctx: &Context,
    resolved: &Resolved,
    group: &str,
    versions: &[Version],
    mut status: ModelDeploymentStatus,
) -> Report<ModelDeploymentStatus> {
    let names = DeploymentNames::new(&d.namespace().unwrap_or_default(), &d.name_any());
    let owner = owner(d);
    let changes = Changes::default();
    let mut tally = Tally::default();
    let model = gate::resolve_model(&d.spec.model_version, versions, group);
    status.resolved_model_package =
        model.as_ref().ok().map(|v| ResolvedModelPackage { arn: v.arn.clone(), version: v.version });
    let wanted = model.as_ref().ok().map(|v| v.version);

    let mut earlier: Vec<(String, Vec<i64>)> = Vec::new();
    let mut stages = Vec::new();
    let mut summary = Vec::new();
    let mut promotion_pending = false;
    // Writes to a deployment that was Ready for this spec, with every stage's version unchanged,
    // repair drift.
    let mut drift = conditions::is_ready(&status.conditions, d.meta().generation);
    for (index, (stage, accounts)) in d.spec.stages.iter().zip(&resolved.stages).enumerate() {
        let previous = status.stages.iter().find(|s| s.name == stage.name).cloned().unwrap_or_default();
        let decision = gate::decide(&gate::Input {
            index,
            stage,
            wanted,
            following: d.spec.model_version == LATEST_APPROVED,
            serving: previous.serving_version,
            earlier: &earlier,
            versions,
            group,
        });
        promotion_pending |= decision.waiting_for.is_some();
        drift &= decision.target == previous.desired_version
            && accounts.len() == previous.accounts.len()
            && accounts.iter().all(|a| previous.accounts.iter().any(|p| p.account == a.name_any()));
        if let Some(v) = decision.rejected_serving
            && !previous.message.contains("is Rejected and still serves")
        {
            let note = format!("stage {} still serves v{v}, which is Rejected: {}", stage.name, decision.message);
            tally.notes.push(Note { type_: EventType::Warning, reason: EventReason::RejectedVersionServing, note });
        }
        let place = StagePlace { names: &names, owner: &owner, stage, accounts, resolved, versions };
        let stage_status = converge_stage(ctx, &place, &decision, previous, &changes, &mut tally).await;
        summary.push(gate::summary(&stage_status, decision.waiting_for));
        earlier.push((stage.name.clone(), stage_status.verified_versions.clone()));
        stages.push(stage_status);
    }
    depart(d, ctx, resolved, &names, &owner, &status, &mut stages, &changes, &mut tally).await;
    status.stages = stages;
    status.summary = Some(summary.join(", "));

    let (outcome, retry) = if let Some((e, resource)) = &tally.error {
        let remedy = "check sagekeeper's role, the quotas and the model package group's policy in that account";
        resolve::failure(Component::Stages, e, resource, remedy)
    } else if !tally.failed.is_empty() {
        let message = format!("{}; a new version or a change of the stage retries", tally.failed.join("; "));
        (Outcome::stalled(Reason::Failed(Component::Stages), message), Retry::Drift)
    } else if !tally.deploying.is_empty() {
        (Outcome::progressing(Reason::Pending(Component::Stages), tally.deploying.join("; ")), Retry::Pending)
    } else {
        match &model {
            Err(problem) if d.spec.model_version != LATEST_APPROVED => {
                (Outcome::stalled(Reason::ModelNotApproved, problem.clone()), Retry::After(ctx.settings.poll_interval))
            }
            Err(problem) if status.stages.iter().all(|s| s.serving_version.is_none()) => (
                Outcome::progressing(Reason::ModelNotApproved, problem.clone()),
                Retry::After(ctx.settings.poll_interval),
            ),
            _ => {
                let message = format!("every stage serves what the promotion gate allows: {}", summary.join(", "));
                (Outcome::Ready { message }, Retry::Drift)
            }
        }
    };
    // Endpoints in transition are looked at again soon, whatever else holds the deployment up.
    let retry = match (tally.poll, retry) {
        (Some(poll), Retry::Drift | Retry::Pending) => Retry::After(poll),
        (Some(poll), Retry::After(after)) => Retry::After(after.min(poll)),
        (_, retry) => retry,
    };
    // The stages themselves are ready unless one deploys, failed or hit an AWS error; waiting for
    // a model version is the model's condition.
    let stages_outcome = if tally.error.is_some() || !tally.failed.is_empty() || !tally.deploying.is_empty() {
        outcome.clone()
    } else {
        Outcome::Ready { message: format!("stages: {}", summary.join(", ")) }
    };
    let model_condition = match &model {
        Ok(v) => Extra {
            type_: "ModelResolved",
            status: Some(true),
            reason: Reason::Converged,
            message: format!("{} resolves to v{} ({})", d.spec.model_version, v.version, v.arn),
        },
        Err(problem) => Extra {
            type_: "ModelResolved",
            status: Some(false),
            reason: Reason::ModelNotApproved,
            message: problem.clone(),
        },
    };
    let pending_condition = Extra {
        type_: "PromotionPending",
        status: Some(promotion_pending),
        reason: if promotion_pending { Reason::Pending(Component::Stages) } else { Reason::Converged },
        message: if promotion_pending {
            "a Manual stage waits for approvedVersion (see status.stages)".into()
        } else {
            "no stage waits for approval".into()
        },
    };
    let mut report = Report::new(status, outcome);
    report.retry = retry;
    report.failure = tally.error.map(|(e, _)| e.kind);
    report.components = vec![ComponentState { component: Component::Stages, outcome: stages_outcome }];
    report.extra = vec![model_condition, pending_condition];
    report.notes = tally.notes;
    report.notes.extend(change_notes(&changes.take(), drift));
    report
}

/// What a stage deploys in each of its accounts this pass.
struct Deploy<'a> {
    version: i64,
    package_arn: &'a str,
    decision: &'a gate::Decision,
    previous: &'a StageStatus,
    changes: &'a Changes,
}

/// Converges one account of a stage: its state, and a DeploymentFailed event if it newly failed.
async fn converge_account(
    ctx: &Context,
    place: &StagePlace<'_>,
    deploy: &Deploy<'_>,
    account: &Arc<AwsAccount>,
) -> (StageAccountStatus, AccountState, Option<Note>) {
    let (stage, env, version) = (place.stage, &place.resolved.env, deploy.version);
    let targets = env.status.as_ref().map(|s| s.target_accounts.as_slice()).unwrap_or_default();
    let name = account.name_any();
    let before = deploy.previous.accounts.iter().find(|a| a.account == name);
    let reported = targets.iter().find(|t| t.account == name && t.stage == stage.name && t.ready);
    let prepared = match reported.map(|p| Prepared::of(p, stage)) {
        Some(Ok(prepared)) => prepared,
        missing => {
            let missing = match missing {
                Some(Err(missing)) => format!(" (no {} yet)", missing.join(", ")),
                _ => String::new(),
            };
            let why = format!(
                "DataScienceEnvironment {} has not prepared AwsAccount {name} for stage {}{missing}",
                env.name_any(),
                stage.name
            );
            let kept = before.cloned().unwrap_or(StageAccountStatus { account: name, ..Default::default() });
            return (kept, AccountState::NotPrepared(why), None);
        }
    };
    let session = ctx.sessions.session(&access(account, &place.resolved.region));
    let at = Place {
        names: place.names,
        owner: place.owner,
        stage,
        version: deploy.version,
        package_arn: deploy.package_arn,
        prepared: &prepared,
        hold: deploy.decision.hold.clone(),
    };
    let (account_status, state) = sagemaker_endpoint::converge(&session, &at, before, deploy.changes).await;
    let note = match &state {
        AccountState::Failed(reason)
            if before.and_then(|b| b.failure_reason.as_ref()) != account_status.failure_reason.as_ref() =>
        {
            Some(Note {
                type_: EventType::Warning,
                reason: EventReason::DeploymentFailed,
                note: format!("v{version} in stage {} (AwsAccount {name}): {reason}", stage.name),
            })
        }
        _ => None,
    };
    (account_status, state, note)
}

/// One stage of one pass: what it needs to reach its accounts.
struct StagePlace<'a> {
    names: &'a DeploymentNames,
    owner: &'a Owner,
    stage: &'a Stage,
    accounts: &'a [Arc<AwsAccount>],
    resolved: &'a Resolved,
    versions: &'a [Version],
}

/// Converges each account of a stage to the version the gate allows, and reports the stage.
async fn converge_stage(
    ctx: &Context,
    place: &StagePlace<'_>,
    decision: &gate::Decision,
    previous: StageStatus,
    changes: &Changes,
    tally: &mut Tally,
) -> StageStatus {
    let stage = place.stage;
    let mut out = StageStatus {
        name: stage.name.clone(),
        desired_version: decision.target,
        serving_version: previous.serving_version,
        verified_versions: previous.verified_versions.clone(),
        phase: StagePhase::Pending,
        message: decision.message.clone(),
        // With nothing to deploy, what was made before stays known (so it can be cleaned up).
        accounts: previous.accounts.clone(),
    };
    let Some(version) = decision.target else {
        // Accounts that left are for `depart`.
        out.accounts.retain(|a| place.accounts.iter().any(|account| account.name_any() == a.account));
        out.phase = if decision.waiting_for.is_some() { StagePhase::WaitingForApproval } else { StagePhase::Pending };
        if out.message.is_empty() {
            out.message = "no model version to deploy yet".into();
        }
        return out;
    };
    let group_arn = place.resolved.project.status.as_ref().and_then(|s| s.model_package_group_arn.as_deref());
    let Some(package_arn) =
        package_arn(place.versions, version).or_else(|| group_arn.map(|g| versioned_arn(g, version)))
    else {
        out.message =
            format!("MLOpsProject {} reports no model package group ARN yet", place.resolved.project.name_any());
        return out;
    };
    // Every account of the stage at once: each endpoint moves on its own.
    let deploy = Deploy { version, package_arn: &package_arn, decision, previous: &previous, changes };
    let results =
        futures::future::join_all(place.accounts.iter().map(|account| converge_account(ctx, place, &deploy, account)))
            .await;
    let mut accounts = Vec::with_capacity(results.len());
    let mut states = Vec::with_capacity(results.len());
    for (account_status, state, note) in results {
        accounts.push(account_status);
        states.push(state);
        tally.notes.extend(note);
    }
    out.accounts = accounts;

    let settled = if decision.waiting_for.is_some() { StagePhase::WaitingForApproval } else { StagePhase::Serving };
    if decision.hold.is_some() && states.iter().all(|s| matches!(s, AccountState::Serving | AccountState::Held(_))) {
        // Kept as it serves; nothing new is verified.
        out.phase = settled;
        let held: Vec<String> = states
            .iter()
            .zip(&out.accounts)
            .filter_map(|(s, a)| match s {
                AccountState::Held(why) => Some(format!("{}: {why}", a.account)),
                _ => None,
            })
            .collect();
        let messages = [out.message.clone(), held.join("; ")];
        out.message = messages.into_iter().filter(|m| !m.is_empty()).collect::<Vec<_>>().join("; ");
        return out;
    }
    if states.iter().all(|s| matches!(s, AccountState::Serving)) {
        out.serving_version = Some(version);
        out.phase = settled;
        // The most recently verified last, so the oldest is the first to go.
        out.verified_versions.retain(|v| *v != version);
        out.verified_versions.push(version);
        let excess = out.verified_versions.len().saturating_sub(VERIFIED_KEPT);
        out.verified_versions.drain(..excess);
        if previous.serving_version != Some(version) {
            tally.notes.push(Note {
                type_: EventType::Normal,
                reason: EventReason::Serving,
                note: format!("stage {} serves v{version} in every account", stage.name),
            });
        }
        return out;
    }
    out.phase = StagePhase::Deploying;
    let mut messages = Vec::new();
    for (state, account) in states.into_iter().zip(&out.accounts) {
        match state {
            AccountState::Serving => {}
            AccountState::Deploying(after, why) => {
                tally.poll_within(after.min(POLL_MAX));
                messages.push(format!("{}: {why}", account.account));
            }
            AccountState::Failed(reason) => {
                out.phase = StagePhase::Failed;
                messages.push(format!("{}: {reason}", account.account));
            }
            AccountState::NotPrepared(why) | AccountState::Held(why) => messages.push(why),
            AccountState::Error(e, resource) => {
                messages.push(format!("{}: {}: {}", account.account, e.code, e.message));
                tally.error(e, format!("{resource} in AwsAccount {}", account.account));
            }
        }
    }
    out.message = messages.join("; ");
    let line = format!("stage {}: {}", stage.name, out.message);
    if out.phase == StagePhase::Failed {
        tally.failed.push(line)
    } else {
        tally.deploying.push(line)
    }
    out
}

/// Stages and accounts that left the spec: their endpoints, configs and models go. Each stays in
/// status until it is gone.
#[allow(clippy::too_many_arguments)]
async fn depart(
    d: &ModelDeployment,
    ctx: &Context,
    resolved: &Resolved,
    names: &DeploymentNames,
    owner: &Owner,
    status: &ModelDeploymentStatus,
    stages: &mut Vec<StageStatus>,
    changes: &Changes,
    tally: &mut Tally,
) {
    for old in &status.stages {
        let kept = d.spec.stages.iter().zip(&resolved.stages).find(|(s, _)| s.name == old.name);
        for account in &old.accounts {
            if kept.is_some_and(|(_, accounts)| accounts.iter().any(|a| a.name_any() == account.account)) {
                continue;
            }
            let mut leaving = account.clone();
            let Some(obj) = ctx.stores.accounts.get(&ObjectRef::new(&account.account)) else {
                tally.deploying.push(format!(
                    "cannot remove endpoint {} from AwsAccount {}: the AwsAccount is not found",
                    names.endpoint(&old.name),
                    account.account
                ));
                keep(stages, &old.name, leaving);
                continue;
            };
            let session = ctx.sessions.session(&access(&obj, &resolved.region));
            let endpoint = names.endpoint(&old.name);
            match sagemaker_endpoint::teardown(&session, owner, &endpoint, changes).await {
                Ok(Step::Ready(())) => {}
                Ok(Step::Pending(why)) => {
                    tally.deploying.push(format!("removing: {why} in AwsAccount {}", account.account));
                    tally.poll_within(Duration::from_secs(2));
                    leaving.endpoint_status = Some("Deleting".into());
                    keep(stages, &old.name, leaving);
                }
                Err(e) => {
                    tally.error(e, format!("endpoint {endpoint} in AwsAccount {}", account.account));
                    keep(stages, &old.name, leaving);
                }
            }
        }
    }
}

/// Keeps a leaving account in the status of its stage (listed after the spec's stages when the
/// stage itself left).
fn keep(stages: &mut Vec<StageStatus>, stage: &str, account: StageAccountStatus) {
    match stages.iter_mut().find(|s| s.name == stage) {
        Some(s) => s.accounts.push(account),
        None => stages.push(StageStatus {
            name: stage.to_owned(),
            phase: StagePhase::Deploying,
            message: "removing: the stage left the spec".into(),
            accounts: vec![account],
            ..Default::default()
        }),
    }
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
