//! What an MLOpsProject has in its dev account: the model package group and its resource
//! policy, the pipeline, its runs, the registry's latest versions, and the template's assets
//! in the environment's bucket. Each is found by name and adopted only with our owner-uid.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::types::{ModelApprovalStatus, ModelPackageGroupStatus, PipelineExecutionStatus, SortOrder};
use serde_json::Value;

use crate::errors::{AwsError, ErrorKind, Optional, Required};
use crate::sagemaker_tags::{ensure_tags, pairs, tags};
use crate::steps::{Action, Changes, Owner, Step, StepResult};

/// Converges the model package group `name` with its resource policy (`None`: no policy).
/// Returns the group's ARN.
pub async fn ensure_group(
    sm: &Client,
    owner: &Owner,
    name: &str,
    policy: impl Fn(&str) -> Option<Value>,
    changes: &Changes,
) -> StepResult<String> {
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
        (Some(want), have)
            if !have.as_deref().is_some_and(|h| {
                sagekeeper_policy::parse(h).is_ok_and(|h| sagekeeper_policy::equivalent(&want, &h))
            }) =>
        {
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

fn owner_name(owner: &Owner) -> String {
    owner.base_tags.get(sagekeeper_api::naming::OWNER_TAG).cloned().unwrap_or_default()
}

/// What the project's pipeline should be.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelinePlan {
    /// Tags and adoption.
    pub owner: Owner,
    /// The pipeline name.
    pub name: String,
    /// The role the pipeline runs as.
    pub role_arn: String,
    /// The definition, checked.
    pub definition: Value,
}

/// Converges the pipeline: created when missing, its definition and role put back when they
/// differ (compared parsed). Returns its ARN.
pub async fn ensure_pipeline(sm: &Client, plan: &PipelinePlan, changes: &Changes) -> StepResult<String> {
    let what = format!("pipeline {}", plan.name);
    let text = sagekeeper_policy::pipeline::canonical(&plan.definition);
    match sm.describe_pipeline().pipeline_name(&plan.name).send().await.map_err(AwsError::from_sdk).optional()? {
        Some(pipeline) => {
            let arn = pipeline.pipeline_arn().required("DescribePipeline", "PipelineArn")?;
            let listed = sm.list_tags().resource_arn(&arn).send().await.map_err(AwsError::from_sdk)?;
            if !plan.owner.owns(pairs(listed.tags())) {
                return Err(plan.owner.conflict(&what, pairs(listed.tags())));
            }
            ensure_tags(sm, &arn, &tags(&plan.owner, "pipeline"), &plan.owner, &what, changes).await?;
            let same_definition = pipeline
                .pipeline_definition()
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .is_some_and(|d| d == plan.definition);
            if !same_definition || pipeline.role_arn() != Some(plan.role_arn.as_str()) {
                sm.update_pipeline()
                    .pipeline_name(&plan.name)
                    .pipeline_definition(&text)
                    .role_arn(&plan.role_arn)
                    .send()
                    .await
                    .map_err(AwsError::from_sdk)?;
                changes.record(Action::Updated, what);
            }
            Ok(Step::Ready(arn))
        }
        None => {
            let created = sm
                .create_pipeline()
                .pipeline_name(&plan.name)
                .pipeline_definition(&text)
                .pipeline_description(format!("Managed by sagekeeper for {}", owner_name(&plan.owner)))
                .role_arn(&plan.role_arn)
                .set_tags(Some(tags(&plan.owner, "pipeline")))
                .client_request_token(token(&[&plan.owner.uid, "create-pipeline", &plan.name]))
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            changes.record(Action::Created, what);
            Ok(Step::Ready(created.pipeline_arn().required("CreatePipeline", "PipelineArn")?))
        }
    }
}

/// An idempotency token (SageMaker wants 32 to 128 characters) from its parts.
fn token(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(parts.join("/").as_bytes()))
}

