//! Drift: a converged environment's drift check only reads; edits made behind its back are put
//! back at the next check, with an event.

use std::time::Duration;

use sagekeeper_api::DataScienceEnvironment;
use sagekeeper_controller::metrics::Metrics;
use sagekeeper_tests::emulator::is_read;
use sagekeeper_tests::{TestEnv, eventually};

use crate::environments::full_environment;

async fn converged(t: &TestEnv) -> DataScienceEnvironment {
    full_environment(t).await;
    let api = t.api::<DataScienceEnvironment>();
    t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await
}

/// Every call the three accounts received since `clear`.
fn calls(t: &TestEnv) -> Vec<(String, String)> {
    (1..=3).flat_map(|n| t.emulator.calls(&t.account(n))).map(|c| (c.account, c.operation)).collect()
}

/// Waits until no account has seen a call for a second and no environment pass is in flight:
/// the passes that reaching Ready triggered (its own status write wakes it once more) are over,
/// including one whose last call is slow to answer on a busy machine.
async fn quiet(t: &TestEnv, metrics: &Metrics) {
    let count = || (1..=3).map(|n| t.emulator.calls(&t.account(n)).len()).sum::<usize>();
    let mut last = count();
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = count();
        if now == last && passes_in_flight(metrics) == 0 {
            return;
        }
        last = now;
    }
}

/// Environment passes started (`sagekeeper_reconciles_total`) and not yet timed
/// (`sagekeeper_reconcile_duration_seconds` counts a pass when it ends).
fn passes_in_flight(metrics: &Metrics) -> u64 {
    let families = metrics.registry.gather();
    let (mut started, mut ended) = (0, 0);
    for family in &families {
        let environment = family
            .get_metric()
            .iter()
            .filter(|s| s.get_label().iter().any(|l| l.name() == "kind" && l.value() == "DataScienceEnvironment"));
        match family.name() {
            "sagekeeper_reconciles_total" => {
                started += environment.map(|s| s.get_counter().get_value() as u64).sum::<u64>()
            }
            "sagekeeper_reconcile_duration_seconds" => {
                ended += environment.map(|s| s.get_histogram().get_sample_count()).sum::<u64>()
            }
            _ => {}
        }
    }
    started.saturating_sub(ended)
}

