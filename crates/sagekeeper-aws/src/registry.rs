//! The model registry in an account: a project's model package group with its resource policy,
//! and the versions registered in it. A group is adopted only with its owner's uid.

use std::sync::Arc;

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::types::{ModelApprovalStatus, ModelPackageGroupStatus, SortOrder};
use serde_json::Value;

use crate::Session;
use crate::errors::{AwsError, ErrorKind, Optional, Required};
use crate::observe::{self, Shared, Snapshot};
use crate::sagemaker_tags::{ensure_tags, pairs, tags};
use crate::steps::{Action, Changes, Owner, Step, StepResult};

/// Converges the model package group `name` with its resource policy (`None`: no policy).
/// Returns the group's ARN.
pub async fn ensure_group(
    session: &Session,
    owner: &Owner,
    name: &str,
    policy: impl Fn(&str) -> Option<Value>,
    changes: &Changes,
) -> StepResult<String> {
    let sm = session.sagemaker();
    let what = format!("model package group {name}");
    let (arn, status) = match describe_group(sm, name).await.optional()? {
        Some(group) => {
            let arn = group.model_package_group_arn().required("DescribeModelPackageGroup", "ModelPackageGroupArn")?;
            let listed = sm.list_tags().resource_arn(&arn).send().await.map_err(AwsError::from_sdk)?;
            if !owner.owns(pairs(listed.tags())) {
                return Err(owner.conflict(&what, pairs(listed.tags())));
            }
            ensure_tags(sm, &arn, &tags(owner, "registry/group"), owner, &what, changes).await?;
            (arn, group.model_package_group_status().cloned())
        }
        None => {
            let created = sm
                .create_model_package_group()
                .model_package_group_name(name)
                .model_package_group_description(format!("Model versions of {}", owner_name(owner)))
                .set_tags(Some(tags(owner, "registry/group")))
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            changes.record(Action::Created, what.clone());
            (created.model_package_group_arn().required("CreateModelPackageGroup", "ModelPackageGroupArn")?, None)
        }
    };
    if let Some(
        status @ (ModelPackageGroupStatus::Deleting
        | ModelPackageGroupStatus::Pending
        | ModelPackageGroupStatus::InProgress),
    ) = status
    {
        return Ok(Step::Pending(format!("{what} is {}", status.as_str())));
    }
    let want = policy(&arn);
    let have = sm
        .get_model_package_group_policy()
        .model_package_group_name(name)
        .send()
        .await
        .map_err(AwsError::from_sdk)
        .optional()?
        .map(|out| out.resource_policy().unwrap_or_default().to_owned());
    match (want, have) {
        (Some(want), have) if !have.as_deref().is_some_and(|h| sagekeeper_policy::same_policy(h, &want)) => {
            sm.put_model_package_group_policy()
                .model_package_group_name(name)
                .resource_policy(want.to_string())
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            changes.record(Action::Updated, format!("{what} policy"));
        }
        (None, Some(_)) => {
            sm.delete_model_package_group_policy()
                .model_package_group_name(name)
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            changes.record(Action::Deleted, format!("{what} policy"));
        }
        _ => {}
    }
    Ok(Step::Ready(arn))
}

/// The group `name`. SageMaker answers for a missing group with a ValidationException saying it
/// "does not exist": that (and only for this call) is not found.
async fn describe_group(
    sm: &Client,
    name: &str,
) -> Result<aws_sdk_sagemaker::operation::describe_model_package_group::DescribeModelPackageGroupOutput, AwsError> {
    sm.describe_model_package_group().model_package_group_name(name).send().await.map_err(|e| {
        let e = AwsError::from_sdk(e);
        if e.code == "ValidationException" && e.message.contains("does not exist") {
            AwsError { kind: ErrorKind::NotFound, ..e }
        } else {
            e
        }
    })
}

pub(crate) fn owner_name(owner: &Owner) -> String {
    owner.base_tags.get(sagekeeper_api::naming::OWNER_TAG).cloned().unwrap_or_default()
}

/// One registered model version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The model package ARN.
    pub arn: String,
    /// Its version number in the group.
    pub version: i64,
    /// Whether it may be deployed.
    pub approval_status: Approval,
}

/// The newest version of the group and the newest Approved one, read for the group's project:
/// one call, plus a second only when no Approved version is among the newest hundred. The read
/// is shared with the deployments of the project.
pub async fn latest_versions(
    session: &Session,
    seen: &Snapshot,
    shared: &Shared,
    group: &str,
) -> Result<(Option<Version>, Option<Version>), AwsError> {
    let key = observe::key(session, group);
    let read = || async {
        let newest = Arc::new(list_versions(session.sagemaker(), group, None, NEWEST as i32).await?);
        shared.versions.put(&key, newest.clone());
        Ok(newest)
    };
    let newest = seen.versions.get(&key, read).await?;
    let latest = newest.first().cloned();
    let mut approved = newest.iter().find(|v| v.approval_status == Approval::Approved).cloned();
    if approved.is_none() && latest.is_some() {
        approved = newest_approved(session, group).await?;
    }
    Ok((latest, approved))
}

/// How many of the newest versions one registry read returns.
pub const NEWEST: usize = 100;

/// The newest hundred versions of the group, newest first, with their approval status: the
/// project's latest poll of it when no older than the poll interval, else one read, shared.
pub async fn versions(
    session: &Session,
    seen: &Snapshot,
    shared: &Shared,
    group: &str,
) -> Result<Arc<Vec<Version>>, AwsError> {
    let read = || async { Ok(Arc::new(list_versions(session.sagemaker(), group, None, NEWEST as i32).await?)) };
    seen.versions.get_shared(&observe::key(session, group), &shared.versions, read).await
}

