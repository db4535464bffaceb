//! The trace tree, built from objects already read (no I/O): an object, the objects it uses and
//! that use it, and, from their status, each AWS resource with its account, id and state. Every
//! condition that is not in its good state appears on the node it is about, or on its object.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Resource, ResourceExt};
use sagekeeper_api::conditions::{self, Component, READY, RECONCILING, STALLED};
use sagekeeper_api::deployment::{StageAccountStatus, StagePhase, StageStatus};
use sagekeeper_api::environment::TargetAccountStatus;
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment};
use serde::Serialize;

/// What was read for one trace: the objects in the namespace (every namespace for an account)
/// and the AwsAccounts they name, each with why it could not be read if it could not.
#[derive(Debug, Default)]
pub struct World {
    pub accounts: Vec<(String, Result<AwsAccount, String>)>,
    pub environments: Vec<DataScienceEnvironment>,
    pub projects: Vec<MLOpsProject>,
    pub deployments: Vec<ModelDeployment>,
    /// Lists that could not be read (the tree is then partial, and says so).
    pub unread: Vec<String>,
}

/// The kinds `trace` starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Environment,
    Project,
    Deployment,
    Account,
}

impl Kind {
    /// The kind from what kubectl accepts: short name, singular, plural or kind, optionally
    /// with the group (`dse`, `datascienceenvironment`, `mdep.sagekeeper.io`, ...).
    pub fn parse(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        let name = lower.strip_suffix(".sagekeeper.io").unwrap_or(&lower);
        match name {
            "dse" | "datascienceenvironment" | "datascienceenvironments" => Some(Self::Environment),
            "mlp" | "mlopsproject" | "mlopsprojects" => Some(Self::Project),
            "mdep" | "modeldeployment" | "modeldeployments" => Some(Self::Deployment),
            "awsacct" | "awsaccount" | "awsaccounts" => Some(Self::Account),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Environment => "DataScienceEnvironment",
            Self::Project => "MLOpsProject",
            Self::Deployment => "ModelDeployment",
            Self::Account => "AwsAccount",
        }
    }
}

/// One line of the tree.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// A Kubernetes kind, an AWS resource type, or a component of an object (`Network`, ...).
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How it relates to its parent: `uses`, `usedBy`; absent for what the parent holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    /// The AWS id, name or ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub ready: Ready,
    /// One word: `Ready`, a condition reason, or the state AWS reports.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Conditions of this object not in their good state and not shown on a line below.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Problem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

/// The AwsAccount a resource lives in.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Whether a line is in its good state; `None` for an AWS resource whose status says only that
/// it exists.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ready {
    True,
    False,
    #[default]
    Unknown,
    #[serde(rename = "-")]
    None,
}

impl Ready {
    fn of(status: &str) -> Self {
        match status {
            "True" => Self::True,
            "False" => Self::False,
            _ => Self::Unknown,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
            Self::None => "-",
        }
    }
}

/// A condition not in its good state.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// The tree of `kind/name` (in `namespace` unless an account), or `None` if it was not read.
pub fn build(world: &World, kind: Kind, namespace: &str, name: &str) -> Option<Node> {
    let in_ns = |o: &dyn Named| o.at() == (Some(namespace), name);
    let mut root = match kind {
        Kind::Environment => {
            let e = world.environments.iter().find(|e| in_ns(*e))?;
            environment(world, e, Scope::All, true)
        }
        Kind::Project => {
            let p = world.projects.iter().find(|p| in_ns(*p))?;
            let mut node = project(world, p, true);
            node.children.insert(0, uses_environment(world, namespace, &p.spec.environment));
            node
        }
        Kind::Deployment => {
            let d = world.deployments.iter().find(|d| in_ns(*d))?;
            let mut node = deployment(d, None);
            let project = world.projects.iter().find(|p| p.at() == (Some(namespace), d.spec.project.as_str()));
            let mut used = uses_object(Kind::Project, project, &d.spec.project, namespace);
            if let Some(p) = project {
                used.children.push(uses_environment(world, namespace, &p.spec.environment));
            }
            node.children.insert(0, used);
            node
        }
        Kind::Account => {
            let (_, account) = world.accounts.iter().find(|(n, _)| n == name)?;
            let account = account.as_ref().ok()?;
            account_tree(world, account)
        }
    };
    for list in &world.unread {
        root.conditions.push(Problem {
            type_: "Trace".into(),
            status: "Unknown".into(),
            reason: "Unreadable".into(),
            message: format!("could not read {list}: this tree may miss what uses it"),
        });
    }
    Some(root)
}

