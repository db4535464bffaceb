//! IAM trust and role policies: what each role of an environment may do, in its dev account and
//! in its target accounts. The controller attaches these as the roles' inline policies.
//!
//! Condition-key support, from the Service Authorization Reference for Amazon SageMaker
//! (docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html), read
//! in its machine-readable mirror iann0036/iam-dataset `aws/iam_definition.json` (commit 08eff2d):
//! - `sagemaker:VpcSubnets` and `sagemaker:VpcSecurityGroupIds`: CreateAutoMLJob(V2),
//!   CreateHyperParameterTuningJob, CreateModel, CreateNotebookInstance, CreateProcessingJob,
//!   CreateTrainingJob; also CreateCluster, CreateDomain, CreateEndpointConfig, CreateJob, the
//!   monitoring job definitions and schedules, UpdateCluster and UpdateDomain. Not CreateTransformJob
//!   (it runs in the model's VPC) and not CreateCompilationJob, which supports neither key: the
//!   reference's `Null` deny on it would refuse every compilation job.
//! - `sagemaker:VolumeKmsKey` is deprecated and no longer listed on any action; its replacement
//!   `sagemaker:VolumeKmsKeyArn` is: CreateAutoMLJob(V2), CreateHyperParameterTuningJob,
//!   CreateNotebookInstance, CreateProcessingJob, CreateTrainingJob, CreateTransformJob, plus
//!   CreateDomain, CreateEndpointConfig, CreateLabelingJob and the monitoring actions. Not CreateModel.
//! - `sagemaker:InterContainerTrafficEncryption`: CreateAutoMLJob(V2), CreateHyperParameterTuningJob,
//!   CreateProcessingJob, CreateTrainingJob and the monitoring actions.
//! - `sagemaker:ModelApprovalStatus`: CreateModelPackage and UpdateModelPackage.
//!
//! A deny with a `Null` condition on an action that lacks the key denies that action always, so
//! each deny below lists only actions that support its key. Left out although they support some
//! keys: CreateEndpointConfig (its VPC is the model's, and instance types with local NVMe storage
//! refuse a volume key), CreateDomain (the controller's), CreateCluster, CreateJob and
//! CreateLabelingJob (no role is allowed them). Monitoring schedules and job definitions support
//! all four keys; they belong in these lists once a role may create them.

use serde_json::Value;

use crate::document::{Statement, document};
use crate::inputs::{Environment, Persona, Scope, Target, bucket_and_objects};

/// Tag the controller puts on each Studio user profile, naming the persona whose role it runs as.
pub const PERSONA_TAG_KEY: &str = "sagekeeper.io/persona";

/// Tag on the model package groups an environment's projects own, and on every version
/// registered into them: the environment's uid. The environment's roles are granted the
/// registries carrying it.
pub const REGISTRY_TAG_KEY: &str = "sagekeeper.io/environment";

/// The `sagekeeper.io/` tags nobody but sagekeeper may set or remove: the controller adopts
/// resources by the owner tags and maps Studio profiles to personas by the persona tag. The
/// registry tag is not among them: registering a version means setting it (to this
/// environment's uid only, see [`register_versions`]).
const PROTECTED_TAG_KEYS: &[&str] =
    &["sagekeeper.io/owner*", "sagekeeper.io/component", "sagekeeper.io/persona", "sagekeeper.io/home-used"];

const SAGEMAKER_SERVICE: &str = "sagemaker.amazonaws.com";

const VPC_KEY_ACTIONS: &[&str] = &[
    "sagemaker:CreateAutoMLJob",
    "sagemaker:CreateAutoMLJobV2",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreateModel",
    "sagemaker:CreateNotebookInstance",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTrainingJob",
];

const VOLUME_KEY_ACTIONS: &[&str] = &[
    "sagemaker:CreateAutoMLJob",
    "sagemaker:CreateAutoMLJobV2",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreateNotebookInstance",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateTransformJob",
];

const TRAFFIC_ENCRYPTION_ACTIONS: &[&str] = &[
    "sagemaker:CreateAutoMLJob",
    "sagemaker:CreateAutoMLJobV2",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTrainingJob",
];

/// The name prefix of every alarm sagekeeper owns (the API's `naming::ALARM_PREFIX`).
pub const ALARM_PREFIX: &str = "sagekeeper-";

/// SageMaker resource types the environment's roles create, all named `<name_prefix>*`.
const ENVIRONMENT_RESOURCE_TYPES: &[&str] = &[
    "training-job",
    "processing-job",
    "hyper-parameter-tuning-job",
    "transform-job",
    "automl-job",
    "model",
    "endpoint-config",
    "endpoint",
    "pipeline",
    "experiment",
    "model-package-group",
    "model-package",
];

/// Resource types SageMaker Pipelines creates for steps, under its own `pipelines-<execution>-` names.
const PIPELINE_STEP_TYPES: &[&str] =
    &["training-job", "processing-job", "hyper-parameter-tuning-job", "transform-job", "model"];

/// What the execution role and both personas do on the environment's SageMaker resources.
const WORK_ACTIONS: &[&str] = &[
    "sagemaker:AddTags",
    "sagemaker:ListTags",
    "sagemaker:Describe*",
    "sagemaker:CreateTrainingJob",
    "sagemaker:StopTrainingJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:StopProcessingJob",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:StopHyperParameterTuningJob",
    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    "sagemaker:CreateTransformJob",
    "sagemaker:StopTransformJob",
    "sagemaker:CreateAutoMLJob",
    "sagemaker:CreateAutoMLJobV2",
    "sagemaker:StopAutoMLJob",
    "sagemaker:CreateModel",
    "sagemaker:DeleteModel",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:DeleteEndpointConfig",
    "sagemaker:CreateEndpoint",
    "sagemaker:UpdateEndpoint",
    "sagemaker:DeleteEndpoint",
    "sagemaker:InvokeEndpoint",
    "sagemaker:CreateExperiment",
    "sagemaker:UpdateExperiment",
    "sagemaker:CreateModelPackage",
    "sagemaker:ListPipelineExecutions",
    "sagemaker:ListPipelineExecutionSteps",
    "sagemaker:ListPipelineParametersForExecution",
];

/// What the environment's roles do in the projects' model registries (besides registering, see
/// `register_versions`, and TeamAdmin's approvals).
const REGISTRY_ACTIONS: &[&str] =
    &["sagemaker:Describe*", "sagemaker:ListTags", "sagemaker:ListModelPackages", "sagemaker:CreateModelPackage"];

/// What the pipeline role does on the environment's named resources (runs, registry, experiments).
const PIPELINE_ACTIONS: &[&str] = &[
    "sagemaker:AddTags",
    "sagemaker:ListTags",
    "sagemaker:Describe*",
    "sagemaker:CreateModelPackage",
    "sagemaker:CreateExperiment",
    "sagemaker:UpdateExperiment",
    "sagemaker:StartPipelineExecution",
    "sagemaker:ListPipelineExecutions",
    "sagemaker:ListPipelineExecutionSteps",
    "sagemaker:ListPipelineParametersForExecution",
];

/// What the pipeline role does for its steps, on resources named by SageMaker Pipelines.
const PIPELINE_STEP_ACTIONS: &[&str] = &[
    "sagemaker:AddTags",
    "sagemaker:ListTags",
    "sagemaker:Describe*",
    "sagemaker:CreateTrainingJob",
    "sagemaker:StopTrainingJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:StopProcessingJob",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:StopHyperParameterTuningJob",
    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    "sagemaker:CreateTransformJob",
    "sagemaker:StopTransformJob",
    "sagemaker:CreateModel",
];

const TRIAL_ACTIONS: &[&str] = &[
    "sagemaker:CreateTrial",
    "sagemaker:UpdateTrial",
    "sagemaker:DescribeTrial",
    "sagemaker:CreateTrialComponent",
    "sagemaker:UpdateTrialComponent",
    "sagemaker:DescribeTrialComponent",
    "sagemaker:AssociateTrialComponent",
    "sagemaker:DisassociateTrialComponent",
    "sagemaker:BatchPutMetrics",
    "sagemaker:BatchGetMetrics",
];

