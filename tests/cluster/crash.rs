//! Crash safety: the controller killed right after each create call in turn, then restarted
//! with nothing in memory, ends with exactly one of each resource.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sagekeeper_api::DataScienceEnvironment;
use sagekeeper_api::naming::OWNER_UID_TAG;
use sagekeeper_tests::{TestEnv, eventually};
use serde_json::json;

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
    let dev = count(&t, &t.account(1), &uid).await;
    let expected_dev = [
        ("vpc", 1),
        ("subnets", 2),
        ("route tables", 2),
        ("security groups", 2),
        ("endpoints", 13),
        ("keys", 3),
        ("aliases", 3),
        ("roles", 5),
        ("buckets", 2),
        ("domains", 1),
        ("user profiles", 2),
    ];
    assert_eq!(dev, expected_dev.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect::<BTreeMap<_, _>>(), "dev account");
    for account in [t.account(2), t.account(3)] {
        let target = count(&t, &account, &uid).await;
        let expected = [
            ("vpc", 1),
            ("subnets", 2),
            ("route tables", 2),
            ("security groups", 2),
            ("endpoints", 9),
            ("keys", 1),
            ("aliases", 1),
            ("roles", 1),
            ("buckets", 1),
            ("domains", 0),
            ("user profiles", 0),
        ];
        assert_eq!(
            target,
            expected.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect::<BTreeMap<_, _>>(),
            "account {account}"
        );
    }
}

async fn create_environment(t: &TestEnv) {
    let env = crate::environments::environment_manifest(t);
    t.api::<DataScienceEnvironment>().create(&Default::default(), &env).await.unwrap();
}

/// How many of each resource carry this owner uid in one account.
async fn count(t: &TestEnv, account: &str, uid: &str) -> BTreeMap<String, usize> {
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
        if tags.tags().iter().any(|t| t.tag_key() == OWNER_UID_TAG && t.tag_value() == uid) {
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
    counts
}
