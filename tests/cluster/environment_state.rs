//! A converged DataScienceEnvironment as AWS holds it: the emulator's state in the dev account
//! and both target accounts, read back with the AWS SDK and checked against the contract
//! (api.md, DataScienceEnvironment): every resource and every policy statement it lists. Then
//! data access through the emulator's bucket-policy evaluation, and Studio's Pending window.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use sagekeeper_api::{DataScienceEnvironment, conditions};
use sagekeeper_aws::sdk::ec2::types::{Filter, IpPermission, VpcAttributeName};
use sagekeeper_aws::sdk::s3::error::ProvideErrorMetadata;
use sagekeeper_aws::sdk::s3::primitives::ByteStream;
use sagekeeper_aws::sdk::{ec2, iam, kms, s3, sagemaker};
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::test_env::HasConditions;
use serde_json::{Value, json};

use crate::environments::full_environment;

const REGION: &str = "us-east-1";
const VPC_CIDR: &str = "10.0.0.0/16";
const ZONES: [(&str, &str); 2] = [("us-east-1a", "10.0.0.0/19"), ("us-east-1b", "10.0.32.0/19")];

/// api.md's default interface endpoints (status keys; `notebook` is `aws.sagemaker.<region>.notebook`).
const DEV_INTERFACE_ENDPOINTS: [&str; 12] = [
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
    "ssm",
    "notebook",
];

/// What a SageMaker endpoint in a target account needs (api.md).
const TARGET_INTERFACE_ENDPOINTS: [&str; 8] =
    ["sagemaker.api", "sagemaker.runtime", "sts", "kms", "logs", "monitoring", "ecr.api", "ecr.dkr"];

/// The AWS-owned buckets the S3 gateway lets through besides the environment's own (api.md: the
/// ECR layer bucket and the SageMaker sample and tooling buckets of the region).
const AWS_OWNED_BUCKETS: [&str; 4] = [
    "prod-us-east-1-starport-layer-bucket",
    "sagemaker-example-files-prod-us-east-1",
    "sagemaker-sample-files",
    "jumpstart-cache-prod-us-east-1",
];

/// Using a key: what the account root must never be allowed.
const KEY_USE: [&str; 7] = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:CreateGrant",
];

// --- policy documents ------------------------------------------------------------------------

/// A policy as AWS returns it: JSON, or URL-encoded JSON (IAM).
fn parse_policy(raw: &str, what: &str) -> Value {
    let text = if raw.trim_start().starts_with('{') { raw.to_owned() } else { percent_decode(raw) };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: policy is not JSON ({e}): {raw}"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("percent-decoded policy is UTF-8")
}

fn pretty(doc: &Value) -> String {
    serde_json::to_string_pretty(doc).unwrap_or_default()
}

fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(list) => list.iter().collect(),
        Value::Object(_) => vec![&doc["Statement"]],
        _ => Vec::new(),
    }
}

/// The statement with this Sid, or a panic showing the whole document.
fn statement<'a>(doc: &'a Value, sid: &str, what: &str) -> &'a Value {
    statements(doc)
        .into_iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("{what}: no statement with Sid {sid} in\n{}", pretty(doc)))
}

/// A scalar or a list of strings, as a set.
fn strings(value: &Value) -> BTreeSet<String> {
    match value {
        Value::String(s) => [s.clone()].into(),
        Value::Array(items) => items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect(),
        Value::Null => BTreeSet::new(),
        other => [other.to_string()].into(),
    }
}

fn set<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> BTreeSet<String> {
    items.into_iter().map(|s| s.as_ref().to_owned()).collect()
}

/// The AWS principals of a statement (`*` for `"Principal": "*"`).
fn aws_principals(st: &Value) -> BTreeSet<String> {
    match &st["Principal"] {
        Value::String(s) => [s.clone()].into(),
        Value::Object(p) => p.get("AWS").map(strings).unwrap_or_default(),
        _ => BTreeSet::new(),
    }
}

fn service_principals(st: &Value) -> BTreeSet<String> {
    st["Principal"].get("Service").map(strings).unwrap_or_default()
}

/// `*` and `?` wildcards, case-insensitive (actions).
fn glob(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

/// Whether the statement's Action covers `action` (a NotAction statement covers everything it
/// does not list).
fn covers_action(st: &Value, action: &str) -> bool {
    if let Some(not) = st.get("NotAction") {
        return !strings(not).iter().any(|p| glob(p, action));
    }
    strings(&st["Action"]).iter().any(|p| glob(p, action))
}

fn covers_resource(st: &Value, resource: &str) -> bool {
    if let Some(not) = st.get("NotResource") {
        return !strings(not).iter().any(|p| glob(p, resource));
    }
    strings(&st["Resource"]).iter().any(|p| glob(p, resource))
}

/// Every (operator, key) of a statement's condition with its values; keys lower-cased (AWS
/// compares condition keys case-insensitively).
fn conditions_of(st: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(block)) = st.get("Condition") {
        for (operator, keys) in block {
            if let Value::Object(keys) = keys {
                for (key, values) in keys {
                    out.insert((operator.clone(), key.to_lowercase()), strings(values));
                }
            }
        }
    }
    out
}

fn is_deny(st: &Value) -> bool {
    st["Effect"] == "Deny"
}

fn is_allow(st: &Value) -> bool {
    st["Effect"] == "Allow"
}

// --- what the test expects -------------------------------------------------------------------

/// The environment's identity as its tags must carry it.
struct Owner {
    owner: String,
    uid: String,
}

fn check_tags(what: &str, tags: &BTreeMap<String, String>, owner: &Owner) {
    assert_eq!(
        tags.get("sagekeeper.io/owner"),
        Some(&owner.owner),
        "{what}: tag sagekeeper.io/owner should be {}; tags: {tags:?}",
        owner.owner
    );
    assert_eq!(
        tags.get("sagekeeper.io/owner-uid"),
        Some(&owner.uid),
        "{what}: tag sagekeeper.io/owner-uid should be the object's uid {}; tags: {tags:?}",
        owner.uid
    );
    assert!(
        tags.get("sagekeeper.io/component").is_some_and(|c| !c.is_empty()),
        "{what}: tag sagekeeper.io/component missing or empty; tags: {tags:?}"
    );
    assert_eq!(
        tags.get("cost-center").map(String::as_str),
        Some("4711"),
        "{what}: spec.tags cost-center=4711 missing; tags: {tags:?}"
    );
}

fn ec2_tags(tags: &[ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter().map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned())).collect()
}

fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or_default()
}

fn controller_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/sagekeeper-deployer")
}

fn service_name(key: &str) -> String {
    if key == "notebook" { format!("aws.sagemaker.{REGION}.notebook") } else { format!("com.amazonaws.{REGION}.{key}") }
}

fn bucket_arns(bucket: &str) -> [String; 2] {
    [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]
}

/// SDK clients signed as the account-admin identity of one account (exempt from IAM evaluation).
struct Clients {
    account: String,
    ec2: ec2::Client,
    iam: iam::Client,
    kms: kms::Client,
    s3: s3::Client,
    sm: sagemaker::Client,
}

async fn clients(t: &TestEnv, account: &str) -> Clients {
    let config = t.admin_config(account).await;
    Clients {
        account: account.to_owned(),
        ec2: ec2::Client::new(&config),
        iam: iam::Client::new(&config),
        kms: kms::Client::new(&config),
        s3: s3::Client::from_conf(s3::config::Builder::from(&config).force_path_style(true).build()),
        sm: sagemaker::Client::new(&config),
    }
}

// --- network -----------------------------------------------------------------------------------

/// One security group rule: protocol, port range (None for all traffic) and peer.
type Rule = (String, Option<(i32, i32)>, String);

fn rules(permissions: &[IpPermission]) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for p in permissions {
        let protocol = match p.ip_protocol().unwrap_or("-1") {
            "6" => "tcp".to_owned(),
            other => other.to_owned(),
        };
        let ports = match (protocol.as_str(), p.from_port(), p.to_port()) {
            ("-1", _, _) | (_, None, _) | (_, _, None) => None,
            (_, Some(from), Some(to)) => Some((from, to)),
        };
        let peers = p
            .user_id_group_pairs()
            .iter()
            .map(|g| format!("sg:{}", g.group_id().unwrap_or_default()))
            .chain(p.ip_ranges().iter().map(|r| format!("cidr:{}", r.cidr_ip().unwrap_or_default())))
            .chain(p.ipv6_ranges().iter().map(|r| format!("cidr6:{}", r.cidr_ipv6().unwrap_or_default())))
            .chain(p.prefix_list_ids().iter().map(|l| format!("pl:{}", l.prefix_list_id().unwrap_or_default())));
        out.extend(peers.map(|peer| (protocol.clone(), ports, peer)));
    }
    out
}

fn all_traffic(peer: String) -> Rule {
    ("-1".to_owned(), None, peer)
}

fn tcp(port: i32, peer: String) -> Rule {
    ("tcp".to_owned(), Some((port, port)), peer)
}

