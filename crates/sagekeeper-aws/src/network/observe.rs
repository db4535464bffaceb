//! One look at a VPC: a describe per resource type, each filtered by the VPC, so a drift check
//! costs a fixed handful of read calls however many subnets, groups or endpoints there are.

use std::sync::Arc;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Address, Filter, InternetGateway, NatGateway, RouteTable, SecurityGroup, Subnet, Tag, Vpc, VpcEndpoint,
};
use sagekeeper_api::naming::{COMPONENT_TAG, OWNER_UID_TAG};

use super::SeenNetwork;
use super::vpc_endpoints::EndpointState;
use crate::errors::AwsError;
use crate::steps::Owner;

/// Everything in and around one VPC, as AWS reports it.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub(crate) subnets: Vec<Subnet>,
    pub(crate) route_tables: Vec<RouteTable>,
    pub(crate) groups: Vec<SecurityGroup>,
    pub(crate) endpoints: Vec<VpcEndpoint>,
    pub(crate) internet_gateways: Vec<InternetGateway>,
    pub(crate) nat_gateways: Vec<NatGateway>,
    pub(crate) addresses: Vec<Address>,
    pub(crate) owner_uid: String,
}

/// A filter on the owner-uid tag.
pub(crate) fn owned_by(owner: &Owner) -> Filter {
    Filter::builder().name(format!("tag:{OWNER_UID_TAG}")).values(&owner.uid).build()
}

/// A filter on the component tag.
pub(crate) fn component(component: &str) -> Filter {
    Filter::builder().name(format!("tag:{COMPONENT_TAG}")).values(component).build()
}

fn vpc(vpc_id: &str) -> Filter {
    Filter::builder().name("vpc-id").values(vpc_id).build()
}

/// Everything but the endpoints (which the endpoints step observes itself), in six calls.
pub(crate) async fn observe(ec2: &Client, vpc_id: &str, owner: &Owner) -> Result<Observed, AwsError> {
    let (subnets, route_tables, groups, igws, nats, addresses) = tokio::try_join!(
        async { ec2.describe_subnets().filters(vpc(vpc_id)).send().await.map_err(AwsError::from_sdk) },
        async { ec2.describe_route_tables().filters(vpc(vpc_id)).send().await.map_err(AwsError::from_sdk) },
        async { ec2.describe_security_groups().filters(vpc(vpc_id)).send().await.map_err(AwsError::from_sdk) },
        async {
            let attached = Filter::builder().name("attachment.vpc-id").values(vpc_id).build();
            ec2.describe_internet_gateways().filters(attached).send().await.map_err(AwsError::from_sdk)
        },
        async { ec2.describe_nat_gateways().filter(vpc(vpc_id)).send().await.map_err(AwsError::from_sdk) },
        async { ec2.describe_addresses().filters(owned_by(owner)).send().await.map_err(AwsError::from_sdk) },
    )?;
    Ok(Observed {
        subnets: subnets.subnets().to_vec(),
        route_tables: route_tables.route_tables().to_vec(),
        groups: groups.security_groups().to_vec(),
        endpoints: Vec::new(),
        internet_gateways: igws.internet_gateways().to_vec(),
        nat_gateways: live_nat_gateways(nats.nat_gateways().iter().cloned()).collect(),
        addresses: addresses.addresses().to_vec(),
        owner_uid: owner.uid.clone(),
    })
}

/// The owner's VPC in the account and everything in and around it but the endpoints, in
/// seven calls; `None` when the owner has no VPC there.
pub(crate) async fn network(ec2: &Client, owner: &Owner) -> Result<Option<Arc<SeenNetwork>>, AwsError> {
    let found = ec2
        .describe_vpcs()
        .filters(owned_by(owner))
        .filters(component("vpc"))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let Some((vpc_id, vpc_tags)) = found.vpcs().iter().find_map(|v| Some((v.vpc_id()?.to_owned(), v.tags().to_vec())))
    else {
        return Ok(None);
    };
    let observed = observe(ec2, &vpc_id, owner).await?;
    Ok(Some(Arc::new(SeenNetwork { vpc_id, vpc_tags, observed })))
}

/// Every sagekeeper network of an account, as one listing: its VPCs (found by the component
/// tag) and everything in and around them, a describe per resource type filtered by all those
/// VPCs at once (paginated, 200 VPC ids per filter as EC2 allows). Eight calls per account
/// however many environments use it; one when it has no sagekeeper VPC.
///
/// A Security-depth drift check reads less ([`refresh`]): what guards access (route tables,
/// security groups, VPC endpoints and their policies) afresh, in three calls, and the rest
/// (VPCs, subnets, gateways, addresses) as the last complete listing saw it. Such a listing
/// is never decided on, only checked against.
#[derive(Clone, Debug, Default)]
pub struct AccountNetworks {
    vpcs: Vec<Vpc>,
    all: Observed,
    endpoints: Vec<VpcEndpoint>,
    /// Every resource type was read for this listing (else: see [`refresh`]).
    pub(crate) complete: bool,
}

