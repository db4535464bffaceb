//! Teardown: the environment's graph reversed ([`Plan::teardown_graph`]), through the one
//! runner. The Studio domain (after its profiles, spaces and apps), the buckets and the capture
//! buckets go first; a role after the domain and the buckets whose policies name it; a network
//! after what runs in it; a key after what it encrypts. Data is kept unless `deleteDataOnDelete`:
//! buckets that hold objects, the Studio home file system and the network it still occupies,
//! and the keys that encrypt what is kept stay, listed in `status.retained`.

use std::collections::BTreeMap;

use futures::FutureExt;
use sagekeeper_api::environment::RetainedResource;
use sagekeeper_aws::s3::{self, Deleted};
use sagekeeper_aws::steps::Changes;
use sagekeeper_aws::{flow_logs, kms};
use sagekeeper_aws::{iam, network, studio};

use super::plan::{BucketPurpose, EnvStep, KeyPurpose, Plan, RoleKind, TargetPlan};
use crate::context::Context;
use crate::steps::{Done, Inputs, Lane, Ran, Results, Service, Step};

/// The Studio home file system, as `status.retained` names it.
const HOME: &str = "efs-file-system";
/// A flow log group, as `status.retained` names it.
const LOG_GROUP: &str = "logs-log-group";

/// What a teardown step kept on purpose (nothing, when its resource is gone).
pub(crate) type Kept = Vec<RetainedResource>;

/// One pass of teardown. `retained` is what earlier passes recorded as kept.
pub(crate) async fn run(
    ctx: &Context,
    plan: &Plan,
    domain_id: Option<&str>,
    retained: &[RetainedResource],
    changes: &Changes,
) -> Results<EnvStep, Kept> {
    let pass = Pass { ctx, plan, domain_id, retained, changes };
    let steps = plan
        .teardown_graph()
        .into_iter()
        .map(|(id, after)| {
            let lane = pass.lane(&id);
            let step = id.clone();
            Step::new(id, after, lane, move |inputs| pass.remove(step.clone(), inputs).boxed())
        })
        .collect();
    ctx.runner().run("DataScienceEnvironment", steps, &BTreeMap::new()).await
}

/// What is kept after a pass: what earlier passes kept and what this one kept.
pub(crate) fn kept(retained: &[RetainedResource], results: &Results<EnvStep, Kept>) -> Kept {
    let mut kept = retained.to_vec();
    for ran in results.values() {
        if let Ran::Done(Done::Ready(list)) = ran {
            for r in list {
                keep(&mut kept, &r.resource, &r.id, &r.reason);
            }
        }
    }
    kept
}

#[derive(Clone, Copy)]
struct Pass<'a> {
    ctx: &'a Context,
    plan: &'a Plan,
    domain_id: Option<&'a str>,
    retained: &'a [RetainedResource],
    changes: &'a Changes,
}