/// Pokes the environment and waits until the controller has looked at it again (its drift
/// check makes at least the domain read in the dev account); returns what `mark` says right
/// after the call log is cleared.
async fn drift_check<T>(t: &TestEnv, metrics: &Metrics, mark: impl FnOnce() -> T) -> T {
    quiet(t, metrics).await;
    for n in 1..=3 {
        t.emulator.clear_calls(&t.account(n));
    }
    let marked = mark();
    t.poke(&t.api::<DataScienceEnvironment>(), "fraud").await;
    eventually(Duration::from_secs(30), "a drift check", || async {
        let seen = t.emulator.calls(&t.account(1));
        seen.iter().any(|c| c.operation == "DescribeDomain").then_some(())
    })
    .await;
    quiet(t, metrics).await;
    marked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converged_drift_check_makes_only_read_calls() {
    let t = TestEnv::new("drift-reads-only").await;
    let controller = t.controller().await;
    converged(&t).await;
    // The observe metric is read right after the call log is cleared, so a pass that slips in
    // is counted on both sides.
    let observed_before = drift_check(&t, &controller.metrics, || observe_reads(&controller.metrics)).await;
    let all = calls(&t);
    let writes: Vec<_> = all.iter().filter(|(_, op)| !is_read(op)).collect();
    assert!(writes.is_empty(), "a converged drift check wrote: {writes:?}");
    // Batched: one DescribeVpcEndpoints per account, not one per endpoint.
    for n in 1..=3 {
        let account = t.account(n);
        let endpoints = all.iter().filter(|(a, op)| *a == account && op == "DescribeVpcEndpoints").count();
        assert_eq!(endpoints, 1, "DescribeVpcEndpoints calls in account {account}: {all:?}");
    }
    let mut by_operation = std::collections::BTreeMap::<&str, usize>::new();
    for (_, op) in &all {
        *by_operation.entry(op).or_default() += 1;
    }
    eprintln!("drift check: {} read calls: {by_operation:?}", all.len());
    // The steps asked the pass's snapshot: each batched family read (an account's network,
    // found by DescribeVpcs; a VPC's endpoints; the domain) is one observe read in the metric.
    let family_reads: usize = ["DescribeVpcs", "DescribeVpcEndpoints", "DescribeDomain"]
        .iter()
        .map(|op| by_operation.get(op).copied().unwrap_or(0))
        .sum();
    let observed = observe_reads(&controller.metrics) - observed_before;
    assert_eq!(observed as usize, family_reads, "observe reads vs family calls: {by_operation:?}");
}

/// `sagekeeper_observe_asks_total{kind="DataScienceEnvironment",answer="read"}`.
fn observe_reads(metrics: &Metrics) -> u64 {
    let families = metrics.registry.gather();
    families
        .iter()
        .filter(|m| m.name() == "sagekeeper_observe_asks_total")
        .flat_map(|m| m.get_metric())
        .filter(|s| {
            let label = |name: &str| s.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_owned());
            label("kind").as_deref() == Some("DataScienceEnvironment") && label("answer").as_deref() == Some("read")
        })
        .map(|s| s.get_counter().get_value() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_behind_its_back_are_repaired_with_an_event() {
    let t = TestEnv::new("drift-repair").await;
    let controller = t.controller().await;
    let env = converged(&t).await;
    let status = env.status.unwrap();
    let network = status.network.unwrap();
    let dev = t.clients(&t.account(1)).await;
    let data_bucket = status.storage.unwrap().data_bucket.unwrap();
    let domain = status.studio.unwrap().domain_id.unwrap();
    let s3_key = status.encryption.unwrap().s3_key_arn.unwrap();
    let workloads = network.security_group_ids["workloads"].clone();
    let sts_endpoint = network.vpc_endpoint_ids["sts"].clone();
    quiet(&t, &controller.metrics).await;

    // 1. An interface endpoint deleted.
    dev.ec2.delete_vpc_endpoints().vpc_endpoint_ids(&sts_endpoint).send().await.unwrap();
    // 2. The data bucket policy replaced by one that lets anything through.
    let open = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "Open", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", t.account(1))}, "Action": "s3:*",
        "Resource": format!("arn:aws:s3:::{data_bucket}/*")}]});
    dev.s3.put_bucket_policy().bucket(&data_bucket).policy(open.to_string()).send().await.unwrap();
    // 3. Key rotation switched off.
    dev.kms.disable_key_rotation().key_id(&s3_key).send().await.unwrap();
    // 4. The workloads group's self-rule revoked.
    let self_rule = sagekeeper_aws::sdk::ec2::types::IpPermission::builder()
        .ip_protocol("-1")
        .user_id_group_pairs(sagekeeper_aws::sdk::ec2::types::UserIdGroupPair::builder().group_id(&workloads).build())
        .build();
    dev.ec2.revoke_security_group_ingress().group_id(&workloads).ip_permissions(self_rule).send().await.unwrap();
    // 5. A user profile deleted.
    dev.sagemaker.delete_user_profile().domain_id(&domain).user_profile_name("alice").send().await.unwrap();

    t.poke(&t.api::<DataScienceEnvironment>(), "fraud").await;
    eventually(Duration::from_secs(60), "every edit repaired", || async {
        let endpoints = dev.ec2.describe_vpc_endpoints().filters(
            sagekeeper_aws::sdk::ec2::types::Filter::builder()
                .name("vpc-id")
                .values(network.vpc_id.clone().unwrap())
                .build(),
        );
        let endpoints = endpoints.send().await.unwrap();
        let sts_back = endpoints.vpc_endpoints().iter().any(|e| {
            e.service_name() == Some("com.amazonaws.us-east-1.sts")
                && e.state().is_some_and(|s| s.as_str().eq_ignore_ascii_case("available"))
        });
        let policy = dev.s3.get_bucket_policy().bucket(&data_bucket).send().await.unwrap();
        let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        let policy_back = sagekeeper_policy::find_statement(&policy, "DenyOutsideVpcEndpoints").is_some()
            && sagekeeper_policy::find_statement(&policy, "Open").is_none();
        let rotation_back =
            dev.kms.get_key_rotation_status().key_id(&s3_key).send().await.unwrap().key_rotation_enabled();
        let group = dev.ec2.describe_security_groups().group_ids(&workloads).send().await.unwrap();
        let rule_back = group.security_groups()[0]
            .ip_permissions()
            .iter()
            .any(|p| p.user_id_group_pairs().iter().any(|g| g.group_id() == Some(workloads.as_str())));
        let profiles = dev.sagemaker.list_user_profiles().domain_id_equals(&domain).send().await.unwrap();
        let alice_back = profiles.user_profiles().iter().any(|p| p.user_profile_name() == Some("alice"));
        let all = [sts_back, policy_back, rotation_back, rule_back, alice_back];
        all.iter().all(|ok| *ok).then_some(()).or_else(|| {
            eprintln!("endpoint, policy, rotation, rule, profile back: {all:?}");
            None
        })
    })
    .await;
    // The event follows the pass's last write, so it may come a moment after the repair shows.
    eventually(Duration::from_secs(30), "a DriftRepaired event", || async {
        let reasons = t.event_reasons("fraud").await;
        reasons.iter().any(|r| r == "DriftRepaired").then_some(()).or_else(|| {
            eprintln!("event reasons so far: {reasons:?}");
            None
        })
    })
    .await;
    t.wait_condition(&t.api::<DataScienceEnvironment>(), "fraud", "Ready", "True", None).await;
}