fn vpc_filter(vpc_id: &str) -> Filter {
    Filter::builder().name("vpc-id").values(vpc_id).build()
}

/// What the network check found.
struct Network {
    route_tables: Vec<String>,
    endpoints_group: String,
    /// Endpoint ids by status key (`s3` for the gateway).
    endpoint_ids: BTreeMap<String, String>,
}

/// Checks one account's network: the VPC and its DNS, private subnets in both zones each with
/// its own route table, nothing towards the internet, both security groups' exact rules, the
/// S3 gateway on every private route table with exactly `gateway_buckets` plus the AWS-owned
/// buckets, and exactly the `interfaces` endpoints with private DNS behind the endpoints group.
#[allow(clippy::too_many_arguments)]
async fn check_network(
    c: &Clients,
    what: &str,
    owner: &Owner,
    vpc_id: &str,
    subnet_ids: &[String],
    workloads: &str,
    interfaces: &[&str],
    gateway_buckets: &[String],
) -> Network {
    let ec2 = &c.ec2;
    // Exactly one VPC of this environment in the account.
    let owned = ec2
        .describe_vpcs()
        .filters(Filter::builder().name("tag:sagekeeper.io/owner-uid").values(&owner.uid).build())
        .send()
        .await
        .unwrap();
    let owned: Vec<&str> = owned.vpcs().iter().filter_map(|v| v.vpc_id()).collect();
    assert_eq!(owned, [vpc_id], "{what}: the environment should own exactly the VPC in status");
    let vpcs = ec2.describe_vpcs().vpc_ids(vpc_id).send().await.unwrap();
    let vpc = &vpcs.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some(VPC_CIDR), "{what}: VPC CIDR");
    check_tags(&format!("{what} VPC {vpc_id}"), &ec2_tags(vpc.tags()), owner);
    for attribute in [VpcAttributeName::EnableDnsSupport, VpcAttributeName::EnableDnsHostnames] {
        let out = ec2.describe_vpc_attribute().vpc_id(vpc_id).attribute(attribute.clone()).send().await.unwrap();
        let on = match attribute {
            VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
            _ => out.enable_dns_hostnames(),
        }
        .and_then(|v| v.value());
        assert_eq!(on, Some(true), "{what}: VPC {vpc_id} should have {attribute} on");
    }

    // Private subnets: one per zone, the /19 blocks in zone order, nothing else in the VPC.
    let subnets = ec2.describe_subnets().filters(vpc_filter(vpc_id)).send().await.unwrap();
    let found: BTreeSet<&str> = subnets.subnets().iter().filter_map(|s| s.subnet_id()).collect();
    assert_eq!(
        found,
        subnet_ids.iter().map(String::as_str).collect(),
        "{what}: the VPC should hold exactly the private subnets in status (internet-free: no public subnets)"
    );
    assert_eq!(subnet_ids.len(), ZONES.len(), "{what}: one private subnet per zone");
    for (id, (zone, cidr)) in subnet_ids.iter().zip(ZONES) {
        let subnet = subnets.subnets().iter().find(|s| s.subnet_id() == Some(id)).unwrap();
        assert_eq!(
            (subnet.availability_zone(), subnet.cidr_block()),
            (Some(zone), Some(cidr)),
            "{what}: private subnet {id} should be {cidr} in {zone}"
        );
        check_tags(&format!("{what} subnet {id}"), &ec2_tags(subnet.tags()), owner);
    }

    // Each private subnet has its own route table; no route leaves for the internet.
    let tables = ec2.describe_route_tables().filters(vpc_filter(vpc_id)).send().await.unwrap();
    let mut route_tables = Vec::new();
    for subnet in subnet_ids {
        let associated: Vec<_> = tables
            .route_tables()
            .iter()
            .filter(|rt| rt.associations().iter().any(|a| a.subnet_id() == Some(subnet)))
            .collect();
        assert_eq!(associated.len(), 1, "{what}: subnet {subnet} should be associated with exactly one route table");
        let rt = associated[0];
        let id = rt.route_table_id().unwrap_or_default().to_owned();
        assert!(
            !rt.associations().iter().any(|a| a.main() == Some(true)),
            "{what}: subnet {subnet} should have its own route table, not the VPC's main one ({id})"
        );
        check_tags(&format!("{what} route table {id}"), &ec2_tags(rt.tags()), owner);
        route_tables.push(id);
    }
    assert_ne!(route_tables[0], route_tables[1], "{what}: the private subnets should not share a route table");
    for rt in tables.route_tables() {
        for route in rt.routes() {
            assert!(
                route.destination_cidr_block() != Some("0.0.0.0/0")
                    && route.nat_gateway_id().is_none()
                    && !route.gateway_id().is_some_and(|g| g.starts_with("igw-")),
                "{what}: route table {} has a route to the internet: {route:?}",
                rt.route_table_id().unwrap_or_default()
            );
        }
    }
    let igws = ec2
        .describe_internet_gateways()
        .filters(Filter::builder().name("attachment.vpc-id").values(vpc_id).build())
        .send()
        .await
        .unwrap();
    assert!(igws.internet_gateways().is_empty(), "{what}: internet-free VPC has an internet gateway: {igws:?}");
    let nats = ec2.describe_nat_gateways().filter(vpc_filter(vpc_id)).send().await.unwrap();
    let live: Vec<_> = nats
        .nat_gateways()
        .iter()
        .filter(|n| !matches!(n.state().map(|s| s.as_str()), Some("deleted" | "deleting")))
        .collect();
    assert!(live.is_empty(), "{what}: internet-free VPC has NAT gateways: {live:?}");

    // Endpoints.
    let endpoints = ec2.describe_vpc_endpoints().filters(vpc_filter(vpc_id)).send().await.unwrap();
    let endpoints: Vec<_> = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| !e.state().is_some_and(|s| s.as_str().eq_ignore_ascii_case("deleted")))
        .collect();
    let mut endpoint_ids = BTreeMap::new();
    let services: Vec<String> = endpoints.iter().map(|e| e.service_name().unwrap_or_default().to_owned()).collect();
    let mut wanted: Vec<String> = interfaces.iter().map(|k| service_name(k)).collect();
    wanted.push(format!("com.amazonaws.{REGION}.s3"));
    assert_eq!(
        services.iter().cloned().collect::<BTreeSet<_>>(),
        wanted.iter().cloned().collect::<BTreeSet<_>>(),
        "{what}: VPC endpoints should be exactly the S3 gateway and the interface endpoints {interfaces:?}"
    );
    assert_eq!(services.len(), wanted.len(), "{what}: duplicate VPC endpoints: {services:?}");

    let s3_service = format!("com.amazonaws.{REGION}.s3");
    let gateway = endpoints.iter().find(|e| e.service_name() == Some(s3_service.as_str())).unwrap();
    let gateway_id = gateway.vpc_endpoint_id().unwrap_or_default().to_owned();
    assert_eq!(
        gateway.vpc_endpoint_type().map(|t| t.as_str()),
        Some("Gateway"),
        "{what}: the S3 endpoint {gateway_id} should be a gateway endpoint"
    );
    assert_eq!(
        set(gateway.route_table_ids()),
        set(&route_tables),
        "{what}: the S3 gateway {gateway_id} should be on every private route table"
    );
    check_tags(&format!("{what} S3 gateway endpoint {gateway_id}"), &ec2_tags(gateway.tags()), owner);
    let policy = parse_policy(
        gateway.policy_document().unwrap_or_else(|| panic!("{what}: S3 gateway {gateway_id} has no policy")),
        what,
    );
    check_gateway_policy(&policy, &format!("{what} S3 gateway {gateway_id} policy"), gateway_buckets);
    endpoint_ids.insert("s3".to_owned(), gateway_id);

    let mut groups = BTreeSet::new();
    for key in interfaces {
        let service = service_name(key);
        let e = endpoints.iter().find(|e| e.service_name() == Some(service.as_str())).unwrap();
        let id = e.vpc_endpoint_id().unwrap_or_default().to_owned();
        let label = format!("{what} endpoint {id} ({service})");
        assert_eq!(e.vpc_endpoint_type().map(|t| t.as_str()), Some("Interface"), "{label}: type");
        assert_eq!(e.private_dns_enabled(), Some(true), "{label}: private DNS should be enabled");
        assert_eq!(set(e.subnet_ids()), set(subnet_ids), "{label}: should be in every private subnet");
        let sgs: Vec<&str> = e.groups().iter().filter_map(|g| g.group_id()).collect();
        assert_eq!(sgs.len(), 1, "{label}: should be behind exactly the endpoints group, has {sgs:?}");
        groups.insert(sgs[0].to_owned());
        assert!(
            e.state().is_some_and(|s| s.as_str().eq_ignore_ascii_case("available")),
            "{label}: state {:?}",
            e.state()
        );
        check_tags(&label, &ec2_tags(e.tags()), owner);
        endpoint_ids.insert((*key).to_owned(), id);
    }
    assert_eq!(groups.len(), 1, "{what}: all interface endpoints should share one endpoints group: {groups:?}");
    let endpoints_group = groups.into_iter().next().unwrap();
    assert_ne!(endpoints_group, workloads, "{what}: the endpoints group must not be the workloads group");

    // Security groups: exact rules; no 0.0.0.0/0 in any group of the VPC but AWS's default one.
    let prefix_lists = ec2
        .describe_managed_prefix_lists()
        .filters(Filter::builder().name("prefix-list-name").values(format!("com.amazonaws.{REGION}.s3")).build())
        .send()
        .await
        .unwrap();
    let s3_prefix_list = prefix_lists.prefix_lists()[0].prefix_list_id().unwrap_or_default().to_owned();
    let all_groups = ec2.describe_security_groups().filters(vpc_filter(vpc_id)).send().await.unwrap();
    let group = |id: &str| {
        all_groups
            .security_groups()
            .iter()
            .find(|g| g.group_id() == Some(id))
            .unwrap_or_else(|| panic!("{what}: security group {id} is not in VPC {vpc_id}"))
    };
    let w = group(workloads);
    check_tags(&format!("{what} workloads group {workloads}"), &ec2_tags(w.tags()), owner);
    assert_eq!(
        rules(w.ip_permissions()),
        [all_traffic(format!("sg:{workloads}"))].into(),
        "{what}: workloads group {workloads} ingress should be only from itself"
    );
    assert_eq!(
        rules(w.ip_permissions_egress()),
        [all_traffic(format!("cidr:{VPC_CIDR}")), tcp(443, format!("pl:{s3_prefix_list}"))].into(),
        "{what}: workloads group {workloads} egress should be only to the VPC and tcp 443 to the S3 prefix list"
    );
    let e = group(&endpoints_group);
    check_tags(&format!("{what} endpoints group {endpoints_group}"), &ec2_tags(e.tags()), owner);
    let mut endpoints_in: BTreeSet<Rule> = [tcp(443, format!("sg:{workloads}"))].into();
    for (_, cidr) in ZONES {
        endpoints_in.insert(tcp(443, format!("cidr:{cidr}")));
        endpoints_in.insert(tcp(2049, format!("cidr:{cidr}")));
    }
    assert_eq!(
        rules(e.ip_permissions()),
        endpoints_in,
        "{what}: endpoints group {endpoints_group} ingress should be 443 from workloads and the private subnets, 2049 from the private subnets"
    );
    assert_eq!(
        rules(e.ip_permissions_egress()),
        [all_traffic(format!("cidr:{VPC_CIDR}"))].into(),
        "{what}: endpoints group {endpoints_group} should send nothing outside the VPC"
    );
    for g in all_groups.security_groups() {
        if g.group_name() == Some("default") {
            continue;
        }
        let all: BTreeSet<Rule> =
            rules(g.ip_permissions()).into_iter().chain(rules(g.ip_permissions_egress())).collect();
        let open: Vec<_> = all.iter().filter(|(_, _, peer)| peer == "cidr:0.0.0.0/0" || peer == "cidr6:::/0").collect();
        assert!(
            open.is_empty(),
            "{what}: security group {} ({}) has rules with 0.0.0.0/0: {open:?}",
            g.group_id().unwrap_or_default(),
            g.group_name().unwrap_or_default()
        );
    }
    Network { route_tables, endpoints_group, endpoint_ids }
}