/// Which part of an environment to show: all of it, or only what lives in one account.
#[derive(Clone, Copy)]
enum Scope<'a> {
    All,
    Account(&'a str),
}

impl Scope<'_> {
    fn holds(self, account: &str) -> bool {
        match self {
            Self::All => true,
            Self::Account(name) => name == account,
        }
    }
}

trait Named {
    fn at(&self) -> (Option<&str>, &str);
}

impl<K: kube::Resource> Named for K {
    fn at(&self) -> (Option<&str>, &str) {
        (self.meta().namespace.as_deref(), self.meta().name.as_deref().unwrap_or_default())
    }
}

/// An object's own line: Ready, or why not (Stalled first), and a status older than the spec.
fn object<K: kube::Resource>(kind: Kind, o: &K, list: &[Condition]) -> Node {
    let generation = o.meta().generation;
    let mut node = Node {
        kind: kind.name().into(),
        name: o.meta().name.clone().unwrap_or_default(),
        namespace: o.meta().namespace.clone(),
        ..Node::default()
    };
    let ready = conditions::find(list, READY);
    let stalled = conditions::find(list, STALLED).filter(|c| c.status == "True");
    match (ready, stalled) {
        (None, _) => {
            node.state = "NoStatus".into();
            node.message = "not reconciled yet: is the controller running?".into();
        }
        (Some(r), _) if r.status == "True" && r.observed_generation < generation => {
            node.state = "Reconciling".into();
            node.message = format!(
                "Ready is of generation {}, the spec is at {}",
                r.observed_generation.unwrap_or_default(),
                generation.unwrap_or_default()
            );
        }
        (Some(r), _) if r.status == "True" => {
            node.ready = Ready::True;
            node.state = READY.into();
        }
        (Some(r), Some(s)) => {
            node.ready = Ready::of(&r.status);
            node.state = STALLED.into();
            node.message = s.message.clone();
        }
        (Some(r), None) => {
            node.ready = Ready::of(&r.status);
            node.state = r.reason.clone();
            node.message = r.message.clone();
        }
    }
    node
}

/// The object's conditions a child line does not show, where they are not in their good state.
fn rest(list: &[Condition], shown: &BTreeSet<String>) -> Vec<Problem> {
    list.iter()
        .filter(|c| ![READY, STALLED, RECONCILING].contains(&c.type_.as_str()) && !shown.contains(&c.type_))
        .filter(|c| if c.type_ == "PromotionPending" { c.status == "True" } else { c.status != "True" })
        .map(|c| Problem {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect()
}

/// A line for a condition-bearing part of an object (`Network`, `Stages`, ...).
fn part(kind: &str, name: &str, list: &[Condition], type_: &str, shown: &mut BTreeSet<String>) -> Node {
    shown.insert(type_.to_owned());
    let mut node = Node { kind: kind.into(), name: name.into(), ..Node::default() };
    match conditions::find(list, type_) {
        Some(c) if c.status == "True" => {
            node.ready = Ready::True;
            node.state = READY.into();
        }
        Some(c) => {
            node.ready = Ready::of(&c.status);
            node.state = c.reason.clone();
            node.message = c.message.clone();
        }
        None => node.state = "NoStatus".into(),
    }
    node
}

/// An AWS resource the status names.
fn resource(kind: &str, name: impl Into<String>, account: &Account, id: impl Into<String>) -> Node {
    Node {
        kind: kind.into(),
        name: name.into(),
        account: Some(account.clone()),
        id: Some(id.into()),
        ready: Ready::None,
        state: "Exists".into(),
        ..Node::default()
    }
}

/// A resource the status should name once it exists: its id, or a line saying it is not there
/// yet when its part is not Ready.
fn expected(parent: &Node, kind: &str, name: &str, account: &Account, id: Option<&String>) -> Option<Node> {
    match id {
        Some(id) => Some(resource(kind, name, account, id.clone())),
        None if parent.ready != Ready::True => Some(Node {
            kind: kind.into(),
            name: name.into(),
            account: Some(account.clone()),
            ready: Ready::False,
            state: "NotCreated".into(),
            ..Node::default()
        }),
        None => None,
    }
}

fn with(mut node: Node, children: impl IntoIterator<Item = Option<Node>>) -> Node {
    node.children.extend(children.into_iter().flatten());
    node
}

/// An AwsAccount as a line under what uses it: its Ready, its id and sagekeeper's identity there.
fn account_line(world: &World, name: &str, relation: &'static str) -> Node {
    let found = world.accounts.iter().find(|(n, _)| n == name).map(|(_, a)| a);
    let mut node = match found {
        Some(Ok(a)) => {
            let list = a.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
            let mut node = object(Kind::Account, a, list);
            node.account = Some(Account { name: name.into(), id: Some(a.spec.account_id.clone()) });
            node.id = a.status.as_ref().and_then(|s| s.caller_arn.clone());
            node.conditions = rest(list, &BTreeSet::new());
            node
        }
        Some(Err(why)) => unread(Kind::Account, name, None, why),
        None => unread(Kind::Account, name, None, "not read"),
    };
    node.relation = Some(relation);
    node
}

fn unread(kind: Kind, name: &str, namespace: Option<&str>, why: &str) -> Node {
    Node {
        kind: kind.name().into(),
        name: name.into(),
        namespace: namespace.map(Into::into),
        state: "Unreadable".into(),
        message: why.into(),
        ..Node::default()
    }
}

/// A used object's own line only (what it holds is its own trace).
fn uses_object<K: Resource + HasConditions>(kind: Kind, found: Option<&K>, name: &str, namespace: &str) -> Node {
    let mut node = match found {
        Some(o) => {
            let mut node = object(kind, o, o.conditions());
            node.conditions = rest(o.conditions(), &BTreeSet::new());
            node
        }
        None => unread(kind, name, Some(namespace), "not found"),
    };
    node.relation = Some("uses");
    node
}

fn uses_environment(world: &World, namespace: &str, name: &str) -> Node {
    let found = world.environments.iter().find(|e| e.at() == (Some(namespace), name));
    let mut node = uses_object(Kind::Environment, found, name, namespace);
    if let Some(e) = found {
        node.account =
            Some(Account { name: e.spec.account.clone(), id: e.status.as_ref().and_then(|s| s.account_id.clone()) });
    }
    node
}

/// The conditions of a sagekeeper object.
pub trait HasConditions {
    fn conditions(&self) -> &[Condition];
}

impl HasConditions for DataScienceEnvironment {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
    }
}

impl HasConditions for MLOpsProject {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
    }
}

