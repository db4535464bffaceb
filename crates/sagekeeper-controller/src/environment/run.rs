//! Run: the work of each step of the environment's graph, handed to the one runner. A step
//! gets the outputs of the steps it needs and nothing else; the policy documents it writes are
//! built from those outputs and the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use sagekeeper_api::DataScienceEnvironmentStatus;
use sagekeeper_api::environment::{Persona, RetainedResource, TargetAccountStatus};
use sagekeeper_aws::Snapshot;
use sagekeeper_aws::flow_logs::{self, FlowLogOutputs, FlowLogPlan};
use sagekeeper_aws::iam::{self, RoleOutputs, RolePlan};
use sagekeeper_aws::kms::{self, KeyOutputs, KeyPlan};
use sagekeeper_aws::network::{self, EndpointOutputs, NetworkOutputs, S3_ENDPOINT};
use sagekeeper_aws::s3::{self, BucketPlan};
use sagekeeper_aws::steps::{Changes, Depth, Step as AwsStep};
use sagekeeper_aws::studio::{self, DomainOutputs, DomainPlan, ProfilePlan};
use sagekeeper_policy::inputs::{BorrowedKeys, Environment, Keys, Principals, Roles, Target};

use super::plan::{AccountPlan, BucketPurpose, EnvStep, KeyPurpose, Plan, RoleKind, TargetPlan};
use crate::context::Context;
use crate::steps::{Done, Failure, Inputs, Lane, Ran, Results, Service, Step};

/// How long after a role's creation a refusal naming it is taken for IAM propagation.
const IAM_PROPAGATION: Duration = Duration::from_secs(120);

/// What a step of an environment produces.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EnvOutput {
    /// A network's ids, and NAT gateway work still in progress there.
    Network(NetworkOutputs),
    /// A network's VPC endpoints, and which is not available yet.
    Endpoints(EndpointOutputs),
    /// A key.
    Key(KeyOutputs),
    /// A role; `None` when it was removed (a persona no longer used).
    Role(Option<RoleOutputs>),
    /// The domain and what it is still doing; `None` when Studio is disabled and it is gone.
    Domain(Option<(DomainOutputs, Option<String>)>),
    /// The user profile names.
    Profiles(Vec<String>),
    /// A VPC's flow log; `None` when flow logs are off and it is gone.
    FlowLogs(Option<FlowLogOutputs>),
    /// Cleanup in a target account the spec dropped is done; what it kept on purpose.
    Removed(Vec<RetainedResource>),
    /// Done, with nothing to pass on.
    Done,
}

/// The target accounts the status holds and the spec no longer lists: cleaned up there. What
/// an account has is per account, not per stage: an account moved to another stage keeps it.
pub(crate) fn leaving(plan: &Plan, previous: &DataScienceEnvironmentStatus) -> Vec<TargetAccountStatus> {
    let listed = |t: &TargetAccountStatus| plan.targets.iter().any(|p| p.account.name == t.account);
    previous.target_accounts.iter().filter(|t| !listed(t)).cloned().collect()
}

/// Runs the environment's graph once at `depth`, reusing what `reuse` holds but for the steps
/// of `again` (see [`crate::steps::Runner::run_again`]).
pub(crate) async fn run(
    ctx: &Context,
    plan: &Plan,
    previous: &DataScienceEnvironmentStatus,
    (reuse, again): &(BTreeMap<EnvStep, EnvOutput>, BTreeSet<EnvStep>),
    depth: Depth,
    changes: &Changes,
) -> Results<EnvStep, EnvOutput> {
    let leaving = leaving(plan, previous);
    let names: Vec<String> = leaving.iter().map(|t| t.account.clone()).collect();
    let seen = Snapshot::default();
    let pass = Pass { ctx, plan, previous, changes, leaving: &leaving, seen: &seen, depth };
    let steps = plan
        .graph(&names)
        .into_iter()
        .map(|(id, needs)| {
            let lane = pass.lane(&id);
            let step = id.clone();
            Step::new(id, needs, lane, move |inputs| pass.ensure(step.clone(), inputs).boxed())
        })
        .collect();
    let results = ctx.runner().run_again("DataScienceEnvironment", steps, reuse, again).await;
    ctx.metrics.observed("DataScienceEnvironment", seen.reads());
    results
}

/// What the next pass of an object still converging may reuse: every ready output, except a
/// network whose NAT gateway work is unfinished (only its own step carries that on).
fn reusable(results: &Results<EnvStep, EnvOutput>) -> BTreeMap<EnvStep, EnvOutput> {
    results
        .iter()
        .filter_map(|(id, ran)| match ran {
            Ran::Done(Done::Ready(EnvOutput::Network(n))) if n.waiting.is_some() => None,
            Ran::Done(Done::Ready(output)) => Some((id.clone(), output.clone())),
            _ => None,
        })
        .collect()
}

