//! IAM roles, found by their deterministic name: permissions boundary, trust policy, inline
//! policies and tags, each compared semantically and put back when they drifted. The boundary
//! comes first: the shipped deployer policy changes a role's trust or policies only while it
//! carries the boundary, so a role found without it (made by an older version, or changed by
//! hand) gets it before anything else. A role just created may not be usable for seconds (IAM
//! is eventually consistent); the outputs say when it was created so callers can tell "not
//! yet" from "wrong".

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sdk_iam::Client;
use aws_sdk_iam::types::{Role, Tag};

use crate::errors::{AwsError, Optional};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Owner, Step, StepResult};

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

/// Converges one role.
pub async fn ensure_role(session: &Session, plan: &RolePlan, changes: &Changes) -> StepResult<RoleOutputs> {
    let iam = session.iam();
    let role = match get_role(iam, &plan.name).await? {
        Some(role) => role,
        None => create(iam, plan, changes).await?,
    };
    let tags: Vec<(&str, &str)> = role.tags().iter().map(|t| (t.key(), t.value())).collect();
    if !plan.owner.owns(tags.iter().copied()) {
        return Err(plan.owner.conflict(&format!("IAM role {}", plan.name), tags.iter().copied()));
    }
    ensure_boundary(iam, &plan.name, &plan.boundary, &role, changes).await?;
    let trust_ok = role
        .assume_role_policy_document()
        .and_then(|d| sagekeeper_policy::parse(d).ok())
        .is_some_and(|d| sagekeeper_policy::equivalent(&d, &plan.trust));
    if !trust_ok {
        iam.update_assume_role_policy()
            .role_name(&plan.name)
            .policy_document(plan.trust.to_string())
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("IAM role {} trust policy", plan.name));
    }
    ensure_inline_policies(iam, plan, changes).await?;
    ensure_tags(iam, plan, &role, changes).await?;
    let created = SystemTime::try_from(*role.create_date()).unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Step::Ready(RoleOutputs { arn: role.arn().to_owned(), created }))
}

async fn get_role(iam: &Client, name: &str) -> Result<Option<Role>, AwsError> {
    Ok(iam.get_role().role_name(name).send().await.map_err(AwsError::from_sdk).optional()?.and_then(|out| out.role))
}

async fn create(iam: &Client, plan: &RolePlan, changes: &Changes) -> Result<Role, AwsError> {
    let created = iam
        .create_role()
        .role_name(&plan.name)
        .description(&plan.description)
        .assume_role_policy_document(plan.trust.to_string())
        .permissions_boundary(&plan.boundary)
        .set_tags(Some(iam_tags(&plan.owner.tags(&plan.component))?))
        .send()
        .await;
    let role = match created.map_err(AwsError::from_sdk) {
        Ok(out) => out.role,
        // A retry after a lost answer: the role is there, read it.
        Err(e) if e.code == "EntityAlreadyExists" => get_role(iam, &plan.name).await?,
        Err(e) => return Err(e),
    };
    changes.record(Action::Created, format!("IAM role {}", plan.name));
    role.ok_or_else(|| AwsError::from_code("InvalidResponse", "CreateRole returned no role", None))
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

async fn ensure_inline_policies(iam: &Client, plan: &RolePlan, changes: &Changes) -> Result<(), AwsError> {
    let listed = iam.list_role_policies().role_name(&plan.name).send().await.map_err(AwsError::from_sdk)?;
    for name in listed.policy_names().iter().filter(|n| !plan.policies.contains_key(*n)) {
        iam.delete_role_policy().role_name(&plan.name).policy_name(name).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Deleted, format!("IAM role {} inline policy {name}", plan.name));
    }
    for (name, document) in &plan.policies {
        let same = if listed.policy_names().contains(name) {
            let current = iam
                .get_role_policy()
                .role_name(&plan.name)
                .policy_name(name)
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            sagekeeper_policy::parse(current.policy_document())
                .is_ok_and(|d| sagekeeper_policy::equivalent(&d, document))
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
