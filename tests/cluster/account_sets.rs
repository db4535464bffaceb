//! AwsAccountSet: one AwsAccount per active account of an Organizations OU (nested units and
//! more accounts than one page included), followed as accounts move in and out; an
//! environment's and a deployment's stage named by a set reach every member account.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use sagekeeper_api::account_set::SET_LABEL;
use sagekeeper_api::{AwsAccount, AwsAccountSet, DataScienceEnvironment};
use sagekeeper_aws::sdk::ec2::types::Filter;
use sagekeeper_aws::sdk::organizations::types::OrganizationFeatureSet;
use sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus;
use sagekeeper_tests::test_env::AccountClients;
use sagekeeper_tests::{TestEnv, eventually};
use serde_json::json;

use crate::deployments::{create, is_ready, register, serving, set_approval, until};
use crate::references::ready_account;
use crate::security::{acting_as, through, trust_the_admin};

/// An organization managed by `admin`'s account: its root, and units `names` created in that
/// order, each under the one its parent index names (`None`: the root). Returns their ids.
async fn organization(admin: &AccountClients, units: &[(&str, Option<usize>)]) -> (String, Vec<String>) {
    let org = &admin.organizations;
    org.create_organization().feature_set(OrganizationFeatureSet::All).send().await.unwrap();
    let root = org.list_roots().send().await.unwrap().roots()[0].id().unwrap().to_owned();
    let mut ids: Vec<String> = Vec::new();
    for (name, parent) in units {
        let parent = parent.map_or(root.clone(), |i| ids[i].clone());
        let made = org.create_organizational_unit().parent_id(parent).name(*name).send().await.unwrap();
        ids.push(made.organizational_unit().unwrap().id().unwrap().to_owned());
    }
    (root, ids)
}

/// The set `prod` reading unit `ou` through AwsAccount `org`, for this test's namespace.
fn account_set(t: &TestEnv, ou: &str) -> AwsAccountSet {
    t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccountSet\nmetadata: {{name: {set}}}\nspec:\n  organizationAccount: {org}\n  organizationalUnitId: {ou}\n  roleName: sagekeeper-deployer\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: '{ns}'}}}}\n  pollIntervalSeconds: 30\n",
            set = t.name("prod"),
            org = t.name("org"),
            ns = t.namespace,
        ),
        false,
    )
}

/// Waits until the set reports exactly these account ids (not leaving); returns it.
async fn members(t: &TestEnv, ids: &[String]) -> AwsAccountSet {
    let sets: Api<AwsAccountSet> = Api::all(t.client.clone());
    let mut want = ids.to_vec();
    want.sort();
    eventually(Duration::from_secs(90), &format!("the set to hold {} accounts", want.len()), || async {
        let set = sets.get(&t.name("prod")).await.ok()?;
        let status = set.status.as_ref()?;
        let mut have: Vec<String> =
            status.accounts.iter().filter(|a| !a.leaving).map(|a| a.account_id.clone()).collect();
        have.sort();
        (have == want).then_some(set)
    })
    .await
}

