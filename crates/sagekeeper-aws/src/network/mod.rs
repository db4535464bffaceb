//! The network of an environment in one account: VPC with DNS, private subnets each with its
//! route table, with NatGateway the public side (internet gateway, public subnets, one NAT per
//! zone), the `workloads` and `endpoints` security groups, the S3 gateway endpoint and the
//! interface endpoints. One batched observation per pass (a describe per resource type,
//! filtered by VPC), then only the writes that differ.

mod borrowed;
mod gateways;
mod observe;
pub mod rules;
mod teardown;
mod vpc_endpoints;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Tag, TagSpecification, VpcAttributeName};

use crate::errors::{AwsError, Required};
use crate::observe::{Shared, Snapshot};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Depth, Owner, Step, StepResult};
pub use borrowed::{Existing, check_existing};
pub use observe::{AccountNetworks, Observed};
use rules::{Peer, Rule};
pub use teardown::{delete_network, nfs_security_groups};

/// What the network of one account should be.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkPlan {
    /// Tags and adoption.
    pub owner: Owner,
    /// Prefix of `Name` tags.
    pub name: String,
    /// The region, for service names.
    pub region: String,
    /// The VPC CIDR.
    pub vpc_cidr: String,
    /// One entry per availability zone, in order.
    pub zones: Vec<Zone>,
    /// Public subnets, an internet gateway and NAT gateways (else internet-free).
    pub nat: bool,
    /// Names of the two security groups.
    pub group_names: GroupNames,
    /// The interface endpoints.
    pub interface_endpoints: Vec<InterfaceEndpoint>,
    /// The S3 gateway endpoint's policy.
    pub s3_endpoint_policy: serde_json::Value,
    /// A network someone else owns, used instead of making one (`zones` and `vpc_cidr` then
    /// go unused, `nat` only allows the subnets' own routes to the internet).
    pub existing: Option<Existing>,
}

/// One interface endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct InterfaceEndpoint {
    /// Its status key, e.g. `sagemaker.api`.
    pub key: String,
    /// The full service name, e.g. `com.amazonaws.eu-west-1.sagemaker.api`.
    pub service: String,
    /// Its endpoint policy.
    pub policy: serde_json::Value,
}

/// The subnets of one availability zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// The zone, e.g. `us-east-1a`.
    pub name: String,
    /// Its private subnet's CIDR.
    pub private_cidr: String,
    /// Its public subnet's CIDR (used with NAT only).
    pub public_cidr: String,
}

/// The names of the environment's security groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupNames {
    /// Jobs, notebooks, Studio, endpoints' containers.
    pub workloads: String,
    /// The interface endpoints.
    pub endpoints: String,
}

/// What the network step produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkOutputs {
    /// The VPC.
    pub vpc_id: String,
    /// Private subnets, in zone order.
    pub private_subnet_ids: Vec<String>,
    /// Public subnets (NAT only), in zone order.
    pub public_subnet_ids: Vec<String>,
    /// The security groups.
    pub groups: Groups,
    /// The private subnets' route tables, in zone order (each once).
    pub private_route_table_ids: Vec<String>,
    /// The subnets of the interface endpoints: one per zone.
    pub endpoint_subnet_ids: Vec<String>,
    /// NAT gateway work still in progress (creating, or deleting before its address is
    /// released): the network step has more to do once it is done.
    pub waiting: Option<String>,
}

/// Which of the endpoints the environment uses (`used`, its ids) is not available yet, if
/// any: from what the pass saw of the VPC's endpoints; while one is not, that is forgotten so
/// the next try looks again. (A borrowed VPC may hold endpoints of others in any state.)
pub async fn endpoints_unavailable(
    session: &Session,
    seen: &Snapshot,
    vpc_id: &str,
    used: &EndpointOutputs,
) -> Result<Option<String>, AwsError> {
    let key = crate::observe::key(session, vpc_id);
    let used: BTreeSet<&str> = used.ids.values().map(String::as_str).collect();
    let read = || observe::endpoints(session.ec2(), vpc_id);
    let endpoints = seen.vpc_endpoints.waiting(&key, read, |e| vpc_endpoints::unavailable(e, &used).is_none()).await?;
    Ok(vpc_endpoints::unavailable(&endpoints, &used))
}

