//! Network teardown, in dependency order: endpoints, the public side (routes, NAT gateways and
//! their addresses, public subnets, internet gateway), security groups (ours and the NFS groups
//! SageMaker made for the domain, whose rules reference each other and must be revoked first),
//! private subnets and route tables, the VPC. AWS's DependencyViolation while something drains
//! is "not yet", not failure.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{RouteTable, SecurityGroup};

use super::observe::{self, Observed};
use crate::errors::{AwsError, ErrorKind, Required};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Owner, Step, StepResult};

/// The tag SageMaker puts on the security groups it makes for a domain's home file system.
const SAGEMAKER_MANAGED_TAG: &str = "ManagedByAmazonSageMakerResource";

/// Deletes everything of the network this owner has in the account; pending while parts drain.
/// In a borrowed VPC (`existing`), only what sagekeeper made there goes: its endpoints, its
/// security groups and the NFS groups SageMaker made for its Studio domain (`domain_id`); the
/// VPC, subnets, route tables and everything of others stay as they are.
pub async fn delete_network(
    session: &Session,
    owner: &Owner,
    existing: Option<&str>,
    domain_id: Option<&str>,
    changes: &Changes,
) -> StepResult<()> {
    let ec2 = session.ec2();
    if let Some(vpc_id) = existing {
        let mut seen = observe::observe(ec2, vpc_id, owner).await?;
        seen.endpoints = Observed::of_endpoints(&observe::endpoints(ec2, vpc_id).await?, owner).endpoints;
        let ours = Ours { vpc: false, domain_id };
        return delete_vpc(ec2, vpc_id, &seen, ours, changes).await;
    }
    let vpcs = ec2
        .describe_vpcs()
        .filters(observe::owned_by(owner))
        .filters(observe::component("vpc"))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    for vpc_id in vpcs.vpcs().iter().filter_map(|v| v.vpc_id()) {
        let mut seen = observe::observe(ec2, vpc_id, owner).await?;
        seen.endpoints = Observed::of_endpoints(&observe::endpoints(ec2, vpc_id).await?, owner).endpoints;
        if let Step::Pending(why) = delete_vpc(ec2, vpc_id, &seen, Ours { vpc: true, domain_id: None }, changes).await?
        {
            return Ok(Step::Pending(why));
        }
    }
    Ok(Step::Ready(()))
}

/// The NFS security groups SageMaker made in this VPC for a Studio domain.
pub fn nfs_security_groups(seen: &Observed) -> Vec<&SecurityGroup> {
    seen.groups.iter().filter(|g| observe::tag(g.tags(), SAGEMAKER_MANAGED_TAG).is_some()).collect()
}

/// What of a VPC is sagekeeper's to delete.
#[derive(Clone, Copy)]
struct Ours<'a> {
    /// The VPC itself (and so every NFS group SageMaker made in it).
    vpc: bool,
    /// In a borrowed VPC: the Studio domain whose NFS groups go.
    domain_id: Option<&'a str>,
}

impl Ours<'_> {
    /// Whether an NFS group SageMaker made (tagged with its domain's ARN) is ours to delete.
    fn nfs_group(&self, group: &SecurityGroup) -> bool {
        let Some(domain) = observe::tag(group.tags(), SAGEMAKER_MANAGED_TAG) else { return false };
        self.vpc || self.domain_id.is_some_and(|id| domain.rsplit('/').next() == Some(id))
    }
}

async fn delete_vpc(ec2: &Client, vpc_id: &str, seen: &Observed, ours: Ours<'_>, changes: &Changes) -> StepResult<()> {
    let endpoints: Vec<String> = seen
        .endpoints
        .iter()
        .filter(|e| seen.owns(e.tags()))
        .filter_map(|e| e.vpc_endpoint_id().map(str::to_owned))
        .collect();
    if !endpoints.is_empty() {
        ec2.delete_vpc_endpoints()
            .set_vpc_endpoint_ids(Some(endpoints.clone()))
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        changes.record(Action::Deleted, format!("{} VPC endpoints", endpoints.len()));
    }
    if let Some(why) = delete_public_side(ec2, seen, changes).await? {
        return Ok(Step::Pending(why));
    }
    let groups: Vec<&SecurityGroup> = seen.groups.iter().filter(|g| seen.owns(g.tags()) || ours.nfs_group(g)).collect();
    // Rules first: groups that reference each other cannot be deleted one by one otherwise.
    for group in &groups {
        let id = &group.group_id().required("DescribeSecurityGroups", "GroupId")?;
        if !group.ip_permissions().is_empty() {
            let call = ec2
                .revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(group.ip_permissions().to_vec()));
            pending_on_busy(call.send().await.map_err(AwsError::from_sdk))?;
        }
        if !group.ip_permissions_egress().is_empty() {
            let call = ec2
                .revoke_security_group_egress()
                .group_id(id)
                .set_ip_permissions(Some(group.ip_permissions_egress().to_vec()));
            pending_on_busy(call.send().await.map_err(AwsError::from_sdk))?;
        }
    }
    for group in &groups {
        let id = &group.group_id().required("DescribeSecurityGroups", "GroupId")?;
        if let Some(why) =
            pending_on_busy(ec2.delete_security_group().group_id(id).send().await.map_err(AwsError::from_sdk))?
        {
            return Ok(Step::Pending(why));
        }
        changes.record(Action::Deleted, format!("security group {id}"));
    }
    for subnet in seen.subnets.iter().filter(|s| seen.owns(s.tags())) {
        let id = &subnet.subnet_id().required("DescribeSubnets", "SubnetId")?;
        if let Some(why) = pending_on_busy(ec2.delete_subnet().subnet_id(id).send().await.map_err(AwsError::from_sdk))?
        {
            return Ok(Step::Pending(why));
        }
        changes.record(Action::Deleted, format!("subnet {id}"));
    }
    for table in seen.route_tables.iter().filter(|r| seen.owns(r.tags())) {
        if let Some(why) = delete_route_table(ec2, table, changes).await? {
            return Ok(Step::Pending(why));
        }
    }
    if !ours.vpc {
        return Ok(Step::Ready(()));
    }
    if let Some(why) = pending_on_busy(ec2.delete_vpc().vpc_id(vpc_id).send().await.map_err(AwsError::from_sdk))? {
        return Ok(Step::Pending(why));
    }
    changes.record(Action::Deleted, format!("VPC {vpc_id}"));
    Ok(Step::Ready(()))
}