/// The S3 gateway policy allows exactly the given buckets plus the AWS-owned ones, and no
/// bucket name with a wildcard.
fn check_gateway_policy(policy: &Value, what: &str, own_buckets: &[String]) {
    let mut buckets = BTreeSet::new();
    for st in statements(policy) {
        assert!(is_allow(st), "{what}: unexpected non-Allow statement {st}\n{}", pretty(policy));
        assert!(st.get("NotResource").is_none(), "{what}: NotResource would allow every other bucket: {st}");
        for resource in strings(&st["Resource"]) {
            let bucket = resource
                .strip_prefix("arn:aws:s3:::")
                .unwrap_or_else(|| panic!("{what}: resource {resource} is not an S3 ARN\n{}", pretty(policy)));
            let bucket = bucket.split('/').next().unwrap_or_default();
            assert!(
                !bucket.contains('*') && !bucket.contains('?'),
                "{what}: bucket name with a wildcard: {resource}\n{}",
                pretty(policy)
            );
            buckets.insert(bucket.to_owned());
        }
    }
    let expected: BTreeSet<String> = own_buckets.iter().cloned().chain(AWS_OWNED_BUCKETS.map(str::to_owned)).collect();
    assert_eq!(
        buckets,
        expected,
        "{what}: should allow exactly the environment's buckets and the AWS-owned ECR/SageMaker buckets\n{}",
        pretty(policy)
    );
    for bucket in own_buckets {
        let object = format!("arn:aws:s3:::{bucket}/x");
        assert!(
            statements(policy).iter().any(|s| covers_action(s, "s3:GetObject") && covers_resource(s, &object)),
            "{what}: does not let s3:GetObject through to {bucket}\n{}",
            pretty(policy)
        );
    }
}

// --- keys ----------------------------------------------------------------------------------

/// A key found by its alias: rotation on, enabled, tagged; returns its ARN and parsed policy.
/// DescribeKey goes through the account's KMS endpoint `vpce` (the s3 key denies it otherwise).
async fn check_key(c: &Clients, alias: &str, owner: &Owner, vpce: &str) -> (String, Value) {
    let header = vpce.to_owned();
    let meta = c
        .kms
        .describe_key()
        .key_id(alias)
        .customize()
        .mutate_request(move |req| {
            req.headers_mut().insert("x-emulator-source-vpce", header.clone());
        })
        .send()
        .await
        .unwrap_or_else(|e| panic!("key {alias}: DescribeKey through KMS endpoint {vpce}: {e:?}"));
    let meta = meta.key_metadata().unwrap_or_else(|| panic!("key {alias}: no metadata"));
    let arn = meta.arn().unwrap_or_default().to_owned();
    assert_eq!(meta.key_state().map(|s| s.as_str()), Some("Enabled"), "key {alias} ({arn}) should be enabled");
    let rotation = c.kms.get_key_rotation_status().key_id(&arn).send().await.unwrap();
    assert!(rotation.key_rotation_enabled(), "key {alias} ({arn}): rotation should be enabled");
    let tags = c.kms.list_resource_tags().key_id(&arn).send().await.unwrap();
    let tags: BTreeMap<String, String> =
        tags.tags().iter().map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned())).collect();
    check_tags(&format!("key {alias}"), &tags, owner);
    let policy = c.kms.get_key_policy().key_id(&arn).policy_name("default").send().await.unwrap();
    let policy = parse_policy(policy.policy().unwrap_or_default(), alias);
    (arn, policy)
}

/// The account root administers the key and never uses it; nobody gets it through `*`.
fn check_root_administers_only(policy: &Value, account: &str, what: &str) {
    let root = format!("arn:aws:iam::{account}:root");
    let root_statements: Vec<&Value> = statements(policy)
        .into_iter()
        .filter(|s| is_allow(s))
        .filter(|s| {
            let p = aws_principals(s);
            p.contains(&root) || p.contains(account)
        })
        .collect();
    assert!(!root_statements.is_empty(), "{what}: the account root should administer the key\n{}", pretty(policy));
    for action in ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:EnableKeyRotation", "kms:DescribeKey"] {
        assert!(
            root_statements.iter().any(|s| covers_action(s, action)),
            "{what}: the account root may not {action} (administration)\n{}",
            pretty(policy)
        );
    }
    for st in &root_statements {
        for action in KEY_USE {
            assert!(!covers_action(st, action), "{what}: the account root may {action} (use) through {st}");
        }
    }
    for st in statements(policy) {
        assert!(!(is_allow(st) && aws_principals(st).contains("*")), "{what}: a key policy allows everyone: {st}");
    }
}

/// The `KeyUse` statement: exactly `users` may encrypt, decrypt and make data keys.
fn check_key_use(policy: &Value, users: &BTreeSet<String>, what: &str) {
    let st = statement(policy, "KeyUse", what);
    assert!(is_allow(st), "{what}: KeyUse should allow: {st}");
    assert_eq!(&aws_principals(st), users, "{what}: who may use the key\n{}", pretty(policy));
    for action in ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"] {
        assert!(covers_action(st, action), "{what}: KeyUse does not grant {action}: {st}");
    }
    assert!(st.get("Condition").is_none(), "{what}: KeyUse should be unconditional: {st}");
}

// --- buckets -------------------------------------------------------------------------------

