//! Plan: what a project should have in its environment's dev account, from its spec and the
//! environment's status, as a graph of steps. Pure.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use kube::{Resource, ResourceExt};
use sagekeeper_api::conditions::{Component, Outcome, Reason};
use sagekeeper_api::environment::TargetAccountStatus;
use sagekeeper_api::naming::{EnvironmentNames, OWNER_TAG, OWNER_UID_TAG, ProjectNames};
use sagekeeper_api::project::ModelApproval;
use sagekeeper_api::{DataScienceEnvironment, MLOpsProject, MLOpsProjectStatus};
use sagekeeper_aws::pipelines::{PipelinePlan, RunState};
use sagekeeper_aws::steps::Owner;
use sagekeeper_policy::iam::REGISTRY_TAG_KEY;
use sagekeeper_policy::inputs::Principals;
use sagekeeper_policy::pipeline::{self, JobSettings, Violation};

use crate::steps::StepId;

/// A step of a project's graph.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ProjectStep {
    /// The model package group and its policy for the target accounts' roles.
    Group,
    /// The template's assets in the environment's data bucket.
    Assets,
    /// The pipeline with the checked definition.
    Pipeline,
    /// A run for a trigger not yet acted on.
    Run,
    /// The latest run, while it may still change.
    Execution,
    /// The registry's newest and newest approved versions.
    Versions,
}

impl StepId for ProjectStep {
    fn step(&self) -> &'static str {
        match self {
            Self::Group => "Group",
            Self::Assets => "Assets",
            Self::Pipeline => "Pipeline",
            Self::Run => "Run",
            Self::Execution => "Execution",
            Self::Versions => "Versions",
        }
    }

    fn component(&self) -> Component {
        match self {
            Self::Group | Self::Versions => Component::Registry,
            Self::Assets | Self::Pipeline | Self::Run | Self::Execution => Component::Pipeline,
        }
    }
}

/// Everything one pass needs, derived from the project and its environment's status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub(crate) owner: Owner,
    pub(crate) group: String,
    pub(crate) pipeline: PipelinePlan,
    pub(crate) hash: String,
    pub(crate) settings: JobSettings,
    /// The target accounts' deployer and model execution roles, which the registry is shared with.
    pub(crate) registry_readers: Readers,
    /// The pipeline is the template, whose assets the data bucket holds.
    pub(crate) template: bool,
    pub(crate) run_on_change: bool,
    pub(crate) run_request: Option<String>,
    /// The run the project owes (the description its execution carries), if any.
    pub(crate) trigger: Option<String>,
    /// The latest run, while it may still change.
    pub(crate) running: Option<String>,
}

impl Plan {
    /// The graph: a full pass converges everything; a light one (a converged project between
    /// drift checks) only follows the running execution and the registry.
    pub(crate) fn graph(&self, light: bool) -> Vec<(ProjectStep, Vec<ProjectStep>)> {
        use ProjectStep as S;
        if light {
            let mut steps = vec![(S::Versions, vec![])];
            if self.running.is_some() {
                steps.push((S::Execution, vec![]));
            }
            return steps;
        }
        let mut steps = vec![(S::Group, vec![]), (S::Versions, vec![S::Group])];
        // The pipeline registers into the group: never one whose group is not the project's
        // (a name conflict), and never a run that could register elsewhere.
        if self.template {
            steps.push((S::Assets, vec![]));
            steps.push((S::Pipeline, vec![S::Assets, S::Group]));
        } else {
            steps.push((S::Pipeline, vec![S::Group]));
        }
        if self.trigger.is_some() {
            steps.push((S::Run, vec![S::Pipeline]));
            steps.push((S::Execution, vec![S::Run]));
        } else if self.running.is_some() {
            steps.push((S::Execution, vec![]));
        }
        steps
    }
}

/// The run the project owes for `status`, as the description its execution carries; `None`
/// when every trigger was acted on.
pub(crate) fn trigger(
    hash: &str,
    run_on_change: bool,
    run_request: Option<&String>,
    status: &MLOpsProjectStatus,
) -> Option<String> {
    let mut parts = Vec::new();
    if run_on_change && status.last_run_definition_hash.as_deref() != Some(hash) {
        parts.push(format!("definition {hash}"));
    }
    if let Some(request) = run_request.filter(|r| status.last_run_request.as_ref() != Some(*r)) {
        parts.push(format!("runRequest {request}"));
    }
    (!parts.is_empty()).then(|| format!("sagekeeper: {}", parts.join(", ")))
}