/// What EC2 takes as values of one filter.
const FILTER_VALUES: usize = 200;

/// Every page of a describe call, as one list.
macro_rules! every {
    ($call:expr) => {
        async { $call.into_paginator().items().send().collect::<Result<Vec<_>, _>>().await.map_err(AwsError::from_sdk) }
    };
}

/// Reads an account's sagekeeper networks.
pub(crate) async fn account(ec2: &Client) -> Result<Arc<AccountNetworks>, AwsError> {
    let vpcs: Vec<Vpc> = ec2
        .describe_vpcs()
        .filters(Filter::builder().name(format!("tag:{COMPONENT_TAG}")).values("vpc").build())
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(AwsError::from_sdk)?;
    let vpcs: Vec<Vpc> = vpcs.into_iter().filter(|v| tag(v.tags(), OWNER_UID_TAG).is_some()).collect();
    let ids: Vec<String> = vpcs.iter().filter_map(|v| v.vpc_id().map(str::to_owned)).collect();
    let mut listing = AccountNetworks { vpcs, complete: true, ..AccountNetworks::default() };
    if !ids.is_empty() {
        // Elastic IPs (NAT only) belong to no VPC: ours carry the owner tag.
        let ours = Filter::builder().name("tag-key").values(OWNER_UID_TAG).build();
        let found = ec2.describe_addresses().filters(ours).send().await.map_err(AwsError::from_sdk)?;
        listing.all.addresses = found.addresses.unwrap_or_default();
    }
    for chunk in ids.chunks(FILTER_VALUES) {
        let of = |name: &str| Filter::builder().name(name).set_values(Some(chunk.to_vec())).build();
        let (subnets, route_tables, groups, igws, nats, endpoints) = tokio::try_join!(
            every!(ec2.describe_subnets().filters(of("vpc-id"))),
            every!(ec2.describe_route_tables().filters(of("vpc-id"))),
            every!(ec2.describe_security_groups().filters(of("vpc-id"))),
            every!(ec2.describe_internet_gateways().filters(of("attachment.vpc-id"))),
            every!(ec2.describe_nat_gateways().filter(of("vpc-id"))),
            every!(ec2.describe_vpc_endpoints().filters(of("vpc-id"))),
        )?;
        let all = &mut listing.all;
        all.subnets.extend::<Vec<_>>(subnets);
        all.route_tables.extend::<Vec<_>>(route_tables);
        all.groups.extend::<Vec<_>>(groups);
        all.internet_gateways.extend::<Vec<_>>(igws);
        all.nat_gateways.extend(live_nat_gateways(nats));
        listing.endpoints.extend::<Vec<_>>(endpoints);
    }
    Ok(Arc::new(listing))
}

/// `last` (a complete listing) with what guards access read again: the route tables, security
/// groups and VPC endpoints of its VPCs, three calls per 200 VPCs. Not complete: a step only
/// checks against it.
pub(crate) async fn refresh(ec2: &Client, last: &AccountNetworks) -> Result<Arc<AccountNetworks>, AwsError> {
    let ids: Vec<String> = last.vpcs.iter().filter_map(|v| v.vpc_id().map(str::to_owned)).collect();
    let mut listing = AccountNetworks { complete: false, ..last.clone() };
    let all = &mut listing.all;
    (all.route_tables, all.groups, listing.endpoints) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in ids.chunks(FILTER_VALUES) {
        let of = |name: &str| Filter::builder().name(name).set_values(Some(chunk.to_vec())).build();
        let (route_tables, groups, endpoints) = tokio::try_join!(
            every!(ec2.describe_route_tables().filters(of("vpc-id"))),
            every!(ec2.describe_security_groups().filters(of("vpc-id"))),
            every!(ec2.describe_vpc_endpoints().filters(of("vpc-id"))),
        )?;
        all.route_tables.extend::<Vec<_>>(route_tables);
        all.groups.extend::<Vec<_>>(groups);
        listing.endpoints.extend::<Vec<_>>(endpoints);
    }
    Ok(Arc::new(listing))
}

impl AccountNetworks {
    /// The owner's network as [`network`] would read it, if the listing has its VPC.
    pub(crate) fn network(&self, owner: &Owner) -> Option<Arc<SeenNetwork>> {
        let vpc = self.vpcs.iter().find(|v| tag(v.tags(), OWNER_UID_TAG) == Some(owner.uid.as_str()))?;
        let vpc_id = vpc.vpc_id()?;
        let all = &self.all;
        let within = |id: Option<&str>| id == Some(vpc_id);
        let observed = Observed {
            subnets: all.subnets.iter().filter(|x| within(x.vpc_id())).cloned().collect(),
            route_tables: all.route_tables.iter().filter(|x| within(x.vpc_id())).cloned().collect(),
            groups: all.groups.iter().filter(|x| within(x.vpc_id())).cloned().collect(),
            endpoints: Vec::new(),
            internet_gateways: (all.internet_gateways.iter())
                .filter(|x| x.attachments().iter().any(|a| within(a.vpc_id())))
                .cloned()
                .collect(),
            nat_gateways: all.nat_gateways.iter().filter(|x| within(x.vpc_id())).cloned().collect(),
            addresses: (all.addresses.iter())
                .filter(|x| tag(x.tags(), OWNER_UID_TAG) == Some(owner.uid.as_str()))
                .cloned()
                .collect(),
            owner_uid: owner.uid.clone(),
        };
        Some(Arc::new(SeenNetwork { vpc_id: vpc_id.to_owned(), vpc_tags: vpc.tags().to_vec(), observed }))
    }

