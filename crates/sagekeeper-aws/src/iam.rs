//! IAM roles, found by their deterministic name: permissions boundary, trust policy, inline
//! policies and tags, each compared semantically and put back when they drifted. The boundary
//! comes first: the shipped deployer policy changes a role's trust or policies only while it
//! carries the boundary, so a role found without it (made by an older version, or changed by
//! hand) gets it before anything else. A role just created may not be usable for seconds (IAM
//! is eventually consistent); the outputs say when it was created so callers can tell "not
//! yet" from "wrong".
//!
//! An account's roles are read together: one `GetAccountAuthorizationDetails` (roles only,
//! paginated) returns every role with its trust, boundary, inline policies and tags, and is
//! shared by every object using the account for an age ([`crate::observe::Shared`]). A role the
//! listing shows as planned is ready without a call of its own; one it does not show, or shows
//! otherwise, is read afresh (`GetRole`, `ListRolePolicies`, `GetRolePolicy`) and every write is
//! decided on that fresh read, never on the listing. A write forgets the account's listing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_iam::Client;
use aws_sdk_iam::types::{EntityType, Role, RoleDetail, Tag};
use sagekeeper_policy::compare::Digest;
use sagekeeper_policy::{digest, digest_of, same_policy};

use crate::errors::{AwsError, ErrorKind, Optional};
use crate::observe::{Shared, Snapshot};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Owner, Step, StepResult};

/// The prefix of every role name sagekeeper gives; the listing keeps only these.
const ROLE_PREFIX: &str = "sk-";

/// An account's roles named by sagekeeper, by name, as one listing showed them; `None` when
/// the account's deployer role may not list them (an older deployer policy): each role is then
/// read on its own.
pub(crate) type AccountRoles = Option<Arc<HashMap<String, ListedRole>>>;

/// A role as the account's listing shows it, reduced to what [`ensure_role`] compares: policy
/// documents are kept as digests of their normalized form.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ListedRole {
    arn: String,
    created: SystemTime,
    boundary: Option<String>,
    trust: Option<Digest>,
    policies: BTreeMap<String, Option<Digest>>,
    tags: BTreeMap<String, String>,
}

impl ListedRole {
    fn of(role: &RoleDetail) -> Option<(String, Self)> {
        let name = role.role_name()?;
        let listed = Self {
            arn: role.arn()?.to_owned(),
            created: role.create_date().and_then(|d| SystemTime::try_from(*d).ok()).unwrap_or(SystemTime::UNIX_EPOCH),
            boundary: role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()).map(str::to_owned),
            trust: role.assume_role_policy_document().and_then(digest_of),
            policies: role
                .role_policy_list()
                .iter()
                .filter_map(|p| Some((p.policy_name()?.to_owned(), p.policy_document().and_then(digest_of))))
                .collect(),
            tags: role.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
        };
        Some((name.to_owned(), listed))
    }

    /// True when the role is the plan's in every respect [`ensure_role`] would change.
    fn is(&self, plan: &RolePlan) -> bool {
        let tags = plan.owner.tags(&plan.component);
        self.boundary.as_deref() == Some(plan.boundary.as_str())
            && self.trust == Some(digest(&plan.trust))
            && self.policies.len() == plan.policies.len()
            && plan.policies.iter().all(|(name, doc)| self.policies.get(name) == Some(&Some(digest(doc))))
            && tags.iter().all(|(k, v)| self.tags.get(k) == Some(v))
            && plan.owner.stale_keys(self.tags.keys().map(String::as_str)).is_empty()
    }
}

/// Every role of the account named by sagekeeper, in one paginated read.
async fn list_roles(iam: &Client) -> Result<AccountRoles, AwsError> {
    let mut pages = iam.get_account_authorization_details().filter(EntityType::Role).into_paginator().send();
    let mut roles = HashMap::new();
    while let Some(page) = pages.next().await {
        let page = match page.map_err(AwsError::from_sdk) {
            Ok(page) => page,
            Err(e) if e.kind == ErrorKind::AccessDenied => return Ok(None),
            Err(e) => return Err(e),
        };
        let ours = page.role_detail_list().iter().filter(|r| r.role_name().is_some_and(|n| n.starts_with(ROLE_PREFIX)));
        roles.extend(ours.filter_map(ListedRole::of));
    }
    Ok(Some(Arc::new(roles)))
}

/// What one role should be.
#[derive(Clone, Debug, PartialEq)]
pub struct RolePlan {
    /// Tags and adoption.
    pub owner: Owner,
    /// The component tag, e.g. `role/execution`.
    pub component: String,
    /// The role name.
    pub name: String,
    /// What the role is for.
    pub description: String,
    /// The trust policy.
    pub trust: serde_json::Value,
    /// Inline policies by name.
    pub policies: BTreeMap<String, serde_json::Value>,
    /// The permissions boundary every role sagekeeper creates in the account carries.
    pub boundary: String,
}

/// A role's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleOutputs {
    /// The role ARN.
    pub arn: String,
    /// When it was created (IAM propagation takes seconds after that).
    pub created: SystemTime,
}