/// SSE-KMS with `key_arn` and a bucket key, all public access blocks, versioning, owner
/// enforced, tagged; returns the parsed bucket policy.
async fn check_bucket(c: &Clients, bucket: &str, key_arn: &str, owner: &Owner, versioned: bool) -> Value {
    let s3 = &c.s3;
    let enc = s3.get_bucket_encryption().bucket(bucket).send().await.unwrap_or_else(|e| panic!("{bucket}: {e:?}"));
    let rules = enc.server_side_encryption_configuration().map(|c| c.rules()).unwrap_or_default();
    assert_eq!(rules.len(), 1, "bucket {bucket}: one default encryption rule expected: {rules:?}");
    let default = rules[0].apply_server_side_encryption_by_default();
    assert_eq!(
        default.map(|d| d.sse_algorithm().as_str()),
        Some("aws:kms"),
        "bucket {bucket}: default encryption should be SSE-KMS: {rules:?}"
    );
    assert_eq!(
        default.and_then(|d| d.kms_master_key_id()),
        Some(key_arn),
        "bucket {bucket}: default encryption key should be {key_arn}"
    );
    assert_eq!(rules[0].bucket_key_enabled(), Some(true), "bucket {bucket}: bucket key should be enabled: {rules:?}");
    let pab = s3.get_public_access_block().bucket(bucket).send().await.unwrap();
    let pab =
        pab.public_access_block_configuration().unwrap_or_else(|| panic!("bucket {bucket}: no public access block"));
    assert_eq!(
        [pab.block_public_acls(), pab.ignore_public_acls(), pab.block_public_policy(), pab.restrict_public_buckets()],
        [Some(true); 4],
        "bucket {bucket}: all four public access blocks should be on: {pab:?}"
    );
    if versioned {
        let versioning = s3.get_bucket_versioning().bucket(bucket).send().await.unwrap();
        assert_eq!(
            versioning.status().map(|s| s.as_str()),
            Some("Enabled"),
            "bucket {bucket}: versioning should be Enabled"
        );
    }
    let ownership = s3.get_bucket_ownership_controls().bucket(bucket).send().await.unwrap();
    let ownership: Vec<&str> = ownership
        .ownership_controls()
        .map(|c| c.rules().iter().map(|r| r.object_ownership().as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ownership, ["BucketOwnerEnforced"], "bucket {bucket}: object ownership");
    let tags = s3.get_bucket_tagging().bucket(bucket).send().await.unwrap();
    let tags: BTreeMap<String, String> =
        tags.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    check_tags(&format!("bucket {bucket}"), &tags, owner);
    let policy = s3.get_bucket_policy().bucket(bucket).send().await.unwrap();
    parse_policy(policy.policy().unwrap_or_default(), bucket)
}

/// Deny whenever `aws:SecureTransport` is false, for everyone, on the bucket and its objects.
fn check_tls_only(policy: &Value, bucket: &str) {
    let what = format!("bucket {bucket} policy");
    let st = statement(policy, "DenyInsecureTransport", &what);
    assert!(is_deny(st), "{what}: DenyInsecureTransport should deny: {st}");
    assert_eq!(aws_principals(st), set(["*"]), "{what}: DenyInsecureTransport should apply to everyone: {st}");
    assert!(covers_action(st, "s3:GetObject") && covers_action(st, "s3:PutObject"), "{what}: actions: {st}");
    for arn in bucket_arns(bucket) {
        assert!(
            covers_resource(st, &arn) || covers_resource(st, &format!("{arn}x")),
            "{what}: {arn} not covered: {st}"
        );
    }
    assert_eq!(
        conditions_of(st),
        [(("Bool".to_owned(), "aws:securetransport".to_owned()), set(["false"]))].into(),
        "{what}: DenyInsecureTransport condition: {st}"
    );
}

// --- roles ---------------------------------------------------------------------------------

/// A role: tagged, the default permissions boundary, no managed policies; returns its trust policy and
/// all statements of its inline policies as one document.
async fn check_role(c: &Clients, arn: &str, owner: &Owner) -> (Value, Value) {
    let name = role_name(arn);
    let role = c.iam.get_role().role_name(name).send().await.unwrap_or_else(|e| panic!("role {arn}: {e:?}"));
    let role = role.role().unwrap_or_else(|| panic!("role {arn}: missing"));
    assert_eq!(role.arn(), arn, "role {name}: ARN");
    let tags: BTreeMap<String, String> =
        role.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    check_tags(&format!("role {arn}"), &tags, owner);
    // The AwsAccounts of this test name no permissionsBoundaryArn: the account's default.
    let account = arn.split(':').nth(4).unwrap_or_default();
    assert_eq!(
        role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()),
        Some(format!("arn:aws:iam::{account}:policy/sagekeeper-boundary").as_str()),
        "role {arn}: the permissions boundary"
    );
    let attached = c.iam.list_attached_role_policies().role_name(name).send().await.unwrap();
    assert!(attached.attached_policies().is_empty(), "role {arn}: managed policies attached: {attached:?}");
    let trust = parse_policy(role.assume_role_policy_document().unwrap_or_default(), arn);
    let names = c.iam.list_role_policies().role_name(name).send().await.unwrap();
    assert!(!names.policy_names().is_empty(), "role {arn}: no inline policy");
    let mut all = Vec::new();
    for policy in names.policy_names() {
        let doc = c.iam.get_role_policy().role_name(name).policy_name(policy).send().await.unwrap();
        let doc = parse_policy(doc.policy_document(), &format!("{arn} {policy}"));
        all.extend(statements(&doc).into_iter().cloned());
    }
    (trust, json!({"Version": "2012-10-17", "Statement": all}))
}

/// Trusted by the SageMaker service only, acting for `account` only (`aws:SourceAccount`).
fn check_sagemaker_trust(trust: &Value, what: &str, account: &str) {
    let sts: Vec<&Value> = statements(trust);
    let for_account: BTreeMap<(String, String), BTreeSet<String>> =
        [(("StringEquals".to_owned(), "aws:sourceaccount".to_owned()), set([account]))].into();
    assert!(
        sts.iter().all(|s| is_allow(s)
            && aws_principals(s).is_empty()
            && service_principals(s) == set(["sagemaker.amazonaws.com"])
            && covers_action(s, "sts:AssumeRole")
            && conditions_of(s) == for_account),
        "{what}: trust should be sagemaker.amazonaws.com for account {account} only\n{}",
        pretty(trust)
    );
    assert!(!sts.is_empty(), "{what}: empty trust policy");
}

/// The four preventive denies, each its own statement with one condition key, on roles that can
/// create jobs, models or notebooks; `expect` false checks that none is there.
fn check_preventive_denies(policy: &Value, what: &str, expect: bool, account: &str) {
    // What must run in the environment's subnets and security groups.
    const VPC_BOUND: &[&str] = &[
        "sagemaker:CreateTrainingJob",
        "sagemaker:CreateProcessingJob",
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:CreateModel",
        "sagemaker:CreateNotebookInstance",
    ];
    // (condition key, operators allowed, value, actions the deny must cover)
    let denies: [(&str, &[&str], &str, &[&str]); 4] = [
        ("sagemaker:vpcsubnets", &["Null"], "true", VPC_BOUND),
        ("sagemaker:vpcsecuritygroupids", &["Null"], "true", VPC_BOUND),
        (
            // The current key; api.md's sagemaker:VolumeKmsKey is deprecated and on no action.
            "sagemaker:volumekmskeyarn",
            &["Null"],
            "true",
            &[
                "sagemaker:CreateTrainingJob",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateHyperParameterTuningJob",
                "sagemaker:CreateTransformJob",
                "sagemaker:CreateNotebookInstance",
            ],
        ),
        (
            "sagemaker:intercontainertrafficencryption",
            &["Bool", "BoolIfExists"],
            "false",
            &[
                "sagemaker:CreateTrainingJob",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateHyperParameterTuningJob",
            ],
        ),
    ];
    for (key, operators, value, actions) in denies {
        // The presence deny on `key` (the value denies test the same keys otherwise).
        let found: Vec<&Value> = statements(policy)
            .into_iter()
            .filter(|s| {
                is_deny(s)
                    && conditions_of(s)
                        .iter()
                        .any(|((op, k), v)| k == key && operators.contains(&op.as_str()) && v == &set([value]))
            })
            .collect();
        if !expect {
            assert!(found.is_empty(), "{what}: should carry no preventive deny on {key}, has {found:?}");
            continue;
        }
        assert_eq!(
            found.len(),
            1,
            "{what}: exactly one deny statement on {key} expected, found {}\n{}",
            found.len(),
            pretty(policy)
        );
        let st = found[0];
        let conditions = conditions_of(st);
        assert_eq!(
            conditions.len(),
            1,
            "{what}: the deny on {key} must be a separate statement with that key alone: {st}"
        );
        let ((operator, _), values) = conditions.iter().next().unwrap();
        assert!(operators.contains(&operator.as_str()), "{what}: deny on {key} uses operator {operator}: {st}");
        assert_eq!(values, &set([value]), "{what}: deny on {key} should match {value}: {st}");
        for action in actions {
            assert!(covers_action(st, action), "{what}: deny on {key} does not cover {action}: {st}");
        }
        let resource = format!("arn:aws:sagemaker:{REGION}:{account}:training-job/x");
        assert!(covers_resource(st, &resource), "{what}: deny on {key} does not cover {resource}: {st}");
    }
}

