//! VPC flow logs: a log group per VPC in every account, encrypted with the account's ebs or
//! endpoint key, which CloudWatch Logs may use only for that group, written by a role only the flow-logs service of the
//! account may assume; repaired when changed, turned off and on, kept with records on deletion
//! (tests in deletion.rs), and out of reach of the environment's own people.

use std::time::Duration;

use sagekeeper_api::DataScienceEnvironment;
use sagekeeper_api::environment::FlowLogsStatus;
use sagekeeper_aws::sdk::ec2::types::Filter;
use sagekeeper_aws::sdk::ec2::types::FlowLog;
use sagekeeper_tests::test_env::AccountClients;
use sagekeeper_tests::{TestEnv, eventually};
use serde_json::Value;

use crate::environments::full_environment;

/// Every account's flow log as status reports it: (account id, flow logs), dev first.
fn flow_logs_of(env: &DataScienceEnvironment) -> Vec<(String, FlowLogsStatus)> {
    let status = env.status.as_ref().expect("status");
    let dev = status.network.as_ref().and_then(|n| n.flow_logs.clone()).expect("the dev VPC's flow logs in status");
    let mut all = vec![(status.account_id.clone().unwrap(), dev)];
    for target in &status.target_accounts {
        let logs = target.flow_logs.clone().unwrap_or_else(|| panic!("{}'s flow logs in status", target.account));
        all.push((target.account_id.clone().unwrap(), logs));
    }
    all
}

async fn flow_log(clients: &AccountClients, id: &str) -> Option<FlowLog> {
    let filter = Filter::builder().name("flow-log-id").values(id).build();
    let out = clients.ec2.describe_flow_logs().filter(filter).send().await.unwrap();
    out.flow_logs().first().cloned()
}

/// The VPC's flow logs of any owner.
async fn flow_logs_of_vpc(clients: &AccountClients, vpc: &str) -> Vec<FlowLog> {
    let filter = Filter::builder().name("resource-id").values(vpc).build();
    clients.ec2.describe_flow_logs().filter(filter).send().await.unwrap().flow_logs().to_vec()
}

async fn retention(clients: &AccountClients, group: &str) -> Option<i32> {
    let out = clients.logs.describe_log_groups().log_group_name_prefix(group).send().await.unwrap();
    out.log_groups().iter().find(|g| g.log_group_name() == Some(group)).and_then(|g| g.retention_in_days())
}

/// A policy document as IAM or KMS returns it (IAM's URL-encoded).
fn parsed(text: &str) -> Value {
    sagekeeper_policy::parse(text).unwrap_or_else(|e| panic!("{e:?}: {text}"))
}

fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
    policy["Statement"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["Sid"] == sid))
        .unwrap_or_else(|| panic!("no statement {sid} in {policy}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vpc_logs_rejected_traffic_into_its_own_encrypted_group_through_a_flow_logs_only_role() {
    let t = TestEnv::new("flow-logs").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let all = flow_logs_of(&env);
    assert_eq!(all.len(), 3, "dev, staging and production");
    for (account, logs) in &all {
        let c = t.clients(account).await;
        let group_arn = format!("arn:aws:logs:us-east-1:{account}:log-group:{}", logs.log_group);
        // The group: our key, 14 days.
        let groups = c.logs.describe_log_groups().log_group_name_prefix(&logs.log_group).send().await.unwrap();
        let group = groups.log_groups().iter().find(|g| g.log_group_name() == Some(&logs.log_group)).unwrap();
        assert_eq!(group.kms_key_id(), Some(logs.key_arn.as_str()), "{account}");
        assert_eq!(group.retention_in_days(), Some(14), "{account}");
        // The key (the account's ebs or endpoint key): CloudWatch Logs of the region may use it
        // for this group only.
        let policy = c.kms.get_key_policy().key_id(&logs.key_arn).policy_name("default").send().await.unwrap();
        let policy = parsed(policy.policy().unwrap());
        let logs_use = statement(&policy, "CloudWatchLogsOfTheFlowLogGroup");
        assert_eq!(logs_use["Principal"]["Service"], serde_json::json!(["logs.us-east-1.amazonaws.com"]));
        assert_eq!(logs_use["Condition"]["StringEquals"]["kms:EncryptionContext:aws:logs:arn"], group_arn.as_str());
        // The role: trusted by the flow-logs service for this account's flow logs only.
        let role_name = logs.delivery_role_arn.rsplit('/').next().unwrap();
        let role = c.iam.get_role().role_name(role_name).send().await.unwrap().role.unwrap();
        let trust = parsed(role.assume_role_policy_document().unwrap());
        let trusted = statement(&trust, "TrustFlowLogs");
        assert_eq!(trusted["Principal"]["Service"], serde_json::json!(["vpc-flow-logs.amazonaws.com"]));
        assert_eq!(trusted["Condition"]["StringEquals"]["aws:SourceAccount"], account.as_str());
        assert!(role.permissions_boundary().is_some(), "the delivery role carries the boundary");
        // The flow log: REJECT traffic of the VPC, delivered (the emulator evaluates the role's
        // trust and permissions and the key's policy as the services would).
        let flow = flow_log(&c, &logs.flow_log_id).await.expect("the flow log exists");
        assert_eq!(flow.traffic_type().map(|t| t.as_str()), Some("REJECT"), "{account}");
        assert_eq!(flow.log_group_name(), Some(logs.log_group.as_str()));
        assert_eq!(flow.deliver_logs_permission_arn(), Some(logs.delivery_role_arn.as_str()));
        assert_eq!(flow.deliver_logs_status(), Some("SUCCESS"), "{account}: {:?}", flow.deliver_logs_error_message());
    }
    let vpc = env.status.as_ref().unwrap().network.as_ref().unwrap().vpc_id.clone().unwrap();
    assert_eq!(
        flow_log(&t.clients(&all[0].0).await, &all[0].1.flow_log_id).await.unwrap().resource_id(),
        Some(vpc.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_flow_log_and_a_changed_retention_or_key_are_put_back() {
    let t = TestEnv::new("flow-logs-drift").await;
    // The tests' controller checks at Full depth every time (the group's settings are not read
    // at Security depth).
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let all = flow_logs_of(&env);
    let (dev, dev_logs) = &all[0];
    let (staging, staging_logs) = &all[1];
    let dev_clients = t.clients(dev).await;
    let staging_clients = t.clients(staging).await;
    let vpc = env.status.as_ref().unwrap().network.as_ref().unwrap().vpc_id.clone().unwrap();
    // Behind sagekeeper's back: the dev flow log goes, staging's retention shrinks and its
    // group loses the key.
    let deleted = dev_clients.ec2.delete_flow_logs().flow_log_ids(&dev_logs.flow_log_id).send().await.unwrap();
    assert!(deleted.unsuccessful().is_empty());
    let put = staging_clients.logs.put_retention_policy().log_group_name(&staging_logs.log_group).retention_in_days(1);
    put.send().await.unwrap();
    staging_clients.logs.disassociate_kms_key().log_group_name(&staging_logs.log_group).send().await.unwrap();

    t.poke(&api, "fraud").await;
    let repaired = eventually(Duration::from_secs(60), "the dev VPC logged again", || async {
        let logs = flow_logs_of_vpc(&dev_clients, &vpc).await;
        (logs.len() == 1 && logs[0].flow_log_id() != Some(dev_logs.flow_log_id.as_str())).then(|| logs[0].clone())
    })
    .await;
    assert_eq!(repaired.traffic_type().map(|t| t.as_str()), Some("REJECT"));
    eventually(Duration::from_secs(60), "staging's group as planned", || async {
        let out = staging_clients.logs.describe_log_groups().log_group_name_prefix(&staging_logs.log_group);
        let out = out.send().await.unwrap();
        let group = out.log_groups().first().cloned()?;
        (group.retention_in_days() == Some(14) && group.kms_key_id() == Some(staging_logs.key_arn.as_str()))
            .then_some(())
    })
    .await;
    t.wait_event("fraud", "DriftRepaired").await;
    let new_id = repaired.flow_log_id().unwrap().to_owned();
    eventually(Duration::from_secs(30), "status to name the new flow log", || async {
        let env = api.get("fraud").await.unwrap();
        let ready = sagekeeper_api::conditions::is_ready(&env.status.as_ref()?.conditions, env.metadata.generation);
        (ready && flow_logs_of(&env)[0].1.flow_log_id == new_id).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_logs_turned_off_go_with_their_roles_and_leave_the_groups_and_a_new_traffic_type_replaces_the_flow_log() {
    let t = TestEnv::new("flow-logs-off").await;
    let _controller = t.controller().await;
    full_environment(&t).await;
    let api = t.api::<DataScienceEnvironment>();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let before = flow_logs_of(&env);
    let vpc = env.status.as_ref().unwrap().network.as_ref().unwrap().vpc_id.clone().unwrap();
    let dev = t.clients(&before[0].0).await;

    // ALL instead of REJECT: a flow log cannot change, so a new one replaces it.
    let patch = serde_json::json!({"spec": {"network": {"flowLogs": {"trafficType": "ALL", "retentionDays": 30}}}});
    api.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    eventually(Duration::from_secs(90), "one ALL flow log on the dev VPC", || async {
        let logs = flow_logs_of_vpc(&dev, &vpc).await;
        (logs.len() == 1 && logs[0].traffic_type().map(|t| t.as_str()) == Some("ALL")).then_some(())
    })
    .await;
    assert_eq!(retention(&dev, &before[0].1.log_group).await, Some(30));

    let patch = serde_json::json!({"spec": {"network": {"flowLogs": {"enabled": false}}}});
    api.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let env = eventually(Duration::from_secs(90), "flow logs off in status", || async {
        let env = api.get("fraud").await.unwrap();
        let status = env.status.as_ref()?;
        let off = status.network.as_ref()?.flow_logs.is_none()
            && status.target_accounts.iter().all(|t| t.flow_logs.is_none());
        let ready = sagekeeper_api::conditions::find(&status.conditions, "Ready").is_some_and(|c| c.status == "True");
        (off && ready && status.observed_generation == env.metadata.generation).then_some(env)
    })
    .await;
    let message =
        &sagekeeper_api::conditions::find(&env.status.as_ref().unwrap().conditions, "NetworkReady").unwrap().message;
    assert!(message.contains("flow logs off"), "{message}");
    for (account, logs) in &before {
        let c = t.clients(account).await;
        let owned = Filter::builder().name(format!("tag:{}", sagekeeper_api::naming::OWNER_UID_TAG));
        let owned = owned.values(env.metadata.uid.clone().unwrap()).build();
        let left = c.ec2.describe_flow_logs().filter(owned).send().await.unwrap();
        assert!(left.flow_logs().is_empty(), "{account}: {:?}", left.flow_logs());
        let role = logs.delivery_role_arn.rsplit('/').next().unwrap();
        let role = c.iam.get_role().role_name(role).send().await;
        assert!(role.is_err(), "{account}: the delivery role is gone");
        assert!(retention(&c, &logs.log_group).await.is_some(), "{account}: the group (data) stays");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environments_own_people_cannot_forge_read_or_remove_its_flow_logs() {
    use sagekeeper_aws::sdk::logs::types::InputLogEvent;
    let t = TestEnv::new("flow-logs-people").await;
    let dev = t.account(1);
    let admin = t.clients(&dev).await;
    let _controller = t.controller().await;
    let arn = admin.iam.create_user().user_name("mallory").send().await.unwrap().user.unwrap().arn;
    let identity = format!("  identity: {{personaPrincipals: {{TeamAdmin: ['{arn}']}}}}\n");
    let status = crate::security::converged_environment(&t, &identity).await;
    let logs = status.network.as_ref().unwrap().flow_logs.clone().expect("flow logs");
    let team_admin = status.identity.as_ref().unwrap().persona_role_arns["TeamAdmin"].clone();
    // The strongest of the environment's people, as a session of the TeamAdmin role.
    let user = t.emulator.user_credentials(&dev, "mallory");
    let person = TestEnv::clients_for(&t.assume(&user, &team_admin).await);
    let mut could = Vec::new();
    let mut refused = |result: Result<(), String>, what: &str| {
        if !result.as_ref().is_err_and(|e| e.starts_with("AccessDenied") || e.starts_with("UnauthorizedOperation")) {
            could.push(format!("{what} ({result:?})"));
        }
    };
    let outcome = |r: Result<(), String>| r;
    let group = &logs.log_group;
    let stream = person.logs.create_log_stream().log_group_name(group).log_stream_name("eni-forged").send().await;
    refused(outcome(stream.map(|_| ()).map_err(|e| sdk_code(&e))), "create a stream in the flow log group");
    let event = InputLogEvent::builder().timestamp(1).message("forged").build().unwrap();
    let put = person.logs.put_log_events().log_group_name(group).log_stream_name("eni-forged").log_events(event);
    refused(outcome(put.send().await.map(|_| ()).map_err(|e| sdk_code(&e))), "forge flow records");
    let read = person.logs.filter_log_events().log_group_name(group).send().await;
    refused(outcome(read.map(|_| ()).map_err(|e| sdk_code(&e))), "read flow records");
    let delete = person.logs.delete_log_group().log_group_name(group).send().await;
    refused(outcome(delete.map(|_| ()).map_err(|e| sdk_code(&e))), "delete the flow log group");
    let shorten = person.logs.put_retention_policy().log_group_name(group).retention_in_days(1).send().await;
    refused(outcome(shorten.map(|_| ()).map_err(|e| sdk_code(&e))), "shorten the retention");
    let stop = person.ec2.delete_flow_logs().flow_log_ids(&logs.flow_log_id).send().await;
    refused(outcome(stop.map(|_| ()).map_err(|e| sdk_code(&e))), "stop the flow log");
    // Nor can anyone but the flow-logs service act as the delivery role: not even a user whose
    // own policy lets it assume any role.
    let (name, action) = ("ops", ["sts:AssumeRole"]);
    crate::security::broad_user(&t, &dev, name, &action).await;
    let ops = t.aws_config(&t.emulator.user_credentials(&dev, name)).await;
    let sts = sagekeeper_aws::sdk::sts::Client::new(&ops);
    let assumed = sts.assume_role().role_arn(&logs.delivery_role_arn).role_session_name("x").send().await;
    refused(outcome(assumed.map(|_| ()).map_err(|e| sdk_code(&e))), "assume the delivery role");
    assert!(could.is_empty(), "the TeamAdmin could:\n{}", could.join("\n"));
    // And the flow log still delivers, untouched.
    let flow = flow_log(&admin, &logs.flow_log_id).await.expect("the flow log is still there");
    assert_eq!(flow.deliver_logs_status(), Some("SUCCESS"));
}

fn sdk_code<E: sagekeeper_aws::sdk::logs::error::ProvideErrorMetadata>(e: &E) -> String {
    format!("{}: {}", e.code().unwrap_or("(no code)"), e.message().unwrap_or_default())
}
