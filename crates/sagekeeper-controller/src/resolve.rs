//! Resolving references before any AWS work: the AwsAccounts an object uses (existence,
//! tenancy, region allow-list, readiness), the objects that still use one being deleted, and
//! how a failed AWS call becomes an outcome.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use sagekeeper_api::conditions::{self, Component, Outcome, Reason};
use sagekeeper_api::{AwsAccount, AwsAccountSet, tenancy};
use sagekeeper_aws::{AccountAccess, AwsError, ErrorKind};

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Report, Retry};
use crate::run::Error;

/// The labels of a namespace, read fresh each pass so tenancy follows label changes.
pub(crate) async fn namespace_labels(ctx: &Context, namespace: &str) -> Result<BTreeMap<String, String>, Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let ns = api.get(namespace).await.map_err(|e| Error::Read(format!("Namespace {namespace}"), e))?;
    Ok(ns.labels().clone())
}

/// A referenced object, read from the API server. The watch caches may lag the event that woke
/// this reconcile (each watch has its own), so references are read fresh.
pub(crate) async fn fetch<K: Kind>(ctx: &Context, namespace: Option<&str>, name: &str) -> Result<Option<K>, Error> {
    K::api(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| Error::Read(format!("{} {name}", K::kind(&())), e))
}

/// Why resolving references stopped: an outcome to report (a reference missing, not Ready or
/// not permitted), or a failed read of the Kubernetes API.
#[derive(Debug)]
pub(crate) enum Unresolved {
    /// Reported as the object's outcome; the pass goes no further.
    Outcome(Outcome),
    /// The reconcile fails and backs off.
    Kube(Error),
}

impl From<Error> for Unresolved {
    fn from(e: Error) -> Self {
        Self::Kube(e)
    }
}

impl From<Outcome> for Unresolved {
    fn from(outcome: Outcome) -> Self {
        Self::Outcome(outcome)
    }
}

impl Unresolved {
    /// The outcome to report; a Kubernetes API error fails the reconcile.
    pub(crate) fn outcome(self) -> Result<Outcome, Error> {
        match self {
            Self::Outcome(outcome) => Ok(outcome),
            Self::Kube(e) => Err(e),
        }
    }
}

/// The AwsAccount `name` as the objects of `namespace` may use it in `region`, or the outcome
/// that explains why not: missing or not Ready (DependencyNotReady), namespace not selected
/// (AccountNotPermitted), region not allowed (InvalidConfiguration).
pub(crate) async fn account(
    ctx: &Context,
    name: &str,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    region: Option<&str>,
) -> Result<Arc<AwsAccount>, Unresolved> {
    let Some(account) = fetch::<AwsAccount>(ctx, None, name).await? else {
        return Err(Outcome::progressing(Reason::DependencyNotReady, format!("AwsAccount {name} not found")).into());
    };
    permitted(&account, name, namespace, namespace_labels, region)?;
    Ok(Arc::new(account))
}

/// What an AwsAccountSet stands for now: the AwsAccounts of its members (not those leaving),
/// and the `aws:PrincipalOrgPaths` pattern that admits every one of them (its unit's path,
/// ending `*` when nested units count), once the set has read it.
pub(crate) struct SetMembers {
    pub(crate) accounts: Vec<String>,
    /// Those of `accounts` the set made (with its role name): policies admit these by
    /// `org_path`; an AwsAccount that existed before is named as any other account.
    pub(crate) made: Vec<String>,
    pub(crate) org_path: Option<String>,
}

/// The members of AwsAccountSet `name`, or why not (missing, not Ready).
pub(crate) async fn set_members(ctx: &Context, name: &str) -> Result<SetMembers, Unresolved> {
    let Some(set) = fetch::<AwsAccountSet>(ctx, None, name).await? else {
        return Err(Outcome::progressing(Reason::DependencyNotReady, format!("AwsAccountSet {name} not found")).into());
    };
    let list = set.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    ready("AwsAccountSet", name, list, set.meta().generation)?;
    let members: Vec<_> = set.status.iter().flat_map(|s| &s.accounts).filter(|a| !a.leaving).collect();
    let nested = if set.spec.include_nested_units { "*" } else { "" };
    Ok(SetMembers {
        accounts: members.iter().map(|a| a.aws_account.clone()).collect(),
        made: members.iter().filter(|a| !a.existing).map(|a| a.aws_account.clone()).collect(),
        org_path: set.status.as_ref().and_then(|s| s.organization_path.as_ref()).map(|path| format!("{path}{nested}")),
    })
}