impl Pass<'_> {
    fn lane(&self, id: &EnvStep) -> Lane {
        let account = match id.target() {
            None => &self.plan.dev.account_id,
            Some(name) => self
                .plan
                .targets
                .iter()
                .find(|t| t.account.name == name)
                .map_or(&self.plan.dev.account_id, |t| &t.account.account_id),
        };
        let service = match id {
            EnvStep::Network | EnvStep::TargetNetwork(_) => Service::Ec2,
            EnvStep::Key(_) | EnvStep::TargetKey(_) => Service::Kms,
            EnvStep::Role(_) | EnvStep::TargetRole(_) | EnvStep::FlowLogRole(_) => Service::Iam,
            EnvStep::FlowLogs(_) => Service::Logs,
            EnvStep::Bucket(_) | EnvStep::CaptureBucket(_) => Service::S3,
            _ => Service::SageMaker,
        };
        Lane::new(account, service)
    }

    /// Whether what ran before kept something of `resource`.
    fn kept_before(&self, inputs: &Inputs<EnvStep, Kept>, resource: &str) -> bool {
        self.retained.iter().any(|r| r.resource == resource)
            || inputs.iter().any(|(_, kept)| kept.iter().any(|r| r.resource == resource))
    }

    async fn remove(self, id: EnvStep, inputs: Inputs<EnvStep, Kept>) -> Done<Kept> {
        use EnvStep as S;
        let plan = self.plan;
        let (owner, changes) = (&plan.owner, self.changes);
        let dev = || self.ctx.sessions.session(&plan.dev.access);
        let gone = |result: Result<(), sagekeeper_aws::AwsError>, resource: String| {
            Done::from_aws(result.map(|()| Kept::new()), resource)
        };
        match &id {
            // The home file system (kept unless data goes) is recorded before the domain goes,
            // once: a pass that cannot tell whether the home was used stops the domain there.
            S::Home => {
                if plan.delete_data || self.retained.iter().any(|r| r.resource == HOME) {
                    return Done::Ready(Kept::new());
                }
                let domain = plan.names.domain();
                let used = studio::used_home(&dev(), owner, &domain, self.domain_id).await;
                Done::from_aws(used, "Studio domain").map(|efs| {
                    let why = "it holds Studio home directories; deleteDataOnDelete is false";
                    efs.map(|efs| retained(HOME, &efs, why)).into_iter().collect()
                })
            }
            S::Domain => {
                let keep_home = self.kept_before(&inputs, HOME);
                let domain = plan.names.domain();
                let result = studio::delete_domain(&dev(), owner, &domain, self.domain_id, !keep_home, changes).await;
                Done::from_step(result, "Studio domain").map(|()| Kept::new())
            }
            S::Role(kind) => {
                let name = match kind {
                    RoleKind::Execution => &plan.roles.execution,
                    RoleKind::Pipeline => &plan.roles.pipeline,
                    RoleKind::ModelExecution => &plan.roles.model_execution,
                    RoleKind::Persona(sagekeeper_api::environment::Persona::DataScientist) => {
                        &plan.roles.data_scientist
                    }
                    RoleKind::Persona(sagekeeper_api::environment::Persona::TeamAdmin) => &plan.roles.team_admin,
                };
                gone(
                    iam::delete_role(&dev(), owner, name, &plan.dev.boundary, changes).await,
                    format!("IAM role {name}"),
                )
            }
            S::Network => {
                // The kept home file system still has mount targets in the private subnets.
                if self.kept_before(&inputs, HOME) {
                    let why = "the kept Studio home file system still has mount targets in it";
                    return Done::Ready(vec![retained("vpc", &plan.names.ec2_name("dev"), why)]);
                }
                let borrowed = plan.network.existing.as_ref().map(|e| e.vpc_id.as_str());
                let result = network::delete_network(&dev(), owner, borrowed, self.domain_id, changes).await;
                Done::from_step(result, "network").map(|()| Kept::new())
            }
            S::Bucket(purpose) => {
                let bucket = match purpose {
                    BucketPurpose::Data => &plan.data_bucket,
                    BucketPurpose::Models => &plan.models_bucket,
                };
                let deleted = s3::delete_bucket(&dev(), owner, bucket, plan.delete_data, changes).await;
                Done::from_aws(deleted, format!("bucket {bucket}")).map(|deleted| match deleted {
                    Deleted::Gone => Kept::new(),
                    Deleted::KeptWithData => {
                        vec![retained("s3-bucket", bucket, "it holds objects; deleteDataOnDelete is false")]
                    }
                })
            }
            // Someone else's key: never deleted, nor recorded as kept (it is not ours to keep).
            S::Key(purpose) if plan.existing_keys.contains_key(purpose) => Done::Ready(Kept::new()),
            S::Key(purpose) => {
                let alias = plan.names.key_alias(purpose.name());
                let keep_it = match purpose {
                    // Each pass asks the group afresh, so what this pass's inputs say is enough.
                    KeyPurpose::Ebs => inputs.iter().any(|(_, kept)| kept.iter().any(|r| r.resource == LOG_GROUP)),
                    KeyPurpose::Studio => self.kept_before(&inputs, HOME),
                    KeyPurpose::S3 => inputs.iter().any(|(_, kept)| kept.iter().any(|r| r.resource == "s3-bucket")),
                };
                if keep_it {
                    return Done::Ready(vec![retained("kms-key", &alias, "it encrypts kept data")]);
                }
                gone(kms::delete_key(&dev(), owner, &alias, changes).await, format!("KMS key {alias}"))
            }
            S::FlowLogRole(scope) | S::FlowLogs(scope) => {
                let account = match scope {
                    None => &plan.dev,
                    Some(name) => match plan.targets.iter().find(|t| &t.account.name == name) {
                        Some(target) => &target.account,
                        None => return Done::missing(&id),
                    },
                };
                let session = self.ctx.sessions.session(&account.access);
                let names = &plan.flow_log_names;
                let place = scope.as_deref().map(|name| format!(" in {name}")).unwrap_or_default();
                match &id {
                    S::FlowLogs(_) => {
                        let result =
                            flow_logs::remove(&session, owner, &names.log_group, plan.delete_data, changes).await;
                        Done::from_aws(result, format!("flow logs{place}")).map(|removed| match removed {
                            flow_logs::Removed::Gone => Kept::new(),
                            flow_logs::Removed::GroupKept => vec![retained(
                                LOG_GROUP,
                                &format!("{}{place}", names.log_group),
                                "it holds flow log records; deleteDataOnDelete is false",
                            )],
                        })
                    }
                    _ => gone(
                        iam::delete_role(&session, owner, &names.role, &account.boundary, changes).await,
                        format!("IAM role {}{place}", names.role),
                    ),
                }
            }
            S::CaptureBucket(name) | S::TargetRole(name) | S::TargetNetwork(name) | S::TargetKey(name) => {
                let Some(target) = plan.targets.iter().find(|t| &t.account.name == name) else {
                    return Done::missing(&id);
                };
                let session = self.ctx.sessions.session(&target.account.access);
                match &id {
                    S::CaptureBucket(_) => {
                        let bucket = &target.capture_bucket;
                        let deleted = s3::delete_bucket(&session, owner, bucket, plan.delete_data, changes).await;
                        Done::from_aws(deleted, format!("bucket {bucket}")).map(|deleted| match deleted {
                            Deleted::Gone => Kept::new(),
                            Deleted::KeptWithData => vec![retained(
                                "s3-bucket",
                                bucket,
                                &format!("captured data in account {name}; deleteDataOnDelete is false"),
                            )],
                        })
                    }
                    S::TargetRole(_) => {
                        let role = &target.model_role;
                        let result = iam::delete_role(&session, owner, role, &target.account.boundary, changes).await;
                        gone(result, format!("IAM role {role} in {name}"))
                    }
                    S::TargetNetwork(_) => match network::delete_network(
                        &session,
                        owner,
                        target.network.existing.as_ref().map(|e| e.vpc_id.as_str()),
                        None,
                        changes,
                    )
                    .await
                    {
                        Ok(sagekeeper_aws::steps::Step::Pending(why)) => Done::pending(format!("{name}: {why}")),
                        result => Done::from_step(result, format!("network in {name}")).map(|()| Kept::new()),
                    },
                    _ => {
                        let kept = |what: &str| inputs.iter().any(|(_, kept)| kept.iter().any(|r| r.resource == what));
                        if kept("s3-bucket") || kept(LOG_GROUP) {
                            let why = format!("it encrypts the kept capture bucket or flow log group in {name}");
                            return Done::Ready(vec![retained("kms-key", &target.key_alias, &why)]);
                        }
                        let result = kms::delete_key(&session, owner, &target.key_alias, changes).await;
                        gone(result, format!("KMS key in {name}"))
                    }
                }
            }
            _ => Done::missing(&id),
        }
    }
}