/// The key under which the S3 gateway endpoint is reported.
pub const S3_ENDPOINT: &str = "s3";

/// An environment's network in one account as a pass sees it: its VPC and everything in and
/// around it but the VPC endpoints.
#[derive(Debug)]
pub struct SeenNetwork {
    vpc_id: String,
    vpc_tags: Vec<Tag>,
    observed: Observed,
}

/// Converges the network of one account but its VPC endpoints (VPC, subnets, route tables,
/// gateways, security groups) and reports its ids, with NAT gateway work still in progress.
///
/// It starts from the account's listing of every sagekeeper network. A complete listing this
/// pass read is as fresh as a read of the network alone, and the step decides on it. A listing
/// shared from another pass, or one a Security-depth pass refreshed only in part, is only
/// checked against: the step runs with a client that cannot write, and when that finds
/// anything to do (or anything unfinished), the network is read afresh and the step decides on
/// that. A Full-depth pass never takes a listing refreshed in part as its check of the network
/// (its subnets and gateways are as the last complete listing saw them). A write forgets the
/// listings, here and shared.
pub async fn ensure_network(
    session: &Session,
    seen: &Snapshot,
    shared: &Shared,
    plan: &NetworkPlan,
    depth: Depth,
    changes: &Changes,
) -> StepResult<NetworkOutputs> {
    let s3_list = match plan.nat {
        true => None,
        false => Some(session.s3_prefix_list.get_or_try_init(|| s3_prefix_list(session.ec2(), &plan.region)).await?),
    };
    let s3_list = s3_list.map(String::as_str);
    if let Some(existing) = &plan.existing {
        // Not in the account's listing (which finds networks by sagekeeper's tags): read on
        // its own, four calls, every pass.
        let seen = borrowed::observe(session.ec2(), existing, &plan.owner).await?;
        return converge_borrowed(session.ec2(), plan, existing, &seen, s3_list, changes).await;
    }
    let account = session.access.clone();
    let read = async || {
        if depth == Depth::Security
            && let Some(last) = shared.complete_networks.peek(&account)
        {
            return observe::refresh(session.ec2(), &last).await;
        }
        shared.complete_listing(&account, observe::account(session.ec2())).await
    };
    let accept = |listing: &Arc<AccountNetworks>| listing.complete || depth == Depth::Security;
    let (listing, fresh) = seen.account_networks.get_marked(&account, &shared.networks, accept, read).await?;
    let mut found = listing.network(&plan.owner);
    if !(fresh && listing.complete) {
        if let Some(found) = &found
            && accept(&listing)
        {
            let (reader, unused) = (session.ec2_check(), Changes::default());
            let check = converge_network(reader, plan, Some(found.clone()), s3_list, depth, &unused);
            if let Ok(Step::Ready(outputs)) = check.await
                && outputs.waiting.is_none()
            {
                return Ok(Step::Ready(outputs));
            }
        }
        let key = crate::observe::key(session, &plan.owner.uid);
        found = seen.networks.get(&key, || observe::network(session.ec2(), &plan.owner)).await?;
    }
    let ours = Changes::default();
    let result = converge_network(session.ec2(), plan, found, s3_list, depth, &ours).await;
    if changes.absorb(ours) {
        seen.account_networks.forget(&account);
        seen.networks.forget(&crate::observe::key(session, &plan.owner.uid));
        shared.forget_networks(&account);
    }
    result
}

