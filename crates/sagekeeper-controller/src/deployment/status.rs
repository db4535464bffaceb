//! Fold: the step results of one pass become each stage's status, the deployment's verdict, its
//! ModelResolved and PromotionPending conditions and its events. Pure.

use std::time::Duration;

use kube::runtime::events::EventType;
use sagekeeper_api::ModelDeploymentStatus;
use sagekeeper_api::conditions::{Component, ComponentState, Extra, Outcome, Reason};
use sagekeeper_api::deployment::{ResolvedModelPackage, StagePhase, StageStatus};
use sagekeeper_aws::registry::Version;

use super::gate;
use super::plan::{DeployStep, Plan, StagePlan};
use super::run::{DeployOutput, Gated};
use super::sagemaker_endpoint::AccountState;
use crate::lifecycle::{EventReason, Note, Report, Retry};
use crate::resolve;
use crate::steps::{Done, Failure, Ran, Results};

/// Versions a stage remembers as verified.
const VERIFIED_KEPT: usize = 10;
/// The longest wait between looks at an endpoint in transition.
const POLL_MAX: Duration = Duration::from_secs(30);

/// What became of one account's endpoint step.
pub(super) enum Seen<'r> {
    Ready(&'r DeployOutput),
    Failed(&'r Failure),
    /// It did not run (or not yet).
    Not,
}

/// One stage after a pass.
#[derive(Debug, Default)]
pub(super) struct StageFold {
    pub(super) status: StageStatus,
    /// Why the stage failed (SageMaker's reasons).
    pub(super) failed: Option<String>,
    /// What the stage is still doing.
    pub(super) deploying: Option<String>,
    /// The soonest look at an endpoint in transition.
    pub(super) poll: Option<Duration>,
    /// The first AWS failure.
    pub(super) error: Option<Failure>,
    pub(super) notes: Vec<Note>,
}

/// The versions a stage has verified once this pass's endpoints are counted: what a later
/// stage's gate decides from.
pub(super) fn verified<'r>(
    plan: &StagePlan,
    gated: &Gated,
    endpoint: impl Fn(&str) -> Option<&'r DeployOutput>,
) -> Vec<i64> {
    stage(plan, gated, |account| endpoint(account).map_or(Seen::Not, Seen::Ready)).status.verified_versions
}

