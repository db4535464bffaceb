//! AwsAccount against the emulator: assume-role, account mismatch, access denied, caching.

use kube::api::{Patch, PatchParams};
use sagekeeper_api::{AwsAccount, conditions};
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::test_env::HasConditions;
use serde_json::json;

fn account(t: &TestEnv, name: &str, body: &str) -> AwsAccount {
    t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {}}}\nspec:\n{body}\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: '{{ns}}'}}}}\n",
            t.name(name)
        ),
        false,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assume_role_into_second_account_is_ready_with_caller_arn() {
    let t = TestEnv::new("assume-role-ready").await;
    let role = t.create_role(&t.account(1), "sagekeeper-deployer", None).await;
    let _controller = t.controller().await;
    let obj = account(&t, "dev", &format!("  accountId: '{}'\n  roleArn: {role}", t.account(1)));
    t.accounts().create(&Default::default(), &obj).await.unwrap();
    let ready = t.wait_condition(&t.accounts(), &t.name("dev"), "Ready", "True", Some("Converged")).await;
    let status = ready.status.unwrap();
    assert_eq!(
        status.caller_arn.as_deref(),
        Some(format!("arn:aws:sts::{}:assumed-role/sagekeeper-deployer/sagekeeper", t.account(1)).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_without_role_in_another_account_stalls_with_account_mismatch() {
    let t = TestEnv::new("account-mismatch").await;
    let _controller = t.controller().await;
    let obj = account(&t, "other", &format!("  accountId: '{}'", t.account(1)));
    t.accounts().create(&Default::default(), &obj).await.unwrap();
    let stalled = t.wait_condition(&t.accounts(), &t.name("other"), "Stalled", "True", Some("AccountMismatch")).await;
    let ready = conditions::find(stalled.conditions(), "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "AccountMismatch"));
    assert!(ready.message.contains(&t.home_account) && ready.message.contains(&t.account(1)), "{}", ready.message);
    assert!(stalled.status.unwrap().caller_arn.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_without_role_in_the_controllers_own_account_is_ready() {
    let t = TestEnv::new("own-account").await;
    // Without a role, sagekeeper acts with its own identity: that identity carries the deployer
    // permissions in its own account (deploy/aws/README.md).
    t.grant_deployer_policies_to_controller().await;
    let _controller = t.controller().await;
    let obj = account(&t, "home", &format!("  accountId: '{}'", t.home_account));
    t.accounts().create(&Default::default(), &obj).await.unwrap();
    let ready = t.wait_condition(&t.accounts(), &t.name("home"), "Ready", "True", None).await;
    assert_eq!(ready.status.unwrap().caller_arn.as_deref(), Some(t.home.arn.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boundary_that_does_not_exist_stalls_the_account_naming_it() {
    let t = TestEnv::new("missing-boundary").await;
    let role = t.create_role(&t.account(1), "sagekeeper-deployer", None).await;
    // The platform team forgot the boundary policy in this account.
    let boundary = format!("arn:aws:iam::{}:policy/sagekeeper-boundary", t.account(1));
    t.clients(&t.account(1)).await.iam.delete_policy().policy_arn(&boundary).send().await.unwrap();
    let _controller = t.controller().await;
    let body = format!("  accountId: '{}'\n  roleArn: {role}", t.account(1));
    t.accounts().create(&Default::default(), &account(&t, "dev", &body)).await.unwrap();
    let stalled =
        t.wait_condition(&t.accounts(), &t.name("dev"), "Stalled", "True", Some("InvalidConfiguration")).await;
    let ready = conditions::find(stalled.conditions(), "Ready").unwrap();
    assert_eq!(ready.status, "False");
    let expected = format!("NoSuchEntity: permissions boundary {boundary} does not exist in account {}", t.account(1));
    assert!(ready.message.starts_with(&expected), "{}", ready.message);
    // Once it is installed, the account is ready and reports the boundary it attaches.
    t.install_boundary(&t.account(1)).await;
    t.poke(&t.accounts(), &t.name("dev")).await;
    let ready = t.wait_condition(&t.accounts(), &t.name("dev"), "Ready", "True", Some("Converged")).await;
    assert_eq!(ready.status.unwrap().permissions_boundary_arn.as_deref(), Some(boundary.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_on_assume_role_stalls_with_the_code_in_the_message() {
    let t = TestEnv::new("access-denied").await;
    let role = t.create_role(&t.account(1), "sagekeeper-deployer", None).await;
    t.emulator.fault(json!({
        "operation": "AssumeRole", "account": t.home_account, "match": role,
        "code": "AccessDenied", "httpStatus": 403,
        "message": format!("User: {} is not authorized to perform: sts:AssumeRole on resource: {role}", t.home.arn),
    }));
    let _controller = t.controller().await;
    let obj = account(&t, "dev", &format!("  accountId: '{}'\n  roleArn: {role}", t.account(1)));
    t.accounts().create(&Default::default(), &obj).await.unwrap();
    let stalled = t.wait_condition(&t.accounts(), &t.name("dev"), "Stalled", "True", Some("AccessDenied")).await;
    let ready = conditions::find(stalled.conditions(), "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "AccessDenied"));
    assert!(ready.message.starts_with(&format!("AccessDenied: sts:AssumeRole {role}")), "{}", ready.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_external_id_is_refused_by_the_role_trust_policy() {
    let t = TestEnv::new("external-id").await;
    t.expect_denied("sts:AssumeRole");
    let role = t.create_role(&t.account(1), "sagekeeper-deployer", Some("right-id")).await;
    let _controller = t.controller().await;
    let wrong =
        account(&t, "wrong", &format!("  accountId: '{}'\n  roleArn: {role}\n  externalId: wrong-id", t.account(1)));
    let right =
        account(&t, "right", &format!("  accountId: '{}'\n  roleArn: {role}\n  externalId: right-id", t.account(1)));
    t.accounts().create(&Default::default(), &wrong).await.unwrap();
    t.accounts().create(&Default::default(), &right).await.unwrap();
    t.wait_condition(&t.accounts(), &t.name("wrong"), "Stalled", "True", Some("AccessDenied")).await;
    t.wait_condition(&t.accounts(), &t.name("right"), "Ready", "True", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assumed_credentials_are_reused_across_reconciles() {
    let t = TestEnv::new("credential-cache").await;
    let role = t.create_role(&t.account(1), "sagekeeper-deployer", None).await;
    let _controller = t.controller().await;
    let obj = account(&t, "dev", &format!("  accountId: '{}'\n  roleArn: {role}", t.account(1)));
    t.accounts().create(&Default::default(), &obj).await.unwrap();
    t.wait_condition(&t.accounts(), &t.name("dev"), "Ready", "True", None).await;
    // A spec change makes a new generation: reconciled again, with the cached credentials.
    let patch = json!({"spec": {"regions": ["us-east-1"]}});
    t.accounts().patch(&t.name("dev"), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    t.wait_condition(&t.accounts(), &t.name("dev"), "Ready", "True", None).await;
    let calls = t.emulator.calls(&t.home_account);
    let assumed = calls.iter().filter(|c| c.operation == "AssumeRole").count();
    let identity = t.emulator.calls(&t.account(1)).iter().filter(|c| c.operation == "GetCallerIdentity").count();
    assert_eq!(assumed, 1, "one AssumeRole for two reconciles: {calls:?}");
    assert!(identity >= 2, "each reconcile checks the identity ({identity} GetCallerIdentity calls)");
}
