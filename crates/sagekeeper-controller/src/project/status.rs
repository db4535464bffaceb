//! Fold: the step results of one pass become the project's status fields, its Registry and
//! Pipeline conditions, the verdict and the run events. Pure.

use kube::runtime::events::EventType;
use sagekeeper_api::MLOpsProjectStatus;
use sagekeeper_api::conditions::{Component, ComponentState, Extra, Outcome, Reason};
use sagekeeper_api::project::{ExecutionStatus, ModelPackageRef};
use sagekeeper_aws::ErrorKind;
use sagekeeper_aws::pipelines::{Execution, RunState};
use sagekeeper_aws::registry::Version;

use super::plan::{Plan, ProjectStep};
use super::run::ProjectOutput;
use crate::fold::{self, Located};
use crate::lifecycle::{EventReason, Note, Retry};
use crate::steps::{Done, Ran, Results};

/// The condition that reports the latest run.
pub(crate) const LAST_RUN: &str = "LastRunSucceeded";

/// What a pass amounts to.
#[derive(Debug)]
pub(crate) struct Folded {
    pub(crate) status: MLOpsProjectStatus,
    pub(crate) outcome: Outcome,
    pub(crate) components: Vec<ComponentState>,
    /// `None` when everything is ready: the project polls.
    pub(crate) retry: Option<Retry>,
    pub(crate) failure: Option<ErrorKind>,
    /// A run that ended.
    pub(crate) notes: Vec<Note>,
}

/// Folds a pass's results over the previous status.
pub(crate) fn fold(
    plan: &Plan,
    previous: &MLOpsProjectStatus,
    results: &Results<ProjectStep, ProjectOutput>,
) -> Folded {
    use ProjectStep as S;
    let folded = fold::components(
        &[Component::Registry, Component::Pipeline],
        results,
        |_| Located::Dev,
        |c| match c {
            Component::Registry => {
                let (models, deployers) = (&plan.registry_readers.model_roles, &plan.registry_readers.deployers);
                let paths = if models.org_paths.is_empty() { &deployers.org_paths } else { &models.org_paths };
                let units = match paths.is_empty() {
                    true => String::new(),
                    false => format!(
                        ", and with {} role name(s) in every account below {}",
                        models.org_arns.len() + deployers.org_arns.len(),
                        paths.join(", ")
                    ),
                };
                format!(
                    "model package group {} shared read-only with {} role(s) of the target accounts{units}",
                    plan.group,
                    models.arns.len() + deployers.arns.len()
                )
            }
            _ => format!("pipeline {} matches definition {}", plan.pipeline.name, plan.hash),
        },
    );
    let mut status = previous.clone();
    let mut notes = Vec::new();
    status.model_package_group_name = Some(plan.group.clone());
    match results.get(&S::Group) {
        Some(Ran::Done(Done::Ready(ProjectOutput::Group(arn)))) => status.model_package_group_arn = Some(arn.clone()),
        // Someone else's group: the project owns nothing, so its environment grants nothing.
        Some(Ran::Done(Done::Failed(f))) if f.error.code == "NameConflict" => status.model_package_group_arn = None,
        _ => {}
    }
    if let Some(Ran::Done(Done::Ready(ProjectOutput::Pipeline(arn)))) = results.get(&S::Pipeline) {
        status.pipeline_arn = Some(arn.clone());
        status.pipeline_definition_hash = Some(plan.hash.clone());
    }
    if let Some(Ran::Done(Done::Ready(ProjectOutput::Run(arn)))) = results.get(&S::Run) {
        if plan.run_on_change {
            status.last_run_definition_hash = Some(plan.hash.clone());
        }
        if plan.run_request.is_some() {
            status.last_run_request = plan.run_request.clone();
        }
        status.last_execution = Some(ExecutionStatus {
            arn: arn.clone(),
            status: RunState::Executing.as_str().into(),
            ..Default::default()
        });
    }
    if let Some(Ran::Done(Done::Ready(ProjectOutput::Execution(run)))) = results.get(&S::Execution) {
        if !run.running() {
            notes.push(run_note(run));
        }
        status.last_execution = Some(execution_status(run));
    }
    if let Some(Ran::Done(Done::Ready(ProjectOutput::Versions { latest, approved }))) = results.get(&S::Versions) {
        status.latest_model_package = latest.as_ref().map(|v| package_ref(v, true));
        status.latest_approved_model_package = approved.as_ref().map(|v| package_ref(v, false));
    }
    let outcome = folded.outcome.clone().unwrap_or_else(|| Outcome::Ready {
        message: format!("model package group {} and pipeline {} converged", plan.group, plan.pipeline.name),
    });
    Folded {
        status,
        outcome,
        components: folded.components,
        retry: folded.outcome.is_some().then_some(folded.retry),
        failure: folded.failure,
        notes,
    }
}