impl HasConditions for ModelDeployment {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
    }
}

/// An environment: its dev account, network, keys, buckets, roles, Studio, each target account,
/// and (with `users`) the projects and deployments built on it.
fn environment(world: &World, e: &DataScienceEnvironment, scope: Scope, users: bool) -> Node {
    let list = e.conditions();
    let status = e.status.clone().unwrap_or_default();
    let mut node = object(Kind::Environment, e, list);
    let dev = Account { name: e.spec.account.clone(), id: status.account_id.clone() };
    node.account = Some(dev.clone());
    let mut shown = BTreeSet::new();
    if let Scope::All = scope {
        node.children.push(account_line(world, &e.spec.account, "uses"));
    }
    if scope.holds(&e.spec.account) {
        let network = status.network.clone().unwrap_or_default();
        let part_of =
            |c: Component, shown: &mut BTreeSet<String>| part(c.as_str(), "", list, &c.condition_type(), shown);
        let n = part_of(Component::Network, &mut shown);
        let vpc = expected(&n, "VPC", "", &dev, network.vpc_id.as_ref());
        let private = network.private_subnet_ids.iter().enumerate().map(|(i, id)| {
            let zone = network.availability_zones.get(i).map_or_else(|| i.to_string(), Clone::clone);
            Some(resource("Subnet", format!("private-{zone}"), &dev, id.clone()))
        });
        let public = network.public_subnet_ids.iter().enumerate().map(|(i, id)| {
            let zone = network.availability_zones.get(i).map_or_else(|| i.to_string(), Clone::clone);
            Some(resource("Subnet", format!("public-{zone}"), &dev, id.clone()))
        });
        let groups = network
            .security_group_ids
            .iter()
            .map(|(role, id)| Some(resource("SecurityGroup", role.clone(), &dev, id.clone())));
        let endpoints = network
            .vpc_endpoint_ids
            .iter()
            .map(|(service, id)| Some(resource("VPCEndpoint", service.clone(), &dev, id.clone())));
        let flow = flow_log_resources(network.flow_logs.as_ref(), &dev);
        let n = with(n, std::iter::once(vpc).chain(private).chain(public).chain(groups).chain(endpoints).chain(flow));
        node.children.push(n);

        let keys = status.encryption.clone().unwrap_or_default();
        let k = part_of(Component::Encryption, &mut shown);
        let k_children = [("ebs", &keys.ebs_key_arn), ("studio", &keys.studio_key_arn), ("s3", &keys.s3_key_arn)]
            .map(|(name, arn)| expected(&k, "KMSKey", name, &dev, arn.as_ref()));
        node.children.push(with(k, k_children));

        let storage = status.storage.clone().unwrap_or_default();
        let s = part_of(Component::Storage, &mut shown);
        let s_children = [("data", &storage.data_bucket), ("models", &storage.models_bucket)]
            .map(|(name, bucket)| expected(&s, "S3Bucket", name, &dev, bucket.as_ref()));
        node.children.push(with(s, s_children));

        let identity = status.identity.clone().unwrap_or_default();
        let i = part_of(Component::Identity, &mut shown);
        let fixed = [
            ("execution", &identity.execution_role_arn),
            ("pipeline", &identity.pipeline_role_arn),
            ("model-execution", &identity.model_execution_role_arn),
        ]
        .map(|(name, arn)| expected(&i, "IAMRole", name, &dev, arn.as_ref()));
        let personas = identity
            .persona_role_arns
            .iter()
            .map(|(p, arn)| Some(resource("IAMRole", format!("persona-{p}"), &dev, arn.clone())));
        let i_children: Vec<_> = fixed.into_iter().chain(personas).collect();
        node.children.push(with(i, i_children));

        let studio = status.studio.clone().unwrap_or_default();
        let st = part_of(Component::Studio, &mut shown);
        let mut domain = expected(&st, "StudioDomain", "", &dev, studio.domain_id.as_ref());
        if let Some(d) = domain.as_mut() {
            d.children.extend(studio.user_profiles.iter().map(|p| resource("UserProfile", p.clone(), &dev, p.clone())));
        }
        node.children.push(with(st, [domain]));
    }

    let targets =
        part(Component::TargetAccounts.as_str(), "", list, &Component::TargetAccounts.condition_type(), &mut shown);
    let condition = conditions::find(list, &Component::TargetAccounts.condition_type());
    let mut pairs: Vec<(String, String)> = e
        .spec
        .target_accounts
        .iter()
        .flat_map(|(stage, names)| names.iter().map(move |n| (stage.clone(), n.clone())))
        .collect();
    for t in &status.target_accounts {
        if !pairs.contains(&(t.stage.clone(), t.account.clone())) {
            pairs.push((t.stage.clone(), t.account.clone()));
        }
    }
    let target_nodes: Vec<_> = pairs
        .iter()
        .filter(|(_, account)| scope.holds(account))
        .map(|(stage, account)| {
            let found = status.target_accounts.iter().find(|t| &t.stage == stage && &t.account == account);
            target(
                world,
                stage,
                account,
                found,
                condition,
                !e.spec.target_accounts.get(stage).is_some_and(|n| n.contains(account)),
                scope,
            )
        })
        .map(Some)
        .collect();
    if !target_nodes.is_empty() {
        match scope {
            Scope::All => node.children.push(with(targets, target_nodes)),
            Scope::Account(_) => node.children.extend(target_nodes.into_iter().flatten()),
        }
    }
    for r in status.retained.iter().filter(|_| scope.holds(&e.spec.account)) {
        let mut kept = resource(&r.resource, "", &dev, r.id.clone());
        kept.state = "Retained".into();
        kept.message = r.reason.clone();
        node.children.push(kept);
    }
    if users {
        let namespace = e.meta().namespace.as_deref();
        for p in world
            .projects
            .iter()
            .filter(|p| p.meta().namespace.as_deref() == namespace && p.spec.environment == e.name_any())
        {
            let mut used_by = project(world, p, true);
            used_by.relation = Some("usedBy");
            node.children.push(used_by);
        }
    }
    node.conditions = rest(list, &shown);
    node
}