async fn converge_network(
    ec2: &Client,
    plan: &NetworkPlan,
    found: Option<Arc<SeenNetwork>>,
    s3_list: Option<&str>,
    depth: Depth,
    changes: &Changes,
) -> StepResult<NetworkOutputs> {
    let (seen, created) = match found {
        Some(seen) => (seen, false),
        None => {
            let (vpc_id, vpc_tags) = create_vpc(ec2, plan, changes).await?;
            // What AWS made with it (its main route table and default group) is not in the answer.
            let observed = observe::observe(ec2, &vpc_id, &plan.owner).await?;
            (Arc::new(SeenNetwork { vpc_id, vpc_tags, observed }), true)
        }
    };
    let (vpc_id, seen_vpc) = (&seen.vpc_id, &seen.observed);
    if created || depth == Depth::Full {
        ensure_dns(ec2, vpc_id, created, changes).await?;
    }
    ensure_tags(ec2, plan, &core_resources(vpc_id, &seen.vpc_tags, seen_vpc), changes).await?;
    let mut private = Vec::with_capacity(plan.zones.len());
    for (i, zone) in plan.zones.iter().enumerate() {
        private.push(ensure_private_zone(ec2, plan, vpc_id, seen_vpc, i, zone, changes).await?);
    }
    let route_tables: Vec<String> = private.iter().map(|(_, rt)| rt.clone()).collect();
    let internet = gateways::ensure_internet(ec2, plan, vpc_id, seen_vpc, &route_tables, changes).await?;
    let subnet_cidrs: Vec<String> = plan.zones.iter().map(|z| z.private_cidr.clone()).collect();
    let vpc_cidrs = [plan.vpc_cidr.clone()];
    let cidrs = Cidrs { vpc: &vpc_cidrs, subnets: &subnet_cidrs };
    let groups = ensure_groups(ec2, plan, vpc_id, seen_vpc, s3_list, cidrs, changes).await?;
    let private_subnet_ids: Vec<String> = private.into_iter().map(|(subnet, _)| subnet).collect();
    let (public_subnet_ids, waiting) = match internet {
        Step::Ready(public) => (public, None),
        Step::Pending(why) => (Vec::new(), Some(why)),
    };
    Ok(Step::Ready(NetworkOutputs {
        vpc_id: vpc_id.clone(),
        endpoint_subnet_ids: private_subnet_ids.clone(),
        private_subnet_ids,
        private_route_table_ids: route_tables,
        public_subnet_ids,
        groups,
        waiting,
    }))
}

/// A borrowed network: checked on every pass (a route to the internet added later stalls it
/// again), then only sagekeeper's own security groups are converged in it.
async fn converge_borrowed(
    ec2: &Client,
    plan: &NetworkPlan,
    existing: &Existing,
    seen: &borrowed::SeenBorrowed,
    s3_list: Option<&str>,
    changes: &Changes,
) -> StepResult<NetworkOutputs> {
    let checked = borrowed::check(seen, existing, plan.nat, None)?;
    let observed = &seen.observed;
    let ours: Vec<(&str, &[Tag])> = (observed.groups.iter())
        .filter(|g| observed.owns(g.tags()))
        .filter_map(|g| Some((g.group_id()?, g.tags())))
        .collect();
    ensure_tags(ec2, plan, &ours, changes).await?;
    let subnet_cidrs: Vec<String> = checked.subnets.iter().map(|s| s.cidr.clone()).collect();
    let cidrs = Cidrs { vpc: &checked.vpc_cidrs, subnets: &subnet_cidrs };
    let groups = ensure_groups(ec2, plan, &existing.vpc_id, observed, s3_list, cidrs, changes).await?;
    Ok(Step::Ready(NetworkOutputs {
        vpc_id: existing.vpc_id.clone(),
        private_subnet_ids: existing.subnet_ids.clone(),
        public_subnet_ids: Vec::new(),
        groups,
        private_route_table_ids: checked.route_tables(),
        endpoint_subnet_ids: checked.endpoint_subnets(),
        waiting: None,
    }))
}

/// The address ranges the security group rules name.
#[derive(Clone, Copy)]
struct Cidrs<'a> {
    /// The VPC's.
    vpc: &'a [String],
    /// The private subnets'.
    subnets: &'a [String],
}

