//! MLOpsProject: the registry shared read-only with the target accounts, a pipeline whose every
//! job is locked into the environment's network and keys, one run per trigger (also across a
//! restart), run outcomes, registry polling, drift, and deletion.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use sagekeeper_api::naming::ProjectNames;
use sagekeeper_api::{DataScienceEnvironment, MLOpsProject, conditions};
use sagekeeper_tests::test_env::HasConditions;
use sagekeeper_tests::{TestEnv, eventually};
use serde_json::{Value, json};

use crate::references::{deployment, environment, project, ready_account};

/// A Ready environment with a staging and a production account, and the project `name` on it.
async fn setup(t: &TestEnv, name: &str, spec: Value) -> (Api<MLOpsProject>, MLOpsProject) {
    ready_environment(t).await;
    create_project(t, name, spec).await
}

/// The project `name` on the environment `fraud`, with `spec` merged into its spec.
pub(crate) async fn create_project(t: &TestEnv, name: &str, spec: Value) -> (Api<MLOpsProject>, MLOpsProject) {
    let projects = t.api::<MLOpsProject>();
    let mut obj = project(t, name, "fraud");
    let mut value = serde_json::to_value(&obj).unwrap();
    for (k, v) in spec.as_object().unwrap() {
        value["spec"][k] = v.clone();
    }
    obj = serde_json::from_value(value).unwrap();
    projects.create(&Default::default(), &obj).await.unwrap();
    (projects, obj)
}