/// One target account of an environment: its AwsAccount, network, key, bucket and roles there,
/// and, when it is not ready, the part of TargetAccountsReady that is about it.
fn target(
    world: &World,
    stage: &str,
    account: &str,
    found: Option<&TargetAccountStatus>,
    condition: Option<&Condition>,
    leaving: bool,
    scope: Scope,
) -> Node {
    let t = found.cloned().unwrap_or_default();
    let here = Account { name: account.into(), id: t.account_id.clone() };
    let mut node = Node {
        kind: "TargetAccount".into(),
        name: format!("{stage}/{account}"),
        account: Some(here.clone()),
        ready: if t.ready { Ready::True } else { Ready::False },
        state: if t.ready {
            READY.into()
        } else if leaving {
            "Removing".into()
        } else {
            "NotReady".into()
        },
        ..Node::default()
    };
    if !t.ready {
        // The condition names the account a failure is in: "(account <name> for stage <stage>)",
        // or, for one being removed, starts with "<name> (<stage>):".
        let about = condition.filter(|c| {
            c.message.contains(&format!("account {account} for stage {stage}"))
                || c.message.starts_with(&format!("{account} ({stage}):"))
        });
        if let Some(c) = about {
            node.state = c.reason.clone();
            node.message = c.message.clone();
        }
    }
    if let Scope::All = scope {
        node.children.push(account_line(world, account, "uses"));
    }
    let mut children = vec![expected(&node, "VPC", "", &here, t.vpc_id.as_ref())];
    children.extend(
        t.private_subnet_ids
            .iter()
            .enumerate()
            .map(|(i, id)| Some(resource("Subnet", format!("private-{i}"), &here, id.clone()))),
    );
    children.extend(
        [
            ("SecurityGroup", "endpoints", t.security_group_id.as_ref()),
            ("KMSKey", "endpoint", t.endpoint_key_arn.as_ref()),
            ("S3Bucket", "data-capture", t.data_capture_bucket.as_ref()),
            ("IAMRole", "model-execution", t.model_execution_role_arn.as_ref()),
        ]
        .map(|(kind, name, id)| expected(&node, kind, name, &here, id)),
    );
    children.extend(flow_log_resources(t.flow_logs.as_ref(), &here));
    if let Some(deployer) = &t.deployer_arn {
        children.push(Some(resource("IAMRole", "deployer", &here, deployer.clone())));
    }
    with(node, children)
}

