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
    let (started, ended) = passes(metrics);
    started.saturating_sub(ended)
}

/// Environment passes started and ended.
fn passes(metrics: &Metrics) -> (u64, u64) {
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
    (started, ended)
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
    // Batched: one listing of each account's networks (DescribeVpcs, then one describe per
    // resource type, the VPC endpoints among them), not a call per resource.
    for n in 1..=3 {
        let account = t.account(n);
        for listed in [
            "DescribeVpcs",
            "DescribeSubnets",
            "DescribeRouteTables",
            "DescribeSecurityGroups",
            "DescribeInternetGateways",
            "DescribeNatGateways",
            "DescribeAddresses",
            "DescribeVpcEndpoints",
        ] {
            let made = all.iter().filter(|(a, op)| *a == account && op == listed).count();
            assert_eq!(made, 1, "{listed} calls in account {account}: {all:?}");
        }
        // One listing of its flow logs, deciding for its VPC.
        let listings = all.iter().filter(|(a, op)| *a == account && op == "DescribeFlowLogs").count();
        assert_eq!(listings, 1, "DescribeFlowLogs calls in account {account}: {all:?}");
        // And one listing of its roles, each shown as planned: no role is read on its own.
        let listings = all.iter().filter(|(a, op)| *a == account && op == "GetAccountAuthorizationDetails").count();
        assert_eq!(listings, 1, "GetAccountAuthorizationDetails calls in account {account}: {all:?}");
    }
    let per_role: Vec<_> =
        all.iter().filter(|(_, op)| ["GetRole", "ListRolePolicies", "GetRolePolicy"].contains(&op.as_str())).collect();
    assert!(per_role.is_empty(), "roles read one by one although the listing showed them as planned: {per_role:?}");
    let prefix_lists = all.iter().filter(|(_, op)| op == "DescribeManagedPrefixLists").count();
    assert_eq!(prefix_lists, 0, "the S3 prefix list is read once per account, not per check");
    let mut by_operation = std::collections::BTreeMap::<&str, usize>::new();
    for (_, op) in &all {
        *by_operation.entry(op).or_default() += 1;
    }
    eprintln!("drift check: {} read calls: {by_operation:?}", all.len());
    // The steps asked the pass's snapshot: each batched family read (an account's networks,
    // whose VPCs one DescribeVpcs finds; the domain; an account's roles) is one observe read in
    // the metric; so is each account's flow log listing.
    let family_reads: usize = ["DescribeVpcs", "DescribeDomain", "GetAccountAuthorizationDetails", "DescribeFlowLogs"]
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

/// Reads that only a Full-depth drift check makes: settings that guard neither data nor access,
/// key state, and the tags of keys this process has found carrying its owner tags (a bucket's
/// tags are read at Security depth only before its drift is repaired).
const SETTINGS_READS: [&str; 6] = [
    "DescribeKey",
    "GetBucketOwnershipControls",
    "GetBucketVersioning",
    "GetKeyRotationStatus",
    "DescribeVpcAttribute",
    "ListResourceTags",
];

/// What of an account's networks only a Full-depth check lists (a Security-depth one lists
/// route tables, security groups and VPC endpoints, and takes the rest from the last Full one;
/// a network it finds otherwise than planned is read afresh, all of it, before any write).
const NETWORK_SETTINGS_READS: [&str; 5] =
    ["DescribeVpcs", "DescribeSubnets", "DescribeInternetGateways", "DescribeNatGateways", "DescribeAddresses"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_checks_read_security_settings_every_time_and_the_rest_every_sixth_time() {
    let t = TestEnv::new("drift-tiers").await;
    let controller = t.controller_with(|s| s.full_check_every = 6, None).await;
    let env = converged(&t).await;
    let status = env.status.unwrap();
    let dev = t.clients(&t.account(1)).await;
    let storage = status.storage.unwrap();
    let data_bucket = storage.data_bucket.unwrap();
    let models_bucket = storage.models_bucket.unwrap();
    let s3_key = status.encryption.unwrap().s3_key_arn.unwrap();
    // The first check after converging lists the accounts' networks in full (the converge's
    // writes made the last complete listing stale); the ones after it list them in part.
    drift_check(&t, &controller.metrics, || ()).await;

    // Behind its back: the data bucket opened up and SSH opened to the world on the workloads
    // group (security), key rotation off and the models bucket's component tag gone (settings).
    let component_tag = || async {
        let tags = dev.s3.get_bucket_tagging().bucket(&models_bucket).send().await.unwrap();
        tags.tag_set().iter().any(|t| t.key() == "sagekeeper.io/component")
    };
    let kept: Vec<_> = dev.s3.get_bucket_tagging().bucket(&models_bucket).send().await.unwrap().tag_set().to_vec();
    let kept = kept.into_iter().filter(|t| t.key() != "sagekeeper.io/component").collect();
    let tagging = sagekeeper_aws::sdk::s3::types::Tagging::builder().set_tag_set(Some(kept)).build().unwrap();
    dev.s3.put_bucket_tagging().bucket(&models_bucket).tagging(tagging).send().await.unwrap();
    assert!(!component_tag().await);
    let open = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "Open", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", t.account(1))}, "Action": "s3:*",
        "Resource": format!("arn:aws:s3:::{data_bucket}/*")}]});
    dev.s3.put_bucket_policy().bucket(&data_bucket).policy(open.to_string()).send().await.unwrap();
    dev.kms.disable_key_rotation().key_id(&s3_key).send().await.unwrap();
    let workloads = status.network.as_ref().unwrap().security_group_ids["workloads"].clone();
    let ssh = ssh_from_anywhere();
    dev.ec2.authorize_security_group_ingress().group_id(&workloads).ip_permissions(ssh).send().await.unwrap();
    let ssh_open = || async {
        let group = dev.ec2.describe_security_groups().group_ids(&workloads).send().await.unwrap();
        group.security_groups()[0].ip_permissions().iter().any(|p| p.from_port() == Some(22))
    };
    let policy_open = || async {
        let policy = dev.s3.get_bucket_policy().bucket(&data_bucket).send().await.unwrap();
        let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        sagekeeper_policy::find_statement(&policy, "Open").is_some()
    };
    let rotation_on =
        || async { dev.kms.get_key_rotation_status().key_id(&s3_key).send().await.unwrap().key_rotation_enabled() };

    // The next check is at Security depth too: the policy and the group are put back at once,
    // rotation is not looked at.
    drift_check(&t, &controller.metrics, || ()).await;
    let first = calls(&t);
    let settings: Vec<_> = first.iter().filter(|(_, op)| SETTINGS_READS.contains(&op.as_str())).collect();
    assert!(settings.is_empty(), "a Security-depth check read settings: {settings:?}");
    assert!(!policy_open().await, "the opened bucket policy should be repaired at the first check");
    assert!(!ssh_open().await, "the opened security group should be repaired at the first check");
    // Networks: the target accounts' were listed in part; the dev account's too, and then,
    // found otherwise than planned, read afresh (one DescribeVpcs) before the repair.
    let listed = |account: &str, op: &str| first.iter().filter(|(a, o)| a == account && o == op).count();
    for n in 2..=3 {
        for op in NETWORK_SETTINGS_READS {
            assert_eq!(listed(&t.account(n), op), 0, "a Security-depth check listed {op}: {first:?}");
        }
        for op in ["DescribeRouteTables", "DescribeSecurityGroups", "DescribeVpcEndpoints"] {
            assert_eq!(listed(&t.account(n), op), 1, "a Security-depth check should list {op}: {first:?}");
        }
    }
    assert_eq!(listed(&t.account(1), "DescribeVpcs"), 1, "the drifted network is read afresh: {first:?}");
    assert!(!rotation_on().await, "rotation is a setting: a Security-depth check leaves it for a Full one");
    assert!(!component_tag().await, "tags are a setting: a Security-depth check leaves them for a Full one");
    // Its one tag read was of the opened bucket, before the write that closed it: drift is
    // repaired only on a bucket just seen to be ours.
    let tag_reads = first.iter().filter(|(_, op)| op == "GetBucketTagging").count();
    assert_eq!(tag_reads, 1, "a Security-depth check reads the tags of the drifted bucket only: {first:?}");
    let security_reads = first.iter().filter(|(_, op)| is_read(op)).count();

    // Within the next five checks comes a Full one: it reads the settings and turns rotation
    // back on. (The passes its own status writes trigger count as checks too, hence "within".)
    let mut full = None;
    for _ in 0..5 {
        drift_check(&t, &controller.metrics, || ()).await;
        let seen = calls(&t);
        if seen.iter().any(|(_, op)| op == "GetKeyRotationStatus") {
            full = Some(seen);
            break;
        }
        assert!(!rotation_on().await, "rotation came back without a Full check reading it");
    }
    let full = full.expect("every sixth check after converging should be at Full depth");
    for op in SETTINGS_READS.iter().chain(&["GetBucketTagging"]) {
        assert!(full.iter().any(|(_, o)| o == op), "a Full check should read {op}: {full:?}");
    }
    for (n, op) in (1..=3).flat_map(|n| NETWORK_SETTINGS_READS.map(|op| (n, op))) {
        let account = t.account(n);
        assert!(full.iter().any(|(a, o)| *a == account && o == op), "a Full check should list {op}: {full:?}");
    }
    eventually(Duration::from_secs(30), "rotation back on", || async { rotation_on().await.then_some(()) }).await;
    eventually(Duration::from_secs(30), "component tag back", || async { component_tag().await.then_some(()) }).await;
    let full_reads = full.iter().filter(|(_, op)| is_read(op)).count();
    eprintln!("drift check reads: Security depth {security_reads}, Full depth {full_reads}");
    assert!(security_reads < full_reads, "Security {security_reads} vs Full {full_reads} reads");
}

