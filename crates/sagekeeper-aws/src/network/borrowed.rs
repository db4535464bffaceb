//! A network someone else owns (`spec.network.existing`, `spec.targetNetwork.existing`): a VPC
//! and private subnets a network team made. sagekeeper checks them before it writes anything,
//! adds only what it owns (its security groups, the VPC endpoints the VPC lacks, its S3 gateway
//! endpoint on the subnets' route tables), and never modifies or deletes the VPC, its subnets,
//! route tables or anything else it did not create.

use std::collections::BTreeSet;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, RouteTable, SecurityGroup, Vpc};

use super::observe::Observed;
use sagekeeper_api::naming::LENT_TO_TAG;

use crate::errors::AwsError;
use crate::sessions::Session;
use crate::steps::Owner;

/// A network someone else owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// The spec field that names it, for messages (`spec.network.existing`).
    pub field: String,
    /// The VPC.
    pub vpc_id: String,
    /// Its private subnets the environment uses, in the spec's order.
    pub subnet_ids: Vec<String>,
    /// The environment's namespace, which the VPC's `sagekeeper.io/lent-to` tag must name.
    pub namespace: String,
}

/// What one look at a borrowed network found: the VPC, the named subnets (wherever they
/// are), the VPC's route tables and security groups. Four calls.
#[derive(Debug)]
pub struct SeenBorrowed {
    vpc: Option<Vpc>,
    pub(crate) observed: Observed,
}

/// One of the named subnets as the checks found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BorrowedSubnet {
    /// The subnet id.
    pub id: String,
    /// Its availability zone.
    pub zone: String,
    /// Its IPv4 CIDR.
    pub cidr: String,
    /// The route table it uses (its own association, else the VPC's main table).
    pub route_table: String,
}

/// What the checks established about a borrowed network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The VPC's IPv4 CIDRs (the primary and any associated).
    pub vpc_cidrs: Vec<String>,
    /// The named subnets, in the spec's order.
    pub subnets: Vec<BorrowedSubnet>,
}

impl Checked {
    /// The subnets' zones, each once, in the subnets' order.
    pub fn zones(&self) -> Vec<String> {
        each_once(self.subnets.iter().map(|s| &s.zone))
    }

    /// The route tables the subnets use, each once.
    pub fn route_tables(&self) -> Vec<String> {
        each_once(self.subnets.iter().map(|s| &s.route_table))
    }

    /// One subnet per zone (the first named): interface endpoints take one subnet per zone.
    pub fn endpoint_subnets(&self) -> Vec<String> {
        let mut zones = BTreeSet::new();
        self.subnets.iter().filter(|s| zones.insert(s.zone.clone())).map(|s| s.id.clone()).collect()
    }
}

/// Each value once, in the order first seen.
fn each_once<'a>(values: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut once: Vec<String> = Vec::new();
    for value in values {
        if !once.contains(value) {
            once.push(value.clone());
        }
    }
    once
}

/// Reads the borrowed network: the VPC, the named subnets, the VPC's route tables and security
/// groups (where sagekeeper's own groups live), side by side.
pub(crate) async fn observe(ec2: &Client, existing: &Existing, owner: &Owner) -> Result<SeenBorrowed, AwsError> {
    let of = |name: &str, values: Vec<String>| Filter::builder().name(name).set_values(Some(values)).build();
    let vpc = || of("vpc-id", vec![existing.vpc_id.clone()]);
    let (vpcs, subnets, route_tables, groups) = tokio::try_join!(
        async { ec2.describe_vpcs().filters(vpc()).send().await.map_err(AwsError::from_sdk) },
        async {
            let named = of("subnet-id", existing.subnet_ids.clone());
            ec2.describe_subnets().filters(named).send().await.map_err(AwsError::from_sdk)
        },
        async { ec2.describe_route_tables().filters(vpc()).send().await.map_err(AwsError::from_sdk) },
        async { ec2.describe_security_groups().filters(vpc()).send().await.map_err(AwsError::from_sdk) },
    )?;
    let mut observed = Observed::of_owner(owner);
    observed.subnets = subnets.subnets().to_vec();
    observed.route_tables = route_tables.route_tables().to_vec();
    observed.groups = groups.security_groups().to_vec();
    Ok(SeenBorrowed { vpc: vpcs.vpcs().first().cloned(), observed })
}