/// Converges the VPC endpoints of a network (the S3 gateway and the interface endpoints), side
/// by side. Like [`ensure_network`], it decides on the account's listing when this pass read
/// it complete, checks any other listing (shared, or refreshed in part: its endpoints are read
/// afresh either way) with a client that cannot write, and otherwise reads the VPC's endpoints
/// afresh (forgotten, with the listings, once it changed any).
pub async fn ensure_vpc_endpoints(
    session: &Session,
    seen: &Snapshot,
    shared: &Shared,
    plan: &NetworkPlan,
    network: &NetworkOutputs,
    changes: &Changes,
) -> Result<EndpointOutputs, AwsError> {
    let account = session.access.clone();
    let key = crate::observe::key(session, &network.vpc_id);
    if let Some((listing, fresh)) = seen.account_networks.peek(&account) {
        let listed = listing.endpoints(&network.vpc_id);
        if !(fresh && listing.complete) {
            let found = Observed::of_endpoints(&listed, &plan.owner);
            let (reader, unused) = (session.ec2_check(), Changes::default());
            if let Ok(outputs) = converge_vpc_endpoints(reader, plan, network, &found, &unused).await
                && outputs.pending.is_none()
            {
                seen.vpc_endpoints.put(&key, listed);
                return Ok(outputs);
            }
        } else if seen.vpc_endpoints.peek(&key).is_none() {
            seen.vpc_endpoints.put(&key, listed);
        }
    }
    let ec2 = session.ec2();
    let listed = seen.vpc_endpoints.get(&key, || observe::endpoints(ec2, &network.vpc_id)).await?;
    let found = Observed::of_endpoints(&listed, &plan.owner);
    let converge = async |ours: &Changes| converge_vpc_endpoints(ec2, plan, network, &found, ours).await;
    let ours = Changes::default();
    let result = seen.vpc_endpoints.writing(&key, &ours, converge).await;
    if changes.absorb(ours) {
        seen.account_networks.forget(&account);
        shared.forget_networks(&account);
    }
    result
}

async fn converge_vpc_endpoints(
    ec2: &Client,
    plan: &NetworkPlan,
    network: &NetworkOutputs,
    found: &Observed,
    changes: &Changes,
) -> Result<EndpointOutputs, AwsError> {
    let ours: Vec<(&str, &[Tag])> = found
        .endpoints
        .iter()
        .filter(|e| found.owns(e.tags()))
        .filter_map(|e| Some((e.vpc_endpoint_id()?, e.tags())))
        .collect();
    ensure_tags(ec2, plan, &ours, changes).await?;
    let (ids, pending, borrowed) = vpc_endpoints::ensure_endpoints(ec2, plan, network, found, changes).await?;
    Ok(EndpointOutputs { ids, pending, borrowed })
}

/// What the VPC endpoints step produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointOutputs {
    /// Endpoint ids by key (`s3` for the gateway).
    pub ids: BTreeMap<String, String>,
    /// Which endpoint is not available yet: its id exists and may be named in policies, but
    /// traffic does not flow through it yet ([`endpoints_unavailable`] tells when it does).
    pub pending: Option<String>,
    /// The keys of endpoints of a borrowed VPC that its owner made: used as they are, their
    /// policies and security groups the owner's.
    pub borrowed: BTreeSet<String>,
}

/// Creates the VPC; returns its id and tags.
async fn create_vpc(ec2: &Client, plan: &NetworkPlan, changes: &Changes) -> Result<(String, Vec<Tag>), AwsError> {
    let created = ec2
        .create_vpc()
        .cidr_block(&plan.vpc_cidr)
        .tag_specifications(tag_spec(ResourceType::Vpc, &plan.owner.tags("vpc"), &format!("{}-vpc", plan.name)))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let vpc = created.vpc();
    let id = vpc.and_then(|v| v.vpc_id()).required("CreateVpc", "VpcId")?;
    changes.record(Action::Created, format!("VPC {id}"));
    Ok((id, vpc.map(|v| v.tags().to_vec()).unwrap_or_default()))
}

/// DNS support and host names on (AWS reads a VPC attribute one call at a time). A VPC just
/// created has AWS's defaults: DNS support on, host names off.
async fn ensure_dns(ec2: &Client, vpc_id: &str, created: bool, changes: &Changes) -> Result<(), AwsError> {
    for attribute in [VpcAttributeName::EnableDnsSupport, VpcAttributeName::EnableDnsHostnames] {
        let on = if created {
            attribute == VpcAttributeName::EnableDnsSupport
        } else {
            let current = ec2
                .describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(attribute.clone())
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            match attribute {
                VpcAttributeName::EnableDnsSupport => current.enable_dns_support(),
                _ => current.enable_dns_hostnames(),
            }
            .and_then(AttributeBooleanValue::value)
            .unwrap_or(false)
        };
        if !on {
            let yes = AttributeBooleanValue::builder().value(true).build();
            let modify = ec2.modify_vpc_attribute().vpc_id(vpc_id);
            let modify = match attribute {
                VpcAttributeName::EnableDnsSupport => modify.enable_dns_support(yes),
                _ => modify.enable_dns_hostnames(yes),
            };
            modify.send().await.map_err(AwsError::from_sdk)?;
            changes.record(Action::Updated, format!("VPC {vpc_id} {attribute}"));
        }
    }
    Ok(())
}