/// List and search calls that support no resource-level scoping.
const LIST_ACTIONS: &[&str] = &[
    "sagemaker:ListTrainingJobs",
    "sagemaker:ListProcessingJobs",
    "sagemaker:ListHyperParameterTuningJobs",
    "sagemaker:ListTransformJobs",
    "sagemaker:ListAutoMLJobs",
    "sagemaker:ListModels",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:ListEndpoints",
    "sagemaker:ListPipelines",
    "sagemaker:ListExperiments",
    "sagemaker:ListTrials",
    "sagemaker:ListTrialComponents",
    "sagemaker:ListModelPackageGroups",
    "sagemaker:ListModelPackages",
    "sagemaker:ListCandidatesForAutoMLJob",
    "sagemaker:Search",
];

const STUDIO_LIST_ACTIONS: &[&str] =
    &["sagemaker:ListDomains", "sagemaker:ListUserProfiles", "sagemaker:ListApps", "sagemaker:ListSpaces"];

const STUDIO_ACTIONS: &[&str] = &[
    "sagemaker:Describe*",
    "sagemaker:ListTags",
    "sagemaker:AddTags",
    "sagemaker:CreateApp",
    "sagemaker:DeleteApp",
    "sagemaker:CreateSpace",
    "sagemaker:UpdateSpace",
    "sagemaker:DeleteSpace",
];

const BUCKET_ACTIONS: &[&str] = &["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"];
const OBJECT_ACTIONS: &[&str] =
    &["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"];

pub(crate) const KEY_USE_ACTIONS: &[&str] =
    &["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"];
/// The environment's roles use its keys by the key policies alone (`crate::kms`): a key policy
/// naming a role of its own account grants it directly, so the roles' own policies repeat none
/// of it (a role's inline policies have 10,240 characters for everything).
pub(crate) const KEY_GRANT_ACTIONS: &[&str] = &["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"];

/// Trust for an AWS service principal, e.g. `sagemaker.amazonaws.com`, acting for `account`
/// only (`aws:SourceAccount`): the service, serving another account's request, cannot be made
/// to use the role (the confused deputy).
pub fn service_trust(service: &str, account: &str) -> Value {
    document(vec![
        Statement::allow("TrustService")
            .service_principal(service)
            .actions(&["sts:AssumeRole"])
            .condition("StringEquals", "aws:SourceAccount", account.to_owned())
            .build(),
    ])
}

/// Trust for a persona role: Studio user profiles run as it (SageMaker, for this account only),
/// and the principals the environment names for the persona (people's federated roles) assume
/// it. Never the account root: that would let every principal of the account whose own policy
/// allows sts:AssumeRole act as the persona, TeamAdmin's approvals included.
pub fn persona_trust(env: &Environment, principals: &[String]) -> Value {
    let mut statements = vec![
        Statement::allow("TrustSageMaker")
            .service_principal(SAGEMAKER_SERVICE)
            .actions(&["sts:AssumeRole"])
            .condition("StringEquals", "aws:SourceAccount", env.account_id.clone())
            .build(),
    ];
    if !principals.is_empty() {
        statements.push(
            Statement::allow("TrustPersonaPrincipals")
                .aws_principals(principals.iter().cloned())
                .actions(&["sts:AssumeRole"])
                .build(),
        );
    }
    document(statements)
}

/// The preventive denies: no job, model or notebook outside the VPC, without a volume key or
/// with clear inter-container traffic (four statements, each its own: keys in one `Null` block
/// are ANDed, so the reference's combined block denied only when both VPC keys were missing);
/// and none in another subnet, with another security group or another volume key than the
/// environment's own.
pub fn preventive_denies(env: &Environment) -> Vec<Value> {
    let mut denies = presence_denies(env);
    denies.extend(value_denies(env));
    denies
}

/// Denies of values other than the environment's own. They name every SageMaker action: an
/// action that does not carry the key (or a request that omits it) is left alone, since
/// `ForAnyValue` over no values is false and the volume-key deny also asks the key be present.
/// Absence is the presence denies' business.
fn value_denies(env: &Environment) -> Vec<Value> {
    const VOLUME_KEY: &str = "sagemaker:VolumeKmsKeyArn";
    vec![
        Statement::deny("DenyOtherSubnets")
            .actions(&["sagemaker:*"])
            .resources(["*"])
            .condition_any("ForAnyValue:StringNotEquals", "sagemaker:VpcSubnets", &env.subnets)
            .build(),
        Statement::deny("DenyOtherSecurityGroups")
            .actions(&["sagemaker:*"])
            .resources(["*"])
            .condition_any("ForAnyValue:StringNotEquals", "sagemaker:VpcSecurityGroupIds", &env.security_groups)
            .build(),
        Statement::deny("DenyOtherVolumeKeys")
            .actions(&["sagemaker:*"])
            .resources(["*"])
            .condition("StringNotEquals", VOLUME_KEY, env.keys.ebs.clone())
            .condition("Null", VOLUME_KEY, "false")
            .build(),
    ]
}

fn presence_denies(env: &Environment) -> Vec<Value> {
    let resource = [Scope::dev(env).arn("sagemaker", "*")];
    vec![
        Statement::deny("DenyJobsWithoutVpcSubnets")
            .actions(VPC_KEY_ACTIONS)
            .resources(resource.clone())
            .condition("Null", "sagemaker:VpcSubnets", "true")
            .build(),
        Statement::deny("DenyJobsWithoutSecurityGroups")
            .actions(VPC_KEY_ACTIONS)
            .resources(resource.clone())
            .condition("Null", "sagemaker:VpcSecurityGroupIds", "true")
            .build(),
        // The deprecated VolumeKmsKey is listed on no action any more; a Null deny on it could
        // match every request. The ARN-valued key is only set for ARNs, so passing a key id or
        // alias is refused too, which is what sagekeeper's own requests never do.
        Statement::deny("DenyJobsWithoutVolumeKmsKey")
            .actions(VOLUME_KEY_ACTIONS)
            .resources(resource.clone())
            .condition("Null", "sagemaker:VolumeKmsKeyArn", "true")
            .build(),
        // IfExists: a request that omits the flag gets SageMaker's default, unencrypted traffic,
        // so absence is denied like `false`, still with one key and one operator.
        Statement::deny("DenyJobsWithoutTrafficEncryption")
            .actions(TRAFFIC_ENCRYPTION_ACTIONS)
            .resources(resource)
            .condition("BoolIfExists", "sagemaker:InterContainerTrafficEncryption", "false")
            .build(),
    ]
}

/// The SageMaker execution role: jobs, the Studio domain default and shared spaces.
pub fn execution_role_policy(env: &Environment) -> Value {
    let scope = Scope::dev(env);
    let mut statements = vec![
        Statement::allow("SageMakerEnvironmentResources")
            .actions(WORK_ACTIONS)
            .resources(environment_resources(env))
            .build(),
        project_registries(env, "SageMakerProjectRegistries", REGISTRY_ACTIONS),
        register_versions(env),
        trials(env),
        Statement::allow("SageMakerList").actions(LIST_ACTIONS).resources(["*"]).build(),
    ];
    statements.extend(bucket_access(env));
    statements.extend(borrowed_keys(env, true));
    statements.extend(logs_write(scope));
    statements.extend(ecr_pull(scope, &env.account_id));
    statements.extend(vpc_network(scope));
    // Jobs started from shared spaces, tuning and AutoML jobs pass the execution role itself.
    statements.push(pass_roles(&[&env.roles.execution, &env.roles.model_execution]));
    statements.extend(preventive_denies(env));
    // Whoever can start a job can run code as this role, so it must not approve models either.
    statements.extend(approval_denies());
    statements.push(owner_tag_deny());
    document(statements)
}