/// Converges one role: ready at once when the account's listing shows it as planned, else
/// decided on a fresh read of it.
pub async fn ensure_role(
    session: &Session,
    seen: &Snapshot,
    shared: &Shared,
    plan: &RolePlan,
    changes: &Changes,
) -> StepResult<RoleOutputs> {
    let key = session.access.clone();
    let listed = seen.roles.get_shared(&key, &shared.roles, || list_roles(session.iam())).await?;
    if let Some(role) = listed.as_ref().and_then(|roles| roles.get(&plan.name)).filter(|r| r.is(plan)) {
        return Ok(Step::Ready(RoleOutputs { arn: role.arn.clone(), created: role.created }));
    }
    let ours = Changes::default();
    let result = converge_role(session, plan, &ours).await;
    if changes.absorb(ours) {
        shared.roles.forget(&key);
    }
    result
}

/// Converges one role on a fresh read of it.
async fn converge_role(session: &Session, plan: &RolePlan, changes: &Changes) -> StepResult<RoleOutputs> {
    let iam = session.iam();
    let (role, created) = match get_role(iam, &plan.name).await? {
        Some(role) => (role, false),
        None => create(iam, plan, changes).await?,
    };
    let tags: Vec<(&str, &str)> = role.tags().iter().map(|t| (t.key(), t.value())).collect();
    if !plan.owner.owns(tags.iter().copied()) {
        return Err(plan.owner.conflict(&format!("IAM role {}", plan.name), tags.iter().copied()));
    }
    ensure_boundary(iam, &plan.name, &plan.boundary, &role, changes).await?;
    let trust_ok = role.assume_role_policy_document().is_some_and(|d| same_policy(d, &plan.trust));
    if !trust_ok {
        iam.update_assume_role_policy()
            .role_name(&plan.name)
            .policy_document(plan.trust.to_string())
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("IAM role {} trust policy", plan.name));
    }
    ensure_inline_policies(iam, plan, created, changes).await?;
    ensure_tags(iam, plan, &role, changes).await?;
    let created = SystemTime::try_from(*role.create_date()).unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Step::Ready(RoleOutputs { arn: role.arn().to_owned(), created }))
}

async fn get_role(iam: &Client, name: &str) -> Result<Option<Role>, AwsError> {
    Ok(iam.get_role().role_name(name).send().await.map_err(AwsError::from_sdk).optional()?.and_then(|out| out.role))
}

/// Creates the role; returns it and whether this call made it (else a retry after a lost
/// answer found it there).
async fn create(iam: &Client, plan: &RolePlan, changes: &Changes) -> Result<(Role, bool), AwsError> {
    let created = iam
        .create_role()
        .role_name(&plan.name)
        .description(&plan.description)
        .assume_role_policy_document(plan.trust.to_string())
        .permissions_boundary(&plan.boundary)
        .set_tags(Some(iam_tags(&plan.owner.tags(&plan.component))?))
        .send()
        .await;
    let (role, made) = match created.map_err(AwsError::from_sdk) {
        Ok(out) => (out.role, true),
        // A retry after a lost answer: the role is there, read it.
        Err(e) if e.code == "EntityAlreadyExists" => (get_role(iam, &plan.name).await?, false),
        Err(e) => return Err(e),
    };
    changes.record(Action::Created, format!("IAM role {}", plan.name));
    let role = role.ok_or_else(|| AwsError::from_code("InvalidResponse", "CreateRole returned no role", None))?;
    Ok((role, made))
}

fn iam_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| AwsError::from_code("InvalidInput", &e.to_string(), None))
}

/// Puts `boundary` on the role unless it carries it already. Never removes a boundary: the
/// shipped deployer policy does not allow that, and nothing sagekeeper makes goes without one.
async fn ensure_boundary(
    iam: &Client,
    name: &str,
    boundary: &str,
    role: &Role,
    changes: &Changes,
) -> Result<(), AwsError> {
    let current = role.permissions_boundary().and_then(|b| b.permissions_boundary_arn());
    if current == Some(boundary) {
        return Ok(());
    }
    let call = iam.put_role_permissions_boundary().role_name(name).permissions_boundary(boundary);
    call.send().await.map_err(AwsError::from_sdk)?;
    changes.record(Action::Updated, format!("IAM role {name} permissions boundary"));
    Ok(())
}

/// Whether the managed policy `arn` exists (the boundary an account's roles will carry).
pub async fn policy_exists(session: &Session, arn: &str) -> Result<bool, AwsError> {
    Ok(session.iam().get_policy().policy_arn(arn).send().await.map_err(AwsError::from_sdk).optional()?.is_some())
}

