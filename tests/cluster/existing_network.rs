//! Existing networks (`spec.network.existing`, `spec.targetNetwork.existing`): a VPC a network
//! team made is checked before any write, used with only sagekeeper's own additions, and left
//! exactly as it was on deletion; each refusal stalls naming the subnet and writes nothing.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use sagekeeper_api::DataScienceEnvironment;
use sagekeeper_api::conditions;
use sagekeeper_aws::sdk::ec2::error::ProvideErrorMetadata;
use sagekeeper_aws::sdk::ec2::types::{Filter, IpPermission, IpRange, Tag, VpcEndpointType};
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::test_env::AccountClients;
use sagekeeper_tests::test_env::HasConditions;

use crate::environments::{nothing, owned_resources};
use crate::references::ready_account;

/// A network team's VPC: private subnets in us-east-1a and us-east-1b, each with its own route
/// table, and (where asked) an `sts` interface endpoint of the team's own.
struct TeamNetwork {
    vpc: String,
    subnets: Vec<String>,
    route_tables: Vec<String>,
    sts_endpoint: Option<String>,
}

/// The error code of a refused call.
fn code<T, E: ProvideErrorMetadata>(result: &Result<T, E>) -> Option<String> {
    result.as_ref().err().and_then(|e| e.code().map(str::to_owned))
}

fn vpc_filter(vpc: &str) -> Filter {
    Filter::builder().name("vpc-id").values(vpc).build()
}

/// The team's VPC, lent to the environments of namespace `lent_to` (by its tag) when given.
async fn team_network(c: &AccountClients, cidr_prefix: &str, with_sts: bool, lent_to: Option<&str>) -> TeamNetwork {
    let vpc = c.ec2.create_vpc().cidr_block(format!("{cidr_prefix}.0.0/16")).send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    if let Some(namespace) = lent_to {
        let lend = Tag::builder().key(sagekeeper_api::naming::LENT_TO_TAG).value(namespace).build();
        c.ec2.create_tags().resources(&vpc).tags(lend).send().await.unwrap();
    }
    let mut subnets = Vec::new();
    let mut route_tables = Vec::new();
    for (i, zone) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
        let subnet = c
            .ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("{cidr_prefix}.{}.0/24", i * 16))
            .availability_zone(*zone)
            .send()
            .await
            .unwrap();
        let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_owned();
        let table = c.ec2.create_route_table().vpc_id(&vpc).send().await.unwrap();
        let table = table.route_table().unwrap().route_table_id().unwrap().to_owned();
        c.ec2.associate_route_table().route_table_id(&table).subnet_id(&subnet).send().await.unwrap();
        subnets.push(subnet);
        route_tables.push(table);
    }
    let sts_endpoint = match with_sts {
        false => None,
        true => {
            let created = c
                .ec2
                .create_vpc_endpoint()
                .vpc_id(&vpc)
                .vpc_endpoint_type(VpcEndpointType::Interface)
                .service_name("com.amazonaws.us-east-1.sts")
                .subnet_ids(&subnets[0])
                .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#)
                .send()
                .await
                .unwrap();
            Some(created.vpc_endpoint().unwrap().vpc_endpoint_id().unwrap().to_owned())
        }
    };
    TeamNetwork { vpc, subnets, route_tables, sts_endpoint }
}