/// The pipeline execution role: runs the environment's pipelines, registers model versions (as
/// Approved too, for projects with automatic approval) and passes the execution role to steps.
/// It runs no container itself, so it needs no ECR, logs or network interfaces.
pub fn pipeline_role_policy(env: &Environment) -> Value {
    let scope = Scope::dev(env);
    let mut statements = vec![
        Statement::allow("SageMakerEnvironmentResources")
            .actions(PIPELINE_ACTIONS)
            .resources(environment_resources(env))
            .build(),
        project_registries(env, "SageMakerProjectRegistries", REGISTRY_ACTIONS),
        register_versions(env),
        Statement::allow("SageMakerPipelineSteps")
            .actions(PIPELINE_STEP_ACTIONS)
            .resources(pipeline_step_resources(scope))
            .build(),
        trials(env),
        // Condition steps read property files (evaluation reports) from S3 in the service.
        Statement::allow("S3BucketRead")
            .actions(&["s3:ListBucket", "s3:GetBucketLocation"])
            .resources(buckets(env))
            .build(),
        Statement::allow("S3ObjectRead").actions(&["s3:GetObject"]).resources(objects(env)).build(),
    ];
    statements.extend(borrowed_keys(env, false));
    statements.push(pass_roles(&[&env.roles.execution, &env.roles.model_execution]));
    statements.extend(preventive_denies(env));
    document(statements)
}

/// The dev model execution role: what SageMaker needs to run an endpoint's containers. It gets no
/// SageMaker actions, so it cannot create jobs and carries no preventive denies.
pub fn model_execution_role_policy(env: &Environment) -> Value {
    let scope = Scope::dev(env);
    let mut statements = vec![
        model_artifacts_read(env),
        Statement::allow("KmsDecryptModelArtifacts")
            .actions(&["kms:Decrypt", "kms:DescribeKey"])
            .resources([env.keys.s3.clone()])
            .build(),
        Statement::allow("KmsVolumeKeyUse").actions(KEY_USE_ACTIONS).resources([env.keys.ebs.clone()]).build(),
    ];
    statements.extend(borrowed_keys(env, false));
    statements.extend(logs_write(scope));
    statements.extend(ecr_pull(scope, &env.account_id));
    statements.extend(vpc_network(scope));
    document(statements)
}

/// Use of the keys someone else owns (whose policies may leave use to IAM): each with the
/// grants AWS services hold for the volumes they encrypt; the studio key only for roles that
/// run Studio (`studio`). None when every key is sagekeeper's: their policies name the roles.
fn borrowed_keys(env: &Environment, studio: bool) -> Vec<Value> {
    let flags = env.borrowed_keys;
    let keys: Vec<String> =
        [(flags.ebs, &env.keys.ebs), (flags.studio && studio, &env.keys.studio), (flags.s3, &env.keys.s3)]
            .into_iter()
            .filter(|(borrowed, arn)| *borrowed && !arn.is_empty())
            .map(|(_, arn)| arn.clone())
            .collect();
    if keys.is_empty() {
        return Vec::new();
    }
    vec![
        Statement::allow("ExistingKeysUse").actions(KEY_USE_ACTIONS).resources(keys.clone()).build(),
        Statement::allow("ExistingKeysGrantsForAwsResources")
            .actions(KEY_GRANT_ACTIONS)
            .resources(keys)
            .condition("Bool", "kms:GrantIsForAWSResource", "true")
            .build(),
    ]
}

/// The model execution role in a target account: read the dev models bucket, decrypt with the
/// dev s3 key, use the target's endpoint key, write data capture. Nothing on the model registry:
/// the reference let target accounts call UpdateModelPackage (its gap 5.4.12).
pub fn target_model_execution_role_policy(env: &Environment, target: &Target) -> Value {
    let scope = Scope::target(env, target);
    let [_, capture_objects] = bucket_and_objects(&env.partition, &target.capture_bucket);
    let mut statements = vec![
        model_artifacts_read(env),
        Statement::allow("KmsDecryptModelArtifacts")
            .actions(&["kms:Decrypt", "kms:DescribeKey"])
            .resources([env.keys.s3.clone()])
            .build(),
        Statement::allow("KmsEndpointKeyUse").actions(KEY_USE_ACTIONS).resources([target.endpoint_key.clone()]).build(),
        Statement::allow("DataCaptureWrite").actions(&["s3:PutObject"]).resources([capture_objects]).build(),
        // SageMaker reads a guarded update's rollback alarms as the model's role: sagekeeper's
        // (`sagekeeper-<prefix>...`) and the team's (`<prefix>...`), no other environment's.
        Statement::allow("RollbackAlarmsRead")
            .actions(&["cloudwatch:DescribeAlarms"])
            .resources([
                scope.arn("cloudwatch", &format!("alarm:{ALARM_PREFIX}{}*", env.name_prefix)),
                scope.arn("cloudwatch", &format!("alarm:{}*", env.name_prefix)),
            ])
            .build(),
    ];
    statements.extend(logs_write(scope));
    statements.extend(ecr_pull(scope, &env.account_id));
    statements.extend(vpc_network(scope));
    document(statements)
}

/// A persona role: Studio, SageMaker work on the environment's resources, its buckets and keys.
///
/// Data scientists cannot approve a model by any route: UpdateModelPackage and CreateModelPackage
/// with `Approved` are denied; pipelines (whose parameters can set the approval status of the
/// versions they register) may be neither changed nor started, and the pipeline role, which may
/// register Approved versions, may not be passed; the execution role they can pass carries the
/// same approval denies; and Studio opens only profiles tagged with their own persona, so no
/// TeamAdmin profile. Every data scientist shares one role, so one data scientist can still open
/// another's profile: per-user isolation would need session tags.
pub fn persona_policy(persona: Persona, env: &Environment) -> Value {
    let scope = Scope::dev(env);
    let list_actions: Vec<&str> = LIST_ACTIONS.iter().chain(STUDIO_LIST_ACTIONS).copied().collect();
    let mut statements = vec![
        Statement::allow("SageMakerEnvironmentResources")
            .actions(WORK_ACTIONS)
            .resources(environment_resources(env))
            .build(),
        project_registries(env, "SageMakerProjectRegistries", REGISTRY_ACTIONS),
        register_versions(env),
        Statement::allow("SageMakerPipelineStepsRead")
            .actions(&["sagemaker:Describe*", "sagemaker:ListTags"])
            .resources(pipeline_step_resources(scope))
            .build(),
        trials(env),
        Statement::allow("SageMakerList").actions(&list_actions).resources(["*"]).build(),
    ];
    statements.extend(studio_access(persona, env));
    statements.extend(bucket_access(env));
    statements.extend(borrowed_keys(env, true));
    statements.push(logs_read(scope));
    statements.extend(preventive_denies(env));
    statements.push(owner_tag_deny());
    match persona {
        Persona::DataScientist => {
            statements.push(pass_roles(&[&env.roles.execution, &env.roles.model_execution]));
            statements.extend(approval_denies());
            statements.push(pipeline_change_deny());
        }
        Persona::TeamAdmin => {
            // Not the pipeline role: sagekeeper creates the pipelines, and a job running as the
            // pipeline role would read the buckets from outside the endpoints.
            statements.push(pass_roles(&[&env.roles.execution, &env.roles.model_execution]));
            statements.push(
                Statement::allow("ApproveModelPackages")
                    .actions(&["sagemaker:UpdateModelPackage"])
                    .resources([scope.arn("sagemaker", &format!("model-package/{}*", prefix(env)))])
                    .build(),
            );
            statements.push(project_registries(env, "ApproveProjectModelPackages", &["sagemaker:UpdateModelPackage"]));
            statements.push(
                Statement::allow("RunPipelines")
                    .actions(&[
                        "sagemaker:StartPipelineExecution",
                        "sagemaker:StopPipelineExecution",
                        "sagemaker:RetryPipelineExecution",
                    ])
                    .resources([scope.arn("sagemaker", &format!("pipeline/{}*", prefix(env)))])
                    .build(),
            );
        }
    }
    document(statements)
}