/// The newest hundred versions of the group as the registry lists them now, shared from here on.
pub async fn versions_now(session: &Session, shared: &Shared, group: &str) -> Result<Arc<Vec<Version>>, AwsError> {
    let newest = Arc::new(list_versions(session.sagemaker(), group, None, NEWEST as i32).await?);
    shared.versions.put(&observe::key(session, group), newest.clone());
    Ok(newest)
}

/// The group's newest Approved version, however old.
pub async fn newest_approved(session: &Session, group: &str) -> Result<Option<Version>, AwsError> {
    Ok(list_versions(session.sagemaker(), group, Some(ModelApprovalStatus::Approved), 1).await?.into_iter().next())
}

/// One version by its ARN; `None` when the registry has no such version.
pub async fn version(session: &Session, arn: &str) -> Result<Option<Version>, AwsError> {
    // SageMaker answers an unknown version with a ValidationException.
    let described = session.sagemaker().describe_model_package().model_package_name(arn).send().await.map_err(|e| {
        let e = AwsError::from_sdk(e);
        let unknown = e.code == "ValidationException"
            && (e.message.contains("does not exist") || e.message.contains("not found"));
        if unknown { AwsError { kind: ErrorKind::NotFound, ..e } } else { e }
    });
    let Some(p) = described.optional()? else {
        return Ok(None);
    };
    Ok(Some(Version {
        arn: p.model_package_arn().required("DescribeModelPackage", "ModelPackageArn")?,
        version: p.model_package_version().map_or(0, i64::from),
        approval_status: Approval::of(p.model_approval_status()),
    }))
}

async fn list_versions(
    sm: &Client,
    group: &str,
    approval: Option<ModelApprovalStatus>,
    max: i32,
) -> Result<Vec<Version>, AwsError> {
    let out = sm
        .list_model_packages()
        .model_package_group_name(group)
        .set_model_approval_status(approval)
        .sort_by(aws_sdk_sagemaker::types::ModelPackageSortBy::CreationTime)
        .sort_order(SortOrder::Descending)
        .max_results(max)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let mut versions = out
        .model_package_summary_list()
        .iter()
        .map(|p| {
            Ok(Version {
                arn: p.model_package_arn().required("ListModelPackages", "ModelPackageArn")?,
                version: p.model_package_version().map_or(0, i64::from),
                approval_status: Approval::of(p.model_approval_status()),
            })
        })
        .collect::<Result<Vec<Version>, AwsError>>()?;
    // Versions made within the same second sort by number, newest first.
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    Ok(versions)
}

/// A version's approval, as the registry reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approval {
    /// Waiting for a person to approve or reject it.
    PendingManualApproval,
    /// May be deployed.
    Approved,
    /// Must not be deployed.
    Rejected,
    /// A status AWS added after this version (or none given).
    Unknown(String),
}

impl Approval {
    /// The approval of a registry answer.
    pub fn of(status: Option<&ModelApprovalStatus>) -> Self {
        match status {
            Some(ModelApprovalStatus::PendingManualApproval) => Self::PendingManualApproval,
            Some(ModelApprovalStatus::Approved) => Self::Approved,
            Some(ModelApprovalStatus::Rejected) => Self::Rejected,
            other => Self::Unknown(other.map_or("unknown", |s| s.as_str()).to_owned()),
        }
    }

    /// The approval named by AWS's name for it.
    pub fn parse(s: &str) -> Self {
        match s {
            "PendingManualApproval" => Self::PendingManualApproval,
            "Approved" => Self::Approved,
            "Rejected" => Self::Rejected,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// AWS's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::PendingManualApproval => "PendingManualApproval",
            Self::Approved => "Approved",
            Self::Rejected => "Rejected",
            Self::Unknown(s) => s,
        }
    }
}

/// What deleting the group did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupTeardown {
    /// The group is gone (or was never there, or is not ours).
    Deleted,
    /// The group holds this many versions and is kept with them.
    Kept(usize),
}

/// Deletes the group's policy, and the group itself when it holds no version or `with_versions`
/// (then its versions first).
pub async fn delete_group(
    session: &Session,
    owner: &Owner,
    name: &str,
    with_versions: bool,
    changes: &Changes,
) -> Result<GroupTeardown, AwsError> {
    let sm = session.sagemaker();
    let what = format!("model package group {name}");
    let Some(group) = describe_group(sm, name).await.optional()? else {
        return Ok(GroupTeardown::Deleted);
    };
    let arn = group.model_package_group_arn().required("DescribeModelPackageGroup", "ModelPackageGroupArn")?;
    let listed = sm.list_tags().resource_arn(&arn).send().await.map_err(AwsError::from_sdk)?;
    if !owner.owns(pairs(listed.tags())) {
        return Ok(GroupTeardown::Deleted);
    }
    let deleted = sm.delete_model_package_group_policy().model_package_group_name(name).send().await;
    if deleted.map_err(AwsError::from_sdk).optional()?.is_some() {
        changes.record(Action::Deleted, format!("{what} policy"));
    }
    let mut versions = Vec::new();
    let mut pages = sm.list_model_packages().model_package_group_name(name).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk)?;
        versions
            .extend(page.model_package_summary_list().iter().filter_map(|p| p.model_package_arn().map(str::to_owned)));
    }
    if !versions.is_empty() && !with_versions {
        return Ok(GroupTeardown::Kept(versions.len()));
    }
    for version in &versions {
        sm.delete_model_package().model_package_name(version).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Deleted, format!("model package {version}"));
    }
    sm.delete_model_package_group().model_package_group_name(name).send().await.map_err(AwsError::from_sdk)?;
    changes.record(Action::Deleted, what);
    Ok(GroupTeardown::Deleted)
}
