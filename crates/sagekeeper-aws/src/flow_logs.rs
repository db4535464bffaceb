//! VPC flow logs to CloudWatch Logs: a log group (encrypted with the caller's key, kept for the
//! planned retention) and the VPC's flow log into it, written by a delivery role. A flow log
//! cannot be changed in place: one that no longer matches the plan is replaced, the new one
//! made before the old one goes, so the VPC is never unlogged. Flow logs of the VPC that do not
//! carry the owner's uid (an organization-wide one, say) are left alone.
//!
//! An account's sagekeeper flow logs are one listing ([`AccountFlowLogs`]: one paginated
//! DescribeFlowLogs filtered by the owner-uid tag key), shared by every environment using the
//! account for the account read age. A Security-depth check takes a flow log that listing shows
//! as planned and delivering as its check; the group's key, retention and tags are read at Full
//! depth, which reads the listing afresh. Anything else is decided on a fresh read: the listing
//! when this pass read it, else the VPC's own flow logs; a write forgets the listing here and
//! shared.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatchlogs::Client as Logs;
use aws_sdk_ec2::types::{Filter, FlowLog, FlowLogsResourceType, LogDestinationType, ResourceType, TrafficType};

use std::sync::Arc;

use crate::errors::{AwsError, Optional};
use crate::observe::{Shared, Snapshot};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Depth, Owner, Step, StepResult};

/// How often the flow-logs service aggregates records, in seconds (the reference's value).
const AGGREGATION_SECONDS: i32 = 600;

/// One VPC's flow logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLogPlan {
    /// Tags and adoption.
    pub owner: Owner,
    /// The component tag of the log group and the flow log, e.g. `flow-logs`.
    pub component: String,
    /// The log group name.
    pub log_group: String,
    /// The ARN of the key that encrypts the group.
    pub key_arn: String,
    /// Retention, in days.
    pub retention_days: i32,
    /// The VPC whose traffic is logged.
    pub vpc_id: String,
    /// `REJECT`, `ACCEPT` or `ALL`.
    pub traffic_type: String,
    /// The role the flow-logs service writes with.
    pub role_arn: String,
}

/// The flow log that logs the VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLogOutputs {
    /// Its id.
    pub flow_log_id: String,
}

/// Every sagekeeper flow log of an account.
#[derive(Clone, Debug, Default)]
pub struct AccountFlowLogs {
    flow_logs: Vec<FlowLog>,
}

impl AccountFlowLogs {
    /// The owner's flow logs of the plan's VPC.
    fn of(&self, plan: &FlowLogPlan) -> Vec<FlowLog> {
        let owned = |f: &&FlowLog| {
            f.resource_id() == Some(plan.vpc_id.as_str())
                && plan.owner.owns(f.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))))
        };
        self.flow_logs.iter().filter(owned).cloned().collect()
    }

    /// The flow log, when it is the VPC's only one of the owner's, as planned and delivering.
    fn settled(&self, plan: &FlowLogPlan) -> Option<String> {
        match self.of(plan).as_slice() {
            [only] if is_planned(only, plan) && only.deliver_logs_status() != Some("FAILED") => {
                only.flow_log_id().map(str::to_owned)
            }
            _ => None,
        }
    }
}

/// One account's listing: every flow log carrying the owner-uid tag key, every page.
async fn list_account(ec2: &aws_sdk_ec2::Client) -> Result<Arc<AccountFlowLogs>, AwsError> {
    let tagged = Filter::builder().name("tag-key").values(sagekeeper_api::naming::OWNER_UID_TAG).build();
    let flow_logs = every_page(ec2.describe_flow_logs().filter(tagged)).await?;
    Ok(Arc::new(AccountFlowLogs { flow_logs }))
}