/// The plan, or why there is none yet (the environment does not report what the pipeline
/// names) or ever (the definition breaks a rule).
pub(crate) fn plan(project: &MLOpsProject, env: &DataScienceEnvironment) -> Result<Plan, Outcome> {
    let namespace = project.namespace().unwrap_or_default();
    let env_name = env.name_any();
    let missing = |what: &str| {
        Outcome::progressing(
            Reason::DependencyNotReady,
            format!("DataScienceEnvironment {env_name} does not report its {what} yet"),
        )
    };
    let s = env.status.as_ref().ok_or_else(|| missing("status"))?;
    let network = s.network.as_ref().ok_or_else(|| missing("network"))?;
    let keys = s.encryption.as_ref().ok_or_else(|| missing("keys"))?;
    let identity = s.identity.as_ref().ok_or_else(|| missing("roles"))?;
    let storage = s.storage.as_ref().ok_or_else(|| missing("buckets"))?;
    let group = ProjectNames::group(project);
    let names = ProjectNames::new(&namespace, &project.name_any());
    let pipeline_role = identity.pipeline_role_arn.clone().ok_or_else(|| missing("pipeline role"))?;
    let partition = pipeline_role.split(':').nth(1).unwrap_or("aws").to_owned();
    let settings = JobSettings {
        partition,
        region: env.spec.region.clone(),
        subnets: network.private_subnet_ids.clone(),
        security_group: network
            .security_group_ids
            .get("workloads")
            .cloned()
            .ok_or_else(|| missing("workloads group"))?,
        volume_key: keys.ebs_key_arn.clone().ok_or_else(|| missing("ebs key"))?,
        output_key: keys.s3_key_arn.clone().ok_or_else(|| missing("s3 key"))?,
        job_role: identity.execution_role_arn.clone().ok_or_else(|| missing("execution role"))?,
        data_bucket: storage.data_bucket.clone().ok_or_else(|| missing("data bucket"))?,
        models_bucket: storage.models_bucket.clone().ok_or_else(|| missing("models bucket"))?,
        prefix: names.prefix(),
        model_package_group: group.clone(),
        approval_status: match project.spec.model_approval {
            ModelApproval::Manual => "PendingManualApproval".into(),
            ModelApproval::Automatic => "Approved".into(),
        },
        registry_tag: env.metadata.uid.clone().ok_or_else(|| missing("uid"))?,
    };
    let spec = &project.spec.pipeline;
    let template = spec.definition.is_none();
    let generated = if template {
        Some(pipeline::abalone(&settings).ok_or_else(|| {
            Outcome::stalled(
                Reason::InvalidConfiguration,
                format!(
                    "spec.pipeline.template: sagekeeper knows no official XGBoost image registry for region {}; give spec.pipeline.definition instead",
                    env.spec.region
                ),
            )
        })?)
    } else {
        None
    };
    let definition = pipeline::effective(spec.definition.as_deref(), generated, &spec.parameters, &settings).map_err(
        |violation| match violation {
            Violation::StepNotAllowed(m) => Outcome::stalled(Reason::StepNotAllowed, m),
            Violation::Invalid(m) => Outcome::stalled(Reason::InvalidConfiguration, m),
        },
    )?;
    let hash = pipeline::hash(&definition);
    let owner = owner(project, env);
    let status = project.status.clone().unwrap_or_default();
    let run_request = spec.run_request.clone().filter(|r| !r.is_empty());
    Ok(Plan {
        pipeline: PipelinePlan {
            owner: owner.clone(),
            name: names.pipeline(&EnvironmentNames::new(&namespace, &env_name)),
            role_arn: pipeline_role,
            definition,
        },
        owner,
        trigger: trigger(&hash, spec.run_on_change, run_request.as_ref(), &status),
        running: status
            .last_execution
            .as_ref()
            .filter(|e| matches!(RunState::parse(&e.status), RunState::Executing | RunState::Stopping))
            .map(|e| e.arn.clone()),
        hash,
        settings,
        registry_readers: registry_readers(&s.target_accounts, env.metadata.uid.as_deref().unwrap_or_default()),
        group,
        template,
        run_on_change: spec.run_on_change,
        run_request,
    })
}

