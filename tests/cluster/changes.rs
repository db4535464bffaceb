//! Spec changes converge: interface endpoints, user profiles, target accounts, tags, and
//! internet access, each added and removed on a living environment.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use sagekeeper_api::DataScienceEnvironment;
use sagekeeper_aws::sdk::ec2::types::Filter;
use sagekeeper_tests::TestEnv;
use serde_json::json;

use crate::environments::{expected_in_target, full_environment, nothing, owned_resources};
use crate::references::ready_account;

async fn change(t: &TestEnv, patch: serde_json::Value) -> DataScienceEnvironment {
    let api = t.api::<DataScienceEnvironment>();
    api.patch("fraud", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_profiles_targets_tags_and_internet_access_follow_the_spec() {
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
    let dev = t.clients_as_controller(&t.account(1)).await;

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

    // Tags: a new tag reaches the resources.
    change(&t, json!({"spec": {"tags": {"cost-center": "4711", "team": "fraud"}}})).await;
    let tagged = dev.ec2.describe_vpcs().vpc_ids(&vpc).send().await.unwrap();
    let tags = tagged.vpcs()[0].tags();
    assert!(tags.iter().any(|t| t.key() == Some("team") && t.value() == Some("fraud")), "{tags:?}");
    let role = dev
        .iam
        .get_role()
        .role_name(
            env.status
                .as_ref()
                .unwrap()
                .identity
                .as_ref()
                .unwrap()
                .execution_role_arn
                .as_ref()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(role.role.unwrap().tags().iter().any(|t| t.key() == "team" && t.value() == "fraud"));

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
    for n in 1..=4 {
        t.assert_deployer_permitted(n);
    }
}
