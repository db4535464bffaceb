//! AwsAccountSet reconciler: resolve the organization account (Ready); observe the OU's active
//! accounts through it (one step through the runner: the unit's path, then every page of its
//! accounts and, when asked, of its nested units'); plan, purely, one AwsAccount per member
//! (`<set>-<accountId>`, labelled and owned by the set) unless an AwsAccount of that account
//! exists already, and which of the set's AwsAccounts belong to accounts that left; run it on
//! the Kubernetes side (create or update the set's AwsAccounts, delete those of accounts that
//! left once nothing uses them); fold it into status. Looks again every pollIntervalSeconds.
//! Deletion removes the set's AwsAccounts that nothing uses and waits with InUse for the rest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use sagekeeper_api::account_set::{SET_LABEL, SetAccount, member_name};
use sagekeeper_api::conditions::{Component, Outcome, Reason};
use sagekeeper_api::{AwsAccount, AwsAccountSet, AwsAccountSetStatus, AwsAccountSpec, FIELD_MANAGER};
use sagekeeper_aws::organizations::{self, Member, Unit};
use sagekeeper_aws::steps::{Action, Changes};

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Report, Retry, change_notes, status_fields};
use crate::resolve::{self, access_of, account_users, aws_failure};
use crate::run::Error;
use crate::steps::{Done, Lane, Ran, Service, Step, StepId};

impl Kind for AwsAccountSet {
    type Status = AwsAccountSetStatus;

    fn api(client: Client, _namespace: Option<&str>) -> Api<Self> {
        Api::all(client)
    }

    status_fields!();

    fn retain_on_delete(&self) -> bool {
        false
    }

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let previous = self.status.clone().unwrap_or_default();
        let poll = Duration::from_secs(u64::from(self.spec.poll_interval_seconds));
        let org = match organization_account(self, ctx).await {
            Ok(org) => org,
            Err(unresolved) => return Ok(Report::new(previous, unresolved.outcome()?)),
        };
        let ou = &self.spec.organizational_unit_id;
        let unit = match observe(ctx, &org, ou, self.spec.include_nested_units).await {
            Ok(unit) => unit,
            Err(done) => {
                let report = match done {
                    Done::Failed(f) => {
                        let remedy = format!(
                            "the organization account's role needs organizations:DescribeOrganization, DescribeOrganizationalUnit, ListParents, ListAccountsForParent and ListOrganizationalUnitsForParent, and AwsAccount {} must be the organization's management account or a delegated administrator",
                            org.name_any()
                        );
                        let resource = format!("organizational unit {ou}");
                        aws_failure(previous, Component::Organization, &f.error, &resource, &remedy)
                    }
                    _ => {
                        let why = format!("reading organizational unit {ou}");
                        Report::new(previous, Outcome::progressing(Reason::Pending(Component::Organization), why))
                    }
                };
                return Ok(report);
            }
        };
        let accounts: Vec<Arc<AwsAccount>> = ctx.stores.accounts.state();
        let plan = plan(self, org.spec.role_arn.as_deref(), &unit, &accounts);
        let changes = Changes::default();
        let api: Api<AwsAccount> = Api::all(ctx.client.clone());
        for account in &plan.apply {
            let name = account.name_any();
            let params = PatchParams::apply(FIELD_MANAGER).force();
            api.patch(&name, &params, &Patch::Apply(account)).await.map_err(|e| Error::Write(name.clone(), e))?;
            let action = if plan.made.contains(&name) { Action::Created } else { Action::Updated };
            changes.record(action, format!("AwsAccount {name}"));
        }
        let mut held = BTreeMap::new();
        for name in &plan.leaving {
            let users = account_users(ctx, name).await?;
            if users.is_empty() {
                delete(&api, name).await?;
                changes.record(Action::Deleted, format!("AwsAccount {name} (its account left {ou})"));
            } else {
                held.insert(name.clone(), users);
            }
        }
        let report = fold(self, &unit, &plan, &held, changes.take(), poll);
        Ok(report)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let status = self.status.clone().unwrap_or_default();
        let api: Api<AwsAccount> = Api::all(ctx.client.clone());
        let mut waiting = Vec::new();
        for account in owned(self, &ctx.stores.accounts.state()) {
            let name = account.name_any();
            let users = account_users(ctx, &name).await?;
            if !users.is_empty() {
                waiting.push(format!("AwsAccount {name} is used by {}", users.join(", ")));
                continue;
            }
            if account.meta().deletion_timestamp.is_none() {
                delete(&api, &name).await?;
            }
            waiting.push(format!("AwsAccount {name} is being deleted"));
        }
        if waiting.is_empty() {
            return Ok(Cleanup::Done);
        }
        let outcome = Outcome::progressing(Reason::InUse, format!("deletion waits: {}", waiting.join("; ")));
        Ok(Cleanup::Wait(Report { retry: Retry::After(Duration::from_secs(5)), ..Report::new(status, outcome) }))
    }
}

