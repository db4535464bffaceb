//! Existing keys (`spec.encryption.existingKeys`): a security team's keys are used, checked by
//! reading their policies (the environment stalls with the statements to add), and never
//! changed, tagged, aliased or scheduled for deletion.

use std::time::Duration;

use sagekeeper_api::DataScienceEnvironment;
use sagekeeper_api::conditions;
use sagekeeper_aws::sdk::kms::error::ProvideErrorMetadata;
use sagekeeper_aws::sdk::kms::types::Tag;
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::test_env::{AccountClients, HasConditions};
use serde_json::{Value, json};

use crate::references::ready_account;

/// A key the security team makes with `policy`, no rotation, lent to the environments of
/// namespace `lent_to` (by its tag) when given.
async fn team_key(c: &AccountClients, policy: &Value, lent_to: Option<&str>) -> String {
    let lend =
        lent_to.map(|n| Tag::builder().tag_key(sagekeeper_api::naming::LENT_TO_TAG).tag_value(n).build().unwrap());
    let key = c.kms.create_key().policy(policy.to_string()).set_tags(lend.map(|t| vec![t])).send().await.unwrap();
    key.key_metadata().unwrap().arn().unwrap().to_owned()
}

/// AWS's default key policy: the account root may do anything, so IAM policies decide.
fn delegating(account: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:*", "Resource": "*"}]})
}

/// What a key is, as far as sagekeeper could change it: policy, state, rotation, tags, aliases.
async fn key_state(c: &AccountClients, arn: &str) -> String {
    let policy = c.kms.get_key_policy().key_id(arn).policy_name("default").send().await.unwrap();
    let meta = c.kms.describe_key().key_id(arn).send().await.unwrap().key_metadata.unwrap();
    let rotation = c.kms.get_key_rotation_status().key_id(arn).send().await.unwrap().key_rotation_enabled();
    let tags = c.kms.list_resource_tags().key_id(arn).send().await.unwrap();
    let aliases = c.kms.list_aliases().key_id(arn).send().await.unwrap();
    format!(
        "{} {:?} {rotation} {:?} {:?}",
        policy.policy().unwrap(),
        meta.key_state(),
        tags.tags(),
        aliases.aliases().iter().map(|a| a.alias_name().unwrap_or_default()).collect::<Vec<_>>()
    )
}

