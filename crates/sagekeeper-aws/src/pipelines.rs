//! A project's pipeline in its dev account: the pipeline itself, its runs, and the template's
//! assets in the environment's data bucket. A pipeline is adopted only with its owner's uid.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_sagemaker::types::{PipelineExecutionStatus, SortOrder};
use serde_json::Value;

use crate::Session;
use crate::errors::{AwsError, Optional, Required};
use crate::registry::owner_name;
use crate::sagemaker_tags::{ensure_tags, pairs, tags};
use crate::steps::{Action, Changes, Owner, Step, StepResult};

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
pub async fn ensure_pipeline(session: &Session, plan: &PipelinePlan, changes: &Changes) -> StepResult<String> {
    let sm = session.sagemaker();
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
    /// Where it is.
    pub status: RunState,
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
        matches!(self.status, RunState::Executing | RunState::Stopping)
    }
}

/// Starts a run for `trigger` (recorded as the execution's description) unless one exists for
/// it: among the pipeline's recent executions, or through the idempotency token. Returns the
/// run's ARN and whether this call started it.
pub async fn start_run(
    session: &Session,
    owner: &Owner,
    pipeline: &str,
    trigger: &str,
    changes: &Changes,
) -> Result<(String, bool), AwsError> {
    let sm = session.sagemaker();
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
pub async fn describe_run(session: &Session, arn: &str) -> Result<Execution, AwsError> {
    let out = session
        .sagemaker()
        .describe_pipeline_execution()
        .pipeline_execution_arn(arn)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let status = RunState::of(out.pipeline_execution_status());
    let done = !matches!(status, RunState::Executing | RunState::Stopping | RunState::Unknown(_));
    Ok(Execution {
        arn: arn.to_owned(),
        status,
        start_time: out.creation_time().map(ToString::to_string),
        end_time: if done { out.last_modified_time().map(ToString::to_string) } else { None },
        failure_reason: out.failure_reason().filter(|r| !r.is_empty()).map(str::to_owned),
    })
}

/// Where a pipeline execution is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Running.
    Executing,
    /// Being stopped.
    Stopping,
    /// Stopped on request.
    Stopped,
    /// Failed.
    Failed,
    /// Succeeded.
    Succeeded,
    /// A state AWS added after this version (or none given).
    Unknown(String),
}

impl RunState {
    /// The state of a `DescribePipelineExecution` answer.
    pub fn of(status: Option<&PipelineExecutionStatus>) -> Self {
        match status {
            Some(PipelineExecutionStatus::Executing) => Self::Executing,
            Some(PipelineExecutionStatus::Stopping) => Self::Stopping,
            Some(PipelineExecutionStatus::Stopped) => Self::Stopped,
            Some(PipelineExecutionStatus::Failed) => Self::Failed,
            Some(PipelineExecutionStatus::Succeeded) => Self::Succeeded,
            other => Self::Unknown(other.map_or("unknown", |s| s.as_str()).to_owned()),
        }
    }

    /// The state status reports: AWS's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Executing => "Executing",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Failed => "Failed",
            Self::Succeeded => "Succeeded",
            Self::Unknown(s) => s,
        }
    }

    /// The state a status recorded (`as_str`).
    pub fn parse(s: &str) -> Self {
        match s {
            "Executing" => Self::Executing,
            "Stopping" => Self::Stopping,
            "Stopped" => Self::Stopped,
            "Failed" => Self::Failed,
            "Succeeded" => Self::Succeeded,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

/// Uploads the assets (key below `prefix`, body) that a listing of `prefix` lacks. Keys name
/// their content, so a listing is enough: the controller never reads objects back. Encrypted
/// with the bucket's key, as its policy demands.
pub async fn ensure_assets(
    session: &Session,
    bucket: &str,
    prefix: &str,
    assets: &[(String, &'static [u8])],
    kms_key: &str,
    changes: &Changes,
) -> Result<(), AwsError> {
    let s3 = session.s3();
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
pub async fn delete_assets(session: &Session, bucket: &str, prefix: &str) -> Result<(), AwsError> {
    let s3 = session.s3();
    for key in list_keys(s3, bucket, prefix).await? {
        s3.delete_object().bucket(bucket).key(&key).send().await.map_err(AwsError::from_sdk).optional()?;
    }
    Ok(())
}

/// Stops the pipeline's running executions and deletes it (only ours). Pending while runs stop.
pub async fn delete_pipeline(session: &Session, owner: &Owner, name: &str, changes: &Changes) -> StepResult<()> {
    let sm = session.sagemaker();
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
