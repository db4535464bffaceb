//! DataScienceEnvironment against the emulator: a full environment in three accounts.

use std::time::Duration;

use std::collections::BTreeMap;

use sagekeeper_api::naming::OWNER_UID_TAG;
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

/// What the full example environment owns in its dev account.
pub fn expected_in_dev() -> BTreeMap<String, usize> {
    counts(&[
        ("vpc", 1),
        ("subnets", 2),
        ("route tables", 2),
        ("security groups", 2),
        ("endpoints", 13),
        ("keys", 3),
        ("aliases", 3),
        ("roles", 6),
        ("buckets", 2),
        ("domains", 1),
        ("user profiles", 2),
        ("log groups", 1),
        ("flow logs", 1),
    ])
}

/// What it owns in each target account.
pub fn expected_in_target() -> BTreeMap<String, usize> {
    counts(&[
        ("vpc", 1),
        ("subnets", 2),
        ("route tables", 2),
        ("security groups", 2),
        ("endpoints", 9),
        ("keys", 1),
        ("aliases", 1),
        ("roles", 2),
        ("buckets", 1),
        ("domains", 0),
        ("user profiles", 0),
        ("log groups", 1),
        ("flow logs", 1),
    ])
}

/// Nothing at all, as after a complete teardown.
pub fn nothing() -> BTreeMap<String, usize> {
    expected_in_dev().into_keys().map(|k| (k, 0)).collect()
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// How many of each resource carry this owner uid in one account.
pub async fn owned_resources(t: &TestEnv, account: &str, uid: &str) -> BTreeMap<String, usize> {
    use sagekeeper_aws::sdk::ec2::types::Filter;
    let c = t.clients(account).await;
    let owned = || Filter::builder().name(format!("tag:{OWNER_UID_TAG}")).values(uid).build();
    let mut counts = BTreeMap::new();
    let vpcs = c.ec2.describe_vpcs().filters(owned()).send().await.unwrap();
    counts.insert("vpc".into(), vpcs.vpcs().len());
    counts.insert("subnets".into(), c.ec2.describe_subnets().filters(owned()).send().await.unwrap().subnets().len());
    counts.insert(
        "route tables".into(),
        c.ec2.describe_route_tables().filters(owned()).send().await.unwrap().route_tables().len(),
    );
    let groups = c.ec2.describe_security_groups().filters(owned()).send().await.unwrap();
    counts.insert("security groups".into(), groups.security_groups().len());
    let endpoints = c.ec2.describe_vpc_endpoints().filters(owned()).send().await.unwrap();
    let live = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state().is_some_and(|s| !s.as_str().eq_ignore_ascii_case("deleted")));
    counts.insert("endpoints".into(), live.count());
    let mut keys = 0;
    for key in c.kms.list_keys().send().await.unwrap().keys() {
        let tags = c.kms.list_resource_tags().key_id(key.key_id().unwrap()).send().await.unwrap();
        let ours = tags.tags().iter().any(|t| t.tag_key() == OWNER_UID_TAG && t.tag_value() == uid);
        // A key scheduled for deletion is on its way out, not left behind.
        let meta = c.kms.describe_key().key_id(key.key_id().unwrap()).send().await.unwrap().key_metadata.unwrap();
        let live = meta.key_state().is_some_and(|s| s.as_str() != "PendingDeletion");
        if ours && live {
            keys += 1;
        }
    }
    counts.insert("keys".into(), keys);
    let aliases = c.kms.list_aliases().send().await.unwrap();
    counts.insert(
        "aliases".into(),
        aliases.aliases().iter().filter(|a| a.alias_name().is_some_and(|n| n.starts_with("alias/sagekeeper/"))).count(),
    );
    let roles = c.iam.list_roles().send().await.unwrap();
    counts.insert("roles".into(), roles.roles().iter().filter(|r| r.role_name().starts_with("sk-")).count());
    let buckets = c.s3.list_buckets().send().await.unwrap();
    let ours = buckets.buckets().iter().filter(|b| b.name().is_some_and(|n| n.contains(account))).count();
    counts.insert("buckets".into(), ours);
    let domains = c.sagemaker.list_domains().send().await.unwrap();
    counts.insert("domains".into(), domains.domains().len());
    let mut profiles = 0;
    for domain in domains.domains() {
        let listed =
            c.sagemaker.list_user_profiles().domain_id_equals(domain.domain_id().unwrap()).send().await.unwrap();
        profiles += listed.user_profiles().len();
    }
    counts.insert("user profiles".into(), profiles);
    let groups = c.logs.describe_log_groups().log_group_name_prefix("/sagekeeper/").send().await.unwrap();
    counts.insert("log groups".into(), groups.log_groups().len());
    let flow_logs = c.ec2.describe_flow_logs().filter(owned()).send().await.unwrap();
    counts.insert("flow logs".into(), flow_logs.flow_logs().len());
    counts
}