/// The organization account, Ready.
async fn organization_account(set: &AwsAccountSet, ctx: &Context) -> Result<Arc<AwsAccount>, resolve::Unresolved> {
    let name = &set.spec.organization_account;
    let Some(org) = resolve::fetch::<AwsAccount>(ctx, None, name).await? else {
        let message = format!("AwsAccount {name} (spec.organizationAccount) not found");
        return Err(Outcome::progressing(Reason::DependencyNotReady, message).into());
    };
    let list = org.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    resolve::ready("AwsAccount", name, list, org.meta().generation)?;
    Ok(Arc::new(org))
}

/// The one step of a set's pass: the unit and its members.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ReadUnit;

impl StepId for ReadUnit {
    fn step(&self) -> &'static str {
        "ReadUnit"
    }

    fn component(&self) -> Component {
        Component::Organization
    }
}

/// Reads the unit through the runner (bounded per account and service like every AWS call).
async fn observe(ctx: &Context, org: &AwsAccount, ou: &str, nested: bool) -> Result<Unit, Done<Unit>> {
    let session = ctx.sessions.session(&access_of(org, None));
    let lane = Lane::new(&org.spec.account_id, Service::Organizations);
    let step = Step::new(ReadUnit, vec![], lane, move |_| {
        let session = session.clone();
        async move { Done::from_aws(organizations::unit(&session, ou, nested).await, format!("organizational unit {ou}")) }
            .boxed()
    });
    let mut results = ctx.runner().run("AwsAccountSet", vec![step], &BTreeMap::new()).await;
    match results.remove(&ReadUnit) {
        Some(Ran::Done(Done::Ready(unit))) => Ok(unit),
        Some(Ran::Done(done)) => Err(done),
        _ => Err(Done::pending(format!("reading organizational unit {ou}"))),
    }
}

/// What a pass does on the Kubernetes side.
#[derive(Debug, Default)]
struct SetPlan {
    /// Every member, with the AwsAccount it is used through.
    accounts: Vec<SetAccount>,
    /// The set's AwsAccounts to create or bring back to what the set says.
    apply: Vec<AwsAccount>,
    /// Names among `apply` that do not exist yet.
    made: Vec<String>,
    /// The set's AwsAccounts whose account left the unit.
    leaving: Vec<String>,
}

/// Pure: one AwsAccount per member, unless one of that account exists and is not the set's;
/// the set's own AwsAccounts of accounts that left. `partition_of`: the organization account's
/// role ARN, whose partition the members' role ARNs take.
fn plan(set: &AwsAccountSet, org_role: Option<&str>, unit: &Unit, all: &[Arc<AwsAccount>]) -> SetPlan {
    let partition = org_role.and_then(|arn| arn.split(':').nth(1)).unwrap_or("aws");
    let ours = owned(set, all);
    let mut plan = SetPlan::default();
    for member in &unit.members {
        let own = ours.iter().find(|a| a.spec.account_id == member.id);
        let other =
            all.iter().find(|a| a.spec.account_id == member.id && !ours.iter().any(|o| o.name_any() == a.name_any()));
        match (own, other) {
            (None, Some(existing)) => plan.accounts.push(SetAccount {
                account_id: member.id.clone(),
                aws_account: existing.name_any(),
                name: member.name.clone(),
                existing: true,
                leaving: false,
            }),
            (own, _) => {
                let wanted = member_account(set, partition, member);
                let name = wanted.name_any();
                match own {
                    None => {
                        plan.made.push(name.clone());
                        plan.apply.push(wanted);
                    }
                    Some(current) if current.spec != wanted.spec => plan.apply.push(wanted),
                    Some(_) => {}
                }
                plan.accounts.push(SetAccount {
                    account_id: member.id.clone(),
                    aws_account: own.map_or(name, |a| a.name_any()),
                    name: member.name.clone(),
                    existing: false,
                    leaving: false,
                });
            }
        }
    }
    for gone in ours.iter().filter(|a| !unit.members.iter().any(|m| m.id == a.spec.account_id)) {
        plan.leaving.push(gone.name_any());
        plan.accounts.push(SetAccount {
            account_id: gone.spec.account_id.clone(),
            aws_account: gone.name_any(),
            name: String::new(),
            existing: false,
            leaving: true,
        });
    }
    plan
}