/// The value denies: any subnet, security group or volume key but the environment's own is
/// refused, whatever the SageMaker action.
fn check_value_denies(policy: &Value, what: &str, subnets: &[String], groups: &[String], volume_key: &str) {
    let deny_on = |key: &str| -> Vec<&Value> {
        statements(policy)
            .into_iter()
            .filter(|s| is_deny(s) && conditions_of(s).keys().any(|(op, k)| k == key && op.contains("StringNotEquals")))
            .collect()
    };
    let expected = [
        ("sagemaker:vpcsubnets", "ForAnyValue:StringNotEquals", set(subnets)),
        ("sagemaker:vpcsecuritygroupids", "ForAnyValue:StringNotEquals", set(groups)),
        ("sagemaker:volumekmskeyarn", "StringNotEquals", set([volume_key])),
    ];
    for (key, operator, values) in expected {
        let found = deny_on(key);
        assert_eq!(found.len(), 1, "{what}: one deny of other values of {key}\n{}", pretty(policy));
        let conditions = conditions_of(found[0]);
        assert_eq!(conditions.get(&(operator.to_owned(), key.to_owned())), Some(&values), "{what}: {}", found[0]);
        assert!(covers_action(found[0], "sagemaker:CreateTrainingJob"), "{what}: {}", found[0]);
    }
}

fn denies(policy: &Value, action: &str) -> Vec<Value> {
    statements(policy).into_iter().filter(|s| is_deny(s) && covers_action(s, action)).cloned().collect()
}