/// One stage: each account as its endpoint step left it, the stage's phase and message.
pub(super) fn stage<'r>(plan: &StagePlan, gated: &Gated, seen: impl Fn(&str) -> Seen<'r>) -> StageFold {
    let (stage, previous, decision) = (&plan.stage, &plan.previous, &gated.decision);
    let mut fold = StageFold::default();
    let out = &mut fold.status;
    *out = StageStatus {
        name: stage.name.clone(),
        desired_version: decision.target,
        serving_version: previous.serving_version,
        verified_versions: previous.verified_versions.clone(),
        rejected_serving_version: decision.rejected_serving,
        phase: StagePhase::Pending,
        message: decision.message.clone(),
        // With nothing to deploy, what was made before stays known (so it can be cleaned up).
        accounts: previous.accounts.clone(),
    };
    let settled = if decision.waiting_for.is_some() { StagePhase::WaitingForApproval } else { StagePhase::Serving };
    let Some(version) = decision.target else {
        // Accounts that left are the Remove steps'.
        out.accounts.retain(|a| plan.accounts.iter().any(|account| account.place.name == a.account));
        out.phase = if decision.waiting_for.is_some() { StagePhase::WaitingForApproval } else { StagePhase::Pending };
        if out.message.is_empty() {
            out.message = "no model version to deploy yet".into();
        }
        return fold;
    };
    let endpoint = &plan.endpoint;
    let mut states = Vec::with_capacity(plan.accounts.len());
    out.accounts = Vec::with_capacity(plan.accounts.len());
    for account in &plan.accounts {
        let name = &account.place.name;
        let kept = || {
            let mut kept = account.before.clone().unwrap_or_default();
            kept.account = name.clone();
            kept.account_id = Some(account.place.account_id.clone());
            kept.endpoint_name = Some(endpoint.clone());
            kept
        };
        match seen(name) {
            Seen::Ready(DeployOutput::Endpoint(endpoint)) => {
                let (status, state) = &**endpoint;
                let event = match state {
                    AccountState::Failed(reason) => Some((EventReason::DeploymentFailed, reason)),
                    AccountState::RolledBack(reason) => Some((EventReason::RolledBack, reason)),
                    _ => None,
                };
                if let Some((event, reason)) = event
                    && account.before.as_ref().and_then(|b| b.failure_reason.as_ref()) != status.failure_reason.as_ref()
                {
                    fold.notes.push(Note {
                        type_: EventType::Warning,
                        reason: event,
                        note: format!("v{version} in stage {} (AwsAccount {name}): {reason}", stage.name),
                    });
                }
                out.accounts.push(status.clone());
                states.push(Ok(state.clone()));
            }
            Seen::Failed(f) => {
                out.accounts.push(kept());
                states.push(Err(f));
            }
            Seen::Ready(_) | Seen::Not => {
                out.accounts.push(kept());
                states.push(Ok(AccountState::Deploying(POLL_MAX, format!("{name}: not looked at this pass"))));
            }
        }
    }
    let all = |f: fn(&AccountState) -> bool| states.iter().all(|s| s.as_ref().is_ok_and(f));
    if decision.hold.is_some() && all(|s| matches!(s, AccountState::Serving | AccountState::Held(_))) {
        // Kept as it serves; nothing new is verified.
        out.phase = settled;
        let held: Vec<String> = states
            .iter()
            .zip(&out.accounts)
            .filter_map(|(s, a)| match s {
                Ok(AccountState::Held(why)) => Some(format!("{}: {why}", a.account)),
                _ => None,
            })
            .collect();
        let messages = [out.message.clone(), held.join("; ")];
        out.message = messages.into_iter().filter(|m| !m.is_empty()).collect::<Vec<_>>().join("; ");
        return fold;
    }
    if all(|s| matches!(s, AccountState::Serving)) {
        out.serving_version = Some(version);
        out.phase = settled;
        // The most recently verified last, so the oldest is the first to go.
        out.verified_versions.retain(|v| *v != version);
        out.verified_versions.push(version);
        let excess = out.verified_versions.len().saturating_sub(VERIFIED_KEPT);
        out.verified_versions.drain(..excess);
        if previous.serving_version != Some(version) {
            fold.notes.push(Note {
                type_: EventType::Normal,
                reason: EventReason::Serving,
                note: format!("stage {} serves v{version} in every account", stage.name),
            });
        }
        return fold;
    }
    // Baking while traffic shifts in an account and no other account is still deploying.
    let baking = states.iter().any(|s| matches!(s, Ok(AccountState::Baking(..))))
        && !states.iter().any(|s| matches!(s, Ok(AccountState::Deploying(..) | AccountState::NotPrepared(_)) | Err(_)));
    out.phase = if baking { StagePhase::Baking } else { StagePhase::Deploying };
    let mut messages = Vec::new();
    for (state, account) in states.into_iter().zip(&out.accounts) {
        match state {
            Ok(AccountState::Serving) => {}
            Ok(AccountState::Deploying(after, why) | AccountState::Baking(after, why)) => {
                fold.poll = Some(fold.poll.map_or(after, |p: Duration| p.min(after)).min(POLL_MAX));
                messages.push(format!("{}: {why}", account.account));
            }
            Ok(AccountState::Failed(reason) | AccountState::RolledBack(reason)) => {
                out.phase = StagePhase::Failed;
                messages.push(format!("{}: {reason}", account.account));
            }
            Ok(AccountState::NotPrepared(why) | AccountState::Held(why)) => messages.push(why),
            Err(f) => {
                messages.push(format!("{}: {}: {}", account.account, f.error.code, f.error.message));
                fold.error.get_or_insert_with(|| f.clone());
            }
        }
    }
    out.message = messages.join("; ");
    let line = format!("stage {}: {}", stage.name, out.message);
    if out.phase == StagePhase::Failed {
        fold.failed = Some(line);
    } else {
        fold.deploying = Some(line);
    }
    fold
}

