//! ModelDeployment: an approved version promoted stage by stage into the target accounts'
//! private networks, the Manual gate, blue/green updates, failed updates, rollback, crash
//! safety, drift, errors, and deletion in every account.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use sagekeeper_api::deployment::{StagePhase, StageStatus};
use sagekeeper_api::{DataScienceEnvironment, ModelDeployment, conditions};
use sagekeeper_aws::sdk::sagemaker::error::ProvideErrorMetadata;
use sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus;
use sagekeeper_tests::test_env::HasConditions;
use sagekeeper_tests::{TestEnv, eventually};
use serde_json::{Value, json};

use crate::projects::{create_project, ready_environment};

fn settings(s: &mut sagekeeper_controller::Settings) {
    s.poll_interval = Duration::from_secs(1);
}

/// A Ready environment (staging: account 2, production: account 3) and the Ready project
/// `churn`; returns its model package group.
pub(crate) async fn project(t: &TestEnv) -> String {
    ready_environment(t).await;
    let (projects, _) = create_project(t, "churn", json!({})).await;
    let p = t.wait_condition_for(&projects, "churn", "Ready", "True", None, Duration::from_secs(90)).await;
    p.status.unwrap().model_package_group_name.unwrap()
}

/// Registers a version as the pipeline's RegisterModel step would; returns its number.
pub(crate) async fn register(t: &TestEnv, group: &str) -> i64 {
    let dev = t.clients(&t.account(1)).await;
    let out = dev
        .sagemaker
        .create_model_package()
        .model_package_group_name(group)
        .model_approval_status(ModelApprovalStatus::PendingManualApproval)
        .send()
        .await
        .unwrap();
    out.model_package_arn().unwrap().rsplit('/').next().unwrap().parse().unwrap()
}

/// Sets a version's approval, as a person in the registry would.
pub(crate) async fn set_approval(t: &TestEnv, group: &str, version: i64, status: ModelApprovalStatus) {
    let dev = t.clients(&t.account(1)).await;
    let arn = format!("arn:aws:sagemaker:us-east-1:{}:model-package/{group}/{version}", t.account(1));
    dev.sagemaker.update_model_package().model_package_arn(arn).model_approval_status(status).send().await.unwrap();
}

pub(crate) async fn create(t: &TestEnv, name: &str, spec: Value) -> Api<ModelDeployment> {
    let mut spec = spec;
    spec["project"] = json!("churn");
    let obj: ModelDeployment = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        ),
        true,
    );
    let api = t.api::<ModelDeployment>();
    api.create(&Default::default(), &obj).await.unwrap();
    api
}

pub(crate) fn stage<'a>(d: &'a ModelDeployment, name: &str) -> &'a StageStatus {
    let status = d.status.as_ref().expect("status");
    status.stages.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("stage {name} in {status:?}"))
}

/// Waits until `check` holds for the deployment, printing its status while it does not.
pub(crate) async fn until(
    api: &Api<ModelDeployment>,
    name: &str,
    what: &str,
    secs: u64,
    check: impl Fn(&ModelDeployment) -> bool,
) -> ModelDeployment {
    eventually(Duration::from_secs(secs), what, || async {
        let d = api.get(name).await.unwrap();
        if check(&d) {
            return Some(d);
        }
        eprintln!("waiting for {what}: {:?}", d.status.as_ref().map(|s| (&s.summary, &s.conditions)));
        None
    })
    .await
}

/// The stage serves `version` in every account and is settled (Serving, or waiting for a
/// person with it).
pub(crate) fn serving(d: &ModelDeployment, name: &str, version: i64) -> bool {
    d.status.as_ref().is_some_and(|s| s.stages.iter().any(|st| st.name == name))
        && matches!(stage(d, name).phase, StagePhase::Serving | StagePhase::WaitingForApproval)
        && stage(d, name).serving_version == Some(version)
}

pub(crate) fn condition<'a>(d: &'a ModelDeployment, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = conditions::find(d.conditions(), type_).unwrap_or_else(|| panic!("{type_} condition"));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

pub(crate) fn is_ready(d: &ModelDeployment) -> bool {
    conditions::is_ready(d.conditions(), d.metadata.generation)
}

/// The calls the controller made in `account` with this operation, refused ones included.
pub(crate) fn calls(t: &TestEnv, account: u32, operation: &str) -> Vec<sagekeeper_tests::emulator::Call> {
    t.emulator
        .calls(&t.account(account))
        .into_iter()
        .filter(|c| c.operation == operation && c.caller.ends_with("/sagekeeper"))
        .collect()
}

/// The endpoints, endpoint configs and models in an account, by name.
async fn hosting(c: &sagekeeper_tests::test_env::AccountClients) -> Vec<String> {
    let sm = &c.sagemaker;
    let endpoints = sm.list_endpoints().send().await.unwrap();
    let configs = sm.list_endpoint_configs().send().await.unwrap();
    let models = sm.list_models().send().await.unwrap();
    let mut all: Vec<String> =
        endpoints.endpoints().iter().map(|e| format!("endpoint {}", e.endpoint_name().unwrap_or_default())).collect();
    all.extend(
        configs.endpoint_configs().iter().map(|e| format!("config {}", e.endpoint_config_name().unwrap_or_default())),
    );
    all.extend(models.models().iter().map(|m| format!("model {}", m.model_name().unwrap_or_default())));
    all
}

