//! References between kinds: tenancy, readiness of dependencies, honest reporting of what this
//! version does not converge yet, stages checked against the environment, and pause.

use kube::api::{Patch, PatchParams};
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment, conditions};
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::test_env::HasConditions;
use serde_json::json;

/// An AwsAccount in the test's account `n`, reached through a role, admitting `namespace`.
pub async fn ready_account(t: &TestEnv, name: &str, n: u32, namespace: &str) -> AwsAccount {
    let role = t.create_role(&t.account(n), "sagekeeper-deployer", None).await;
    let obj: AwsAccount = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {}}}\nspec:\n  accountId: '{}'\n  roleArn: {role}\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {namespace}}}}}\n",
            t.name(name),
            t.account(n)
        ),
        false,
    );
    t.accounts().create(&Default::default(), &obj).await.unwrap();
    t.wait_condition(&t.accounts(), &t.name(name), "Ready", "True", None).await
}

pub fn environment(t: &TestEnv, name: &str, dev: &str, targets: &[(&str, &str)]) -> DataScienceEnvironment {
    let targets: String = targets.iter().map(|(stage, acct)| format!("    {stage}: [{}]\n", t.name(acct))).collect();
    t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: DataScienceEnvironment\nmetadata: {{name: {name}}}\nspec:\n  account: {}\n  region: us-east-1\n  targetAccounts:\n{targets}",
            t.name(dev)
        ),
        true,
    )
}

pub fn project(t: &TestEnv, name: &str, environment: &str) -> MLOpsProject {
    t.manifest(
        &format!("apiVersion: sagekeeper.io/v1alpha1\nkind: MLOpsProject\nmetadata: {{name: {name}}}\nspec: {{environment: {environment}}}\n"),
        true,
    )
}

pub fn deployment(t: &TestEnv, name: &str, project: &str, stage: &str) -> ModelDeployment {
    t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: {name}}}\nspec:\n  project: {project}\n  stages: [{{name: {stage}, instanceType: ml.m5.large}}]\n"
        ),
        true,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_outside_the_selector_gets_account_not_permitted() {
    let t = TestEnv::new("not-permitted").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, "some-other-team").await;
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &environment(&t, "fraud", "dev", &[])).await.unwrap();
    let env = t.wait_condition(&api, "fraud", "Stalled", "True", Some("AccountNotPermitted")).await;
    let ready = conditions::find(env.conditions(), "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "AccountNotPermitted"));
    assert!(ready.message.contains(&t.namespace), "{}", ready.message);
    // Nothing was done in that account on the environment's behalf: the controller's only calls
    // there are the AwsAccount's own checks (who it is, whether the boundary exists).
    let calls = t.emulator.calls(&t.account(1));
    let others: Vec<_> = calls
        .iter()
        .filter(|c| c.caller.ends_with("/sagekeeper"))
        .filter(|c| !["GetCallerIdentity", "GetPolicy"].contains(&c.operation.as_str()))
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_account_outside_the_selector_gets_account_not_permitted() {
    let t = TestEnv::new("target-not-permitted").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    ready_account(&t, "prod", 2, "some-other-team").await;
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &environment(&t, "fraud", "dev", &[("production", "prod")])).await.unwrap();
    let env = t.wait_condition(&api, "fraud", "Stalled", "True", Some("AccountNotPermitted")).await;
    let ready = conditions::find(env.conditions(), "Ready").unwrap();
    assert!(ready.message.contains(&t.name("prod")), "{}", ready.message);
    // Refused before any work: nothing created in either account.
    for n in [1, 2] {
        let creates: Vec<_> = t
            .emulator
            .calls(&t.account(n))
            .into_iter()
            .filter(|c| c.caller.ends_with("/sagekeeper") && !sagekeeper_tests::emulator::is_read(&c.operation))
            .collect();
        assert!(creates.is_empty(), "account {}: {creates:?}", t.account(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_waits_for_a_missing_account_with_dependency_not_ready() {
    let t = TestEnv::new("env-missing-account").await;
    let _controller = t.controller().await;
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &environment(&t, "fraud", "dev", &[])).await.unwrap();
    let env = t.wait_condition(&api, "fraud", "Reconciling", "True", Some("DependencyNotReady")).await;
    assert_eq!(conditions::find(env.conditions(), "Stalled").unwrap().status, "False");
    // The account appears: the environment follows without any change to it (watch relation).
    ready_account(&t, "dev", 1, &t.namespace).await;
    t.wait_condition(&api, "fraud", "Ready", "True", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_and_deployment_wait_for_their_dependencies() {
    let t = TestEnv::new("dependencies").await;
    let _controller = t.controller().await;
    let projects = t.api::<MLOpsProject>();
    projects.create(&Default::default(), &project(&t, "churn", "fraud")).await.unwrap();
    let p = t.wait_condition(&projects, "churn", "EnvironmentReady", "False", Some("DependencyNotReady")).await;
    let ready = conditions::find(p.conditions(), "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "DependencyNotReady"));
    assert!(ready.message.contains("DataScienceEnvironment fraud not found"), "{}", ready.message);
    assert_eq!(conditions::find(p.conditions(), "Reconciling").unwrap().status, "True");

    let deployments = t.api::<ModelDeployment>();
    deployments.create(&Default::default(), &deployment(&t, "churn", "churn", "staging")).await.unwrap();
    t.wait_condition(&deployments, "churn", "Reconciling", "True", Some("DependencyNotReady")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_stage_missing_from_the_environment_is_invalid_configuration() {
    let t = TestEnv::new("unknown-stage").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    ready_account(&t, "staging", 2, &t.namespace).await;
    t.api::<DataScienceEnvironment>()
        .create(&Default::default(), &environment(&t, "fraud", "dev", &[("staging", "staging")]))
        .await
        .unwrap();
    t.api::<MLOpsProject>().create(&Default::default(), &project(&t, "churn", "fraud")).await.unwrap();
    let deployments = t.api::<ModelDeployment>();
    deployments.create(&Default::default(), &deployment(&t, "churn", "churn", "production")).await.unwrap();
    let d = t.wait_condition(&deployments, "churn", "Stalled", "True", Some("InvalidConfiguration")).await;
    let message = &conditions::find(d.conditions(), "Ready").unwrap().message;
    assert!(message.contains("spec.stages[production]") && message.contains("staging"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_object_keeps_its_last_observation_and_reports_paused() {
    let t = TestEnv::new("paused").await;
    let _controller = t.controller().await;
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &environment(&t, "fraud", "dev", &[])).await.unwrap();
    let before = t.wait_condition(&api, "fraud", "Ready", "False", Some("DependencyNotReady")).await;
    let patch = json!({"metadata": {"annotations": {"sagekeeper.io/paused": "true"}}});
    api.patch("fraud", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let paused = t.wait_condition(&api, "fraud", "Reconciling", "False", Some("Paused")).await;
    assert_eq!(conditions::find(paused.conditions(), "Ready"), conditions::find(before.conditions(), "Ready"));
    // While paused even a now-resolvable account is not acted on.
    ready_account(&t, "dev", 1, &t.namespace).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let still = api.get("fraud").await.unwrap();
    assert_eq!(conditions::find(still.conditions(), "Ready").unwrap().reason, "DependencyNotReady");
    // Unpaused, it converges.
    let patch = json!({"metadata": {"annotations": {"sagekeeper.io/paused": null}}});
    api.patch("fraud", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    t.wait_condition(&api, "fraud", "Ready", "True", None).await;
}