/// Stage -> AwsAccount names: `accounts` and every member of `sets`, each name once; and the
/// sets' members.
pub(crate) async fn stage_accounts(
    ctx: &Context,
    accounts: &BTreeMap<String, Vec<String>>,
    sets: &BTreeMap<String, Vec<String>>,
) -> Result<(BTreeMap<String, Vec<String>>, Vec<SetMembers>), Unresolved> {
    let mut out = accounts.clone();
    let mut all = Vec::new();
    for (stage, names) in sets {
        for set in names {
            let members = set_members(ctx, set).await?;
            let listed = out.entry(stage.clone()).or_default();
            for member in &members.accounts {
                if !listed.contains(member) {
                    listed.push(member.clone());
                }
            }
            all.push(members);
        }
    }
    Ok((out, all))
}

/// An account to clean up in: it must still admit the namespace (tenancy is re-checked at
/// deletion too: an object never reaches into an account that no longer admits it), but may be
/// not ready or being deleted itself (it waits for its users, this object among them).
pub(crate) async fn account_for_teardown(
    ctx: &Context,
    name: &str,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<Arc<AwsAccount>, Unresolved> {
    let Some(account) = fetch::<AwsAccount>(ctx, None, name).await? else {
        let why = format!("AwsAccount {name} not found: cannot clean up there");
        return Err(Outcome::progressing(Reason::DependencyNotReady, why).into());
    };
    if !tenancy::selects(&account.spec.namespace_selector, namespace_labels) {
        return Err(Outcome::stalled(
            Reason::AccountNotPermitted,
            format!(
                "AwsAccount {name} does not admit namespace {namespace} any more: nothing is cleaned up there until it does (or set deletionPolicy: Retain to release the object)"
            ),
        )
        .into());
    }
    Ok(Arc::new(account))
}

fn permitted(
    account: &AwsAccount,
    name: &str,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    region: Option<&str>,
) -> Result<(), Outcome> {
    if !tenancy::selects(&account.spec.namespace_selector, namespace_labels) {
        return Err(Outcome::stalled(
            Reason::AccountNotPermitted,
            format!(
                "AwsAccount {name} does not admit namespace {namespace}: its spec.namespaceSelector does not select it"
            ),
        ));
    }
    if let (Some(region), Some(allowed)) = (region, account.spec.regions.as_ref())
        && !allowed.iter().any(|r| r == region)
    {
        return Err(Outcome::stalled(
            Reason::InvalidConfiguration,
            format!("AwsAccount {name} does not allow region {region} (its spec.regions: {})", allowed.join(", ")),
        ));
    }
    if account.meta().deletion_timestamp.is_some() {
        return Err(Outcome::progressing(Reason::DependencyNotReady, format!("AwsAccount {name} is being deleted")));
    }
    let list = account.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    ready("AwsAccount", name, list, account.meta().generation)
}

/// Ok when a referenced object's conditions say Ready for its current generation; otherwise
/// DependencyNotReady naming the object and why it is not ready.
pub(crate) fn ready(kind: &str, name: &str, list: &[Condition], generation: Option<i64>) -> Result<(), Outcome> {
    if conditions::is_ready(list, generation) {
        return Ok(());
    }
    // A dependency that needs an outside fix stalls its users too, with its reason: waiting
    // would not help them either.
    if let Some(stalled) = conditions::find(list, conditions::STALLED).filter(|c| c.status == "True")
        && let Ok(reason) = stalled.reason.parse::<Reason>()
    {
        return Err(Outcome::stalled(reason, format!("{kind} {name} is stalled: {}", stalled.message)));
    }
    let why = conditions::find(list, conditions::READY)
        .map(|c| format!(" ({}: {})", c.reason, c.message))
        .unwrap_or_default();
    Err(Outcome::progressing(Reason::DependencyNotReady, format!("{kind} {name} is not Ready{why}")))
}

/// How an AwsAccount is reached, in `region` (`None`: the controller's default region).
pub(crate) fn access_of(account: &AwsAccount, region: Option<&str>) -> AccountAccess {
    AccountAccess {
        role_arn: account.spec.role_arn.clone(),
        external_id: account.spec.external_id.clone(),
        region: region.map(str::to_owned),
    }
}

/// The report of a pass that failed on an AWS call on `resource`: permissions, quotas, invalid
/// requests and taken names stall (and are re-checked at the drift interval); throttling,
/// transient failures and busy resources back off; a missing resource is still pending.
pub(crate) fn aws_failure<S>(
    status: S,
    component: Component,
    err: &AwsError,
    resource: &str,
    remedy: &str,
) -> Report<S> {
    let (outcome, retry) = failure(component, err, resource, remedy);
    Report { retry, failure: Some(err.kind), ..Report::new(status, outcome) }
}

/// The outcome of one component that failed on an AWS call, and when to look again.
pub(crate) fn failure(component: Component, err: &AwsError, resource: &str, remedy: &str) -> (Outcome, Retry) {
    let message = conditions::aws_failure_message(&err.code, resource, &err.message, remedy);
    match err.kind {
        ErrorKind::AccessDenied => (Outcome::stalled(Reason::AccessDenied, message), Retry::Drift),
        ErrorKind::Quota => (Outcome::stalled(Reason::QuotaExceeded, message), Retry::Drift),
        ErrorKind::Invalid => (Outcome::stalled(Reason::InvalidConfiguration, message), Retry::Drift),
        ErrorKind::Conflict => (Outcome::stalled(Reason::NameConflict, message), Retry::Drift),
        ErrorKind::NotFound => (Outcome::progressing(Reason::Pending(component), message), Retry::Pending),
        ErrorKind::Busy => (Outcome::progressing(Reason::Pending(component), message), Retry::Backoff),
        ErrorKind::Throttled | ErrorKind::Transient => {
            (Outcome::progressing(Reason::Failed(component), message), Retry::Backoff)
        }
    }
}

/// The objects that still name AwsAccount `name`: environments (as dev or target account, or
/// holding something there per status) and deployments (in a stage's accounts, or still
/// serving there per status). One named through an account set holds it through its status.
pub(crate) async fn account_users(ctx: &Context, name: &str) -> Result<Vec<String>, Error> {
    // An environment still holds an account it no longer lists until it cleaned up there.
    let mut users = users_of(ctx, &ctx.stores.environments, |e| {
        e.spec.account == name
            || e.spec.target_accounts.values().flatten().any(|a| a == name)
            || e.status.iter().flat_map(|s| &s.target_accounts).any(|t| t.account == name)
    })
    .await?;
    users.extend(
        users_of(ctx, &ctx.stores.deployments, |d| {
            let in_spec = d.spec.stages.iter().flat_map(|s| s.accounts.iter().flatten()).any(|a| a == name);
            let in_status =
                d.status.iter().flat_map(|s| &s.stages).flat_map(|s| &s.accounts).any(|a| a.account == name);
            in_spec || in_status
        })
        .await?,
    );
    users.sort();
    Ok(users)
}

/// The projects that name environment `name` in `namespace`.
pub(crate) async fn environment_users(ctx: &Context, namespace: &str, name: &str) -> Result<Vec<String>, Error> {
    users_of(ctx, &ctx.stores.projects, |p| p.namespace().as_deref() == Some(namespace) && p.spec.environment == name)
        .await
}

/// The deployments that name project `name` in `namespace`.
pub(crate) async fn project_users(ctx: &Context, namespace: &str, name: &str) -> Result<Vec<String>, Error> {
    users_of(ctx, &ctx.stores.deployments, |d| d.namespace().as_deref() == Some(namespace) && d.spec.project == name)
        .await
}

/// Deletion is done once nobody uses the object; until then it waits, saying who holds it.
pub(crate) fn unless_in_use<S>(users: &[String], status: S) -> Cleanup<S> {
    if users.is_empty() {
        return Cleanup::Done;
    }
    let outcome = Outcome::progressing(Reason::InUse, format!("deletion waits: still used by {}", users.join(", ")));
    Cleanup::Wait(Report::new(status, outcome))
}

/// "Kind namespace/name" of every object in `store` that `pick` selects and that the API server
/// still has, so picked. The store only proposes candidates: the watch event that woke this
/// reconcile (a user going away) can arrive before the store has dropped that user, and
/// trusting the store then would leave the deletion waiting for the next requeue.
async fn users_of<K: Kind>(ctx: &Context, store: &Store<K>, pick: impl Fn(&K) -> bool) -> Result<Vec<String>, Error> {
    let mut users = Vec::new();
    for candidate in store.state().iter().filter(|o| pick(o)) {
        let name = candidate.name_any();
        let api = K::api(ctx.client.clone(), candidate.namespace().as_deref());
        let current = api.get_opt(&name).await.map_err(|e| Error::Read(describe(&K::kind(&()), &**candidate), e))?;
        if current.is_some_and(|c| pick(&c)) {
            users.push(describe(&K::kind(&()), &**candidate));
        }
    }
    users.sort();
    Ok(users)
}

fn describe<K: ResourceExt>(kind: &str, obj: &K) -> String {
    match obj.namespace() {
        Some(ns) => format!("{kind} {ns}/{}", obj.name_any()),
        None => format!("{kind} {}", obj.name_any()),
    }
}