/// Who may read the project's registry: each target account's model execution role and
/// deployer role, those of accounts a set brought by its unit's path and their role names (the
/// model roles also by the environment's owner tag).
fn registry_readers(targets: &[TargetAccountStatus], env_uid: &str) -> Readers {
    let mut paths: Vec<String> = targets.iter().filter_map(|t| t.organization_path.clone()).collect();
    paths.sort();
    paths.dedup();
    let of = |arn: fn(&TargetAccountStatus) -> &Option<String>| {
        let roles = targets.iter().filter_map(|t| arn(t).as_deref().map(|a| (a, t.organization_path.is_some())));
        Principals::of(roles, &paths)
    };
    Readers { model_roles: of(|t| &t.model_execution_role_arn).owned_by(env_uid), deployers: of(|t| &t.deployer_arn) }
}

/// The principals a project's registry is shared with.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Readers {
    pub(crate) model_roles: Principals,
    pub(crate) deployers: Principals,
}

/// The tags and adoption rule of everything the project makes.
pub(crate) fn owner(project: &MLOpsProject, env: &DataScienceEnvironment) -> Owner {
    let names = ProjectNames::new(&project.namespace().unwrap_or_default(), &project.name_any());
    let uid = project.meta().uid.clone().unwrap_or_default();
    let mut base_tags: BTreeMap<String, String> = env.spec.tags.clone();
    base_tags.insert(OWNER_TAG.into(), names.owner());
    base_tags.insert(OWNER_UID_TAG.into(), uid.clone());
    // The environment's roles are granted the groups (and versions) carrying its uid here.
    base_tags.insert(REGISTRY_TAG_KEY.into(), env.metadata.uid.clone().unwrap_or_default());
    // User tag keys applied before and no longer in the environment's spec.tags.
    let applied = project.status.as_ref().map(|s| s.tag_keys.clone()).unwrap_or_default();
    let removed_tags = applied.into_iter().filter(|k| !env.spec.tags.contains_key(k)).collect();
    Owner { uid, base_tags, removed_tags }
}