/// The set's own AwsAccounts, by account id.
async fn owned(t: &TestEnv) -> Vec<AwsAccount> {
    let label = format!("{SET_LABEL}={}", t.name("prod"));
    let mut list = t.accounts().list(&ListParams::default().labels(&label)).await.unwrap().items;
    list.sort_by(|a, b| a.spec.account_id.cmp(&b.spec.account_id));
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ou_with_a_nested_unit_and_more_accounts_than_a_page_gets_one_awsaccount_per_member() {
    let t = TestEnv::new("account-set-members").await;
    // The member accounts hold no deployer role: their AwsAccounts cannot assume it.
    t.expect_denied("sts:AssumeRole");
    let _controller = t.controller().await;
    let management = t.account(1);
    ready_account(&t, "org", 1, &t.namespace).await;
    t.attach_organization_reader(&management, "sagekeeper-deployer").await;
    let admin = t.clients(&management).await;
    let (_, units) = organization(&admin, &[("prod", None), ("eu", Some(0)), ("sandbox", None)]).await;
    let (prod, eu, sandbox) = (&units[0], &units[1], &units[2]);
    // 21 accounts directly in prod (one page holds 20), one in its nested unit eu, one elsewhere.
    let direct: Vec<String> = (20..41).map(|n| t.account(n)).collect();
    for account in &direct {
        t.emulator.enroll(&management, account, prod);
    }
    t.emulator.enroll(&management, &t.account(41), eu);
    t.emulator.enroll(&management, &t.account(42), sandbox);
    // An account that already has an AwsAccount gets no second one.
    ready_account(&t, "legacy", 2, &t.namespace).await;
    t.emulator.enroll(&management, &t.account(2), prod);

    let sets: Api<AwsAccountSet> = Api::all(t.client.clone());
    sets.create(&Default::default(), &account_set(&t, prod)).await.unwrap();
    let all: Vec<String> = direct.iter().cloned().chain([t.account(41), t.account(2)]).collect();
    let set = members(&t, &all).await;
    let status = set.status.clone().unwrap();
    assert_eq!(status.account_count, 23);
    let path = status.organization_path.clone().unwrap();
    assert!(path.starts_with("o-") && path.ends_with(&format!("/{prod}/")), "{path}");
    let legacy = status.accounts.iter().find(|a| a.account_id == t.account(2)).unwrap();
    assert!(legacy.existing && legacy.aws_account == t.name("legacy"), "{legacy:?}");
    let mine = owned(&t).await;
    assert_eq!(mine.len(), 22, "one AwsAccount per member without one");
    for account in &mine {
        let id = &account.spec.account_id;
        assert_eq!(account.name_any(), format!("{}-{id}", t.name("prod")));
        assert_eq!(
            account.spec.role_arn.as_deref(),
            Some(format!("arn:aws:iam::{id}:role/sagekeeper-deployer").as_str())
        );
        assert_eq!(
            account.spec.namespace_selector.match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
            t.namespace
        );
        assert_eq!(account.owner_references()[0].uid, set.uid().unwrap());
    }

    // An account moved out of the unit (and its nested one), used by nothing: its AwsAccount goes.
    admin
        .organizations
        .move_account()
        .account_id(t.account(41))
        .source_parent_id(eu)
        .destination_parent_id(sandbox)
        .send()
        .await
        .unwrap();
    let _ = members(&t, &all[..all.len() - 2].iter().cloned().chain([t.account(2)]).collect::<Vec<_>>()).await;
    eventually(Duration::from_secs(60), "the leaver's AwsAccount to go", || async {
        (owned(&t).await.len() == 21).then_some(())
    })
    .await;

    // Deleting the set deletes the AwsAccounts it made, never the one that existed before.
    sets.delete(&t.name("prod"), &Default::default()).await.unwrap();
    eventually(Duration::from_secs(90), "the set and its AwsAccounts to go", || async {
        let gone = sets.get_opt(&t.name("prod")).await.unwrap().is_none();
        (gone && owned(&t).await.is_empty()).then_some(())
    })
    .await;
    assert!(t.accounts().get_opt(&t.name("legacy")).await.unwrap().is_some(), "the legacy AwsAccount stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_moved_into_the_ou_extends_production_and_one_moved_out_goes_once_unused() {
    let t = TestEnv::new("account-set-production").await;
    let _controller = t.controller_with(|s| s.poll_interval = Duration::from_secs(1), None).await;
    let management = t.account(5);
    ready_account(&t, "org", 5, &t.namespace).await;
    t.attach_organization_reader(&management, "sagekeeper-deployer").await;
    let admin = t.clients(&management).await;
    let (root, units) = organization(&admin, &[("prod", None)]).await;
    let prod = &units[0];
    // Members hold the deployer role and the boundary, as the platform team rolls them out.
    for n in [3, 4] {
        t.create_role(&t.account(n), "sagekeeper-deployer", None).await;
        t.emulator.enroll(&management, &t.account(n), if n == 3 { prod } else { &root });
    }
    ready_account(&t, "dev", 1, &t.namespace).await;
    ready_account(&t, "staging", 2, &t.namespace).await;
    let sets: Api<AwsAccountSet> = Api::all(t.client.clone());
    sets.create(&Default::default(), &account_set(&t, prod)).await.unwrap();
    members(&t, &[t.account(3)]).await;
    let (first, second) =
        (format!("{}-{}", t.name("prod"), t.account(3)), format!("{}-{}", t.name("prod"), t.account(4)));
    t.wait_condition(&t.accounts(), &first, "Ready", "True", None).await;

    let env: DataScienceEnvironment = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: DataScienceEnvironment\nmetadata: {{name: fraud}}\nspec:\n  account: {}\n  region: us-east-1\n  network: {{vpcEndpoints: []}}\n  studio: {{enabled: false}}\n  targetAccounts: {{staging: [{}]}}\n  targetAccountSets: {{production: [{}]}}\n",
            t.name("dev"),
            t.name("staging"),
            t.name("prod")
        ),
        true,
    );
    let envs = t.api::<DataScienceEnvironment>();
    envs.create(&Default::default(), &env).await.unwrap();
    let ready = t.wait_condition_for(&envs, "fraud", "Ready", "True", None, Duration::from_secs(180)).await;
    let production: Vec<String> = ready
        .status
        .unwrap()
        .target_accounts
        .iter()
        .filter(|a| a.stage == "production")
        .map(|a| a.account.clone())
        .collect();
    assert_eq!(production, std::slice::from_ref(&first));
    let (projects, _) = crate::projects::create_project(&t, "churn", json!({})).await;
    let p = t.wait_condition_for(&projects, "churn", "Ready", "True", None, Duration::from_secs(90)).await;
    let group = p.status.unwrap().model_package_group_name.unwrap();
    let v1 = register(&t, &group).await;
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    let api = create(
        &t,
        "churn",
        json!({"stages": [
            {"name": "staging", "instanceType": "ml.m5.large"},
            {"name": "production", "instanceType": "ml.m5.large", "accountSets": [t.name("prod")]}]}),
    )
    .await;
    until(&api, "churn", "production serving v1", 120, |d| serving(d, "production", v1) && is_ready(d)).await;

    // A company adds a production account by moving it into the unit.
    let moved = std::time::Instant::now();
    admin
        .organizations
        .move_account()
        .account_id(t.account(4))
        .source_parent_id(&root)
        .destination_parent_id(prod)
        .send()
        .await
        .unwrap();
    members(&t, &[t.account(3), t.account(4)]).await;
    let d = until(&api, "churn", "production serving v1 in both accounts", 240, |d| {
        serving(d, "production", v1)
            && is_ready(d)
            && d.status.as_ref().is_some_and(|s| {
                s.stages.iter().any(|st| st.name == "production" && st.accounts.iter().any(|a| a.account == second))
            })
    })
    .await;
    assert!(is_ready(&d));
    println!("the account moved into the unit serves v1 {:?} after the move", moved.elapsed());
    let new = t.clients(&t.account(4)).await;
    let endpoints = new.sagemaker.list_endpoints().send().await.unwrap();
    assert_eq!(endpoints.endpoints().len(), 1, "the new account serves the model");
    let vpcs = new.ec2.describe_vpcs().send().await.unwrap();
    assert!(
        vpcs.vpcs().iter().any(|v| v.tags().iter().any(|t| t.key() == Some(sagekeeper_api::naming::OWNER_UID_TAG))),
        "its network"
    );

    admitted_by_path(&t, &group, &[t.account(3), t.account(4)]).await;

    // Moved out: the AwsAccount stays while the environment and the deployment still have
    // something there, and goes once they cleaned up.
    admin
        .organizations
        .move_account()
        .account_id(t.account(3))
        .source_parent_id(prod)
        .destination_parent_id(&root)
        .send()
        .await
        .unwrap();
    members(&t, &[t.account(4)]).await;
    eventually(Duration::from_secs(300), "the leaver cleaned up and its AwsAccount gone", || async {
        let gone = t.accounts().get_opt(&first).await.unwrap().is_none();
        let left =
            t.clients(&t.account(3)).await.sagemaker.list_endpoints().send().await.unwrap().endpoints().is_empty();
        (gone && left).then_some(())
    })
    .await;
    let env = envs.get("fraud").await.unwrap();
    assert!(env.status.unwrap().target_accounts.iter().all(|a| a.account != first), "the environment let go of it");
}

