//! Ensure: the environment's steps in dependency order, each account's independent parts side by
//! side. Networks and keys (with their administrative policy) first, in every account at once;
//! then the roles, which name the keys; then the full key and bucket policies, which name the
//! roles and the endpoints; then Studio, which needs the network, the studio key and the roles.
//! A step that is pending holds back only what needs its outputs.

use std::time::{Duration, SystemTime};

use futures::future::join_all;
use sagekeeper_api::DataScienceEnvironmentStatus;
use sagekeeper_api::conditions::{Component, ComponentState, Outcome, Reason};
use sagekeeper_api::environment::{
    EncryptionStatus, IdentityStatus, NetworkStatus, Persona, StorageStatus, StudioStatus, TargetAccountStatus,
};
use sagekeeper_aws::iam::{self, RoleOutputs, RolePlan};
use sagekeeper_aws::kms::{self, KeyOutputs, KeyPlan};
use sagekeeper_aws::network::{self, NetworkOutputs, S3_ENDPOINT};
use sagekeeper_aws::s3::{self, BucketPlan};
use sagekeeper_aws::steps::{Action, Changes, Step, StepResult};
use sagekeeper_aws::studio::{self, DomainPlan, ProfilePlan};
use sagekeeper_aws::{AwsError, ErrorKind, Session};
use sagekeeper_policy::inputs::{Environment, Keys, Roles, Target};

use super::plan::{Plan, TargetPlan};
use crate::context::Context;
use crate::lifecycle::Retry;
use crate::resolve;

/// How long after a role's creation a refusal naming it is taken for IAM propagation.
const IAM_PROPAGATION: Duration = Duration::from_secs(120);

/// What one pass found and did.
pub(crate) struct Converged {
    pub(crate) status: DataScienceEnvironmentStatus,
    pub(crate) components: Vec<ComponentState>,
    pub(crate) retry: Retry,
    pub(crate) failure: Option<ErrorKind>,
    /// Every write the pass made.
    pub(crate) changes: Vec<(Action, String)>,
}

/// The state of one component while the pass builds it up.
enum State<T> {
    Ready(T),
    /// Waiting: on AWS (pending) or on another component.
    Waiting(String),
    Failed(AwsError, String),
}

impl<T> State<T> {
    fn from_step(result: StepResult<T>, resource: impl Into<String>) -> Self {
        match result {
            Ok(Step::Ready(t)) => State::Ready(t),
            Ok(Step::Pending(why)) => State::Waiting(why),
            Err(e) => State::Failed(e, resource.into()),
        }
    }