fn run_note(run: &Execution) -> Note {
    let (type_, reason) = if run.status == RunState::Succeeded {
        (EventType::Normal, EventReason::RunSucceeded)
    } else {
        (EventType::Warning, EventReason::RunFailed)
    };
    let why = run.failure_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    Note { type_, reason, note: format!("pipeline run {} {}{why}", run.arn, run.status.as_str()) }
}

fn execution_status(run: &Execution) -> ExecutionStatus {
    ExecutionStatus {
        arn: run.arn.clone(),
        status: run.status.as_str().to_owned(),
        start_time: run.start_time.clone(),
        end_time: run.end_time.clone(),
        failure_reason: run.failure_reason.clone(),
    }
}

fn package_ref(version: &Version, with_status: bool) -> ModelPackageRef {
    ModelPackageRef {
        arn: version.arn.clone(),
        version: version.version,
        approval_status: with_status.then(|| version.approval_status.as_str().to_owned()),
    }
}

/// `LastRunSucceeded`, once there is a run: Unknown while it runs, True when it succeeded, False
/// with SageMaker's reason otherwise. A failed run does not make the project unready.
pub(crate) fn last_run(execution: Option<&ExecutionStatus>) -> Option<Extra> {
    let run = execution?;
    let (status, reason, message) = match RunState::parse(&run.status) {
        RunState::Succeeded => (Some(true), Reason::Converged, format!("run {} succeeded", run.arn)),
        RunState::Executing | RunState::Stopping => {
            (None, Reason::Pending(Component::Pipeline), format!("run {} is {}", run.arn, run.status))
        }
        _ => (
            Some(false),
            Reason::Failed(Component::Pipeline),
            format!(
                "run {} {}{}",
                run.arn,
                run.status,
                run.failure_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            ),
        ),
    };
    Some(Extra { type_: LAST_RUN, status, reason, message })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sagekeeper_aws::AwsError;
    use sagekeeper_aws::registry::Approval;

    use super::*;
    use crate::project::plan::plan;
    use crate::project::plan::tests::example;
    use crate::steps::Failure;

    fn ready(o: ProjectOutput) -> Ran<ProjectStep, ProjectOutput> {
        Ran::Done(Done::Ready(o))
    }

    fn failed(code: &str, kind: ErrorKind) -> Ran<ProjectStep, ProjectOutput> {
        let error = AwsError { kind, code: code.into(), message: "refused".into() };
        Ran::Done(Done::Failed(Failure::new(error, "pipeline p")))
    }

    fn version(n: i64, approval: Approval) -> Version {
        Version { arn: format!("arn:package/{n}"), version: n, approval_status: approval }
    }

    #[test]
    fn a_full_pass_that_started_a_run_records_its_trigger_and_the_registry() {
        use ProjectStep as S;
        let (project, env) = example(serde_json::json!({"pipeline": {"runOnChange": true}}));
        let plan = plan(&project, &env).expect("a plan");
        let run = Execution {
            arn: "arn:run/1".into(),
            status: RunState::Executing,
            start_time: None,
            end_time: None,
            failure_reason: None,
        };
        let results = BTreeMap::from([
            (S::Group, ready(ProjectOutput::Group("arn:group".into()))),
            (S::Assets, ready(ProjectOutput::Done)),
            (S::Pipeline, ready(ProjectOutput::Pipeline("arn:pipeline".into()))),
            (S::Run, ready(ProjectOutput::Run("arn:run/1".into()))),
            (S::Execution, ready(ProjectOutput::Execution(run))),
            (
                S::Versions,
                ready(ProjectOutput::Versions {
                    latest: Some(version(2, Approval::PendingManualApproval)),
                    approved: Some(version(1, Approval::Approved)),
                }),
            ),
        ]);
        let folded = fold(&plan, &MLOpsProjectStatus::default(), &results);
        assert!(folded.outcome.is_ready(), "{:?}", folded.outcome);
        assert_eq!(folded.retry, None);
        let s = &folded.status;
        assert_eq!(s.model_package_group_arn.as_deref(), Some("arn:group"));
        assert_eq!(s.pipeline_definition_hash.as_deref(), Some(plan.hash.as_str()));
        assert_eq!(s.last_run_definition_hash.as_deref(), Some(plan.hash.as_str()));
        assert_eq!(s.last_execution.as_ref().map(|e| e.status.as_str()), Some("Executing"));
        assert_eq!(
            s.latest_model_package.as_ref().and_then(|p| p.approval_status.as_deref()),
            Some("PendingManualApproval")
        );
        assert_eq!(s.latest_approved_model_package.as_ref().map(|p| p.version), Some(1));
        assert!(folded.notes.is_empty(), "no run ended");
        let last = last_run(s.last_execution.as_ref()).expect("a run");
        assert_eq!(last.status, None);
    }

    #[test]
    fn a_refused_pipeline_stalls_the_project_leaves_the_registry_ready_and_starts_no_run() {
        use ProjectStep as S;
        let (project, env) = example(serde_json::json!({"pipeline": {"runOnChange": true}}));
        let plan = plan(&project, &env).expect("a plan");
        let results = BTreeMap::from([
            (S::Group, ready(ProjectOutput::Group("arn:group".into()))),
            (S::Assets, ready(ProjectOutput::Done)),
            (S::Pipeline, failed("ValidationException", ErrorKind::Invalid)),
            (S::Run, Ran::Blocked(S::Pipeline)),
            (S::Execution, Ran::Blocked(S::Run)),
            (S::Versions, ready(ProjectOutput::Versions { latest: None, approved: None })),
        ]);
        let folded = fold(&plan, &MLOpsProjectStatus::default(), &results);
        assert!(
            matches!(&folded.outcome, Outcome::Stalled { reason: Reason::InvalidConfiguration, message }
            if message.starts_with("ValidationException: pipeline p")),
            "{:?}",
            folded.outcome
        );
        assert!(folded.components[0].outcome.is_ready());
        assert!(!folded.components[1].outcome.is_ready());
        assert_eq!(folded.status.pipeline_definition_hash, None);
        assert_eq!(folded.status.last_run_definition_hash, None, "the trigger is still owed");
        assert_eq!(folded.failure, Some(ErrorKind::Invalid));
    }

    #[test]
    fn someone_elses_group_unpins_the_arn_and_a_finished_run_becomes_an_event() {
        use ProjectStep as S;
        let (project, env) = example(serde_json::json!({}));
        let plan = plan(&project, &env).expect("a plan");
        let previous = MLOpsProjectStatus { model_package_group_arn: Some("arn:group".into()), ..Default::default() };
        let run = Execution {
            arn: "arn:run/1".into(),
            status: RunState::Failed,
            start_time: None,
            end_time: Some("2026-12-02T10:00:00Z".into()),
            failure_reason: Some("capacity".into()),
        };
        let results = BTreeMap::from([
            (S::Group, failed("NameConflict", ErrorKind::Conflict)),
            (S::Execution, ready(ProjectOutput::Execution(run))),
            (S::Versions, Ran::Blocked(S::Group)),
        ]);
        let folded = fold(&plan, &previous, &results);
        assert_eq!(folded.status.model_package_group_arn, None);
        assert!(
            matches!(folded.outcome, Outcome::Stalled { reason: Reason::NameConflict, .. }),
            "{:?}",
            folded.outcome
        );
        assert_eq!(folded.notes.len(), 1);
        assert_eq!(folded.notes[0].reason, EventReason::RunFailed);
        assert!(folded.notes[0].note.ends_with("Failed: capacity"), "{}", folded.notes[0].note);
        let last = last_run(folded.status.last_execution.as_ref()).expect("a run");
        assert_eq!(last.status, Some(false));
    }
}