/// The VPC and everything of ours in it that the core observation saw (not the endpoints).
fn core_resources<'s>(vpc_id: &'s str, vpc_tags: &'s [Tag], seen: &'s Observed) -> Vec<(&'s str, &'s [Tag])> {
    // The VPC is ours by how it was found; the rest by their owner tag.
    let others = (seen.subnets.iter().map(|x| (x.subnet_id(), x.tags())))
        .chain(seen.route_tables.iter().map(|x| (x.route_table_id(), x.tags())))
        .chain(seen.groups.iter().map(|x| (x.group_id(), x.tags())))
        .chain(seen.internet_gateways.iter().map(|x| (x.internet_gateway_id(), x.tags())))
        .chain(seen.nat_gateways.iter().map(|x| (x.nat_gateway_id(), x.tags())))
        .chain(seen.addresses.iter().map(|x| (x.allocation_id(), x.tags())));
    let mut ours: Vec<(&str, &[Tag])> = vec![(vpc_id, vpc_tags)];
    ours.extend(others.filter_map(|(id, tags)| id.filter(|_| seen.owns(tags)).map(|id| (id, tags))));
    ours
}

/// Puts the owner's tags (owner, uid, the user's spec.tags) back on every resource of `ours`
/// that lacks one or has another value, and takes the tag keys removed from spec.tags off
/// them: one call each.
async fn ensure_tags(
    ec2: &Client,
    plan: &NetworkPlan,
    ours: &[(&str, &[Tag])],
    changes: &Changes,
) -> Result<(), AwsError> {
    let owner = &plan.owner;
    let lacking = |tags: &[Tag]| owner.base_tags.iter().any(|(k, v)| observe::tag(tags, k) != Some(v.as_str()));
    let untag = |tags: &[Tag]| !owner.stale_keys(tags.iter().filter_map(Tag::key)).is_empty();
    let ids = |pick: &dyn Fn(&[Tag]) -> bool| -> Vec<String> {
        ours.iter().filter(|(_, tags)| pick(tags)).map(|(id, _)| (*id).to_owned()).collect()
    };
    let (lacking, untag) = (ids(&lacking), ids(&untag));
    if !lacking.is_empty() {
        let tags: Vec<Tag> = owner.base_tags.iter().map(|(k, v)| tag(k, v)).collect();
        let call = ec2.create_tags().set_resources(Some(lacking.clone())).set_tags(Some(tags));
        call.send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("tags of {}", lacking.join(", ")));
    }
    if !untag.is_empty() {
        let keys = owner.removed_tags.iter().map(|k| Tag::builder().key(k).build()).collect();
        let call = ec2.delete_tags().set_resources(Some(untag.clone())).set_tags(Some(keys));
        call.send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("removed tags of {}", untag.join(", ")));
    }
    Ok(())
}

/// The private subnet of zone `index` and its own route table, associated. Returns
/// (subnet id, route table id).
async fn ensure_private_zone(
    ec2: &Client,
    plan: &NetworkPlan,
    vpc_id: &str,
    seen: &Observed,
    index: usize,
    zone: &Zone,
    changes: &Changes,
) -> Result<(String, String), AwsError> {
    let subnet_component = format!("subnet/private/{}", zone.name);
    let subnet_id = match seen.subnet(&subnet_component) {
        Some(id) => id,
        None => {
            let name = format!("{}-private-{index}", plan.name);
            create_subnet(ec2, plan, vpc_id, &zone.private_cidr, &zone.name, &subnet_component, &name, changes).await?
        }
    };
    let rt_component = format!("route-table/private/{}", zone.name);
    let rt_name = format!("{}-private-{index}", plan.name);
    let route_table = ensure_route_table(ec2, plan, vpc_id, seen, &rt_component, &rt_name, changes).await?;
    ensure_association(ec2, seen, &route_table, &subnet_id, changes).await?;
    Ok((subnet_id, route_table))
}