    fn ready(&self) -> Option<&T> {
        match self {
            State::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// Sessions of the pass: the dev account and each target.
struct Accounts {
    dev: std::sync::Arc<Session>,
    targets: Vec<std::sync::Arc<Session>>,
}

/// The dev keys, by purpose.
struct DevKeys {
    ebs: KeyOutputs,
    studio: KeyOutputs,
    s3: KeyOutputs,
}

/// What each target has after the first phases.
struct TargetState {
    network: State<NetworkOutputs>,
    key: State<KeyOutputs>,
    role: State<RoleOutputs>,
    finish: State<()>,
}

/// Converges everything once and reports it.
pub(crate) async fn converge(ctx: &Context, plan: &Plan, previous: &DataScienceEnvironmentStatus) -> Converged {
    let changes = Changes::default();
    let accounts = Accounts {
        dev: ctx.sessions.session(&plan.dev.access),
        targets: plan.targets.iter().map(|t| ctx.sessions.session(&t.account.access)).collect(),
    };

    // Phase 1: networks and keys, everywhere at once.
    let (dev_network, dev_keys, target_basics) = tokio::join!(
        network::ensure_network(accounts.dev.ec2(), &plan.network, &changes),
        ensure_dev_keys(&accounts.dev, plan, &changes),
        join_all(plan.targets.iter().zip(&accounts.targets).map(|(t, s)| target_basics(s, plan, t, &changes))),
    );
    let dev_network = State::from_step(dev_network, format!("VPC of {}", plan.names.owner()));
    let mut targets: Vec<TargetState> = target_basics
        .into_iter()
        .map(|(network, key)| TargetState {
            network,
            key,
            role: State::Waiting("waiting for the endpoint key".into()),
            finish: State::Waiting("waiting for the network, key and role".into()),
        })
        .collect();

    // Phase 2: roles, which name the keys, and (their preventive denies) the dev subnets and
    // workloads group.
    let domain_id = previous.studio.as_ref().and_then(|s| s.domain_id.clone());
    let mut inputs = policy_inputs(plan, dev_keys.ready(), dev_network.ready(), &targets, domain_id.clone());
    let identity = match (&dev_keys, dev_network.ready()) {
        (State::Ready(_), Some(_)) => ensure_dev_roles(&accounts.dev, plan, &inputs, &changes).await,
        (State::Ready(_), None) => State::Waiting("waiting for the environment's network".into()),
        _ => State::Waiting("waiting for the environment's keys".into()),
    };
    for ((state, session), target) in targets.iter_mut().zip(&accounts.targets).zip(&plan.targets) {
        if state.key.ready().is_some() && dev_keys.ready().is_some() {
            let input = inputs.targets.iter().find(|t| t.account_id == target.account.account_id);
            if let Some(input) = input {
                let role = target_role(plan, target, &inputs, input);
                state.role = State::from_step(
                    iam::ensure_role(session.iam(), &role, &changes).await,
                    format!("IAM role {}", role.name),
                );
            }
        }
    }

    // Phase 3: full key and bucket policies, which name the roles and the endpoints.
    let endpoints_known = dev_network.ready().is_some() && targets.iter().all(|t| t.network.ready().is_some());
    if let Some(dev_net) = dev_network.ready() {
        inputs.s3_endpoint_ids = endpoint_ids(dev_net, &targets, S3_ENDPOINT);
        inputs.kms_endpoint_ids = endpoint_ids(dev_net, &targets, "kms");
    }
    let roles_ready = identity.ready().is_some() && targets.iter().all(|t| t.role.ready().is_some());
    let recent_roles = recently_created(&identity, &targets);
    let (encryption, storage) = match (&dev_keys, roles_ready && endpoints_known) {
        (State::Ready(keys), true) => {
            let encryption =
                State::from_step(finish_keys(&accounts.dev, keys, &inputs, &changes).await, "KMS key policies");
            let storage =
                State::from_step(ensure_buckets(&accounts.dev, plan, keys, &inputs, &changes).await, "buckets");
            (propagating(encryption, recent_roles), propagating(storage, recent_roles))
        }
        (State::Failed(e, what), _) => {
            (State::Failed(e.clone(), what.clone()), State::Waiting("waiting for the s3 key".into()))
        }
        (State::Waiting(why), _) => (State::Waiting(why.clone()), State::Waiting("waiting for the s3 key".into())),
        (State::Ready(_), false) => {
            let why = "waiting for the roles and VPC endpoints that the key policies name";
            (State::Waiting(why.into()), State::Waiting(why.into()))
        }
    };
    for ((state, session), target) in targets.iter_mut().zip(&accounts.targets).zip(&plan.targets) {
        if let (Some(_), Some(key), Some(_), true) =
            (state.network.ready(), state.key.ready(), state.role.ready(), roles_ready && endpoints_known)
        {
            let input =
                inputs.targets.iter().find(|t| t.account_id == target.account.account_id).cloned().unwrap_or_default();
            let finished = finish_target(session, plan, target, key, &inputs, &input, &changes).await;
            state.finish = propagating(
                State::from_step(finished, format!("target account {}", target.account.name)),
                recent_roles,
            );
        }
    }

    // Phase 4: Studio.
    let (domain, studio) =
        ensure_studio(&accounts.dev, plan, &dev_network, &dev_keys, &encryption, &identity, domain_id, &changes).await;

    // Target accounts the spec no longer lists: clean up there, entry by entry.
    let leaving = remove_targets(ctx, plan, previous, &changes).await;

    let mut status = status(plan, previous, &dev_network, &dev_keys, &identity, &storage, &studio, &targets);
    // The domain id is pinned as soon as the domain exists: the persona policies scope to it.
    if let (Some(domain), true) = (domain, plan.studio.is_some()) {
        let studio = status.studio.get_or_insert_with(Default::default);
        studio.domain_id = Some(domain.id);
        studio.url = studio.url.take().or(domain.url);
    }
    for removal in &leaving {
        if let Some(entry) = &removal.still_held {
            status.target_accounts.push(entry.clone());
        }
        for kept in &removal.kept {
            super::teardown::keep(&mut status.retained, &kept.resource, &kept.id, &kept.reason);
        }
    }
    let mut components = Vec::new();
    let mut retry = Retry::Drift;
    let mut failure = None;
    let mut add = |component: Component, outcome: (Outcome, Option<Retry>, Option<ErrorKind>)| {
        let (outcome, component_retry, kind) = outcome;
        retry = worst(
            retry,
            component_retry.unwrap_or(match outcome {
                Outcome::Progressing { .. } => Retry::Pending,
                _ => Retry::Drift,
            }),
        );
        failure = failure.or(kind);
        components.push(ComponentState { component, outcome });
    };
    add(
        Component::Network,
        outcome(Component::Network, &dev_network, |n| {
            format!("VPC {} with {} endpoints", n.vpc_id, n.endpoint_ids.len())
        }),
    );
    add(
        Component::Encryption,
        outcome(Component::Encryption, &encryption, |()| "keys ebs, studio, s3 with rotation and policies".into()),
    );
    add(
        Component::Storage,
        outcome(Component::Storage, &storage, |()| format!("buckets {} and {}", plan.data_bucket, plan.models_bucket)),
    );
    add(Component::Identity, outcome(Component::Identity, &identity, |r| format!("{} roles", r.len())));
    add(
        Component::Studio,
        outcome(Component::Studio, &studio, |s| match s {
            Some((domain, profiles)) => format!("domain {} with {} user profiles", domain.id, profiles.len()),
            None => "Studio disabled".into(),
        }),
    );
    // A target still being cleaned up after its removal keeps TargetAccounts from Ready.
    let targets_state = targets_outcome(plan, &targets);
    let leaving_state = leaving.iter().find_map(|r| r.outcome.clone());
    add(
        Component::TargetAccounts,
        match (targets_state, leaving_state) {
            (ready, Some(leaving)) if ready.0.is_ready() => leaving,
            (state, _) => state,
        },
    );
    Converged { status, components, retry, failure, changes: changes.take() }
}

/// The later of two retries: backoff beats pending beats drift.
fn worst(a: Retry, b: Retry) -> Retry {
    let rank = |r: Retry| match r {
        Retry::Drift | Retry::After(_) => 0,
        Retry::Pending => 1,
        Retry::Backoff => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

fn outcome<T>(
    component: Component,
    state: &State<T>,
    describe: impl Fn(&T) -> String,
) -> (Outcome, Option<Retry>, Option<ErrorKind>) {
    match state {
        State::Ready(t) => (Outcome::Ready { message: describe(t) }, None, None),
        State::Waiting(why) => {
            (Outcome::progressing(Reason::Pending(component), why.clone()), Some(Retry::Pending), None)
        }
        State::Failed(err, resource) => {
            let (outcome, retry) = resolve::failure(component, err, resource, remedy(err));
            (outcome, Some(retry), Some(err.kind))
        }
    }
}

/// What to do about a failure, for the condition message.
fn remedy(err: &AwsError) -> &'static str {
    match err.kind {
        ErrorKind::AccessDenied => {
            "grant sagekeeper's role in that account the permission: attach the policies of deploy/aws/deployer/"
        }
        ErrorKind::Quota => "raise the service quota or free capacity",
        ErrorKind::Conflict => "rename or remove the other resource; sagekeeper never adopts what it did not create",
        ErrorKind::Invalid => "fix the spec or the account's settings",
        _ => "",
    }
}

fn targets_outcome(plan: &Plan, targets: &[TargetState]) -> (Outcome, Option<Retry>, Option<ErrorKind>) {
    let component = Component::TargetAccounts;
    for (target, state) in plan.targets.iter().zip(targets) {
        for part in [
            outcome(component, &state.network, |_| String::new()),
            outcome(component, &state.key, |_| String::new()),
            outcome(component, &state.role, |_| String::new()),
            outcome(component, &state.finish, |()| String::new()),
        ] {
            if !part.0.is_ready() {
                let (outcome, retry, kind) = part;
                let outcome = match outcome {
                    Outcome::Progressing { reason, message } => {
                        Outcome::progressing(reason, format!("{} ({}): {message}", target.account.name, target.stage))
                    }
                    Outcome::Stalled { reason, message } => Outcome::stalled(
                        reason,
                        format!("{message} (account {} for stage {})", target.account.name, target.stage),
                    ),
                    ready => ready,
                };
                return (outcome, retry, kind);
            }
        }
    }
    let message = if plan.targets.is_empty() {
        "no target accounts".to_owned()
    } else {
        format!("{} target accounts ready", plan.targets.len())
    };
    (Outcome::Ready { message }, None, None)
}

/// A policy refused for naming a role created moments ago is IAM propagating, not an error.
fn propagating<T>(state: State<T>, recent_roles: bool) -> State<T> {
    match state {
        State::Failed(e, resource) if recent_roles && e.names_unknown_principal() => {
            State::Waiting(format!("IAM is propagating new roles ({resource}: {})", e.code))
        }
        other => other,
    }
}

fn recently_created(identity: &State<Vec<RoleOutputs>>, targets: &[TargetState]) -> bool {
    let recent = |r: &RoleOutputs| SystemTime::now().duration_since(r.created).is_ok_and(|age| age < IAM_PROPAGATION);
    identity.ready().is_some_and(|roles| roles.iter().any(recent))
        || targets.iter().any(|t| t.role.ready().is_some_and(recent))
}

fn endpoint_ids(dev: &NetworkOutputs, targets: &[TargetState], key: &str) -> Vec<String> {
    dev.endpoint_ids
        .get(key)
        .into_iter()
        .chain(targets.iter().filter_map(|t| t.network.ready().and_then(|n| n.endpoint_ids.get(key))))
        .cloned()
        .collect()
}

/// What the policies of the environment name, as far as it is known at this point.
fn policy_inputs(
    plan: &Plan,
    keys: Option<&DevKeys>,
    network: Option<&NetworkOutputs>,
    targets: &[TargetState],
    studio_domain_id: Option<String>,
) -> Environment {
    let dev = &plan.dev.account_id;
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
        keys: keys.map_or_else(Keys::default, |k| Keys {
            ebs: k.ebs.arn.clone(),
            studio: k.studio.arn.clone(),
            s3: k.s3.arn.clone(),
        }),
        roles: Roles {
            execution: plan.role_arn(dev, &plan.roles.execution),
            pipeline: plan.role_arn(dev, &plan.roles.pipeline),
            model_execution: plan.role_arn(dev, &plan.roles.model_execution),
            data_scientist: persona(Persona::DataScientist),
            team_admin: persona(Persona::TeamAdmin),
        },
        s3_endpoint_ids: Vec::new(),
        kms_endpoint_ids: Vec::new(),
        subnets: network.map(|n| n.private_subnet_ids.clone()).unwrap_or_default(),
        security_groups: network.and_then(|n| n.security_group_ids.get("workloads").cloned()).into_iter().collect(),
        studio_domain_id,
        targets: plan
            .targets
            .iter()
            .zip(targets)
            .map(|(t, state)| Target {
                account_id: t.account.account_id.clone(),
                controller_arns: t.account.controller_arns.clone(),
                model_execution_role: plan.role_arn(&t.account.account_id, &t.model_role),
                endpoint_key: state.key.ready().map(|k| k.arn.clone()).unwrap_or_default(),
                capture_bucket: t.capture_bucket.clone(),
            })
            .collect(),
    }
}

fn key_plan(plan: &Plan, account: &super::plan::AccountPlan, purpose: &str, alias: String) -> KeyPlan {
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

async fn ensure_dev_keys(session: &Session, plan: &Plan, changes: &Changes) -> State<DevKeys> {
    let [ebs, studio, s3] =
        ["ebs", "studio", "s3"].map(|purpose| key_plan(plan, &plan.dev, purpose, plan.names.key_alias(purpose)));
    let (ebs, studio, s3) = tokio::join!(
        kms::ensure_key(session.kms(), &ebs, changes),
        kms::ensure_key(session.kms(), &studio, changes),
        kms::ensure_key(session.kms(), &s3, changes),
    );
    match (
        State::from_step(ebs, "KMS key ebs"),
        State::from_step(studio, "KMS key studio"),
        State::from_step(s3, "KMS key s3"),
    ) {
        (State::Ready(ebs), State::Ready(studio), State::Ready(s3)) => State::Ready(DevKeys { ebs, studio, s3 }),
        (State::Failed(e, r), _, _) | (_, State::Failed(e, r), _) | (_, _, State::Failed(e, r)) => State::Failed(e, r),
        (State::Waiting(w), _, _) | (_, State::Waiting(w), _) | (_, _, State::Waiting(w)) => State::Waiting(w),
    }
}

async fn target_basics(
    session: &Session,
    plan: &Plan,
    target: &TargetPlan,
    changes: &Changes,
) -> (State<NetworkOutputs>, State<KeyOutputs>) {
    let key = key_plan(plan, &target.account, "endpoint", target.key_alias.clone());
    let (network, key) = tokio::join!(
        network::ensure_network(session.ec2(), &target.network, changes),
        kms::ensure_key(session.kms(), &key, changes)
    );
    (
        State::from_step(network, format!("VPC in {}", target.account.name)),
        State::from_step(key, format!("KMS key in {}", target.account.name)),
    )
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

/// The dev roles: execution, pipeline, model execution, and one per persona in use. Persona
/// roles no profile uses any more are removed.
async fn ensure_dev_roles(
    session: &Session,
    plan: &Plan,
    inputs: &Environment,
    changes: &Changes,
) -> State<Vec<RoleOutputs>> {
    use sagekeeper_policy::iam as policy;
    let sagemaker = policy::service_trust("sagemaker.amazonaws.com", &plan.dev.account_id);
    let boundary = plan.dev.boundary.clone();
    let mut roles = vec![
        role(
            plan,
            "execution",
            &plan.roles.execution,
            sagemaker.clone(),
            policy::execution_role_policy(inputs),
            boundary.clone(),
        ),
        role(
            plan,
            "pipeline",
            &plan.roles.pipeline,
            sagemaker.clone(),
            policy::pipeline_role_policy(inputs),
            boundary.clone(),
        ),
        role(
            plan,
            "model-execution",
            &plan.roles.model_execution,
            sagemaker,
            policy::model_execution_role_policy(inputs),
            boundary.clone(),
        ),
    ];
    for persona in [Persona::DataScientist, Persona::TeamAdmin] {
        let name = plan.persona_role(persona);
        let kind = match persona {
            Persona::DataScientist => sagekeeper_policy::inputs::Persona::DataScientist,
            Persona::TeamAdmin => sagekeeper_policy::inputs::Persona::TeamAdmin,
        };
        if plan.personas.contains(&persona) {
            roles.push(role(
                plan,
                &format!("persona/{persona:?}"),
                name,
                policy::persona_trust(inputs, plan.persona_principals.of(persona)),
                policy::persona_policy(kind, inputs),
                boundary.clone(),
            ));
        } else if let Err(e) = iam::delete_role(session.iam(), &plan.owner, name, &boundary, changes).await {
            return State::Failed(e, format!("IAM role {name}"));
        }
    }
    let results = join_all(roles.iter().map(|r| iam::ensure_role(session.iam(), r, changes))).await;
    let mut outputs = Vec::with_capacity(roles.len());
    for (result, role) in results.into_iter().zip(&roles) {
        match State::from_step(result, format!("IAM role {}", role.name)) {
            State::Ready(out) => outputs.push(out),
            State::Waiting(w) => return State::Waiting(w),
            State::Failed(e, r) => return State::Failed(e, r),
        }
    }
    State::Ready(outputs)
}

fn target_role(plan: &Plan, target: &TargetPlan, inputs: &Environment, input: &Target) -> RolePlan {
    use sagekeeper_policy::iam as policy;
    role(
        plan,
        "model-execution",
        &target.model_role,
        policy::service_trust("sagemaker.amazonaws.com", &target.account.account_id),
        policy::target_model_execution_role_policy(inputs, input),
        target.account.boundary.clone(),
    )
}

/// The dev keys' full policies (use by the roles, the s3 key's endpoint deny).
async fn finish_keys(session: &Session, keys: &DevKeys, inputs: &Environment, changes: &Changes) -> StepResult<()> {
    use sagekeeper_policy::kms as policy;
    let kms = session.kms();
    let (ebs, studio, s3) =
        (policy::ebs_key_policy(inputs), policy::studio_key_policy(inputs), policy::s3_key_policy(inputs));
    tokio::try_join!(
        kms::ensure_policy(kms, &keys.ebs.id, &ebs, changes),
        kms::ensure_policy(kms, &keys.studio.id, &studio, changes),
        kms::ensure_policy(kms, &keys.s3.id, &s3, changes),
    )?;
    Ok(Step::Ready(()))
}

/// The data and models buckets (the models bucket readable by the targets' model roles).
async fn ensure_buckets(
    session: &Session,
    plan: &Plan,
    keys: &DevKeys,
    inputs: &Environment,
    changes: &Changes,
) -> StepResult<()> {
    let readers: Vec<String> = inputs.targets.iter().map(|t| t.model_execution_role.clone()).collect();
    let bucket = |purpose: &str, name: &str, readers: &[String]| BucketPlan {
        owner: plan.owner.clone(),
        component: format!("bucket/{purpose}"),
        name: name.to_owned(),
        region: plan.region.clone(),
        key_arn: keys.s3.arn.clone(),
        versioning: plan.versioning,
        policy: sagekeeper_policy::s3::environment_bucket_policy(inputs, name, readers),
    };
    let data = bucket("data", &plan.data_bucket, &[]);
    let models = bucket("models", &plan.models_bucket, &readers);
    let (data, models) = tokio::join!(
        s3::ensure_bucket(session.s3(), &data, changes),
        s3::ensure_bucket(session.s3(), &models, changes)
    );
    match (data?, models?) {
        (Step::Ready(()), Step::Ready(())) => Ok(Step::Ready(())),
        (Step::Pending(why), _) | (_, Step::Pending(why)) => Ok(Step::Pending(why)),
    }
}

/// A target's key policy and its capture bucket.
async fn finish_target(
    session: &Session,
    plan: &Plan,
    target: &TargetPlan,
    key: &KeyOutputs,
    inputs: &Environment,
    input: &Target,
    changes: &Changes,
) -> StepResult<()> {
    kms::ensure_policy(session.kms(), &key.id, &sagekeeper_policy::kms::target_key_policy(inputs, input), changes)
        .await?;
    let bucket = BucketPlan {
        owner: plan.owner.clone(),
        component: "bucket/capture".into(),
        name: target.capture_bucket.clone(),
        region: plan.region.clone(),
        key_arn: key.arn.clone(),
        versioning: plan.versioning,
        policy: sagekeeper_policy::s3::capture_bucket_policy(inputs, input),
    };
    s3::ensure_bucket(session.s3(), &bucket, changes).await
}

/// The domain and its profiles; with Studio disabled, the domain this environment made goes
/// (its home file system stays).
#[allow(clippy::too_many_arguments)]
async fn ensure_studio(
    session: &Session,
    plan: &Plan,
    network: &State<NetworkOutputs>,
    keys: &State<DevKeys>,
    encryption: &State<()>,
    identity: &State<Vec<RoleOutputs>>,
    known_id: Option<String>,
    changes: &Changes,
) -> (Option<studio::DomainOutputs>, State<Option<(studio::DomainOutputs, Vec<String>)>>) {
    let sm = session.sagemaker();
    let Some(studio_plan) = &plan.studio else {
        let deleted =
            studio::delete_domain(sm, &plan.owner, &plan.names.domain(), known_id.as_deref(), false, changes).await;
        return match State::from_step(deleted, "Studio domain") {
            State::Ready(()) => (None, State::Ready(None)),
            State::Waiting(w) => (None, State::Waiting(w)),
            State::Failed(e, r) => (None, State::Failed(e, r)),
        };
    };
    let (Some(net), Some(keys), Some(()), Some(_)) =
        (network.ready(), keys.ready(), encryption.ready(), identity.ready())
    else {
        return (None, State::Waiting("waiting for the network, the studio key and the roles".into()));
    };
    let domain = DomainPlan {
        owner: plan.owner.clone(),
        name: studio_plan.domain.clone(),
        known_id,
        vpc_id: net.vpc_id.clone(),
        subnet_ids: net.private_subnet_ids.clone(),
        security_group_id: net.security_group_ids.get("workloads").cloned().unwrap_or_default(),
        kms_key_arn: keys.studio.arn.clone(),
        execution_role_arn: plan.role_arn(&plan.dev.account_id, &plan.roles.execution),
        home_used: !studio_plan.profiles.is_empty(),
    };
    let outputs = match studio::ensure_domain(sm, &domain, changes).await {
        Ok((outputs, Step::Ready(()))) => outputs,
        Ok((outputs, Step::Pending(why))) => return (Some(outputs), State::Waiting(why)),
        Err(e) => return (None, State::Failed(e, format!("Studio domain {}", domain.name))),
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
    let result =
        studio::ensure_user_profiles(sm, &plan.owner, &outputs.id, &profiles, &domain.security_group_id, changes).await;
    let state = match State::from_step(result, "Studio user profiles") {
        State::Ready(names) => State::Ready(Some((outputs.clone(), names))),
        State::Waiting(w) => State::Waiting(w),
        State::Failed(e, r) => State::Failed(e, r),
    };
    (Some(outputs), state)
}

/// The status: what is known now, pinned values kept from before.
#[allow(clippy::too_many_arguments)]
fn status(
    plan: &Plan,
    previous: &DataScienceEnvironmentStatus,
    network: &State<NetworkOutputs>,
    keys: &State<DevKeys>,
    identity: &State<Vec<RoleOutputs>>,
    storage: &State<()>,
    studio: &State<Option<(studio::DomainOutputs, Vec<String>)>>,
    targets: &[TargetState],
) -> DataScienceEnvironmentStatus {
    let mut status = previous.clone();
    status.account_id = Some(plan.dev.account_id.clone());
    let mut net = status.network.take().unwrap_or_default();
    net.availability_zones = plan.zones.clone();
    net.private_subnet_cidrs = plan.network.zones.iter().map(|z| z.private_cidr.clone()).collect();
    if let Some(n) = network.ready() {
        net.vpc_id = Some(n.vpc_id.clone());
        net.private_subnet_ids = n.private_subnet_ids.clone();
        net.public_subnet_ids = n.public_subnet_ids.clone();
        net.security_group_ids = n.security_group_ids.clone();
        net.vpc_endpoint_ids = n.endpoint_ids.clone();
    }
    status.network = Some(NetworkStatus { ..net });
    if let Some(k) = keys.ready() {
        status.encryption = Some(EncryptionStatus {
            ebs_key_arn: Some(k.ebs.arn.clone()),
            studio_key_arn: Some(k.studio.arn.clone()),
            s3_key_arn: Some(k.s3.arn.clone()),
        });
    }
    if storage.ready().is_some() {
        status.storage = Some(StorageStatus {
            data_bucket: Some(plan.data_bucket.clone()),
            models_bucket: Some(plan.models_bucket.clone()),
        });
    }
    if identity.ready().is_some() {
        let dev = &plan.dev.account_id;
        status.identity = Some(IdentityStatus {
            execution_role_arn: Some(plan.role_arn(dev, &plan.roles.execution)),
            pipeline_role_arn: Some(plan.role_arn(dev, &plan.roles.pipeline)),
            model_execution_role_arn: Some(plan.role_arn(dev, &plan.roles.model_execution)),
            persona_role_arns: plan
                .personas
                .iter()
                .map(|p| (format!("{p:?}"), plan.role_arn(dev, plan.persona_role(*p))))
                .collect(),
        });
    }
    match studio {
        State::Ready(Some((domain, profiles))) => {
            status.studio = Some(StudioStatus {
                domain_id: Some(domain.id.clone()),
                url: domain.url.clone(),
                user_profiles: profiles.clone(),
            })
        }
        State::Ready(None) => status.studio = None,
        _ => {}
    }
    status.target_accounts = plan
        .targets
        .iter()
        .zip(targets)
        .map(|(t, state)| {
            let net = state.network.ready();
            TargetAccountStatus {
                account: t.account.name.clone(),
                account_id: Some(t.account.account_id.clone()),
                stage: t.stage.clone(),
                vpc_id: net.map(|n| n.vpc_id.clone()),
                private_subnet_ids: net.map(|n| n.private_subnet_ids.clone()).unwrap_or_default(),
                security_group_id: net.and_then(|n| n.security_group_ids.get("workloads").cloned()),
                endpoint_key_arn: state.key.ready().map(|k| k.arn.clone()),
                data_capture_bucket: state.finish.ready().map(|()| t.capture_bucket.clone()),
                model_execution_role_arn: state.role.ready().map(|r| r.arn.clone()),
                deployer_arn: t.account.controller_arns.first().cloned(),
                ready: state.finish.ready().is_some(),
            }
        })
        .collect();
    status
}

/// The cleanup in one target account the spec dropped.
struct Removal {
    /// The status entry to keep while the cleanup is not done (the account stays in use).
    still_held: Option<TargetAccountStatus>,
    /// What it keeps on purpose.
    kept: Vec<sagekeeper_api::environment::RetainedResource>,
    /// Why it is not done, if it is not.
    outcome: Option<(Outcome, Option<Retry>, Option<ErrorKind>)>,
}

async fn remove_targets(
    ctx: &Context,
    plan: &Plan,
    previous: &DataScienceEnvironmentStatus,
    changes: &Changes,
) -> Vec<Removal> {
    // What a target account has is per account, not per stage: an account moved to another
    // stage keeps everything; only an account no stage names any more is cleaned up.
    let listed = |t: &TargetAccountStatus| plan.targets.iter().any(|p| p.account.name == t.account);
    let mut removals = Vec::new();
    for entry in previous.target_accounts.iter().filter(|t| !listed(t)) {
        let component = Component::TargetAccounts;
        let waiting = |message: String| Removal {
            still_held: Some(entry.clone()),
            kept: Vec::new(),
            outcome: Some((Outcome::progressing(Reason::Pending(component), message), Some(Retry::Pending), None)),
        };
        let account = match resolve::fetch::<sagekeeper_api::AwsAccount>(ctx, None, &entry.account).await {
            Ok(Some(account)) => account,
            Ok(None) => {
                removals.push(waiting(format!(
                    "AwsAccount {} is gone: cannot clean up what stage {} had there",
                    entry.account, entry.stage
                )));
                continue;
            }
            Err(e) => {
                removals.push(waiting(format!("reading AwsAccount {}: {e}", entry.account)));
                continue;
            }
        };
        let target = plan.target(&entry.stage, &account);
        removals.push(match super::teardown::teardown_target(ctx, plan, &target, changes).await {
            Ok((None, kept)) => Removal { still_held: None, kept, outcome: None },
            Ok((Some(why), kept)) => {
                Removal { kept, ..waiting(format!("removing stage {} from {}: {why}", entry.stage, entry.account)) }
            }
            Err((err, resource)) => {
                let (outcome, retry) = resolve::failure(component, &err, &resource, remedy(&err));
                Removal {
                    still_held: Some(entry.clone()),
                    kept: Vec::new(),
                    outcome: Some((outcome, Some(retry), Some(err.kind))),
                }
            }
        });
    }
    removals
}