/// What holds the stages up, over all of them.
#[derive(Default)]
struct Holding {
    failed: Vec<String>,
    deploying: Vec<String>,
    poll: Option<Duration>,
    error: Option<Failure>,
}

impl Holding {
    fn poll_within(&mut self, after: Duration) {
        self.poll = Some(self.poll.map_or(after, |p| p.min(after)));
    }

    fn any(&self) -> bool {
        self.error.is_some() || !self.failed.is_empty() || !self.deploying.is_empty()
    }
}

/// Folds a pass's results over the previous status. `was_ready`: the deployment was Ready for
/// its current spec, so writes with every stage's version unchanged repair drift (returned).
pub(super) fn fold(
    plan: &Plan,
    previous: &ModelDeploymentStatus,
    was_ready: bool,
    results: &Results<DeployStep, DeployOutput>,
    poll_interval: Duration,
) -> (Report<ModelDeploymentStatus>, bool) {
    use DeployStep as S;
    let versions = match results.get(&S::Registry) {
        Some(Ran::Done(Done::Ready(DeployOutput::Versions(versions)))) => versions.clone(),
        Some(Ran::Done(Done::Failed(f))) => {
            let remedy = "check sagekeeper's SageMaker permissions in the environment's account";
            return (resolve::aws_failure(previous.clone(), Component::Model, &f.error, &f.resource, remedy), false);
        }
        _ => Default::default(),
    };
    let mut status = previous.clone();
    let model = gate::resolve_model(&plan.model_version, &versions, &plan.group);
    status.resolved_model_package =
        model.as_ref().ok().map(|v| ResolvedModelPackage { arn: v.arn.clone(), version: v.version });
    let (mut stages, mut summary, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    let mut holding = Holding::default();
    let mut promotion_pending = false;
    let mut drift = was_ready;
    for (n, plan_stage) in plan.stages.iter().enumerate() {
        let Some(Ran::Done(Done::Ready(DeployOutput::Gate(gated)))) = results.get(&S::Gate(n)) else {
            stages.push(plan_stage.previous.clone());
            continue;
        };
        let decision = &gated.decision;
        let previous_stage = &plan_stage.previous;
        promotion_pending |= decision.waiting_for.is_some();
        drift &= decision.target == previous_stage.desired_version
            && plan_stage.accounts.len() == previous_stage.accounts.len()
            && plan_stage.accounts.iter().all(|a| previous_stage.accounts.iter().any(|p| p.account == a.place.name));
        if let Some(v) = decision.rejected_serving
            && previous_stage.rejected_serving_version != Some(v)
        {
            let note =
                format!("stage {} still serves v{v}, which is Rejected: {}", plan_stage.stage.name, decision.message);
            notes.push(Note { type_: EventType::Warning, reason: EventReason::RejectedVersionServing, note });
        }
        let folded = stage(plan_stage, gated, |account| match results.get(&S::Endpoint(n, account.to_owned())) {
            Some(Ran::Done(Done::Ready(output))) => Seen::Ready(output),
            Some(Ran::Done(Done::Failed(f))) => Seen::Failed(f),
            _ => Seen::Not,
        });
        let mut folded = folded;
        scaling(plan_stage, n, results, &mut folded);
        summary.push(gate::summary(&folded.status, decision.waiting_for));
        holding.failed.extend(folded.failed);
        holding.deploying.extend(folded.deploying);
        if let Some(poll) = folded.poll {
            holding.poll_within(poll);
        }
        if holding.error.is_none() {
            holding.error = folded.error;
        }
        notes.extend(folded.notes);
        stages.push(folded.status);
    }
    leaving(plan, results, &mut stages, &mut holding);
    status.stages = stages;
    status.summary = Some(summary.join(", "));
    let summary = summary.join(", ");
    let (outcome, retry) = verdict(&holding, &model, plan.following(), &status, &summary, poll_interval);
    // The stages themselves are ready unless one deploys, failed or hit an AWS error; waiting for
    // a model version is the model's condition.
    let stages_outcome =
        if holding.any() { outcome.clone() } else { Outcome::Ready { message: format!("stages: {summary}") } };
    let mut report = Report::new(status, outcome);
    report.retry = retry;
    report.failure = holding.error.map(|f| f.error.kind);
    report.components = vec![ComponentState { component: Component::Stages, outcome: stages_outcome }];
    report.extra = conditions(plan, &model, promotion_pending);
    report.notes = notes;
    (report, drift)
}

/// Each account's scalable target as its Scaling step left it; a failure holds the stage up.
fn scaling(plan: &StagePlan, n: usize, results: &Results<DeployStep, DeployOutput>, fold: &mut StageFold) {
    for account in &mut fold.status.accounts {
        match results.get(&DeployStep::Scaling(n, account.account.clone())) {
            Some(Ran::Done(Done::Ready(DeployOutput::Scaling(target)))) => account.scaling_target.clone_from(target),
            Some(Ran::Done(Done::Failed(f))) => {
                // It may have been registered before the failure: recorded, so that removing
                // autoscaling (or the stage) still deregisters it.
                if plan.stage.autoscaling.is_some() {
                    account.scaling_target = Some(sagekeeper_aws::autoscaling::resource_id(&plan.endpoint));
                }
                let line =
                    format!("stage {}: {}: {}: {}", plan.stage.name, account.account, f.error.code, f.error.message);
                fold.deploying.get_or_insert(line);
                fold.error.get_or_insert_with(|| f.clone());
            }
            _ => {}
        }
    }
}

/// Accounts that left: each stays in status until its endpoint is gone.
fn leaving(
    plan: &Plan,
    results: &Results<DeployStep, DeployOutput>,
    stages: &mut Vec<StageStatus>,
    holding: &mut Holding,
) {
    for leaving in &plan.leaving {
        let mut kept = leaving.status.clone();
        let endpoint = plan.names.endpoint(&leaving.stage);
        match results.get(&DeployStep::Remove(leaving.stage.clone(), kept.account.clone())) {
            Some(Ran::Done(Done::Ready(_))) => continue,
            Some(Ran::Done(Done::Pending { why, .. })) => {
                holding.deploying.push(why.clone());
                holding.poll_within(Duration::from_secs(2));
                kept.endpoint_status = Some("Deleting".into());
            }
            Some(Ran::Done(Done::Failed(f))) => {
                holding.error.get_or_insert_with(|| f.clone());
            }
            _ => holding.deploying.push(format!(
                "cannot remove endpoint {endpoint} from AwsAccount {}: the AwsAccount is not found",
                kept.account
            )),
        }
        match stages.iter_mut().find(|s| s.name == leaving.stage) {
            Some(s) => s.accounts.push(kept),
            None => stages.push(StageStatus {
                name: leaving.stage.clone(),
                phase: StagePhase::Deploying,
                message: "removing: the stage left the spec".into(),
                accounts: vec![kept],
                ..Default::default()
            }),
        }
    }
}

/// The deployment's verdict and when to look again: an AWS error, then a failed stage, then
/// one still deploying, then the model; endpoints in transition are looked at again soon,
/// whatever else holds the deployment up.
fn verdict(
    holding: &Holding,
    model: &Result<Version, String>,
    following: bool,
    status: &ModelDeploymentStatus,
    summary: &str,
    poll_interval: Duration,
) -> (Outcome, Retry) {
    let (outcome, retry) = if let Some(f) = &holding.error {
        let remedy = "check sagekeeper's role, the quotas and the model package group's policy in that account";
        resolve::failure(Component::Stages, &f.error, &f.resource, remedy)
    } else if !holding.failed.is_empty() {
        let message = format!("{}; a new version or a change of the stage retries", holding.failed.join("; "));
        (Outcome::stalled(Reason::Failed(Component::Stages), message), Retry::Drift)
    } else if !holding.deploying.is_empty() {
        (Outcome::progressing(Reason::Pending(Component::Stages), holding.deploying.join("; ")), Retry::Pending)
    } else {
        match model {
            Err(problem) if !following => {
                (Outcome::stalled(Reason::ModelNotApproved, problem.clone()), Retry::After(poll_interval))
            }
            Err(problem) if status.stages.iter().all(|s| s.serving_version.is_none()) => {
                (Outcome::progressing(Reason::ModelNotApproved, problem.clone()), Retry::After(poll_interval))
            }
            _ => {
                let message = format!("every stage serves what the promotion gate allows: {summary}");
                (Outcome::Ready { message }, Retry::Drift)
            }
        }
    };
    let retry = match (holding.poll, retry) {
        (Some(poll), Retry::Drift | Retry::Pending) => Retry::After(poll),
        (Some(poll), Retry::After(after)) => Retry::After(after.min(poll)),
        (_, retry) => retry,
    };
    (outcome, retry)
}

/// ModelResolved and PromotionPending.
fn conditions(plan: &Plan, model: &Result<Version, String>, promotion_pending: bool) -> Vec<Extra> {
    let model_condition = match model {
        Ok(v) => Extra {
            type_: "ModelResolved",
            status: Some(true),
            reason: Reason::Converged,
            message: format!("{} resolves to v{} ({})", plan.model_version, v.version, v.arn),
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
    vec![model_condition, pending_condition]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use sagekeeper_api::deployment::StageAccountStatus;
    use sagekeeper_aws::registry::{Approval, Version};
    use sagekeeper_aws::{AwsError, ErrorKind};

    use super::*;
    use crate::deployment::plan::tests::example;
    use crate::deployment::run::decide;

    type R = Results<DeployStep, DeployOutput>;

    fn versions(list: &[(i64, Approval)]) -> Arc<Vec<Version>> {
        Arc::new(
            list.iter()
                .map(|(n, a)| Version { arn: format!("arn:package/{n}"), version: *n, approval_status: a.clone() })
                .collect(),
        )
    }

    fn endpoint(account: &str, state: AccountState) -> Ran<DeployStep, DeployOutput> {
        let status =
            StageAccountStatus { account: account.into(), endpoint_status: Some("x".into()), ..Default::default() };
        Ran::Done(Done::Ready(DeployOutput::Endpoint(Box::new((status, state)))))
    }

    /// The results of a pass whose registry holds `list`, with staging's endpoint `staging` and
    /// prod's gates decided as the runner would (after staging).
    fn pass(plan: &Plan, list: &[(i64, Approval)], staging: Ran<DeployStep, DeployOutput>) -> R {
        use DeployStep as S;
        let versions = versions(list);
        let staging_gate = Arc::new(decide(plan, 0, &versions, Vec::new()));
        let staging_output = match &staging {
            Ran::Done(Done::Ready(o)) => Some(o.clone()),
            _ => None,
        };
        let verified = verified(&plan.stages[0], &staging_gate, |_| staging_output.as_ref());
        let prod_gate = Arc::new(decide(plan, 1, &versions, vec![("staging".into(), verified)]));
        BTreeMap::from([
            (S::Registry, Ran::Done(Done::Ready(DeployOutput::Versions(versions)))),
            (S::Gate(0), Ran::Done(Done::Ready(DeployOutput::Gate(staging_gate)))),
            (S::Gate(1), Ran::Done(Done::Ready(DeployOutput::Gate(prod_gate)))),
            (S::Endpoint(0, "staging".into()), staging),
        ])
    }

    #[test]
    fn a_version_serving_in_staging_is_verified_there_and_goes_on_to_the_approved_production_in_the_same_pass() {
        use DeployStep as S;
        let plan = example();
        let mut results = pass(
            &plan,
            &[(3, Approval::Approved), (2, Approval::Approved)],
            endpoint("staging", AccountState::Serving),
        );
        results.insert(
            S::Endpoint(1, "prod-a".into()),
            endpoint("prod-a", AccountState::Deploying(Duration::from_secs(5), "creating endpoint e".into())),
        );
        results.insert(
            S::Endpoint(1, "prod-b".into()),
            endpoint("prod-b", AccountState::NotPrepared("not prepared yet".into())),
        );
        results
            .insert(S::Remove("staging".into(), "old-staging".into()), Ran::Done(Done::Ready(DeployOutput::Removed)));
        let previous = example_status();
        let (report, drift) = fold(&plan, &previous, true, &results, Duration::from_secs(60));
        let stages = &report.status.stages;
        assert_eq!(stages[0].serving_version, Some(3));
        assert_eq!(stages[0].verified_versions, [3]);
        assert_eq!(stages[0].phase, StagePhase::Serving);
        assert_eq!(
            stages[0].accounts.iter().map(|a| a.account.as_str()).collect::<Vec<_>>(),
            ["staging"],
            "old-staging is gone"
        );
        assert_eq!(stages[1].desired_version, Some(3), "prod's approvedVersion 3 passed the gate this pass");
        assert_eq!(stages[1].phase, StagePhase::Deploying);
        assert!(
            stages[1].message.contains("prod-a: creating endpoint e") && stages[1].message.contains("not prepared yet")
        );
        assert!(matches!(report.outcome, Outcome::Progressing { .. }), "{:?}", report.outcome);
        assert_eq!(report.retry, Retry::After(Duration::from_secs(5)));
        assert!(report.notes.iter().any(|n| n.reason == EventReason::Serving));
        assert!(!drift, "staging moved to another version");
    }

    #[test]
    fn an_aws_refusal_in_staging_stalls_names_the_account_and_still_lets_production_keep_its_course() {
        use DeployStep as S;
        let plan = example();
        let denied = AwsError { kind: ErrorKind::AccessDenied, code: "AccessDenied".into(), message: "no".into() };
        let failed = Ran::Done(Done::Failed(Failure::new(denied, "endpoint e in AwsAccount staging")));
        let mut results = pass(&plan, &[(3, Approval::Approved), (2, Approval::Approved)], failed);
        results.insert(S::Endpoint(1, "prod-a".into()), endpoint("prod-a", AccountState::Serving));
        results.insert(S::Endpoint(1, "prod-b".into()), endpoint("prod-b", AccountState::Serving));
        results.insert(
            S::Remove("staging".into(), "old-staging".into()),
            Ran::Done(Done::Pending { why: "removing: endpoint is Deleting".into(), retry_after: None }),
        );
        let (report, _) = fold(&plan, &example_status(), false, &results, Duration::from_secs(60));
        assert!(
            matches!(&report.outcome, Outcome::Stalled { reason: Reason::AccessDenied, message }
            if message.starts_with("AccessDenied: endpoint e in AwsAccount staging")),
            "{:?}",
            report.outcome
        );
        let stages = &report.status.stages;
        // Staging verified nothing new, so production's approvedVersion 3 waits.
        assert_eq!(stages[0].serving_version, Some(2));
        assert!(stages[1].message.contains("v3 is not verified by stage staging yet"), "{}", stages[1].message);
        let leaving = stages[0].accounts.iter().find(|a| a.account == "old-staging").expect("kept while removed");
        assert_eq!(leaving.endpoint_status.as_deref(), Some("Deleting"));
    }

    #[test]
    fn a_served_version_turned_rejected_warns_once_and_is_recorded_in_status() {
        let plan = example();
        let list = [(2, Approval::Rejected), (1, Approval::Approved)];
        let results = pass(&plan, &list, endpoint("staging", AccountState::Serving));
        let (report, _) = fold(&plan, &example_status(), true, &results, Duration::from_secs(60));
        assert_eq!(report.status.stages[0].rejected_serving_version, Some(2));
        let warned = report.notes.iter().filter(|n| n.reason == EventReason::RejectedVersionServing).count();
        assert_eq!(warned, 1);
        // The next pass knows it warned already.
        let mut plan = plan;
        plan.stages[0].previous.rejected_serving_version = Some(2);
        let (again, _) = fold(&plan, &report.status, true, &results, Duration::from_secs(60));
        assert!(!again.notes.iter().any(|n| n.reason == EventReason::RejectedVersionServing));
    }

    fn example_status() -> ModelDeploymentStatus {
        ModelDeploymentStatus {
            stages: vec![StageStatus {
                name: "staging".into(),
                serving_version: Some(2),
                accounts: vec![
                    StageAccountStatus { account: "staging".into(), ..Default::default() },
                    StageAccountStatus { account: "old-staging".into(), ..Default::default() },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }
    }
}