/// One pipeline execution as status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    /// The execution ARN.
    pub arn: String,
    /// Executing, Stopping, Stopped, Failed or Succeeded.
    pub status: String,
    /// When it started (RFC 3339).
    pub start_time: Option<String>,
    /// When it ended (RFC 3339), once it did.
    pub end_time: Option<String>,
    /// SageMaker's failure reason.
    pub failure_reason: Option<String>,
}

impl Execution {
    /// True while the execution may still change.
    pub fn running(&self) -> bool {
        matches!(self.status.as_str(), "Executing" | "Stopping")
    }
}

/// Starts a run for `trigger` (recorded as the execution's description) unless one exists for
/// it: among the pipeline's recent executions, or through the idempotency token. Returns the
/// run's ARN and whether this call started it.
pub async fn start_run(
    sm: &Client,
    owner: &Owner,
    pipeline: &str,
    trigger: &str,
    changes: &Changes,
) -> Result<(String, bool), AwsError> {
    let listed = sm
        .list_pipeline_executions()
        .pipeline_name(pipeline)
        .sort_by(aws_sdk_sagemaker::types::SortPipelineExecutionsBy::CreationTime)
        .sort_order(SortOrder::Descending)
        .max_results(50)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let found = listed
        .pipeline_execution_summaries()
        .iter()
        .find(|s| s.pipeline_execution_description() == Some(trigger))
        .and_then(|s| s.pipeline_execution_arn());
    if let Some(arn) = found {
        return Ok((arn.to_owned(), false));
    }
    let started = sm
        .start_pipeline_execution()
        .pipeline_name(pipeline)
        .pipeline_execution_description(trigger)
        .client_request_token(token(&[&owner.uid, pipeline, trigger]))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    changes.record(Action::Created, format!("run of pipeline {pipeline} ({trigger})"));
    Ok((started.pipeline_execution_arn().required("StartPipelineExecution", "PipelineExecutionArn")?, true))
}

/// The execution `arn` as it is now.
pub async fn describe_run(sm: &Client, arn: &str) -> Result<Execution, AwsError> {
    let out = sm.describe_pipeline_execution().pipeline_execution_arn(arn).send().await.map_err(AwsError::from_sdk)?;
    let status = out.pipeline_execution_status().map(|s| s.as_str().to_owned()).unwrap_or_default();
    let done = !matches!(
        out.pipeline_execution_status(),
        Some(PipelineExecutionStatus::Executing | PipelineExecutionStatus::Stopping) | None
    );
    Ok(Execution {
        arn: arn.to_owned(),
        status,
        start_time: out.creation_time().map(ToString::to_string),
        end_time: if done { out.last_modified_time().map(ToString::to_string) } else { None },
        failure_reason: out.failure_reason().filter(|r| !r.is_empty()).map(str::to_owned),
    })
}

/// One registered model version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The model package ARN.
    pub arn: String,
    /// Its version number in the group.
    pub version: i64,
    /// PendingManualApproval, Approved or Rejected.
    pub approval_status: String,
}

/// The newest version of the group and the newest Approved one: one call, plus a second only
/// when no Approved version is among the newest hundred.
pub async fn latest_versions(sm: &Client, group: &str) -> Result<(Option<Version>, Option<Version>), AwsError> {
    let newest = list_versions(sm, group, None, 100).await?;
    let latest = newest.first().cloned();
    let mut approved = newest.into_iter().find(|v| v.approval_status == "Approved");
    if approved.is_none() && latest.is_some() {
        approved = list_versions(sm, group, Some(ModelApprovalStatus::Approved), 1).await?.into_iter().next();
    }
    Ok((latest, approved))
}

/// How many of the newest versions one registry read returns.
pub const NEWEST: usize = 100;

/// The newest hundred versions of the group, newest first, with their approval status.
pub async fn versions(sm: &Client, group: &str) -> Result<Vec<Version>, AwsError> {
    list_versions(sm, group, None, NEWEST as i32).await
}

/// The group's newest Approved version, however old.
pub async fn newest_approved(sm: &Client, group: &str) -> Result<Option<Version>, AwsError> {
    Ok(list_versions(sm, group, Some(ModelApprovalStatus::Approved), 1).await?.into_iter().next())
}