/// What every step of one pass shares.
#[derive(Clone, Copy)]
struct Pass<'a> {
    ctx: &'a Context,
    plan: &'a Plan,
    previous: &'a DataScienceEnvironmentStatus,
    changes: &'a Changes,
    leaving: &'a [TargetAccountStatus],
    /// What the pass has read of AWS so far, by account and resource family.
    seen: &'a Snapshot,
    /// How much of what has no batch read it looks at.
    depth: Depth,
}

impl<'a> Pass<'a> {
    fn target(&self, name: &str) -> Option<&'a TargetPlan> {
        self.plan.targets.iter().find(|t| t.account.name == name)
    }

    /// A target account's plan, what the policies name, and that account's part of it.
    fn in_target(
        &self,
        name: &str,
        inputs: &Inputs<EnvStep, EnvOutput>,
    ) -> Option<(&'a TargetPlan, Environment, Target)> {
        let target = self.target(name)?;
        let env = self.environment(inputs);
        let input = env.targets.iter().find(|t| t.account_id == target.account.account_id)?.clone();
        Some((target, env, input))
    }

    fn lane(&self, id: &EnvStep) -> Lane {
        use EnvStep as S;
        let service = match id {
            S::Network | S::VpcEndpoints | S::NetworkAvailable => Service::Ec2,
            S::TargetNetwork(_) | S::TargetVpcEndpoints(_) | S::TargetNetworkAvailable(_) => Service::Ec2,
            S::Key(_) | S::KeyPolicy(_) | S::TargetKey(_) | S::TargetKeyPolicy(_) => Service::Kms,
            S::Role(_) | S::TargetRole(_) | S::FlowLogRole(_) => Service::Iam,
            S::FlowLogs(_) => Service::Logs,
            S::Bucket(_) | S::CaptureBucket(_) | S::RemoveTarget(_) => Service::S3,
            S::Domain | S::DomainInService | S::UserProfiles | S::Home => Service::SageMaker,
        };
        let account = match id.target() {
            None => self.plan.dev.account_id.as_str(),
            Some(name) => self
                .target(name)
                .map(|t| t.account.account_id.as_str())
                .or_else(|| self.leaving.iter().find(|t| t.account == name).and_then(|t| t.account_id.as_deref()))
                .unwrap_or(name),
        };
        Lane::new(account, service)
    }

    async fn ensure(self, id: EnvStep, inputs: Inputs<EnvStep, EnvOutput>) -> Done<EnvOutput> {
        use EnvStep as S;
        let plan = self.plan;
        let dev = || self.ctx.sessions.session(&plan.dev.access);
        match id {
            S::Network => {
                let result = network::ensure_network(
                    &dev(),
                    self.seen,
                    &self.ctx.shared,
                    &plan.network,
                    self.depth,
                    self.changes,
                )
                .await;
                Done::from_step(result, format!("VPC of {}", plan.names.owner())).map(EnvOutput::Network)
            }
            S::VpcEndpoints => {
                let Some(EnvOutput::Network(net)) = inputs.get(&S::Network) else { return Done::missing(&S::Network) };
                let result = network::ensure_vpc_endpoints(
                    &dev(),
                    self.seen,
                    &self.ctx.shared,
                    &plan.network,
                    net,
                    self.changes,
                )
                .await;
                Done::from_aws(result.map(EnvOutput::Endpoints), format!("VPC endpoints of {}", net.vpc_id))
            }
            S::NetworkAvailable => {
                available(&dev(), self.seen, inputs.get(&S::Network), inputs.get(&S::VpcEndpoints)).await
            }
            S::Key(purpose) if plan.existing_keys.contains_key(&purpose) => {
                let arn = &plan.existing_keys[&purpose];
                let field = format!("spec.encryption.existingKeys.{}", purpose.name());
                let result = kms::existing_key(&dev(), &field, arn, &plan.namespace).await;
                // Someone else's: what sagekeeper may read of it is up to its policy.
                let resource = format!(
                    "existing KMS key {} (its policy must let sagekeeper's role describe it and read its policy and tags, by name or through IAM)",
                    purpose.name()
                );
                Done::from_aws(result.map(EnvOutput::Key), resource)
            }
            S::Key(purpose) => {
                let key = key_plan(plan, &plan.dev, purpose.name(), plan.names.key_alias(purpose.name()));
                let result = kms::ensure_key(&dev(), &key, self.depth, self.changes).await;
                Done::from_step(result, format!("KMS key {}", purpose.name())).map(EnvOutput::Key)
            }
            S::Role(kind) => self.dev_role(kind, &inputs).await,
            S::KeyPolicy(purpose) => {
                let env = self.environment(&inputs);
                let policy = match purpose {
                    KeyPurpose::Ebs => sagekeeper_policy::kms::ebs_key_policy(&env),
                    KeyPurpose::Studio => sagekeeper_policy::kms::studio_key_policy(&env),
                    KeyPurpose::S3 => sagekeeper_policy::kms::s3_key_policy(&env),
                };
                let Some(EnvOutput::Key(key)) = inputs.get(&S::Key(purpose)) else {
                    return Done::missing(&S::Key(purpose));
                };
                let result = match plan.existing_keys.contains_key(&purpose) {
                    // Someone else's: checked, never written.
                    true => {
                        let field = format!("spec.encryption.existingKeys.{}", purpose.name());
                        let mut policy = policy;
                        // Without a flow log of the dev VPC (off, or the VPC borrowed),
                        // CloudWatch Logs needs nothing of someone else's key.
                        if (plan.flow_logs.is_none() || plan.network.existing.is_some())
                            && let Some(list) = policy["Statement"].as_array_mut()
                        {
                            list.retain(|s| s["Sid"] != sagekeeper_policy::logs::KEY_STATEMENT_SID);
                        }
                        kms::check_existing_policy(&dev(), &field, key, &policy).await
                    }
                    false => kms::ensure_policy(&dev(), &key.id, &policy, self.changes).await,
                };
                propagating(
                    Done::from_aws(result.map(|()| EnvOutput::Done), format!("KMS key policy {}", purpose.name())),
                    &inputs,
                )
            }
            S::Bucket(purpose) => self.bucket(purpose, &inputs).await,
            S::Domain => self.domain(&inputs).await,
            // Polled on its own, in one call, while the domain step's outputs are reused.
            S::DomainInService => match inputs.get(&S::Domain) {
                Some(EnvOutput::Domain(Some((domain, Some(_))))) => {
                    let result = studio::domain_in_service(&dev(), self.seen, &domain.id).await;
                    Done::from_step(result, format!("Studio domain {}", domain.id)).map(|()| EnvOutput::Done)
                }
                Some(EnvOutput::Domain(_)) => Done::Ready(EnvOutput::Done),
                _ => Done::missing(&S::Domain),
            },
            S::UserProfiles => self.profiles(&inputs).await,
            S::TargetNetwork(name) => {
                let Some(target) = self.target(&name) else { return Done::missing(&S::TargetNetwork(name)) };
                let session = self.ctx.sessions.session(&target.account.access);
                let result = network::ensure_network(
                    &session,
                    self.seen,
                    &self.ctx.shared,
                    &target.network,
                    self.depth,
                    self.changes,
                )
                .await;
                Done::from_step(result, format!("VPC in {}", target.account.name)).map(EnvOutput::Network)
            }
            S::TargetVpcEndpoints(name) => {
                let Some(target) = self.target(&name) else { return Done::missing(&S::TargetVpcEndpoints(name)) };
                let Some(EnvOutput::Network(net)) = inputs.get(&S::TargetNetwork(name.clone())) else {
                    return Done::missing(&S::TargetNetwork(name));
                };
                let session = self.ctx.sessions.session(&target.account.access);
                let result = network::ensure_vpc_endpoints(
                    &session,
                    self.seen,
                    &self.ctx.shared,
                    &target.network,
                    net,
                    self.changes,
                )
                .await;
                let resource = format!("VPC endpoints of {} in {}", net.vpc_id, target.account.name);
                Done::from_aws(result.map(EnvOutput::Endpoints), resource)
            }
            S::TargetNetworkAvailable(name) => {
                let Some(target) = self.target(&name) else { return Done::missing(&S::TargetNetworkAvailable(name)) };
                let session = self.ctx.sessions.session(&target.account.access);
                let endpoints = inputs.get(&S::TargetVpcEndpoints(name.clone()));
                available(&session, self.seen, inputs.get(&S::TargetNetwork(name)), endpoints).await
            }
            S::TargetKey(name) => {
                let Some(target) = self.target(&name) else { return Done::missing(&S::TargetKey(name)) };
                let session = self.ctx.sessions.session(&target.account.access);
                let key = key_plan(plan, &target.account, "endpoint", target.key_alias.clone());
                let result = kms::ensure_key(&session, &key, self.depth, self.changes).await;
                Done::from_step(result, format!("KMS key {} in {}", target.key_alias, target.account.name))
                    .map(EnvOutput::Key)
            }
            S::TargetRole(name) => {
                let Some((target, env, input)) = self.in_target(&name, &inputs) else {
                    return Done::missing(&S::TargetRole(name));
                };
                let role = target_role(plan, target, &env, &input);
                let session = self.ctx.sessions.session(&target.account.access);
                let result = iam::ensure_role(&session, self.seen, &self.ctx.shared, &role, self.changes).await;
                let resource = format!("IAM role {} in {}", role.name, target.account.name);
                Done::from_step(result, resource).map(|r| EnvOutput::Role(Some(r)))
            }
            S::TargetKeyPolicy(name) => {
                let (Some((target, env, input)), Some(EnvOutput::Key(key))) =
                    (self.in_target(&name, &inputs), inputs.get(&S::TargetKey(name.clone())))
                else {
                    return Done::missing(&S::TargetKeyPolicy(name));
                };
                let policy = sagekeeper_policy::kms::target_key_policy(&env, &input);
                let session = self.ctx.sessions.session(&target.account.access);
                let result = kms::ensure_policy(&session, &key.id, &policy, self.changes).await;
                let resource = format!("KMS key policy {} in {}", target.key_alias, target.account.name);
                propagating(Done::from_aws(result.map(|()| EnvOutput::Done), resource), &inputs)
            }
            S::CaptureBucket(name) => {
                let (Some((target, env, input)), Some(EnvOutput::Key(key))) =
                    (self.in_target(&name, &inputs), inputs.get(&S::TargetKey(name.clone())))
                else {
                    return Done::missing(&S::CaptureBucket(name));
                };
                let bucket = BucketPlan {
                    owner: plan.owner.clone(),
                    component: "bucket/capture".into(),
                    name: target.capture_bucket.clone(),
                    region: plan.region.clone(),
                    key_arn: key.arn.clone(),
                    versioning: plan.versioning,
                    policy: sagekeeper_policy::s3::capture_bucket_policy(&env, &input),
                };
                let session = self.ctx.sessions.session(&target.account.access);
                let result = s3::ensure_bucket(&session, &bucket, self.depth, self.changes).await;
                let resource = format!("bucket {} in {}", bucket.name, target.account.name);
                Done::from_step(result, resource).map(|()| EnvOutput::Done)
            }
            S::FlowLogRole(scope) => self.flow_log_role(scope).await,
            S::FlowLogs(scope) => self.flow_logs(scope, &inputs).await,
            S::RemoveTarget(name) => self.remove_target(&name).await,
            // Teardown's alone: never planned for a converge.
            S::Home => Done::missing(&S::Home),
        }
    }

    /// A dev role: ensured when in use, else (a persona no profile or principal uses) removed.
    async fn dev_role(self, kind: RoleKind, inputs: &Inputs<EnvStep, EnvOutput>) -> Done<EnvOutput> {
        use sagekeeper_policy::iam as policy;
        let plan = self.plan;
        let session = self.ctx.sessions.session(&plan.dev.access);
        let boundary = plan.dev.boundary.clone();
        let sagemaker = || policy::service_trust("sagemaker.amazonaws.com", &plan.dev.account_id);
        let env = self.environment(inputs);
        let role = match kind {
            RoleKind::Execution => role(
                plan,
                "execution",
                &plan.roles.execution,
                sagemaker(),
                policy::execution_role_policy(&env),
                boundary,
            ),
            RoleKind::Pipeline => {
                role(plan, "pipeline", &plan.roles.pipeline, sagemaker(), policy::pipeline_role_policy(&env), boundary)
            }
            RoleKind::ModelExecution => role(
                plan,
                "model-execution",
                &plan.roles.model_execution,
                sagemaker(),
                policy::model_execution_role_policy(&env),
                boundary,
            ),
            RoleKind::Persona(persona) => {
                let name = plan.persona_role(persona);
                if !plan.personas.contains(&persona) {
                    let result = iam::delete_role(&session, &plan.owner, name, &boundary, self.changes).await;
                    return Done::from_aws(result.map(|()| EnvOutput::Role(None)), format!("IAM role {name}"));
                }
                let kind = match persona {
                    Persona::DataScientist => sagekeeper_policy::inputs::Persona::DataScientist,
                    Persona::TeamAdmin => sagekeeper_policy::inputs::Persona::TeamAdmin,
                };
                role(
                    plan,
                    &format!("persona/{persona:?}"),
                    name,
                    policy::persona_trust(&env, plan.persona_principals.of(persona)),
                    policy::persona_policy(kind, &env),
                    boundary,
                )
            }
        };
        let result = iam::ensure_role(&session, self.seen, &self.ctx.shared, &role, self.changes).await;
        Done::from_step(result, format!("IAM role {}", role.name)).map(|r| EnvOutput::Role(Some(r)))
    }

    /// The data or models bucket (the models bucket readable by the targets' model roles).
    async fn bucket(self, purpose: BucketPurpose, inputs: &Inputs<EnvStep, EnvOutput>) -> Done<EnvOutput> {
        let plan = self.plan;
        let env = self.environment(inputs);
        let Some(EnvOutput::Key(key)) = inputs.get(&EnvStep::Key(KeyPurpose::S3)) else {
            return Done::missing(&EnvStep::Key(KeyPurpose::S3));
        };
        let (name, readers, component) = match purpose {
            BucketPurpose::Data => (&plan.data_bucket, Principals::default(), "bucket/data"),
            BucketPurpose::Models => (&plan.models_bucket, env.target_model_roles(), "bucket/models"),
        };
        let bucket = BucketPlan {
            owner: plan.owner.clone(),
            component: component.into(),
            name: name.clone(),
            region: plan.region.clone(),
            key_arn: key.arn.clone(),
            versioning: plan.versioning,
            policy: sagekeeper_policy::s3::environment_bucket_policy(&env, name, &readers),
        };
        let session = self.ctx.sessions.session(&plan.dev.access);
        let result = s3::ensure_bucket(&session, &bucket, self.depth, self.changes).await;
        propagating(Done::from_step(result, format!("bucket {name}")).map(|()| EnvOutput::Done), inputs)
    }

    /// The Studio domain; with Studio disabled, the domain this environment made goes (its home
    /// file system stays).
    async fn domain(self, inputs: &Inputs<EnvStep, EnvOutput>) -> Done<EnvOutput> {
        let plan = self.plan;
        let session = self.ctx.sessions.session(&plan.dev.access);
        let known_id = self.previous.studio.as_ref().and_then(|s| s.domain_id.clone());
        let Some(studio_plan) = &plan.studio else {
            let result = studio::delete_domain(
                &session,
                &plan.owner,
                &plan.names.domain(),
                known_id.as_deref(),
                false,
                self.changes,
            )
            .await;
            return Done::from_step(result, "Studio domain").map(|()| EnvOutput::Domain(None));
        };
        let (Some(EnvOutput::Network(net)), Some(EnvOutput::Key(key))) =
            (inputs.get(&EnvStep::Network), inputs.get(&EnvStep::Key(KeyPurpose::Studio)))
        else {
            return Done::missing(&EnvStep::Network);
        };
        let domain = DomainPlan {
            owner: plan.owner.clone(),
            name: studio_plan.domain.clone(),
            known_id,
            vpc_id: net.vpc_id.clone(),
            subnet_ids: net.private_subnet_ids.clone(),
            security_group_id: net.groups.workloads.clone(),
            kms_key_arn: key.arn.clone(),
            execution_role_arn: plan.role_arn(&plan.dev.account_id, &plan.roles.execution),
            home_used: !studio_plan.profiles.is_empty(),
        };
        match studio::ensure_domain(&session, self.seen, &domain, self.depth, self.changes).await {
            Ok((outputs, AwsStep::Ready(()))) => Done::Ready(EnvOutput::Domain(Some((outputs, None)))),
            Ok((outputs, AwsStep::Pending(why))) => Done::Ready(EnvOutput::Domain(Some((outputs, Some(why))))),
            Err(e) => Done::Failed(Failure::new(e, format!("Studio domain {}", domain.name))),
        }
    }

    async fn profiles(self, inputs: &Inputs<EnvStep, EnvOutput>) -> Done<EnvOutput> {
        let plan = self.plan;
        let (Some(studio_plan), Some(EnvOutput::Domain(Some((domain, _)))), Some(EnvOutput::Network(net))) =
            (&plan.studio, inputs.get(&EnvStep::Domain), inputs.get(&EnvStep::Network))
        else {
            return Done::missing(&EnvStep::Domain);
        };
        let profiles: Vec<ProfilePlan> = studio_plan
            .profiles
            .iter()
            .map(|(name, persona)| ProfilePlan {
                name: name.clone(),
                role_arn: plan.role_arn(&plan.dev.account_id, plan.persona_role(*persona)),
                // Persona policies open only profiles of their own persona, by this tag.
                tags: vec![(sagekeeper_policy::iam::PERSONA_TAG_KEY.to_owned(), format!("{persona:?}"))],
            })
            .collect();
        let session = self.ctx.sessions.session(&plan.dev.access);
        let result = studio::ensure_user_profiles(
            &session,
            &plan.owner,
            &domain.id,
            &profiles,
            &net.groups.workloads,
            self.changes,
        )
        .await;
        Done::from_step(result, "Studio user profiles").map(EnvOutput::Profiles)
    }

    /// The account a flow-logs step works in: the dev account (`None`) or a target account.
    fn scoped(&self, scope: Option<&str>) -> Option<&'a AccountPlan> {
        match scope {
            None => Some(&self.plan.dev),
            Some(name) => self.target(name).map(|t| &t.account),
        }
    }

    /// The role the flow-logs service delivers with; removed while flow logs are off.
    async fn flow_log_role(self, scope: Option<String>) -> Done<EnvOutput> {
        use sagekeeper_policy::logs;
        let Some(account) = self.scoped(scope.as_deref()) else { return Done::missing(&EnvStep::FlowLogRole(scope)) };
        let plan = self.plan;
        let session = self.ctx.sessions.session(&account.access);
        let name = &plan.flow_log_names.role;
        let resource = format!("IAM role {name}{}", located(scope.as_deref()));
        if plan.flow_logs.is_none() {
            let result = iam::delete_role(&session, &plan.owner, name, &account.boundary, self.changes).await;
            return Done::from_aws(result.map(|()| EnvOutput::Role(None)), resource);
        }
        let group = flow_log_group(plan, account);
        let trust = logs::delivery_trust(&group);
        let role = role(plan, "flow-logs", name, trust, logs::delivery_policy(&group), account.boundary.clone());
        let result = iam::ensure_role(&session, self.seen, &self.ctx.shared, &role, self.changes).await;
        Done::from_step(result, resource).map(|r| EnvOutput::Role(Some(r)))
    }

    /// The VPC's log group and flow log; with flow logs off, the flow log goes (the group,
    /// which holds the records, stays until the environment goes).
    async fn flow_logs(self, scope: Option<String>, inputs: &Inputs<EnvStep, EnvOutput>) -> Done<EnvOutput> {
        let network = scope.clone().map_or(EnvStep::Network, EnvStep::TargetNetwork);
        let (Some(account), Some(EnvOutput::Network(net))) = (self.scoped(scope.as_deref()), inputs.get(&network))
        else {
            return Done::missing(&network);
        };
        let plan = self.plan;
        let session = self.ctx.sessions.session(&account.access);
        let resource = format!("flow log of {}{}", net.vpc_id, located(scope.as_deref()));
        let Some(flow) = &plan.flow_logs else {
            let result = flow_logs::disable(&session, &plan.owner, &net.vpc_id, self.changes).await;
            return Done::from_aws(result.map(|()| EnvOutput::FlowLogs(None)), resource);
        };
        let key = scope.clone().map_or(EnvStep::Key(KeyPurpose::Ebs), EnvStep::TargetKey);
        let (Some(EnvOutput::Key(key)), Some(EnvOutput::Role(Some(role)))) =
            (inputs.get(&key), inputs.get(&EnvStep::FlowLogRole(scope.clone())))
        else {
            return Done::missing(&key);
        };
        let flow_log = FlowLogPlan {
            owner: plan.owner.clone(),
            component: "flow-logs".into(),
            log_group: plan.flow_log_names.log_group.clone(),
            key_arn: key.arn.clone(),
            retention_days: flow.retention_days,
            vpc_id: net.vpc_id.clone(),
            traffic_type: flow.traffic_type.to_owned(),
            role_arn: role.arn.clone(),
        };
        let result =
            flow_logs::ensure(&session, self.seen, &self.ctx.shared, &flow_log, self.depth, self.changes).await;
        Done::from_step(result, resource).map(|f| EnvOutput::FlowLogs(Some(f)))
    }

    /// Cleans up in a target account the spec dropped.
    async fn remove_target(self, name: &str) -> Done<EnvOutput> {
        let Some(entry) = self.leaving.iter().find(|t| t.account == name) else {
            return Done::missing(&EnvStep::RemoveTarget(name.to_owned()));
        };
        let account = match crate::resolve::fetch::<sagekeeper_api::AwsAccount>(self.ctx, None, &entry.account).await {
            Ok(Some(account)) => account,
            Ok(None) => {
                return Done::pending(format!(
                    "AwsAccount {} is gone: cannot clean up what stage {} had there",
                    entry.account, entry.stage
                ));
            }
            Err(e) => return Done::pending(format!("reading AwsAccount {}: {e}", entry.account)),
        };
        let target = self.plan.target(&entry.stage, &account, None);
        match super::teardown::remove_target(self.ctx, self.plan, &target, self.changes).await {
            Done::Pending { why, retry_after } => Done::Pending {
                why: format!("removing stage {} from {}: {why}", entry.stage, entry.account),
                retry_after,
            },
            done => done.map(EnvOutput::Removed),
        }
    }

    /// What the policies name, from the plan and the outputs this step was given.
    fn environment(&self, inputs: &Inputs<EnvStep, EnvOutput>) -> Environment {
        let plan = self.plan;
        let dev = &plan.dev.account_id;
        // A key someone else owns is known from the spec, before its step ran.
        let key = |purpose: KeyPurpose| match (plan.existing_keys.get(&purpose), inputs.get(&EnvStep::Key(purpose))) {
            (Some(arn), _) => arn.clone(),
            (None, Some(EnvOutput::Key(k))) => k.arn.clone(),
            _ => String::new(),
        };
        let borrowed = |purpose: KeyPurpose| plan.existing_keys.contains_key(&purpose);
        let network = |id: &EnvStep| match inputs.get(id) {
            Some(EnvOutput::Network(n)) => Some(n),
            _ => None,
        };
        let all_endpoints: Vec<&EndpointOutputs> = std::iter::once(EnvStep::VpcEndpoints)
            .chain(plan.targets.iter().map(|t| EnvStep::TargetVpcEndpoints(t.account.name.clone())))
            .filter_map(|id| match inputs.get(&id) {
                Some(EnvOutput::Endpoints(e)) => Some(e),
                _ => None,
            })
            .collect();
        let endpoints =
            |key: &str| all_endpoints.iter().filter_map(|e| e.ids.get(key).cloned()).collect::<Vec<String>>();
        let dev_network = network(&EnvStep::Network);
        let persona = |p: Persona| plan.personas.contains(&p).then(|| plan.role_arn(dev, plan.persona_role(p)));
        Environment {
            partition: plan.partition.clone(),
            region: plan.region.clone(),
            account_id: dev.clone(),
            name_prefix: plan.names.resource_prefix.clone(),
            uid: plan.owner.uid.clone(),
            controller_arns: plan.dev.controller_arns.clone(),
            data_bucket: plan.data_bucket.clone(),
            models_bucket: plan.models_bucket.clone(),
            keys: Keys { ebs: key(KeyPurpose::Ebs), studio: key(KeyPurpose::Studio), s3: key(KeyPurpose::S3) },
            roles: Roles {
                execution: plan.role_arn(dev, &plan.roles.execution),
                pipeline: plan.role_arn(dev, &plan.roles.pipeline),
                model_execution: plan.role_arn(dev, &plan.roles.model_execution),
                data_scientist: persona(Persona::DataScientist),
                team_admin: persona(Persona::TeamAdmin),
            },
            s3_endpoint_ids: endpoints(S3_ENDPOINT),
            kms_endpoint_ids: endpoints("kms"),
            subnets: dev_network.map(|n| n.private_subnet_ids.clone()).unwrap_or_default(),
            security_groups: dev_network.map(|n| n.groups.workloads.clone()).into_iter().collect(),
            studio_domain_id: self.previous.studio.as_ref().and_then(|s| s.domain_id.clone()),
            flow_log_group: plan.flow_log_names.log_group.clone(),
            targets: plan
                .targets
                .iter()
                .map(|t| Target {
                    account_id: t.account.account_id.clone(),
                    controller_arns: t.account.controller_arns.clone(),
                    model_execution_role: plan.role_arn(&t.account.account_id, &t.model_role),
                    endpoint_key: match inputs.get(&EnvStep::TargetKey(t.account.name.clone())) {
                        Some(EnvOutput::Key(k)) => k.arn.clone(),
                        _ => String::new(),
                    },
                    capture_bucket: t.capture_bucket.clone(),
                    by_org_path: t.org_path.is_some(),
                })
                .collect(),
            target_org_paths: plan.accounts.org_paths.clone(),
            borrowed_keys: BorrowedKeys {
                ebs: borrowed(KeyPurpose::Ebs),
                studio: borrowed(KeyPurpose::Studio),
                s3: borrowed(KeyPurpose::S3),
            },
        }
    }
}