/// A VPC's flow log, its log group and its delivery role, while flow logs are on.
fn flow_log_resources(
    flow: Option<&sagekeeper_api::environment::FlowLogsStatus>,
    account: &Account,
) -> Vec<Option<Node>> {
    flow.map(|f| {
        vec![
            Some(resource("FlowLog", "", account, f.flow_log_id.clone())),
            Some(resource("LogGroup", "flow-logs", account, f.log_group.clone())),
            Some(resource("IAMRole", "flow-logs-delivery", account, f.delivery_role_arn.clone())),
        ]
    })
    .unwrap_or_default()
}

/// A project: its registry and pipeline, and (with `users`) the deployments of its models.
fn project(world: &World, p: &MLOpsProject, users: bool) -> Node {
    let list = p.conditions();
    let status = p.status.clone().unwrap_or_default();
    let mut node = object(Kind::Project, p, list);
    let env =
        world.environments.iter().find(|e| e.at() == (p.meta().namespace.as_deref(), p.spec.environment.as_str()));
    let dev = Account {
        name: env.map(|e| e.spec.account.clone()).unwrap_or_default(),
        id: env.and_then(|e| e.status.as_ref()).and_then(|s| s.account_id.clone()),
    };
    node.account = Some(dev.clone());
    let mut shown = BTreeSet::new();

    let registry = part(Component::Registry.as_str(), "", list, &Component::Registry.condition_type(), &mut shown);
    let group_name = status.model_package_group_name.clone().unwrap_or_default();
    let mut group =
        expected(&registry, "ModelPackageGroup", &group_name, &dev, status.model_package_group_arn.as_ref());
    if let Some(g) = group.as_mut() {
        let versions = [&status.latest_model_package, &status.latest_approved_model_package];
        let mut seen = BTreeSet::new();
        for v in versions.into_iter().flatten().filter(|v| seen.insert(v.version)) {
            let mut line = resource("ModelPackage", format!("v{}", v.version), &dev, v.arn.clone());
            line.state = v.approval_status.clone().unwrap_or_default();
            g.children.push(line);
        }
    }
    node.children.push(with(registry, [group]));

    let pipeline = part(Component::Pipeline.as_str(), "", list, &Component::Pipeline.condition_type(), &mut shown);
    let pipeline_name =
        status.pipeline_arn.as_deref().and_then(|a| a.rsplit('/').next()).unwrap_or_default().to_owned();
    let mut line = expected(&pipeline, "Pipeline", &pipeline_name, &dev, status.pipeline_arn.as_ref());
    if let (Some(line), Some(run)) = (line.as_mut(), status.last_execution.as_ref()) {
        let mut execution = part(
            "PipelineExecution",
            run.arn.rsplit('/').next().unwrap_or_default(),
            list,
            "LastRunSucceeded",
            &mut shown,
        );
        execution.account = Some(dev.clone());
        execution.id = Some(run.arn.clone());
        execution.state = run.status.clone();
        if let Some(reason) = &run.failure_reason {
            execution.message = reason.clone();
        }
        line.children.push(execution);
    }
    node.children.push(with(pipeline, [line]));

    if users {
        let namespace = p.meta().namespace.as_deref();
        for d in world
            .deployments
            .iter()
            .filter(|d| d.meta().namespace.as_deref() == namespace && d.spec.project == p.name_any())
        {
            let mut used_by = deployment(d, None);
            used_by.relation = Some("usedBy");
            node.children.push(used_by);
        }
    }
    node.conditions = rest(list, &shown);
    node
}

