//! Run: the work of each step of a project's graph, handed to the one runner. Every step works
//! in the environment's dev account.

use std::collections::BTreeMap;

use futures::FutureExt;
use sagekeeper_aws::pipelines::{self, Execution};
use sagekeeper_aws::registry::{self, Version};
use sagekeeper_aws::steps::Changes;
use sagekeeper_aws::{AwsError, Session, Shared, Snapshot};
use sagekeeper_policy::pipeline::{self as template, ABALONE_ASSETS};

use super::plan::{Plan, ProjectStep};
use crate::context::Context;
use crate::steps::{Done, Inputs, Lane, Results, Service, Step};

/// What a step of a project produces.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ProjectOutput {
    /// The model package group's ARN.
    Group(String),
    /// The pipeline's ARN.
    Pipeline(String),
    /// The run started (or found) for the trigger.
    Run(String),
    /// The latest run as it is now.
    Execution(Execution),
    /// The registry's newest version and newest approved version.
    Versions { latest: Option<Version>, approved: Option<Version> },
    /// Done, with nothing to pass on.
    Done,
}

/// Runs the project's graph once (`light`: only what a converged project polls).
pub(crate) async fn run(
    ctx: &Context,
    plan: &Plan,
    account: &str,
    session: &Session,
    light: bool,
    changes: &Changes,
) -> Results<ProjectStep, ProjectOutput> {
    let seen = Snapshot::default();
    let pass = Pass { plan, session, changes, seen: &seen, shared: &ctx.shared };
    let steps = plan
        .graph(light)
        .into_iter()
        .map(|(id, needs)| {
            let service = if id == ProjectStep::Assets { Service::S3 } else { Service::SageMaker };
            let step = id.clone();
            Step::new(id, needs, Lane::new(account, service), move |inputs| pass.ensure(step.clone(), inputs).boxed())
        })
        .collect();
    let results = ctx.runner().run("MLOpsProject", steps, &BTreeMap::new()).await;
    ctx.metrics.observed("MLOpsProject", seen.reads());
    results
}

#[derive(Clone, Copy)]
struct Pass<'a> {
    plan: &'a Plan,
    session: &'a Session,
    changes: &'a Changes,
    /// What the pass has read of AWS so far.
    seen: &'a Snapshot,
    /// Where it leaves the registry read for the project's deployments.
    shared: &'a Shared,
}

impl Pass<'_> {
    async fn ensure(self, id: ProjectStep, inputs: Inputs<ProjectStep, ProjectOutput>) -> Done<ProjectOutput> {
        use ProjectStep as S;
        let (plan, session, changes) = (self.plan, self.session, self.changes);
        let group = format!("model package group {}", plan.group);
        let pipeline = format!("pipeline {}", plan.pipeline.name);
        match id {
            S::Group => {
                let readers = &plan.registry_readers;
                let policy = |arn: &str| {
                    sagekeeper_policy::registry::group_policy(arn, &readers.model_roles, &readers.deployers)
                };
                let result = registry::ensure_group(session, &plan.owner, &plan.group, policy, changes).await;
                Done::from_step(result, group).map(ProjectOutput::Group)
            }
            S::Assets => {
                let assets: Vec<(String, &'static [u8])> = ABALONE_ASSETS
                    .iter()
                    .map(|a| (a.path().trim_start_matches(template::ASSETS).to_owned(), a.body))
                    .collect();
                let prefix = format!("{}{}", plan.settings.prefix, template::ASSETS);
                let bucket = &plan.settings.data_bucket;
                let result =
                    pipelines::ensure_assets(session, bucket, &prefix, &assets, &plan.settings.output_key, changes)
                        .await;
                Done::from_aws(result.map(|()| ProjectOutput::Done), format!("s3://{bucket}/{prefix}"))
            }
            S::Pipeline => {
                let result = pipelines::ensure_pipeline(session, &plan.pipeline, changes).await;
                Done::from_step(result, pipeline).map(ProjectOutput::Pipeline)
            }
            S::Run => {
                let Some(trigger) = &plan.trigger else { return Done::missing(&id) };
                let result = pipelines::start_run(session, &plan.owner, &plan.pipeline.name, trigger, changes).await;
                Done::from_aws(result.map(|(arn, _)| ProjectOutput::Run(arn)), pipeline)
            }
            S::Execution => {
                let arn = match inputs.get(&S::Run) {
                    Some(ProjectOutput::Run(arn)) => arn,
                    _ => match &plan.running {
                        Some(arn) => arn,
                        None => return Done::missing(&S::Run),
                    },
                };
                Done::from_aws(
                    pipelines::describe_run(session, arn).await.map(ProjectOutput::Execution),
                    format!("run {arn}"),
                )
            }
            S::Versions => {
                let result: Result<_, AwsError> =
                    registry::latest_versions(session, self.seen, self.shared, &plan.group).await;
                Done::from_aws(result.map(|(latest, approved)| ProjectOutput::Versions { latest, approved }), group)
            }
        }
    }
}