// --- the tests -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(clippy::too_many_lines)]
async fn full_environment_resources_and_policies_match_the_contract() {
    let t = TestEnv::new("environment-state").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let (dev_id, staging_id, prod_id) = (t.account(1), t.account(2), t.account(3));
    let ns = &t.namespace;
    let owner =
        Owner { owner: format!("DataScienceEnvironment/{ns}/fraud"), uid: env.metadata.uid.clone().expect("uid") };
    let status = env.status.clone().expect("status");
    assert_eq!(status.account_id.as_deref(), Some(dev_id.as_str()), "status.accountId");
    let (dev, staging, prod) = tokio::join!(clients(&t, &dev_id), clients(&t, &staging_id), clients(&t, &prod_id));

    // Status: ids of everything the checks below compare AWS with.
    let net = status.network.clone().expect("status.network");
    let vpc_id = net.vpc_id.clone().expect("status.network.vpcId");
    assert_eq!(net.availability_zones, ZONES.map(|(z, _)| z.to_owned()), "status.network.availabilityZones");
    let workloads =
        net.security_group_ids.get("workloads").cloned().expect("status.network.securityGroupIds.workloads");
    let endpoints_sg =
        net.security_group_ids.get("endpoints").cloned().expect("status.network.securityGroupIds.endpoints");
    let enc = status.encryption.clone().expect("status.encryption");
    let (ebs_arn, studio_arn, s3_arn) = (
        enc.ebs_key_arn.clone().expect("ebsKeyArn"),
        enc.studio_key_arn.clone().expect("studioKeyArn"),
        enc.s3_key_arn.clone().expect("s3KeyArn"),
    );
    let storage = status.storage.clone().expect("status.storage");
    let data_bucket = storage.data_bucket.clone().expect("dataBucket");
    let models_bucket = storage.models_bucket.clone().expect("modelsBucket");
    let identity = status.identity.clone().expect("status.identity");
    let execution = identity.execution_role_arn.clone().expect("executionRoleArn");
    let pipeline = identity.pipeline_role_arn.clone().expect("pipelineRoleArn");
    let model_execution = identity.model_execution_role_arn.clone().expect("modelExecutionRoleArn");
    let data_scientist =
        identity.persona_role_arns.get("DataScientist").cloned().expect("personaRoleArns.DataScientist");
    let team_admin = identity.persona_role_arns.get("TeamAdmin").cloned().expect("personaRoleArns.TeamAdmin");
    for arn in [&execution, &pipeline, &model_execution, &data_scientist, &team_admin] {
        assert!(arn.starts_with(&format!("arn:aws:iam::{dev_id}:role/")), "dev role {arn} is not in the dev account");
    }
    let targets: Vec<_> = [("staging", &staging_id, &staging), ("production", &prod_id, &prod)]
        .into_iter()
        .map(|(stage, id, c)| {
            let target = status
                .target_accounts
                .iter()
                .find(|s| s.stage == stage)
                .unwrap_or_else(|| panic!("status.targetAccounts has no {stage}: {:?}", status.target_accounts));
            assert_eq!(target.account_id.as_deref(), Some(id.as_str()), "status.targetAccounts[{stage}].accountId");
            assert!(target.ready, "status.targetAccounts[{stage}].ready");
            (stage, c, target.clone())
        })
        .collect();
    assert_eq!(status.target_accounts.len(), 2, "status.targetAccounts: {:?}", status.target_accounts);
    let target_roles: BTreeSet<String> =
        targets.iter().map(|(_, _, s)| s.model_execution_role_arn.clone().expect("modelExecutionRoleArn")).collect();

    // --- dev network ---
    let dev_net = check_network(
        &dev,
        "dev",
        &owner,
        &vpc_id,
        &net.private_subnet_ids,
        &workloads,
        &DEV_INTERFACE_ENDPOINTS,
        &[data_bucket.clone(), models_bucket.clone()],
    )
    .await;
    assert_eq!(
        dev_net.endpoints_group, endpoints_sg,
        "dev: the interface endpoints should be behind status's endpoints group"
    );
    assert_eq!(
        net.vpc_endpoint_ids, dev_net.endpoint_ids,
        "dev: status.network.vpcEndpointIds should name exactly the endpoints in the VPC"
    );
    assert_eq!(dev_net.route_tables.len(), 2, "dev: route tables");

    // Target networks (their endpoint ids feed the dev key and bucket policies).
    let mut target_nets = Vec::new();
    for (stage, c, ts) in &targets {
        let what = format!("{stage} account {}", c.account);
        let capture = ts.data_capture_bucket.clone().unwrap_or_else(|| panic!("{what}: status dataCaptureBucket"));
        let target_net = check_network(
            c,
            &what,
            &owner,
            ts.vpc_id.as_deref().unwrap_or_else(|| panic!("{what}: status vpcId")),
            &ts.private_subnet_ids,
            ts.security_group_id.as_deref().unwrap_or_else(|| panic!("{what}: status securityGroupId")),
            &TARGET_INTERFACE_ENDPOINTS,
            &[models_bucket.clone(), capture],
        )
        .await;
        target_nets.push(target_net);
    }
    let endpoint_ids = |key: &str| -> BTreeSet<String> {
        std::iter::once(&dev_net).chain(&target_nets).map(|n| n.endpoint_ids[key].clone()).collect()
    };
    let (kms_endpoints, s3_endpoints) = (endpoint_ids("kms"), endpoint_ids("s3"));
    assert_eq!(kms_endpoints.len(), 3, "one KMS endpoint per account: {kms_endpoints:?}");
    assert_eq!(s3_endpoints.len(), 3, "one S3 gateway per account: {s3_endpoints:?}");

    // --- dev keys ---
    let dev_controller = controller_arn(&dev_id);
    let roles_of_env = set([&execution, &pipeline, &model_execution, &data_scientist, &team_admin]);
    let aliases = dev.kms.list_aliases().send().await.unwrap();
    let ours: BTreeSet<&str> = aliases
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .filter(|a| a.starts_with(&format!("alias/sagekeeper/{ns}/fraud/")))
        .collect();
    let prefix = format!("alias/sagekeeper/{ns}/fraud");
    assert_eq!(
        ours,
        [format!("{prefix}/ebs"), format!("{prefix}/s3"), format!("{prefix}/studio")]
            .iter()
            .map(String::as_str)
            .collect(),
        "dev: the environment's key aliases"
    );
    let dev_kms = &dev_net.endpoint_ids["kms"];
    let (arn, ebs_policy) = check_key(&dev, &format!("{prefix}/ebs"), &owner, dev_kms).await;
    assert_eq!(arn, ebs_arn, "dev: alias {prefix}/ebs should point at status.encryption.ebsKeyArn");
    let (arn, studio_policy) = check_key(&dev, &format!("{prefix}/studio"), &owner, dev_kms).await;
    assert_eq!(arn, studio_arn, "dev: alias {prefix}/studio should point at status.encryption.studioKeyArn");
    let (arn, s3_policy) = check_key(&dev, &format!("{prefix}/s3"), &owner, dev_kms).await;
    assert_eq!(arn, s3_arn, "dev: alias {prefix}/s3 should point at status.encryption.s3KeyArn");
    for (what, policy) in [("ebs key", &ebs_policy), ("studio key", &studio_policy), ("s3 key", &s3_policy)] {
        check_root_administers_only(policy, &dev_id, &format!("dev {what} policy"));
    }
    // Volumes of jobs, notebooks and endpoints: every role that makes them.
    check_key_use(&ebs_policy, &roles_of_env, "dev ebs key policy");
    // Studio: the execution role (domain default) and the persona roles profiles run as.
    check_key_use(&studio_policy, &set([&execution, &data_scientist, &team_admin]), "dev studio key policy");
    check_key_use(&s3_policy, &roles_of_env, "dev s3 key policy");
    let what = "dev s3 key policy";
    let st = statement(&s3_policy, "KeyUseByTargetModelRoles", what);
    assert!(is_allow(st), "{what}: KeyUseByTargetModelRoles should allow: {st}");
    assert_eq!(aws_principals(st), target_roles, "{what}: both target model execution roles may use the s3 key: {st}");
    assert!(covers_action(st, "kms:Decrypt"), "{what}: target model roles need kms:Decrypt: {st}");
    for action in ["kms:Encrypt", "kms:GenerateDataKey", "kms:CreateGrant"] {
        assert!(!covers_action(st, action), "{what}: target model roles only read, yet may {action}: {st}");
    }
    let st = statement(&s3_policy, "DenyUseOutsideVpcEndpoints", what);
    assert!(is_deny(st), "{what}: DenyUseOutsideVpcEndpoints should deny: {st}");
    assert_eq!(aws_principals(st), set(["*"]), "{what}: the endpoint deny should apply to everyone: {st}");
    for action in ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"] {
        assert!(covers_action(st, action), "{what}: the endpoint deny does not cover {action}: {st}");
    }
    assert_eq!(
        conditions_of(st),
        [
            (("StringNotEquals".to_owned(), "aws:sourcevpce".to_owned()), kms_endpoints.clone()),
            (("Bool".to_owned(), "aws:viaawsservice".to_owned()), set(["false"])),
            (("ArnNotEquals".to_owned(), "aws:principalarn".to_owned()), set([&dev_controller])),
        ]
        .into(),
        "{what}: deny use unless through the dev/staging/prod KMS endpoints {kms_endpoints:?}, except via AWS services and for the controller {dev_controller}: {st}"
    );
    // The controller manages the keys but reads no data.
    for st in statements(&s3_policy) {
        assert!(
            !(is_allow(st) && aws_principals(st).contains(&dev_controller) && covers_action(st, "kms:Decrypt")),
            "{what}: the controller {dev_controller} may decrypt with the s3 key: {st}"
        );
    }
    // The emulator evaluates it: outside the endpoints even DescribeKey is refused, by the key
    // policy's deny, to a dev user whose own policy allows it.
    let allow = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": s3_arn}]});
    dev.iam.create_user().user_name("analyst").send().await.unwrap();
    dev.iam
        .put_user_policy()
        .user_name("analyst")
        .policy_name("describe")
        .policy_document(allow.to_string())
        .send()
        .await
        .unwrap();
    let analyst = kms::Client::new(&t.aws_config(&t.emulator.user_credentials(&dev_id, "analyst")).await);
    let refused = analyst.describe_key().key_id(&s3_arn).send().await;
    assert_eq!(
        refused.as_ref().map_err(|e| e.code()).err(),
        Some(Some("AccessDeniedException")),
        "dev s3 key: DescribeKey by a dev user outside the KMS endpoints should be denied: {refused:?}"
    );
    let message = refused.err().and_then(|e| e.message().map(str::to_owned)).unwrap_or_default();
    assert!(message.contains("explicit deny in a resource-based policy"), "{message}");

    // --- dev buckets ---
    let data_policy = check_bucket(&dev, &data_bucket, &s3_arn, &owner, true).await;
    let models_policy = check_bucket(&dev, &models_bucket, &s3_arn, &owner, true).await;
    for (bucket, policy) in [(&data_bucket, &data_policy), (&models_bucket, &models_policy)] {
        let what = format!("bucket {bucket} policy");
        let st = statement(policy, "DenyOutsideVpcEndpoints", &what);
        assert!(is_deny(st), "{what}: DenyOutsideVpcEndpoints should deny: {st}");
        assert_eq!(aws_principals(st), set(["*"]), "{what}: the endpoint deny should apply to everyone: {st}");
        assert!(covers_action(st, "s3:GetObject") && covers_action(st, "s3:PutObject"), "{what}: actions: {st}");
        for arn in bucket_arns(bucket) {
            assert!(covers_resource(st, &arn), "{what}: the endpoint deny does not cover {arn}: {st}");
        }
        // The pipeline role is exempt too, for reading only: SageMaker Pipelines evaluates
        // condition steps (reading evaluation reports) from its own network.
        assert_eq!(
            conditions_of(st),
            [
                (("StringNotEquals".to_owned(), "aws:sourcevpce".to_owned()), s3_endpoints.clone()),
                (("ArnNotEquals".to_owned(), "aws:PrincipalArn".to_lowercase()), set([&dev_controller, &pipeline])),
            ]
            .into(),
            "{what}: deny unless through the dev/staging/prod S3 gateways {s3_endpoints:?}, the controller {dev_controller} (and the pipeline role) exempt: {st}"
        );
        let st = statement(policy, "DenyPipelineRoleWritesOutsideVpcEndpoints", &what);
        assert!(is_deny(st) && aws_principals(st) == set(["*"]), "{what}: {st}");
        assert_eq!(st["NotAction"], json!(["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"]), "{what}: {st}");
        assert_eq!(
            conditions_of(st),
            [
                (("StringNotEquals".to_owned(), "aws:sourcevpce".to_owned()), s3_endpoints.clone()),
                (("ArnEquals".to_owned(), "aws:principalarn".to_owned()), set([&pipeline])),
            ]
            .into(),
            "{what}: outside the gateways the pipeline role only reads: {st}"
        );
        let st = statement(policy, "DenyOtherKmsKeys", &what);
        assert!(is_deny(st) && covers_action(st, "s3:PutObject"), "{what}: {st}");
        let key_id = s3_arn.rsplit('/').next().unwrap().to_owned();
        assert_eq!(
            conditions_of(st),
            [
                (
                    ("StringNotEquals".to_owned(), "s3:x-amz-server-side-encryption-aws-kms-key-id".to_owned()),
                    set([&s3_arn, &key_id])
                ),
                (("Null".to_owned(), "s3:x-amz-server-side-encryption-aws-kms-key-id".to_owned()), set(["false"])),
            ]
            .into(),
            "{what}: uploads may name only the s3 key: {st}"
        );
        check_tls_only(policy, bucket);
        let st = statement(policy, "DenyControllerObjectReads", &what);
        assert!(is_deny(st), "{what}: DenyControllerObjectReads should deny: {st}");
        assert_eq!(aws_principals(st), set([&dev_controller]), "{what}: the controller may not read objects: {st}");
        assert!(covers_action(st, "s3:GetObject"), "{what}: controller read deny must cover s3:GetObject: {st}");
        assert!(
            covers_resource(st, &format!("arn:aws:s3:::{bucket}/any/key")),
            "{what}: controller read deny must cover every object: {st}"
        );
        assert!(st.get("Condition").is_none(), "{what}: controller read deny must be unconditional: {st}");
    }
    let what = format!("bucket {models_bucket} policy");
    let st = statement(&models_policy, "AllowTargetModelReaders", &what);
    assert!(is_allow(st), "{what}: AllowTargetModelReaders should allow: {st}");
    assert_eq!(aws_principals(st), target_roles, "{what}: both target model execution roles read models: {st}");
    assert!(
        covers_action(st, "s3:GetObject") && covers_resource(st, &format!("arn:aws:s3:::{models_bucket}/model.tar.gz")),
        "{what}: target roles need s3:GetObject on the objects: {st}"
    );
    for action in ["s3:PutObject", "s3:DeleteObject"] {
        assert!(!covers_action(st, action), "{what}: target roles only read, yet may {action}: {st}");
    }
    assert!(
        statements(&data_policy).iter().all(|s| is_deny(s)),
        "bucket {data_bucket}: the data bucket grants nobody anything\n{}",
        pretty(&data_policy)
    );

    // --- dev roles ---
    let mut role_policies = BTreeMap::new();
    for (label, arn) in [
        ("execution", &execution),
        ("pipeline", &pipeline),
        ("model execution", &model_execution),
        ("DataScientist", &data_scientist),
        ("TeamAdmin", &team_admin),
    ] {
        let (trust, policy) = check_role(&dev, arn, &owner).await;
        role_policies.insert(label, (trust, policy));
    }
    for label in ["execution", "pipeline", "model execution"] {
        check_sagemaker_trust(&role_policies[label].0, &format!("dev {label} role"), &dev_id);
    }
    for label in ["DataScientist", "TeamAdmin"] {
        let trust = &role_policies[label].0;
        assert!(
            statements(trust).iter().any(|s| service_principals(s).contains("sagemaker.amazonaws.com")),
            "dev {label} role: Studio profiles run as it, so SageMaker must be trusted\n{}",
            pretty(trust)
        );
        for st in statements(trust) {
            for p in aws_principals(st) {
                assert!(
                    p.starts_with(&format!("arn:aws:iam::{dev_id}:")) && !p.ends_with(":root"),
                    "dev {label} role: trusts the account root or a principal outside the dev account: {p}"
                );
            }
        }
    }
    for label in ["execution", "pipeline", "DataScientist", "TeamAdmin"] {
        check_preventive_denies(&role_policies[label].1, &format!("dev {label} role"), true, &dev_id);
        check_value_denies(
            &role_policies[label].1,
            &format!("dev {label} role"),
            &net.private_subnet_ids,
            std::slice::from_ref(&workloads),
            &ebs_arn,
        );
    }
    let model_role_policy = &role_policies["model execution"].1;
    check_preventive_denies(model_role_policy, "dev model execution role", false, &dev_id);
    assert!(
        !statements(model_role_policy).iter().any(|s| is_allow(s) && covers_action(s, "sagemaker:CreateTrainingJob")),
        "dev model execution role: may create jobs, so it would need the preventive denies\n{}",
        pretty(model_role_policy)
    );
    let ds = &role_policies["DataScientist"].1;
    let update = denies(ds, "sagemaker:UpdateModelPackage");
    assert!(
        update.iter().any(|s| s.get("Condition").is_none()
            && covers_resource(s, &format!("arn:aws:sagemaker:{REGION}:{dev_id}:model-package/x/1"))),
        "dev DataScientist role: UpdateModelPackage should be denied unconditionally\n{}",
        pretty(ds)
    );
    let create = denies(ds, "sagemaker:CreateModelPackage");
    assert!(
        create.iter().any(|s| {
            let c = conditions_of(s);
            c.len() == 1
                && c.iter().all(|((op, key), values)| {
                    (op == "StringEquals" || op == "StringEqualsIgnoreCase")
                        && key == "sagemaker:modelapprovalstatus"
                        && values == &set(["Approved"])
                })
        }),
        "dev DataScientist role: CreateModelPackage with ModelApprovalStatus=Approved should be denied\n{}",
        pretty(ds)
    );
    let ta = &role_policies["TeamAdmin"].1;
    // The value denies name every SageMaker action but judge only the network and volume keys,
    // which the registry actions never carry.
    let job_keys = set(["sagemaker:vpcsubnets", "sagemaker:vpcsecuritygroupids", "sagemaker:volumekmskeyarn"]);
    for action in ["sagemaker:UpdateModelPackage", "sagemaker:CreateModelPackage"] {
        let mut found = denies(ta, action);
        found.retain(|s| !conditions_of(s).keys().all(|(_, key)| job_keys.contains(key)));
        assert!(found.is_empty(), "dev TeamAdmin role: approves models, yet {action} is denied by {found:?}");
    }
    assert!(
        statements(ta).iter().any(|s| is_allow(s) && covers_action(s, "sagemaker:UpdateModelPackage")),
        "dev TeamAdmin role: should be allowed UpdateModelPackage (approval)\n{}",
        pretty(ta)
    );

    // --- Studio ---
    let domains = dev.sm.list_domains().send().await.unwrap();
    assert_eq!(domains.domains().len(), 1, "dev: exactly one Studio domain: {:?}", domains.domains());
    let studio = status.studio.clone().expect("status.studio");
    let domain_id = studio.domain_id.clone().expect("status.studio.domainId");
    assert_eq!(domains.domains()[0].domain_id(), Some(domain_id.as_str()), "dev: the domain is status.studio.domainId");
    let domain = dev.sm.describe_domain().domain_id(&domain_id).send().await.unwrap();
    let what = format!("Studio domain {domain_id}");
    assert_eq!(domain.status().map(|s| s.as_str()), Some("InService"), "{what}: status");
    assert_eq!(domain.app_network_access_type().map(|a| a.as_str()), Some("VpcOnly"), "{what}: network access");
    assert_eq!(domain.auth_mode().map(|a| a.as_str()), Some("IAM"), "{what}: auth mode");
    assert_eq!(domain.vpc_id(), Some(vpc_id.as_str()), "{what}: VPC");
    assert_eq!(set(domain.subnet_ids()), set(&net.private_subnet_ids), "{what}: should use the private subnets");
    assert_eq!(domain.kms_key_id(), Some(studio_arn.as_str()), "{what}: should be encrypted with the studio key");
    let defaults = domain.default_user_settings().unwrap_or_else(|| panic!("{what}: no DefaultUserSettings"));
    assert_eq!(defaults.execution_role(), Some(execution.as_str()), "{what}: default execution role");
    assert_eq!(
        defaults.security_groups(),
        std::slice::from_ref(&workloads),
        "{what}: should use the workloads group only"
    );
    let tags = dev.sm.list_tags().resource_arn(domain.domain_arn().unwrap_or_default()).send().await.unwrap();
    let sm_tags = |tags: &[sagemaker::types::Tag]| -> BTreeMap<String, String> {
        tags.iter()
            .map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned()))
            .collect()
    };
    check_tags(&what, &sm_tags(tags.tags()), &owner);
    let profiles = dev.sm.list_user_profiles().domain_id_equals(&domain_id).send().await.unwrap();
    let names: BTreeSet<&str> = profiles.user_profiles().iter().filter_map(|p| p.user_profile_name()).collect();
    assert_eq!(names, ["alice", "bob"].into(), "{what}: user profiles");
    assert_eq!(set(&studio.user_profiles), set(["alice", "bob"]), "status.studio.userProfiles");
    for (name, persona, role) in [("alice", "DataScientist", &data_scientist), ("bob", "TeamAdmin", &team_admin)] {
        let profile =
            dev.sm.describe_user_profile().domain_id(&domain_id).user_profile_name(name).send().await.unwrap();
        let settings = profile.user_settings();
        assert_eq!(
            settings.and_then(|s| s.execution_role()),
            Some(role.as_str()),
            "user profile {name} should run as the {persona} role"
        );
        assert_eq!(
            settings.map(|s| s.security_groups().to_vec()),
            Some(vec![workloads.clone()]),
            "user profile {name}: security groups"
        );
        let tags =
            dev.sm.list_tags().resource_arn(profile.user_profile_arn().unwrap_or_default()).send().await.unwrap();
        let tags = sm_tags(tags.tags());
        check_tags(&format!("user profile {name}"), &tags, &owner);
        assert_eq!(
            tags.get("sagekeeper.io/persona").map(String::as_str),
            Some(persona),
            "user profile {name}: tag sagekeeper.io/persona; tags {tags:?}"
        );
    }

    // Nothing else in dev: no endpoints or models (ModelDeployment makes those, not this).
    let endpoints = dev.sm.list_endpoints().send().await.unwrap();
    assert!(endpoints.endpoints().is_empty(), "dev: unexpected SageMaker endpoints {:?}", endpoints.endpoints());
    let models = dev.sm.list_models().send().await.unwrap();
    assert!(models.models().is_empty(), "dev: unexpected SageMaker models {:?}", models.models());
    let configs = dev.sm.list_endpoint_configs().send().await.unwrap();
    assert!(configs.endpoint_configs().is_empty(), "dev: unexpected endpoint configs {:?}", configs.endpoint_configs());

    // --- target accounts ---
    for ((stage, c, ts), target_net) in targets.iter().zip(&target_nets) {
        let what = format!("{stage} account {}", c.account);
        let account = &c.account;
        let key_alias = format!("{prefix}/endpoint");
        let (key_arn, key_policy) = check_key(c, &key_alias, &owner, &target_net.endpoint_ids["kms"]).await;
        assert_eq!(
            Some(&key_arn),
            ts.endpoint_key_arn.as_ref(),
            "{what}: endpoint key should be status endpointKeyArn"
        );
        assert!(key_arn.contains(&format!(":{account}:")), "{what}: endpoint key {key_arn} is not in the account");
        check_root_administers_only(&key_policy, account, &format!("{what} endpoint key policy"));
        let role = ts.model_execution_role_arn.clone().unwrap();
        assert!(
            role.starts_with(&format!("arn:aws:iam::{account}:role/")),
            "{what}: model role {role} not in the account"
        );
        check_key_use(&key_policy, &set([&role]), &format!("{what} endpoint key policy"));

        let capture = ts.data_capture_bucket.clone().unwrap();
        let capture_policy = check_bucket(c, &capture, &key_arn, &owner, false).await;
        check_tls_only(&capture_policy, &capture);

        let (trust, policy) = check_role(c, &role, &owner).await;
        check_sagemaker_trust(&trust, &format!("{what} model execution role"), account);
        let model_object = format!("arn:aws:s3:::{models_bucket}/fraud/model.tar.gz");
        assert!(
            statements(&policy)
                .iter()
                .any(|s| is_allow(s) && covers_action(s, "s3:GetObject") && covers_resource(s, &model_object)),
            "{what} model execution role: should read the dev models bucket {models_bucket}\n{}",
            pretty(&policy)
        );
        assert!(
            statements(&policy)
                .iter()
                .any(|s| is_allow(s) && covers_action(s, "kms:Decrypt") && covers_resource(s, &s3_arn)),
            "{what} model execution role: should decrypt with the dev s3 key {s3_arn}\n{}",
            pretty(&policy)
        );
        assert!(
            !statements(&policy).iter().any(|s| is_allow(s) && covers_action(s, "sagemaker:UpdateModelPackage")),
            "{what} model execution role: may change the model registry\n{}",
            pretty(&policy)
        );
        check_preventive_denies(&policy, &format!("{what} model execution role"), false, account);

        let domains = c.sm.list_domains().send().await.unwrap();
        assert!(domains.domains().is_empty(), "{what}: no Studio in target accounts, found {:?}", domains.domains());
    }
}