/// The unit's accounts (`members`) are admitted by the set's organization path and the names of
/// sagekeeper's roles, listed nowhere: in the models bucket's, the s3 key's, the registry's and
/// the dev S3 gateway endpoint's policies. Under the emulator's evaluation, the model execution
/// role of a member reads the models bucket through its account's S3 endpoint; a role of the
/// same name outside the unit, or of another name inside it, cannot.
async fn admitted_by_path(t: &TestEnv, group: &str, members: &[String]) {
    let sets: Api<AwsAccountSet> = Api::all(t.client.clone());
    let set = sets.get(&t.name("prod")).await.unwrap();
    let path = format!("{}*", set.status.unwrap().organization_path.expect("status.organizationPath"));
    let envs = t.api::<DataScienceEnvironment>();
    let env = eventually(Duration::from_secs(120), "production admitted by the unit's path", || async {
        let env = envs.get("fraud").await.ok()?;
        let status = env.status.as_ref()?;
        let production: Vec<_> = status.target_accounts.iter().filter(|a| a.stage == "production").collect();
        let by_path = production.iter().all(|a| a.organization_path.as_deref() == Some(path.as_str()));
        (production.len() == members.len() && by_path && is_ready_env(&env)).then_some(env)
    })
    .await;
    let status = env.status.unwrap();
    let dev = t.clients(&t.account(1)).await;
    let models = status.storage.unwrap().models_bucket.unwrap();
    let s3_key = status.encryption.unwrap().s3_key_arn.unwrap();
    let dev_gateway = status.network.unwrap().vpc_endpoint_ids["s3"].clone();
    let unit = |policy: &str, sid: &str| {
        let policy = sagekeeper_policy::parse(policy).unwrap();
        let statement = sagekeeper_policy::find_statement(&policy, sid).unwrap_or_else(|| panic!("{sid}: {policy}"));
        assert_eq!(statement["Condition"]["ForAnyValue:StringLike"]["aws:PrincipalOrgPaths"], json!([path]), "{sid}");
        for member in members {
            assert!(!policy.to_string().contains(member.as_str()), "{sid}: {member} is listed: {policy}");
        }
        assert!(policy.to_string().contains(&t.account(2)), "the staging account stays named: {policy}");
    };
    let bucket = dev.s3.get_bucket_policy().bucket(&models).send().await.unwrap();
    unit(bucket.policy().unwrap(), "AllowTargetModelReadersByOrgPath");
    let key = dev.kms.get_key_policy().key_id(&s3_key).policy_name("default").send().await.unwrap();
    unit(key.policy().unwrap(), "KeyUseByTargetModelRolesByOrgPath");
    let gateway = dev.ec2.describe_vpc_endpoints().vpc_endpoint_ids(&dev_gateway).send().await.unwrap();
    unit(gateway.vpc_endpoints()[0].policy_document().unwrap(), "EnvironmentBucketsByOrgPath");
    let registry = eventually(Duration::from_secs(120), "the registry shared by the unit's path", || async {
        let policy = dev.sagemaker.get_model_package_group_policy().model_package_group_name(group).send().await;
        let policy = policy.ok()?.resource_policy?;
        policy.contains("TargetAccountsUseVersionsModelRolesByOrgPath").then_some(policy)
    })
    .await;
    unit(&registry, "TargetAccountsUseVersionsModelRolesByOrgPath");
    unit(&registry, "TargetAccountsUseVersionsDeployersByOrgPath");

    // The member's own model execution role reads a model artifact through its S3 endpoint.
    use sagekeeper_aws::sdk::s3::primitives::ByteStream;
    dev.s3
        .put_object()
        .bucket(&models)
        .key("probe/model.tar.gz")
        .body(ByteStream::from_static(b"m"))
        .send()
        .await
        .unwrap();
    let member = &members[members.len() - 1];
    let target = status.target_accounts.iter().find(|a| a.account_id.as_deref() == Some(member.as_str())).unwrap();
    let role = target.model_execution_role_arn.clone().unwrap();
    let member_admin = t.clients(member).await;
    let vpc = target.vpc_id.clone().unwrap();
    let gateway = endpoint_of(&member_admin, &vpc, "s3").await;
    let read = |clients: &AccountClients| {
        let request = clients.s3.get_object().bucket(&models).key("probe/model.tar.gz");
        let gateway = gateway.clone();
        async move {
            let result = request.customize().mutate_request(through(Some(gateway))).send().await;
            result.map(|_| ()).map_err(|e| {
                use sagekeeper_aws::sdk::s3::error::ProvideErrorMetadata;
                e.code().unwrap_or("?").to_owned()
            })
        }
    };
    trust_the_admin(t, &member_admin, &role).await;
    let model_role = acting_as(t, &role).await;
    assert_eq!(read(&model_role).await, Ok(()), "the member's model role reads the models bucket");

    // Through the member's KMS interface endpoint, whose policy admits the unit by path on both
    // sides: the member's own endpoint key (principal and resource by path; the emulator's KMS
    // does not reach another account's keys, so the dev s3 key is not tried this way).
    let kms_endpoint = endpoint_of(&member_admin, &vpc, "kms").await;
    let member_key = target.endpoint_key_arn.clone().unwrap();
    let request = model_role.kms.describe_key().key_id(member_key.as_str());
    let described = request.customize().mutate_request(through(Some(kms_endpoint))).send().await;
    assert!(
        described.is_ok(),
        "the member's model role describes {member_key} through its KMS endpoint: {described:?}"
    );

    // The same role name in an account of the organization outside the unit (its management
    // account), and another name inside it: refused.
    let name = role.rsplit('/').next().unwrap();
    let outsider = impostor(t, &t.account(5), name).await;
    assert_eq!(read(&acting_as(t, &outsider).await).await, Err("AccessDenied".to_owned()), "a same-named role outside");
    let insider = impostor(t, member, "model-reader").await;
    assert_eq!(read(&acting_as(t, &insider).await).await, Err("AccessDenied".to_owned()), "another role of the member");
}