#[allow(clippy::too_many_arguments)]
async fn create_subnet(
    ec2: &Client,
    plan: &NetworkPlan,
    vpc_id: &str,
    cidr: &str,
    zone: &str,
    component: &str,
    name: &str,
    changes: &Changes,
) -> Result<String, AwsError> {
    let created = ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block(cidr)
        .availability_zone(zone)
        .tag_specifications(tag_spec(ResourceType::Subnet, &plan.owner.tags(component), name))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let id = created.subnet().and_then(|s| s.subnet_id()).required("CreateSubnet", "SubnetId")?;
    changes.record(Action::Created, format!("subnet {id} ({cidr} in {zone})"));
    Ok(id)
}

async fn ensure_route_table(
    ec2: &Client,
    plan: &NetworkPlan,
    vpc_id: &str,
    seen: &Observed,
    component: &str,
    name: &str,
    changes: &Changes,
) -> Result<String, AwsError> {
    if let Some(id) = seen.route_table(component) {
        return Ok(id);
    }
    let created = ec2
        .create_route_table()
        .vpc_id(vpc_id)
        .tag_specifications(tag_spec(ResourceType::RouteTable, &plan.owner.tags(component), name))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let id = created.route_table().and_then(|r| r.route_table_id()).required("CreateRouteTable", "RouteTableId")?;
    changes.record(Action::Created, format!("route table {id}"));
    Ok(id)
}

async fn ensure_association(
    ec2: &Client,
    seen: &Observed,
    route_table: &str,
    subnet: &str,
    changes: &Changes,
) -> Result<(), AwsError> {
    if seen.associated(route_table, subnet) {
        return Ok(());
    }
    ec2.associate_route_table()
        .route_table_id(route_table)
        .subnet_id(subnet)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    changes.record(Action::Updated, format!("route table {route_table} associated with {subnet}"));
    Ok(())
}

/// The ids of the two security groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Groups {
    /// Jobs, notebooks, Studio, endpoints' containers.
    pub workloads: String,
    /// The interface endpoints.
    pub endpoints: String,
}

/// Both groups, with exactly the rules the environment needs. `workloads` talks to itself;
/// internet-free, its egress stays in the VPC plus S3 (the prefix list) on 443. `endpoints`
/// takes 443 from workloads and the private subnets, 2049 (Studio's NFS) from the private
/// subnets, and sends nothing outside the VPC.
async fn ensure_groups(
    ec2: &Client,
    plan: &NetworkPlan,
    vpc_id: &str,
    seen: &Observed,
    s3_list: Option<&str>,
    cidrs: Cidrs<'_>,
    changes: &Changes,
) -> Result<Groups, AwsError> {
    let workloads = ensure_group(ec2, plan, vpc_id, seen, "workloads", &plan.group_names.workloads, changes).await?;
    let endpoints = ensure_group(ec2, plan, vpc_id, seen, "endpoints", &plan.group_names.endpoints, changes).await?;
    let vpc = || cidrs.vpc.iter().map(|c| Rule::all(Peer::Cidr(c.clone())));
    let workloads_in: BTreeSet<Rule> = [Rule::all(Peer::Group(workloads.clone()))].into();
    let workloads_out: BTreeSet<Rule> = match s3_list {
        None => [Rule::all(Peer::Cidr("0.0.0.0/0".into()))].into(),
        Some(s3) => vpc().chain([Rule::tcp(443, Peer::PrefixList(s3.to_owned()))]).collect(),
    };
    let mut endpoints_in: BTreeSet<Rule> = [Rule::tcp(443, Peer::Group(workloads.clone()))].into();
    for cidr in cidrs.subnets {
        endpoints_in.insert(Rule::tcp(443, Peer::Cidr(cidr.clone())));
        endpoints_in.insert(Rule::tcp(2049, Peer::Cidr(cidr.clone())));
    }
    let endpoints_out: BTreeSet<Rule> = vpc().collect();
    ensure_rules(ec2, seen, &workloads, &workloads_in, &workloads_out, changes).await?;
    ensure_rules(ec2, seen, &endpoints, &endpoints_in, &endpoints_out, changes).await?;
    Ok(Groups { workloads, endpoints })
}