/// Everything in and of the VPC as the emulator reports it, sorted, sagekeeper's own things
/// left out only by what it could not have touched: the VPC, its subnets, route tables (routes
/// and associations), security groups, VPC endpoints (with policies) and flow logs.
async fn state_of(c: &AccountClients, vpc: &str) -> String {
    let vpcs = c.ec2.describe_vpcs().vpc_ids(vpc).send().await.unwrap();
    let subnets = c.ec2.describe_subnets().filters(vpc_filter(vpc)).send().await.unwrap();
    let tables = c.ec2.describe_route_tables().filters(vpc_filter(vpc)).send().await.unwrap();
    let groups = c.ec2.describe_security_groups().filters(vpc_filter(vpc)).send().await.unwrap();
    let endpoints = c.ec2.describe_vpc_endpoints().filters(vpc_filter(vpc)).send().await.unwrap();
    let flow_logs = c
        .ec2
        .describe_flow_logs()
        .filter(Filter::builder().name("resource-id").values(vpc).build())
        .send()
        .await
        .unwrap();
    let live_endpoints: Vec<String> = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state().is_some_and(|s| !s.as_str().eq_ignore_ascii_case("deleted")))
        .map(|e| format!("{e:?}"))
        .collect();
    let mut parts: Vec<String> = vpcs.vpcs().iter().map(|v| format!("{v:?}")).collect();
    // Free addresses count the network interfaces of endpoints, made and deleted.
    let subnets = subnets.subnets().iter().map(|s| {
        let mut s = s.clone();
        s.available_ip_address_count = None;
        s
    });
    let mut rest: Vec<String> = (subnets.map(|s| format!("{s:?}")))
        .chain(tables.route_tables().iter().map(|t| format!("{t:?}")))
        .chain(groups.security_groups().iter().map(|g| format!("{g:?}")))
        .chain(live_endpoints)
        .chain(flow_logs.flow_logs().iter().map(|f| format!("{f:?}")))
        .collect();
    rest.sort();
    parts.extend(rest);
    parts.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_on_existing_networks_converges_and_leaves_them_exactly_as_they_were() {
    let t = TestEnv::new("existing-network").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    ready_account(&t, "prod", 3, &t.namespace).await;
    let (dev, prod) = (t.clients(&t.account(1)).await, t.clients(&t.account(3)).await);
    let dev_net = team_network(&dev, "10.20", true, Some(&t.namespace)).await;
    let prod_net = team_network(&prod, "10.30", false, Some(&t.namespace)).await;
    let (dev_before, prod_before) = (state_of(&dev, &dev_net.vpc).await, state_of(&prod, &prod_net.vpc).await);
    let env: DataScienceEnvironment = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1
kind: DataScienceEnvironment
metadata: {{name: borrowed}}
spec:
  account: {dev}
  region: us-east-1
  network:
    existing: {{vpcId: {dev_vpc}, privateSubnetIds: [{dev_a}, {dev_b}]}}
  studio:
    userProfiles: [{{name: alice, persona: DataScientist}}]
  targetAccounts:
    production: [{prod}]
  targetNetwork:
    existing:
      {prod}: {{vpcId: {prod_vpc}, privateSubnetIds: [{prod_a}, {prod_b}]}}
  deleteDataOnDelete: true
",
            dev = t.name("dev"),
            prod = t.name("prod"),
            dev_vpc = dev_net.vpc,
            dev_a = dev_net.subnets[0],
            dev_b = dev_net.subnets[1],
            prod_vpc = prod_net.vpc,
            prod_a = prod_net.subnets[0],
            prod_b = prod_net.subnets[1],
        ),
        true,
    );
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &env).await.unwrap();
    let env = t.wait_condition_for(&api, "borrowed", "Ready", "True", None, Duration::from_secs(180)).await;
    let status = env.status.clone().unwrap();
    let uid = env.metadata.uid.clone().unwrap();

    // The dev network is the team's: its VPC and subnets, the team's sts endpoint, ours for the
    // rest, and nothing else of ours but two security groups and the endpoints.
    let net = status.network.clone().unwrap();
    assert_eq!(net.vpc_id.as_deref(), Some(dev_net.vpc.as_str()));
    assert_eq!(net.private_subnet_ids, dev_net.subnets);
    assert_eq!(net.availability_zones, ["us-east-1a", "us-east-1b"]);
    assert_eq!(net.vpc_endpoint_ids.get("sts"), dev_net.sts_endpoint.as_ref(), "the team's sts endpoint is used");
    let sts = dev_net.sts_endpoint.clone().unwrap();
    assert!(net.not_guaranteed.iter().any(|n| n.contains(&sts) && n.contains("policy")), "{:?}", net.not_guaranteed);
    assert!(net.not_guaranteed.iter().any(|n| n.starts_with("egress of VPC")), "{:?}", net.not_guaranteed);
    // No flow log of a VPC others use too: it would record their workloads.
    assert!(net.flow_logs.is_none() && net.not_guaranteed.iter().any(|n| n.starts_with("flow logs of VPC")));
    let network_ready = conditions::find(env.conditions(), "NetworkReady").unwrap();
    assert!(network_ready.message.contains("not guaranteed on a borrowed network"), "{}", network_ready.message);
    assert!(network_ready.message.contains(&sts), "{}", network_ready.message);
    let owned = owned_resources(&t, &t.account(1), &uid).await;
    assert_eq!((owned["vpc"], owned["subnets"], owned["route tables"]), (0, 0, 0), "{owned:?}");
    assert_eq!(owned["security groups"], 2, "{owned:?}");
    assert_eq!(owned["endpoints"], 12, "every default endpoint but sts, which the team made: {owned:?}");
    // Our S3 gateway serves the team's route tables; the team's endpoint kept its policy.
    let s3 = net.vpc_endpoint_ids.get("s3").unwrap();
    let gateway = dev.ec2.describe_vpc_endpoints().vpc_endpoint_ids(s3).send().await.unwrap();
    let mut tables = gateway.vpc_endpoints()[0].route_table_ids().to_vec();
    tables.sort();
    let mut team_tables = dev_net.route_tables.clone();
    team_tables.sort();
    assert_eq!(tables, team_tables);
    let team_sts = dev.ec2.describe_vpc_endpoints().vpc_endpoint_ids(&sts).send().await.unwrap();
    assert!(team_sts.vpc_endpoints()[0].policy_document().unwrap().contains(r#""Action":"*""#), "left to its owner");

    // The target account: the team's VPC there, with what a SageMaker endpoint needs of ours.
    let target = &status.target_accounts[0];
    assert_eq!(target.vpc_id.as_deref(), Some(prod_net.vpc.as_str()));
    assert_eq!(target.private_subnet_ids, prod_net.subnets);
    assert!(!target.not_guaranteed.is_empty() && target.flow_logs.is_none());
    let owned = owned_resources(&t, &t.account(3), &uid).await;
    assert_eq!((owned["vpc"], owned["subnets"], owned["route tables"]), (0, 0, 0), "{owned:?}");
    assert_eq!(owned["endpoints"], 9, "the S3 gateway and eight interface endpoints: {owned:?}");

    // sagekeeper's own role can change nothing of the borrowed network (its policy changes only
    // what carries sagekeeper's tag), whatever a spec names.
    let deployer = t.clients_as_controller(&t.account(1)).await;
    let ec2 = &deployer.ec2;
    let default_group = dev.ec2.describe_security_groups().filters(vpc_filter(&dev_net.vpc));
    let default_group = default_group.filters(Filter::builder().name("group-name").values("default").build());
    let default_group = default_group.send().await.unwrap().security_groups()[0].group_id().unwrap().to_owned();
    let open =
        IpPermission::builder().ip_protocol("-1").ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build()).build();
    let attempts = [
        ("delete a subnet", code(&ec2.delete_subnet().subnet_id(&dev_net.subnets[0]).send().await)),
        ("delete a route table", code(&ec2.delete_route_table().route_table_id(&dev_net.route_tables[0]).send().await)),
        ("delete the VPC", code(&ec2.delete_vpc().vpc_id(&dev_net.vpc).send().await)),
        (
            "open the VPC's default group",
            code(&ec2.authorize_security_group_ingress().group_id(&default_group).ip_permissions(open).send().await),
        ),
        (
            "rewrite the owner's endpoint policy",
            code(&ec2.modify_vpc_endpoint().vpc_endpoint_id(&sts).reset_policy(true).send().await),
        ),
        ("delete the owner's endpoint", code(&ec2.delete_vpc_endpoints().vpc_endpoint_ids(&sts).send().await)),
    ];
    for (what, code) in attempts {
        assert_eq!(code.as_deref(), Some("UnauthorizedOperation"), "sagekeeper's role could {what}");
    }

    // A route to the internet its owner adds later stalls the environment (nothing of the
    // network changes) until the route goes.
    let igw = dev.ec2.create_internet_gateway().send().await.unwrap();
    let igw = igw.internet_gateway().unwrap().internet_gateway_id().unwrap().to_owned();
    dev.ec2.attach_internet_gateway().internet_gateway_id(&igw).vpc_id(&dev_net.vpc).send().await.unwrap();
    let table = &dev_net.route_tables[1];
    let route = dev.ec2.create_route().route_table_id(table).destination_cidr_block("0.0.0.0/0");
    route.gateway_id(&igw).send().await.unwrap();
    t.poke(&api, "borrowed").await;
    let env = t.wait_condition(&api, "borrowed", "Stalled", "True", Some("InvalidConfiguration")).await;
    let stalled = conditions::find(env.conditions(), "NetworkReady").unwrap();
    assert!(stalled.message.contains(table.as_str()) && stalled.message.contains(&igw), "{}", stalled.message);
    let delete = dev.ec2.delete_route().route_table_id(table).destination_cidr_block("0.0.0.0/0");
    delete.send().await.unwrap();
    dev.ec2.detach_internet_gateway().internet_gateway_id(&igw).vpc_id(&dev_net.vpc).send().await.unwrap();
    dev.ec2.delete_internet_gateway().internet_gateway_id(&igw).send().await.unwrap();
    t.poke(&api, "borrowed").await;
    t.wait_condition(&api, "borrowed", "Ready", "True", None).await;

    // Dropping the production account and its existing network in one change cleans up there
    // as on a borrowed network (status remembers it was one): the VPC is as it was.
    let patch = serde_json::json!({"spec": {"targetAccounts": null, "targetNetwork": {"existing": null}}});
    api.patch("borrowed", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let env = t.wait_condition(&api, "borrowed", "Ready", "True", None).await;
    assert!(env.status.unwrap().target_accounts.is_empty(), "production cleaned up");
    assert_eq!(state_of(&prod, &prod_net.vpc).await, prod_before, "the production VPC as the team left it");
    assert_eq!(owned_resources(&t, &t.account(3), &uid).await["security groups"], 0);

    // Deletion takes away only what sagekeeper made: the network is as it was.
    api.delete("borrowed", &Default::default()).await.unwrap();
    t.wait_gone(&api, "borrowed").await;
    assert_eq!(state_of(&dev, &dev_net.vpc).await, dev_before, "the dev VPC as the team left it");
    assert_eq!(owned_resources(&t, &t.account(1), &uid).await["security groups"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refused_existing_network_stalls_naming_the_subnet_and_writes_nothing() {
    let t = TestEnv::new("existing-refused").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    let dev = t.clients(&t.account(1)).await;
    let team = team_network(&dev, "10.40", false, Some(&t.namespace)).await;
    let other = team_network(&dev, "10.50", false, Some(&t.namespace)).await;
    // A VPC of the account its owner did not lend to this namespace.
    let stray = team_network(&dev, "10.60", false, Some("team-next-door")).await;
    // The team's second subnet routes to the internet.
    let igw = dev.ec2.create_internet_gateway().send().await.unwrap();
    let igw = igw.internet_gateway().unwrap().internet_gateway_id().unwrap().to_owned();
    dev.ec2.attach_internet_gateway().internet_gateway_id(&igw).vpc_id(&team.vpc).send().await.unwrap();
    let route = dev.ec2.create_route().route_table_id(&team.route_tables[1]).destination_cidr_block("0.0.0.0/0");
    route.gateway_id(&igw).send().await.unwrap();
    // Another VPC is one sagekeeper made for some other environment.
    let taken = dev.ec2.create_tags().resources(&other.vpc);
    taken.tags(Tag::builder().key("sagekeeper.io/owner-uid").value("someone-else").build()).send().await.unwrap();
    let before = state_of(&dev, &team.vpc).await;
    let cases = [
        (
            "foreign",
            format!("[{}, {}]", team.subnets[0], other.subnets[0]),
            "",
            vec![other.subnets[0].clone(), format!("belongs to {}", other.vpc)],
        ),
        (
            "internet",
            format!("[{}, {}]", team.subnets[0], team.subnets[1]),
            "",
            vec![team.subnets[1].clone(), team.route_tables[1].clone(), igw.clone(), "0.0.0.0/0".into()],
        ),
        (
            "zone",
            format!("[{}]", team.subnets[0]),
            "availabilityZones: [us-east-1b]\n    ",
            vec![team.subnets[0].clone(), "is in us-east-1a".into()],
        ),
        ("taken", format!("[{}]", other.subnets[0]), "", vec![other.vpc.clone(), "someone-else".into()]),
        ("stray", format!("[{}]", stray.subnets[0]), "", vec![stray.vpc.clone(), "is not lent to namespace".into()]),
    ];
    let api = t.api::<DataScienceEnvironment>();
    for (name, subnets, zones, _) in &cases {
        let vpc = match *name {
            "taken" => &other.vpc,
            "stray" => &stray.vpc,
            _ => &team.vpc,
        };
        let env: DataScienceEnvironment = t.manifest(
            &format!(
                "apiVersion: sagekeeper.io/v1alpha1
kind: DataScienceEnvironment
metadata: {{name: {name}}}
spec:
  account: {dev}
  region: us-east-1
  network:
    {zones}existing: {{vpcId: {vpc}, privateSubnetIds: {subnets}}}
",
                dev = t.name("dev"),
            ),
            true,
        );
        api.create(&Default::default(), &env).await.unwrap();
    }
    for (name, _, _, named) in &cases {
        let env = t.wait_condition(&api, name, "Stalled", "True", Some("InvalidConfiguration")).await;
        let stalled = conditions::find(env.conditions(), "Stalled").unwrap();
        assert!(stalled.message.starts_with("InvalidConfiguration: "), "{name}: {}", stalled.message);
        let field = match *name {
            "taken" | "stray" => "spec.network.existing.vpcId",
            _ => "spec.network.existing.privateSubnetIds",
        };
        assert!(stalled.message.contains(field), "{name}: {}", stalled.message);
        for part in named {
            assert!(stalled.message.contains(part.as_str()), "{name}: {part} in {}", stalled.message);
        }
        let uid = env.metadata.uid.clone().unwrap();
        assert_eq!(owned_resources(&t, &t.account(1), &uid).await, nothing(), "{name} wrote nothing");
    }
    assert_eq!(state_of(&dev, &team.vpc).await, before, "the team's VPC untouched");

    // Switching between an existing network and one sagekeeper makes is refused at admission.
    let patch = serde_json::json!({"spec": {"network": {"existing": null}}});
    let refused = api.patch("zone", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap_err();
    assert!(refused.to_string().contains("spec.network.existing cannot be added or removed"), "{refused}");
    let patch = serde_json::json!({"spec": {"network": {"existing": {"vpcId": other.vpc, "privateSubnetIds": [other.subnets[0]]}}}});
    let refused = api.patch("zone", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap_err();
    assert!(refused.to_string().contains("spec.network.existing is immutable"), "{refused}");
    // So is giving an account that already serves a stage an existing network.
    let patch = serde_json::json!({"spec": {"targetAccounts": {"production": ["somewhere"]}}});
    api.patch("zone", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let borrowed = serde_json::json!({"vpcId": other.vpc, "privateSubnetIds": [other.subnets[0]]});
    let patch = serde_json::json!({"spec": {"targetNetwork": {"existing": {"somewhere": borrowed}}}});
    let refused = api.patch("zone", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap_err();
    assert!(
        refused.to_string().contains("an account that already serves a stage keeps the network it has"),
        "{refused}"
    );
}