/// A wait step: ready once the network's NAT gateways and VPC endpoints are available. The
/// endpoints are polled in one call while the network step's outputs are reused.
async fn available(
    session: &sagekeeper_aws::Session,
    seen: &Snapshot,
    network: Option<&EnvOutput>,
    endpoints: Option<&EnvOutput>,
) -> Done<EnvOutput> {
    let (Some(EnvOutput::Network(n)), Some(EnvOutput::Endpoints(e))) = (network, endpoints) else {
        return Done::missing(&EnvStep::VpcEndpoints);
    };
    if let Some(why) = &n.waiting {
        return Done::pending(why.clone());
    }
    if e.pending.is_none() {
        return Done::Ready(EnvOutput::Done);
    }
    match network::endpoints_unavailable(session, seen, &n.vpc_id, e).await {
        Ok(None) => Done::Ready(EnvOutput::Done),
        Ok(Some(why)) => Done::pending(why),
        Err(e) => Done::Failed(Failure::new(e, format!("VPC endpoints of {}", n.vpc_id))),
    }
}

/// A needed output the graph promised is absent: a bug in the graph, reported as one.
/// A policy refused for naming a role created moments ago is IAM propagating, not an error.
fn propagating(done: Done<EnvOutput>, inputs: &Inputs<EnvStep, EnvOutput>) -> Done<EnvOutput> {
    let recent = inputs.iter().any(|(_, o)| {
        matches!(o, EnvOutput::Role(Some(r)) if SystemTime::now().duration_since(r.created).is_ok_and(|age| age < IAM_PROPAGATION))
    });
    match done {
        Done::Failed(f) if recent && f.error.names_unknown_principal() => {
            Done::pending(format!("IAM is propagating new roles ({}: {})", f.resource, f.error.code))
        }
        other => other,
    }
}