/// The set's AwsAccounts: labelled with its name and owned by it (by uid).
fn owned(set: &AwsAccountSet, all: &[Arc<AwsAccount>]) -> Vec<Arc<AwsAccount>> {
    let uid = set.uid().unwrap_or_default();
    let name = set.name_any();
    all.iter()
        .filter(|a| a.labels().get(SET_LABEL) == Some(&name))
        .filter(|a| a.owner_references().iter().any(|o| o.uid == uid))
        .cloned()
        .collect()
}

/// The AwsAccount the set keeps for a member.
fn member_account(set: &AwsAccountSet, partition: &str, member: &Member) -> AwsAccount {
    let spec = AwsAccountSpec {
        account_id: member.id.clone(),
        role_arn: Some(format!("arn:{partition}:iam::{}:role/{}", member.id, set.spec.role_name)),
        external_id: set.spec.external_id.clone(),
        regions: None,
        permissions_boundary_arn: None,
        namespace_selector: set.spec.namespace_selector.clone(),
    };
    let mut account = AwsAccount::new(&member_name(&set.name_any(), &member.id), spec);
    // The set's own labels too: a controller sharded by label (--label-selector) sees them.
    let mut labels = set.labels().clone();
    labels.insert(SET_LABEL.to_owned(), set.name_any());
    account.metadata.labels = Some(labels);
    account.metadata.owner_references = Some(vec![OwnerReference {
        api_version: AwsAccountSet::api_version(&()).into_owned(),
        kind: AwsAccountSet::kind(&()).into_owned(),
        name: set.name_any(),
        uid: set.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    account
}

async fn delete(api: &Api<AwsAccount>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::Write(name.to_owned(), e)),
    }
}

/// The status and verdict of a pass. Pure.
fn fold(
    set: &AwsAccountSet,
    unit: &Unit,
    plan: &SetPlan,
    held: &BTreeMap<String, Vec<String>>,
    changes: Vec<(Action, String)>,
    poll: Duration,
) -> Report<AwsAccountSetStatus> {
    let accounts: Vec<SetAccount> =
        plan.accounts.iter().filter(|a| !a.leaving || held.contains_key(&a.aws_account)).cloned().collect();
    let active = accounts.iter().filter(|a| !a.leaving).count();
    let status = AwsAccountSetStatus {
        organization_path: Some(unit.path.clone()),
        account_count: u32::try_from(active).unwrap_or(u32::MAX),
        accounts,
        ..Default::default()
    };
    let ou = &set.spec.organizational_unit_id;
    let mut message = format!("{active} active accounts in {ou} ({})", unit.path);
    let existing: Vec<&str> = plan.accounts.iter().filter(|a| a.existing).map(|a| a.aws_account.as_str()).collect();
    if !existing.is_empty() {
        message.push_str(&format!("; used through AwsAccounts that existed before: {}", existing.join(", ")));
    }
    for (name, users) in held {
        message
            .push_str(&format!("; AwsAccount {name} stays while used by {} (its account left {ou})", users.join(", ")));
    }
    let mut report = Report::new(status, Outcome::Ready { message });
    report.retry = Retry::After(poll);
    report.notes = change_notes(&changes, false);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> AwsAccountSet {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "AwsAccountSet",
            "metadata": {"name": "prod-ou", "uid": "set-1"},
            "spec": {"organizationAccount": "org", "organizationalUnitId": "ou-ab12-cdef3456",
                     "roleName": "sagekeeper-deployer", "externalId": "x-1",
                     "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team"}}}
        }))
        .unwrap()
    }

    fn unit(ids: &[&str]) -> Unit {
        Unit {
            path: "o-1/r-1/ou-ab12-cdef3456/".into(),
            members: ids.iter().map(|id| Member { id: (*id).into(), name: format!("n{id}") }).collect(),
        }
    }

    fn other(name: &str, id: &str) -> Arc<AwsAccount> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "sagekeeper.io/v1alpha1", "kind": "AwsAccount", "metadata": {"name": name},
                "spec": {"accountId": id, "namespaceSelector": {"matchLabels": {"a": "b"}}}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn each_member_gets_one_account_of_the_set_unless_one_exists_and_leavers_are_marked() {
        let s = set();
        let mine = Arc::new(member_account(&s, "aws", &Member { id: "444444444444".into(), name: String::new() }));
        let left = Arc::new(member_account(&s, "aws", &Member { id: "555555555555".into(), name: String::new() }));
        let all = vec![mine.clone(), left, other("legacy-prod", "666666666666")];
        let plan =
            plan(&s, Some("arn:aws-cn:iam::1:role/r"), &unit(&["444444444444", "666666666666", "777777777777"]), &all);
        assert_eq!(plan.made, ["prod-ou-777777777777"]);
        let made = plan.apply.iter().find(|a| a.name_any() == "prod-ou-777777777777").unwrap();
        assert_eq!(made.spec.role_arn.as_deref(), Some("arn:aws-cn:iam::777777777777:role/sagekeeper-deployer"));
        assert_eq!(made.spec.external_id.as_deref(), Some("x-1"));
        assert_eq!(made.labels()[SET_LABEL], "prod-ou");
        assert_eq!(made.owner_references()[0].uid, "set-1");
        // Its own account of 444… was made in the aws partition: the spec changed, so it is applied again.
        assert_eq!(plan.apply.len(), 2);
        let legacy = plan.accounts.iter().find(|a| a.account_id == "666666666666").unwrap();
        assert!(legacy.existing && legacy.aws_account == "legacy-prod", "no second AwsAccount of an account");
        assert_eq!(plan.leaving, ["prod-ou-555555555555"]);
        assert!(plan.accounts.iter().any(|a| a.leaving && a.account_id == "555555555555"));
    }

    #[test]
    fn an_unchanged_member_is_not_written_and_another_sets_accounts_are_not_its_own() {
        let s = set();
        let mine = Arc::new(member_account(&s, "aws", &Member { id: "444444444444".into(), name: String::new() }));
        let mut foreign = member_account(&s, "aws", &Member { id: "555555555555".into(), name: String::new() });
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "another-set".into();
        let plan = plan(&s, None, &unit(&["444444444444"]), &[mine, Arc::new(foreign)]);
        assert!(plan.apply.is_empty() && plan.made.is_empty(), "{plan:?}");
        assert!(plan.leaving.is_empty(), "another set's account is never removed: {plan:?}");
    }

    #[test]
    fn the_status_keeps_a_leaving_account_only_while_it_is_used() {
        let s = set();
        let plan = SetPlan {
            accounts: vec![
                SetAccount { account_id: "4".into(), aws_account: "prod-ou-4".into(), ..Default::default() },
                SetAccount {
                    account_id: "5".into(),
                    aws_account: "prod-ou-5".into(),
                    leaving: true,
                    ..Default::default()
                },
                SetAccount {
                    account_id: "6".into(),
                    aws_account: "prod-ou-6".into(),
                    leaving: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let held = BTreeMap::from([("prod-ou-5".to_owned(), vec!["DataScienceEnvironment team/fraud".to_owned()])]);
        let report = fold(&s, &unit(&["4"]), &plan, &held, Vec::new(), Duration::from_secs(300));
        let names: Vec<&str> = report.status.accounts.iter().map(|a| a.aws_account.as_str()).collect();
        assert_eq!(names, ["prod-ou-4", "prod-ou-5"]);
        assert_eq!(report.status.account_count, 1);
        assert!(report.outcome.message().contains("prod-ou-5 stays while used by DataScienceEnvironment team/fraud"));
        assert_eq!(report.retry, Retry::After(Duration::from_secs(300)));
    }
}