    /// A VPC's endpoints as [`endpoints`] would read them.
    pub(crate) fn endpoints(&self, vpc_id: &str) -> Arc<Vec<VpcEndpoint>> {
        Arc::new(self.endpoints.iter().filter(|e| e.vpc_id() == Some(vpc_id)).cloned().collect())
    }
}

/// NAT gateways but those deleted, being deleted or failed, which linger in describe results.
fn live_nat_gateways(nats: impl IntoIterator<Item = NatGateway>) -> impl Iterator<Item = NatGateway> {
    nats.into_iter().filter(|n| !matches!(n.state().map(|s| s.as_str()), Some("deleted" | "deleting" | "failed")))
}

/// The VPC's endpoints as AWS lists them, deleted ones included (one call).
pub(crate) async fn endpoints(ec2: &Client, vpc_id: &str) -> Result<Arc<Vec<VpcEndpoint>>, AwsError> {
    let listed = ec2.describe_vpc_endpoints().filters(vpc(vpc_id)).send().await.map_err(AwsError::from_sdk)?;
    Ok(Arc::new(listed.vpc_endpoints().to_vec()))
}

/// Endpoints but those deleted or being deleted, which linger in describe results for a while.
fn live_endpoints(endpoints: &[VpcEndpoint]) -> Vec<VpcEndpoint> {
    endpoints
        .iter()
        .filter(|e| !matches!(EndpointState::of(e.state()), EndpointState::Deleting | EndpointState::Deleted))
        .cloned()
        .collect()
}

/// The value of tag `key`.
pub(crate) fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(Tag::value)
}

impl Observed {
    /// Nothing seen yet, of this owner.
    pub(crate) fn of_owner(owner: &Owner) -> Self {
        Self { owner_uid: owner.uid.clone(), ..Self::default() }
    }

    /// Only the live ones of a VPC's endpoints, for the endpoints step.
    pub(crate) fn of_endpoints(listed: &[VpcEndpoint], owner: &Owner) -> Self {
        Self { endpoints: live_endpoints(listed), owner_uid: owner.uid.clone(), ..Self::default() }
    }

    /// True when the tags carry our owner uid and the given component.
    pub(crate) fn is(&self, tags: &[Tag], component: &str) -> bool {
        tag(tags, OWNER_UID_TAG) == Some(self.owner_uid.as_str()) && tag(tags, COMPONENT_TAG) == Some(component)
    }

    /// True when `uid` is our owner's.
    pub(crate) fn owns_uid(&self, uid: &str) -> bool {
        uid == self.owner_uid
    }

    /// True when the tags carry our owner uid.
    pub(crate) fn owns(&self, tags: &[Tag]) -> bool {
        tag(tags, OWNER_UID_TAG) == Some(self.owner_uid.as_str())
    }

    /// Our subnet of this component.
    pub(crate) fn subnet(&self, component: &str) -> Option<String> {
        self.subnets.iter().find(|s| self.is(s.tags(), component)).and_then(|s| s.subnet_id()).map(str::to_owned)
    }

    /// Our route table of this component.
    pub(crate) fn route_table(&self, component: &str) -> Option<String> {
        self.route_tables
            .iter()
            .find(|r| self.is(r.tags(), component))
            .and_then(|r| r.route_table_id())
            .map(str::to_owned)
    }

    /// The route table as seen, by id.
    pub(crate) fn route_table_by_id(&self, id: &str) -> Option<&RouteTable> {
        self.route_tables.iter().find(|r| r.route_table_id() == Some(id))
    }

    /// True when the route table is associated with the subnet.
    pub(crate) fn associated(&self, route_table: &str, subnet: &str) -> bool {
        self.route_table_by_id(route_table)
            .is_some_and(|r| r.associations().iter().any(|a| a.subnet_id() == Some(subnet)))
    }

    /// Our security group of this component.
    pub(crate) fn group(&self, component: &str) -> Option<&SecurityGroup> {
        self.groups.iter().find(|g| self.is(g.tags(), component))
    }

    /// A security group as seen, by id.
    pub(crate) fn group_by_id(&self, id: &str) -> Option<&SecurityGroup> {
        self.groups.iter().find(|g| g.group_id() == Some(id))
    }

    /// A group with this name that is not ours.
    pub(crate) fn foreign_group_named(&self, name: &str) -> Option<&SecurityGroup> {
        self.groups.iter().find(|g| g.group_name() == Some(name) && !self.owns(g.tags()))
    }
}