/// SageMaker lowercases names in ARNs, so a prefix with capitals would never match.
fn prefix(env: &Environment) -> String {
    env.name_prefix.to_lowercase()
}

fn environment_resources(env: &Environment) -> Vec<String> {
    let scope = Scope::dev(env);
    let prefix = prefix(env);
    ENVIRONMENT_RESOURCE_TYPES.iter().map(|kind| scope.arn("sagemaker", &format!("{kind}/{prefix}*"))).collect()
}

/// The projects' model package groups and their versions: whatever carries the environment's
/// registry tag. Projects tag the groups they own, and versions are registered with the tag
/// ([`register_versions`]). One ARN per project would pass IAM's 10,240 characters per role at
/// about nine projects; a tag condition costs the same for any number.
fn project_registries(env: &Environment, sid: &str, actions: &[&str]) -> Value {
    let scope = Scope::dev(env);
    Statement::allow(sid)
        .actions(actions)
        .resources([scope.arn("sagemaker", "model-package-group/*"), scope.arn("sagemaker", "model-package/*/*")])
        .condition("StringEquals", &format!("aws:ResourceTag/{REGISTRY_TAG_KEY}"), env.uid.clone())
        .build()
}

/// Registering a version into a project's group: the new version (`<group>/<n>`, which the
/// group half of the check scopes to tagged groups) must carry the registry tag itself, so every
/// version the environment's roles may later read or approve is tagged from birth.
fn register_versions(env: &Environment) -> Value {
    Statement::allow("RegisterProjectModelVersions")
        .actions(&["sagemaker:CreateModelPackage", "sagemaker:AddTags"])
        .resources([Scope::dev(env).arn("sagemaker", "model-package/*/*")])
        .condition("StringEquals", &format!("aws:RequestTag/{REGISTRY_TAG_KEY}"), env.uid.clone())
        .build()
}

/// Pipelines name step jobs `pipelines-<execution id>-<step>-<suffix>`, whatever the pipeline is
/// called, so `pipelines-*` is the narrowest name that matches them.
fn pipeline_step_resources(scope: Scope) -> Vec<String> {
    PIPELINE_STEP_TYPES.iter().map(|kind| scope.arn("sagemaker", &format!("{kind}/pipelines-*"))).collect()
}

/// Pipelines name trials after execution ids and jobs name their trial components after
/// themselves, so neither carries the environment's prefix. Some trial actions are authorized on
/// a second resource as well: CreateTrial on its experiment (the environment's, named like its
/// pipelines), metrics on their training job, DisassociateTrialComponent on a processing job.
fn trials(env: &Environment) -> Value {
    let scope = Scope::dev(env);
    let prefix = prefix(env);
    Statement::allow("SageMakerTrials")
        .actions(TRIAL_ACTIONS)
        .resources([
            scope.arn("sagemaker", "experiment-trial/*"),
            scope.arn("sagemaker", "experiment-trial-component/*"),
            scope.arn("sagemaker", &format!("experiment/{prefix}*")),
            scope.arn("sagemaker", &format!("training-job/{prefix}*")),
            scope.arn("sagemaker", "training-job/pipelines-*"),
            scope.arn("sagemaker", &format!("processing-job/{prefix}*")),
            scope.arn("sagemaker", "processing-job/pipelines-*"),
        ])
        .build()
}

fn buckets(env: &Environment) -> Vec<String> {
    [&env.data_bucket, &env.models_bucket].iter().map(|b| bucket_and_objects(&env.partition, b)[0].clone()).collect()
}

fn objects(env: &Environment) -> Vec<String> {
    [&env.data_bucket, &env.models_bucket].iter().map(|b| bucket_and_objects(&env.partition, b)[1].clone()).collect()
}

fn bucket_access(env: &Environment) -> [Value; 2] {
    [
        Statement::allow("S3BucketAccess").actions(BUCKET_ACTIONS).resources(buckets(env)).build(),
        Statement::allow("S3ObjectAccess").actions(OBJECT_ACTIONS).resources(objects(env)).build(),
    ]
}

fn model_artifacts_read(env: &Environment) -> Value {
    Statement::allow("ModelArtifactsRead")
        .actions(&["s3:GetObject", "s3:ListBucket"])
        .resources(bucket_and_objects(&env.partition, &env.models_bucket))
        .build()
}

fn log_groups(scope: Scope) -> String {
    scope.arn("logs", "log-group:/aws/sagemaker/*")
}

fn logs_write(scope: Scope) -> [Value; 2] {
    [
        Statement::allow("CloudWatchLogs")
            .actions(&[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
                "logs:GetLogEvents",
            ])
            .resources([log_groups(scope)])
            .build(),
        // PutMetricData has no resource type; the namespace is the only thing to scope it by.
        Statement::allow("CloudWatchMetrics")
            .actions(&["cloudwatch:PutMetricData"])
            .resources(["*"])
            .condition("StringLike", "cloudwatch:namespace", "/aws/sagemaker/*")
            .build(),
    ]
}

fn logs_read(scope: Scope) -> Value {
    Statement::allow("CloudWatchLogsRead")
        .actions(&["logs:DescribeLogStreams", "logs:GetLogEvents", "logs:FilterLogEvents"])
        .resources([log_groups(scope)])
        .build()
}

/// Images come from the region's SageMaker image registries (built-in algorithms, framework and
/// Deep Learning Containers) and from the environment's own accounts (`dev`, and the role's
/// account); an image of any other account is refused (SageMaker checks the role can pull it
/// when the model is created).
fn ecr_pull(scope: Scope, dev: &str) -> [Value; 2] {
    let mut accounts: Vec<&str> = crate::images::sagemaker_image_accounts(scope.region).to_vec();
    accounts.extend([dev, scope.account]);
    accounts.dedup();
    let repositories =
        accounts.iter().map(|a| format!("arn:{}:ecr:{}:{a}:repository/*", scope.partition, scope.region));
    [
        Statement::allow("EcrAuthorization").actions(&["ecr:GetAuthorizationToken"]).resources(["*"]).build(),
        Statement::allow("EcrImagePull")
            .actions(&["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"])
            .resources(repositories)
            .build(),
    ]
}

/// SageMaker attaches jobs and endpoints to the VPC with network interfaces made as the role.
fn vpc_network(scope: Scope) -> [Value; 2] {
    [
        Statement::allow("VpcNetworkInterfaces")
            .actions(&[
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ])
            .resources([scope.arn("ec2", "*")])
            .build(),
        Statement::allow("VpcDescribe")
            .actions(&[
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeVpcs",
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
            ])
            .resources(["*"])
            .build(),
    ]
}

fn pass_roles(roles: &[&String]) -> Value {
    Statement::allow("PassRolesToSageMaker")
        .actions(&["iam:PassRole"])
        .resources(roles.iter().map(|role| (*role).clone()))
        .condition("StringEquals", "iam:PassedToService", SAGEMAKER_SERVICE)
        .build()
}

fn approval_denies() -> [Value; 2] {
    [
        Statement::deny("DenyModelApprovalUpdate").actions(&["sagemaker:UpdateModelPackage"]).resources(["*"]).build(),
        // IgnoreCase: the status is an enum, but the deny must not hinge on its spelling.
        Statement::deny("DenyApprovedModelRegistration")
            .actions(&["sagemaker:CreateModelPackage"])
            .resources(["*"])
            .condition("StringEqualsIgnoreCase", "sagemaker:ModelApprovalStatus", "Approved")
            .build(),
    ]
}

/// A pipeline run registers versions as the pipeline role, with an approval status its
/// parameters and definition can set: starting or changing a pipeline is an approval route.
fn pipeline_change_deny() -> Value {
    Statement::deny("DenyPipelineChanges")
        .actions(&[
            "sagemaker:CreatePipeline",
            "sagemaker:UpdatePipeline",
            "sagemaker:UpdatePipelineVersion",
            "sagemaker:StartPipelineExecution",
            "sagemaker:RetryPipelineExecution",
        ])
        .resources(["*"])
        .build()
}