async fn ensure_group(
    ec2: &Client,
    plan: &NetworkPlan,
    vpc_id: &str,
    seen: &Observed,
    role: &str,
    name: &str,
    changes: &Changes,
) -> Result<String, AwsError> {
    let component = format!("security-group/{role}");
    if let Some(group) = seen.group(&component) {
        return group.group_id().required("DescribeSecurityGroups", "GroupId");
    }
    if let Some(foreign) = seen.foreign_group_named(name) {
        let tags = foreign.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
        return Err(plan.owner.conflict(&format!("security group {name}"), tags));
    }
    let created = ec2
        .create_security_group()
        .vpc_id(vpc_id)
        .group_name(name)
        .description(format!("sagekeeper {role} of {}", plan.name))
        .tag_specifications(tag_spec(ResourceType::SecurityGroup, &plan.owner.tags(&component), name))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let id = created.group_id().required("CreateSecurityGroup", "GroupId")?;
    changes.record(Action::Created, format!("security group {id} ({role})"));
    Ok(id)
}

/// Authorizes missing rules and revokes foreign ones, in one call per direction and kind.
async fn ensure_rules(
    ec2: &Client,
    seen: &Observed,
    group_id: &str,
    ingress: &BTreeSet<Rule>,
    egress: &BTreeSet<Rule>,
    changes: &Changes,
) -> Result<(), AwsError> {
    // A group created in this pass is not in `seen`: it has AWS's default egress rule only.
    let (seen_in, seen_out) = match seen.group_by_id(group_id) {
        Some(g) => (rules::observed(g.ip_permissions()), rules::observed(g.ip_permissions_egress())),
        None => (BTreeSet::new(), [Rule::all(Peer::Cidr("0.0.0.0/0".into()))].into()),
    };
    let (add_in, remove_in) = rules::diff(ingress, &seen_in);
    let (add_out, remove_out) = rules::diff(egress, &seen_out);
    let drifted = seen.group_by_id(group_id).is_some()
        && !(add_in.is_empty() && remove_in.is_empty() && add_out.is_empty() && remove_out.is_empty());
    if !add_in.is_empty() {
        let call = ec2.authorize_security_group_ingress().group_id(group_id).set_ip_permissions(Some(add_in));
        call.send().await.map_err(AwsError::from_sdk)?;
    }
    if !remove_in.is_empty() {
        let call = ec2.revoke_security_group_ingress().group_id(group_id).set_ip_permissions(Some(remove_in));
        call.send().await.map_err(AwsError::from_sdk)?;
    }
    if !add_out.is_empty() {
        let call = ec2.authorize_security_group_egress().group_id(group_id).set_ip_permissions(Some(add_out));
        call.send().await.map_err(AwsError::from_sdk)?;
    }
    if !remove_out.is_empty() {
        let call = ec2.revoke_security_group_egress().group_id(group_id).set_ip_permissions(Some(remove_out));
        call.send().await.map_err(AwsError::from_sdk)?;
    }
    if drifted {
        changes.record(Action::Updated, format!("security group {group_id} rules"));
    }
    Ok(())
}

/// The region's available availability zones, by name.
pub async fn region_zones(session: &Session) -> Result<Vec<String>, AwsError> {
    let zones = session
        .ec2()
        .describe_availability_zones()
        .filters(aws_sdk_ec2::types::Filter::builder().name("zone-type").values("availability-zone").build())
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let mut names: Vec<String> = zones
        .availability_zones()
        .iter()
        .filter(|z| z.state().is_none_or(|s| s.as_str() == "available"))
        .filter_map(|z| z.zone_name().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// The id of the region's S3 managed prefix list (for the internet-free egress rule).
async fn s3_prefix_list(ec2: &Client, region: &str) -> Result<String, AwsError> {
    let name = format!("com.amazonaws.{region}.s3");
    let lists = ec2
        .describe_managed_prefix_lists()
        .filters(aws_sdk_ec2::types::Filter::builder().name("prefix-list-name").values(&name).build())
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    lists
        .prefix_lists()
        .iter()
        .find_map(|l| l.prefix_list_id())
        .map(str::to_owned)
        .ok_or_else(|| AwsError::from_code("InvalidPrefixListName.NotFound", &format!("no prefix list {name}"), None))
}

/// A tag specification with the owner's tags and a `Name`.
pub(crate) fn tag_spec(resource: ResourceType, tags: &BTreeMap<String, String>, name: &str) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource).tags(tag("Name", name));
    for (k, v) in tags {
        spec = spec.tags(tag(k, v));
    }
    spec.build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}