/// Converges the log group, then the flow log. Pending while AWS reports the flow log cannot
/// deliver (a new delivery role still propagating, or a role or key changed behind our back).
pub async fn ensure(
    session: &Session,
    seen: &Snapshot,
    shared: &Shared,
    plan: &FlowLogPlan,
    depth: Depth,
    changes: &Changes,
) -> StepResult<FlowLogOutputs> {
    let account = session.access.clone();
    let list = || list_account(session.ec2());
    // A Full-depth pass reads the listing afresh (and shares it), deciding on it.
    let accept = |_: &Arc<AccountFlowLogs>| depth == Depth::Security;
    let (listing, fresh) = seen.flow_logs.get_marked(&account, &shared.flow_logs, accept, list).await?;
    if depth == Depth::Security
        && let Some(flow_log_id) = listing.settled(plan)
    {
        return Ok(Step::Ready(FlowLogOutputs { flow_log_id }));
    }
    let ours = Changes::default();
    let result = converge(session, plan, fresh.then(|| listing.of(plan)), &ours).await;
    if changes.absorb(ours) {
        seen.flow_logs.forget(&account);
        shared.flow_logs.forget(&account);
    }
    result
}

/// The group, then the flow log, decided on `found` (the owner's flow logs of the VPC from a
/// listing this pass read) or a read of them now.
async fn converge(
    session: &Session,
    plan: &FlowLogPlan,
    found: Option<Vec<FlowLog>>,
    changes: &Changes,
) -> StepResult<FlowLogOutputs> {
    ensure_group(session, plan, changes).await?;
    let ec2 = session.ec2();
    let logs = match found {
        Some(found) => found,
        None => owned_flow_logs(ec2, &plan.owner, Some(&plan.vpc_id), None).await?,
    };
    let (matching, stale): (Vec<&FlowLog>, Vec<&FlowLog>) = logs.iter().partition(|f| is_planned(f, plan));
    let current = match matching.first() {
        Some(found) => found.flow_log_id().unwrap_or_default().to_owned(),
        None => create_flow_log(ec2, plan, changes).await?,
    };
    let stale: Vec<String> =
        stale.iter().chain(matching.iter().skip(1)).filter_map(|f| f.flow_log_id()).map(str::to_owned).collect();
    delete_flow_logs(ec2, &stale, changes).await?;
    if let Some(found) = matching.first()
        && found.deliver_logs_status() == Some("FAILED")
    {
        let why = found.deliver_logs_error_message().unwrap_or("no reason given");
        return Ok(Step::Pending(format!("flow log {current} cannot deliver to {}: {why}", plan.log_group)));
    }
    Ok(Step::Ready(FlowLogOutputs { flow_log_id: current }))
}

/// Removes the owner's flow logs of the VPC (flow logs turned off). The log group stays: it is
/// data, and goes only with the environment, by its deleteDataOnDelete.
pub async fn disable(session: &Session, owner: &Owner, vpc_id: &str, changes: &Changes) -> Result<(), AwsError> {
    let ec2 = session.ec2();
    let logs = owned_flow_logs(ec2, owner, Some(vpc_id), None).await?;
    let ids: Vec<String> = logs.iter().filter_map(|f| f.flow_log_id()).map(str::to_owned).collect();
    delete_flow_logs(ec2, &ids, changes).await
}

/// What teardown did with a log group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removed {
    /// The flow logs and the group are gone (or never were).
    Gone,
    /// The flow logs are gone; the group, which holds records, is kept.
    GroupKept,
}

/// Removes the owner's flow logs into `log_group` (whatever VPC they log) and the group itself
/// when it holds no records or `delete_data`. A group that is not the owner's is never touched.
pub async fn remove(
    session: &Session,
    owner: &Owner,
    log_group: &str,
    delete_data: bool,
    changes: &Changes,
) -> Result<Removed, AwsError> {
    let ec2 = session.ec2();
    let logs = owned_flow_logs(ec2, owner, None, Some(log_group)).await?;
    let ids: Vec<String> = logs.iter().filter_map(|f| f.flow_log_id()).map(str::to_owned).collect();
    delete_flow_logs(ec2, &ids, changes).await?;
    let cwl = session.logs();
    let Some(group) = describe_group(cwl, log_group).await? else { return Ok(Removed::Gone) };
    let tags = group_tags(cwl, &group.arn).await?;
    if !owner.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Removed::Gone);
    }
    if !delete_data && holds_records(cwl, log_group).await? {
        return Ok(Removed::GroupKept);
    }
    let deleted = cwl.delete_log_group().log_group_name(log_group).send().await.map_err(AwsError::from_sdk);
    if deleted.optional()?.is_some() {
        changes.record(Action::Deleted, format!("log group {log_group}"));
    }
    Ok(Removed::Gone)
}