pub(crate) const TWO_STAGES: &str = r#"{"stages": [
    {"name": "staging", "instanceType": "ml.m5.large", "initialInstanceCount": 1, "approval": "Automatic"},
    {"name": "production", "instanceType": "ml.m5.xlarge", "initialInstanceCount": 2, "approval": "Manual"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_is_promoted_through_staging_and_a_manual_production_gate() {
    let t = TestEnv::new("deploy-flow").await;
    let _controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    let v1 = register(&t, &group).await;
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    let api = create(&t, "churn", serde_json::from_str(TWO_STAGES).unwrap()).await;

    // Staging serves v1; production waits for a person, and that is a steady, Ready state.
    let d = until(&api, "churn", "staging serving v1, production waiting", 90, |d| {
        serving(d, "staging", v1) && stage(d, "production").phase == StagePhase::WaitingForApproval && is_ready(d)
    })
    .await;
    assert_eq!(condition(&d, "PromotionPending").0, "True");
    assert_eq!(condition(&d, "ModelResolved").0, "True");
    let production = stage(&d, "production");
    assert_eq!(
        production.message,
        format!("set spec.stages[1].approvedVersion: \"{v1}\" to deploy v{v1} to production")
    );
    assert!(production.accounts.is_empty(), "nothing in production before the approval");
    let summary = d.status.as_ref().unwrap().summary.clone().unwrap();
    assert_eq!(summary, format!("staging=v{v1} Serving, production=none WaitingForApproval(v{v1})"));
    assert!(stage(&d, "staging").verified_versions.contains(&v1));

    // The approval is one field in git.
    let patch = json!({"spec": {"stages": [{"name": "staging", "instanceType": "ml.m5.large", "approval": "Automatic"},
        {"name": "production", "instanceType": "ml.m5.xlarge", "initialInstanceCount": 2, "approval": "Manual",
         "approvedVersion": v1.to_string()}]}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let d = until(&api, "churn", "production serving v1", 90, |d| serving(d, "production", v1) && is_ready(d)).await;
    assert_eq!(condition(&d, "PromotionPending").0, "False");

    // In each target account: the model from the dev registry's package, in that account's
    // private network with its model execution role; the config with the account's key and
    // the stage's instances; no endpoint in the dev account.
    let env = t.api::<DataScienceEnvironment>().get("fraud").await.unwrap();
    let targets = env.status.unwrap().target_accounts;
    for (name, n, instance, count) in [("staging", 2, "ml.m5.large", 1), ("production", 3, "ml.m5.xlarge", 2)] {
        let account = &stage(&d, name).accounts[0];
        let target = targets.iter().find(|x| x.account_id.as_deref() == Some(t.account(n).as_str())).unwrap();
        let c = t.clients(&t.account(n)).await;
        let endpoint =
            c.sagemaker.describe_endpoint().endpoint_name(account.endpoint_name.clone().unwrap()).send().await.unwrap();
        assert_eq!(endpoint.endpoint_status().unwrap().as_str(), "InService");
        let config = c
            .sagemaker
            .describe_endpoint_config()
            .endpoint_config_name(endpoint.endpoint_config_name().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(config.kms_key_id(), target.endpoint_key_arn.as_deref(), "{name}: the account's endpoint key");
        let variant = &config.production_variants()[0];
        assert_eq!(variant.instance_type().unwrap().as_str(), instance);
        assert_eq!(variant.initial_instance_count(), Some(count));
        let model = c.sagemaker.describe_model().model_name(variant.model_name().unwrap()).send().await.unwrap();
        assert_eq!(model.execution_role_arn(), target.model_execution_role_arn.as_deref());
        let vpc = model.vpc_config().unwrap();
        assert_eq!(vpc.subnets(), target.private_subnet_ids.as_slice());
        assert_eq!(vpc.security_group_ids(), [target.security_group_id.clone().unwrap()]);
        let package = model.primary_container().unwrap().model_package_name().unwrap();
        assert_eq!(package, format!("arn:aws:sagemaker:us-east-1:{}:model-package/{group}/{v1}", t.account(1)));
    }
    let dev = t.clients(&t.account(1)).await;
    assert!(dev.sagemaker.list_endpoints().send().await.unwrap().endpoints().is_empty(), "no endpoint in dev");

    // v2 approved: staging moves to it on the same endpoint through UpdateEndpoint; production
    // stays on v1 until a person approves v2.
    let staging_endpoint = stage(&d, "staging").accounts[0].endpoint_name.clone().unwrap();
    let old_config = stage(&d, "staging").accounts[0].endpoint_config_name.clone().unwrap();
    let v2 = register(&t, &group).await;
    set_approval(&t, &group, v2, ModelApprovalStatus::Approved).await;
    let d = until(&api, "churn", "staging serving v2", 60, |d| {
        serving(d, "staging", v2) && stage(d, "production").phase == StagePhase::WaitingForApproval
    })
    .await;
    let now = &stage(&d, "staging").accounts[0];
    assert_eq!(now.endpoint_name.as_deref(), Some(staging_endpoint.as_str()), "same endpoint");
    assert_ne!(now.endpoint_config_name.as_deref(), Some(old_config.as_str()), "new config");
    let updates = calls(&t, 2, "UpdateEndpoint");
    assert_eq!(updates.len(), 1, "one UpdateEndpoint: {updates:?}");
    assert_eq!(calls(&t, 2, "CreateEndpoint").len(), 1, "the endpoint was created once");
    assert_eq!(stage(&d, "production").serving_version, Some(v1));
    assert_eq!(
        d.status.as_ref().unwrap().summary.as_deref(),
        Some(format!("staging=v{v2} Serving, production=v{v1} WaitingForApproval(v{v2})").as_str())
    );
    // The v1 model and config in staging are gone once v2 serves.
    let staging = t.clients(&t.account(2)).await;
    let configs = staging.sagemaker.list_endpoint_configs().send().await.unwrap();
    let names: Vec<&str> = configs.endpoint_configs().iter().filter_map(|c| c.endpoint_config_name()).collect();
    assert_eq!(names, [now.endpoint_config_name.as_deref().unwrap()], "unused configs removed");
    assert_eq!(staging.sagemaker.list_models().send().await.unwrap().models().len(), 1, "unused models removed");

    // Production gets v2, then is rolled back to v1 (which staging verified) with the same field.
    for version in [v2, v1] {
        let mut patch = patch.clone();
        patch["spec"]["stages"][1]["approvedVersion"] = json!(version.to_string());
        api.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        until(&api, "churn", "production on the approved version", 60, |d| serving(d, "production", version)).await;
    }
    let d = api.get("churn").await.unwrap();
    assert_eq!(stage(&d, "production").phase, StagePhase::WaitingForApproval, "v2 is still waiting for production");
    assert_eq!(calls(&t, 3, "UpdateEndpoint").len(), 2, "one update to v2, one back to v1");
    t.wait_event("churn", "Serving").await;
    let reasons = t.event_reasons("churn").await;
    assert!(!reasons.contains(&"DriftRepaired".to_owned()), "promotions are not drift: {reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_update_keeps_the_last_good_version_serving_and_a_rejected_one_is_not_left_on_its_own() {
    let t = TestEnv::new("deploy-failed-update").await;
    let _controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    let v1 = register(&t, &group).await;
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    let one_stage = json!({"stages": [{"name": "staging", "instanceType": "ml.m5.large"}]});
    let api = create(&t, "churn", one_stage).await;
    let d = until(&api, "churn", "staging serving v1", 90, |d| serving(d, "staging", v1) && is_ready(d)).await;
    let endpoint = stage(&d, "staging").accounts[0].endpoint_name.clone().unwrap();
    let good_config = stage(&d, "staging").accounts[0].endpoint_config_name.clone().unwrap();

    // The next update of the staging endpoint fails and is rolled back.
    t.emulator.configure(json!({"account": t.account(2), "endpointUpdatingSeconds": 1}));
    t.emulator.fail_endpoint(&t.account(2), &endpoint, "update", "The primary container failed ping health check");
    let v2 = register(&t, &group).await;
    set_approval(&t, &group, v2, ModelApprovalStatus::Approved).await;
    let d = until(&api, "churn", "staging Failed", 60, |d| stage(d, "staging").phase == StagePhase::Failed).await;
    let staging = stage(&d, "staging");
    assert!(staging.message.contains("The primary container failed ping health check"), "{}", staging.message);
    let account = &staging.accounts[0];
    assert_eq!(account.failure_reason.as_deref(), Some("The primary container failed ping health check"));
    assert!(account.failed_endpoint_config_name.is_some());
    assert_eq!(account.endpoint_config_name.as_deref(), Some(good_config.as_str()), "v1 keeps serving");
    assert_eq!(staging.serving_version, Some(v1));
    let (stalled, reason, _) = condition(&d, "Stalled");
    assert_eq!((stalled, reason), ("True", "StagesFailed"));
    t.wait_event("churn", "DeploymentFailed").await;

    // Not retried with the same config, however often it is looked at.
    for _ in 0..3 {
        t.poke(&api, "churn").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(calls(&t, 2, "UpdateEndpoint").len(), 1, "the failed config is not tried again");

    // v3 is refused at once for lack of instances: that is the quota, not another rollback (the
    // endpoint still shows v2's failure), and once the quota is there v3 goes through.
    let quota = t.emulator.fault(json!({"operation": "UpdateEndpoint", "account": t.account(2),
        "code": "ResourceLimitExceeded", "message": "The account-level service limit 'ml.m5.large for endpoint usage' is 1 Instances"}));
    let v3 = register(&t, &group).await;
    set_approval(&t, &group, v3, ModelApprovalStatus::Approved).await;
    t.wait_condition(&api, "churn", "Stalled", "True", Some("QuotaExceeded")).await;
    t.emulator.remove_fault(&quota);
    t.poke(&api, "churn").await;
    let d = until(&api, "churn", "staging serving v3", 60, |d| serving(d, "staging", v3) && is_ready(d)).await;
    assert!(stage(&d, "staging").accounts[0].failed_endpoint_config_name.is_none());
    let (taken, refused): (Vec<_>, Vec<_>) = calls(&t, 2, "UpdateEndpoint").into_iter().partition(|c| c.status < 300);
    assert_eq!(taken.len(), 2, "v2's failed update, then v3's");
    assert!(!refused.is_empty(), "v3 was refused for the quota first");

    // v3 is Rejected after the fact: it keeps serving (no automatic step back to v2) and a
    // Warning says a person must decide; a newer approval replaces it.
    set_approval(&t, &group, v3, ModelApprovalStatus::Rejected).await;
    eventually(Duration::from_secs(30), "a RejectedVersionServing event", || async {
        t.event_reasons("churn").await.contains(&"RejectedVersionServing".to_owned()).then_some(())
    })
    .await;
    let d = api.get("churn").await.unwrap();
    assert_eq!(stage(&d, "staging").serving_version, Some(v3));
    assert!(stage(&d, "staging").message.contains(&format!("v{v3} is Rejected and still serves")));
    let updates = calls(&t, 2, "UpdateEndpoint").len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls(&t, 2, "UpdateEndpoint").len(), updates, "no step back on its own");
    // Nor is the Rejected version moved to new settings.
    let patch = json!({"spec": {"stages": [{"name": "staging", "instanceType": "ml.m5.xlarge"}]}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let d = until(&api, "churn", "the new settings seen", 30, |d| {
        d.status.as_ref().unwrap().observed_generation == d.metadata.generation
    })
    .await;
    assert!(stage(&d, "staging").message.contains("not moved to new settings"), "{}", stage(&d, "staging").message);
    assert_eq!(calls(&t, 2, "UpdateEndpoint").len(), updates, "a Rejected version is not deployed anew");
    assert!(calls(&t, 2, "CreateModel").len() == 3, "no model made for the Rejected version");
    let v4 = register(&t, &group).await;
    set_approval(&t, &group, v4, ModelApprovalStatus::Approved).await;
    until(&api, "churn", "staging serving v4", 60, |d| serving(d, "staging", v4) && is_ready(d)).await;
}

/// Stops the controller and puts the deployment's status back to `stages`: a crash between an
/// AWS call and the status write, so the restarted controller knows nothing of the call.
pub(crate) async fn crash_before_status_write(
    controller: sagekeeper_tests::test_env::Controller,
    api: &Api<ModelDeployment>,
    stages: &[StageStatus],
) {
    controller.stop().await;
    let patch = json!({"status": {"stages": stages}});
    api.patch_status("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_creating_or_updating_makes_no_second_endpoint_or_update() {
    let t = TestEnv::new("deploy-crash").await;
    let controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    t.emulator.configure(json!({"account": t.account(2), "endpointCreatingSeconds": 5, "endpointUpdatingSeconds": 5}));
    let v1 = register(&t, &group).await;
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    let api = create(&t, "churn", json!({"stages": [{"name": "staging", "instanceType": "ml.m5.large"}]})).await;
    let creates = || calls(&t, 2, "CreateEndpoint").len();
    let updates = || calls(&t, 2, "UpdateEndpoint").len();

    // Killed right after CreateEndpoint, before the status said so.
    eventually(Duration::from_secs(60), "CreateEndpoint called", || async { (creates() == 1).then_some(()) }).await;
    crash_before_status_write(controller, &api, &[]).await;
    let controller = t.controller_with(settings, None).await;
    let d = until(&api, "churn", "staging serving v1", 60, |d| serving(d, "staging", v1)).await;
    assert_eq!(creates(), 1, "the endpoint is found again, not made twice");

    // Killed right after UpdateEndpoint to v2: the restart waits for it, and calls it no more.
    let serving_v1 = d.status.unwrap().stages;
    let v2 = register(&t, &group).await;
    set_approval(&t, &group, v2, ModelApprovalStatus::Approved).await;
    eventually(Duration::from_secs(60), "UpdateEndpoint called", || async { (updates() == 1).then_some(()) }).await;
    crash_before_status_write(controller, &api, &serving_v1).await;
    let controller = t.controller_with(settings, None).await;
    let d = until(&api, "churn", "staging serving v2", 60, |d| serving(d, "staging", v2)).await;
    assert_eq!(updates(), 1, "one UpdateEndpoint per target");

    // Killed right after UpdateEndpoint to v3, which then fails and is rolled back while the
    // controller is down: the restart recognises its own failed update and does not retry it.
    let serving_v2 = d.status.unwrap().stages;
    let endpoint = serving_v2[0].accounts[0].endpoint_name.clone().unwrap();
    t.emulator.fail_endpoint(&t.account(2), &endpoint, "update", "The primary container failed ping health check");
    let v3 = register(&t, &group).await;
    set_approval(&t, &group, v3, ModelApprovalStatus::Approved).await;
    eventually(Duration::from_secs(60), "UpdateEndpoint called", || async { (updates() == 2).then_some(()) }).await;
    crash_before_status_write(controller, &api, &serving_v2).await;
    let c = t.clients(&t.account(2)).await;
    eventually(Duration::from_secs(30), "the update rolled back", || async {
        let e = c.sagemaker.describe_endpoint().endpoint_name(&endpoint).send().await.unwrap();
        (e.endpoint_status().unwrap().as_str() == "InService" && e.failure_reason().is_some()).then_some(())
    })
    .await;
    let _controller = t.controller_with(settings, None).await;
    let d = until(&api, "churn", "staging Failed", 60, |d| stage(d, "staging").phase == StagePhase::Failed).await;
    assert_eq!(stage(&d, "staging").serving_version, Some(v2), "v2 keeps serving");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(updates(), 2, "the failed update is not started again");
    assert_eq!(creates(), 1);
    assert_eq!(c.sagemaker.list_endpoints().send().await.unwrap().endpoints().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_repaired_and_a_converged_deployment_is_checked_without_writes() {
    let t = TestEnv::new("deploy-drift").await;
    let controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    let v1 = register(&t, &group).await;
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    let api = create(&t, "churn", json!({"stages": [{"name": "staging", "instanceType": "ml.m5.large"}]})).await;
    let d = until(&api, "churn", "staging serving v1", 90, |d| serving(d, "staging", v1) && is_ready(d)).await;
    let account = stage(&d, "staging").accounts[0].clone();
    let endpoint = account.endpoint_name.clone().unwrap();
    let config = account.endpoint_config_name.clone().unwrap();

    // A check of the converged deployment (a fresh controller looks at everything) writes nothing.
    controller.stop().await;
    t.emulator.clear_calls(&t.account(2));
    let controller = t.controller_with(settings, None).await;
    eventually(Duration::from_secs(30), "a full check", || async {
        (!calls(&t, 2, "DescribeEndpoint").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = t.emulator.controller_writes(&t.account(2));
    assert!(writes.is_empty(), "{writes:?}");

    // Moved to another config behind its back: moved back.
    let c = t.clients(&t.account(2)).await;
    let described = c.sagemaker.describe_endpoint_config().endpoint_config_name(&config).send().await.unwrap();
    let variant = described.production_variants()[0].clone();
    c.sagemaker
        .create_endpoint_config()
        .endpoint_config_name("someone-elses")
        .production_variants(variant)
        .send()
        .await
        .unwrap();
    c.sagemaker.update_endpoint().endpoint_name(&endpoint).endpoint_config_name("someone-elses").send().await.unwrap();
    controller.stop().await;
    let controller = t.controller_with(settings, None).await;
    eventually(Duration::from_secs(60), "the endpoint back on its config", || async {
        let e = c.sagemaker.describe_endpoint().endpoint_name(&endpoint).send().await.unwrap();
        (e.endpoint_config_name() == Some(config.as_str()) && e.endpoint_status().unwrap().as_str() == "InService")
            .then_some(())
    })
    .await;

    // Deleted behind its back: made again.
    c.sagemaker.delete_endpoint().endpoint_name(&endpoint).send().await.unwrap();
    controller.stop().await;
    let _controller = t.controller_with(settings, None).await;
    eventually(Duration::from_secs(60), "the endpoint back", || async {
        let e = c.sagemaker.describe_endpoint().endpoint_name(&endpoint).send().await.ok()?;
        (e.endpoint_config_name() == Some(config.as_str()) && e.endpoint_status().unwrap().as_str() == "InService")
            .then_some(())
    })
    .await;
    until(&api, "churn", "Ready again", 60, is_ready).await;
    t.wait_event("churn", "DriftRepaired").await;
}

/// `sagekeeper_reconciles_total{kind="ModelDeployment"}` of an in-process controller.
fn deployment_passes(metrics: &sagekeeper_controller::metrics::Metrics) -> u64 {
    let families = metrics.registry.gather();
    let family = families.iter().find(|m| m.name() == "sagekeeper_reconciles_total");
    family
        .into_iter()
        .flat_map(|m| m.get_metric())
        .filter(|s| s.get_label().iter().any(|l| l.name() == "kind" && l.value() == "ModelDeployment"))
        .map(|s| s.get_counter().get_value() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_watched_with_one_listing_per_account_and_a_deleted_one_is_noticed_without_a_drift_check() {
    let t = TestEnv::new("deploy-watch").await;
    let every = Duration::from_secs(2);
    let controller = t
        .controller_with(
            |s| {
                settings(s);
                s.endpoint_interval = every;
            },
            None,
        )
        .await;
    let group = project(&t).await;
    let v1 = register(&t, &group).await;
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    let staging = json!({"stages": [{"name": "staging", "instanceType": "ml.m5.large"}]});
    let api = create(&t, "churn", staging.clone()).await;
    create(&t, "fraud", staging).await;
    let mut endpoints = Vec::new();
    for name in ["churn", "fraud"] {
        let d = until(&api, name, "staging serving v1", 90, |d| serving(d, "staging", v1) && is_ready(d)).await;
        endpoints.push(stage(&d, "staging").accounts[0].endpoint_name.clone().unwrap());
    }

    // Steady state: the account's endpoints cost one listing per interval, and no deployment is
    // looked at (their drift interval is ten minutes away).
    tokio::time::sleep(every * 2).await;
    t.emulator.clear_calls(&t.account(2));
    let passes = deployment_passes(&controller.metrics);
    let window = every * 5;
    tokio::time::sleep(window).await;
    let listings = calls(&t, 2, "ListEndpoints").len();
    // At most one listing per round for both endpoints (a busy emulator may slow the rounds
    // down, never add calls): per-endpoint watching would make two.
    let rounds = (window.as_secs() / every.as_secs()) as usize;
    assert!((1..=rounds + 1).contains(&listings), "{listings} ListEndpoints in {rounds} rounds");
    assert_eq!(calls(&t, 2, "DescribeEndpoint").len(), 0, "an unchanged endpoint is not described");
    assert_eq!(deployment_passes(&controller.metrics), passes, "no deployment looked at while nothing changed");
    let writes = t.emulator.controller_writes(&t.account(2));
    assert!(writes.is_empty(), "{writes:?}");

    // Deleted behind its back: the next listing misses it and its deployment makes it again,
    // long before any drift check.
    let c = t.clients(&t.account(2)).await;
    c.sagemaker.delete_endpoint().endpoint_name(&endpoints[0]).send().await.unwrap();
    eventually(Duration::from_secs(30), "the endpoint back", || async {
        let e = c.sagemaker.describe_endpoint().endpoint_name(&endpoints[0]).send().await.ok()?;
        (e.endpoint_status().unwrap().as_str() == "InService").then_some(())
    })
    .await;
    t.wait_event("churn", "DriftRepaired").await;
    until(&api, "churn", "Ready again", 30, is_ready).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_per_stage_local_nvme_capture_account_removal_and_deletion() {
    let t = TestEnv::new("deploy-accounts").await;
    let _controller = t.controller_with(settings, None).await;
    // Staging in accounts 2 and 4, production in 3 and 5.
    for (name, n) in [("dev", 1), ("staging", 2), ("production", 3), ("staging-b", 4), ("production-b", 5)] {
        crate::references::ready_account(&t, name, n, &t.namespace).await;
    }
    let env: DataScienceEnvironment = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: DataScienceEnvironment\nmetadata: {{name: fraud}}\nspec:\n  account: {}\n  region: us-east-1\n  targetAccounts:\n    staging: [{}, {}]\n    production: [{}, {}]\n",
            t.name("dev"),
            t.name("staging"),
            t.name("staging-b"),
            t.name("production"),
            t.name("production-b")
        ),
        true,
    );
    let envs = t.api::<DataScienceEnvironment>();
    envs.create(&Default::default(), &env).await.unwrap();
    t.wait_condition_for(&envs, "fraud", "Ready", "True", None, Duration::from_secs(180)).await;
    let (projects, _) = create_project(&t, "churn", json!({})).await;
    let p = t.wait_condition_for(&projects, "churn", "Ready", "True", None, Duration::from_secs(90)).await;
    let group = p.status.unwrap().model_package_group_name.unwrap();
    let v1 = register(&t, &group).await;
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    let api = create(
        &t,
        "churn",
        json!({"stages": [
            {"name": "staging", "instanceType": "ml.g4dn.xlarge"},
            {"name": "production", "instanceType": "ml.m5.large", "dataCapture": {"enabled": true, "samplingPercentage": 20}}]}),
    )
    .await;
    let d = until(&api, "churn", "both stages serving v1", 120, |d| {
        serving(d, "staging", v1) && serving(d, "production", v1) && is_ready(d)
    })
    .await;
    let targets = envs.get("fraud").await.unwrap().status.unwrap().target_accounts;
    for n in [2, 3, 4, 5] {
        let c = t.clients(&t.account(n)).await;
        let listed = c.sagemaker.list_endpoints().send().await.unwrap();
        assert_eq!(listed.endpoints().len(), 1, "one endpoint in account {n}");
        let e = c.sagemaker.describe_endpoint().endpoint_name(listed.endpoints()[0].endpoint_name().unwrap()).send();
        let e = e.await.unwrap();
        let config =
            c.sagemaker.describe_endpoint_config().endpoint_config_name(e.endpoint_config_name().unwrap()).send();
        let config = config.await.unwrap();
        let target = targets.iter().find(|x| x.account_id.as_deref() == Some(t.account(n).as_str())).unwrap();
        if [2, 4].contains(&n) {
            assert_eq!(config.kms_key_id(), None, "no volume key for local NVMe in account {n}");
            assert!(config.data_capture_config().is_none());
        } else {
            assert_eq!(config.kms_key_id(), target.endpoint_key_arn.as_deref());
            let capture = config.data_capture_config().unwrap();
            assert_eq!(capture.initial_sampling_percentage(), Some(20));
            let bucket = target.data_capture_bucket.clone().unwrap();
            assert_eq!(
                capture.destination_s3_uri(),
                Some(format!("s3://{bucket}/deployments/churn/production").as_str())
            );
            assert_eq!(capture.kms_key_id(), target.endpoint_key_arn.as_deref());
        }
    }
    assert_eq!(stage(&d, "staging").accounts.len(), 2);
    assert_eq!(stage(&d, "production").accounts.len(), 2);

    // Production serves from one account only: the other's endpoint, config and model go.
    let patch = json!({"spec": {"stages": [
        {"name": "staging", "instanceType": "ml.g4dn.xlarge"},
        {"name": "production", "instanceType": "ml.m5.large", "accounts": [t.name("production")],
         "dataCapture": {"enabled": true, "samplingPercentage": 20}}]}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let c5 = t.clients(&t.account(5)).await;
    eventually(Duration::from_secs(60), "account 5 emptied", || async { hosting(&c5).await.is_empty().then_some(()) })
        .await;
    let d = until(&api, "churn", "Ready with production in one account", 60, is_ready).await;
    assert_eq!(stage(&d, "production").accounts.len(), 1);

    // Deletion: endpoints, configs and models in every account.
    api.delete("churn", &Default::default()).await.unwrap();
    t.wait_gone(&api, "churn").await;
    for n in [2, 3, 4, 5] {
        let left = hosting(&t.clients(&t.account(n)).await).await;
        assert!(left.is_empty(), "account {n}: {left:?}");
    }
    // In each account: the endpoint first, then the configs, then the models.
    for n in [2, 3, 4] {
        let order: Vec<String> =
            t.emulator.controller_writes(&t.account(n)).into_iter().filter(|op| op.starts_with("Delete")).collect();
        let first = |op: &str| order.iter().position(|o| o == op).unwrap_or_else(|| panic!("{op} in {order:?}"));
        let last = |op: &str| order.iter().rposition(|o| o == op).unwrap();
        assert!(last("DeleteEndpoint") < first("DeleteEndpointConfig"), "account {n}: {order:?}");
        assert!(last("DeleteEndpointConfig") < first("DeleteModel"), "account {n}: {order:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_endpoint_is_never_adopted_a_removed_stage_is_cleaned_up_and_retain_keeps_the_rest() {
    let t = TestEnv::new("deploy-ownership").await;
    let _controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    let v1 = register(&t, &group).await;
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;

    // Someone already has an endpoint with the name the staging endpoint would get.
    let name = sagekeeper_api::naming::DeploymentNames::new(&t.namespace, "churn").endpoint("staging");
    let staging = t.clients(&t.account(2)).await;
    let variant = sagekeeper_aws::sdk::sagemaker::types::ProductionVariant::builder()
        .variant_name("AllTraffic")
        .model_name("theirs")
        .instance_type(sagekeeper_aws::sdk::sagemaker::types::ProductionVariantInstanceType::MlT2Medium)
        .initial_instance_count(1)
        .build();
    let role = format!("arn:aws:iam::{}:role/theirs", t.account(2));
    staging.sagemaker.create_model().model_name("theirs").execution_role_arn(role).send().await.unwrap();
    staging
        .sagemaker
        .create_endpoint_config()
        .endpoint_config_name("theirs")
        .production_variants(variant)
        .send()
        .await
        .unwrap();
    staging.sagemaker.create_endpoint().endpoint_name(&name).endpoint_config_name("theirs").send().await.unwrap();
    let both = json!({"stages": [{"name": "staging", "instanceType": "ml.m5.large"},
        {"name": "production", "instanceType": "ml.m5.large"}]});
    let api = create(&t, "churn", both).await;
    let d = t.wait_condition(&api, "churn", "Stalled", "True", Some("NameConflict")).await;
    let (_, _, message) = condition(&d, "StagesReady");
    assert!(message.contains(&format!("endpoint {name}")), "{message}");
    let theirs = staging.sagemaker.describe_endpoint().endpoint_name(&name).send().await.unwrap();
    assert_eq!(theirs.endpoint_config_name(), Some("theirs"), "not moved to our config");
    assert!(calls(&t, 2, "UpdateEndpoint").is_empty() && calls(&t, 2, "DeleteEndpoint").is_empty());

    // Gone: staging, then production, serve v1.
    staging.sagemaker.delete_endpoint().endpoint_name(&name).send().await.unwrap();
    t.poke(&api, "churn").await;
    until(&api, "churn", "both stages serving v1", 90, |d| {
        serving(d, "staging", v1) && serving(d, "production", v1) && is_ready(d)
    })
    .await;

    // Production leaves the spec: its endpoint, config and model go from its account.
    let patch = json!({"spec": {"stages": [{"name": "staging", "instanceType": "ml.m5.large"}]}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let production = t.clients(&t.account(3)).await;
    eventually(Duration::from_secs(60), "production emptied", || async {
        hosting(&production).await.is_empty().then_some(())
    })
    .await;
    let d = until(&api, "churn", "production out of status", 30, |d| {
        is_ready(d) && d.status.as_ref().unwrap().stages.iter().all(|s| s.name != "production")
    })
    .await;
    assert_eq!(d.status.unwrap().summary.as_deref(), Some(format!("staging=v{v1} Serving").as_str()));

    // Retain: the object goes, the staging endpoint keeps serving.
    let patch = json!({"spec": {"deletionPolicy": "Retain"}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    t.wait_condition(&api, "churn", "Ready", "True", None).await;
    api.delete("churn", &Default::default()).await.unwrap();
    t.wait_gone(&api, "churn").await;
    let ours = staging.sagemaker.describe_endpoint().endpoint_name(&name).send().await.unwrap();
    assert_eq!(ours.endpoint_status().unwrap().as_str(), "InService");
    assert!(calls(&t, 2, "DeleteEndpoint").is_empty(), "Retain touches nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unapproved_pins_unshared_packages_and_quotas_stall_with_the_aws_code() {
    let t = TestEnv::new("deploy-errors").await;
    // The registry stops sharing the group with staging below: its CreateModel is refused.
    t.expect_denied("sagemaker:CreateModel");
    let _controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    let v1 = register(&t, &group).await;

    // A pinned version that is not Approved.
    let api = create(
        &t,
        "churn",
        json!({"modelVersion": v1.to_string(),
        "stages": [{"name": "staging", "instanceType": "ml.m5.large"}]}),
    )
    .await;
    let d = t.wait_condition(&api, "churn", "Stalled", "True", Some("ModelNotApproved")).await;
    let (_, _, message) = condition(&d, "ModelResolved");
    assert!(message.contains("is PendingManualApproval, not Approved"), "{message}");
    assert!(calls(&t, 2, "CreateModel").is_empty(), "nothing deployed");

    // Approved, but the registry does not share the group with staging (its policy was removed
    // behind the project's back): the staging account may not use the package.
    let dev = t.clients(&t.account(1)).await;
    let policy = dev.sagemaker.get_model_package_group_policy().model_package_group_name(&group).send().await;
    let policy = policy.unwrap().resource_policy().unwrap().to_owned();
    dev.sagemaker.delete_model_package_group_policy().model_package_group_name(&group).send().await.unwrap();
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    let d = t.wait_condition(&api, "churn", "Stalled", "True", Some("AccessDenied")).await;
    let (_, _, message) = condition(&d, "StagesReady");
    assert!(message.starts_with("AccessDeniedException: model "), "{message}");
    assert!(message.contains(&format!("in AwsAccount {}", t.name("staging"))), "{message}");
    dev.sagemaker
        .put_model_package_group_policy()
        .model_package_group_name(&group)
        .resource_policy(policy)
        .send()
        .await
        .unwrap();

    // Shared again, but the staging account is out of instances.
    let quota = t.emulator.fault(json!({"operation": "CreateEndpoint", "account": t.account(2),
        "code": "ResourceLimitExceeded", "message": "The account-level service limit 'ml.m5.large for endpoint usage' is 0 Instances"}));
    t.poke(&api, "churn").await;
    let d = t.wait_condition(&api, "churn", "Stalled", "True", Some("QuotaExceeded")).await;
    let (_, _, message) = condition(&d, "StagesReady");
    assert!(message.starts_with("ResourceLimitExceeded: endpoint "), "{message}");
    assert!(message.contains(&format!("in AwsAccount {}", t.name("staging"))), "{message}");
    t.emulator.remove_fault(&quota);
    t.poke(&api, "churn").await;
    until(&api, "churn", "staging serving v1", 60, |d| serving(d, "staging", v1) && is_ready(d)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_registry_still_resolves_older_approved_and_pinned_versions() {
    let t = TestEnv::new("deploy-busy-registry").await;
    let _controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    let (v1, v2) = (register(&t, &group).await, register(&t, &group).await);
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    set_approval(&t, &group, v2, ModelApprovalStatus::Approved).await;
    // A hundred newer versions nobody approved: v1 and v2 are out of the newest hundred.
    for _ in 0..100 {
        register(&t, &group).await;
    }
    let api = create(&t, "churn", json!({"stages": [{"name": "staging", "instanceType": "ml.m5.large"}]})).await;
    let d = until(&api, "churn", "staging serving v2", 90, |d| serving(d, "staging", v2) && is_ready(d)).await;
    assert_eq!(d.status.unwrap().resolved_model_package.unwrap().version, v2);

    // Pinned to v1 (neither among the newest nor served), it is found and deployed; a pin to a
    // version that does not exist is refused by name.
    let patch = json!({"spec": {"modelVersion": v1.to_string()}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let d =
        until(&api, "churn", "staging serving the pinned v1", 60, |d| serving(d, "staging", v1) && is_ready(d)).await;
    assert_eq!(condition(&d, "ModelResolved").0, "True");
    let patch = json!({"spec": {"modelVersion": "999"}});
    api.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let d = t.wait_condition(&api, "churn", "Stalled", "True", Some("ModelNotApproved")).await;
    assert!(condition(&d, "ModelResolved").2.contains("has no version 999"), "{:?}", condition(&d, "ModelResolved"));
    assert_eq!(stage(&d, "staging").serving_version, Some(v1), "v1 keeps serving");
    assert_eq!(calls(&t, 2, "UpdateEndpoint").len(), 1, "v2 to v1, and nothing for the missing pin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_targets_deployer_and_model_roles_may_use_the_shared_registry() {
    let t = TestEnv::new("registry-principals").await;
    let _controller = t.controller_with(settings, None).await;
    let group = project(&t).await;
    let version = register(&t, &group).await;
    let package =
        format!("arn:aws:sagemaker:us-east-1:{}:model-package/{}/{version}", t.account(1), group.to_lowercase());
    let staging = t.account(2);
    let admin = t.clients(&staging).await;
    // Another role of the staging account, whose own policy allows everything a deployment does.
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": t.emulator.admin_credentials(&staging).arn}, "Action": "sts:AssumeRole"}]});
    let everything = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["sagemaker:CreateModel", "sagemaker:DescribeModelPackage", "iam:PassRole"], "Resource": "*"}]});
    let role = admin
        .iam
        .create_role()
        .role_name("someone-else")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .arn;
    admin
        .iam
        .put_role_policy()
        .role_name("someone-else")
        .policy_name("all")
        .policy_document(everything.to_string())
        .send()
        .await
        .unwrap();
    let as_other = TestEnv::clients_for(&t.assume(&t.emulator.admin_credentials(&staging), &role).await);
    let described = as_other.sagemaker.describe_model_package().model_package_name(&package).send().await;
    let code = described.as_ref().err().and_then(|e| e.code().map(str::to_owned));
    assert_eq!(code.as_deref(), Some("AccessDeniedException"), "another staging role read the shared version");
    let message = described.err().and_then(|e| e.message().map(str::to_owned)).unwrap_or_default();
    assert!(message.contains("no resource-based policy allows"), "refused by the registry's policy: {message}");
    let created = as_other
        .sagemaker
        .create_model()
        .model_name("stolen")
        .execution_role_arn(&role)
        .primary_container(
            sagekeeper_aws::sdk::sagemaker::types::ContainerDefinition::builder().model_package_name(&package).build(),
        )
        .send()
        .await;
    let code = created.err().and_then(|e| e.code().map(str::to_owned));
    assert_eq!(
        code.as_deref(),
        Some("AccessDeniedException"),
        "another staging role created a model from the registry"
    );
}