/// Where the flow logs of `account`'s VPC go, as the policies name it.
fn flow_log_group<'p>(plan: &'p Plan, account: &'p AccountPlan) -> sagekeeper_policy::logs::FlowLogGroup<'p> {
    sagekeeper_policy::logs::FlowLogGroup {
        partition: &plan.partition,
        region: &plan.region,
        account_id: &account.account_id,
        name: &plan.flow_log_names.log_group,
    }
}

/// ` in <account>` for a target account's resources in messages.
fn located(scope: Option<&str>) -> String {
    scope.map(|name| format!(" in {name}")).unwrap_or_default()
}

fn key_plan(plan: &Plan, account: &AccountPlan, purpose: &str, alias: String) -> KeyPlan {
    KeyPlan {
        owner: plan.owner.clone(),
        component: format!("key/{purpose}"),
        alias,
        description: format!("sagekeeper {purpose} key of {}", plan.names.owner()),
        rotation: plan.rotation,
        create_policy: sagekeeper_policy::kms::admin_policy(
            &plan.partition,
            &account.account_id,
            &account.controller_arns,
        ),
        policy: None,
    }
}

fn role(
    plan: &Plan,
    component: &str,
    name: &str,
    trust: serde_json::Value,
    policy: serde_json::Value,
    boundary: String,
) -> RolePlan {
    RolePlan {
        owner: plan.owner.clone(),
        component: format!("role/{component}"),
        name: name.to_owned(),
        description: format!("sagekeeper {component} role of {}", plan.names.owner()),
        trust,
        policies: [("sagekeeper".to_owned(), policy)].into(),
        boundary,
    }
}