/// A deployment: the model version it resolved and each stage with its endpoints (only those in
/// `account`, when given).
fn deployment(d: &ModelDeployment, account: Option<&str>) -> Node {
    let list = d.conditions();
    let status = d.status.clone().unwrap_or_default();
    let mut node = object(Kind::Deployment, d, list);
    let mut shown = BTreeSet::new();
    if account.is_none() {
        let model = part("ModelVersion", "", list, "ModelResolved", &mut shown);
        let model = match &status.resolved_model_package {
            Some(m) => Node { name: format!("v{}", m.version), id: Some(m.arn.clone()), ..model },
            None => model,
        };
        node.children.push(model);
    }
    let mut stages = part(Component::Stages.as_str(), "", list, &Component::Stages.condition_type(), &mut shown);
    shown.insert("PromotionPending".into());
    for s in &status.stages {
        let line = stage(s, account);
        if account.is_none() || !line.children.is_empty() {
            stages.children.push(line);
        }
    }
    node.children.push(stages);
    node.conditions = rest(list, &shown);
    node
}

fn stage(s: &StageStatus, account: Option<&str>) -> Node {
    let (ready, word) = match s.phase {
        StagePhase::Serving => (Ready::True, "Serving"),
        StagePhase::WaitingForApproval => (Ready::True, "WaitingForApproval"),
        StagePhase::Pending => (Ready::Unknown, "Pending"),
        StagePhase::Deploying => (Ready::Unknown, "Deploying"),
        StagePhase::Baking => (Ready::Unknown, "Baking"),
        StagePhase::Failed => (Ready::False, "Failed"),
    };
    let serving = s.serving_version.map_or_else(|| "none".to_owned(), |v| format!("v{v}"));
    let node = Node {
        kind: "Stage".into(),
        name: s.name.clone(),
        ready,
        state: format!("{word} {serving}"),
        message: s.message.clone(),
        ..Node::default()
    };
    let endpoints =
        s.accounts.iter().filter(|a| account.is_none_or(|name| a.account == name)).map(|a| Some(endpoint(a)));
    with(node, endpoints)
}

fn endpoint(a: &StageAccountStatus) -> Node {
    let here = Account { name: a.account.clone(), id: a.account_id.clone() };
    let state = a.endpoint_status.clone().unwrap_or_else(|| "NotCreated".into());
    let ready = match state.as_str() {
        "InService" => Ready::True,
        "Failed" | "OutOfService" | "NotCreated" => Ready::False,
        _ => Ready::Unknown,
    };
    let mut node = Node {
        kind: "SageMakerEndpoint".into(),
        name: a.endpoint_name.clone().unwrap_or_default(),
        account: Some(here.clone()),
        id: a.endpoint_arn.clone().or_else(|| a.endpoint_name.clone()),
        ready,
        state,
        message: a.failure_reason.clone().unwrap_or_default(),
        ..Node::default()
    };
    if let Some(config) = &a.endpoint_config_name {
        node.children.push(resource("EndpointConfig", "", &here, config.clone()));
    }
    if let Some(model) = &a.model_name {
        node.children.push(resource("Model", "", &here, model.clone()));
    }
    if let Some(failed) = &a.failed_endpoint_config_name {
        let mut line = resource("EndpointConfig", "failed", &here, failed.clone());
        line.ready = Ready::False;
        line.state = "Failed".into();
        node.children.push(line);
    }
    if let Some(percent) = a.traffic_percent {
        node.state = format!("{} ({percent}% of traffic on the new fleet)", node.state);
    }
    for alarm in &a.rollback_alarms {
        node.children.push(resource("Alarm", "rollback", &here, alarm.clone()));
    }
    if let Some(target) = &a.scaling_target {
        let mut line = resource("ScalableTarget", "", &here, target.clone());
        if let Some(count) = a.current_instance_count {
            line.state = format!("{count} instances");
        }
        node.children.push(line);
    }
    node
}