/// The id of the VPC endpoint of `service` (`s3`, `kms`, ...) in `vpc`.
async fn endpoint_of(clients: &AccountClients, vpc: &str, service: &str) -> String {
    let found = clients
        .ec2
        .describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(Filter::builder().name("service-name").values(format!("com.amazonaws.us-east-1.{service}")).build())
        .send()
        .await
        .unwrap();
    found.vpc_endpoints()[0].vpc_endpoint_id().unwrap().to_owned()
}

/// Whether an environment is Ready for its current generation.
fn is_ready_env(env: &DataScienceEnvironment) -> bool {
    let list = env.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    sagekeeper_api::conditions::is_ready(list, env.metadata.generation)
}

/// A role `name` in `account` that its account-admin identity may assume, allowed to read any
/// object and decrypt with any key by its own policy. Returns its ARN.
async fn impostor(t: &TestEnv, account: &str, name: &str) -> String {
    let iam = t.clients(account).await.iam;
    let admin = t.emulator.admin_credentials(account).arn;
    let trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": admin}, "Action": "sts:AssumeRole"}]});
    let role = iam.create_role().role_name(name).assume_role_policy_document(trust.to_string()).send().await.unwrap();
    let reads = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "kms:Decrypt"], "Resource": "*"}]});
    iam.put_role_policy().role_name(name).policy_name("reads").policy_document(reads.to_string()).send().await.unwrap();
    role.role.unwrap().arn
}