/// An ingress rule opening SSH to the world: drift of a security group.
fn ssh_from_anywhere() -> sagekeeper_aws::sdk::ec2::types::IpPermission {
    use sagekeeper_aws::sdk::ec2::types::{IpPermission, IpRange};
    let world = IpRange::builder().cidr_ip("0.0.0.0/0").build();
    IpPermission::builder().ip_protocol("tcp").from_port(22).to_port(22).ip_ranges(world).build()
}

/// The execution role of "fraud" and its inline policy as sagekeeper put it.
async fn execution_policy(t: &TestEnv, env: &DataScienceEnvironment) -> (String, String) {
    let arn = env.status.as_ref().and_then(|s| s.identity.as_ref()).and_then(|i| i.execution_role_arn.clone());
    let name = arn.expect("status.identity.executionRoleArn").rsplit('/').next().unwrap().to_owned();
    let iam = t.clients(&t.account(1)).await.iam;
    let policy = iam.get_role_policy().role_name(&name).policy_name("sagekeeper").send().await.unwrap();
    (name, sagekeeper_policy::parse(policy.policy_document()).unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_account_listings_never_cause_a_write_and_drift_they_hide_is_repaired_once_they_age() {
    let t = TestEnv::new("drift-stale-listing").await;
    // Long enough that on a loaded machine two passes fit in it (step 3 relies on that).
    let age = Duration::from_secs(60);
    let controller = t.controller_with(|s| s.account_read_age = age, None).await;
    let fraud = converged(&t).await;
    // A second environment in the same dev account: its passes list the account's roles and
    // networks too.
    let other = format!(
        "apiVersion: sagekeeper.io/v1alpha1\nkind: DataScienceEnvironment\nmetadata: {{name: other}}\nspec:\n  account: {}\n  region: us-east-1\n  network: {{availabilityZones: [us-east-1a, us-east-1b]}}\n  studio: {{enabled: false}}\n",
        t.name("dev")
    );
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &t.manifest(&other, true)).await.unwrap();
    t.wait_condition_for(&api, "other", "Ready", "True", None, Duration::from_secs(120)).await;
    let (role, planned) = execution_policy(&t, &fraud).await;
    let workloads =
        fraud.status.as_ref().and_then(|s| s.network.as_ref()).unwrap().security_group_ids["workloads"].clone();
    let dev_clients = t.clients(&t.account(1)).await;
    let (iam, ec2) = (dev_clients.iam.clone(), dev_clients.ec2.clone());
    // The drift: the execution role's policy opened, and SSH opened to the world on fraud's
    // workloads group; `drift(false)` puts both back by hand.
    let open = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
    let ssh = ssh_from_anywhere();
    let drift = |on: bool| {
        let (iam, ec2, role, workloads, ssh) = (iam.clone(), ec2.clone(), role.clone(), workloads.clone(), ssh.clone());
        let document = if on { open.to_string() } else { planned.clone() };
        async move {
            let put = iam.put_role_policy().role_name(role).policy_name("sagekeeper").policy_document(document);
            put.send().await.unwrap();
            if on {
                ec2.authorize_security_group_ingress().group_id(workloads).ip_permissions(ssh).send().await.unwrap();
            } else {
                ec2.revoke_security_group_ingress().group_id(workloads).ip_permissions(ssh).send().await.unwrap();
            }
        }
    };
    let ssh_open = || {
        let (ec2, workloads) = (ec2.clone(), workloads.clone());
        async move {
            let group = ec2.describe_security_groups().group_ids(workloads).send().await.unwrap();
            group.security_groups()[0].ip_permissions().iter().any(|p| p.from_port() == Some(22))
        }
    };
    let dev = t.account(1);
    let ops = |op: &str| t.emulator.calls(&dev).iter().filter(|c| c.operation == op).count();
    let look = |name: &'static str| {
        let (t, api, metrics) = (&t, &api, &controller.metrics);
        async move {
            quiet(t, metrics).await;
            for n in 1..=3 {
                t.emulator.clear_calls(&t.account(n));
            }
            let before = passes(metrics).0;
            t.poke(api, name).await;
            eventually(Duration::from_secs(30), "a pass", || async { (passes(metrics).0 > before).then_some(()) })
                .await;
            quiet(t, metrics).await;
        }
    };
    // A listing of the account's networks reads every VPC's endpoints in one call; a fresh
    // read of one network reads it alone (DescribeVpcs, then one describe per type).
    let listings = || (ops("GetAccountAuthorizationDetails"), ops("DescribeVpcEndpoints"));

    // 1. Both drift; once the listings have aged out, the other environment's pass lists the
    //    account's roles and networks, the drift among them, and leaves fraud's alone.
    drift(true).await;
    tokio::time::sleep(age + Duration::from_secs(1)).await;
    look("other").await;
    assert_eq!(listings(), (1, 1), "one listing of the dev account's roles and one of its networks");
    let writes = t.emulator.controller_writes(&dev);
    assert!(!writes.contains(&"PutRolePolicy".to_owned()), "other wrote fraud's role: {writes:?}");
    assert!(!writes.contains(&"RevokeSecurityGroupIngress".to_owned()), "other wrote fraud's group: {writes:?}");
    // 2. Someone puts both back, so those listings are stale. Fraud's pass takes them (young
    //    enough), sees its role and group otherwise than planned, reads them afresh, and writes
    //    nothing.
    drift(false).await;
    look("fraud").await;
    assert_eq!(listings(), (0, 0), "fraud's pass should take the listings other's pass made");
    assert_eq!(ops("GetRole"), 1, "only the role the listing showed otherwise is read afresh");
    assert_eq!(ops("DescribeVpcs"), 1, "fraud's network, which the listing showed otherwise, is read afresh");
    let writes = t.emulator.controller_writes(&dev);
    assert!(writes.is_empty(), "a stale listing caused writes: {writes:?}");
    // 3. Listings that show everything as planned hide drift made after them, for their age at
    //    most: the next pass after they age out repairs it.
    tokio::time::sleep(age + Duration::from_secs(1)).await;
    look("fraud").await;
    assert_eq!(listings(), (1, 1), "aged-out listings are read again");
    assert_eq!(ops("GetRole"), 0, "a listing showing every role as planned needs no role read");
    assert_eq!(ops("DescribeVpcs"), 1, "a listing showing the network as planned needs no read of it alone");
    drift(true).await;
    look("fraud").await;
    assert_eq!(execution_policy(&t, &fraud).await.1, sagekeeper_policy::parse(&open.to_string()).unwrap().to_string());
    assert!(ssh_open().await, "hidden by the young listing");
    tokio::time::sleep(age + Duration::from_secs(1)).await;
    look("fraud").await;
    assert_eq!(execution_policy(&t, &fraud).await.1, planned, "the role is repaired once the listing aged out");
    assert!(!ssh_open().await, "the group is repaired once the listing aged out");
    let writes = t.emulator.controller_writes(&dev);
    assert!(writes.contains(&"PutRolePolicy".to_owned()) && writes.contains(&"RevokeSecurityGroupIngress".to_owned()));
}
