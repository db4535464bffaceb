//! AwsAccount against the emulator: assume-role, account mismatch, access denied, caching.

use sagekeeper_api::AwsAccount;
use sagekeeper_tests::TestEnv;

fn account(t: &TestEnv, name: &str, body: &str) -> AwsAccount {
    t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {}}}\nspec:\n{body}\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: '{{ns}}'}}}}\n",
            t.name(name)
        ),
        false,
    )
}

#[tokio::test]
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
