//! Faults and bad input beyond admission: throttling, a call that never answers, an account
//! that cannot be assumed, a zone the region lacks, a name taken by someone else.

use std::time::Duration;

use sagekeeper_api::naming::EnvironmentNames;
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, conditions};
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::test_env::HasConditions;
use serde_json::json;

use crate::environments::{expected_in_dev, expected_in_target, owned_resources};
use crate::references::{environment, ready_account};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_30_percent_of_calls_throttled_it_converges_without_duplicates() {
    let t = TestEnv::new("throttled").await;
    let controller = t.controller_with(|s| s.pending_interval = Duration::from_secs(2), None).await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    ready_account(&t, "staging", 2, &t.namespace).await;
    // Throttling from here on: the test's own setup calls (the deployer roles) are not retried
    // as patiently as the controller's.
    let accounts = json!([t.account(1), t.account(2)]);
    for (service, code, status) in [
        ("ec2", "RequestLimitExceeded", 503),
        ("iam", "Throttling", 400),
        ("sts", "Throttling", 400),
        ("kms", "ThrottlingException", 400),
        ("sagemaker", "ThrottlingException", 400),
        ("s3", "SlowDown", 503),
    ] {
        t.emulator.fault(json!({"operation": "*", "service": service, "accounts": accounts, "code": code,
            "httpStatus": status, "probability": 0.3, "message": "Rate exceeded"}));
    }
    // A smaller environment than the full example (one target, three interface endpoints), so
    // the SDK's throttling backoff keeps the test short; every kind of resource is still there.
    let mut env = environment(&t, "fraud", "dev", &[("staging", "staging")]);
    env.spec.network.vpc_endpoints = Some(vec!["sagemaker.api".into(), "sts".into(), "kms".into()]);
    env.spec.studio.user_profiles = vec![sagekeeper_api::environment::UserProfile {
        name: "alice".into(),
        persona: sagekeeper_api::environment::Persona::DataScientist,
    }];
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &env).await.unwrap();
    let env = t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(240)).await;
    let throttled: usize = (1..=2)
        .map(|n| t.emulator.calls(&t.account(n)).iter().filter(|c| c.status == 400 || c.status == 503).count())
        .sum();
    assert!(throttled > 20, "only {throttled} calls were throttled");
    // The counts below are the test's own calls: no throttling for them.
    for n in 1..=2 {
        t.emulator.clear_faults(&t.account(n));
    }
    let uid = env.metadata.uid.unwrap();
    let mut dev = expected_in_dev();
    dev.insert("endpoints".into(), 4);
    dev.insert("roles".into(), 5);
    dev.insert("user profiles".into(), 1);
    assert_eq!(owned_resources(&t, &t.account(1), &uid).await, dev);
    assert_eq!(owned_resources(&t, &t.account(2), &uid).await, expected_in_target());
    let errors = controller.metrics.registry.gather();
    let throttled_metric = errors
        .iter()
        .find(|m| m.name() == "sagekeeper_aws_calls_total")
        .map(|m| m.get_metric().iter().filter(|s| s.get_label().iter().any(|l| l.value() != "ok")).count());
    assert!(throttled_metric.unwrap_or(0) > 0, "the AWS call metric saw no failed calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_call_that_never_answers_is_given_up_and_the_next_reconcile_tries_again() {
    let t = TestEnv::new("stalled").await;
    let _controller = t.controller().await;
    // The account's first GetCallerIdentity is held for five minutes: a service that took the
    // request and went silent. Without a time limit the reconcile would wait all of it; with
    // it, the call fails after the limit and the next reconcile's call is answered.
    let stall = Duration::from_secs(300);
    t.emulator.fault(json!({"operation": "GetCallerIdentity", "account": t.account(1), "count": 1,
        "code": "ServiceUnavailable", "httpStatus": 503, "stallSeconds": stall.as_secs()}));
    let started = std::time::Instant::now();
    let role = t.create_role(&t.account(1), "sagekeeper-deployer", None).await;
    let account: AwsAccount = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {}}}\nspec:\n  accountId: '{}'\n  roleArn: {role}\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {}}}}}\n",
            t.name("dev"),
            t.account(1),
            t.namespace
        ),
        false,
    );
    t.accounts().create(&Default::default(), &account).await.unwrap();
    let limit = sagekeeper_aws::sessions::CALL_TIMEOUT;
    let wait = limit + Duration::from_secs(60);
    t.wait_condition_for(&t.accounts(), &t.name("dev"), "Ready", "True", None, wait).await;
    let took = started.elapsed();
    let pending = t.emulator.faults().into_iter().filter(|f| f["account"] == t.account(1).as_str()).count();
    assert_eq!(pending, 0, "the stalled call was never sent");
    assert!(took >= limit, "Ready after {took:?}, before the stalled call's limit of {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_cannot_be_assumed_stalls_the_environment_with_its_reason() {
    let t = TestEnv::new("unassumable").await;
    t.expect_denied("sts:AssumeRole");
    let _controller = t.controller().await;
    // No role exists in account 1: AssumeRole is refused.
    let account: AwsAccount = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {}}}\nspec:\n  accountId: '{}'\n  roleArn: arn:aws:iam::{}:role/missing\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: '{{ns}}'}}}}\n",
            t.name("dev"),
            t.account(1),
            t.account(1)
        ),
        false,
    );
    t.accounts().create(&Default::default(), &account).await.unwrap();
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &environment(&t, "fraud", "dev", &[])).await.unwrap();
    let env = t.wait_condition(&api, "fraud", "Stalled", "True", Some("AccessDenied")).await;
    let ready = conditions::find(env.conditions(), "Ready").unwrap();
    assert!(ready.message.contains(&t.name("dev")) && ready.message.contains("AccessDenied"), "{}", ready.message);
    let calls = t.emulator.calls(&t.account(1));
    assert!(calls.is_empty(), "nothing may happen in an account that cannot be assumed: {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_the_region_lacks_stalls_before_anything_is_created() {
    let t = TestEnv::new("unknown-zone").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    let mut env = environment(&t, "fraud", "dev", &[]);
    env.spec.network.availability_zones = Some(vec!["us-east-1a".into(), "us-east-1z".into()]);
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &env).await.unwrap();
    let stalled = t.wait_condition(&api, "fraud", "Stalled", "True", Some("InvalidConfiguration")).await;
    let message = &conditions::find(stalled.conditions(), "Ready").unwrap().message;
    assert!(message.contains("us-east-1z") && message.contains("spec.network.availabilityZones"), "{message}");
    let writes: Vec<_> = t
        .emulator
        .calls(&t.account(1))
        .into_iter()
        .filter(|c| c.caller.ends_with("/sagekeeper") && !sagekeeper_tests::emulator::is_read(&c.operation))
        .collect();
    assert!(writes.is_empty(), "created something for an impossible spec: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_name_taken_by_someone_else_is_a_name_conflict_never_adopted() {
    let t = TestEnv::new("name-conflict").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    // Someone else's role with the name the environment would give its execution role.
    let taken = EnvironmentNames::new(&t.namespace, "fraud").role("execution");
    let dev = t.clients(&t.account(1)).await;
    let foreign_trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    dev.iam
        .create_role()
        .role_name(&taken)
        .assume_role_policy_document(foreign_trust.to_string())
        .send()
        .await
        .unwrap();
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &environment(&t, "fraud", "dev", &[])).await.unwrap();
    let env = t.wait_condition(&api, "fraud", "IdentityReady", "False", Some("NameConflict")).await;
    let stalled = conditions::find(env.conditions(), "Stalled").unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "NameConflict"));
    assert!(stalled.message.starts_with("NameConflict: IAM role"), "{}", stalled.message);
    let role = dev.iam.get_role().role_name(&taken).send().await.unwrap().role.unwrap();
    assert!(role.tags().is_empty(), "the foreign role was tagged");
    let trust = sagekeeper_policy::parse(role.assume_role_policy_document().unwrap()).unwrap();
    assert!(sagekeeper_policy::equivalent(&trust, &foreign_trust), "the foreign role's trust changed");
    let inline = dev.iam.list_role_policies().role_name(&taken).send().await.unwrap();
    assert!(inline.policy_names().is_empty(), "a policy was put on the foreign role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_iam_has_not_propagated_yet_are_pending_never_stalled() {
    let t = TestEnv::new("iam-propagation").await;
    let _controller = t.controller_with(|s| s.pending_interval = Duration::from_secs(1), None).await;
    for (name, n) in [("dev", 1), ("staging", 2), ("prod", 3)] {
        ready_account(&t, name, n, &t.namespace).await;
        // From now on, roles made in the account take six seconds to become usable.
        t.emulator.configure(json!({"account": t.account(n), "iamPropagationSeconds": 6}));
    }
    // The accounts' own roles are older than that once this wait is over.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let env = crate::environments::environment_manifest(&t);
    t.api::<DataScienceEnvironment>().create(&Default::default(), &env).await.unwrap();
    let api = t.api::<DataScienceEnvironment>();
    let mut waited_for_iam = false;
    let started = std::time::Instant::now();
    loop {
        let env = api.get("fraud").await.unwrap();
        let list = env.conditions();
        if let Some(stalled) = conditions::find(list, "Stalled").filter(|c| c.status == "True") {
            panic!("stalled while IAM propagated: {}: {}", stalled.reason, stalled.message);
        }
        // The wait shows in a condition, unless the step's retry within the pass outran it; the
        // emulator's refusal of a policy naming a role still propagating proves it happened.
        waited_for_iam |= list.iter().any(|c| c.message.contains("IAM is propagating"))
            || (1..=3).any(|n| {
                t.emulator
                    .calls(&t.account(n))
                    .iter()
                    .any(|c| matches!(c.operation.as_str(), "PutKeyPolicy" | "PutBucketPolicy") && c.status == 400)
            });
        if conditions::is_ready(list, env.metadata.generation) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not Ready: {list:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(waited_for_iam, "the environment never waited for IAM: the delay was not exercised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_error_is_stalled_with_the_aws_code_and_recovers_once_fixed() {
    let t = TestEnv::new("quota").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    let fault = t.emulator.fault(json!({"operation": "CreateVpc", "account": t.account(1), "code": "VpcLimitExceeded",
        "message": "The maximum number of VPCs has been reached."}));
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &environment(&t, "fraud", "dev", &[])).await.unwrap();
    let env = t.wait_condition(&api, "fraud", "Stalled", "True", Some("QuotaExceeded")).await;
    let network = conditions::find(env.conditions(), "NetworkReady").unwrap();
    assert_eq!((network.status.as_str(), network.reason.as_str()), ("False", "QuotaExceeded"));
    assert!(network.message.starts_with("VpcLimitExceeded: VPC of"), "{}", network.message);
    assert!(network.message.contains("raise the service quota"), "{}", network.message);
    // The quota is raised: the next look converges.
    t.emulator.remove_fault(&fault);
    t.poke(&api, "fraud").await;
    t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_in_a_target_account_holds_back_only_what_needs_it_and_names_the_account() {
    let t = TestEnv::new("denied-target").await;
    let controller = t.controller_with(|s| s.pending_interval = Duration::from_secs(1), None).await;
    for (name, n) in [("dev", 1), ("staging", 2), ("prod", 3)] {
        ready_account(&t, name, n, &t.namespace).await;
    }
    // IAM refuses sagekeeper everything in the staging account, as a missing deployer policy would.
    let fault = t.emulator.fault(json!({"operation": "*", "service": "iam", "account": t.account(2),
        "code": "AccessDenied", "httpStatus": 403,
        "message": "User is not authorized to perform this iam action"}));
    let api = t.api::<DataScienceEnvironment>();
    api.create(&Default::default(), &crate::environments::environment_manifest(&t)).await.unwrap();
    let env =
        t.wait_condition_for(&api, "fraud", "Stalled", "True", Some("AccessDenied"), Duration::from_secs(120)).await;
    let list = env.conditions();
    let condition = |name: &str| conditions::find(list, name).unwrap_or_else(|| panic!("no {name}: {list:?}"));
    // The dev account's Studio, network and roles, and the production account, converged anyway.
    for ready in ["NetworkReady", "IdentityReady", "StudioReady"] {
        assert_eq!(condition(ready).status, "True", "{ready}: {}", condition(ready).message);
    }
    let status = env.status.clone().unwrap();
    assert!(status.studio.as_ref().and_then(|s| s.domain_id.clone()).is_some(), "no domain: {status:?}");
    let prod = status.target_accounts.iter().find(|a| a.stage == "production").unwrap();
    assert!(prod.ready, "the production account waited for staging: {prod:?}");
    // The refusal itself is reported: account, resource and AWS code.
    let targets = condition("TargetAccountsReady");
    assert_eq!((targets.status.as_str(), targets.reason.as_str()), ("False", "AccessDenied"));
    let staging = t.name("staging");
    assert!(targets.message.starts_with("AccessDenied: IAM role"), "{}", targets.message);
    assert!(targets.message.contains(&format!("account {staging} for stage staging")), "{}", targets.message);
    assert!(targets.message.contains("step TargetRole"), "{}", targets.message);
    // What needs the staging role (the s3 key policy) says what it waits for.
    let encryption = condition("EncryptionReady");
    assert_eq!(encryption.status, "False");
    assert!(encryption.message.contains("which failed: AccessDenied"), "{}", encryption.message);
    // The step metric counts the refusal under the step's name, not its account.
    let failures = controller.metrics.registry.gather();
    let counted = failures.iter().filter(|m| m.name() == "sagekeeper_step_failures_total").any(|m| {
        m.get_metric().iter().any(|s| {
            let label = |name: &str| s.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_owned());
            label("step").as_deref() == Some("TargetRole") && label("category").as_deref() == Some("access_denied")
        })
    });
    assert!(counted, "no sagekeeper_step_failures_total{{step=TargetRole,category=access_denied}}");
    // Once IAM admits sagekeeper, the environment converges.
    t.emulator.remove_fault(&fault);
    t.poke(&api, "fraud").await;
    t.wait_condition_for(&api, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
}
