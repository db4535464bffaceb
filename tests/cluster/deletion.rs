//! Deletion: the finalizer is released for every kind, and what is still in use is held.

use kube::ResourceExt;
use sagekeeper_api::{DataScienceEnvironment, MLOpsProject, ModelDeployment, conditions};
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::test_env::HasConditions;

use crate::references::{deployment, environment, project, ready_account};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_each_kind_releases_the_finalizer_and_leaves_no_object() {
    let t = TestEnv::new("delete-each-kind").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    ready_account(&t, "staging", 2, &t.namespace).await;
    let (envs, projects, deployments) =
        (t.api::<DataScienceEnvironment>(), t.api::<MLOpsProject>(), t.api::<ModelDeployment>());
    envs.create(&Default::default(), &environment(&t, "fraud", "dev", &[("staging", "staging")])).await.unwrap();
    projects.create(&Default::default(), &project(&t, "churn", "fraud")).await.unwrap();
    deployments.create(&Default::default(), &deployment(&t, "churn", "churn", "staging")).await.unwrap();
    // Every object got the finalizer and a status before we delete it.
    let e = t.wait_condition(&envs, "fraud", "Ready", "True", None).await;
    let p = t.wait_condition(&projects, "churn", "Stalled", "True", Some("NotImplemented")).await;
    let d = t.wait_condition(&deployments, "churn", "Ready", "False", None).await;
    for finalizers in [e.finalizers(), p.finalizers(), d.finalizers()] {
        assert_eq!(finalizers, [sagekeeper_api::FINALIZER]);
    }

    deployments.delete("churn", &Default::default()).await.unwrap();
    t.wait_gone(&deployments, "churn").await;
    projects.delete("churn", &Default::default()).await.unwrap();
    t.wait_gone(&projects, "churn").await;
    envs.delete("fraud", &Default::default()).await.unwrap();
    t.wait_gone(&envs, "fraud").await;
    for name in ["dev", "staging"] {
        t.accounts().delete(&t.name(name), &Default::default()).await.unwrap();
        t.wait_gone(&t.accounts(), &t.name(name)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_in_use_are_held_with_in_use_until_their_users_are_gone() {
    let t = TestEnv::new("in-use").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    let (envs, projects) = (t.api::<DataScienceEnvironment>(), t.api::<MLOpsProject>());
    envs.create(&Default::default(), &environment(&t, "fraud", "dev", &[])).await.unwrap();
    projects.create(&Default::default(), &project(&t, "churn", "fraud")).await.unwrap();
    t.wait_condition(&envs, "fraud", "Ready", "True", None).await;
    t.wait_condition(&projects, "churn", "EnvironmentReady", "True", None).await;

    // The account is named by the environment: deletion waits and says who holds it.
    t.accounts().delete(&t.name("dev"), &Default::default()).await.unwrap();
    let held = t.wait_condition(&t.accounts(), &t.name("dev"), "Ready", "False", Some("InUse")).await;
    let message = &conditions::find(held.conditions(), "Ready").unwrap().message;
    assert!(message.contains(&format!("DataScienceEnvironment {}/fraud", t.namespace)), "{message}");
    assert!(held.metadata.deletion_timestamp.is_some());

    // The environment is named by the project: the same.
    envs.delete("fraud", &Default::default()).await.unwrap();
    let held = t.wait_condition(&envs, "fraud", "Ready", "False", Some("InUse")).await;
    let message = &conditions::find(held.conditions(), "Ready").unwrap().message;
    assert!(message.contains(&format!("MLOpsProject {}/churn", t.namespace)), "{message}");

    // Users go, and each release follows without any other change.
    projects.delete("churn", &Default::default()).await.unwrap();
    t.wait_gone(&projects, "churn").await;
    t.wait_gone(&envs, "fraud").await;
    t.wait_gone(&t.accounts(), &t.name("dev")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_releases_at_once_even_while_in_use() {
    let t = TestEnv::new("retain").await;
    let _controller = t.controller().await;
    let (envs, projects) = (t.api::<DataScienceEnvironment>(), t.api::<MLOpsProject>());
    let mut env = environment(&t, "fraud", "dev", &[]);
    env.spec.deletion_policy = sagekeeper_api::DeletionPolicy::Retain;
    envs.create(&Default::default(), &env).await.unwrap();
    projects.create(&Default::default(), &project(&t, "churn", "fraud")).await.unwrap();
    t.wait_condition(&envs, "fraud", "Ready", "False", None).await;
    envs.delete("fraud", &Default::default()).await.unwrap();
    t.wait_gone(&envs, "fraud").await;
}