/// One version by its ARN; `None` when the registry has no such version.
pub async fn version(sm: &Client, arn: &str) -> Result<Option<Version>, AwsError> {
    // SageMaker answers an unknown version with a ValidationException.
    let described = sm.describe_model_package().model_package_name(arn).send().await.map_err(|e| {
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
        approval_status: p.model_approval_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
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
                approval_status: p.model_approval_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<Version>, AwsError>>()?;
    // Versions made within the same second sort by number, newest first.
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    Ok(versions)
}

/// Uploads the assets (key below `prefix`, body) that a listing of `prefix` lacks. Keys name
/// their content, so a listing is enough: the controller never reads objects back. Encrypted
/// with the bucket's key, as its policy demands.
pub async fn ensure_assets(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    assets: &[(String, &'static [u8])],
    kms_key: &str,
    changes: &Changes,
) -> Result<(), AwsError> {
    let have = list_keys(s3, bucket, prefix).await?;
    for (key, body) in assets {
        let key = format!("{prefix}{key}");
        if have.contains(&key) {
            continue;
        }
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from_static(body))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(kms_key)
            .bucket_key_enabled(true)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        changes.record(Action::Created, format!("s3://{bucket}/{key}"));
    }
    Ok(())
}

async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk)?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
    }
    Ok(keys)
}

/// Removes every object below `prefix` (the uploaded assets; versioned buckets keep history).
pub async fn delete_assets(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<(), AwsError> {
    for key in list_keys(s3, bucket, prefix).await? {
        s3.delete_object().bucket(bucket).key(&key).send().await.map_err(AwsError::from_sdk).optional()?;
    }
    Ok(())
}

/// Stops the pipeline's running executions and deletes it (only ours). Pending while runs stop.
pub async fn delete_pipeline(sm: &Client, owner: &Owner, name: &str, changes: &Changes) -> StepResult<()> {
    let what = format!("pipeline {name}");
    let Some(pipeline) =
        sm.describe_pipeline().pipeline_name(name).send().await.map_err(AwsError::from_sdk).optional()?
    else {
        return Ok(Step::Ready(()));
    };
    let arn = pipeline.pipeline_arn().required("DescribePipeline", "PipelineArn")?;
    let listed = sm.list_tags().resource_arn(&arn).send().await.map_err(AwsError::from_sdk)?;
    if !owner.owns(pairs(listed.tags())) {
        return Ok(Step::Ready(()));
    }
    let mut stopping = Vec::new();
    let mut pages = sm.list_pipeline_executions().pipeline_name(name).into_paginator().send();
    while let Some(page) = pages.next().await {
        for run in page.map_err(AwsError::from_sdk)?.pipeline_execution_summaries() {
            let arn = run.pipeline_execution_arn().required("ListPipelineExecutions", "PipelineExecutionArn")?;
            let arn = arn.as_str();
            match run.pipeline_execution_status() {
                Some(PipelineExecutionStatus::Executing) => {
                    sm.stop_pipeline_execution()
                        .pipeline_execution_arn(arn)
                        .client_request_token(token(&[&owner.uid, "stop", arn]))
                        .send()
                        .await
                        .map_err(AwsError::from_sdk)?;
                    changes.record(Action::Updated, format!("run {arn} stopped"));
                    stopping.push(arn.to_owned());
                }
                Some(PipelineExecutionStatus::Stopping) => stopping.push(arn.to_owned()),
                _ => {}
            }
        }
    }
    if !stopping.is_empty() {
        return Ok(Step::Pending(format!("{what}: waiting for {} run(s) to stop", stopping.len())));
    }
    sm.delete_pipeline()
        .pipeline_name(name)
        .client_request_token(token(&[&owner.uid, "delete-pipeline", name]))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    changes.record(Action::Deleted, what);
    Ok(Step::Ready(()))
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
    sm: &Client,
    owner: &Owner,
    name: &str,
    with_versions: bool,
    changes: &Changes,
) -> Result<GroupTeardown, AwsError> {
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