/// What the environment looked like at a full check: a change to it or to the project's spec
/// calls for another full check.
pub(crate) fn fingerprint(project: &MLOpsProject, env: &DataScienceEnvironment) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    project.meta().generation.hash(&mut hasher);
    env.meta().generation.hash(&mut hasher);
    serde_json::to_string(
        &env.status.as_ref().map(|s| (&s.network, &s.encryption, &s.identity, &s.storage, &s.target_accounts)),
    )
    .unwrap_or_default()
    .hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Ready environment in us-east-1 with one target account, and a project in it.
    pub(crate) fn example(project_spec: serde_json::Value) -> (MLOpsProject, DataScienceEnvironment) {
        let env: DataScienceEnvironment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "DataScienceEnvironment",
            "metadata": {"name": "fraud", "namespace": "team-a", "uid": "env-uid", "generation": 1},
            "spec": {"account": "dev", "region": "us-east-1", "tags": {"cost-center": "42"}},
            "status": {
                "network": {"privateSubnetIds": ["subnet-1", "subnet-2"], "securityGroupIds": {"workloads": "sg-1"}},
                "encryption": {
                    "ebsKeyArn": "arn:aws:kms:us-east-1:111111111111:key/ebs",
                    "s3KeyArn": "arn:aws:kms:us-east-1:111111111111:key/s3"
                },
                "identity": {
                    "pipelineRoleArn": "arn:aws:iam::111111111111:role/pipeline",
                    "executionRoleArn": "arn:aws:iam::111111111111:role/execution"
                },
                "storage": {"dataBucket": "data-bucket", "modelsBucket": "models-bucket"},
                "targetAccounts": [{
                    "account": "prod", "stage": "prod",
                    "deployerArn": "arn:aws:iam::222222222222:role/deployer",
                    "modelExecutionRoleArn": "arn:aws:iam::222222222222:role/model"
                }]
            }
        }))
        .expect("an environment");
        let mut spec = serde_json::json!({"environment": "fraud"});
        spec.as_object_mut().expect("object").extend(project_spec.as_object().cloned().unwrap_or_default());
        let project: MLOpsProject = serde_json::from_value(serde_json::json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "MLOpsProject",
            "metadata": {"name": "churn", "namespace": "team-a", "uid": "project-uid", "generation": 1},
            "spec": spec,
        }))
        .expect("a project");
        (project, env)
    }

    #[test]
    fn the_template_plans_a_pipeline_over_the_environments_network_keys_and_buckets_shared_with_the_targets() {
        let (project, env) = example(serde_json::json!({}));
        let plan = plan(&project, &env).expect("a plan");
        assert_eq!(plan.group, ProjectNames::group(&project));
        assert!(plan.group.starts_with("team-a-churn"), "{}", plan.group);
        assert_eq!(plan.pipeline.role_arn, "arn:aws:iam::111111111111:role/pipeline");
        assert_eq!(plan.settings.subnets, ["subnet-1", "subnet-2"]);
        assert_eq!(plan.settings.security_group, "sg-1");
        assert_eq!(plan.settings.registry_tag, "env-uid");
        assert_eq!(
            [plan.registry_readers.deployers.arns.as_slice(), plan.registry_readers.model_roles.arns.as_slice()],
            [["arn:aws:iam::222222222222:role/deployer"], ["arn:aws:iam::222222222222:role/model"]]
        );
        assert!(plan.template);
        assert_eq!(plan.owner.base_tags.get("cost-center").map(String::as_str), Some("42"));
        assert_eq!(plan.owner.base_tags.get(OWNER_UID_TAG).map(String::as_str), Some("project-uid"));
        // The definition is the checked template: it names the environment's job role.
        assert!(plan.pipeline.definition.to_string().contains("arn:aws:iam::111111111111:role/execution"));
    }

    #[test]
    fn the_graph_orders_assets_before_the_pipeline_and_a_run_after_it_and_a_light_pass_only_polls() {
        use ProjectStep as S;
        let (project, env) = example(serde_json::json!({"pipeline": {"runOnChange": true}}));
        let plan = plan(&project, &env).expect("a plan");
        assert!(plan.trigger.as_deref().is_some_and(|t| t.starts_with("sagekeeper: definition ")));
        let graph: BTreeMap<_, _> = plan.graph(false).into_iter().collect();
        assert_eq!(graph[&S::Pipeline], [S::Assets, S::Group]);
        assert_eq!(graph[&S::Run], [S::Pipeline]);
        assert_eq!(graph[&S::Execution], [S::Run]);
        assert_eq!(graph[&S::Versions], [S::Group]);
        assert!(graph[&S::Group].is_empty() && graph[&S::Assets].is_empty());
        // Nothing running: a light pass reads the registry only.
        assert_eq!(plan.graph(true), [(S::Versions, vec![])]);
    }

    #[test]
    fn a_definition_of_its_own_needs_no_assets_and_an_acted_on_trigger_plans_no_run() {
        use ProjectStep as S;
        // The template's own definition, given as the project's.
        let (template, env) = example(serde_json::json!({}));
        let definition = plan(&template, &env).expect("a plan").pipeline.definition.to_string();
        let (mut project, env) =
            example(serde_json::json!({"pipeline": {"definition": definition, "runOnChange": true}}));
        let first = plan(&project, &env).expect("a plan");
        project.status = Some(MLOpsProjectStatus {
            last_run_definition_hash: Some(first.hash.clone()),
            last_execution: Some(sagekeeper_api::project::ExecutionStatus {
                arn: "arn:run/1".into(),
                status: "Executing".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let plan = plan(&project, &env).expect("a plan");
        assert_eq!(plan.trigger, None);
        assert_eq!(plan.running.as_deref(), Some("arn:run/1"));
        let graph: BTreeMap<_, _> = plan.graph(false).into_iter().collect();
        assert!(!graph.contains_key(&S::Assets) && !graph.contains_key(&S::Run));
        assert_eq!(graph[&S::Pipeline], [S::Group]);
        assert!(graph[&S::Execution].is_empty());
        assert_eq!(plan.graph(true), [(S::Versions, vec![]), (S::Execution, vec![])]);
    }

    #[test]
    fn a_step_the_rules_forbid_is_refused_before_any_call() {
        let definition = r#"{"Version": "2020-12-01", "Steps": [{"Name": "x", "Type": "Lambda", "Arguments": {}}]}"#;
        let (project, env) = example(serde_json::json!({"pipeline": {"definition": definition}}));
        let refused = plan(&project, &env).expect_err("refused");
        assert!(matches!(refused, Outcome::Stalled { reason: Reason::StepNotAllowed, .. }), "{refused:?}");
    }

    #[test]
    fn an_environment_without_its_roles_yet_is_waited_for() {
        let (project, mut env) = example(serde_json::json!({}));
        env.status.as_mut().expect("status").identity = None;
        let waiting = plan(&project, &env).expect_err("waits");
        assert!(waiting.message().contains("does not report its roles yet"), "{waiting:?}");
    }
}
