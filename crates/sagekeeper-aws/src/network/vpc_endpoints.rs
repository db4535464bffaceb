//! VPC endpoints: the S3 gateway on every private route table with the environment's policy,
//! and one interface endpoint per service in the private subnets behind the `endpoints` group,
//! with private DNS. Endpoints this environment owns but the spec no longer lists are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{ResourceType, State, VpcEndpoint, VpcEndpointType};

use super::observe::Observed;
use super::{NetworkOutputs, NetworkPlan, S3_ENDPOINT, tag_spec};
use crate::errors::{AwsError, Required};
use crate::steps::{Action, Changes};

/// What the endpoints step converged: ids by key, which is not available yet, and the keys of
/// endpoints of a borrowed VPC that its owner made (used as they are).
pub(crate) type Converged = (BTreeMap<String, String>, Option<String>, BTreeSet<String>);

/// Converges all endpoints, side by side: their ids by key, and which is not available yet.
/// In a borrowed VPC, an endpoint its owner made for a service is used instead of making one
/// (an S3 gateway endpoint only when it serves one of the subnets' route tables), and left as
/// it is.
pub(crate) async fn ensure_endpoints(
    ec2: &Client,
    plan: &NetworkPlan,
    network: &NetworkOutputs,
    seen: &Observed,
    changes: &Changes,
) -> Result<Converged, AwsError> {
    let vpc_id = network.vpc_id.as_str();
    let (private_subnets, route_tables) = (&network.endpoint_subnet_ids, &network.private_route_table_ids);
    let mut ids = BTreeMap::new();
    let mut borrowed = BTreeSet::new();
    let mut pending = None;
    let gateway = Wanted {
        key: S3_ENDPOINT,
        service: format!("com.amazonaws.{}.s3", plan.region),
        kind: VpcEndpointType::Gateway,
        route_tables,
        subnets: &[],
        groups: &[],
        policy: &plan.s3_endpoint_policy,
    };
    let endpoint_groups = [network.groups.endpoints.clone()];
    let interfaces = plan.interface_endpoints.iter().map(|endpoint| Wanted {
        key: &endpoint.key,
        service: endpoint.service.clone(),
        kind: VpcEndpointType::Interface,
        route_tables: &[],
        subnets: private_subnets,
        groups: &endpoint_groups,
        policy: &endpoint.policy,
    });
    let wanted: Vec<Wanted<'_>> = std::iter::once(gateway).chain(interfaces).collect();
    // Ours, once made, stays ours; an owner's endpoint is used only where we have none.
    let ours = |w: &Wanted<'_>| seen.endpoints.iter().any(|e| seen.is(e.tags(), &format!("endpoint/{}", w.key)));
    let (theirs, wanted): (Vec<_>, Vec<_>) =
        wanted.into_iter().partition(|w| plan.existing.is_some() && !ours(w) && foreign(seen, w).is_some());
    for w in &theirs {
        let Some(endpoint) = foreign(seen, w) else { continue };
        let id = endpoint.vpc_endpoint_id().required("DescribeVpcEndpoints", "VpcEndpointId")?;
        // A route table takes one S3 gateway endpoint: the owner's must serve them all.
        let unserved: Vec<&str> =
            w.route_tables.iter().filter(|t| !endpoint.route_table_ids().contains(t)).map(String::as_str).collect();
        if !unserved.is_empty() {
            let message = format!(
                "the S3 gateway endpoint {id} of the VPC's owner serves some of the subnets' route tables but not {}: a route table takes one S3 gateway endpoint, so sagekeeper cannot add its own; associate {id} with them too, or use subnets whose route tables it serves",
                unserved.join(", ")
            );
            return Err(AwsError::from_code("InvalidConfiguration", &message, None));
        }
        let state = EndpointState::of(endpoint.state());
        if state != EndpointState::Available {
            pending = pending.or(Some(format!("VPC endpoint {id} ({}, not sagekeeper's) is {state}", w.key)));
        }
        ids.insert(w.key.to_owned(), id);
        borrowed.insert(w.key.to_owned());
    }
    let results =
        futures::future::join_all(wanted.iter().map(|w| ensure_endpoint(ec2, plan, vpc_id, seen, w, changes))).await;
    for (wanted, result) in wanted.iter().zip(results) {
        let (id, waiting) = result?;
        ids.insert(wanted.key.to_owned(), id);
        pending = pending.or(waiting);
    }
    let keep: BTreeSet<String> = ids.keys().map(|k| format!("endpoint/{k}")).collect();
    let extra: Vec<String> = seen
        .endpoints
        .iter()
        .filter(|e| seen.owns(e.tags()) && !keep.contains(component_of(e)))
        .filter_map(|e| e.vpc_endpoint_id().map(str::to_owned))
        .collect();
    if !extra.is_empty() {
        ec2.delete_vpc_endpoints()
            .set_vpc_endpoint_ids(Some(extra.clone()))
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        changes.record(Action::Deleted, format!("VPC endpoints {}", extra.join(", ")));
    }
    Ok((ids, pending, borrowed))
}