/// Checks the borrowed network before anything is written to it or for it: the VPC exists,
/// every named subnet belongs to it and lies in one of `zones` (when given), and, unless
/// `internet` is allowed, no subnet's route table sends traffic to an internet gateway (or
/// egress-only internet gateway) or a NAT gateway. Each failure names the field, the subnet
/// and the route, as an `InvalidConfiguration` error.
pub fn check(
    seen: &SeenBorrowed,
    existing: &Existing,
    internet: bool,
    zones: Option<&[String]>,
) -> Result<Checked, AwsError> {
    let invalid = |message: String| AwsError::from_code("InvalidConfiguration", &message, None);
    let field = &existing.field;
    let vpc_id = &existing.vpc_id;
    let Some(vpc) = &seen.vpc else {
        return Err(invalid(format!("{field}.vpcId: VPC {vpc_id} does not exist in the account and region")));
    };
    if let Some(uid) = super::observe::tag(vpc.tags(), sagekeeper_api::naming::OWNER_UID_TAG) {
        return Err(invalid(format!(
            "{field}.vpcId: VPC {vpc_id} is a network sagekeeper made for another object (sagekeeper.io/owner-uid {uid}); an existing network must be one sagekeeper does not manage"
        )));
    }
    // Only a VPC its owner lent to this namespace: a VPC of the account is not every tenant's.
    let namespace = &existing.namespace;
    if super::observe::tag(vpc.tags(), LENT_TO_TAG) != Some(namespace.as_str()) {
        return Err(invalid(format!(
            "{field}.vpcId: VPC {vpc_id} is not lent to namespace {namespace}: its owner lends it by tagging it {LENT_TO_TAG}={namespace}"
        )));
    }
    // Two environments cannot share one: a route table takes one S3 gateway endpoint, a VPC one
    // private-DNS endpoint per service, and each environment's admit only its own accounts.
    let others =
        seen.observed.groups.iter().find_map(|g| owner_uid(g).filter(|u| !seen.observed.owns_uid(u)).map(|u| (g, u)));
    if let Some((group, uid)) = others {
        return Err(invalid(format!(
            "{field}.vpcId: VPC {vpc_id} is already used by another sagekeeper object (security group {} has sagekeeper.io/owner-uid {uid}); an existing network serves one environment",
            group.group_id().unwrap_or("?"),
        )));
    }
    let mut vpc_cidrs: Vec<String> = (vpc.cidr_block_association_set().iter())
        .filter(|a| a.cidr_block_state().and_then(|s| s.state()).is_none_or(|s| s.as_str() == "associated"))
        .filter_map(|a| a.cidr_block().map(str::to_owned))
        .collect();
    if vpc_cidrs.is_empty() {
        vpc_cidrs.extend(vpc.cidr_block().map(str::to_owned));
    }
    let main_table =
        seen.observed.route_tables.iter().find(|t| t.associations().iter().any(|a| a.main() == Some(true)));
    let mut subnets = Vec::with_capacity(existing.subnet_ids.len());
    for id in &existing.subnet_ids {
        let Some(subnet) = seen.observed.subnets.iter().find(|s| s.subnet_id() == Some(id.as_str())) else {
            return Err(invalid(format!(
                "{field}.privateSubnetIds: subnet {id} does not exist in the account and region"
            )));
        };
        if subnet.vpc_id() != Some(vpc_id.as_str()) {
            let other = subnet.vpc_id().unwrap_or("another VPC");
            return Err(invalid(format!("{field}.privateSubnetIds: subnet {id} belongs to {other}, not to {vpc_id}")));
        }
        let zone = subnet.availability_zone().unwrap_or_default().to_owned();
        if let Some(zones) = zones
            && !zones.contains(&zone)
        {
            return Err(invalid(format!(
                "{field}.privateSubnetIds: subnet {id} is in {zone}, not in one of the environment's zones ({})",
                zones.join(", ")
            )));
        }
        let table = seen
            .observed
            .route_tables
            .iter()
            .find(|t| t.associations().iter().any(|a| a.subnet_id() == Some(id.as_str())))
            .or(main_table);
        let Some(table) = table else {
            return Err(invalid(format!("{field}.privateSubnetIds: subnet {id} has no route table in {vpc_id}")));
        };
        let table_id = table.route_table_id().unwrap_or_default().to_owned();
        if !internet && let Some((destination, target)) = internet_route(table) {
            return Err(invalid(format!(
                "{field}.privateSubnetIds: subnet {id} reaches the internet: its route table {table_id} sends {destination} to {target}, and spec.network.internetAccess is None (use private subnets without such a route, or internetAccess NatGateway)"
            )));
        }
        let cidr = subnet.cidr_block().unwrap_or_default().to_owned();
        subnets.push(BorrowedSubnet { id: id.clone(), zone, cidr, route_table: table_id });
    }
    Ok(Checked { vpc_cidrs, subnets })
}