/// The JSON statements a stall message asks for.
fn statements_to_add(message: &str) -> Vec<Value> {
    let start = message.find("): [").map(|i| i + 3).unwrap_or_else(|| panic!("no statements in {message}"));
    let mut list = serde_json::Deserializer::from_str(&message[start..]).into_iter::<Vec<Value>>();
    list.next().unwrap_or_else(|| panic!("no statements in {message}")).unwrap_or_else(|e| panic!("{e}: {message}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_keys_are_used_as_they_are_and_a_policy_that_does_not_admit_the_environment_stalls_with_the_statements_to_add()
 {
    let t = TestEnv::new("existing-keys").await;
    let _controller = t.controller().await;
    ready_account(&t, "dev", 1, &t.namespace).await;
    let dev = t.account(1);
    let c = t.clients(&dev).await;
    let ns = Some(t.namespace.as_str());
    let (ebs, studio, s3) = (
        team_key(&c, &delegating(&dev), ns).await,
        team_key(&c, &delegating(&dev), ns).await,
        team_key(&c, &delegating(&dev), ns).await,
    );
    // A key of the account lent to another namespace.
    let unlent = team_key(&c, &delegating(&dev), Some("team-next-door")).await;
    // A key whose policy names no one but the root's administration: nobody may use it.
    let closed = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Admin", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{dev}:root")}, "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:Put*"], "Resource": "*"}]});
    let strict = team_key(&c, &closed, ns).await;
    // Looking for a key of its own that has no alias yet, sagekeeper reads the tags of every key
    // of the account; this one refuses, and is passed over.
    t.expect_denied("kms:ListResourceTags");
    let manifest = |name: &str, keys: &str| -> DataScienceEnvironment {
        t.manifest(
            &format!(
                "apiVersion: sagekeeper.io/v1alpha1
kind: DataScienceEnvironment
metadata: {{name: {name}}}
spec:
  account: {account}
  region: us-east-1
  encryption:
    existingKeys: {keys}
  studio:
    userProfiles: [{{name: alice, persona: DataScientist}}]
  deleteDataOnDelete: true
",
                account = t.name("dev"),
            ),
            true,
        )
    };
    let api = t.api::<DataScienceEnvironment>();
    let keys = format!("{{ebs: '{ebs}', studio: '{studio}', s3: '{s3}'}}");
    api.create(&Default::default(), &manifest("team-keys", &keys)).await.unwrap();
    api.create(&Default::default(), &manifest("closed-key", &format!("{{s3: '{strict}'}}"))).await.unwrap();
    api.create(&Default::default(), &manifest("unlent-key", &format!("{{s3: '{unlent}'}}"))).await.unwrap();

    // The default policies leave the roles and sagekeeper's grants to IAM; CloudWatch Logs, a
    // service, must be named for the flow log group: the one statement asked for.
    let env = t.wait_condition(&api, "team-keys", "EncryptionReady", "False", Some("InvalidConfiguration")).await;
    let message = conditions::find(env.conditions(), "EncryptionReady").unwrap().message.clone();
    assert!(message.starts_with("InvalidConfiguration: "), "{message}");
    assert!(message.contains("spec.encryption.existingKeys.ebs") && message.contains(&ebs), "{message}");
    let wanted = statements_to_add(&message);
    let sids: Vec<&str> = wanted.iter().filter_map(|s| s["Sid"].as_str()).collect();
    assert_eq!(sids, ["CloudWatchLogsOfTheFlowLogGroup"], "{message}");
    // The security team adds it; the environment converges on its keys.
    let mut policy = delegating(&dev);
    policy["Statement"].as_array_mut().unwrap().extend(wanted);
    c.kms.put_key_policy().key_id(&ebs).policy_name("default").policy(policy.to_string()).send().await.unwrap();
    let before = [key_state(&c, &ebs).await, key_state(&c, &studio).await, key_state(&c, &s3).await];
    t.poke(&api, "team-keys").await;
    let env = t.wait_condition_for(&api, "team-keys", "Ready", "True", None, Duration::from_secs(120)).await;
    let encryption = env.status.as_ref().unwrap().encryption.clone().unwrap();
    assert_eq!(
        (encryption.ebs_key_arn.as_deref(), encryption.studio_key_arn.as_deref(), encryption.s3_key_arn.as_deref()),
        (Some(ebs.as_str()), Some(studio.as_str()), Some(s3.as_str()))
    );
    let ready = conditions::find(env.conditions(), "EncryptionReady").unwrap();
    assert!(ready.message.contains("existing keys"), "{}", ready.message);
    // The buckets encrypt with the team's s3 key, the domain with its studio key.
    let storage = env.status.as_ref().unwrap().storage.clone().unwrap();
    let encryption_of = c.s3.get_bucket_encryption().bucket(storage.data_bucket.unwrap()).send().await.unwrap();
    let rule = &encryption_of.server_side_encryption_configuration().unwrap().rules()[0];
    let default = rule.apply_server_side_encryption_by_default().unwrap();
    assert_eq!(default.kms_master_key_id(), Some(s3.as_str()));
    let domain = env.status.as_ref().unwrap().studio.clone().unwrap().domain_id.unwrap();
    let described = c.sagemaker.describe_domain().domain_id(&domain).send().await.unwrap();
    assert_eq!(described.kms_key_id(), Some(studio.as_str()));

    // A policy that admits no one stalls with the statements naming the environment's roles.
    let env = t.wait_condition(&api, "closed-key", "EncryptionReady", "False", Some("InvalidConfiguration")).await;
    let message = conditions::find(env.conditions(), "EncryptionReady").unwrap().message.clone();
    let wanted = statements_to_add(&message);
    let key_use = wanted.iter().find(|s| s["Sid"] == "KeyUse").unwrap_or_else(|| panic!("{message}"));
    let execution = format!("arn:aws:iam::{dev}:role/");
    assert!(key_use["Principal"]["AWS"].to_string().contains(&execution), "{key_use}");
    assert!(wanted.iter().any(|s| s["Sid"] == "ControllerUploads"), "{message}");

    // A key not lent to the namespace is not used.
    let env = t.wait_condition(&api, "unlent-key", "EncryptionReady", "False", Some("InvalidConfiguration")).await;
    let message = &conditions::find(env.conditions(), "EncryptionReady").unwrap().message;
    assert!(message.contains(&unlent) && message.contains("is not lent to namespace"), "{message}");
    // Only the key's owner lends it: sagekeeper's own role is refused writing the lending tag,
    // even alongside the ownership tag its policy lets it put on keys.
    let deployer = t.clients_as_controller(&dev).await;
    let lend = |key: &str| {
        let tag = |k: &str, v: &str| Tag::builder().tag_key(k).tag_value(v).build().unwrap();
        let tags =
            [tag(sagekeeper_api::naming::OWNER_UID_TAG, "x"), tag(sagekeeper_api::naming::LENT_TO_TAG, &t.namespace)];
        deployer.kms.tag_resource().key_id(key).set_tags(Some(tags.to_vec())).send()
    };
    let refused = lend(&unlent).await.unwrap_err();
    assert_eq!(refused.code(), Some("AccessDeniedException"), "sagekeeper's role lent a key: {refused:?}");
    assert!(refused.message().unwrap_or_default().contains("explicit deny"), "{refused:?}");

    // Admission refuses a key of another region and any change of the keys; a key of another
    // account stalls the environment before it writes anything.
    let elsewhere = ebs.replace(":us-east-1:", ":eu-west-1:");
    let refused = api.create(&Default::default(), &manifest("elsewhere", &format!("{{s3: '{elsewhere}'}}"))).await;
    assert!(refused.unwrap_err().to_string().contains("spec.encryption.existingKeys must be keys of spec.region"));
    let patch = json!({"spec": {"encryption": {"existingKeys": {"s3": ebs}}}});
    let refused = api.patch("team-keys", &Default::default(), &kube::api::Patch::Merge(&patch)).await.unwrap_err();
    assert!(refused.to_string().contains("spec.encryption.existingKeys is immutable"), "{refused}");
    let foreign = s3.replace(&format!(":{dev}:"), &format!(":{}:", t.account(2)));
    api.create(&Default::default(), &manifest("foreign-key", &format!("{{s3: '{foreign}'}}"))).await.unwrap();
    let env = t.wait_condition(&api, "foreign-key", "Stalled", "True", Some("InvalidConfiguration")).await;
    let message = &conditions::find(env.conditions(), "Stalled").unwrap().message;
    assert!(message.contains("is not a key of the dev account"), "{message}");
    assert_eq!(env.status.as_ref().and_then(|s| s.encryption.clone()), None, "nothing was made");

    // Deleting the environments changes nothing of the keys.
    for name in ["team-keys", "closed-key", "foreign-key", "unlent-key"] {
        api.delete(name, &Default::default()).await.unwrap();
        t.wait_gone(&api, name).await;
    }
    let after = [key_state(&c, &ebs).await, key_state(&c, &studio).await, key_state(&c, &s3).await];
    assert_eq!(after, before, "the team's keys as they were");
    assert!(key_state(&c, &strict).await.contains("Enabled"));
}