/// A usable endpoint someone else made in the VPC for the wanted service: available or being
/// made, with private DNS for an interface endpoint (else the workloads would not reach it by
/// the service's name), serving one of the subnets' route tables for the S3 gateway.
fn foreign<'s>(seen: &'s Observed, wanted: &Wanted<'_>) -> Option<&'s VpcEndpoint> {
    let usable =
        |e: &VpcEndpoint| matches!(EndpointState::of(e.state()), EndpointState::Available | EndpointState::Pending);
    seen.endpoints.iter().find(|e| {
        // Not any sagekeeper object's (a VPC another one uses is refused before this).
        super::observe::tag(e.tags(), sagekeeper_api::naming::OWNER_UID_TAG).is_none()
            && usable(e)
            && (wanted.kind != VpcEndpointType::Interface || e.private_dns_enabled() == Some(true))
            && e.service_name() == Some(wanted.service.as_str())
            && e.vpc_endpoint_type() == Some(&wanted.kind)
            && (wanted.kind != VpcEndpointType::Gateway
                || e.route_table_ids().iter().any(|t| wanted.route_tables.contains(t)))
    })
}

/// A VPC endpoint's state as it decides what sagekeeper does; states this version does not know
/// are kept by name. EC2 spells states in lower case (`available`) where the SDK's `State` expects
/// `Available`, so the state is read by its name, in either case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EndpointState {
    /// Traffic flows through it.
    Available,
    /// Being created.
    Pending,
    /// Being deleted.
    Deleting,
    /// Deleted (it lingers in describe results for a while).
    Deleted,
    /// Creation failed.
    Failed,
    /// A state this version does not know (or none in the answer), by name.
    Unknown(String),
}

impl EndpointState {
    /// The state of a `DescribeVpcEndpoints` or `CreateVpcEndpoint` answer.
    pub(crate) fn of(state: Option<&State>) -> Self {
        let Some(state) = state else { return Self::Unknown("unknown".to_owned()) };
        match state.as_str().to_ascii_lowercase().as_str() {
            "available" => Self::Available,
            "pending" => Self::Pending,
            "deleting" => Self::Deleting,
            "deleted" => Self::Deleted,
            "failed" => Self::Failed,
            _ => Self::Unknown(state.as_str().to_owned()),
        }
    }

    /// Its name, as EC2 spells it.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Available => "available",
            Self::Pending => "pending",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
            Self::Failed => "failed",
            Self::Unknown(other) => other,
        }
    }
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Wanted<'a> {
    key: &'a str,
    service: String,
    kind: VpcEndpointType,
    route_tables: &'a [String],
    subnets: &'a [String],
    groups: &'a [String],
    policy: &'a serde_json::Value,
}

fn component_of(endpoint: &VpcEndpoint) -> &str {
    super::observe::tag(endpoint.tags(), sagekeeper_api::naming::COMPONENT_TAG).unwrap_or_default()
}

/// Which of the endpoints in `used` is not available yet, if any.
pub(crate) fn unavailable(listed: &[VpcEndpoint], used: &BTreeSet<&str>) -> Option<String> {
    listed.iter().filter(|e| e.vpc_endpoint_id().is_some_and(|id| used.contains(id))).find_map(|e| {
        let state = EndpointState::of(e.state());
        (state != EndpointState::Available)
            .then(|| format!("VPC endpoint {} is {state}", e.vpc_endpoint_id().unwrap_or("?")))
    })
}

