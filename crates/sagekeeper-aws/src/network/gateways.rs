//! The public side, only with `internetAccess: NatGateway`: an internet gateway, a public subnet
//! per zone sharing one public route table, an Elastic IP and a NAT gateway per zone, and each
//! private route table's default route through its zone's NAT. Switching back to `None` takes
//! all of it away again, routes first.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{DomainType, ResourceType};

use super::observe::Observed;
use super::{NetworkPlan, create_subnet, ensure_association, ensure_route_table, tag_spec};
use crate::errors::{AwsError, Required};
use crate::steps::{Action, Changes, Step, StepResult};

const ANYWHERE: &str = "0.0.0.0/0";

/// Converges the public side; returns the public subnet ids (none when internet-free).
pub(crate) async fn ensure_internet(
    ec2: &Client,
    plan: &NetworkPlan,
    vpc_id: &str,
    seen: &Observed,
    private_route_tables: &[String],
    changes: &Changes,
) -> StepResult<Vec<String>> {
    if !plan.nat {
        return remove_internet(ec2, seen, private_route_tables, changes).await;
    }
    let igw = ensure_internet_gateway(ec2, plan, vpc_id, seen, changes).await?;
    let public_rt =
        ensure_route_table(ec2, plan, vpc_id, seen, "route-table/public", &format!("{}-public", plan.name), changes)
            .await?;
    ensure_default_route(ec2, seen, &public_rt, Target::Gateway(&igw), changes).await?;
    let mut public_subnets = Vec::new();
    let mut pending = None;
    for (i, zone) in plan.zones.iter().enumerate() {
        let component = format!("subnet/public/{}", zone.name);
        let subnet = match seen.subnet(&component) {
            Some(id) => id,
            None => {
                let name = format!("{}-public-{i}", plan.name);
                create_subnet(ec2, plan, vpc_id, &zone.public_cidr, &zone.name, &component, &name, changes).await?
            }
        };
        ensure_association(ec2, seen, &public_rt, &subnet, changes).await?;
        match ensure_nat(ec2, plan, seen, &zone.name, &subnet, changes).await? {
            Step::Ready(nat) => {
                ensure_default_route(ec2, seen, &private_route_tables[i], Target::Nat(&nat), changes).await?
            }
            Step::Pending(why) => pending = Some(why),
        }
        public_subnets.push(subnet);
    }
    Ok(pending.map_or(Step::Ready(public_subnets), Step::Pending))
}

async fn ensure_internet_gateway(
    ec2: &Client,
    plan: &NetworkPlan,
    vpc_id: &str,
    seen: &Observed,
    changes: &Changes,
) -> Result<String, AwsError> {
    if let Some(igw) = seen.internet_gateways.iter().find(|g| seen.is(g.tags(), "internet-gateway")) {
        return igw.internet_gateway_id().required("DescribeInternetGateways", "InternetGatewayId");
    }
    let spec =
        tag_spec(ResourceType::InternetGateway, &plan.owner.tags("internet-gateway"), &format!("{}-igw", plan.name));
    let created = ec2.create_internet_gateway().tag_specifications(spec).send().await.map_err(AwsError::from_sdk)?;
    let id = created
        .internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .required("CreateInternetGateway", "InternetGatewayId")?;
    ec2.attach_internet_gateway().internet_gateway_id(&id).vpc_id(vpc_id).send().await.map_err(AwsError::from_sdk)?;
    changes.record(Action::Created, format!("internet gateway {id}"));
    Ok(id)
}

