//! Before an environment writes anything: the zones it uses, and the networks others own that
//! it borrows (`spec.network.existing`, `spec.targetNetwork.existing`), checked against AWS.
//! What was checked is pinned in status (zones, VPC ids); from then on the network steps check
//! the borrowed networks on every pass themselves.

use std::sync::Arc;

use kube::ResourceExt;
use sagekeeper_api::conditions::{Component, Outcome, Reason};
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, DataScienceEnvironmentStatus};
use sagekeeper_aws::errors::{AwsError, ErrorKind};
use sagekeeper_aws::network::{self, Existing};
use sagekeeper_aws::steps::Owner;

use super::plan::{account_plan, existing};
use crate::context::Context;
use crate::lifecycle::Report;
use crate::resolve;

type Refused = Box<Report<DataScienceEnvironmentStatus>>;

/// The dev account's zones (pinned, or chosen now), once every borrowed network not yet in use
/// passed its checks; else the report that stalls the environment before any write.
pub(super) async fn check(
    env: &DataScienceEnvironment,
    ctx: &Context,
    dev: &Arc<AwsAccount>,
    targets: &[(String, Arc<AwsAccount>)],
    status: &DataScienceEnvironmentStatus,
    pinned: &[String],
) -> Result<Vec<String>, Refused> {
    let spec = &env.spec;
    let namespace = env.namespace().unwrap_or_default();
    let stalled = |message: String| {
        Box::new(Report::new(status.clone(), Outcome::stalled(Reason::InvalidConfiguration, message)))
    };
    // A target account keeps the kind of network it was first given (admission refuses the
    // switch for accounts it can see; this covers those of account sets).
    let mut unchecked: Vec<(&Arc<AwsAccount>, Existing)> = Vec::new();
    for (_, account) in targets {
        let name = account.name_any();
        let wanted = spec.target_network.existing.get(&name);
        let recorded = status.target_accounts.iter().find(|t| t.account == name);
        let in_use = recorded.and_then(|t| t.vpc_id.as_deref().map(|vpc| (vpc, t.existing_network)));
        match (wanted, in_use) {
            (Some(e), Some((vpc, _))) if e.vpc_id != vpc => {
                return Err(stalled(format!(
                    "spec.targetNetwork.existing.{name}: {name} already serves with VPC {vpc}; switching to {} is not supported (remove the account from its stage first)",
                    e.vpc_id
                )));
            }
            (None, Some((vpc, true))) => {
                return Err(stalled(format!(
                    "spec.targetNetwork.existing: {name} serves with the existing VPC {vpc} it was given; replacing it with a network sagekeeper creates is not supported (remove the account from its stage first)"
                )));
            }
            (Some(e), None) => {
                unchecked.push((account, existing(&format!("spec.targetNetwork.existing.{name}"), e, &namespace)));
            }
            _ => {}
        }
    }
    let recorded_dev = status.network.as_ref().and_then(|n| n.vpc_id.as_deref());
    let dev_unchecked = spec.network.existing.as_ref().filter(|e| recorded_dev != Some(e.vpc_id.as_str()));
    let wanted_zones = spec.network.availability_zones.clone();
    // The dev zones when nothing about them is new: pinned, or pinned and asked for again.
    let known = match (&spec.network.existing, &wanted_zones) {
        (Some(_), _) if dev_unchecked.is_none() && !pinned.is_empty() => Some(pinned.to_vec()),
        (None, Some(zones)) if zones == pinned => Some(zones.clone()),
        (None, None) if !pinned.is_empty() => Some(pinned.to_vec()),
        _ => None,
    };
    if let Some(zones) = &known
        && unchecked.is_empty()
    {
        return Ok(zones.clone());
    }
    // New zones, or a borrowed network not in use yet: checked against the region first.
    let session = ctx.sessions.session(&account_plan(dev, &spec.region).access);
    let region_zones = match network::region_zones(&session).await {
        Ok(zones) => zones,
        Err(e) => {
            let remedy = "check the region, and that sagekeeper's role there has the policies of deploy/aws/deployer/ (ec2:DescribeAvailabilityZones is in network.json)";
            return Err(Box::new(resolve::aws_failure(
                status.clone(),
                Component::Network,
                &e,
                "availability zones",
                remedy,
            )));
        }
    };
    let wanted_zones_given = wanted_zones.is_some();
    let allowed = match wanted_zones {
        Some(zones) => {
            if let Some(missing) = zones.iter().find(|z| !region_zones.contains(z)) {
                return Err(stalled(format!(
                    "spec.network.availabilityZones: {missing} is not an available zone of {} (it has: {})",
                    spec.region,
                    region_zones.join(", ")
                )));
            }
            zones
        }
        None => region_zones,
    };
    let owner = Owner { uid: env.metadata.uid.clone().unwrap_or_default(), ..Owner::default() };
    let internet = spec.network.internet_access == sagekeeper_api::environment::InternetAccess::NatGateway;
    for (account, borrowed) in &unchecked {
        let session = ctx.sessions.session(&account_plan(account, &spec.region).access);
        if let Err(e) = network::check_existing(&session, borrowed, &owner, internet, &allowed).await {
            return Err(refusal(status, &e, &borrowed.vpc_id, &account.name_any()));
        }
    }
    if let Some(zones) = known {
        return Ok(zones);
    }
    let Some(existing_dev) = &spec.network.existing else {
        // Asked-for zones, checked above, or the region's first two.
        return Ok(match wanted_zones_given {
            true => allowed,
            false => allowed.into_iter().take(2).collect(),
        });
    };
    let borrowed = existing("spec.network.existing", existing_dev, &namespace);
    match network::check_existing(&session, &borrowed, &owner, internet, &allowed).await {
        Ok(zones) => Ok(zones),
        Err(e) => Err(refusal(status, &e, &borrowed.vpc_id, &dev.name_any())),
    }
}

/// A borrowed network that failed its checks (or could not be read) stalls the environment.
fn refusal(status: &DataScienceEnvironmentStatus, e: &AwsError, vpc_id: &str, account: &str) -> Refused {
    let remedy = match e.kind {
        ErrorKind::AccessDenied => {
            "sagekeeper reads borrowed networks with ec2:DescribeVpcs, DescribeSubnets, DescribeRouteTables and DescribeSecurityGroups (deploy/aws/deployer/network.json)"
        }
        _ => "",
    };
    let resource = format!("existing VPC {vpc_id} in {account}");
    Box::new(resolve::aws_failure(status.clone(), Component::Network, e, &resource, remedy))
}