/// The environment `fraud`, Ready, with a staging and a production account.
pub(crate) async fn ready_environment(t: &TestEnv) {
    ready_account(t, "dev", 1, &t.namespace).await;
    ready_account(t, "staging", 2, &t.namespace).await;
    ready_account(t, "production", 3, &t.namespace).await;
    let envs = t.api::<DataScienceEnvironment>();
    let env = environment(t, "fraud", "dev", &[("staging", "staging"), ("production", "production")]);
    envs.create(&Default::default(), &env).await.unwrap();
    t.wait_condition_for(&envs, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
}

async fn ready(t: &TestEnv, projects: &Api<MLOpsProject>, name: &str) -> MLOpsProject {
    t.wait_condition_for(projects, name, "Ready", "True", None, Duration::from_secs(90)).await
}

fn fast(s: &mut sagekeeper_controller::Settings) {
    s.poll_interval = Duration::from_secs(1);
}

pub(crate) async fn runs(t: &TestEnv, pipeline: &str) -> Vec<(String, String)> {
    let c = t.clients(&t.account(1)).await;
    let out = c.sagemaker.list_pipeline_executions().pipeline_name(pipeline).send().await.unwrap();
    out.pipeline_execution_summaries()
        .iter()
        .map(|s| {
            (
                s.pipeline_execution_arn().unwrap_or_default().to_owned(),
                s.pipeline_execution_description().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

pub(crate) fn pipeline_name(p: &MLOpsProject) -> String {
    let arn = p.status.as_ref().unwrap().pipeline_arn.clone().unwrap();
    arn.rsplit('/').next().unwrap().to_owned()
}

fn env_status(env: &DataScienceEnvironment) -> &sagekeeper_api::DataScienceEnvironmentStatus {
    env.status.as_ref().unwrap()
}

/// Every step, with the steps nested in conditions.
fn steps(definition: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut queue: Vec<Value> = definition["Steps"].as_array().cloned().unwrap_or_default();
    while let Some(step) = queue.pop() {
        for branch in ["IfSteps", "ElseSteps"] {
            queue.extend(step["Arguments"][branch].as_array().cloned().unwrap_or_default());
        }
        out.push(step);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_converges_with_a_locked_down_pipeline_and_one_run() {
    let t = TestEnv::new("project-converges").await;
    let controller = t.controller().await;
    let (projects, _) = setup(&t, "churn", json!({})).await;
    let p = ready(&t, &projects, "churn").await;
    let status = p.status.clone().unwrap();
    let group = ProjectNames::new(&t.namespace, "churn").default_group();
    assert_eq!(status.model_package_group_name.as_deref(), Some(group.as_str()));
    for condition in ["EnvironmentReady", "RegistryReady", "PipelineReady"] {
        assert_eq!(conditions::find(p.conditions(), condition).unwrap().status, "True", "{condition}");
    }
    let env = t.api::<DataScienceEnvironment>().get("fraud").await.unwrap();
    let es = env_status(&env);

    // The group: tagged as ours and with the environment's registry tag (by which its roles are
    // granted it), with a policy naming exactly the target accounts' deployer and model
    // execution roles and granting no approval or change.
    let dev = t.clients(&t.account(1)).await;
    let group_arn = status.model_package_group_arn.clone().unwrap();
    let tags = dev.sagemaker.list_tags().resource_arn(group_arn).send().await.unwrap();
    let registry = tags.tags().iter().find(|t| t.key() == Some("sagekeeper.io/environment")).and_then(|t| t.value());
    assert_eq!(registry, env.metadata.uid.as_deref(), "the group carries the environment's registry tag");
    let policy = dev.sagemaker.get_model_package_group_policy().model_package_group_name(&group).send().await.unwrap();
    let policy: Value = serde_json::from_str(policy.resource_policy().unwrap()).unwrap();
    let mut principals: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Principal"]["AWS"].as_array().cloned().unwrap_or_default())
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    principals.sort();
    principals.dedup();
    let mut expected: Vec<String> = es
        .target_accounts
        .iter()
        .flat_map(|t| [t.deployer_arn.clone().unwrap(), t.model_execution_role_arn.clone().unwrap()])
        .collect();
    expected.sort();
    assert_eq!(principals, expected, "the target accounts' deployer and model execution roles, never a root");
    for n in [2, 3] {
        let deployer = format!("arn:aws:iam::{}:role/sagekeeper-deployer", t.account(n));
        assert!(principals.contains(&deployer), "{deployer} in {principals:?}");
    }
    let actions: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()))
        .collect();
    for action in &actions {
        assert!(
            [
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:ListModelPackages",
                "sagemaker:DescribeModelPackage",
                "sagemaker:CreateModel"
            ]
            .contains(action),
            "{action} granted"
        );
    }
    assert!(policy["Statement"].as_array().unwrap().iter().all(|s| s["Effect"] == "Allow"));

    // The pipeline: run by the pipeline role; every job in the private subnets and workloads
    // group with both keys and inter-container encryption.
    let name = pipeline_name(&p);
    let described = dev.sagemaker.describe_pipeline().pipeline_name(&name).send().await.unwrap();
    assert_eq!(described.role_arn(), es.identity.as_ref().unwrap().pipeline_role_arn.as_deref());
    let definition: Value = serde_json::from_str(described.pipeline_definition().unwrap()).unwrap();
    let network = es.network.as_ref().unwrap();
    let keys = es.encryption.as_ref().unwrap();
    let vpc =
        json!({"SecurityGroupIds": [network.security_group_ids["workloads"]], "Subnets": network.private_subnet_ids});
    let (ebs, s3) = (keys.ebs_key_arn.clone().unwrap(), keys.s3_key_arn.clone().unwrap());
    let all = steps(&definition);
    let mut jobs = 0;
    for step in &all {
        let args = &step["Arguments"];
        match step["Type"].as_str().unwrap() {
            "Processing" => {
                assert_eq!(args["NetworkConfig"]["VpcConfig"], vpc, "{}", step["Name"]);
                assert_eq!(args["NetworkConfig"]["EnableInterContainerTrafficEncryption"], true);
                assert_eq!(args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"], ebs.as_str());
                assert_eq!(args["ProcessingOutputConfig"]["KmsKeyId"], s3.as_str());
                jobs += 1;
            }
            "Training" => {
                assert_eq!(args["VpcConfig"], vpc);
                assert_eq!(args["EnableInterContainerTrafficEncryption"], true);
                assert_eq!(args["ResourceConfig"]["VolumeKmsKeyId"], ebs.as_str());
                assert_eq!(args["OutputDataConfig"]["KmsKeyId"], s3.as_str());
                jobs += 1;
            }
            "RegisterModel" => {
                assert_eq!(args["ModelPackageGroupName"], group.as_str());
                assert_eq!(args["ModelApprovalStatus"], "PendingManualApproval");
            }
            "Condition" | "Fail" => {}
            other => panic!("unexpected step type {other}"),
        }
    }
    assert_eq!(jobs, 3, "preprocess, train, evaluate");
    assert_eq!(status.pipeline_definition_hash.as_deref().map(|h| h.starts_with("sha256:")), Some(true));

    // The template's scripts and data are under the project's prefix, named by their content,
    // and the definition reads exactly those.
    let bucket = es.storage.as_ref().unwrap().data_bucket.clone().unwrap();
    let admin = t.clients(&t.account(1)).await;
    let listed = admin.s3.list_objects_v2().bucket(&bucket).prefix("projects/churn/").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let text = definition.to_string();
    for name in ["preprocess.py", "evaluate.py", "abalone.csv"] {
        let key = keys.iter().find(|k| k.ends_with(name)).unwrap_or_else(|| panic!("{name} in {keys:?}"));
        assert!(key.starts_with("projects/churn/assets/"), "{key}");
        assert!(text.contains(&format!("s3://{bucket}/{key}")), "the definition reads {key}");
    }

    // Exactly one run, for the definition, and it succeeded.
    let started = runs(&t, &name).await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(started[0].1.contains(status.pipeline_definition_hash.as_deref().unwrap()), "{started:?}");
    let p = t.wait_condition(&projects, "churn", "LastRunSucceeded", "True", None).await;
    assert_eq!(p.status.unwrap().last_execution.unwrap().status, "Succeeded");

    // A drift check of the converged project (a fresh controller checks everything) writes nothing.
    controller.stop().await;
    t.emulator.clear_calls(&t.account(1));
    let _again = t.controller().await;
    eventually(Duration::from_secs(30), "a full check of the project", || async {
        t.emulator.calls(&t.account(1)).iter().any(|c| c.operation == "DescribePipeline").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = t.emulator.controller_writes(&t.account(1));
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(runs(&t, &name).await.len(), 1, "a restart starts no run");
    // Granting the new project's group was an update of the environment, not drift.
    let reasons = t.event_reasons("fraud").await;
    assert!(!reasons.contains(&"DriftRepaired".to_owned()), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_reported_with_its_reason_and_the_project_stays_ready() {
    let t = TestEnv::new("project-run-fails").await;
    let _controller = t.controller_with(fast, None).await;
    t.emulator.configure(json!({"account": t.account(1), "pipelineExecutionSeconds": null}));
    let (projects, _) = setup(&t, "churn", json!({})).await;
    let p = ready(&t, &projects, "churn").await;
    let running = p.status.clone().unwrap().last_execution.unwrap();
    assert_eq!(running.status, "Executing");
    let last = conditions::find(p.conditions(), "LastRunSucceeded").unwrap();
    assert_eq!((last.status.as_str(), last.reason.as_str()), ("Unknown", "PipelinePending"));

    t.emulator.finish_execution(&running.arn, "Failed", Some("Step TrainAbaloneModel failed: capacity error"));
    let p = t.wait_condition(&projects, "churn", "LastRunSucceeded", "False", Some("PipelineFailed")).await;
    let message = &conditions::find(p.conditions(), "LastRunSucceeded").unwrap().message;
    assert!(message.contains("Failed: Step TrainAbaloneModel failed: capacity error"), "{message}");
    let execution = p.status.clone().unwrap().last_execution.unwrap();
    assert_eq!(execution.status, "Failed");
    assert_eq!(execution.failure_reason.as_deref(), Some("Step TrainAbaloneModel failed: capacity error"));
    assert!(execution.end_time.is_some());
    assert_eq!(
        conditions::find(p.conditions(), "Ready").unwrap().status,
        "True",
        "a failed run does not make it unready"
    );
    t.wait_event("churn", "RunFailed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_run_request_starts_exactly_one_run_also_across_a_restart() {
    let t = TestEnv::new("project-run-requests").await;
    let controller = t.controller_with(fast, None).await;
    let (projects, _) = setup(&t, "churn", json!({})).await;
    let p = ready(&t, &projects, "churn").await;
    let name = pipeline_name(&p);
    assert_eq!(runs(&t, &name).await.len(), 1);
    let request = |value: &str| json!({"spec": {"pipeline": {"runRequest": value}}});
    let acted_on = |value: &'static str| {
        let projects = projects.clone();
        async move {
            eventually(Duration::from_secs(30), "runRequest acted on", || async {
                let p = projects.get("churn").await.unwrap();
                (p.status.as_ref().and_then(|s| s.last_run_request.as_deref()) == Some(value)).then_some(())
            })
            .await;
        }
    };
    projects.patch("churn", &PatchParams::default(), &Patch::Merge(&request("first"))).await.unwrap();
    acted_on("first").await;
    assert_eq!(runs(&t, &name).await.len(), 2);

    // A restart in between starts nothing.
    controller.stop().await;
    let _controller = t.controller_with(fast, None).await;
    t.wait_condition(&projects, "churn", "Ready", "True", None).await;
    t.poke(&projects, "churn").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs(&t, &name).await.len(), 2, "a restart adds no run");

    projects.patch("churn", &PatchParams::default(), &Patch::Merge(&request("second"))).await.unwrap();
    acted_on("second").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = runs(&t, &name).await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        all.iter().any(|(_, d)| d.ends_with("runRequest first"))
            && all.iter().any(|(_, d)| d.ends_with("runRequest second"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_just_before_a_crash_is_adopted_not_started_again() {
    let t = TestEnv::new("project-run-crash").await;
    let controller = t.controller().await;
    let (projects, _) = setup(&t, "churn", json!({})).await;
    let p = ready(&t, &projects, "churn").await;
    let name = pipeline_name(&p);
    // The controller died right after StartPipelineExecution, before it wrote status: the run
    // exists (carrying its trigger), the status does not know it.
    controller.stop().await;
    let patch = json!({"spec": {"pipeline": {"runRequest": "nightly"}}});
    projects.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let admin = t.clients(&t.account(1)).await;
    let orphan = admin
        .sagemaker
        .start_pipeline_execution()
        .pipeline_name(&name)
        .pipeline_execution_description("sagekeeper: runRequest nightly")
        .send()
        .await
        .unwrap()
        .pipeline_execution_arn()
        .unwrap()
        .to_owned();
    let _controller = t.controller().await;
    let p = eventually(Duration::from_secs(30), "the request acted on", || async {
        let p = projects.get("churn").await.unwrap();
        (p.status.as_ref().and_then(|s| s.last_run_request.as_deref()) == Some("nightly")).then_some(p)
    })
    .await;
    assert_eq!(p.status.unwrap().last_execution.unwrap().arn, orphan, "the run found by its trigger is adopted");
    assert_eq!(runs(&t, &name).await.len(), 2, "no second run for the same trigger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_definitions_that_break_the_rules_are_refused_before_any_aws_call() {
    let t = TestEnv::new("project-bad-definitions").await;
    let _controller = t.controller().await;
    ready_environment(&t).await;
    let projects = t.api::<MLOpsProject>();
    t.emulator.clear_calls(&t.account(1));
    let env = t.api::<DataScienceEnvironment>().get("fraud").await.unwrap();
    let keys = env_status(&env).encryption.clone().unwrap();
    let training = json!({"Version": "2020-12-01", "Steps": [{"Name": "Train", "Type": "Training", "Arguments": {
        "AlgorithmSpecification": {"TrainingImage": "x", "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30, "VolumeKmsKeyId": keys.ebs_key_arn},
        "OutputDataConfig": {"S3OutputPath": "s3://b/o", "KmsKeyId": keys.s3_key_arn},
        "EnableInterContainerTrafficEncryption": true}}]});
    let lambda = json!({"Version": "2020-12-01", "Steps": [{"Name": "CallOut", "Type": "Lambda", "Arguments": {}}]});
    let cases = [
        (
            "no-network",
            training.to_string(),
            "InvalidConfiguration",
            "step Train (Training): VpcConfig.Subnets must be the environment's private subnets",
        ),
        ("lambda", lambda.to_string(), "StepNotAllowed", "step CallOut has type Lambda"),
        ("not-json", "{\"Steps\": [".to_owned(), "InvalidConfiguration", "spec.pipeline.definition: not valid JSON"),
    ];
    for (name, definition, _, _) in &cases {
        let mut obj = project(&t, name, "fraud");
        obj.spec.pipeline.definition = Some(definition.clone());
        projects.create(&Default::default(), &obj).await.unwrap();
    }
    for (name, _, reason, text) in &cases {
        let p = t.wait_condition(&projects, name, "Stalled", "True", Some(reason)).await;
        let message = &conditions::find(p.conditions(), "Ready").unwrap().message;
        assert!(message.contains(text), "{name}: {message}");
        assert_eq!(conditions::find(p.conditions(), "PipelineReady").unwrap().reason, *reason);
        assert!(p.status.as_ref().is_none_or(|s| s.model_package_group_arn.is_none() && s.pipeline_arn.is_none()));
    }
    // Nothing of a project was looked up or made (the environment's own checks aside).
    let project_operations = [
        "CreateModelPackageGroup",
        "DescribeModelPackageGroup",
        "GetModelPackageGroupPolicy",
        "PutModelPackageGroupPolicy",
        "ListModelPackages",
        "CreatePipeline",
        "DescribePipeline",
        "UpdatePipeline",
        "StartPipelineExecution",
        "ListPipelineExecutions",
        "PutObject",
        "ListObjectsV2",
    ];
    let made: Vec<String> = t
        .emulator
        .calls(&t.account(1))
        .into_iter()
        .filter(|c| project_operations.contains(&c.operation.as_str()))
        .map(|c| c.operation)
        .collect();
    assert!(made.is_empty(), "{made:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_and_approved_versions_reach_status_without_any_change_to_the_object() {
    let t = TestEnv::new("project-registry").await;
    let _controller = t.controller_with(fast, None).await;
    let (projects, _) = setup(&t, "churn", json!({})).await;
    let p = ready(&t, &projects, "churn").await;
    let generation = p.metadata.generation;
    let group = p.status.clone().unwrap().model_package_group_name.unwrap();
    let admin = t.clients(&t.account(1)).await;
    let register = || {
        admin
            .sagemaker
            .create_model_package()
            .model_package_group_name(&group)
            .model_approval_status(sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus::PendingManualApproval)
            .send()
    };
    let first = register().await.unwrap().model_package_arn().unwrap().to_owned();
    register().await.unwrap();
    let latest = |version: i64, approved: Option<i64>| {
        let projects = projects.clone();
        async move {
            eventually(Duration::from_secs(20), "the registry in status", || async {
                let s = projects.get("churn").await.unwrap().status.unwrap();
                let seen = (
                    s.latest_model_package.as_ref().map(|v| v.version),
                    s.latest_approved_model_package.as_ref().map(|v| v.version),
                );
                (seen == (Some(version), approved)).then_some(s)
            })
            .await
        }
    };
    let s = latest(2, None).await;
    assert_eq!(s.latest_model_package.unwrap().approval_status.as_deref(), Some("PendingManualApproval"));
    admin
        .sagemaker
        .update_model_package()
        .model_package_arn(&first)
        .model_approval_status(sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus::Approved)
        .send()
        .await
        .unwrap();
    let s = latest(2, Some(1)).await;
    assert_eq!(s.latest_approved_model_package.unwrap().arn, first);
    assert_eq!(projects.get("churn").await.unwrap().metadata.generation, generation, "the spec never changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_policy_and_the_tags_follow_the_environment() {
    let t = TestEnv::new("project-targets").await;
    let _controller = t.controller().await;
    let (projects, _) = setup(&t, "churn", json!({})).await;
    let p = ready(&t, &projects, "churn").await;
    let group = p.status.unwrap().model_package_group_name.unwrap();
    let principals = || async {
        let dev = t.clients(&t.account(1)).await;
        let out = dev.sagemaker.get_model_package_group_policy().model_package_group_name(&group).send().await;
        let Ok(out) = out else { return Vec::new() };
        let policy: Value = serde_json::from_str(out.resource_policy().unwrap()).unwrap();
        let mut all: Vec<String> = policy["Statement"][0]["Principal"]["AWS"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        all.sort();
        all
    };
    let accounts = |all: Vec<String>| -> BTreeSet<String> {
        all.iter().map(|p| p.split(':').nth(4).unwrap().to_owned()).collect()
    };
    let before = principals().await;
    assert_eq!(before.len(), 4, "each target's deployer and model execution role: {before:?}");
    assert_eq!(accounts(before), BTreeSet::from([t.account(2), t.account(3)]));
    // Production leaves the environment; the policy follows without any change to the project.
    let envs = t.api::<DataScienceEnvironment>();
    let patch = json!({"spec": {"targetAccounts": {"production": null}}});
    envs.patch("fraud", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let staging = envs.get("fraud").await.unwrap().status.unwrap().target_accounts;
    let staging = staging.iter().find(|t| t.stage == "staging").unwrap();
    let mut want = vec![staging.deployer_arn.clone().unwrap(), staging.model_execution_role_arn.clone().unwrap()];
    want.sort();
    eventually(Duration::from_secs(90), "the policy without production", || async {
        (principals().await == want).then_some(())
    })
    .await;

    // The environment's spec.tags go on the group and the pipeline, and come off again when
    // removed there; a tag someone else put on stays.
    let p = projects.get("churn").await.unwrap();
    let dev = t.clients(&t.account(1)).await;
    let arns = [p.status.as_ref().unwrap().model_package_group_arn.clone().unwrap(), {
        let name = pipeline_name(&p);
        dev.sagemaker.describe_pipeline().pipeline_name(&name).send().await.unwrap().pipeline_arn().unwrap().to_owned()
    }];
    let foreign = sagekeeper_aws::sdk::sagemaker::types::Tag::builder().key("team").value("risk").build();
    dev.sagemaker.add_tags().resource_arn(&arns[0]).tags(foreign).send().await.unwrap();
    let tags = |arn: String| {
        let sm = dev.sagemaker.clone();
        async move {
            let listed = sm.list_tags().resource_arn(arn).send().await.unwrap();
            listed
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned()))
                .collect::<std::collections::BTreeMap<_, _>>()
        }
    };
    let patch = json!({"spec": {"tags": {"cost-center": "4711"}}});
    envs.patch("fraud", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    for arn in &arns {
        eventually(Duration::from_secs(60), "the environment's tag on the project's resource", || async {
            (tags(arn.clone()).await.get("cost-center").map(String::as_str) == Some("4711")).then_some(())
        })
        .await;
    }
    let patch = json!({"spec": {"tags": null}});
    envs.patch("fraud", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    for arn in &arns {
        eventually(Duration::from_secs(60), "the removed tag off the project's resource", || async {
            (!tags(arn.clone()).await.contains_key("cost-center")).then_some(())
        })
        .await;
    }
    assert_eq!(tags(arns[0].clone()).await.get("team").map(String::as_str), Some("risk"), "others' tags stay");
    let p = ready(&t, &projects, "churn").await;
    assert!(p.status.unwrap().tag_keys.is_empty(), "the removed key is forgotten once it is off everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_the_pipeline_and_the_group_policy_is_repaired() {
    let t = TestEnv::new("project-drift").await;
    let controller = t.controller().await;
    let (projects, _) = setup(&t, "churn", json!({})).await;
    let p = ready(&t, &projects, "churn").await;
    let (name, group) = (pipeline_name(&p), p.status.clone().unwrap().model_package_group_name.unwrap());
    let dev = t.clients(&t.account(1)).await;
    let original = dev.sagemaker.describe_pipeline().pipeline_name(&name).send().await.unwrap();
    let original: Value = serde_json::from_str(original.pipeline_definition().unwrap()).unwrap();
    let open = json!({"Version": "2020-12-01", "Steps": [{"Name": "Anything", "Type": "Training", "Arguments": {}}]});
    dev.sagemaker.update_pipeline().pipeline_name(&name).pipeline_definition(open.to_string()).send().await.unwrap();
    dev.sagemaker.delete_model_package_group_policy().model_package_group_name(&group).send().await.unwrap();

    // The next full check (a restart forces one) puts both back, and starts no run.
    controller.stop().await;
    let _controller = t.controller().await;
    eventually(Duration::from_secs(60), "the pipeline and policy restored", || async {
        let d = dev.sagemaker.describe_pipeline().pipeline_name(&name).send().await.unwrap();
        let same = serde_json::from_str::<Value>(d.pipeline_definition().unwrap()).unwrap() == original;
        let policy = dev.sagemaker.get_model_package_group_policy().model_package_group_name(&group).send().await;
        (same && policy.is_ok()).then_some(())
    })
    .await;
    assert_eq!(runs(&t, &name).await.len(), 1, "repairing drift is not a new definition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_keeps_registered_versions_unless_asked_and_waits_for_deployments() {
    let t = TestEnv::new("project-deletion").await;
    let _controller = t.controller().await;
    let (projects, _) = setup(&t, "kept", json!({})).await;
    for (name, spec) in [("empty", json!({})), ("purged", json!({"deleteDataOnDelete": true}))] {
        let mut obj = project(&t, name, "fraud");
        obj.spec.delete_data_on_delete = spec.get("deleteDataOnDelete").is_some();
        projects.create(&Default::default(), &obj).await.unwrap();
    }
    let admin = t.clients(&t.account(1)).await;
    // Versions carry the environment tag, as the environment's roles must register them; the
    // deployer deletes no version without it.
    let env = t.api::<sagekeeper_api::DataScienceEnvironment>().get("fraud").await.unwrap();
    let tag = sagekeeper_aws::sdk::sagemaker::types::Tag::builder()
        .key(sagekeeper_policy::iam::REGISTRY_TAG_KEY)
        .value(env.metadata.uid.unwrap())
        .build();
    let mut pipelines = Vec::new();
    for name in ["kept", "empty", "purged"] {
        let p = ready(&t, &projects, name).await;
        pipelines.push(pipeline_name(&p));
        if name != "empty" {
            let group = p.status.unwrap().model_package_group_name.unwrap();
            let version = admin.sagemaker.create_model_package().model_package_group_name(&group).tags(tag.clone());
            version.send().await.unwrap();
        }
    }
    // A deployment names "kept": its deletion waits, InUse.
    t.api::<sagekeeper_api::ModelDeployment>()
        .create(&Default::default(), &deployment(&t, "serve", "kept", "staging"))
        .await
        .unwrap();
    projects.delete("kept", &Default::default()).await.unwrap();
    let held = t.wait_condition(&projects, "kept", "Ready", "False", Some("InUse")).await;
    assert!(conditions::find(held.conditions(), "Ready").unwrap().message.contains("ModelDeployment"));
    t.api::<sagekeeper_api::ModelDeployment>().delete("serve", &Default::default()).await.unwrap();
    for name in ["kept", "empty", "purged"] {
        if name != "kept" {
            projects.delete(name, &Default::default()).await.unwrap();
        }
        t.wait_gone(&projects, name).await;
    }
    let dev = t.clients(&t.account(1)).await;
    let exists = |group: String| {
        let sm = dev.sagemaker.clone();
        async move { sm.describe_model_package_group().model_package_group_name(group).send().await.is_ok() }
    };
    let group = |name: &str| ProjectNames::new(&t.namespace, name).default_group();
    assert!(exists(group("kept")).await, "versions (and so the group) are kept");
    assert!(!exists(group("empty")).await, "a group without versions goes");
    assert!(!exists(group("purged")).await, "deleteDataOnDelete removes versions and group");
    let kept_policy =
        dev.sagemaker.get_model_package_group_policy().model_package_group_name(group("kept")).send().await;
    assert!(kept_policy.is_err(), "the kept group's policy is removed");
    for pipeline in pipelines {
        assert!(dev.sagemaker.describe_pipeline().pipeline_name(&pipeline).send().await.is_err(), "{pipeline} deleted");
    }
    t.wait_event("kept", "DataRetained").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_refusals_stall_the_project_with_the_aws_code_and_throttling_only_slows_it() {
    let t = TestEnv::new("project-faults").await;
    let _controller = t.controller().await;
    ready_environment(&t).await;
    let dev = t.account(1);

    // SageMaker refuses the definition: Stalled, the code first in the pipeline's message.
    let refused = t.emulator.fault(json!({"operation": "CreatePipeline", "account": dev,
        "code": "ValidationException", "message": "Step TrainAbaloneModel: InstanceType ml.x1.huge is not supported"}));
    let (projects, _) = create_project(&t, "churn", json!({})).await;
    let p = t.wait_condition(&projects, "churn", "Stalled", "True", Some("InvalidConfiguration")).await;
    let pipeline = conditions::find(p.conditions(), "PipelineReady").unwrap();
    assert_eq!((pipeline.status.as_str(), pipeline.reason.as_str()), ("False", "InvalidConfiguration"));
    assert!(pipeline.message.starts_with("ValidationException: pipeline "), "{}", pipeline.message);
    assert!(pipeline.message.contains("ml.x1.huge is not supported"), "{}", pipeline.message);
    assert_eq!(conditions::find(p.conditions(), "RegistryReady").unwrap().status, "True");
    assert!(!t.emulator.calls(&dev).iter().any(|c| c.operation == "StartPipelineExecution"), "no run");
    t.emulator.remove_fault(&refused);
    t.poke(&projects, "churn").await;
    ready(&t, &projects, "churn").await;

    // sagekeeper may not share the group: Stalled AccessDenied on the registry.
    let denied = t.emulator.fault(json!({"operation": "PutModelPackageGroupPolicy", "account": dev,
        "code": "AccessDeniedException", "message": "User is not authorized to perform: sagemaker:PutModelPackageGroupPolicy"}));
    create_project(&t, "risk", json!({})).await;
    let p = t.wait_condition(&projects, "risk", "Stalled", "True", Some("AccessDenied")).await;
    let registry = conditions::find(p.conditions(), "RegistryReady").unwrap();
    assert!(registry.message.starts_with("AccessDeniedException: model package group "), "{}", registry.message);
    t.emulator.remove_fault(&denied);
    t.poke(&projects, "risk").await;
    ready(&t, &projects, "risk").await;

    // A third of SageMaker and S3 calls throttled: slower, still one group, pipeline and run.
    for (service, code, status) in [("sagemaker", "ThrottlingException", 400), ("s3", "SlowDown", 503)] {
        t.emulator.fault(json!({"operation": "*", "service": service, "account": dev, "code": code,
            "httpStatus": status, "probability": 0.3, "message": "Rate exceeded"}));
    }
    create_project(&t, "pricing", json!({})).await;
    let p = t.wait_condition_for(&projects, "pricing", "Ready", "True", None, Duration::from_secs(120)).await;
    let throttled = t.emulator.calls(&dev).iter().filter(|c| c.status == 400 || c.status == 503).count();
    t.emulator.clear_faults(&dev);
    assert!(throttled > 3, "only {throttled} calls were throttled");
    let name = pipeline_name(&p);
    assert_eq!(runs(&t, &name).await.len(), 1, "one run");
    let c = t.clients(&dev).await;
    let groups = c.sagemaker.list_model_package_groups().name_contains("pricing").send().await.unwrap();
    assert_eq!(groups.model_package_group_summary_list().len(), 1);
    let pipelines = c.sagemaker.list_pipelines().pipeline_name_prefix(&name).send().await.unwrap();
    assert_eq!(pipelines.pipeline_summaries().len(), 1);
}