/// The zone's NAT gateway (and its Elastic IP); pending until AWS reports it available.
async fn ensure_nat(
    ec2: &Client,
    plan: &NetworkPlan,
    seen: &Observed,
    zone: &str,
    subnet: &str,
    changes: &Changes,
) -> StepResult<String> {
    let component = format!("nat/{zone}");
    if let Some(nat) = seen.nat_gateways.iter().find(|n| seen.is(n.tags(), &component)) {
        let id = nat.nat_gateway_id().required("DescribeNatGateways", "NatGatewayId")?;
        return Ok(match nat.state().map(|s| s.as_str()) {
            Some("available") => Step::Ready(id),
            state => Step::Pending(format!("NAT gateway {id} is {}", state.unwrap_or("unknown"))),
        });
    }
    let eip_component = format!("eip/{zone}");
    let allocation = match seen.addresses.iter().find(|a| seen.is(a.tags(), &eip_component)) {
        Some(address) => address.allocation_id().required("DescribeAddresses", "AllocationId")?,
        None => {
            let spec = tag_spec(
                ResourceType::ElasticIp,
                &plan.owner.tags(&eip_component),
                &format!("{}-nat-{zone}", plan.name),
            );
            let allocated = ec2
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(spec)
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            let id = allocated.allocation_id().required("AllocateAddress", "AllocationId")?;
            changes.record(Action::Created, format!("Elastic IP {id}"));
            id
        }
    };
    let spec = tag_spec(ResourceType::Natgateway, &plan.owner.tags(&component), &format!("{}-nat-{zone}", plan.name));
    let created = ec2
        .create_nat_gateway()
        .subnet_id(subnet)
        .allocation_id(allocation)
        .tag_specifications(spec)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let nat = created.nat_gateway();
    let id = nat.and_then(|n| n.nat_gateway_id()).required("CreateNatGateway", "NatGatewayId")?;
    changes.record(Action::Created, format!("NAT gateway {id}"));
    Ok(match nat.and_then(|n| n.state()).map(|s| s.as_str()) {
        Some("available") => Step::Ready(id),
        _ => Step::Pending(format!("NAT gateway {id} is being created")),
    })
}

enum Target<'a> {
    Gateway(&'a str),
    Nat(&'a str),
}

/// The route table's 0.0.0.0/0 route, pointing at `target` (replaced if it points elsewhere).
async fn ensure_default_route(
    ec2: &Client,
    seen: &Observed,
    route_table: &str,
    target: Target<'_>,
    changes: &Changes,
) -> Result<(), AwsError> {
    let current = seen
        .route_table_by_id(route_table)
        .and_then(|r| r.routes().iter().find(|route| route.destination_cidr_block() == Some(ANYWHERE)));
    let (gateway, nat) = match target {
        Target::Gateway(id) => (Some(id), None),
        Target::Nat(id) => (None, Some(id)),
    };
    if let Some(route) = current {
        if route.gateway_id() == gateway && route.nat_gateway_id() == nat {
            return Ok(());
        }
        ec2.replace_route()
            .route_table_id(route_table)
            .destination_cidr_block(ANYWHERE)
            .set_gateway_id(gateway.map(str::to_owned))
            .set_nat_gateway_id(nat.map(str::to_owned))
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("default route of {route_table}"));
        return Ok(());
    }
    ec2.create_route()
        .route_table_id(route_table)
        .destination_cidr_block(ANYWHERE)
        .set_gateway_id(gateway.map(str::to_owned))
        .set_nat_gateway_id(nat.map(str::to_owned))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    changes.record(Action::Created, format!("default route of {route_table}"));
    Ok(())
}

/// Internet-free: removes default routes, NAT gateways (pending until gone), Elastic IPs, the
/// public route table and subnets, and the internet gateway that this environment owns.
async fn remove_internet(
    ec2: &Client,
    seen: &Observed,
    private_route_tables: &[String],
    changes: &Changes,
) -> StepResult<Vec<String>> {
    for rt in private_route_tables {
        let has_default = seen
            .route_table_by_id(rt)
            .is_some_and(|r| r.routes().iter().any(|route| route.destination_cidr_block() == Some(ANYWHERE)));
        if has_default {
            ec2.delete_route()
                .route_table_id(rt)
                .destination_cidr_block(ANYWHERE)
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            changes.record(Action::Deleted, format!("default route of {rt}"));
        }
    }
    Ok(match super::teardown::delete_public_side(ec2, seen, changes).await? {
        Some(why) => Step::Pending(why),
        None => Step::Ready(Vec::new()),
    })
}