/// Whether the group holds any log stream (flow records are written to one per interface).
async fn holds_records(cwl: &Logs, log_group: &str) -> Result<bool, AwsError> {
    let out = cwl.describe_log_streams().log_group_name(log_group).limit(1).send().await.map_err(AwsError::from_sdk)?;
    Ok(!out.log_streams().is_empty())
}

/// A log group as DescribeLogGroups shows it.
struct Group {
    /// Its ARN without the trailing `:*` (what tagging takes).
    arn: String,
    kms_key_id: Option<String>,
    retention_days: Option<i32>,
}

/// The log group: created with its key, tags and retention; its key, retention and tags put
/// back if changed. A group not carrying the owner's uid is never adopted.
async fn ensure_group(session: &Session, plan: &FlowLogPlan, changes: &Changes) -> Result<(), AwsError> {
    let cwl = session.logs();
    let Some(group) = describe_group(cwl, &plan.log_group).await? else {
        return create_group(cwl, plan, changes).await;
    };
    let tags = group_tags(cwl, &group.arn).await?;
    if !plan.owner.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Err(plan.owner.conflict(&format!("log group {}", plan.log_group), []));
    }
    ensure_group_tags(cwl, plan, &group.arn, &tags, changes).await?;
    if group.kms_key_id.as_deref() != Some(plan.key_arn.as_str()) {
        let call = cwl.associate_kms_key().log_group_name(&plan.log_group).kms_key_id(&plan.key_arn);
        call.send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("log group {} encryption key", plan.log_group));
    }
    if group.retention_days != Some(plan.retention_days) {
        put_retention(cwl, plan).await?;
        changes.record(Action::Updated, format!("log group {} retention", plan.log_group));
    }
    Ok(())
}

async fn create_group(cwl: &Logs, plan: &FlowLogPlan, changes: &Changes) -> Result<(), AwsError> {
    let tags: HashMap<String, String> = plan.owner.tags(&plan.component).into_iter().collect();
    let call = cwl.create_log_group().log_group_name(&plan.log_group).kms_key_id(&plan.key_arn).set_tags(Some(tags));
    match call.send().await.map_err(AwsError::from_sdk) {
        Ok(_) => changes.record(Action::Created, format!("log group {}", plan.log_group)),
        // A retry after a lost answer: the group is there; its owner is checked next pass.
        Err(e) if e.code == "ResourceAlreadyExistsException" => {}
        Err(e) => return Err(e),
    }
    put_retention(cwl, plan).await
}

async fn put_retention(cwl: &Logs, plan: &FlowLogPlan) -> Result<(), AwsError> {
    let call = cwl.put_retention_policy().log_group_name(&plan.log_group).retention_in_days(plan.retention_days);
    call.send().await.map_err(AwsError::from_sdk).map(|_| ())
}

/// The group named exactly `name`, if any (the prefix listing may show longer names too).
async fn describe_group(cwl: &Logs, name: &str) -> Result<Option<Group>, AwsError> {
    let out = cwl.describe_log_groups().log_group_name_prefix(name).send().await.map_err(AwsError::from_sdk)?;
    Ok(out.log_groups().iter().find(|g| g.log_group_name() == Some(name)).map(|g| Group {
        arn: g
            .log_group_arn()
            .map(str::to_owned)
            .unwrap_or_else(|| g.arn().unwrap_or_default().trim_end_matches(":*").to_owned()),
        kms_key_id: g.kms_key_id().map(str::to_owned),
        retention_days: g.retention_in_days(),
    }))
}

async fn group_tags(cwl: &Logs, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let out = cwl.list_tags_for_resource().resource_arn(arn).send().await.map_err(AwsError::from_sdk)?;
    Ok(out.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default())
}

async fn ensure_group_tags(
    cwl: &Logs,
    plan: &FlowLogPlan,
    arn: &str,
    have: &BTreeMap<String, String>,
    changes: &Changes,
) -> Result<(), AwsError> {
    let want = plan.owner.tags(&plan.component);
    let lacking: HashMap<String, String> = want.into_iter().filter(|(k, v)| have.get(k) != Some(v)).collect();
    if !lacking.is_empty() {
        cwl.tag_resource().resource_arn(arn).set_tags(Some(lacking)).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("log group {} tags", plan.log_group));
    }
    let stale = plan.owner.stale_keys(have.keys().map(String::as_str));
    if !stale.is_empty() {
        cwl.untag_resource().resource_arn(arn).set_tag_keys(Some(stale)).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("log group {} removed tags", plan.log_group));
    }
    Ok(())
}

