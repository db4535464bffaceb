//! Crash safety: the controller killed right after each create call in turn, then restarted
//! with nothing in memory, ends with exactly one of each resource.

use std::time::{Duration, Instant};

use sagekeeper_api::DataScienceEnvironment;
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
    let mut crashes = 0;
    loop {
        let fault = t.emulator.fault(json!({
            "operation": "*", "accounts": accounts, "armAfter": CREATES,
            "code": "InternalFailure", "httpStatus": 500, "message": "crash: the controller died here",
        }));
        // A fresh controller every time: nothing survives in memory, as after a real crash.
        let controller = t.controller_with(|s| s.pending_interval = Duration::from_secs(1), Some(1)).await;
        if crashes == 0 {
            create_environment(&t).await;
        }
        let hit = eventually(Duration::from_secs(60), "the next create, or Ready", || async {
            let fired = t.emulator.faults().into_iter().any(|f| f["id"] == fault && f["hits"].as_u64() > Some(0));
            let ready = api.get("fraud").await.ok().is_some_and(|e| {
                sagekeeper_api::conditions::is_ready(
                    e.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default(),
                    e.metadata.generation,
                )
            });
            (fired || ready).then_some(fired)
        })
        .await;
        controller.stop().await;
        t.emulator.remove_fault(&fault);
        if !hit {
            break;
        }
        crashes += 1;
        assert!(crashes < 400, "still creating after {crashes} crashes");
    }
    eprintln!("converged through {crashes} crashes in {:?}", started.elapsed());
    assert!(crashes >= 20, "only {crashes} crashes: the environment needs dozens of creates");

    let env = api.get("fraud").await.unwrap();
    let uid = env.metadata.uid.clone().unwrap();
    assert_eq!(owned_resources(&t, &t.account(1), &uid).await, expected_in_dev(), "dev account");
    for account in [t.account(2), t.account(3)] {
        assert_eq!(owned_resources(&t, &account, &uid).await, expected_in_target(), "account {account}");
    }
}

async fn create_environment(t: &TestEnv) {
    let env = crate::environments::environment_manifest(t);
    t.api::<DataScienceEnvironment>().create(&Default::default(), &env).await.unwrap();
}
