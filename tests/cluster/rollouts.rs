//! Guarded rollouts: canary and linear traffic shifting baked under the alarms sagekeeper owns
//! on each endpoint (and the team's), SageMaker's automatic rollback recorded as the version's
//! failure naming the alarm, crash safety in the middle of a bake, and who may touch the alarms.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use sagekeeper_api::deployment::StagePhase;
use sagekeeper_api::naming::EnvironmentNames;
use sagekeeper_api::{DataScienceEnvironment, ModelDeployment};
use sagekeeper_aws::sdk::cloudwatch::Client as CloudWatch;
use sagekeeper_aws::sdk::cloudwatch::error::ProvideErrorMetadata;
use sagekeeper_aws::sdk::cloudwatch::operation::put_metric_alarm::builders::PutMetricAlarmFluentBuilder as PutMetricAlarm;
use sagekeeper_aws::sdk::cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
use sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus;
use sagekeeper_tests::{TestEnv, eventually};
use serde_json::{Value, json};

use crate::deployments::{
    calls, condition, crash_before_status_write, create, is_ready, project, register, serving, set_approval, stage,
    until,
};
use crate::security::acting_as;

fn settings(s: &mut sagekeeper_controller::Settings) {
    s.poll_interval = Duration::from_secs(1);
}

/// Seconds each traffic step and the termination wait bake (the emulator bakes in real time).
const BAKE: i64 = 4;

/// One staging stage of two instances: a canary of half the fleet, baked BAKE seconds, rolled
/// back on more than 3 errors a minute, a p99 above 250 ms, or the team's `alarm_names`.
fn canary(alarm_names: &[&str]) -> Value {
    json!({"stages": [{"name": "staging", "instanceType": "ml.m5.large", "initialInstanceCount": 2,
        "rollout": {"strategy": "Canary", "canarySize": {"type": "CapacityPercent", "value": 50}, "bakeSeconds": BAKE,
            "alarms": {"invocation5xxErrorsMax": 3, "modelLatencyP99Millis": 250, "alarmNames": alarm_names}}}]})
}

/// The environment's resource prefix: what the team's alarm names start with.
fn prefix(t: &TestEnv) -> String {
    EnvironmentNames::new(&t.namespace, "fraud").resource_prefix
}

async fn approve(t: &TestEnv, group: &str) -> i64 {
    let version = register(t, group).await;
    set_approval(t, group, version, ModelApprovalStatus::Approved).await;
    version
}

/// The project, quick endpoint updates in the staging account, and the deployment `churn` with
/// a canary rollout serving its first version: (model package group, api, deployment).
async fn canary_serving_v1(t: &TestEnv) -> (String, Api<ModelDeployment>, ModelDeployment) {
    let group = project(t).await;
    t.emulator.configure(json!({"account": t.account(2), "endpointUpdatingSeconds": 1}));
    let v1 = approve(t, &group).await;
    let api = create(t, "churn", canary(&[])).await;
    let d = until(&api, "churn", "staging serving v1", 90, |d| serving(d, "staging", v1) && is_ready(d)).await;
    (group, api, d)
}