/// The flow logs carrying the owner's uid, of one VPC or into one group, every page.
async fn owned_flow_logs(
    ec2: &aws_sdk_ec2::Client,
    owner: &Owner,
    vpc_id: Option<&str>,
    log_group: Option<&str>,
) -> Result<Vec<FlowLog>, AwsError> {
    let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
    let mut call =
        ec2.describe_flow_logs().filter(filter(&format!("tag:{}", sagekeeper_api::naming::OWNER_UID_TAG), &owner.uid));
    if let Some(vpc) = vpc_id {
        call = call.filter(filter("resource-id", vpc));
    }
    if let Some(group) = log_group {
        call = call.filter(filter("log-group-name", group));
    }
    every_page(call).await
}

async fn every_page(
    call: aws_sdk_ec2::operation::describe_flow_logs::builders::DescribeFlowLogsFluentBuilder,
) -> Result<Vec<FlowLog>, AwsError> {
    let mut found = Vec::new();
    let mut pages = call.into_paginator().send();
    while let Some(page) = pages.next().await {
        found.extend(page.map_err(AwsError::from_sdk)?.flow_logs().iter().cloned());
    }
    Ok(found)
}

fn is_planned(flow_log: &FlowLog, plan: &FlowLogPlan) -> bool {
    flow_log.resource_id() == Some(plan.vpc_id.as_str())
        && flow_log.traffic_type().map(TrafficType::as_str) == Some(plan.traffic_type.as_str())
        && flow_log.log_destination_type() == Some(&LogDestinationType::CloudWatchLogs)
        && flow_log.log_group_name() == Some(plan.log_group.as_str())
        && flow_log.deliver_logs_permission_arn() == Some(plan.role_arn.as_str())
        && flow_log.max_aggregation_interval().is_none_or(|s| s == AGGREGATION_SECONDS)
}

async fn create_flow_log(ec2: &aws_sdk_ec2::Client, plan: &FlowLogPlan, changes: &Changes) -> Result<String, AwsError> {
    let tags = crate::network::tag_spec(ResourceType::VpcFlowLog, &plan.owner.tags(&plan.component), &plan.log_group);
    let out = ec2
        .create_flow_logs()
        .resource_type(FlowLogsResourceType::Vpc)
        .resource_ids(&plan.vpc_id)
        .traffic_type(TrafficType::from(plan.traffic_type.as_str()))
        .log_destination_type(LogDestinationType::CloudWatchLogs)
        .log_group_name(&plan.log_group)
        .deliver_logs_permission_arn(&plan.role_arn)
        .max_aggregation_interval(AGGREGATION_SECONDS)
        .tag_specifications(tags)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    if let Some(item) = out.unsuccessful().first() {
        let (code, message) = item
            .error()
            .map_or(("Unsuccessful", ""), |e| (e.code().unwrap_or("Unsuccessful"), e.message().unwrap_or_default()));
        return Err(AwsError::from_code(code, &format!("CreateFlowLogs for {}: {message}", plan.vpc_id), None));
    }
    let id = out
        .flow_log_ids()
        .first()
        .cloned()
        .ok_or_else(|| AwsError::from_code("InvalidResponse", "CreateFlowLogs returned no flow log id", None))?;
    changes.record(Action::Created, format!("flow log {id} of {}", plan.vpc_id));
    Ok(id)
}

async fn delete_flow_logs(ec2: &aws_sdk_ec2::Client, ids: &[String], changes: &Changes) -> Result<(), AwsError> {
    if ids.is_empty() {
        return Ok(());
    }
    let out = ec2.delete_flow_logs().set_flow_log_ids(Some(ids.to_vec())).send().await.map_err(AwsError::from_sdk)?;
    // One already gone is what was asked.
    if let Some(error) = out
        .unsuccessful()
        .iter()
        .filter_map(|item| item.error())
        .find(|e| e.code() != Some("InvalidFlowLogId.NotFound"))
    {
        let code = error.code().unwrap_or("Unsuccessful");
        return Err(AwsError::from_code(code, error.message().unwrap_or_default(), None));
    }
    changes.record(Action::Deleted, format!("flow logs {}", ids.join(", ")));
    Ok(())
}