/// One endpoint: created when missing, its attachments and policy put back when they drifted.
/// Returns its id and, while it is not available yet, what it waits for.
async fn ensure_endpoint(
    ec2: &Client,
    plan: &NetworkPlan,
    vpc_id: &str,
    seen: &Observed,
    wanted: &Wanted<'_>,
    changes: &Changes,
) -> Result<(String, Option<String>), AwsError> {
    let component = format!("endpoint/{}", wanted.key);
    let Some(current) = seen.endpoints.iter().find(|e| seen.is(e.tags(), &component)) else {
        return create(ec2, plan, vpc_id, wanted, &component, changes).await;
    };
    let id = current.vpc_endpoint_id().required("DescribeVpcEndpoints", "VpcEndpointId")?;
    let groups: Vec<String> = current.groups().iter().filter_map(|g| g.group_id()).map(str::to_owned).collect();
    let (add_rt, remove_rt) = set_diff(wanted.route_tables, current.route_table_ids());
    let (add_subnet, remove_subnet) = set_diff(wanted.subnets, current.subnet_ids());
    let (add_group, remove_group) = set_diff(wanted.groups, &groups);
    let policy_drift =
        !current.policy_document().is_some_and(|have| sagekeeper_policy::same_policy(have, wanted.policy));
    let drifted = policy_drift
        || [&add_rt, &remove_rt, &add_subnet, &remove_subnet, &add_group, &remove_group].iter().any(|d| !d.is_empty());
    if drifted {
        ec2.modify_vpc_endpoint()
            .vpc_endpoint_id(&id)
            .set_policy_document(policy_drift.then(|| wanted.policy.to_string()))
            .set_add_route_table_ids(non_empty(add_rt))
            .set_remove_route_table_ids(non_empty(remove_rt))
            .set_add_subnet_ids(non_empty(add_subnet))
            .set_remove_subnet_ids(non_empty(remove_subnet))
            .set_add_security_group_ids(non_empty(add_group))
            .set_remove_security_group_ids(non_empty(remove_group))
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("VPC endpoint {id} ({})", wanted.key));
    }
    let state = EndpointState::of(current.state());
    let waiting = (state != EndpointState::Available).then(|| format!("VPC endpoint {id} ({}) is {state}", wanted.key));
    Ok((id, waiting))
}

async fn create(
    ec2: &Client,
    plan: &NetworkPlan,
    vpc_id: &str,
    wanted: &Wanted<'_>,
    component: &str,
    changes: &Changes,
) -> Result<(String, Option<String>), AwsError> {
    let interface = wanted.kind == VpcEndpointType::Interface;
    let created = ec2
        .create_vpc_endpoint()
        .vpc_id(vpc_id)
        .vpc_endpoint_type(wanted.kind.clone())
        .service_name(&wanted.service)
        .set_route_table_ids(non_empty(wanted.route_tables.to_vec()))
        .set_subnet_ids(non_empty(wanted.subnets.to_vec()))
        .set_security_group_ids(non_empty(wanted.groups.to_vec()))
        .set_private_dns_enabled(interface.then_some(true))
        .policy_document(wanted.policy.to_string())
        // The same token on a retry after a lost answer returns the same endpoint.
        .client_token(format!("{}-{}", plan.owner.uid, wanted.key))
        .tag_specifications(tag_spec(
            ResourceType::VpcEndpoint,
            &plan.owner.tags(component),
            &format!("{}-{}", plan.name, wanted.key),
        ))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let endpoint = created.vpc_endpoint();
    let id = endpoint.and_then(|e| e.vpc_endpoint_id()).required("CreateVpcEndpoint", "VpcEndpointId")?;
    changes.record(Action::Created, format!("VPC endpoint {id} ({})", wanted.key));
    let available = EndpointState::of(endpoint.and_then(|e| e.state())) == EndpointState::Available;
    Ok((id.clone(), (!available).then(|| format!("VPC endpoint {id} ({}) is being created", wanted.key))))
}

/// (wanted but missing, present but unwanted).
fn set_diff(wanted: &[String], present: &[String]) -> (Vec<String>, Vec<String>) {
    let wanted: BTreeSet<&String> = wanted.iter().collect();
    let present: BTreeSet<&String> = present.iter().collect();
    (
        wanted.difference(&present).map(|s| (*s).clone()).collect(),
        present.difference(&wanted).map(|s| (*s).clone()).collect(),
    )
}

fn non_empty(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}
