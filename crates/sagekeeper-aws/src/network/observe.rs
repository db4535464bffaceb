//! One look at a VPC: a describe per resource type, each filtered by the VPC, so a drift check
//! costs a fixed handful of read calls however many subnets, groups or endpoints there are.

use std::sync::Arc;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Address, Filter, InternetGateway, NatGateway, RouteTable, SecurityGroup, Subnet, Tag, VpcEndpoint,
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
    owner_uid: String,
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
        nat_gateways: nats
            .nat_gateways()
            .iter()
            .filter(|n| !matches!(n.state().map(|s| s.as_str()), Some("deleted" | "deleting" | "failed")))
            .cloned()
            .collect(),
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
    /// Only the live ones of a VPC's endpoints, for the endpoints step.
    pub(crate) fn of_endpoints(listed: &[VpcEndpoint], owner: &Owner) -> Self {
        Self { endpoints: live_endpoints(listed), owner_uid: owner.uid.clone(), ..Self::default() }
    }

    /// True when the tags carry our owner uid and the given component.
    pub(crate) fn is(&self, tags: &[Tag], component: &str) -> bool {
        tag(tags, OWNER_UID_TAG) == Some(self.owner_uid.as_str()) && tag(tags, COMPONENT_TAG) == Some(component)
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
