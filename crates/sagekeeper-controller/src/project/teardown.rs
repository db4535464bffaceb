//! Teardown: the project's graph reversed, through the one runner. The pipeline goes first (once
//! its runs stopped), then the group it registers into and the template's assets it names. The
//! group keeps its registered versions unless `deleteDataOnDelete`.

use std::collections::BTreeMap;

use futures::FutureExt;
use sagekeeper_aws::registry::{self, GroupTeardown};
use sagekeeper_aws::steps::{Changes, Owner};
use sagekeeper_aws::{Session, pipelines};

use super::plan::ProjectStep;
use crate::context::Context;
use crate::steps::{Done, Lane, Results, Service, Step};

/// What teardown removes, and where.
pub(crate) struct Teardown {
    pub(crate) owner: Owner,
    pub(crate) pipeline: String,
    pub(crate) group: String,
    /// The data bucket and the assets' prefix, when the template's assets are there.
    pub(crate) assets: Option<(String, String)>,
    pub(crate) delete_versions: bool,
}

impl Teardown {
    /// The graph of [`super::plan::Plan::graph`] reversed, for the steps that made something:
    /// a step goes after every step that needed it.
    pub(crate) fn graph(&self) -> Vec<(ProjectStep, Vec<ProjectStep>)> {
        use ProjectStep as S;
        let mut steps = vec![(S::Pipeline, vec![]), (S::Group, vec![S::Pipeline])];
        if self.assets.is_some() {
            steps.push((S::Assets, vec![S::Pipeline]));
        }
        steps
    }
}

/// One pass of teardown; a Ready group step carries the number of versions it kept.
pub(crate) async fn run(
    ctx: &Context,
    teardown: &Teardown,
    account: &str,
    session: &Session,
    changes: &Changes,
) -> Results<ProjectStep, usize> {
    let steps = teardown
        .graph()
        .into_iter()
        .map(|(id, needs)| {
            let service = if id == ProjectStep::Assets { Service::S3 } else { Service::SageMaker };
            let step = id.clone();
            Step::new(id, needs, Lane::new(account, service), move |_| {
                remove(teardown, session, step.clone(), changes).boxed()
            })
        })
        .collect();
    ctx.runner().run("MLOpsProject", steps, &BTreeMap::new()).await
}

async fn remove(teardown: &Teardown, session: &Session, id: ProjectStep, changes: &Changes) -> Done<usize> {
    let t = teardown;
    match id {
        ProjectStep::Pipeline => {
            let result = pipelines::delete_pipeline(session, &t.owner, &t.pipeline, changes).await;
            Done::from_step(result, format!("pipeline {}", t.pipeline)).map(|()| 0)
        }
        ProjectStep::Assets => {
            let Some((bucket, prefix)) = &t.assets else { return Done::Ready(0) };
            let result = pipelines::delete_assets(session, bucket, prefix).await;
            Done::from_aws(result.map(|()| 0), format!("s3://{bucket}/{prefix}"))
        }
        ProjectStep::Group => {
            let result = registry::delete_group(session, &t.owner, &t.group, t.delete_versions, changes).await;
            Done::from_aws(result, format!("model package group {}", t.group)).map(|gone| match gone {
                GroupTeardown::Deleted => 0,
                GroupTeardown::Kept(versions) => versions,
            })
        }
        other => Done::missing(&other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::plan::plan;
    use crate::project::plan::tests::example;

    #[test]
    fn teardown_reverses_every_forward_need_between_steps_that_made_something() {
        let (project, env) = example(serde_json::json!({"pipeline": {"runOnChange": true}}));
        let forward = plan(&project, &env).expect("a plan").graph(false);
        let teardown = Teardown {
            owner: Owner { uid: "u".into(), base_tags: Default::default(), removed_tags: Default::default() },
            pipeline: "p".into(),
            group: "g".into(),
            assets: Some(("bucket".into(), "prefix/".into())),
            delete_versions: false,
        };
        let down: BTreeMap<ProjectStep, Vec<ProjectStep>> = teardown.graph().into_iter().collect();
        for (id, needs) in forward.iter().filter(|(id, _)| down.contains_key(id)) {
            for need in needs.iter().filter(|n| down.contains_key(*n)) {
                assert!(down[need].contains(id), "{need:?} must go after {id:?}");
            }
        }
        assert_eq!(down[&ProjectStep::Assets], [ProjectStep::Pipeline]);
    }

    #[test]
    fn teardown_is_done_only_when_every_step_is_and_a_refusal_says_how_to_get_past_it() {
        use sagekeeper_api::conditions::{Outcome, Reason};
        use sagekeeper_aws::{AwsError, ErrorKind};

        use crate::steps::{Failure, Ran};
        let pending: Results<ProjectStep, usize> = BTreeMap::from([
            (ProjectStep::Pipeline, Ran::Done(Done::pending("pipeline p: waiting for 1 run(s) to stop"))),
            (ProjectStep::Group, Ran::Blocked(ProjectStep::Pipeline)),
        ]);
        let folded = crate::fold::deletion(&pending);
        assert!(
            matches!(&folded.outcome, Some(Outcome::Progressing { message, .. }) if message.contains("waiting for 1 run(s)")),
            "{:?}",
            folded.outcome
        );
        let error = AwsError { kind: ErrorKind::Throttled, code: "ThrottlingException".into(), message: "slow".into() };
        let failed: Results<ProjectStep, usize> = BTreeMap::from([
            (ProjectStep::Pipeline, Ran::Done(Done::Ready(0))),
            (ProjectStep::Group, Ran::Done(Done::Failed(Failure::new(error, "model package group g")))),
        ]);
        let folded = crate::fold::deletion(&failed);
        let message = folded.outcome.as_ref().map(Outcome::message).unwrap_or_default();
        assert!(message.contains("deletionPolicy: Retain"), "{message}");
        assert!(matches!(folded.outcome, Some(Outcome::Progressing { reason: Reason::Failed(_), .. })));
        let done: Results<ProjectStep, usize> = BTreeMap::from([(ProjectStep::Pipeline, Ran::Done(Done::Ready(0)))]);
        assert!(crate::fold::deletion(&done).outcome.is_none());
    }
}
