//! Spec changes converge: interface endpoints, user profiles, target accounts, tags, personas
//! and internet access, each added and removed on a living environment.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use sagekeeper_api::DataScienceEnvironment;
use sagekeeper_aws::sdk::ec2::types::Filter;
use sagekeeper_aws::sdk::s3;
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::test_env::AccountClients;
use serde_json::json;

use crate::deletion::controller_deletes;
use crate::environments::{expected_in_target, full_environment, nothing, owned_resources};
use crate::references::ready_account;

async fn change(t: &TestEnv, patch: serde_json::Value) -> DataScienceEnvironment {
    let api = t.api::<DataScienceEnvironment>();
    api.patch("fraud", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_profiles_targets_and_internet_access_follow_the_spec() {
    let t = TestEnv::new("spec-changes").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    ready_account(&t, "qa", 4, &t.namespace).await;
    let env = t
        .wait_condition_for(
            &t.api::<DataScienceEnvironment>(),
            "fraud",
            "Ready",
            "True",
            None,
            Duration::from_secs(120),
        )
        .await;
    let uid = env.metadata.uid.clone().unwrap();
    let dev = t.clients(&t.account(1)).await;

    // Interface endpoints: ssm removed, glue added.
    let mut endpoints: Vec<&str> = vec![
        "sagemaker.api",
        "sagemaker.runtime",
        "sagemaker.featurestore-runtime",
        "sagemaker.metrics",
        "sts",
        "kms",
        "logs",
        "monitoring",
        "ecr.api",
        "ecr.dkr",
        "notebook",
        "glue",
    ];
    let env = change(&t, json!({"spec": {"network": {"vpcEndpoints": endpoints}}})).await;
    let ids = env.status.as_ref().unwrap().network.as_ref().unwrap().vpc_endpoint_ids.clone();
    endpoints.push("s3");
    let mut keys: Vec<&str> = ids.keys().map(String::as_str).collect();
    keys.sort();
    endpoints.sort();
    assert_eq!(keys, endpoints);
    let vpc = env.status.as_ref().unwrap().network.as_ref().unwrap().vpc_id.clone().unwrap();
    let live = dev
        .ec2
        .describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-id").values(&vpc).build())
        .send()
        .await
        .unwrap();
    let services: Vec<&str> = live
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state().is_some_and(|s| !s.as_str().eq_ignore_ascii_case("deleted")))
        .filter_map(|e| e.service_name())
        .collect();
    assert!(
        services.contains(&"com.amazonaws.us-east-1.glue") && !services.contains(&"com.amazonaws.us-east-1.ssm"),
        "{services:?}"
    );

    // User profiles: alice (the only DataScientist) goes, carol (TeamAdmin) comes; the
    // DataScientist role goes with its last user.
    let env = change(
        &t,
        json!({"spec": {"studio": {"userProfiles": [
        {"name": "bob", "persona": "TeamAdmin"}, {"name": "carol", "persona": "TeamAdmin"}]}}}),
    )
    .await;
    let studio = env.status.as_ref().unwrap().studio.clone().unwrap();
    assert_eq!(studio.user_profiles, ["bob", "carol"]);
    let listed =
        dev.sagemaker.list_user_profiles().domain_id_equals(studio.domain_id.clone().unwrap()).send().await.unwrap();
    let mut names: Vec<&str> = listed.user_profiles().iter().filter_map(|p| p.user_profile_name()).collect();
    names.sort();
    assert_eq!(names, ["bob", "carol"]);
    let personas = env.status.as_ref().unwrap().identity.as_ref().unwrap().persona_role_arns.clone();
    assert_eq!(personas.keys().collect::<Vec<_>>(), ["TeamAdmin"]);
    let roles = dev.iam.list_roles().send().await.unwrap();
    assert!(
        !roles.roles().iter().any(|r| r.role_name().ends_with("-data-scientist")),
        "the DataScientist role is gone"
    );

    // Target accounts: production (account 3) removed, qa (account 4) added.
    let env = change(
        &t,
        json!({"spec": {"targetAccounts": {"staging": [t.name("staging")], "production": null,
        "qa": [t.name("qa")]}}}),
    )
    .await;
    let stages: Vec<(String, String)> =
        env.status.as_ref().unwrap().target_accounts.iter().map(|a| (a.stage.clone(), a.account.clone())).collect();
    assert_eq!(stages, [("qa".to_owned(), t.name("qa")), ("staging".to_owned(), t.name("staging"))]);
    assert_eq!(owned_resources(&t, &t.account(3), &uid).await, nothing(), "production's account is cleaned up");
    assert_eq!(owned_resources(&t, &t.account(4), &uid).await, expected_in_target(), "qa's account is set up");
    let models = env.status.as_ref().unwrap().storage.as_ref().unwrap().models_bucket.clone().unwrap();
    let policy = dev.s3.get_bucket_policy().bucket(&models).send().await.unwrap();
    let policy = policy.policy().unwrap();
    assert!(
        policy.contains(&t.account(4)) && !policy.contains(&t.account(3)),
        "the models bucket follows the targets: {policy}"
    );

    // Internet access: NAT on, then off again.
    let env = change(&t, json!({"spec": {"network": {"internetAccess": "NatGateway"}}})).await;
    let public = env.status.as_ref().unwrap().network.as_ref().unwrap().public_subnet_ids.clone();
    assert_eq!(public.len(), 2);
    let nats = dev
        .ec2
        .describe_nat_gateways()
        .filter(Filter::builder().name("vpc-id").values(&vpc).build())
        .send()
        .await
        .unwrap();
    let available = nats.nat_gateways().iter().filter(|n| n.state().is_some_and(|s| s.as_str() == "available")).count();
    assert_eq!(available, 2, "one NAT gateway per zone");
    let igws =
        dev.ec2.describe_internet_gateways().filters(Filter::builder().name("attachment.vpc-id").values(&vpc).build());
    assert_eq!(igws.send().await.unwrap().internet_gateways().len(), 1);
    let env = change(&t, json!({"spec": {"network": {"internetAccess": "None"}}})).await;
    assert!(env.status.as_ref().unwrap().network.as_ref().unwrap().public_subnet_ids.is_empty());
    let nats = dev
        .ec2
        .describe_nat_gateways()
        .filter(Filter::builder().name("vpc-id").values(&vpc).build())
        .send()
        .await
        .unwrap();
    assert!(
        nats.nat_gateways().iter().all(|n| n.state().is_some_and(|s| s.as_str() == "deleted")),
        "NAT gateways gone"
    );
    let igws =
        dev.ec2.describe_internet_gateways().filters(Filter::builder().name("attachment.vpc-id").values(&vpc).build());
    assert!(igws.send().await.unwrap().internet_gateways().is_empty(), "internet gateway gone");
    let tables = dev
        .ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").values(&vpc).build())
        .send()
        .await
        .unwrap();
    let default_routes = tables
        .route_tables()
        .iter()
        .flat_map(|r| r.routes())
        .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .count();
    assert_eq!(default_routes, 0, "internet-free again: no default route anywhere");
}

/// The value of tag `key` on the VPC, a private subnet, the execution role, the s3 key, the
/// data bucket, the Studio domain and alice's profile, in that order.
async fn tag_everywhere(c: &AccountClients, env: &DataScienceEnvironment, key: &str) -> Vec<Option<String>> {
    let status = env.status.as_ref().unwrap();
    let network = status.network.as_ref().unwrap();
    let find = |pairs: Vec<(String, String)>| pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let ec2_tags = |tags: &[sagekeeper_aws::sdk::ec2::types::Tag]| {
        find(
            tags.iter()
                .map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned()))
                .collect(),
        )
    };
    let vpc = c.ec2.describe_vpcs().vpc_ids(network.vpc_id.clone().unwrap()).send().await.unwrap();
    let subnet = c.ec2.describe_subnets().subnet_ids(&network.private_subnet_ids[0]).send().await.unwrap();
    let role_arn = status.identity.as_ref().unwrap().execution_role_arn.clone().unwrap();
    let role = c.iam.list_role_tags().role_name(role_arn.rsplit('/').next().unwrap()).send().await.unwrap();
    let key_arn = status.encryption.as_ref().unwrap().s3_key_arn.clone().unwrap();
    let kms = c.kms.list_resource_tags().key_id(key_arn).send().await.unwrap();
    let bucket = status.storage.as_ref().unwrap().data_bucket.clone().unwrap();
    let s3 = c.s3.get_bucket_tagging().bucket(bucket).send().await.unwrap();
    let domain_id = status.studio.as_ref().unwrap().domain_id.clone().unwrap();
    let domain = c.sagemaker.describe_domain().domain_id(&domain_id).send().await.unwrap();
    let domain = c.sagemaker.list_tags().resource_arn(domain.domain_arn().unwrap()).send().await.unwrap();
    let profile = c.sagemaker.describe_user_profile().domain_id(&domain_id).user_profile_name("alice").send().await;
    let profile = profile.unwrap();
    let profile = c.sagemaker.list_tags().resource_arn(profile.user_profile_arn().unwrap()).send().await.unwrap();
    let sm_tags = |tags: &[sagekeeper_aws::sdk::sagemaker::types::Tag]| {
        find(
            tags.iter()
                .map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned()))
                .collect(),
        )
    };
    vec![
        ec2_tags(vpc.vpcs()[0].tags()),
        ec2_tags(subnet.subnets()[0].tags()),
        find(role.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()),
        find(kms.tags().iter().map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned())).collect()),
        find(s3.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()),
        sm_tags(domain.tags()),
        sm_tags(profile.tags()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_personas_follow_the_spec_and_others_tags_stay() {
    let t = TestEnv::new("tag-changes").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let dev = t.clients(&t.account(1)).await;
    let everywhere = |v: Option<&str>| vec![v.map(str::to_owned); 7];

    // Someone else's tag on the VPC and on the data bucket.
    let status = env.status.clone().unwrap();
    let vpc = status.network.as_ref().unwrap().vpc_id.clone().unwrap();
    let other = sagekeeper_aws::sdk::ec2::types::Tag::builder().key("finance:budget").value("ml").build();
    dev.ec2.create_tags().resources(&vpc).tags(other).send().await.unwrap();
    let bucket = status.storage.as_ref().unwrap().data_bucket.clone().unwrap();
    let mut set: Vec<_> = dev.s3.get_bucket_tagging().bucket(&bucket).send().await.unwrap().tag_set().to_vec();
    set.push(s3::types::Tag::builder().key("finance:budget").value("ml").build().unwrap());
    let tagging = s3::types::Tagging::builder().set_tag_set(Some(set)).build().unwrap();
    dev.s3.put_bucket_tagging().bucket(&bucket).tagging(tagging).send().await.unwrap();

    // Added, and a persona changed.
    let env = change(
        &t,
        json!({"spec": {"tags": {"cost-center": "4711", "team": "fraud"}, "studio": {"userProfiles": [
            {"name": "alice", "persona": "TeamAdmin"}, {"name": "bob", "persona": "TeamAdmin"}]}}}),
    )
    .await;
    assert_eq!(tag_everywhere(&dev, &env, "team").await, everywhere(Some("fraud")));
    let persona = tag_everywhere(&dev, &env, sagekeeper_policy::iam::PERSONA_TAG_KEY).await;
    assert_eq!(persona[6].as_deref(), Some("TeamAdmin"), "alice's persona tag follows her persona");
    assert_eq!(env.status.as_ref().unwrap().tag_keys, ["cost-center", "team"]);

    // Changed.
    let env = change(&t, json!({"spec": {"tags": {"cost-center": "4712", "team": "fraud"}}})).await;
    assert_eq!(tag_everywhere(&dev, &env, "cost-center").await, everywhere(Some("4712")));

    // Removed: gone from every resource, and forgotten once gone.
    let env = change(&t, json!({"spec": {"tags": {"cost-center": "4712", "team": null}}})).await;
    assert_eq!(tag_everywhere(&dev, &env, "team").await, everywhere(None));
    assert_eq!(env.status.as_ref().unwrap().tag_keys, ["cost-center"]);

    // Others' tags were left alone throughout.
    let vpc_tags = dev.ec2.describe_vpcs().vpc_ids(&vpc).send().await.unwrap();
    assert!(vpc_tags.vpcs()[0].tags().iter().any(|t| t.key() == Some("finance:budget")), "the VPC keeps it");
    let bucket_tags = dev.s3.get_bucket_tagging().bucket(&bucket).send().await.unwrap();
    assert!(bucket_tags.tag_set().iter().any(|t| t.key() == "finance:budget"), "the bucket keeps it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_moved_to_another_stage_keeps_everything_it_has() {
    let t = TestEnv::new("stage-move").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let uid = env.metadata.uid.clone().unwrap();
    let mut before = Vec::new();
    for n in [2, 3] {
        before.push(owned_resources(&t, &t.account(n), &uid).await);
        t.emulator.clear_calls(&t.account(n));
    }

    // Staging and production swap accounts.
    let swapped = json!({"spec": {"targetAccounts": {"staging": [t.name("prod")], "production": [t.name("staging")]}}});
    let env = change(&t, swapped).await;
    let stages: Vec<(String, String)> =
        env.status.unwrap().target_accounts.into_iter().map(|a| (a.account, a.stage)).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages.contains(&(t.name("prod"), "staging".into())), "{stages:?}");
    assert!(stages.contains(&(t.name("staging"), "production".into())), "{stages:?}");
    for (i, n) in [2, 3].into_iter().enumerate() {
        assert_eq!(controller_deletes(&t, n), Vec::<String>::new(), "account {}", t.account(n));
        assert_eq!(owned_resources(&t, &t.account(n), &uid).await, before[i], "account {}", t.account(n));
    }
}