/// The sagekeeper owner a security group carries, if any.
fn owner_uid(group: &SecurityGroup) -> Option<&str> {
    super::observe::tag(group.tags(), sagekeeper_api::naming::OWNER_UID_TAG)
}

/// The first active route of the table to the internet: (destination, gateway).
fn internet_route(table: &RouteTable) -> Option<(String, String)> {
    table.routes().iter().filter(|r| r.state().is_none_or(|s| s.as_str() != "blackhole")).find_map(|r| {
        let destination = r
            .destination_cidr_block()
            .or(r.destination_ipv6_cidr_block())
            .or(r.destination_prefix_list_id())
            .unwrap_or("?")
            .to_owned();
        let gateway = r.gateway_id().filter(|g| g.starts_with("igw-")).map(|g| format!("internet gateway {g}"));
        let egress_only = r.egress_only_internet_gateway_id().map(|g| format!("egress-only internet gateway {g}"));
        let nat = r.nat_gateway_id().map(|g| format!("NAT gateway {g}"));
        gateway.or(egress_only).or(nat).map(|target| (destination, target))
    })
}

/// Reads and checks a borrowed network without writing: what the environment checks before
/// anything of it exists. Returns the subnets' zones.
pub async fn check_existing(
    session: &Session,
    existing: &Existing,
    owner: &Owner,
    internet: bool,
    zones: &[String],
) -> Result<Vec<String>, AwsError> {
    let seen = observe(session.ec2(), existing, owner).await?;
    Ok(check(&seen, existing, internet, Some(zones))?.zones())
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{Route, RouteState, RouteTableAssociation, Subnet, Tag};

    use super::*;

    fn subnet(id: &str, vpc: &str, zone: &str, cidr: &str) -> Subnet {
        Subnet::builder().subnet_id(id).vpc_id(vpc).availability_zone(zone).cidr_block(cidr).build()
    }

    fn table(id: &str, subnet: Option<&str>, routes: Vec<Route>) -> RouteTable {
        let association = match subnet {
            Some(s) => RouteTableAssociation::builder().subnet_id(s).main(false).build(),
            None => RouteTableAssociation::builder().main(true).build(),
        };
        RouteTable::builder()
            .route_table_id(id)
            .vpc_id("vpc-1")
            .associations(association)
            .set_routes(Some(routes))
            .build()
    }

    fn seen(tables: Vec<RouteTable>) -> SeenBorrowed {
        let observed = Observed {
            subnets: vec![
                subnet("subnet-a", "vpc-1", "us-east-1a", "10.1.0.0/24"),
                subnet("subnet-b", "vpc-1", "us-east-1b", "10.1.16.0/24"),
                subnet("subnet-c", "vpc-1", "us-east-1a", "10.1.32.0/24"),
                subnet("subnet-x", "vpc-2", "us-east-1a", "10.2.0.0/24"),
            ],
            route_tables: tables,
            ..Observed::default()
        };
        let lent = Tag::builder().key(LENT_TO_TAG).value("team").build();
        SeenBorrowed {
            vpc: Some(Vpc::builder().vpc_id("vpc-1").cidr_block("10.1.0.0/16").tags(lent).build()),
            observed,
        }
    }

    fn seen_with_group(uid: &str) -> SeenBorrowed {
        let mut seen = seen(vec![table("rtb-main", None, vec![])]);
        let tag = Tag::builder().key(sagekeeper_api::naming::OWNER_UID_TAG).value(uid).build();
        seen.observed.groups =
            vec![aws_sdk_ec2::types::SecurityGroup::builder().group_id("sg-other").tags(tag).build()];
        seen
    }

    fn existing(subnets: &[&str]) -> Existing {
        Existing {
            field: "spec.network.existing".into(),
            vpc_id: "vpc-1".into(),
            subnet_ids: subnets.iter().map(|s| (*s).to_owned()).collect(),
            namespace: "team".into(),
        }
    }

    fn message(result: Result<Checked, AwsError>) -> String {
        let e = result.unwrap_err();
        assert_eq!(e.code, "InvalidConfiguration");
        e.message
    }

    #[test]
    fn subnets_without_their_own_table_use_the_main_one_and_endpoints_take_one_subnet_per_zone() {
        let local = Route::builder().destination_cidr_block("10.1.0.0/16").gateway_id("local").build();
        let seen =
            seen(vec![table("rtb-main", None, vec![local.clone()]), table("rtb-b", Some("subnet-b"), vec![local])]);
        let checked = check(&seen, &existing(&["subnet-a", "subnet-b", "subnet-c"]), false, None).unwrap();
        assert_eq!(checked.route_tables(), ["rtb-main", "rtb-b"]);
        assert_eq!(checked.zones(), ["us-east-1a", "us-east-1b"]);
        assert_eq!(checked.endpoint_subnets(), ["subnet-a", "subnet-b"]);
        assert_eq!(checked.vpc_cidrs, ["10.1.0.0/16"]);
    }

    #[test]
    fn a_route_to_an_internet_or_nat_gateway_is_refused_unless_internet_access_is_allowed() {
        for (route, named) in [
            (
                Route::builder().destination_cidr_block("0.0.0.0/0").gateway_id("igw-1").build(),
                "internet gateway igw-1",
            ),
            (Route::builder().destination_cidr_block("0.0.0.0/0").nat_gateway_id("nat-1").build(), "NAT gateway nat-1"),
            (
                Route::builder().destination_ipv6_cidr_block("::/0").egress_only_internet_gateway_id("eigw-1").build(),
                "egress-only internet gateway eigw-1",
            ),
        ] {
            let seen = seen(vec![table("rtb-main", None, vec![]), table("rtb-b", Some("subnet-b"), vec![route])]);
            let refused = message(check(&seen, &existing(&["subnet-a", "subnet-b"]), false, None));
            assert!(
                refused.contains("subnet subnet-b") && refused.contains("rtb-b") && refused.contains(named),
                "{refused}"
            );
            assert!(check(&seen, &existing(&["subnet-a", "subnet-b"]), true, None).is_ok());
        }
        let blackhole = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id("igw-1")
            .state(RouteState::Blackhole)
            .build();
        let seen = seen(vec![table("rtb-main", None, vec![blackhole])]);
        assert!(check(&seen, &existing(&["subnet-a"]), false, None).is_ok(), "a blackhole route leads nowhere");
    }

    #[test]
    fn foreign_missing_and_misplaced_subnets_and_sagekeepers_own_vpcs_are_refused() {
        let seen = seen(vec![table("rtb-main", None, vec![])]);
        let refused = message(check(&seen, &existing(&["subnet-a", "subnet-x"]), false, None));
        assert!(refused.contains("subnet subnet-x belongs to vpc-2, not to vpc-1"), "{refused}");
        let refused = message(check(&seen, &existing(&["subnet-gone"]), false, None));
        assert!(refused.contains("subnet subnet-gone does not exist"), "{refused}");
        let zones = ["us-east-1b".to_owned()];
        let refused = message(check(&seen, &existing(&["subnet-a"]), false, Some(&zones)));
        assert!(refused.contains("subnet subnet-a is in us-east-1a") && refused.contains("us-east-1b"), "{refused}");
        let ours = Tag::builder().key(sagekeeper_api::naming::OWNER_UID_TAG).value("uid-2").build();
        let taken = SeenBorrowed { vpc: Some(Vpc::builder().vpc_id("vpc-1").tags(ours).build()), ..seen };
        assert!(message(check(&taken, &existing(&["subnet-a"]), false, None)).contains("uid-2"));
        let mut shared = seen_with_group("uid-3");
        assert!(message(check(&shared, &existing(&["subnet-a"]), false, None)).contains("sg-other"));
        shared.observed.owner_uid = "uid-3".into();
        assert!(check(&shared, &existing(&["subnet-a"]), false, None).is_ok(), "its own groups are no obstacle");
        let mut ours_and_theirs = seen_with_group("uid-3");
        ours_and_theirs.observed.owner_uid = "uid-3".into();
        let theirs = Tag::builder().key(sagekeeper_api::naming::OWNER_UID_TAG).value("uid-4").build();
        ours_and_theirs.observed.groups.push(SecurityGroup::builder().group_id("sg-theirs").tags(theirs).build());
        assert!(message(check(&ours_and_theirs, &existing(&["subnet-a"]), false, None)).contains("sg-theirs"));
        let unlent = SeenBorrowed { vpc: Some(Vpc::builder().vpc_id("vpc-1").build()), ..seen_with_group("uid-9") };
        let refused = message(check(&unlent, &existing(&["subnet-a"]), false, None));
        assert!(
            refused.contains("not lent to namespace team") && refused.contains("sagekeeper.io/lent-to=team"),
            "{refused}"
        );
        let gone = SeenBorrowed { vpc: None, observed: Observed::default() };
        assert!(message(check(&gone, &existing(&["subnet-a"]), false, None)).contains("VPC vpc-1 does not exist"));
    }
}
