//! ModelDeployment reconciler: resolve the project, its environment and every stage's accounts;
//! read the project's registry once (the newest hundred versions with their approval); walk the
//! stages in order through the promotion gate; converge each account's model, endpoint config
//! and endpoint (blue/green: a new version or setting is a new model and config, and the
//! endpoint is moved with UpdateEndpoint); report each stage in status. Deletion removes
//! endpoints, configs and models in every account, in that order.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::EventType;
use kube::{Api, Client, Resource, ResourceExt};
use sagekeeper_api::conditions::{Component, ComponentState, Extra, Outcome, Reason};
use sagekeeper_api::deployment::{
    Approval, LATEST_APPROVED, ResolvedModelPackage, Stage, StageAccountStatus, StagePhase, StageStatus,
};
use sagekeeper_api::environment::TargetAccountStatus;
use sagekeeper_api::naming::{DeploymentNames, OWNER_TAG, OWNER_UID_TAG};
use sagekeeper_api::{
    AwsAccount, DataScienceEnvironment, DeletionPolicy, MLOpsProject, ModelDeployment, ModelDeploymentStatus,
};
use sagekeeper_aws::hosting::{self as aws, CapturePlan, ConfigPlan, EndpointState, ModelPlan, UPDATING_TO_TAG};
use sagekeeper_aws::project::Version;
use sagekeeper_aws::steps::{Action, Changes, Owner, Step};
use sagekeeper_aws::{AccountAccess, AwsError};

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Note, Report, Retry, status_fields};
use crate::resolve;
use crate::run::Error;

/// Versions a stage remembers as verified.
const VERIFIED_KEPT: usize = 10;

impl Kind for ModelDeployment {
    type Status = ModelDeploymentStatus;

    fn api(client: Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }

    status_fields!();