/// Watches the staging stage until it serves `version`, returning every (phase, trafficPercent)
/// seen on the way, in order, without repeats.
async fn watch_until_serving(api: &Api<ModelDeployment>, version: i64, secs: u64) -> Vec<(StagePhase, Option<i32>)> {
    let mut seen: Vec<(StagePhase, Option<i32>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let d = api.get("churn").await.unwrap();
        if d.status.as_ref().is_some_and(|s| s.stages.iter().any(|s| s.name == "staging")) {
            let s = stage(&d, "staging");
            let now = (s.phase, s.accounts.first().and_then(|a| a.traffic_percent));
            if s.phase == StagePhase::Baking && s.serving_version != Some(version) {
                assert!(!s.verified_versions.contains(&version), "v{version} verified while it bakes");
            }
            if seen.last() != Some(&now) {
                seen.push(now);
            }
            if serving(&d, "staging", version) && is_ready(&d) {
                return seen;
            }
        }
        assert!(Instant::now() < deadline, "staging never served v{version}; seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The controller's calls in `account` from `from` on, by operation.
fn tally(t: &TestEnv, account: &str, from: usize) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for call in t.emulator.calls(account).into_iter().skip(from).filter(|c| c.caller.ends_with("/sagekeeper")) {
        *by.entry(call.operation).or_default() += 1;
    }
    by
}

/// A PutMetricAlarm of a one-minute Sum above 1 on `metric`, as a person (or an attacker) sends it.
fn metric_alarm(cw: &CloudWatch, name: &str, namespace: &str, metric: &str) -> PutMetricAlarm {
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace(namespace)
        .metric_name(metric)
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
}

/// One guarded update as the emulator ran it: strategy, traffic steps (percent, status), outcome.
type Rollout = (String, Vec<(i64, String)>, String);

/// The guarded updates of an endpoint, oldest first.
fn rollouts(t: &TestEnv, endpoint: &str) -> Vec<Rollout> {
    t.emulator
        .endpoint_deployments(&t.account(2), endpoint)
        .iter()
        .map(|r| {
            let steps = r["steps"].as_array().unwrap();
            let steps =
                steps.iter().map(|s| (s["trafficPercent"].as_i64().unwrap(), s["status"].as_str().unwrap().to_owned()));
            (r["strategy"].as_str().unwrap().to_owned(), steps.collect(), r["outcome"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_and_a_linear_rollout_shift_traffic_in_steps_bake_and_only_then_verify_the_version() {
    let t = TestEnv::new("rollout-canary").await;
    let _controller = t.controller_with(settings, None).await;
    let (group, api, d) = canary_serving_v1(&t).await;
    let account = stage(&d, "staging").accounts[0].clone();
    let endpoint = account.endpoint_name.clone().unwrap();

    // The two alarms sagekeeper owns watch the endpoint's variant, as the spec sets them.
    let prefix = prefix(&t);
    let ours = vec![
        format!("sagekeeper-{prefix}{endpoint}-5xx-errors"),
        format!("sagekeeper-{prefix}{endpoint}-model-latency-p99"),
    ];
    assert_eq!(account.rollback_alarms, ours);
    let cw = t.clients(&t.account(2)).await.cloudwatch;
    let described = cw.describe_alarms().set_alarm_names(Some(ours.clone())).send().await.unwrap();
    let alarm = |metric: &str| described.metric_alarms().iter().find(|a| a.metric_name() == Some(metric)).unwrap();
    let variant = [
        Dimension::builder().name("EndpointName").value(&endpoint).build(),
        Dimension::builder().name("VariantName").value("AllTraffic").build(),
    ];
    let (errors, latency) = (alarm("Invocation5XXErrors"), alarm("ModelLatency"));
    assert_eq!((errors.statistic(), errors.threshold()), (Some(&Statistic::Sum), Some(3.0)));
    assert_eq!((latency.extended_statistic(), latency.threshold()), (Some("p99"), Some(250_000.0)), "microseconds");
    for a in [errors, latency] {
        assert_eq!((a.namespace(), a.period(), a.dimensions()), (Some("AWS/SageMaker"), Some(60), &variant[..]));
        assert_eq!(a.comparison_operator(), Some(&ComparisonOperator::GreaterThanThreshold));
        assert!(a.alarm_actions().is_empty(), "an alarm of ours acts on nothing");
        let tags = cw.list_tags_for_resource().resource_arn(a.alarm_arn().unwrap()).send().await.unwrap();
        let uid = d.metadata.uid.as_deref();
        assert!(tags.tags().iter().any(|t| t.key() == Some("sagekeeper.io/owner-uid") && t.value() == uid));
    }

    // v2: half the traffic on the canary, baked; then all of it, baked; then the old fleet's
    // termination wait; only then does the stage serve and verify v2.
    let from = t.emulator.calls(&t.account(2)).len();
    let approved = Instant::now();
    let v2 = approve(&t, &group).await;
    let seen = watch_until_serving(&api, v2, 90).await;
    let took = approved.elapsed();
    assert!(seen.contains(&(StagePhase::Baking, Some(50))), "the canary's bake is shown: {seen:?}");
    let d = api.get("churn").await.unwrap();
    let staging = stage(&d, "staging");
    assert!(staging.verified_versions.contains(&v2));
    assert_eq!(staging.accounts[0].traffic_percent, None, "no rollout in flight");
    let steps = |percents: &[i64]| {
        let mut steps: Vec<(i64, String)> = percents.iter().map(|p| (*p, "Baking".to_owned())).collect();
        steps.push((100, "Deleting".to_owned()));
        steps
    };
    assert_eq!(rollouts(&t, &endpoint), vec![("CANARY".to_owned(), steps(&[50, 100]), "Succeeded".to_owned())]);
    assert_eq!(calls(&t, 2, "UpdateEndpoint").len(), 1);
    eprintln!(
        "canary (2 instances, {BAKE} s bakes, 1 s provisioning): approval to serving {:.1} s; controller calls in the target account: {:?}",
        took.as_secs_f64(),
        tally(&t, &t.account(2), from)
    );

    // Linear steps of a quarter of a four-instance fleet: new settings roll out the same way.
    let linear = json!({"spec": {"stages": [{"name": "staging", "instanceType": "ml.m5.large", "initialInstanceCount": 4,
        "rollout": {"strategy": "Linear", "linearStepSize": {"type": "CapacityPercent", "value": 25}, "bakeSeconds": 2}}]}});
    let from = t.emulator.calls(&t.account(2)).len();
    let changed = Instant::now();
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&linear)).await.unwrap();
    let d = until(&api, "churn", "the linear rollout seen", 30, |d| {
        d.status.as_ref().unwrap().observed_generation == d.metadata.generation
            && stage(d, "staging").phase == StagePhase::Baking
    })
    .await;
    assert!(stage(&d, "staging").message.contains("bakes"), "{}", stage(&d, "staging").message);
    watch_until_serving(&api, v2, 90).await;
    let linear_took = changed.elapsed();
    let all = rollouts(&t, &endpoint);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1], ("LINEAR".to_owned(), steps(&[25, 50, 75, 100]), "Succeeded".to_owned()));
    let d = api.get("churn").await.unwrap();
    assert_eq!(stage(&d, "staging").accounts[0].rollback_alarms, ours, "the default thresholds, on the same alarms");
    eprintln!(
        "linear (4 instances, 25% steps, 2 s bakes): change to serving {:.1} s; controller calls in the target account: {:?}",
        linear_took.as_secs_f64(),
        tally(&t, &t.account(2), from)
    );
    let described = cw.describe_alarms().set_alarm_names(Some(ours.clone())).send().await.unwrap();
    let thresholds: Vec<f64> = described.metric_alarms().iter().filter_map(|a| a.threshold()).collect();
    assert_eq!(thresholds, vec![5.0, 1_000_000.0], "repaired to the spec's defaults");

    // Without a rollout the alarms go (the stage's settings are otherwise the same: no update).
    let plain =
        json!({"spec": {"stages": [{"name": "staging", "instanceType": "ml.m5.large", "initialInstanceCount": 4}]}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&plain)).await.unwrap();
    let d = until(&api, "churn", "the alarms removed", 30, |d| {
        d.status.as_ref().unwrap().observed_generation == d.metadata.generation
            && stage(d, "staging").accounts[0].rollback_alarms.is_empty()
            && is_ready(d)
    })
    .await;
    assert!(stage(&d, "staging").accounts[0].rollback_alarms.is_empty());
    let left = cw.describe_alarms().set_alarm_names(Some(ours)).send().await.unwrap();
    assert!(left.metric_alarms().is_empty(), "{:?}", left.metric_alarms());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_firing_while_a_canary_bakes_rolls_it_back_and_the_stage_fails_naming_it() {
    let t = TestEnv::new("rollout-rollback").await;
    let _controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    t.emulator.configure(json!({"account": t.account(2), "endpointUpdatingSeconds": 1}));
    let team_alarm = format!("{}team-errors", prefix(&t));
    let v1 = approve(&t, &group).await;
    let api = create(&t, "churn", canary(&[&team_alarm])).await;

    // The team's alarm is not there yet: said, naming the field, and nothing is deployed.
    let d = until(&api, "churn", "staging Failed", 60, |d| {
        d.status.as_ref().is_some_and(|s| s.stages.iter().any(|s| s.name == "staging"))
            && stage(d, "staging").phase == StagePhase::Failed
    })
    .await;
    let message = &stage(&d, "staging").message;
    assert!(
        message.contains(&format!(
            "staging: spec.stages[staging].rollout.alarms.alarmNames: no alarm {team_alarm} in this account"
        )),
        "{message}"
    );
    assert!(calls(&t, 2, "CreateEndpoint").is_empty());
    let staging_admin = t.clients(&t.account(2)).await;
    metric_alarm(&staging_admin.cloudwatch, &team_alarm, "Team/Fraud", "DeclinedPayments").send().await.unwrap();
    t.poke(&api, "churn").await;
    let d = until(&api, "churn", "staging serving v1", 90, |d| serving(d, "staging", v1) && is_ready(d)).await;
    let account = stage(&d, "staging").accounts[0].clone();
    let endpoint = account.endpoint_name.clone().unwrap();
    assert_eq!(account.rollback_alarms.len(), 3);
    assert_eq!(account.rollback_alarms[2], team_alarm, "the team's alarm watches the updates too");
    let v1_config = account.endpoint_config_name.clone().unwrap();

    // v2's canary bakes; the team's alarm goes off; SageMaker rolls back.
    let v2 = approve(&t, &group).await;
    until(&api, "churn", "staging Baking", 60, |d| stage(d, "staging").phase == StagePhase::Baking).await;
    t.emulator.set_alarm(&t.account(2), &team_alarm, "ALARM");
    let d = until(&api, "churn", "staging Failed", 60, |d| stage(d, "staging").phase == StagePhase::Failed).await;
    let staging = stage(&d, "staging");
    let account = &staging.accounts[0];
    let reason = account.failure_reason.clone().unwrap();
    assert!(reason.starts_with(&format!("rolled back: alarm {team_alarm} went into ALARM (")), "{reason}");
    assert!(staging.message.contains(&reason), "{}", staging.message);
    assert_eq!(staging.serving_version, Some(v1), "the last good version serves");
    assert_eq!(account.endpoint_config_name.as_deref(), Some(v1_config.as_str()));
    assert!(!staging.verified_versions.contains(&v2), "a rolled-back version is not verified");
    assert_eq!(condition(&d, "Stalled").0, "True");
    t.wait_event("churn", "RolledBack").await;
    assert_eq!(rollouts(&t, &endpoint)[0].2, "RolledBack");

    // Never retried with the same config.
    for _ in 0..3 {
        t.poke(&api, "churn").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(calls(&t, 2, "UpdateEndpoint").len(), 1, "the rolled-back config is not tried again");

    // The team fixes the cause; a newer version deploys as usual.
    t.emulator.set_alarm(&t.account(2), &team_alarm, "OK");
    let v3 = approve(&t, &group).await;
    let d = until(&api, "churn", "staging serving v3", 90, |d| serving(d, "staging", v3) && is_ready(d)).await;
    assert!(stage(&d, "staging").accounts[0].failed_endpoint_config_name.is_none());
    assert_eq!(calls(&t, 2, "UpdateEndpoint").len(), 2);

    // The tenant-next-door view of the alarms: sagekeeper's role changes only its own alarms,
    // without actions, and the model role reads only its environment's.
    let ours = stage(&d, "staging").accounts[0].rollback_alarms[0].clone();
    let deployer = t.clients_as_controller(&t.account(2)).await.cloudwatch;
    let denied =
        |code: Option<&str>, what: &str| assert_eq!(code, Some("AccessDenied"), "sagekeeper's role could {what}");
    let overwrite = metric_alarm(&deployer, &team_alarm, "AWS/SageMaker", "Invocations")
        .tags(Tag::builder().key("sagekeeper.io/owner-uid").value("x").build())
        .send()
        .await;
    denied(overwrite.as_ref().err().and_then(|e| e.code()), "overwrite the team's alarm");
    let delete = deployer.delete_alarms().alarm_names(&team_alarm).send().await;
    denied(delete.as_ref().err().and_then(|e| e.code()), "delete the team's alarm");
    let acting = metric_alarm(&deployer, &ours, "AWS/SageMaker", "Invocation5XXErrors")
        .alarm_actions("arn:aws:automate:us-east-1:ec2:terminate")
        .tags(Tag::builder().key("sagekeeper.io/owner-uid").value("x").build())
        .send()
        .await;
    denied(acting.as_ref().err().and_then(|e| e.code()), "give its alarm an action");
    metric_alarm(&staging_admin.cloudwatch, "sagekeeper-made-by-someone-else", "AWS/SageMaker", "Invocations")
        .send()
        .await
        .unwrap();
    let delete = deployer.delete_alarms().alarm_names("sagekeeper-made-by-someone-else").send().await;
    denied(delete.as_ref().err().and_then(|e| e.code()), "delete an untagged alarm of its name prefix");

    let env = t.api::<DataScienceEnvironment>().get("fraud").await.unwrap();
    let targets = env.status.unwrap().target_accounts;
    let role = targets.iter().find(|a| a.stage == "staging").unwrap().model_execution_role_arn.clone().unwrap();
    crate::security::trust_the_admin(&t, &staging_admin, &role).await;
    let model_role = acting_as(&t, &role).await.cloudwatch;
    for name in [&ours, &team_alarm] {
        let read = model_role.describe_alarms().alarm_names(name).send().await;
        assert!(read.is_ok(), "the model role reads {name}: {read:?}");
    }
    let other = model_role.describe_alarms().alarm_names("other-team-errors").send().await;
    assert_eq!(other.as_ref().err().and_then(|e| e.code()), Some("AccessDenied"), "another team's alarm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_crash_mid_bake_sends_no_second_update_and_records_the_outcome() {
    let t = TestEnv::new("rollout-crash").await;
    let controller = t.controller_with(settings, None).await;
    let (group, api, d) = canary_serving_v1(&t).await;
    let serving_v1 = d.status.unwrap().stages;
    let endpoint = serving_v1[0].accounts[0].endpoint_name.clone().unwrap();
    let updates = || calls(&t, 2, "UpdateEndpoint").len();

    // Killed while v2 bakes, before the status said anything of it: the restart waits for the
    // same rollout, which completes.
    let v2 = approve(&t, &group).await;
    until(&api, "churn", "staging Baking", 60, |d| stage(d, "staging").phase == StagePhase::Baking).await;
    crash_before_status_write(controller, &api, &serving_v1).await;
    let controller = t.controller_with(settings, None).await;
    let d = until(&api, "churn", "staging serving v2", 90, |d| serving(d, "staging", v2) && is_ready(d)).await;
    assert_eq!(updates(), 1, "one UpdateEndpoint for v2");
    assert!(stage(&d, "staging").verified_versions.contains(&v2));

    // Killed while v3 bakes; the errors alarm goes off while it is down and SageMaker rolls back:
    // the restart records the rollback naming the alarm, and sends nothing again.
    let serving_v2 = d.status.unwrap().stages;
    let errors_alarm = serving_v2[0].accounts[0].rollback_alarms[0].clone();
    let v3 = approve(&t, &group).await;
    until(&api, "churn", "staging Baking", 60, |d| stage(d, "staging").phase == StagePhase::Baking).await;
    crash_before_status_write(controller, &api, &serving_v2).await;
    t.emulator.set_alarm(&t.account(2), &errors_alarm, "ALARM");
    let c = t.clients(&t.account(2)).await;
    eventually(Duration::from_secs(60), "the update rolled back", || async {
        let e = c.sagemaker.describe_endpoint().endpoint_name(&endpoint).send().await.unwrap();
        (e.endpoint_status().unwrap().as_str() == "InService" && e.failure_reason().is_some()).then_some(())
    })
    .await;
    let _controller = t.controller_with(settings, None).await;
    let d = until(&api, "churn", "staging Failed", 60, |d| stage(d, "staging").phase == StagePhase::Failed).await;
    let staging = stage(&d, "staging");
    let reason = staging.accounts[0].failure_reason.clone().unwrap();
    assert!(reason.starts_with(&format!("rolled back: alarm {errors_alarm} went into ALARM")), "{reason}");
    assert_eq!(staging.serving_version, Some(v2), "v2 keeps serving");
    assert!(!staging.verified_versions.contains(&v3));
    t.wait_event("churn", "RolledBack").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(updates(), 2, "v3's rolled-back update is not started again");
    let outcomes: Vec<String> = rollouts(&t, &endpoint).into_iter().map(|r| r.2).collect();
    assert_eq!(outcomes, ["Succeeded", "RolledBack"]);

    // The rollout is taken out of the spec while v4 bakes: its alarms stay until the update is
    // over (they may still roll it back, and are then named), and go after.
    t.emulator.set_alarm(&t.account(2), &errors_alarm, "OK");
    let v4 = approve(&t, &group).await;
    until(&api, "churn", "staging Baking", 60, |d| stage(d, "staging").phase == StagePhase::Baking).await;
    let plain =
        json!({"spec": {"stages": [{"name": "staging", "instanceType": "ml.m5.large", "initialInstanceCount": 2}]}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&plain)).await.unwrap();
    t.emulator.set_alarm(&t.account(2), &errors_alarm, "ALARM");
    let d = until(&api, "churn", "v4 rolled back", 60, |d| {
        stage(d, "staging").accounts[0].failure_reason.as_deref().is_some_and(|r| r.contains(&errors_alarm))
            && stage(d, "staging").desired_version == Some(v4)
    })
    .await;
    assert_eq!(stage(&d, "staging").serving_version, Some(v2));
    let d =
        until(&api, "churn", "the alarms removed", 30, |d| stage(d, "staging").accounts[0].rollback_alarms.is_empty())
            .await;
    assert_eq!(stage(&d, "staging").phase, StagePhase::Failed, "v4 stays failed");
    let cw = t.clients(&t.account(2)).await.cloudwatch;
    let left = cw.describe_alarms().alarm_names(&errors_alarm).send().await.unwrap();
    assert!(left.metric_alarms().is_empty());
}

/// The positions in the account's call log of the controller's calls of `operation`.
fn positions(t: &TestEnv, operation: &str) -> Vec<usize> {
    let all = t.emulator.calls(&t.account(2));
    let ours = all.iter().enumerate().filter(|(_, c)| c.caller.ends_with("/sagekeeper") && c.status < 300);
    ours.filter(|(_, c)| c.operation == operation).map(|(i, _)| i).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaling_is_never_undone_survives_new_versions_steps_aside_for_an_instance_type_change_and_goes_with_the_stage()
 {
    let t = TestEnv::new("autoscaling").await;
    let _controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    t.emulator.configure(json!({"account": t.account(2), "endpointUpdatingSeconds": 1}));
    let scaled = |instance_type: &str| {
        json!({"spec": {"stages": [{"name": "staging", "instanceType": instance_type, "initialInstanceCount": 2,
            "autoscaling": {"minInstances": 1, "maxInstances": 4, "targetInvocationsPerInstance": 100,
                            "scaleInCooldownSeconds": 120}}]}})
    };
    let v1 = approve(&t, &group).await;
    let api = create(&t, "churn", scaled("ml.m5.large")["spec"].clone()).await;
    let d = until(&api, "churn", "staging serving v1, scaled", 90, |d| {
        serving(d, "staging", v1) && is_ready(d) && stage(d, "staging").accounts[0].scaling_target.is_some()
    })
    .await;
    let endpoint = stage(&d, "staging").accounts[0].endpoint_name.clone().unwrap();
    let resource = format!("endpoint/{endpoint}/variant/AllTraffic");
    assert_eq!(stage(&d, "staging").accounts[0].scaling_target.as_deref(), Some(resource.as_str()));
    let admin = t.clients(&t.account(2)).await;
    let target = || async {
        use sagekeeper_aws::sdk::autoscaling::types::ServiceNamespace;
        let out = admin
            .autoscaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Sagemaker)
            .resource_ids(&resource)
            .send()
            .await
            .unwrap();
        out.scalable_targets().first().map(|t| (t.min_capacity(), t.max_capacity()))
    };
    let policies = || async {
        let out = admin
            .autoscaling
            .describe_scaling_policies()
            .service_namespace(sagekeeper_aws::sdk::autoscaling::types::ServiceNamespace::Sagemaker)
            .resource_id(&resource)
            .send()
            .await
            .unwrap();
        out.scaling_policies().to_vec()
    };
    assert_eq!(target().await, Some((1, 4)));
    let policy = policies().await.remove(0);
    let tracking = policy.target_tracking_scaling_policy_configuration().unwrap();
    assert_eq!(
        (tracking.target_value(), tracking.scale_in_cooldown(), tracking.scale_out_cooldown()),
        (100.0, Some(120), Some(300))
    );

    // The scaler moves the variant to 3 instances: seen, and left alone through drift checks.
    t.emulator.scale(&t.account(2), &endpoint, 3);
    eventually(Duration::from_secs(30), "three instances seen", || async {
        t.poke(&api, "churn").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let d = api.get("churn").await.unwrap();
        (stage(&d, "staging").accounts[0].current_instance_count == Some(3)).then_some(())
    })
    .await;
    for _ in 0..3 {
        t.poke(&api, "churn").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(calls(&t, 2, "UpdateEndpoint").is_empty(), "a scale event makes no update");
    assert!(calls(&t, 2, "UpdateEndpointWeightsAndCapacities").is_empty());
    assert_eq!(positions(&t, "RegisterScalableTarget").len(), 1);
    let d = api.get("churn").await.unwrap();
    assert_eq!(stage(&d, "staging").accounts[0].current_instance_count, Some(3));

    // v2 moves the endpoint with the scaler's 3 instances and the target as it was.
    let v2 = approve(&t, &group).await;
    let d = until(&api, "churn", "staging serving v2", 60, |d| serving(d, "staging", v2) && is_ready(d)).await;
    let account = &stage(&d, "staging").accounts[0];
    assert_eq!(account.current_instance_count, Some(3), "the scaler's count carried into the new config");
    let config = account.endpoint_config_name.clone().unwrap();
    let described = admin.sagemaker.describe_endpoint_config().endpoint_config_name(&config).send().await.unwrap();
    assert_eq!(described.production_variants()[0].initial_instance_count(), Some(3));
    assert_eq!(target().await, Some((1, 4)), "the target is intact");
    assert_eq!(positions(&t, "RegisterScalableTarget").len(), 1);
    assert!(positions(&t, "DeregisterScalableTarget").is_empty());

    // A new instance type: the target steps aside for the update and comes back after it.
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&scaled("ml.m5.xlarge"))).await.unwrap();
    let d = until(&api, "churn", "the new instance type served, scaled again", 60, |d| {
        d.status.as_ref().unwrap().observed_generation == d.metadata.generation
            && is_ready(d)
            && stage(d, "staging").accounts[0].scaling_target.is_some()
    })
    .await;
    let (deregistered, updated, registered) = (
        positions(&t, "DeregisterScalableTarget"),
        positions(&t, "UpdateEndpoint"),
        positions(&t, "RegisterScalableTarget"),
    );
    assert_eq!(
        (deregistered.len(), updated.len(), registered.len()),
        (1, 2, 2),
        "{deregistered:?} {updated:?} {registered:?}"
    );
    assert!(
        deregistered[0] < updated[1] && updated[1] < registered[1],
        "deregistered, updated, registered in that order"
    );
    assert_eq!(target().await, Some((1, 4)));
    assert_eq!(stage(&d, "staging").accounts[0].current_instance_count, Some(3));

    // Without autoscaling the target and its policy go; the stage's own count applies again.
    let plain =
        json!({"spec": {"stages": [{"name": "staging", "instanceType": "ml.m5.xlarge", "initialInstanceCount": 2}]}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&plain)).await.unwrap();
    let d = until(&api, "churn", "autoscaling removed", 60, |d| {
        d.status.as_ref().unwrap().observed_generation == d.metadata.generation
            && is_ready(d)
            && stage(d, "staging").accounts[0].scaling_target.is_none()
    })
    .await;
    assert_eq!(target().await, None);
    assert!(policies().await.is_empty(), "the policy went with the target");
    assert_eq!(stage(&d, "staging").accounts[0].current_instance_count, Some(2));

    // The tenant next door's view: a target sagekeeper did not register is not its to change,
    // and it may create no other service's linked role.
    use sagekeeper_aws::sdk::autoscaling::types::{ScalableDimension, ServiceNamespace};
    admin
        .autoscaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .resource_id(&resource)
        .min_capacity(2)
        .max_capacity(2)
        .send()
        .await
        .unwrap();
    let deployer = t.clients_as_controller(&t.account(2)).await;
    let deregister = deployer
        .autoscaling
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .resource_id(&resource)
        .send()
        .await;
    assert_eq!(
        deregister.as_ref().err().and_then(|e| sagekeeper_aws::sdk::autoscaling::error::ProvideErrorMetadata::code(e)),
        Some("AccessDeniedException"),
        "sagekeeper's role could deregister a target it did not register"
    );
    let linked =
        deployer.iam.create_service_linked_role().aws_service_name("elasticloadbalancing.amazonaws.com").send().await;
    assert_eq!(
        linked.as_ref().err().and_then(|e| sagekeeper_aws::sdk::iam::error::ProvideErrorMetadata::code(e)),
        Some("AccessDenied"),
        "sagekeeper's role could create another service's linked role"
    );
}