/// An account: the environments that live in it (their dev resources or their target account
/// there) and the deployments' endpoints in it, in every namespace read.
fn account_tree(world: &World, a: &AwsAccount) -> Node {
    let name = a.name_any();
    let mut node = account_line(world, &name, "uses");
    node.relation = None;
    for e in &world.environments {
        let uses = e.spec.account == name
            || e.spec.target_accounts.values().flatten().any(|n| *n == name)
            || e.status.iter().flat_map(|s| &s.target_accounts).any(|t| t.account == name);
        if uses {
            let mut used_by = environment(world, e, Scope::Account(&name), false);
            used_by.relation = Some("usedBy");
            node.children.push(used_by);
        }
    }
    for d in &world.deployments {
        let mut used_by = deployment(d, Some(&name));
        if used_by.children.iter().any(|stages| !stages.children.is_empty()) {
            used_by.relation = Some("usedBy");
            node.children.push(used_by);
        }
    }
    node
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2026-12-01T00:00:00Z", "observedGeneration": 1})
    }

    fn environment(conditions: Value, targets: Value) -> DataScienceEnvironment {
        serde_json::from_value(json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "DataScienceEnvironment",
            "metadata": {"name": "fraud", "namespace": "team", "generation": 1},
            "spec": {"account": "dev", "region": "us-east-1",
                     "targetAccounts": {"staging": ["stg"], "production": ["prd"]}},
            "status": {"conditions": conditions, "accountId": "111111111111",
                       "network": {"vpcId": "vpc-dev", "availabilityZones": ["us-east-1a"],
                                   "privateSubnetIds": ["subnet-a"]},
                       "targetAccounts": targets}
        }))
        .unwrap()
    }

    fn target(account: &str, stage: &str, id: &str, ready: bool, role: Option<&str>) -> Value {
        json!({"account": account, "stage": stage, "accountId": id, "vpcId": format!("vpc-{account}"),
               "modelExecutionRoleArn": role, "ready": ready})
    }

    fn find<'a>(node: &'a Node, kind: &str, name: &str) -> Option<&'a Node> {
        if node.kind == kind && node.name == name {
            return Some(node);
        }
        node.children.iter().find_map(|c| find(c, kind, name))
    }

    #[test]
    fn a_refusal_in_one_target_account_is_shown_on_that_account_with_what_is_missing() {
        let refusal = "AccessDenied: IAM role fraud-model-execution in stg (step TargetRole(\"staging\")): no iam (account stg for stage staging)";
        let env = environment(
            json!([
                condition("Ready", "False", "AccessDenied", refusal),
                condition("Stalled", "True", "AccessDenied", refusal),
                condition("NetworkReady", "True", "Converged", "ok"),
                condition(
                    "EncryptionReady",
                    "False",
                    "EncryptionPending",
                    "waits for TargetRole(\"staging\"), which failed: AccessDenied"
                ),
                condition("TargetAccountsReady", "False", "AccessDenied", refusal),
            ]),
            json!([
                target("stg", "staging", "222222222222", false, None),
                target("prd", "production", "333333333333", true, Some("arn:aws:iam::333333333333:role/m"))
            ]),
        );
        let world = World { environments: vec![env], ..World::default() };
        let root = build(&world, Kind::Environment, "team", "fraud").unwrap();
        assert_eq!((root.ready, root.state.as_str(), root.message.as_str()), (Ready::False, "Stalled", refusal));
        let staging = find(&root, "TargetAccount", "staging/stg").unwrap();
        assert_eq!(
            (staging.ready, staging.state.as_str(), staging.message.as_str()),
            (Ready::False, "AccessDenied", refusal)
        );
        assert_eq!(staging.account.as_ref().unwrap().id.as_deref(), Some("222222222222"));
        let role = find(staging, "IAMRole", "model-execution").unwrap();
        assert_eq!((role.ready, role.state.as_str()), (Ready::False, "NotCreated"));
        let production = find(&root, "TargetAccount", "production/prd").unwrap();
        assert_eq!((production.ready, production.message.as_str()), (Ready::True, ""), "the refusal is not about prd");
        assert_eq!(find(&root, "VPC", "").unwrap().id.as_deref(), Some("vpc-dev"));
        assert_eq!(find(&root, "Subnet", "private-us-east-1a").unwrap().id.as_deref(), Some("subnet-a"));
        let encryption = find(&root, "Encryption", "").unwrap();
        assert_eq!((encryption.ready, encryption.state.as_str()), (Ready::False, "EncryptionPending"));
        assert_eq!(find(encryption, "KMSKey", "ebs").unwrap().state, "NotCreated");
        // Each condition is said once, on the line it is about; the accounts were not read.
        assert!(root.conditions.is_empty(), "{:?}", root.conditions);
        assert_eq!(find(&root, "AwsAccount", "dev").unwrap().state, "Unreadable");
    }

    #[test]
    fn an_account_trace_shows_only_what_lives_in_that_account() {
        let ready = json!([condition("Ready", "True", "Converged", "ok")]);
        let env = environment(
            ready.clone(),
            json!([
                target("stg", "staging", "222222222222", true, Some("arn:aws:iam::222222222222:role/m")),
                target("prd", "production", "333333333333", true, Some("arn:aws:iam::333333333333:role/m"))
            ]),
        );
        let deployment: ModelDeployment = serde_json::from_value(json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "churn", "namespace": "team", "generation": 1},
            "spec": {"project": "churn", "stages": [{"name": "staging", "instanceType": "ml.m5.large"},
                                                   {"name": "production", "instanceType": "ml.m5.large"}]},
            "status": {"conditions": ready, "stages": [
                {"name": "staging", "phase": "Serving", "servingVersion": 3, "accounts": [
                    {"account": "stg", "endpointName": "e-stg", "endpointStatus": "InService",
                     "rollbackAlarms": ["sagekeeper-f-e-stg-5xx-errors"], "currentInstanceCount": 3,
                     "scalingTarget": "endpoint/e-stg/variant/AllTraffic"}]},
                {"name": "production", "phase": "Deploying", "accounts": [
                    {"account": "prd", "endpointName": "e-prd", "endpointStatus": "Creating"}]}]}
        }))
        .unwrap();
        let account: AwsAccount = serde_json::from_value(json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "AwsAccount", "metadata": {"name": "stg"},
            "spec": {"accountId": "222222222222", "namespaceSelector": {"matchLabels": {"team": "t"}}},
            "status": {"conditions": [condition("Ready", "True", "Converged", "ok")], "callerArn": "arn:aws:sts::222222222222:assumed-role/d/s"}
        }))
        .unwrap();
        let world = World {
            accounts: vec![("stg".into(), Ok(account))],
            environments: vec![env],
            deployments: vec![deployment],
            ..World::default()
        };
        let root = build(&world, Kind::Account, "", "stg").unwrap();
        assert_eq!((root.kind.as_str(), root.ready), ("AwsAccount", Ready::True));
        let env = find(&root, "DataScienceEnvironment", "fraud").unwrap();
        assert_eq!(env.relation, Some("usedBy"));
        assert!(find(env, "TargetAccount", "staging/stg").is_some());
        assert!(
            find(env, "TargetAccount", "production/prd").is_none() && find(env, "Network", "").is_none(),
            "{env:#?}"
        );
        let vpc = find(env, "VPC", "").unwrap();
        assert_eq!(vpc.account.as_ref().map(|a| a.name.as_str()), Some("stg"));
        let endpoint = find(&root, "SageMakerEndpoint", "e-stg").unwrap();
        assert_eq!((endpoint.ready, endpoint.state.as_str()), (Ready::True, "InService"));
        let alarm = find(endpoint, "Alarm", "rollback").unwrap();
        assert_eq!(alarm.id.as_deref(), Some("sagekeeper-f-e-stg-5xx-errors"));
        let target = find(endpoint, "ScalableTarget", "").unwrap();
        assert_eq!(
            (target.id.as_deref(), target.state.as_str()),
            (Some("endpoint/e-stg/variant/AllTraffic"), "3 instances")
        );
        assert!(find(&root, "SageMakerEndpoint", "e-prd").is_none() && find(&root, "Stage", "production").is_none());
    }

    #[test]
    fn a_ready_status_older_than_the_spec_is_not_shown_ready_and_no_status_says_so() {
        let mut env = environment(json!([condition("Ready", "True", "Converged", "ok")]), json!([]));
        env.metadata.generation = Some(2);
        let world = World { environments: vec![env.clone()], ..World::default() };
        let root = build(&world, Kind::Environment, "team", "fraud").unwrap();
        assert_eq!((root.ready, root.state.as_str()), (Ready::Unknown, "Reconciling"));
        assert!(root.message.contains("generation 1") && root.message.contains("at 2"), "{}", root.message);
        env.status = None;
        let world = World {
            environments: vec![env],
            unread: vec!["mlopsprojects.sagekeeper.io (Forbidden)".into()],
            ..World::default()
        };
        let root = build(&world, Kind::Environment, "team", "fraud").unwrap();
        assert_eq!((root.ready, root.state.as_str()), (Ready::Unknown, "NoStatus"));
        assert_eq!(root.conditions[0].reason, "Unreadable", "a list it could not read is said: {:?}", root.conditions);
        assert!(build(&world, Kind::Environment, "other", "fraud").is_none(), "another namespace's object is not it");
    }
}