    fn retain_on_delete(&self) -> bool {
        self.spec.deletion_policy == DeletionPolicy::Retain
    }

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
        let Some(group) = resolved.project.status.as_ref().and_then(|s| s.model_package_group_name.clone()) else {
            let message = format!("MLOpsProject {} does not report its model package group yet", self.spec.project);
            return Ok(Report::new(status, Outcome::progressing(Reason::DependencyNotReady, message)));
        };
        let dev = ctx.sessions.session(&access(&resolved.dev, &resolved.region));
        let versions = match sagekeeper_aws::project::versions(dev.sagemaker(), &group).await {
            Ok(versions) => versions,
            Err(e) => {
                let remedy = "check sagekeeper's SageMaker permissions in the environment's account";
                return Ok(resolve::aws_failure(
                    status,
                    Component::Model,
                    &e,
                    &format!("model package group {group}"),
                    remedy,
                ));
            }
        };
        Ok(converge(self, ctx, &resolved, &group, &versions, status).await)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let status = self.status.clone().unwrap_or_default();
        let waiting = |status: ModelDeploymentStatus, outcome: Outcome| Ok(Cleanup::Wait(Report::new(status, outcome)));
        let namespace = self.namespace().unwrap_or_default();
        let Some(project) = resolve::fetch::<MLOpsProject>(ctx, Some(&namespace), &self.spec.project).await? else {
            if status.stages.iter().all(|s| s.accounts.is_empty()) {
                return Ok(Cleanup::Done);
            }
            let message =
                format!("MLOpsProject {} not found: cannot tell the region to clean up in", self.spec.project);
            return waiting(status, Outcome::progressing(Reason::DependencyNotReady, message));
        };
        let env_name = &project.spec.environment;
        let Some(env) = resolve::fetch::<DataScienceEnvironment>(ctx, Some(&namespace), env_name).await? else {
            if status.stages.iter().all(|s| s.accounts.is_empty()) {
                return Ok(Cleanup::Done);
            }
            let message = format!("DataScienceEnvironment {env_name} not found: cannot clean up");
            return waiting(status, Outcome::progressing(Reason::DependencyNotReady, message));
        };
        // Everything the status knows of, and everything the spec would have made (a crash may
        // have come between a create and the status write).
        let mut places: BTreeSet<(String, String)> =
            status.stages.iter().flat_map(|s| s.accounts.iter().map(|a| (s.name.clone(), a.account.clone()))).collect();
        for stage in &self.spec.stages {
            for account in stage_accounts(stage, &env) {
                places.insert((stage.name.clone(), account));
            }
        }
        let names = DeploymentNames::new(&namespace, &self.name_any());
        let owner = owner(self);
        let changes = Changes::default();
        let mut pending = Vec::new();
        for (stage, account_name) in &places {
            let Some(account) = ctx.stores.accounts.get(&kube::runtime::reflector::ObjectRef::new(account_name)) else {
                pending.push(format!("AwsAccount {account_name} not found: cannot clean up there"));
                continue;
            };
            let session = ctx.sessions.session(&access(&account, &env.spec.region));
            let sm = session.sagemaker();
            let endpoint = names.endpoint(stage);
            let step = match aws::delete_endpoint(sm, &owner, &endpoint, &changes).await {
                Ok(Step::Ready(())) => aws::remove_unused(sm, &owner, &endpoint, &[], &changes).await.map(Step::Ready),
                other => other,
            };
            match step {
                Ok(Step::Ready(())) => {}
                Ok(Step::Pending(why)) => pending.push(format!("{why} in AwsAccount {account_name}")),
                Err(e) => {
                    let remedy = "sagekeeper retries; fix the cause or set deletionPolicy: Retain to release it";
                    let resource = format!("endpoint {endpoint} in AwsAccount {account_name}");
                    let mut report = resolve::aws_failure(status, Component::Deletion, &e, &resource, remedy);
                    report.notes = notes(&changes);
                    return Ok(Cleanup::Wait(report));
                }
            }
        }
        if pending.is_empty() {
            return Ok(Cleanup::Done);
        }
        let mut report =
            Report::new(status, Outcome::progressing(Reason::Pending(Component::Deletion), pending.join("; ")));
        report.notes = notes(&changes);
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

/// Where one account of a stage stands after a pass.
enum AccountState {
    /// The endpoint serves the stage's version on the wanted config.
    Serving,
    /// Creating, updating or waiting on something that changes by itself; look again after this.
    Deploying(Duration, String),
    /// The wanted config failed (SageMaker's reason); not retried until it changes.
    Failed(String),
    /// The environment has not prepared the account yet.
    NotPrepared(String),
    /// An AWS call failed.
    Error(AwsError, String),
}

/// The models bucket's model package ARN of `version` in `group`.
fn package_arn(versions: &[Version], version: i64) -> Option<String> {
    versions.iter().find(|v| v.version == version).map(|v| v.arn.clone())
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
    let mut notes = Vec::new();

    // The version modelVersion names.
    let (model, model_problem) = resolve_model(&d.spec.model_version, versions, group);
    status.resolved_model_package =
        model.as_ref().map(|v| ResolvedModelPackage { arn: v.arn.clone(), version: v.version });
    let wanted = model.as_ref().map(|v| v.version);
    let following = d.spec.model_version == LATEST_APPROVED;

    let env_targets = resolved.env.status.as_ref().map(|s| s.target_accounts.clone()).unwrap_or_default();
    let mut earlier: Vec<(String, Vec<i64>)> = Vec::new();
    let mut stages = Vec::new();
    let mut summary = Vec::new();
    let mut promotion_pending = false;
    let mut error: Option<(AwsError, String)> = None;
    let mut failed: Vec<String> = Vec::new();
    let mut deploying: Vec<String> = Vec::new();
    let mut poll = Duration::from_secs(30);
    for (index, (stage, accounts)) in d.spec.stages.iter().zip(&resolved.stages).enumerate() {
        let previous = status.stages.iter().find(|s| s.name == stage.name).cloned().unwrap_or_default();
        let serving = previous.serving_version;
        let rejected = |v: i64| versions.iter().any(|x| x.version == v && x.approval_status == "Rejected");
        // Why the gate keeps version `v` from this stage, if it does.
        let blocked = |v: i64| -> Option<String> {
            if let Some((name, _)) = earlier.iter().find(|(_, verified)| !verified.contains(&v)) {
                return Some(format!("v{v} is not verified by stage {name} yet"));
            }
            if Some(v) != serving && rejected(v) {
                return Some(format!("v{v} is Rejected in model package group {group}"));
            }
            if package_arn(versions, v).is_none() && Some(v) != serving {
                return Some(format!("v{v} is not in model package group {group}"));
            }
            None
        };
        let mut waiting_for: Option<i64> = None;
        let mut message = String::new();
        let target = match stage.approval {
            Approval::Automatic => match wanted {
                // The newest Approved version went back because the one served was Rejected:
                // it keeps serving until a person decides (a pin, or a newer approval).
                Some(n) if following && serving.is_some_and(|s| n < s && rejected(s)) => {
                    message = format!(
                        "v{} is Rejected and still serves: pin spec.modelVersion or approve a newer version to replace it",
                        serving.unwrap_or_default()
                    );
                    serving
                }
                Some(n) => match blocked(n) {
                    None => Some(n),
                    Some(why) => {
                        message = why;
                        serving
                    }
                },
                None => serving,
            },
            Approval::Manual => {
                let approved = stage.approved_version.as_deref().and_then(|v| v.parse::<i64>().ok());
                let target = match approved {
                    Some(a) => match blocked(a) {
                        None => Some(a),
                        Some(why) => {
                            message = format!("approvedVersion {a}: {why}");
                            serving
                        }
                    },
                    None => serving,
                };
                if let Some(n) = wanted.filter(|n| Some(*n) != approved && blocked(*n).is_none()) {
                    waiting_for = Some(n);
                    promotion_pending = true;
                    message =
                        format!("set spec.stages[{index}].approvedVersion: \"{n}\" to deploy v{n} to {}", stage.name);
                }
                target
            }
        };
        if let Some(v) = serving.filter(|v| rejected(*v)) {
            notes.push(Note {
                type_: EventType::Warning,
                reason: "RejectedVersionServing",
                note: format!(
                    "stage {} still serves v{v}, which is Rejected: set another version to replace it",
                    stage.name
                ),
            });
        }

        let mut account_status = Vec::new();
        let mut states = Vec::new();
        if let Some(version) = target {
            let arn = package_arn(versions, version).unwrap_or_else(|| versioned_arn(group_arn(resolved), version));
            for account in accounts {
                let name = account.name_any();
                let before = previous.accounts.iter().find(|a| a.account == name);
                let prepared = env_targets.iter().find(|t| t.account == name && t.stage == stage.name && t.ready);
                let Some(prepared) = prepared else {
                    let why = format!(
                        "DataScienceEnvironment {} has not prepared AwsAccount {name} for stage {} yet",
                        resolved.env.name_any(),
                        stage.name
                    );
                    account_status
                        .push(before.cloned().unwrap_or(StageAccountStatus { account: name, ..Default::default() }));
                    states.push(AccountState::NotPrepared(why));
                    continue;
                };
                let session = ctx.sessions.session(&access(account, &resolved.region));
                let place = Place { names: &names, owner: &owner, stage, version, package_arn: &arn, prepared };
                let (out, state) = converge_account(session.sagemaker(), &place, before, &changes).await;
                if let AccountState::Failed(reason) = &state
                    && before.and_then(|b| b.failed_endpoint_config_name.as_ref())
                        != out.failed_endpoint_config_name.as_ref()
                {
                    notes.push(Note {
                        type_: EventType::Warning,
                        reason: "DeploymentFailed",
                        note: format!("v{version} in stage {} (AwsAccount {}): {reason}", stage.name, out.account),
                    });
                }
                account_status.push(out);
                states.push(state);
            }
        }

        let mut stage_status = StageStatus {
            name: stage.name.clone(),
            desired_version: target,
            serving_version: serving,
            verified_versions: previous.verified_versions.clone(),
            phase: StagePhase::Pending,
            message,
            accounts: account_status,
        };
        if target.is_some() && states.iter().all(|s| matches!(s, AccountState::Serving)) {
            let version = target.unwrap_or_default();
            stage_status.serving_version = Some(version);
            if !stage_status.verified_versions.contains(&version) {
                stage_status.verified_versions.push(version);
                let excess = stage_status.verified_versions.len().saturating_sub(VERIFIED_KEPT);
                stage_status.verified_versions.drain(..excess);
                notes.push(Note {
                    type_: EventType::Normal,
                    reason: "Serving",
                    note: format!("stage {} serves v{version} in every account", stage.name),
                });
            }
            stage_status.phase =
                if waiting_for.is_some() { StagePhase::WaitingForApproval } else { StagePhase::Serving };
        } else if target.is_none() {
            stage_status.phase =
                if waiting_for.is_some() { StagePhase::WaitingForApproval } else { StagePhase::Pending };
            if stage_status.message.is_empty() {
                stage_status.message = "no model version to deploy yet".into();
            }
        } else {
            stage_status.phase = StagePhase::Deploying;
            let mut messages = Vec::new();
            for (state, account) in states.iter().zip(&stage_status.accounts) {
                match state {
                    AccountState::Serving => {}
                    AccountState::Deploying(after, why) => {
                        poll = poll.min(*after);
                        messages.push(format!("{}: {why}", account.account));
                    }
                    AccountState::Failed(reason) => {
                        stage_status.phase = StagePhase::Failed;
                        messages.push(format!("{}: {reason}", account.account));
                    }
                    AccountState::NotPrepared(why) => messages.push(why.clone()),
                    AccountState::Error(e, resource) => {
                        messages.push(format!("{}: {}: {}", account.account, e.code, e.message));
                        if error.is_none() {
                            error = Some((e.clone(), format!("{resource} in AwsAccount {}", account.account)));
                        }
                    }
                }
            }
            stage_status.message = messages.join("; ");
            if stage_status.phase == StagePhase::Failed {
                failed.push(format!("stage {}: {}", stage.name, stage_status.message));
            } else {
                deploying.push(format!("stage {}: {}", stage.name, stage_status.message));
            }
        }
        summary.push(summary_of(&stage_status, waiting_for));
        earlier.push((stage.name.clone(), stage_status.verified_versions.clone()));
        stages.push(stage_status);
    }

    // Stages and accounts no longer in the spec: their endpoints, configs and models go.
    let mut leaving = Vec::new();
    for old in &status.stages {
        let kept = d.spec.stages.iter().zip(&resolved.stages).find(|(s, _)| s.name == old.name);
        for account in &old.accounts {
            if kept.is_some_and(|(_, accounts)| accounts.iter().any(|a| a.name_any() == account.account)) {
                continue;
            }
            let Some(obj) = ctx.stores.accounts.get(&kube::runtime::reflector::ObjectRef::new(&account.account)) else {
                continue;
            };
            let session = ctx.sessions.session(&access(&obj, &resolved.region));
            let sm = session.sagemaker();
            let endpoint = names.endpoint(&old.name);
            let step = match aws::delete_endpoint(sm, &owner, &endpoint, &changes).await {
                Ok(Step::Ready(())) => aws::remove_unused(sm, &owner, &endpoint, &[], &changes).await.map(Step::Ready),
                other => other,
            };
            match step {
                Ok(Step::Ready(())) => {}
                Ok(Step::Pending(why)) => {
                    deploying.push(format!("removing: {why} in AwsAccount {}", account.account));
                    poll = poll.min(Duration::from_secs(2));
                    leaving.push((old.name.clone(), account.clone()));
                }
                Err(e) => {
                    if error.is_none() {
                        error = Some((e, format!("endpoint {endpoint} in AwsAccount {}", account.account)));
                    }
                    leaving.push((old.name.clone(), account.clone()));
                }
            }
        }
    }
    for (stage, account) in leaving {
        match stages.iter_mut().find(|s| s.name == stage) {
            Some(s) => s.accounts.push(account),
            None => stages.push(StageStatus {
                name: stage,
                phase: StagePhase::Deploying,
                message: "removing: the stage left the spec".into(),
                accounts: vec![account],
                ..Default::default()
            }),
        }
    }
    status.stages = stages;
    status.summary = Some(summary.join(", "));

    let model_condition = match &model {
        Some(v) => Extra {
            type_: "ModelResolved",
            status: Some(true),
            reason: Reason::Converged,
            message: format!("{} resolves to v{} ({})", d.spec.model_version, v.version, v.arn),
        },
        None => Extra {
            type_: "ModelResolved",
            status: Some(false),
            reason: Reason::ModelNotApproved,
            message: model_problem.clone().unwrap_or_default(),
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
    let (outcome, retry) = if let Some((e, resource)) = &error {
        let remedy = "check sagekeeper's role, the quotas and the model package group's policy in that account";
        resolve::failure(Component::Stages, e, resource, remedy)
    } else if !failed.is_empty() {
        let message = format!("{}; a new version or a change of the stage retries", failed.join("; "));
        (Outcome::stalled(Reason::Failed(Component::Stages), message), Retry::Drift)
    } else if !deploying.is_empty() {
        (Outcome::progressing(Reason::Pending(Component::Stages), deploying.join("; ")), Retry::After(poll))
    } else if let (Some(problem), false) = (&model_problem, d.spec.model_version == LATEST_APPROVED) {
        (Outcome::stalled(Reason::ModelNotApproved, problem.clone()), Retry::After(ctx.settings.poll_interval))
    } else if model.is_none() && status.stages.iter().all(|s| s.serving_version.is_none()) {
        let problem = model_problem.clone().unwrap_or_default();
        (Outcome::progressing(Reason::ModelNotApproved, problem), Retry::After(ctx.settings.poll_interval))
    } else {
        let message = format!("every stage serves what the promotion gate allows: {}", summary.join(", "));
        (Outcome::Ready { message }, Retry::Drift)
    };
    // The stages themselves are ready unless one deploys, failed or hit an AWS error; waiting for
    // a model version is the model's condition.
    let stages_outcome = if error.is_some() || !failed.is_empty() || !deploying.is_empty() {
        outcome.clone()
    } else {
        Outcome::Ready { message: format!("stages: {}", summary.join(", ")) }
    };
    let mut report = Report::new(status, outcome);
    report.retry = retry;
    report.failure = error.map(|(e, _)| e.kind);
    report.components = vec![ComponentState { component: Component::Stages, outcome: stages_outcome }];
    report.extra = vec![model_condition, pending_condition];
    notes.extend(self::notes(&changes));
    report.notes = notes;
    report
}

/// The version `model_version` names among `versions` (the newest hundred), or why none.
fn resolve_model(model_version: &str, versions: &[Version], group: &str) -> (Option<Version>, Option<String>) {
    if model_version == LATEST_APPROVED {
        return match versions.iter().find(|v| v.approval_status == "Approved") {
            Some(v) => (Some(v.clone()), None),
            None => (None, Some(format!("model package group {group} has no Approved version yet: approve one"))),
        };
    }
    let Ok(number) = model_version.parse::<i64>() else {
        return (None, Some(format!("spec.modelVersion {model_version} is not a version number")));
    };
    match versions.iter().find(|v| v.version == number) {
        Some(v) if v.approval_status == "Approved" => (Some(v.clone()), None),
        Some(v) => (
            None,
            Some(format!(
                "spec.modelVersion: v{number} of model package group {group} is {}, not Approved",
                v.approval_status
            )),
        ),
        None => (None, Some(format!("spec.modelVersion: model package group {group} has no version {number}"))),
    }
}

/// The project's model package group ARN, from its status.
fn group_arn(resolved: &Resolved) -> &str {
    resolved.project.status.as_ref().and_then(|s| s.model_package_group_arn.as_deref()).unwrap_or_default()
}

/// `arn:...:model-package/<group>/<version>` from the group's ARN.
fn versioned_arn(group_arn: &str, version: i64) -> String {
    format!("{}/{version}", group_arn.replacen(":model-package-group/", ":model-package/", 1))
}

/// `staging=v7 Serving`, `production=v6 WaitingForApproval(v7)`.
fn summary_of(stage: &StageStatus, waiting_for: Option<i64>) -> String {
    let serving = stage.serving_version.map_or("none".to_owned(), |v| format!("v{v}"));
    let phase = format!("{:?}", stage.phase);
    match (stage.phase, waiting_for, stage.desired_version) {
        (StagePhase::WaitingForApproval, Some(n), _) => format!("{}={serving} {phase}(v{n})", stage.name),
        (StagePhase::Deploying | StagePhase::Failed, _, Some(n)) if Some(n) != stage.serving_version => {
            format!("{}={serving} {phase}(v{n})", stage.name)
        }
        _ => format!("{}={serving} {phase}", stage.name),
    }
}

/// Where one account's endpoint goes and what it serves.
struct Place<'a> {
    names: &'a DeploymentNames,
    owner: &'a Owner,
    stage: &'a Stage,
    version: i64,
    package_arn: &'a str,
    prepared: &'a TargetAccountStatus,
}

/// Instance types with local NVMe instance storage, which AWS refuses a volume key for: every
/// family with a `d` in its name (m5d, c6gd, g4dn, p4d, dl1, ...), and the newer GPU and
/// Trainium families that have it without saying so.
pub(crate) fn local_nvme(instance_type: &str) -> bool {
    const NVME: &[&str] = &["g5", "g6", "g6e", "p5", "p5e", "p5en", "p6-b200", "p6-b300", "trn1", "trn1n", "trn2"];
    let family = instance_type.trim_start_matches("ml.").split('.').next().unwrap_or_default();
    family.contains('d') || NVME.contains(&family)
}

impl Place<'_> {
    fn model(&self) -> ModelPlan {
        let t = self.prepared;
        let (role, group) = (t.model_execution_role_arn.clone().unwrap_or_default(), t.security_group_id.clone());
        let settings = format!(
            "{}|{role}|{}|{}",
            self.package_arn,
            t.private_subnet_ids.join(","),
            group.clone().unwrap_or_default()
        );
        ModelPlan {
            name: self.names.versioned(&self.stage.name, self.version, &settings),
            package_arn: self.package_arn.to_owned(),
            role_arn: role,
            subnets: t.private_subnet_ids.clone(),
            security_group: group.unwrap_or_default(),
        }
    }

    fn config(&self, model: &ModelPlan) -> ConfigPlan {
        let key = self.prepared.endpoint_key_arn.clone().unwrap_or_default();
        let capture = self.stage.data_capture.as_ref().filter(|c| c.enabled).map(|c| CapturePlan {
            percentage: c.sampling_percentage,
            destination: format!(
                "s3://{}/{}{}",
                self.prepared.data_capture_bucket.clone().unwrap_or_default(),
                self.names.prefix(),
                self.stage.name
            ),
            key: key.clone(),
        });
        let volume_key = (!local_nvme(&self.stage.instance_type)).then_some(key);
        let settings = format!(
            "{}|{}|{}|{volume_key:?}|{capture:?}",
            model.name, self.stage.instance_type, self.stage.initial_instance_count
        );
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
/// again; once it serves, the models and configs it no longer uses go.
async fn converge_account(
    sm: &sagekeeper_aws::sdk::sagemaker::Client,
    place: &Place<'_>,
    before: Option<&StageAccountStatus>,
    changes: &Changes,
) -> (StageAccountStatus, AccountState) {
    let model = place.model();
    let config = place.config(&model);
    let endpoint = place.names.endpoint(&place.stage.name);
    let mut out = before.cloned().unwrap_or_default();
    out.account = place.prepared.account.clone();
    out.account_id = place.prepared.account_id.clone();
    out.endpoint_name = Some(endpoint.clone());
    // A failure of another config is history once the spec or the version moved on.
    if out.failed_endpoint_config_name.as_deref() != Some(config.name.as_str()) {
        out.failed_endpoint_config_name = None;
        out.failure_reason = None;
    }
    let state = match step(sm, place, &model, &config, &endpoint, before, &mut out, changes).await {
        Ok(state) => state,
        Err((e, resource)) => AccountState::Error(e, resource),
    };
    (out, state)
}

#[allow(clippy::too_many_arguments)]
async fn step(
    sm: &sagekeeper_aws::sdk::sagemaker::Client,
    place: &Place<'_>,
    model: &ModelPlan,
    config: &ConfigPlan,
    endpoint: &str,
    before: Option<&StageAccountStatus>,
    out: &mut StageAccountStatus,
    changes: &Changes,
) -> Result<AccountState, (AwsError, String)> {
    let on = |what: String| move |e: AwsError| (e, what.clone());
    let ensure_both = async {
        aws::ensure_model(sm, place.owner, model, changes).await.map_err(on(format!("model {}", model.name)))?;
        aws::ensure_config(sm, place.owner, config, changes)
            .await
            .map_err(on(format!("endpoint config {}", config.name)))
    };
    let described = aws::describe_endpoint(sm, endpoint).await.map_err(on(format!("endpoint {endpoint}")))?;
    let Some(state) = described else {
        ensure_both.await?;
        let arn = aws::create_endpoint(sm, place.owner, endpoint, &config.name, changes)
            .await
            .map_err(on(format!("endpoint {endpoint}")))?;
        out.endpoint_arn = Some(arn);
        out.endpoint_status = Some("Creating".into());
        out.endpoint_config_name = Some(config.name.clone());
        out.model_name = Some(model.name.clone());
        return Ok(AccountState::Deploying(Duration::from_secs(1), format!("creating endpoint {endpoint}")));
    };
    // First sight of the endpoint (as after a crash between its create and the status write):
    // adopt it only if it is ours.
    let mut tags = None;
    if before.and_then(|b| b.endpoint_arn.as_deref()) != Some(state.arn.as_str()) {
        tags = Some(
            aws::endpoint_tags(sm, place.owner, &state, endpoint).await.map_err(on(format!("endpoint {endpoint}")))?,
        );
    }
    out.endpoint_arn = Some(state.arn.clone());
    out.endpoint_status = Some(state.status.clone());
    out.endpoint_config_name = Some(state.config.clone());
    if state.status == "Failed" {
        if state.config == config.name {
            return Ok(failed(out, config, &state));
        }
        // A failed endpoint cannot be updated: it is replaced with the new config.
        return match aws::delete_endpoint(sm, place.owner, endpoint, changes).await {
            Ok(_) => {
                Ok(AccountState::Deploying(Duration::from_secs(1), format!("replacing failed endpoint {endpoint}")))
            }
            Err(e) => Err((e, format!("endpoint {endpoint}"))),
        };
    }
    if state.in_progress() {
        let to = state.pending_config.as_deref().unwrap_or(&state.config);
        return Ok(AccountState::Deploying(
            state.poll_after(),
            format!("endpoint {endpoint} is {} ({to})", state.status),
        ));
    }
    if state.config == config.name {
        out.model_name = Some(model.name.clone());
        // Newly serving: the models and configs it used before go.
        if before.and_then(|b| b.endpoint_config_name.as_deref()) != Some(config.name.as_str())
            || before.and_then(|b| b.endpoint_status.as_deref()) != Some("InService")
        {
            aws::remove_unused(sm, place.owner, endpoint, &[&config.name, &model.name], changes)
                .await
                .map_err(on(format!("unused models and configs of endpoint {endpoint}")))?;
        }
        return Ok(AccountState::Serving);
    }
    if out.failed_endpoint_config_name.as_deref() == Some(config.name.as_str()) {
        let reason = out.failure_reason.clone().unwrap_or_default();
        return Ok(AccountState::Failed(reason));
    }
    if state.failure_reason.is_some() {
        // Rolled back: was it our move to this very config?
        let tags = match tags {
            Some(tags) => tags,
            None => aws::endpoint_tags(sm, place.owner, &state, endpoint)
                .await
                .map_err(on(format!("endpoint {endpoint}")))?,
        };
        if tags.iter().any(|(k, v)| k == UPDATING_TO_TAG && *v == config.name) {
            return Ok(failed(out, config, &state));
        }
    }
    ensure_both.await?;
    match aws::update_endpoint(sm, &state, endpoint, &config.name, changes).await {
        Ok(Step::Ready(())) => {
            out.endpoint_status = Some("Updating".into());
            Ok(AccountState::Deploying(
                Duration::from_secs(1),
                format!("updating endpoint {endpoint} to {}", config.name),
            ))
        }
        Ok(Step::Pending(why)) => Ok(AccountState::Deploying(Duration::from_secs(2), why)),
        Err(e) => Err((e, format!("endpoint {endpoint}"))),
    }
}

fn failed(out: &mut StageAccountStatus, config: &ConfigPlan, state: &EndpointState) -> AccountState {
    let reason = state.failure_reason.clone().unwrap_or_else(|| format!("endpoint is {}", state.status));
    out.failed_endpoint_config_name = Some(config.name.clone());
    out.failure_reason = Some(reason.clone());
    AccountState::Failed(reason)
}

/// Events for what a pass wrote.
fn notes(changes: &Changes) -> Vec<Note> {
    let all = changes.take();
    let list = |action: Action| {
        let items: Vec<&str> = all.iter().filter(|(a, _)| *a == action).map(|(_, w)| w.as_str()).collect();
        (!items.is_empty()).then(|| items.join("; "))
    };
    [(Action::Created, "Created"), (Action::Updated, "Updated"), (Action::Deleted, "Deleted")]
        .into_iter()
        .filter_map(|(action, reason)| list(action).map(|note| Note { type_: EventType::Normal, reason, note }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for t in [
            "ml.m5.large",
            "ml.c5.xlarge",
            "ml.m6g.large",
            "ml.t2.medium",
            "ml.inf1.xlarge",
            "ml.inf2.xlarge",
            "ml.p3.2xlarge",
        ] {
            assert!(!local_nvme(t), "{t}");
        }
    }

    fn version(version: i64, approval: &str) -> Version {
        Version {
            arn: format!("arn:aws:sagemaker:us-east-1:1:model-package/g/{version}"),
            version,
            approval_status: approval.into(),
        }
    }

    #[test]
    fn latest_approved_is_the_newest_approved_and_a_pin_must_be_approved() {
        let versions = [version(3, "PendingManualApproval"), version(2, "Approved"), version(1, "Rejected")];
        assert_eq!(resolve_model(LATEST_APPROVED, &versions, "g").0.map(|v| v.version), Some(2));
        assert_eq!(resolve_model("2", &versions, "g").0.map(|v| v.version), Some(2));
        let (none, why) = resolve_model("1", &versions, "g");
        assert!(none.is_none() && why.unwrap().contains("v1 of model package group g is Rejected"));
        let (none, why) = resolve_model("9", &versions, "g");
        assert!(none.is_none() && why.unwrap().contains("has no version 9"));
        let (none, why) = resolve_model(LATEST_APPROVED, &versions[..1], "g");
        assert!(none.is_none() && why.unwrap().contains("no Approved version"));
    }

    #[test]
    fn summary_says_what_serves_and_what_waits() {
        let stage = |phase, serving, desired| StageStatus {
            name: "production".into(),
            phase,
            serving_version: serving,
            desired_version: desired,
            ..Default::default()
        };
        assert_eq!(summary_of(&stage(StagePhase::Serving, Some(7), Some(7)), None), "production=v7 Serving");
        assert_eq!(
            summary_of(&stage(StagePhase::WaitingForApproval, Some(6), Some(6)), Some(7)),
            "production=v6 WaitingForApproval(v7)"
        );
        assert_eq!(summary_of(&stage(StagePhase::Deploying, Some(6), Some(7)), None), "production=v6 Deploying(v7)");
        assert_eq!(summary_of(&stage(StagePhase::Pending, None, None), None), "production=none Pending");
    }

    #[test]
    fn a_versioned_arn_is_made_from_the_group_arn() {
        assert_eq!(
            versioned_arn("arn:aws:sagemaker:us-east-1:111111111111:model-package-group/team-churn", 4),
            "arn:aws:sagemaker:us-east-1:111111111111:model-package/team-churn/4"
        );
    }
}