/// PutObject/GetObject as `s3` with the given test headers; the error code when refused.
async fn object_round_trip(
    s3: &s3::Client,
    bucket: &str,
    key: &str,
    vpce: Option<&str>,
    insecure: bool,
) -> Result<(), String> {
    let headers = move |req: &mut sagekeeper_aws::sdk::s3::config::http::HttpRequest, vpce: Option<String>| {
        if let Some(vpce) = vpce {
            req.headers_mut().insert("x-emulator-source-vpce", vpce);
        }
        if insecure {
            req.headers_mut().insert("x-emulator-secure-transport", "false");
        }
    };
    let v = vpce.map(str::to_owned);
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"fraud features"))
        .customize()
        .mutate_request(move |req| headers(req, v.clone()))
        .send()
        .await
        .map_err(|e| format!("PutObject: {}", e.code().unwrap_or("no code")))?;
    let v = vpce.map(str::to_owned);
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .customize()
        .mutate_request(move |req| headers(req, v.clone()))
        .send()
        .await
        .map_err(|e| format!("GetObject: {}", e.code().unwrap_or("no code")))?;
    let body = got.body.collect().await.map_err(|e| format!("GetObject body: {e}"))?.into_bytes();
    assert_eq!(&body[..], b"fraud features", "GetObject returned another body");
    Ok(())
}