/// Puts the planned inline policies that differ and deletes the others; a role just created
/// has none.
async fn ensure_inline_policies(
    iam: &Client,
    plan: &RolePlan,
    created: bool,
    changes: &Changes,
) -> Result<(), AwsError> {
    let listed = match created {
        true => Vec::new(),
        false => iam.list_role_policies().role_name(&plan.name).send().await.map_err(AwsError::from_sdk)?.policy_names,
    };
    for name in listed.iter().filter(|n| !plan.policies.contains_key(*n)) {
        iam.delete_role_policy().role_name(&plan.name).policy_name(name).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Deleted, format!("IAM role {} inline policy {name}", plan.name));
    }
    for (name, document) in &plan.policies {
        let same = if listed.contains(name) {
            let current = iam
                .get_role_policy()
                .role_name(&plan.name)
                .policy_name(name)
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            same_policy(current.policy_document(), document)
        } else {
            false
        };
        if !same {
            iam.put_role_policy()
                .role_name(&plan.name)
                .policy_name(name)
                .policy_document(document.to_string())
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            changes.record(Action::Updated, format!("IAM role {} inline policy {name}", plan.name));
        }
    }
    Ok(())
}

async fn ensure_tags(iam: &Client, plan: &RolePlan, role: &Role, changes: &Changes) -> Result<(), AwsError> {
    let have: BTreeMap<&str, &str> = role.tags().iter().map(|t| (t.key(), t.value())).collect();
    let want = plan.owner.tags(&plan.component);
    let missing: BTreeMap<String, String> = want
        .iter()
        .filter(|(k, v)| have.get(k.as_str()) != Some(&v.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !missing.is_empty() {
        let call = iam.tag_role().role_name(&plan.name).set_tags(Some(iam_tags(&missing)?));
        call.send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("IAM role {} tags", plan.name));
    }
    let stale = plan.owner.stale_keys(have.keys().copied());
    if !stale.is_empty() {
        let call = iam.untag_role().role_name(&plan.name).set_tag_keys(Some(stale));
        call.send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("IAM role {} removed tags", plan.name));
    }
    Ok(())
}

/// Deletes the role (its inline policies first) if it is ours. A role without the boundary gets
/// it first: the deployer may delete a role's policies only while it carries the boundary.
pub async fn delete_role(
    session: &Session,
    owner: &Owner,
    name: &str,
    boundary: &str,
    changes: &Changes,
) -> Result<(), AwsError> {
    let iam = session.iam();
    let Some(role) = get_role(iam, name).await? else { return Ok(()) };
    if !owner.owns(role.tags().iter().map(|t| (t.key(), t.value()))) {
        return Ok(());
    }
    ensure_boundary(iam, name, boundary, &role, changes).await?;
    let listed = iam.list_role_policies().role_name(name).send().await.map_err(AwsError::from_sdk)?;
    for policy in listed.policy_names() {
        iam.delete_role_policy().role_name(name).policy_name(policy).send().await.map_err(AwsError::from_sdk)?;
    }
    iam.delete_role().role_name(name).send().await.map_err(AwsError::from_sdk)?;
    changes.record(Action::Deleted, format!("IAM role {name}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn plan() -> RolePlan {
        let owner = Owner {
            uid: "u1".into(),
            base_tags: [("sagekeeper.io/owner-uid".to_owned(), "u1".to_owned())].into(),
            removed_tags: ["gone".to_owned()].into(),
        };
        RolePlan {
            owner,
            component: "role/execution".into(),
            name: "sk-a-execution".into(),
            description: String::new(),
            trust: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            policies: [(
                "main".to_owned(),
                json!({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}]}),
            )]
            .into(),
            boundary: "arn:aws:iam::1:policy/sagekeeper-boundary".into(),
        }
    }

    /// The role as the listing shows it when it is the plan's, documents in AWS's own shape.
    fn listed(plan: &RolePlan) -> ListedRole {
        ListedRole {
            arn: "arn:aws:iam::1:role/sk-a-execution".into(),
            created: SystemTime::UNIX_EPOCH,
            boundary: Some(plan.boundary.clone()),
            trust: digest_of(&plan.trust.to_string()),
            // One-element lists and scalars are the same policy.
            policies: [(
                "main".to_owned(),
                digest_of(r#"{"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": ["*"]}}"#),
            )]
            .into(),
            tags: plan.owner.tags(&plan.component).into_iter().chain([("team".to_owned(), "x".to_owned())]).collect(),
        }
    }

    #[test]
    fn a_listed_role_is_the_plans_only_when_everything_a_write_would_change_matches() {
        let plan = plan();
        assert!(listed(&plan).is(&plan), "equivalent documents and extra tags of others are as planned");
        type Change = fn(&mut ListedRole);
        let differs: [(&str, Change); 7] = [
            ("no boundary", |r| r.boundary = None),
            ("another trust", |r| r.trust = digest_of(r#"{"Statement": []}"#)),
            ("an unreadable trust", |r| r.trust = None),
            ("another policy", |r| {
                r.policies.insert("main".into(), digest_of(r#"{"Statement": []}"#));
            }),
            ("an extra policy", |r| {
                r.policies.insert("more".into(), None);
            }),
            ("a tag of ours missing", |r| r.tags.retain(|k, _| k != "sagekeeper.io/owner-uid")),
            ("a removed tag still on it", |r| {
                r.tags.insert("gone".into(), "1".into());
            }),
        ];
        for (what, change) in differs {
            let mut role = listed(&plan);
            change(&mut role);
            assert!(!role.is(&plan), "{what} should send the role to a fresh read");
        }
    }
}