/// Cleans up in a target account the spec dropped: its steps of the teardown graph, one after
/// another in the graph's order. What the dev account's policies named there no longer matters.
pub(crate) async fn remove_target(ctx: &Context, plan: &Plan, target: &TargetPlan, changes: &Changes) -> Done<Kept> {
    let mut alone = plan.clone();
    alone.targets = vec![target.clone()];
    let pass = Pass { ctx, plan: &alone, domain_id: None, retained: &[], changes };
    let name = &target.account.name;
    let mut done: BTreeMap<EnvStep, Kept> = BTreeMap::new();
    let scope = Some(name.clone());
    for id in [
        EnvStep::CaptureBucket(name.clone()),
        EnvStep::TargetRole(name.clone()),
        EnvStep::FlowLogs(scope.clone()),
        EnvStep::FlowLogRole(scope),
        EnvStep::TargetNetwork(name.clone()),
        EnvStep::TargetKey(name.clone()),
    ] {
        match pass.remove(id.clone(), done.clone().into()).await {
            Done::Ready(kept) => done.insert(id, kept),
            other => return other,
        };
    }
    Done::Ready(done.into_values().flatten().collect())
}

fn retained(resource: &str, id: &str, reason: &str) -> RetainedResource {
    RetainedResource { resource: resource.to_owned(), id: id.to_owned(), reason: reason.to_owned() }
}

pub(crate) fn keep(kept: &mut Vec<RetainedResource>, resource: &str, id: &str, reason: &str) {
    if !kept.iter().any(|r| r.resource == resource && r.id == id) {
        kept.push(retained(resource, id, reason));
    }
}
