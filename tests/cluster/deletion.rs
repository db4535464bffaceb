//! Deletion: the finalizer is released for every kind, and what is still in use is held.

use kube::ResourceExt;
use sagekeeper_api::{DataScienceEnvironment, MLOpsProject, ModelDeployment, conditions};
use sagekeeper_tests::test_env::HasConditions;
use sagekeeper_tests::{TestEnv, eventually};

use std::time::Duration;

use crate::environments::{environment_manifest, full_environment, nothing, owned_resources};
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
    let p = t.wait_condition(&projects, "churn", "Ready", "True", None).await;
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

/// Deletes the environment and waits until it is gone; returns the DataRetained note, if any.
async fn delete_environment(t: &TestEnv) -> Option<String> {
    let api = t.api::<DataScienceEnvironment>();
    api.delete("fraud", &Default::default()).await.unwrap();
    t.wait_gone(&api, "fraud").await;
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(t.client.clone(), &t.namespace);
    let list = events.list(&Default::default()).await.unwrap();
    list.items.into_iter().find(|e| e.reason.as_deref() == Some("DataRetained")).and_then(|e| e.note)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_unused_environment_leaves_nothing_owned_in_any_account() {
    let t = TestEnv::new("delete-unused-env").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    ready_account(&t, "staging", 2, &t.namespace).await;
    ready_account(&t, "prod", 3, &t.namespace).await;
    // Nobody used it: never a user profile, so no home directories; the buckets are empty.
    let mut env = environment_manifest(&t);
    env.spec.studio.user_profiles.clear();
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &env).await.unwrap();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let uid = env.metadata.uid.unwrap();
    let retained = delete_environment(&t).await;
    assert_eq!(retained, None, "nothing held data, nothing is kept");
    for n in 1..=3 {
        assert_eq!(owned_resources(&t, &t.account(n), &uid).await, nothing(), "account {}", t.account(n));
    }
    // What the teardown deleted is in Deleted events, not only that the finalizer went.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(t.client.clone(), &t.namespace);
    let notes: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Deleted"))
        .filter_map(|e| e.note)
        .collect();
    for resource in ["Studio domain", "IAM role", "VPC"] {
        assert!(notes.iter().any(|n| n.contains(resource)), "no Deleted event names a {resource}: {notes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_directories_outlive_their_profiles() {
    let t = TestEnv::new("delete-used-home").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    // The profiles go first; their home directories stay on the file system.
    let patch = serde_json::json!({"spec": {"studio": {"userProfiles": []}}});
    api.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    assert!(env.status.as_ref().unwrap().studio.as_ref().unwrap().user_profiles.is_empty());
    let uid = env.metadata.uid.unwrap();

    let retained = delete_environment(&t).await.expect("a DataRetained event");
    assert!(retained.contains("efs-file-system") && retained.contains("vpc"), "home and its network: {retained}");
    assert!(retained.contains("/studio"), "the studio key encrypts the home: {retained}");
    let dev_left = owned_resources(&t, &t.account(1), &uid).await;
    assert_eq!((dev_left["vpc"], dev_left["keys"], dev_left["buckets"]), (1, 1, 0), "{dev_left:?}");
}

/// A flow record in the dev VPC's flow log group, as the flow-logs service writes them (one
/// stream per network interface); returns the group.
async fn write_flow_records(t: &TestEnv, env: &DataScienceEnvironment) -> String {
    use sagekeeper_aws::sdk::logs::types::InputLogEvent;
    let status = env.status.as_ref().unwrap();
    let group = status.network.as_ref().unwrap().flow_logs.as_ref().expect("flow logs in status").log_group.clone();
    let dev = t.clients(&t.account(1)).await;
    dev.logs.create_log_stream().log_group_name(&group).log_stream_name("eni-0abc-all").send().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let record = "2 111111111111 eni-0abc 10.0.1.5 10.0.2.9 443 49152 6 1 40 1700000000 1700000060 REJECT OK";
    let event = InputLogEvent::builder().timestamp(now).message(record).build().unwrap();
    dev.logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name("eni-0abc-all")
        .log_events(event)
        .send()
        .await
        .unwrap();
    group
}

/// A data scientist's object in the data bucket, written through the environment's S3
/// endpoint; returns the bucket.
async fn write_data(t: &TestEnv, env: &DataScienceEnvironment) -> String {
    let status = env.status.as_ref().unwrap();
    let data_bucket = status.storage.as_ref().unwrap().data_bucket.clone().unwrap();
    let endpoint = status.network.as_ref().unwrap().vpc_endpoint_ids["s3"].clone();
    let dev = t.clients(&t.account(1)).await;
    let put = dev.s3.put_object().bucket(&data_bucket).key("raw/train.csv").body(b"a,b\n1,2\n".to_vec().into());
    put.customize()
        .mutate_request(move |r| {
            r.headers_mut().insert("x-emulator-source-vpce", endpoint.clone());
        })
        .send()
        .await
        .unwrap();
    data_bucket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_environment_with_data_keeps_the_data_its_keys_and_the_home_network() {
    let t = TestEnv::new("delete-env-with-data").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let uid = env.metadata.uid.clone().unwrap();
    let data_bucket = write_data(&t, &env).await;
    let log_group = write_flow_records(&t, &env).await;

    let retained = delete_environment(&t).await.expect("a DataRetained event");
    assert!(retained.contains(&data_bucket), "{retained}");
    assert!(retained.contains(&log_group) && retained.contains("/ebs"), "the flow log group and its key: {retained}");
    assert!(retained.contains("alias/sagekeeper/") && retained.contains("/s3"), "the s3 key is kept: {retained}");
    assert!(retained.contains("efs-file-system") && retained.contains("vpc"), "home and its network: {retained}");
    let dev_left = owned_resources(&t, &t.account(1), &uid).await;
    let dev = t.clients(&t.account(1)).await;
    let expected: std::collections::BTreeMap<String, usize> = [
        ("vpc", 1),
        ("subnets", 2),
        ("route tables", 2),
        ("security groups", 2),
        ("endpoints", 13),
        ("keys", 3),
        ("aliases", 3),
        ("roles", 0),
        ("buckets", 1),
        ("domains", 0),
        ("user profiles", 0),
        ("log groups", 1),
        ("flow logs", 0),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), *v))
    .collect();
    assert_eq!(
        dev_left, expected,
        "dev keeps the data bucket, the flow log group with records, their keys, the studio key and the home's network"
    );
    let streams = dev.logs.describe_log_streams().log_group_name(&log_group).send().await.unwrap();
    assert_eq!(streams.log_streams().len(), 1, "the flow records are still there");
    let object = dev.s3.list_objects_v2().bucket(&data_bucket).send().await.unwrap();
    assert_eq!(object.contents().len(), 1, "the object is still there");
    for n in [2, 3] {
        assert_eq!(owned_resources(&t, &t.account(n), &uid).await, nothing(), "account {}", t.account(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_data_on_delete_removes_the_data_too() {
    let t = TestEnv::new("delete-env-and-data").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let patch = serde_json::json!({"spec": {"deleteDataOnDelete": true}});
    api.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let uid = env.metadata.uid.clone().unwrap();
    write_data(&t, &env).await;
    write_flow_records(&t, &env).await;
    assert_eq!(delete_environment(&t).await, None);
    for n in 1..=3 {
        assert_eq!(owned_resources(&t, &t.account(n), &uid).await, nothing(), "account {}", t.account(n));
    }
}

/// Delete-type calls the controller's session made in account `n`.
pub fn controller_deletes(t: &TestEnv, n: u32) -> Vec<String> {
    let session = format!("arn:aws:sts::{}:assumed-role/sagekeeper-deployer/sagekeeper", t.account(n));
    let calls = t.emulator.calls(&t.account(n));
    let deletes = calls.into_iter().filter(|c| c.caller == session);
    let deletes = deletes.filter(|c| {
        ["Delete", "Schedule", "Release", "Detach", "Disassociate", "Revoke"].iter().any(|p| c.operation.starts_with(p))
    });
    deletes.map(|c| c.operation).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_leaves_every_aws_resource_in_place() {
    let t = TestEnv::new("retain-env").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let patch = serde_json::json!({"spec": {"deletionPolicy": "Retain"}});
    api.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let uid = env.metadata.uid.unwrap();
    let mut before = Vec::new();
    for n in 1..=3 {
        before.push(owned_resources(&t, &t.account(n), &uid).await);
        t.emulator.clear_calls(&t.account(n));
    }
    api.delete("fraud", &Default::default()).await.unwrap();
    t.wait_gone(&api, "fraud").await;
    for n in 1..=3 {
        assert_eq!(controller_deletes(&t, n), Vec::<String>::new(), "account {}", t.account(n));
        assert_eq!(owned_resources(&t, &t.account(n), &uid).await, before[n as usize - 1], "account {}", t.account(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_paused_environment_waits_until_it_is_unpaused() {
    let t = TestEnv::new("delete-paused").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let uid = env.metadata.uid.unwrap();
    let pause = |value: Option<&str>| serde_json::json!({"metadata": {"annotations": {"sagekeeper.io/paused": value}}});
    api.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&pause(Some("true"))))
        .await
        .unwrap();
    t.wait_condition(&api, "fraud", "Reconciling", "False", Some("Paused")).await;
    let before = owned_resources(&t, &t.account(1), &uid).await;
    for n in 1..=3 {
        t.emulator.clear_calls(&t.account(n));
    }

    api.delete("fraud", &Default::default()).await.unwrap();
    // The deletion is seen (a watch event), and nothing is torn down while paused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = api.get("fraud").await.expect("still there while paused");
    assert!(held.metadata.deletion_timestamp.is_some());
    for n in 1..=3 {
        assert_eq!(controller_deletes(&t, n), Vec::<String>::new(), "account {}", t.account(n));
    }
    assert_eq!(owned_resources(&t, &t.account(1), &uid).await, before);

    api.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&pause(None))).await.unwrap();
    t.wait_gone(&api, "fraud").await;
    for n in [2, 3] {
        assert_eq!(owned_resources(&t, &t.account(n), &uid).await, nothing(), "account {}", t.account(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_violation_during_teardown_is_pending_not_stalled() {
    let t = TestEnv::new("delete-dependency").await;
    // Waits are looked at again after the pending interval (the default is 10 s).
    let _controller = t.controller_with(|s| s.pending_interval = Duration::from_secs(1), None).await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let uid = env.metadata.uid.unwrap();
    // Something still drains in the staging VPC: AWS refuses to delete it, three times.
    let fault = t.emulator.fault(serde_json::json!({
        "operation": "DeleteVpc", "code": "DependencyViolation", "account": t.account(2), "count": 3,
        "message": "The vpc has dependencies and cannot be deleted."
    }));

    api.delete("fraud", &Default::default()).await.unwrap();
    let refused = format!("{}: DependencyViolation: ", t.name("staging"));
    // Other waits come first (the domain deleting); the refusal shows as one more wait.
    let waiting = eventually(Duration::from_secs(60), "the DependencyViolation reported", || async {
        let env = api.get("fraud").await.unwrap();
        let ready = conditions::find(env.conditions(), "Ready")?;
        ready.message.starts_with(&refused).then_some(env)
    })
    .await;
    let condition = |type_: &str| conditions::find(waiting.conditions(), type_).unwrap().clone();
    let (reconciling, stalled) = (condition("Reconciling"), condition("Stalled"));
    assert_eq!((reconciling.status.as_str(), reconciling.reason.as_str()), ("True", "DeletionPending"));
    assert_eq!(stalled.status, "False", "a busy resource is a wait: {}", stalled.message);
    t.wait_gone(&api, "fraud").await;
    assert!(t.emulator.faults().iter().all(|f| f["id"] != fault.as_str()), "all three refusals were used");
    assert_eq!(owned_resources(&t, &t.account(2), &uid).await, nothing());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_reaches_only_accounts_the_status_records_and_that_still_admit_the_namespace() {
    let t = TestEnv::new("delete-tenancy").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    ready_account(&t, "staging", 2, &t.namespace).await;
    ready_account(&t, "prod", 3, &t.namespace).await;
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &environment(&t, "fraud", "dev", &[("staging", "staging")])).await.unwrap();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let uid = env.metadata.uid.unwrap();

    // Paused, the spec gains production (never converged there), then the environment is deleted.
    let patch = |value: serde_json::Value| kube::api::Patch::Merge(value);
    let pp = kube::api::PatchParams::default();
    api.patch("fraud", &pp, &patch(serde_json::json!({"metadata": {"annotations": {"sagekeeper.io/paused": "true"}}})))
        .await
        .unwrap();
    t.wait_condition(&api, "fraud", "Reconciling", "False", Some("Paused")).await;
    let targets = serde_json::json!({"spec": {"targetAccounts": {"production": [t.name("prod")]}}});
    api.patch("fraud", &pp, &patch(targets)).await.unwrap();
    // And the staging account stops admitting the namespace.
    let elsewhere = serde_json::json!({"spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "elsewhere"}}}});
    t.accounts().patch(&t.name("staging"), &pp, &patch(elsewhere)).await.unwrap();
    for n in 1..=3 {
        t.emulator.clear_calls(&t.account(n));
    }
    api.delete("fraud", &Default::default()).await.unwrap();
    api.patch("fraud", &pp, &patch(serde_json::json!({"metadata": {"annotations": {"sagekeeper.io/paused": null}}})))
        .await
        .unwrap();

    // Deletion waits, naming the account that no longer admits the namespace; nothing happens
    // there, nor in production, which the status never recorded.
    let waiting = eventually(Duration::from_secs(30), "deletion to wait for the staging account", || async {
        let env = api.get("fraud").await.ok()?;
        let ready = conditions::find(env.conditions(), "Ready")?.clone();
        (ready.reason == "AccountNotPermitted").then_some(ready)
    })
    .await;
    assert!(waiting.message.contains(&t.name("staging")), "{}", waiting.message);
    // Calls of the controller's session there, besides the AwsAccount's own checks of it.
    let touched = |n: u32| {
        let calls = t.emulator.calls(&t.account(n));
        let own_checks = ["GetCallerIdentity", "GetPolicy"];
        calls
            .into_iter()
            .filter(|c| c.caller.ends_with("/sagekeeper") && !own_checks.contains(&c.operation.as_str()))
            .count()
    };
    assert_eq!(touched(2), 0, "nothing in the staging account that no longer admits the namespace");
    assert_ne!(owned_resources(&t, &t.account(2), &uid).await, nothing(), "staging keeps everything");

    // Admitted again, the environment is torn down in dev and staging, and production is never called.
    let back = serde_json::json!({"spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": t.namespace}}}});
    t.accounts().patch(&t.name("staging"), &pp, &patch(back)).await.unwrap();
    t.wait_gone(&api, "fraud").await;
    for n in [1, 2] {
        assert_eq!(owned_resources(&t, &t.account(n), &uid).await, nothing(), "account {}", t.account(n));
    }
    assert_eq!(touched(3), 0, "production, which the status never recorded, was called");
}
