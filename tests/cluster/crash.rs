//! Crash safety: the controller killed right after each create call in turn, then restarted
//! with nothing in memory, ends with exactly one of each resource.

use std::time::{Duration, Instant};

use kube::Api;
use sagekeeper_api::naming::ProjectNames;
use sagekeeper_api::{DataScienceEnvironment, MLOpsProject};
use sagekeeper_tests::test_env::HasConditions;
use sagekeeper_tests::{TestEnv, eventually};
use serde_json::json;

use crate::environments::{expected_in_dev, expected_in_target, owned_resources};

/// Every operation that makes something (the calls after which a crash could leave an orphan).
const CREATES: &str = "Create*|AllocateAddress|AssociateRouteTable|Authorize*";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_each_create_leaves_exactly_one_of_each_resource() {
    let t = TestEnv::new("crash-safety").await;
    let accounts = [t.account(1), t.account(2), t.account(3)];
    // The accounts themselves come up under a normal controller.
    {
        let controller = t.controller().await;
        for (name, n) in [("dev", 1), ("staging", 2), ("prod", 3)] {
            crate::references::ready_account(&t, name, n, &t.namespace).await;
        }
        controller.stop().await;
    }
    let api = t.api::<DataScienceEnvironment>();
    let started = Instant::now();
    create_environment(&t).await;
    let crashes = crash_after_each(&t, json!(accounts), CREATES, &api, "fraud").await;
    eprintln!("converged through {crashes} crashes in {:?}", started.elapsed());
    assert!(crashes >= 20, "only {crashes} crashes: the environment needs dozens of creates");

    let env = api.get("fraud").await.unwrap();
    let uid = env.metadata.uid.clone().unwrap();
    assert_eq!(owned_resources(&t, &t.account(1), &uid).await, expected_in_dev(), "dev account");
    for account in [t.account(2), t.account(3)] {
        assert_eq!(owned_resources(&t, &account, &uid).await, expected_in_target(), "account {account}");
    }
}

/// Runs a fresh controller (nothing in memory, as after a real crash) again and again, each
/// killed right after the next call matching `arm_after` in `accounts` succeeded (the call
/// after it fails, and the controller is stopped), until the object `name` is Ready. Returns how
/// many crashes it took.
async fn crash_after_each<K: HasConditions>(
    t: &TestEnv,
    accounts: serde_json::Value,
    arm_after: &str,
    api: &Api<K>,
    name: &str,
) -> u32 {
    let mut crashes = 0;
    loop {
        let fault = t.emulator.fault(json!({
            "operation": "*", "accounts": accounts, "armAfter": arm_after,
            "code": "InternalFailure", "httpStatus": 500, "message": "crash: the controller died here",
        }));
        let controller = t.controller_with(|s| s.pending_interval = Duration::from_secs(1), Some(1)).await;
        let hit = eventually(Duration::from_secs(60), "the next write, or Ready", || async {
            let fired = t.emulator.faults().into_iter().any(|f| f["id"] == fault && f["hits"].as_u64() > Some(0));
            let ready = api
                .get(name)
                .await
                .ok()
                .is_some_and(|o| sagekeeper_api::conditions::is_ready(o.conditions(), o.meta().generation));
            (fired || ready).then_some(fired)
        })
        .await;
        controller.stop().await;
        t.emulator.remove_fault(&fault);
        if !hit {
            return crashes;
        }
        crashes += 1;
        assert!(crashes < 400, "still writing after {crashes} crashes");
    }
}

async fn create_environment(t: &TestEnv) {
    let env = crate::environments::environment_manifest(t);
    t.api::<DataScienceEnvironment>().create(&Default::default(), &env).await.unwrap();
}

/// Every project write after which a crash could leave an orphan or a second run.
const PROJECT_WRITES: &str =
    "CreateModelPackageGroup|PutModelPackageGroupPolicy|PutObject|CreatePipeline|StartPipelineExecution|AddTags";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_each_project_write_leaves_one_group_one_pipeline_and_one_run() {
    let t = TestEnv::new("project-crash").await;
    {
        let controller = t.controller().await;
        crate::projects::ready_environment(&t).await;
        controller.stop().await;
    }
    let dev = t.account(1);
    let api = t.api::<MLOpsProject>();
    crate::projects::create_project(&t, "churn", json!({})).await;
    let crashes = crash_after_each(&t, json!([dev]), PROJECT_WRITES, &api, "churn").await;
    eprintln!("the project converged through {crashes} crashes");
    // A group and its policy, beside three assets; then the pipeline, then the run: seven
    // writes, of which the group's two run side by side with the assets, so a crash can come
    // after two at once: at least five crashes.
    assert!(crashes >= 5, "only {crashes} crashes");

    let p = api.get("churn").await.unwrap();
    let name = crate::projects::pipeline_name(&p);
    let runs = crate::projects::runs(&t, &name).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let c = t.clients(&dev).await;
    let groups = c.sagemaker.list_model_package_groups().send().await.unwrap();
    let ours: Vec<_> = groups
        .model_package_group_summary_list()
        .iter()
        .filter(|g| {
            g.model_package_group_name() == Some(ProjectNames::new(&t.namespace, "churn").default_group().as_str())
        })
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    let pipelines = c.sagemaker.list_pipelines().send().await.unwrap();
    assert_eq!(pipelines.pipeline_summaries().len(), 1, "{:?}", pipelines.pipeline_summaries());
    let env = t.api::<DataScienceEnvironment>().get("fraud").await.unwrap();
    let bucket = env.status.unwrap().storage.unwrap().data_bucket.unwrap();
    let admin = t.clients(&dev).await;
    let listed = admin.s3.list_objects_v2().bucket(&bucket).prefix("projects/churn/").send().await.unwrap();
    assert_eq!(listed.contents().len(), 3, "the three template assets, once each");
}