/// GetObject alone, for a key written through the endpoint.
async fn get_only(s3: &s3::Client, bucket: &str, key: &str, vpce: Option<&str>, insecure: bool) -> Result<(), String> {
    let v = vpce.map(str::to_owned);
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .customize()
        .mutate_request(move |req| {
            if let Some(v) = &v {
                req.headers_mut().insert("x-emulator-source-vpce", v.clone());
            }
            if insecure {
                req.headers_mut().insert("x-emulator-secure-transport", "false");
            }
        })
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("GetObject: {}", e.code().unwrap_or("no code")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_access_follows_the_bucket_policy() {
    let t = TestEnv::new("environment-data-access").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let status = env.status.expect("status");
    let bucket = status.storage.and_then(|s| s.data_bucket).expect("status.storage.dataBucket");
    let network = status.network.expect("status.network");
    let vpce = network.vpc_endpoint_ids.get("s3").cloned().expect("status.network.vpcEndpointIds.s3");
    let interface = network.vpc_endpoint_ids.get("sagemaker.api").cloned().expect("vpcEndpointIds[sagemaker.api]");

    // A data scientist: their own IAM user, named in identity.personaPrincipals, working as the
    // DataScientist persona role (which the bucket and key policies admit); not the controller,
    // so not exempt from the endpoint deny.
    let dev = t.clients(&t.account(1)).await;
    let alice = dev.iam.create_user().user_name("alice").send().await.unwrap().user.unwrap().arn;
    let patch = json!({"spec": {"identity": {"personaPrincipals": {"DataScientist": [alice]}}}});
    api.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(60)).await;
    let persona = env.status.unwrap().identity.unwrap().persona_role_arns["DataScientist"].clone();
    let config = t.assume(&t.emulator.user_credentials(&t.account(1), "alice"), &persona).await;
    let s3 = s3::Client::from_conf(s3::config::Builder::from(&config).force_path_style(true).build());

    assert_eq!(
        object_round_trip(&s3, &bucket, "through-endpoint.csv", Some(&vpce), false).await,
        Ok(()),
        "PutObject/GetObject through the environment's S3 endpoint {vpce} should succeed"
    );
    assert_eq!(
        object_round_trip(&s3, &bucket, "no-endpoint.csv", None, false).await,
        Err("PutObject: AccessDenied".to_owned()),
        "PutObject without the S3 endpoint should be denied"
    );
    assert_eq!(
        get_only(&s3, &bucket, "through-endpoint.csv", None, false).await,
        Err("GetObject: AccessDenied".to_owned()),
        "GetObject without the S3 endpoint should be denied"
    );
    assert_eq!(
        get_only(&s3, &bucket, "through-endpoint.csv", Some(&interface), false).await,
        Err("GetObject: AccessDenied".to_owned()),
        "GetObject through another endpoint of the VPC ({interface}) should be denied"
    );
    assert_eq!(
        object_round_trip(&s3, &bucket, "insecure.csv", Some(&vpce), true).await,
        Err("PutObject: AccessDenied".to_owned()),
        "PutObject through the endpoint but without TLS should be denied"
    );
    assert_eq!(
        get_only(&s3, &bucket, "through-endpoint.csv", Some(&vpce), true).await,
        Err("GetObject: AccessDenied".to_owned()),
        "GetObject through the endpoint but without TLS should be denied"
    );
    // Still readable the right way after the refusals.
    assert_eq!(get_only(&s3, &bucket, "through-endpoint.csv", Some(&vpce), false).await, Ok(()));

    // Uploads may name the s3 key, but no other key and no other encryption.
    let s3_key = status.encryption.and_then(|e| e.s3_key_arn).expect("status.encryption.s3KeyArn");
    let put = |sse: &'static str, key: Option<String>| {
        let vpce = vpce.clone();
        s3.put_object()
            .bucket(&bucket)
            .key("encrypted.csv")
            .body(ByteStream::from_static(b"x"))
            .server_side_encryption(sse.into())
            .set_ssekms_key_id(key)
            .customize()
            .mutate_request(move |req| {
                req.headers_mut().insert("x-emulator-source-vpce", vpce.clone());
            })
            .send()
    };
    let code = |r: Result<_, sagekeeper_aws::sdk::s3::error::SdkError<_, _>>| {
        r.map(|_| ()).map_err(|e| e.code().map(str::to_owned))
    };
    assert_eq!(code(put("aws:kms", Some(s3_key)).await), Ok(()), "naming the s3 key is fine");
    let other = format!("arn:aws:kms:us-east-1:{}:key/other", t.account(1));
    assert_eq!(code(put("aws:kms", Some(other)).await), Err(Some("AccessDenied".into())), "another KMS key is refused");
    assert_eq!(code(put("AES256", None).await), Err(Some("AccessDenied".into())), "SSE-S3 is refused");
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<(&'a str, &'a str)> {
    conditions::find(conditions, type_).map(|c| (c.status.as_str(), c.reason.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn domain_pending_reports_studio_pending_then_converges() {
    let t = TestEnv::new("environment-domain-pending").await;
    // Long enough that a loaded machine still sees the domain Pending after the
    // condition says so (8 s once let it turn InService between the two reads).
    t.emulator.configure(json!({"account": t.account(1), "domainPendingSeconds": 25}));
    let _controller = t.controller_with(|s| s.pending_interval = Duration::from_secs(2), None).await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let start = Instant::now();
    let pending = loop {
        let env = api.get("fraud").await.unwrap();
        let current = env.status.as_ref().and_then(|s| s.observed_generation) == env.metadata.generation;
        let conditions = env.conditions().to_vec();
        if current
            && condition(&conditions, "StudioReady") == Some(("False", "StudioPending"))
            && condition(&conditions, "Ready") == Some(("False", "StudioPending"))
            && condition(&conditions, "Reconciling").map(|c| c.0) == Some("True")
        {
            break env;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for StudioReady=False StudioPending, Ready=False StudioPending, Reconciling=True; last: {:#?}",
            conditions
                .iter()
                .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let conditions = pending.conditions();
    assert_eq!(condition(conditions, "Stalled").map(|c| c.0), Some("False"), "Stalled while pending: {conditions:?}");
    let message = &conditions::find(conditions, "StudioReady").unwrap().message;
    assert!(message.contains("Studio domain"), "StudioReady should say the domain is pending: {message}");
    for ready in ["NetworkReady", "EncryptionReady", "StorageReady", "IdentityReady", "TargetAccountsReady"] {
        assert_eq!(
            condition(conditions, ready).map(|c| c.0),
            Some("True"),
            "only Studio should be waiting, but {ready} is not True: {conditions:?}"
        );
    }
    // The emulator really holds the domain Pending.
    let dev = clients(&t, &t.account(1)).await;
    let domains = dev.sm.list_domains().send().await.unwrap();
    let statuses: Vec<&str> = domains.domains().iter().filter_map(|d| d.status()).map(|s| s.as_str()).collect();
    assert_eq!(statuses, ["Pending"], "the emulator should hold the one domain in Pending");

    let ready = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    assert_eq!(condition(ready.conditions(), "StudioReady"), Some(("True", "Converged")), "{:?}", ready.conditions());
    assert_eq!(condition(ready.conditions(), "Reconciling").map(|c| c.0), Some("False"), "{:?}", ready.conditions());
    let studio = ready.status.and_then(|s| s.studio).expect("status.studio");
    assert_eq!(set(&studio.user_profiles), set(["alice", "bob"]), "status.studio.userProfiles once InService");
}