/// Removes the public side this owner has: default routes of public route tables go with the
/// tables; NAT gateways are deleted and waited for before their addresses are released and
/// the subnets and internet gateway go. Returns what it still waits for.
pub(crate) async fn delete_public_side(
    ec2: &Client,
    seen: &Observed,
    changes: &Changes,
) -> Result<Option<String>, AwsError> {
    let nats: Vec<String> = seen
        .nat_gateways
        .iter()
        .filter(|n| seen.owns(n.tags()))
        .filter_map(|n| n.nat_gateway_id().map(str::to_owned))
        .collect();
    for nat in &nats {
        ec2.delete_nat_gateway().nat_gateway_id(nat).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Deleted, format!("NAT gateway {nat}"));
    }
    if !nats.is_empty() {
        return Ok(Some(format!("NAT gateways {} are being deleted", nats.join(", "))));
    }
    for address in seen.addresses.iter().filter(|a| seen.owns(a.tags())) {
        let id = &address.allocation_id().required("DescribeAddresses", "AllocationId")?;
        if let Some(why) =
            pending_on_busy(ec2.release_address().allocation_id(id).send().await.map_err(AwsError::from_sdk))?
        {
            return Ok(Some(why));
        }
        changes.record(Action::Deleted, format!("Elastic IP {id}"));
    }
    for table in seen.route_tables.iter().filter(|r| seen.is(r.tags(), "route-table/public")) {
        if let Some(why) = delete_route_table(ec2, table, changes).await? {
            return Ok(Some(why));
        }
    }
    for subnet in seen.subnets.iter().filter(|s| {
        observe::tag(s.tags(), sagekeeper_api::naming::COMPONENT_TAG).is_some_and(|c| c.starts_with("subnet/public/"))
            && seen.owns(s.tags())
    }) {
        let id = &subnet.subnet_id().required("DescribeSubnets", "SubnetId")?;
        if let Some(why) = pending_on_busy(ec2.delete_subnet().subnet_id(id).send().await.map_err(AwsError::from_sdk))?
        {
            return Ok(Some(why));
        }
        changes.record(Action::Deleted, format!("subnet {id}"));
    }
    for igw in seen.internet_gateways.iter().filter(|g| seen.owns(g.tags())) {
        let id = &igw.internet_gateway_id().required("DescribeInternetGateways", "InternetGatewayId")?;
        for attachment in igw.attachments().iter().filter_map(|a| a.vpc_id()) {
            ec2.detach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(attachment)
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
        }
        ec2.delete_internet_gateway().internet_gateway_id(id).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Deleted, format!("internet gateway {id}"));
    }
    Ok(None)
}

/// Disassociates a route table from its subnets, then deletes it; returns what it waits for.
async fn delete_route_table(ec2: &Client, table: &RouteTable, changes: &Changes) -> Result<Option<String>, AwsError> {
    let id = &table.route_table_id().required("DescribeRouteTables", "RouteTableId")?;
    for association in table.associations().iter().filter(|a| a.main() != Some(true)) {
        let Some(association) = association.route_table_association_id() else { continue };
        let result =
            ec2.disassociate_route_table().association_id(association).send().await.map_err(AwsError::from_sdk);
        if let Some(why) = pending_on_busy(result)? {
            return Ok(Some(why));
        }
    }
    if let Some(why) =
        pending_on_busy(ec2.delete_route_table().route_table_id(id).send().await.map_err(AwsError::from_sdk))?
    {
        return Ok(Some(why));
    }
    changes.record(Action::Deleted, format!("route table {id}"));
    Ok(None)
}

/// A busy resource (DependencyViolation while something drains) is a wait, not a failure.
fn pending_on_busy<T>(result: Result<T, AwsError>) -> Result<Option<String>, AwsError> {
    match result {
        Ok(_) => Ok(None),
        Err(e) if e.kind == ErrorKind::Busy => Ok(Some(e.to_string())),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