/// The controller adopts resources by its owner tags and maps profiles to personas by tag:
/// nobody else may set or remove them (creating with tags needs AddTags too).
fn owner_tag_deny() -> Value {
    Statement::deny("DenyOwnerTagChanges")
        .actions(&["sagemaker:AddTags", "sagemaker:DeleteTags"])
        .resources(["*"])
        .condition_any("ForAnyValue:StringLike", "aws:TagKeys", PROTECTED_TAG_KEYS)
        .build()
}

/// Studio within the environment's domain (the whole account's domains until it exists).
fn studio_access(persona: Persona, env: &Environment) -> [Value; 2] {
    let scope = Scope::dev(env);
    let domain = env.studio_domain_id.as_deref().unwrap_or("*");
    [
        // A profile runs as its persona's role: opening another persona's profile would be
        // an escalation, so the URL is only for profiles tagged with the caller's persona.
        Statement::allow("StudioPresignedUrl")
            .actions(&["sagemaker:CreatePresignedDomainUrl"])
            .resources([scope.arn("sagemaker", &format!("user-profile/{domain}/*"))])
            .condition("StringEquals", &format!("aws:ResourceTag/{PERSONA_TAG_KEY}"), persona.as_str())
            .build(),
        Statement::allow("StudioAppsAndSpaces")
            .actions(STUDIO_ACTIONS)
            .resources([
                scope.arn("sagemaker", &format!("domain/{domain}")),
                scope.arn("sagemaker", &format!("user-profile/{domain}/*")),
                scope.arn("sagemaker", &format!("app/{domain}/*")),
                scope.arn("sagemaker", &format!("space/{domain}/*")),
            ])
            .build(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::checks::{actions, statement, well_formed};
    use crate::inputs::fixtures::*;
    use serde_json::json;

    const DEV_SAGEMAKER: &str = "arn:aws:sagemaker:us-east-1:111111111111";

    fn env_resources() -> Vec<String> {
        ENVIRONMENT_RESOURCE_TYPES.iter().map(|kind| format!("{DEV_SAGEMAKER}:{kind}/sk-fraud-3f2a*")).collect()
    }

    fn all_documents() -> Vec<Value> {
        let env = env();
        vec![
            service_trust("sagemaker.amazonaws.com", DEV),
            persona_trust(&env, &["arn:aws:iam::111111111111:role/AWSReservedSSO_MLAdmins_abc".into()]),
            execution_role_policy(&env),
            pipeline_role_policy(&env),
            model_execution_role_policy(&env),
            target_model_execution_role_policy(&env, &env.targets[0]),
            persona_policy(Persona::DataScientist, &env),
            persona_policy(Persona::TeamAdmin, &env),
        ]
    }

    /// `deploy/aws/sagekeeper-boundary.json`, the ceiling of every role sagekeeper creates.
    const BOUNDARY: &str = include_str!("../../../deploy/aws/sagekeeper-boundary.json");

    fn boundary_actions(effect: &str, conditional: bool) -> Vec<String> {
        let boundary: Value = serde_json::from_str(BOUNDARY).expect("the boundary is JSON");
        let mut found = Vec::new();
        for statement in boundary["Statement"].as_array().expect("statements") {
            if statement["Effect"] == effect && statement.get("Condition").is_some() == conditional {
                match &statement["Action"] {
                    Value::String(a) => found.push(a.clone()),
                    Value::Array(list) => found.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned))),
                    other => panic!("Action must be a string or a list: {other}"),
                }
            }
        }
        found
    }

    #[test]
    fn the_shipped_boundary_allows_everything_the_roles_are_given_and_denies_iam_writes() {
        let allowed = boundary_actions("Allow", false);
        let denied = boundary_actions("Deny", false);
        let env = env();
        for (name, policy) in [
            ("execution", execution_role_policy(&env)),
            ("pipeline", pipeline_role_policy(&env)),
            ("model execution", model_execution_role_policy(&env)),
            ("target model execution", target_model_execution_role_policy(&env, &env.targets[0])),
            ("DataScientist", persona_policy(Persona::DataScientist, &env)),
            ("TeamAdmin", persona_policy(Persona::TeamAdmin, &env)),
        ] {
            for statement in policy["Statement"].as_array().expect("statements") {
                if statement["Effect"] != "Allow" {
                    continue;
                }
                for action in actions(statement) {
                    assert!(
                        allowed.iter().any(|p| crate::action_matches(p, action)),
                        "the boundary does not allow {action} ({name} role)"
                    );
                    assert!(
                        !denied.iter().any(|p| crate::action_matches(p, action)),
                        "the boundary denies {action} ({name} role)"
                    );
                }
            }
        }
        for write in ["iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePermissionsBoundary", "iam:CreateUser"] {
            assert!(denied.iter().any(|p| crate::action_matches(p, write)), "the boundary must deny {write}");
        }
        assert!(
            !allowed.iter().any(|p| p.ends_with(":*") || p == "*"),
            "the boundary names actions, never a whole service"
        );
    }

    #[test]
    fn every_document_is_well_formed_and_round_trips() {
        for policy in all_documents() {
            well_formed(&policy);
        }
    }

    #[test]
    fn role_policies_fit_the_inline_policy_quota() {
        // IAM counts every character but whitespace against 10,240 per role's inline policies.
        for policy in all_documents() {
            let size = serde_json::to_string(&policy).map(|s| s.len()).unwrap_or(usize::MAX);
            assert!(size < 10_240, "{size} characters: {:?}", crate::statement_ids(&policy));
        }
    }

    #[test]
    fn service_trust_names_only_the_service_for_its_account() {
        assert_eq!(
            service_trust("sagemaker.amazonaws.com", DEV),
            json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "TrustService", "Effect": "Allow",
                "Principal": {"Service": ["sagemaker.amazonaws.com"]}, "Action": ["sts:AssumeRole"],
                "Condition": {"StringEquals": {"aws:SourceAccount": DEV}}
            }]})
        );
    }

    #[test]
    fn persona_trust_is_sagemaker_for_the_account_and_the_named_principals_never_the_root() {
        let admins = "arn:aws:iam::111111111111:role/AWSReservedSSO_MLAdmins_abc".to_owned();
        let policy = persona_trust(&env(), std::slice::from_ref(&admins));
        assert_eq!(
            statement(&policy, "TrustSageMaker"),
            &json!({"Sid": "TrustSageMaker", "Effect": "Allow",
                "Principal": {"Service": ["sagemaker.amazonaws.com"]}, "Action": ["sts:AssumeRole"],
                "Condition": {"StringEquals": {"aws:SourceAccount": "111111111111"}}})
        );
        assert_eq!(
            statement(&policy, "TrustPersonaPrincipals"),
            &json!({"Sid": "TrustPersonaPrincipals", "Effect": "Allow",
                "Principal": {"AWS": [admins]}, "Action": ["sts:AssumeRole"]})
        );
        assert!(!policy.to_string().contains(":root"), "{policy}");
        let only_sagemaker = persona_trust(&env(), &[]);
        assert_eq!(only_sagemaker["Statement"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn presence_denies_are_four_statements_with_one_condition_key_each() {
        let denies = preventive_denies(&env());
        assert_eq!(denies.len(), 7, "four presence denies, three value denies");
        let expected = [
            ("DenyJobsWithoutVpcSubnets", VPC_KEY_ACTIONS, json!({"Null": {"sagemaker:VpcSubnets": "true"}})),
            (
                "DenyJobsWithoutSecurityGroups",
                VPC_KEY_ACTIONS,
                json!({"Null": {"sagemaker:VpcSecurityGroupIds": "true"}}),
            ),
            ("DenyJobsWithoutVolumeKmsKey", VOLUME_KEY_ACTIONS, json!({"Null": {"sagemaker:VolumeKmsKeyArn": "true"}})),
            (
                "DenyJobsWithoutTrafficEncryption",
                TRAFFIC_ENCRYPTION_ACTIONS,
                json!({"BoolIfExists": {"sagemaker:InterContainerTrafficEncryption": "false"}}),
            ),
        ];
        for (deny, (sid, actions, condition)) in denies.iter().zip(expected) {
            assert_eq!(
                deny,
                &json!({"Sid": sid, "Effect": "Deny", "Action": actions,
                    "Resource": ["arn:aws:sagemaker:us-east-1:111111111111:*"], "Condition": condition})
            );
            let blocks = deny["Condition"].as_object().map(|c| c.values().collect::<Vec<_>>()).unwrap_or_default();
            assert_eq!(blocks.len(), 1);
            assert_eq!(blocks[0].as_object().map(|b| b.len()), Some(1), "{sid} has one condition key");
        }
    }

    #[test]
    fn value_denies_refuse_every_subnet_group_and_volume_key_but_the_environments() {
        let env = env();
        let denies = preventive_denies(&env);
        let by_sid = |sid: &str| denies.iter().find(|d| d["Sid"] == sid).unwrap().clone();
        assert_eq!(
            by_sid("DenyOtherSubnets"),
            json!({"Sid": "DenyOtherSubnets", "Effect": "Deny", "Action": ["sagemaker:*"], "Resource": ["*"],
                "Condition": {"ForAnyValue:StringNotEquals": {"sagemaker:VpcSubnets": env.subnets}}})
        );
        assert_eq!(
            by_sid("DenyOtherSecurityGroups")["Condition"],
            json!({"ForAnyValue:StringNotEquals": {"sagemaker:VpcSecurityGroupIds": env.security_groups}})
        );
        // Present and not the ebs key: absence is DenyJobsWithoutVolumeKmsKey's.
        assert_eq!(
            by_sid("DenyOtherVolumeKeys")["Condition"],
            json!({"StringNotEquals": {"sagemaker:VolumeKmsKeyArn": EBS_KEY},
                "Null": {"sagemaker:VolumeKmsKeyArn": "false"}})
        );
    }

    #[test]
    fn presence_denies_name_only_actions_that_support_their_key() {
        // Actions the Service Authorization Reference lists without these keys.
        for deny in presence_denies(&env()) {
            for action in actions(&deny) {
                assert!(action.starts_with("sagemaker:Create"), "{action}");
                assert_ne!(action, "sagemaker:CreateCompilationJob");
                assert_ne!(action, "sagemaker:CreateEndpointConfig");
            }
        }
        assert!(!VPC_KEY_ACTIONS.contains(&"sagemaker:CreateTransformJob"));
        assert!(!VOLUME_KEY_ACTIONS.contains(&"sagemaker:CreateModel"));
        assert!(!TRAFFIC_ENCRYPTION_ACTIONS.contains(&"sagemaker:CreateNotebookInstance"));
    }

    #[test]
    fn every_role_that_creates_jobs_carries_the_preventive_denies() {
        let env = env();
        for policy in [
            execution_role_policy(&env),
            pipeline_role_policy(&env),
            persona_policy(Persona::DataScientist, &env),
            persona_policy(Persona::TeamAdmin, &env),
        ] {
            for deny in preventive_denies(&env) {
                let sid = deny["Sid"].as_str().unwrap_or_default();
                assert_eq!(statement(&policy, sid), &deny);
            }
        }
        for policy in [model_execution_role_policy(&env), target_model_execution_role_policy(&env, &env.targets[0])] {
            assert!(crate::find_statement(&policy, "DenyJobsWithoutVpcSubnets").is_none());
            assert!(
                policy["Statement"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|s| { actions(s).iter().all(|a| !a.starts_with("sagemaker:")) })
            );
        }
    }

    #[test]
    fn execution_role_works_on_prefixed_resources_only() {
        let policy = execution_role_policy(&env());
        assert_eq!(
            statement(&policy, "SageMakerEnvironmentResources"),
            &json!({"Sid": "SageMakerEnvironmentResources", "Effect": "Allow", "Action": WORK_ACTIONS,
                "Resource": env_resources()})
        );
        assert_eq!(
            statement(&policy, "SageMakerTrials"),
            &json!({"Sid": "SageMakerTrials", "Effect": "Allow", "Action": TRIAL_ACTIONS, "Resource": [
                format!("{DEV_SAGEMAKER}:experiment-trial/*"), format!("{DEV_SAGEMAKER}:experiment-trial-component/*"),
                // The second resource some trial actions are authorized on, within the environment.
                format!("{DEV_SAGEMAKER}:experiment/sk-fraud-3f2a*"),
                format!("{DEV_SAGEMAKER}:training-job/sk-fraud-3f2a*"), format!("{DEV_SAGEMAKER}:training-job/pipelines-*"),
                format!("{DEV_SAGEMAKER}:processing-job/sk-fraud-3f2a*"), format!("{DEV_SAGEMAKER}:processing-job/pipelines-*")]})
        );
        assert_eq!(
            statement(&policy, "SageMakerList"),
            &json!({"Sid": "SageMakerList", "Effect": "Allow", "Action": LIST_ACTIONS, "Resource": ["*"]})
        );
        assert!(!WORK_ACTIONS.contains(&"sagemaker:UpdateModelPackage"));
    }

    #[test]
    fn prefix_is_lowercased_as_sagemaker_arns_are() {
        let mut env = env();
        env.name_prefix = "SK-Fraud".into();
        let policy = execution_role_policy(&env);
        let resources = &statement(&policy, "SageMakerEnvironmentResources")["Resource"];
        assert_eq!(resources[0], format!("{DEV_SAGEMAKER}:training-job/sk-fraud*"));
    }

    #[test]
    fn execution_role_uses_its_buckets_and_keys() {
        let policy = execution_role_policy(&env());
        let data = "arn:aws:s3:::sk-fraud-3f2a-111111111111-us-east-1-data";
        let models = "arn:aws:s3:::sk-fraud-3f2a-111111111111-us-east-1-models";
        assert_eq!(
            statement(&policy, "S3BucketAccess"),
            &json!({"Sid": "S3BucketAccess", "Effect": "Allow", "Action": BUCKET_ACTIONS, "Resource": [data, models]})
        );
        assert_eq!(
            statement(&policy, "S3ObjectAccess"),
            &json!({"Sid": "S3ObjectAccess", "Effect": "Allow", "Action": OBJECT_ACTIONS,
                "Resource": [format!("{data}/*"), format!("{models}/*")]})
        );
        // The keys' own policies grant their use: nothing about KMS here.
        assert!(!policy.to_string().contains("\"kms:"), "{policy}");
    }

    #[test]
    fn execution_role_logs_pulls_images_and_attaches_to_the_vpc() {
        let policy = execution_role_policy(&env());
        assert_eq!(
            statement(&policy, "CloudWatchLogs"),
            &json!({"Sid": "CloudWatchLogs", "Effect": "Allow", "Action": [
                "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams",
                "logs:GetLogEvents"],
                "Resource": ["arn:aws:logs:us-east-1:111111111111:log-group:/aws/sagemaker/*"]})
        );
        assert_eq!(
            statement(&policy, "CloudWatchMetrics"),
            &json!({"Sid": "CloudWatchMetrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"],
                "Resource": ["*"], "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}})
        );
        assert_eq!(
            statement(&policy, "EcrAuthorization"),
            &json!({"Sid": "EcrAuthorization", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"],
                "Resource": ["*"]})
        );
        assert_eq!(
            statement(&policy, "EcrImagePull"),
            &json!({"Sid": "EcrImagePull", "Effect": "Allow", "Action": [
                "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                "Resource": ["arn:aws:ecr:us-east-1:520713654638:repository/*",
                    "arn:aws:ecr:us-east-1:683313688378:repository/*", "arn:aws:ecr:us-east-1:763104351884:repository/*",
                    "arn:aws:ecr:us-east-1:811284229777:repository/*", "arn:aws:ecr:us-east-1:111111111111:repository/*"]})
        );
        assert_eq!(
            statement(&policy, "VpcNetworkInterfaces"),
            &json!({"Sid": "VpcNetworkInterfaces", "Effect": "Allow", "Action": [
                "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission"],
                "Resource": ["arn:aws:ec2:us-east-1:111111111111:*"]})
        );
        assert_eq!(
            statement(&policy, "VpcDescribe"),
            &json!({"Sid": "VpcDescribe", "Effect": "Allow", "Action": [
                "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups"], "Resource": ["*"]})
        );
    }

    #[test]
    fn execution_role_passes_only_environment_roles_to_sagemaker() {
        let policy = execution_role_policy(&env());
        assert_eq!(
            statement(&policy, "PassRolesToSageMaker"),
            &json!({"Sid": "PassRolesToSageMaker", "Effect": "Allow", "Action": ["iam:PassRole"],
                "Resource": [EXECUTION, MODEL_EXECUTION],
                "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}})
        );
    }

    #[test]
    fn execution_role_cannot_approve_models_nor_forge_owner_tags() {
        let policy = execution_role_policy(&env());
        assert_eq!(
            statement(&policy, "DenyModelApprovalUpdate"),
            &json!({"Sid": "DenyModelApprovalUpdate", "Effect": "Deny", "Action": ["sagemaker:UpdateModelPackage"],
                "Resource": ["*"]})
        );
        assert_eq!(
            statement(&policy, "DenyApprovedModelRegistration"),
            &json!({"Sid": "DenyApprovedModelRegistration", "Effect": "Deny",
                "Action": ["sagemaker:CreateModelPackage"], "Resource": ["*"],
                "Condition": {"StringEqualsIgnoreCase": {"sagemaker:ModelApprovalStatus": "Approved"}}})
        );
        assert_eq!(
            statement(&policy, "DenyOwnerTagChanges"),
            &json!({"Sid": "DenyOwnerTagChanges", "Effect": "Deny",
                "Action": ["sagemaker:AddTags", "sagemaker:DeleteTags"], "Resource": ["*"],
                "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": ["sagekeeper.io/owner*",
                    "sagekeeper.io/component", "sagekeeper.io/persona", "sagekeeper.io/home-used"]}}})
        );
    }

    #[test]
    fn pipeline_role_runs_steps_registers_and_passes_the_execution_role() {
        let policy = pipeline_role_policy(&env());
        assert_eq!(
            statement(&policy, "SageMakerEnvironmentResources"),
            &json!({"Sid": "SageMakerEnvironmentResources", "Effect": "Allow", "Action": PIPELINE_ACTIONS,
                "Resource": env_resources()})
        );
        let steps: Vec<String> =
            PIPELINE_STEP_TYPES.iter().map(|kind| format!("{DEV_SAGEMAKER}:{kind}/pipelines-*")).collect();
        assert_eq!(
            statement(&policy, "SageMakerPipelineSteps"),
            &json!({"Sid": "SageMakerPipelineSteps", "Effect": "Allow", "Action": PIPELINE_STEP_ACTIONS,
                "Resource": steps})
        );
        assert_eq!(
            statement(&policy, "S3ObjectRead"),
            &json!({"Sid": "S3ObjectRead", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [
                "arn:aws:s3:::sk-fraud-3f2a-111111111111-us-east-1-data/*",
                "arn:aws:s3:::sk-fraud-3f2a-111111111111-us-east-1-models/*"]})
        );
        assert_eq!(
            statement(&policy, "S3BucketRead"),
            &json!({"Sid": "S3BucketRead", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": ["arn:aws:s3:::sk-fraud-3f2a-111111111111-us-east-1-data",
                    "arn:aws:s3:::sk-fraud-3f2a-111111111111-us-east-1-models"]})
        );
        assert!(!policy.to_string().contains("\"kms:"), "the key policies grant the keys' use");
        assert_eq!(statement(&policy, "PassRolesToSageMaker")["Resource"], json!([EXECUTION, MODEL_EXECUTION]));
        assert!(!PIPELINE_ACTIONS.contains(&"sagemaker:UpdateModelPackage"));
        for absent in ["EcrImagePull", "VpcNetworkInterfaces", "CloudWatchLogs", "DenyApprovedModelRegistration"] {
            assert!(crate::find_statement(&policy, absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn dev_model_execution_role_reads_models_and_runs_containers() {
        let env = env();
        let policy = model_execution_role_policy(&env);
        let models = "arn:aws:s3:::sk-fraud-3f2a-111111111111-us-east-1-models";
        assert_eq!(
            statement(&policy, "ModelArtifactsRead"),
            &json!({"Sid": "ModelArtifactsRead", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [models, format!("{models}/*")]})
        );
        assert_eq!(
            statement(&policy, "KmsDecryptModelArtifacts"),
            &json!({"Sid": "KmsDecryptModelArtifacts", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:DescribeKey"],
                "Resource": [S3_KEY]})
        );
        assert_eq!(
            statement(&policy, "KmsVolumeKeyUse"),
            &json!({"Sid": "KmsVolumeKeyUse", "Effect": "Allow", "Action": KEY_USE_ACTIONS, "Resource": [EBS_KEY]})
        );
        assert_eq!(
            crate::statement_ids(&policy),
            [
                "ModelArtifactsRead",
                "KmsDecryptModelArtifacts",
                "KmsVolumeKeyUse",
                "CloudWatchLogs",
                "CloudWatchMetrics",
                "EcrAuthorization",
                "EcrImagePull",
                "VpcNetworkInterfaces",
                "VpcDescribe"
            ]
        );
    }

    #[test]
    fn target_model_execution_role_does_nothing_beyond_serving() {
        let env = env();
        let policy = target_model_execution_role_policy(&env, &env.targets[0]);
        assert_eq!(
            crate::statement_ids(&policy),
            [
                "ModelArtifactsRead",
                "KmsDecryptModelArtifacts",
                "KmsEndpointKeyUse",
                "DataCaptureWrite",
                "RollbackAlarmsRead",
                "CloudWatchLogs",
                "CloudWatchMetrics",
                "EcrAuthorization",
                "EcrImagePull",
                "VpcNetworkInterfaces",
                "VpcDescribe"
            ]
        );
        let prefix = &env.name_prefix;
        assert_eq!(
            statement(&policy, "RollbackAlarmsRead"),
            &json!({"Sid": "RollbackAlarmsRead", "Effect": "Allow", "Action": ["cloudwatch:DescribeAlarms"],
                "Resource": [format!("arn:aws:cloudwatch:us-east-1:222222222222:alarm:sagekeeper-{prefix}*"),
                             format!("arn:aws:cloudwatch:us-east-1:222222222222:alarm:{prefix}*")]})
        );
        assert_eq!(
            statement(&policy, "KmsEndpointKeyUse"),
            &json!({"Sid": "KmsEndpointKeyUse", "Effect": "Allow", "Action": KEY_USE_ACTIONS,
                "Resource": ["arn:aws:kms:us-east-1:222222222222:key/endpoint"]})
        );
        assert_eq!(
            statement(&policy, "DataCaptureWrite"),
            &json!({"Sid": "DataCaptureWrite", "Effect": "Allow", "Action": ["s3:PutObject"],
                "Resource": ["arn:aws:s3:::sk-fraud-3f2a-222222222222-capture/*"]})
        );
        assert_eq!(statement(&policy, "KmsDecryptModelArtifacts")["Resource"], json!([S3_KEY]));
        assert_eq!(
            statement(&policy, "CloudWatchLogs")["Resource"],
            json!(["arn:aws:logs:us-east-1:222222222222:log-group:/aws/sagemaker/*"])
        );
        assert_eq!(
            statement(&policy, "VpcNetworkInterfaces")["Resource"],
            json!(["arn:aws:ec2:us-east-1:222222222222:*"])
        );
        let text = policy.to_string();
        assert!(!text.contains("ModelPackage"));
    }

    #[test]
    fn data_scientist_cannot_approve_by_any_route() {
        let policy = persona_policy(Persona::DataScientist, &env());
        assert_eq!(statement(&policy, "DenyModelApprovalUpdate")["Effect"], "Deny");
        assert_eq!(statement(&policy, "DenyModelApprovalUpdate")["Action"], json!(["sagemaker:UpdateModelPackage"]));
        assert_eq!(statement(&policy, "DenyModelApprovalUpdate")["Resource"], json!(["*"]));
        assert_eq!(
            statement(&policy, "DenyApprovedModelRegistration")["Condition"],
            json!({"StringEqualsIgnoreCase": {"sagemaker:ModelApprovalStatus": "Approved"}})
        );
        assert_eq!(
            statement(&policy, "DenyPipelineChanges"),
            &json!({"Sid": "DenyPipelineChanges", "Effect": "Deny", "Action": [
                "sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:UpdatePipelineVersion",
                "sagemaker:StartPipelineExecution", "sagemaker:RetryPipelineExecution"], "Resource": ["*"]})
        );
        // The pipeline role may register Approved versions, so data scientists may not pass it.
        assert_eq!(statement(&policy, "PassRolesToSageMaker")["Resource"], json!([EXECUTION, MODEL_EXECUTION]));
        assert!(crate::find_statement(&policy, "ApproveModelPackages").is_none());
        assert!(crate::find_statement(&policy, "RunPipelines").is_none());
    }

    #[test]
    fn project_registries_are_granted_by_the_environment_tag_never_by_name() {
        let env = env();
        let registries =
            json!([format!("{DEV_SAGEMAKER}:model-package-group/*"), format!("{DEV_SAGEMAKER}:model-package/*/*")]);
        let tagged = json!({"StringEquals": {"aws:ResourceTag/sagekeeper.io/environment": env.uid}});
        let pipeline = pipeline_role_policy(&env);
        let grant = statement(&pipeline, "SageMakerProjectRegistries");
        assert_eq!((&grant["Resource"], &grant["Condition"]), (&registries, &tagged));
        // New versions carry the tag from birth, or cannot be registered.
        let register = statement(&pipeline, "RegisterProjectModelVersions");
        assert_eq!(register["Resource"], json!([format!("{DEV_SAGEMAKER}:model-package/*/*")]));
        assert_eq!(
            register["Condition"],
            json!({"StringEquals": {"aws:RequestTag/sagekeeper.io/environment": env.uid}})
        );
        let admin = persona_policy(Persona::TeamAdmin, &env);
        let approve = statement(&admin, "ApproveProjectModelPackages");
        assert_eq!((&approve["Action"], &approve["Condition"]), (&json!(["sagemaker:UpdateModelPackage"]), &tagged));
        // Data scientists still may not approve there, nor forge the owner tags, but may set
        // the registry tag (registering a version sets it).
        let scientist = persona_policy(Persona::DataScientist, &env);
        assert_eq!(statement(&scientist, "DenyModelApprovalUpdate")["Resource"], json!(["*"]));
        let deny = &statement(&scientist, "DenyOwnerTagChanges")["Condition"]["ForAnyValue:StringLike"]["aws:TagKeys"];
        assert!(deny.as_array().unwrap().iter().all(|k| !crate::action_matches(k.as_str().unwrap(), REGISTRY_TAG_KEY)));
        assert!(
            deny.as_array()
                .unwrap()
                .iter()
                .any(|k| crate::action_matches(k.as_str().unwrap(), "sagekeeper.io/owner-uid"))
        );
    }

    #[test]
    fn team_admin_approves_and_runs_the_environment_pipelines() {
        let policy = persona_policy(Persona::TeamAdmin, &env());
        assert_eq!(
            statement(&policy, "ApproveModelPackages"),
            &json!({"Sid": "ApproveModelPackages", "Effect": "Allow", "Action": ["sagemaker:UpdateModelPackage"],
                "Resource": [format!("{DEV_SAGEMAKER}:model-package/sk-fraud-3f2a*")]})
        );
        assert_eq!(
            statement(&policy, "RunPipelines"),
            &json!({"Sid": "RunPipelines", "Effect": "Allow", "Action": [
                "sagemaker:StartPipelineExecution", "sagemaker:StopPipelineExecution",
                "sagemaker:RetryPipelineExecution"],
                "Resource": [format!("{DEV_SAGEMAKER}:pipeline/sk-fraud-3f2a*")]})
        );
        assert_eq!(statement(&policy, "PassRolesToSageMaker")["Resource"], json!([EXECUTION, MODEL_EXECUTION]));
        for absent in ["DenyModelApprovalUpdate", "DenyApprovedModelRegistration", "DenyPipelineChanges"] {
            assert!(crate::find_statement(&policy, absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn personas_open_only_profiles_of_their_own_persona_in_the_domain() {
        for persona in [Persona::DataScientist, Persona::TeamAdmin] {
            let policy = persona_policy(persona, &env());
            assert_eq!(
                statement(&policy, "StudioPresignedUrl"),
                &json!({"Sid": "StudioPresignedUrl", "Effect": "Allow",
                    "Action": ["sagemaker:CreatePresignedDomainUrl"],
                    "Resource": [format!("{DEV_SAGEMAKER}:user-profile/d-abc123/*")],
                    "Condition": {"StringEquals": {"aws:ResourceTag/sagekeeper.io/persona": persona.as_str()}}})
            );
            assert_eq!(
                statement(&policy, "StudioAppsAndSpaces"),
                &json!({"Sid": "StudioAppsAndSpaces", "Effect": "Allow", "Action": STUDIO_ACTIONS, "Resource": [
                    format!("{DEV_SAGEMAKER}:domain/d-abc123"), format!("{DEV_SAGEMAKER}:user-profile/d-abc123/*"),
                    format!("{DEV_SAGEMAKER}:app/d-abc123/*"), format!("{DEV_SAGEMAKER}:space/d-abc123/*")]})
            );
        }
    }

    #[test]
    fn personas_without_a_domain_yet_are_scoped_to_the_account() {
        let mut env = env();
        env.studio_domain_id = None;
        let policy = persona_policy(Persona::DataScientist, &env);
        assert_eq!(
            statement(&policy, "StudioPresignedUrl")["Resource"],
            json!([format!("{DEV_SAGEMAKER}:user-profile/*/*")])
        );
    }

    #[test]
    fn personas_work_like_the_execution_role_and_read_logs() {
        let env = env();
        for persona in [Persona::DataScientist, Persona::TeamAdmin] {
            let policy = persona_policy(persona, &env);
            assert_eq!(
                statement(&policy, "SageMakerEnvironmentResources"),
                statement(&execution_role_policy(&env), "SageMakerEnvironmentResources")
            );
            let list: Vec<&str> = LIST_ACTIONS.iter().chain(STUDIO_LIST_ACTIONS).copied().collect();
            assert_eq!(statement(&policy, "SageMakerList")["Action"], json!(list));
            assert_eq!(
                statement(&policy, "CloudWatchLogsRead"),
                &json!({"Sid": "CloudWatchLogsRead", "Effect": "Allow", "Action": [
                    "logs:DescribeLogStreams", "logs:GetLogEvents", "logs:FilterLogEvents"],
                    "Resource": ["arn:aws:logs:us-east-1:111111111111:log-group:/aws/sagemaker/*"]})
            );
            assert_eq!(
                statement(&policy, "SageMakerPipelineStepsRead")["Action"],
                json!(["sagemaker:Describe*", "sagemaker:ListTags"])
            );
            assert!(!policy.to_string().contains("\"kms:"), "the key policies grant the keys' use");
            assert!(crate::find_statement(&policy, "DenyOwnerTagChanges").is_some());
            assert!(crate::find_statement(&policy, "EcrImagePull").is_none());
        }
    }
}