fn target_role(plan: &Plan, target: &TargetPlan, env: &Environment, input: &Target) -> RolePlan {
    use sagekeeper_policy::iam as policy;
    role(
        plan,
        "model-execution",
        &target.model_role,
        policy::service_trust("sagemaker.amazonaws.com", &target.account.account_id),
        policy::target_model_execution_role_policy(env, input),
        target.account.boundary.clone(),
    )
}

/// What a pass's steps depend on besides AWS: the plan, and the accounts being left (from the
/// previous status). Outputs are reused only under the same fingerprint. The domain id pinned
/// in status is left out: only the persona roles' policies name it, see [`Reuse`].
pub(crate) fn fingerprint(plan: &Plan, previous: &DataScienceEnvironmentStatus) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    format!("{plan:?}").hash(&mut hasher);
    leaving(plan, previous).iter().map(|t| &t.account).collect::<Vec<_>>().hash(&mut hasher);
    hasher.finish()
}

/// What a pass of an environment still converging keeps for the next one: the ready outputs,
/// and the domain id the pass read from status (what its persona policies named).
#[derive(Clone, Debug, Default)]
pub(crate) struct Reuse {
    outputs: BTreeMap<EnvStep, EnvOutput>,
    domain_id: Option<String>,
}

impl Reuse {
    /// What the last pass kept, for a pass that reads `previous`, and the steps to run again
    /// all the same: the first pass that sees the domain's id in status writes the persona
    /// policies again (they name it); what needs the persona roles is reused as long as their
    /// outputs (ARNs) stay as they were.
    pub(crate) fn outputs(
        self,
        previous: &DataScienceEnvironmentStatus,
    ) -> (BTreeMap<EnvStep, EnvOutput>, BTreeSet<EnvStep>) {
        let again = match self.domain_id.as_deref() != domain_id(previous) {
            true => (self.outputs.keys())
                .filter(|id| matches!(id, EnvStep::Role(super::plan::RoleKind::Persona(_))))
                .cloned()
                .collect(),
            false => BTreeSet::new(),
        };
        (self.outputs, again)
    }

    /// What a pass that read `previous` found ready.
    pub(crate) fn kept(results: &Results<EnvStep, EnvOutput>, previous: &DataScienceEnvironmentStatus) -> Self {
        Self { outputs: reusable(results), domain_id: domain_id(previous).map(str::to_owned) }
    }
}

/// The Studio domain id a status records.
pub(crate) fn domain_id(status: &DataScienceEnvironmentStatus) -> Option<&str> {
    status.studio.as_ref().and_then(|s| s.domain_id.as_deref())
}
