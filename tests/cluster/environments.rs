//! DataScienceEnvironment against the emulator: a full environment in three accounts.

use std::time::Duration;

use sagekeeper_api::{DataScienceEnvironment, conditions};
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::test_env::HasConditions;

use crate::references::ready_account;

/// Three Ready accounts (dev 1, staging 2, production 3) and the full example environment.
pub async fn full_environment(t: &TestEnv) -> DataScienceEnvironment {
    ready_account(t, "dev", 1, &t.namespace).await;
    ready_account(t, "staging", 2, &t.namespace).await;
    ready_account(t, "prod", 3, &t.namespace).await;
    let env = environment_manifest(t);
    t.api::<DataScienceEnvironment>().create(&Default::default(), &env).await.unwrap();
    env
}

/// The full example environment (two zones, default endpoints, two user profiles, staging and
/// production) on the accounts `full_environment` makes.
pub fn environment_manifest(t: &TestEnv) -> DataScienceEnvironment {
    t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1
kind: DataScienceEnvironment
metadata: {{name: fraud}}
spec:
  account: {dev}
  region: us-east-1
  network: {{availabilityZones: [us-east-1a, us-east-1b]}}
  studio:
    userProfiles:
      - {{name: alice, persona: DataScientist}}
      - {{name: bob, persona: TeamAdmin}}
  targetAccounts:
    staging: [{staging}]
    production: [{prod}]
  tags: {{cost-center: '4711'}}
",
            dev = t.name("dev"),
            staging = t.name("staging"),
            prod = t.name("prod")
        ),
        true,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_environment_converges_to_ready() {
    let t = TestEnv::new("full-environment").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    for c in env.conditions() {
        assert!(c.type_ == "Reconciling" || c.type_ == "Stalled" || c.status == "True", "{c:?}");
    }
    let _ = conditions::READY;
}
