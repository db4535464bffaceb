//! Attacks, under the emulator's IAM evaluation (`enforce` for every account of the test, so the
//! controller converges with exactly the deployer policies of `deploy/aws/deployer/` and the boundary):
//! the tenant next door naming another tenant's model registry, and a stolen deployer session
//! minting a role stronger than the permissions boundary. Each test acts as the attacker: it
//! assumes the role and tries the call.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject};
use sagekeeper_aws::sdk::iam::error::ProvideErrorMetadata;
use sagekeeper_tests::test_env::{AccountClients, TEST_LABEL};
use sagekeeper_tests::{TestEnv, eventually};
use serde_json::json;

/// The AWS error code of a refused call, or None when it was allowed.
fn code<T, E: ProvideErrorMetadata>(result: &Result<T, E>) -> Option<String> {
    result.as_ref().err().map(|e| e.code().unwrap_or("(no code)").to_owned())
}

fn message<T, E: ProvideErrorMetadata>(result: &Result<T, E>) -> String {
    result.as_ref().err().and_then(|e| e.message()).unwrap_or_default().to_owned()
}

/// Asserts that IAM refused `result` (AccessDenied): the deployer or role could not `what`.
fn denied<T, E: ProvideErrorMetadata>(result: &Result<T, E>, what: &str) {
    assert_eq!(code(result).as_deref(), Some("AccessDenied"), "it could {what}");
}

/// Clients acting as a session of `role_arn`, assumed by the account-admin identity of its account.
pub(crate) async fn acting_as(t: &TestEnv, role_arn: &str) -> AccountClients {
    use sagekeeper_aws::sdk::config::sts::AssumeRoleProvider;
    use sagekeeper_aws::sdk::credential_types::provider::SharedCredentialsProvider;
    let account = role_arn.split(':').nth(4).unwrap();
    let admin = t.admin_config(account).await;
    let provider = AssumeRoleProvider::builder(role_arn).session_name("attacker").configure(&admin).build().await;
    TestEnv::clients_for(&admin.into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build())
}

/// Lets the account-admin identity of the role's account assume it (besides who already may).
pub(crate) async fn trust_the_admin(t: &TestEnv, clients: &AccountClients, role: &str) {
    let account = role.split(':').nth(4).unwrap();
    let admin_user = t.emulator.admin_credentials(account).arn;
    let name = role.rsplit('/').next().unwrap();
    let trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": admin_user}, "Action": "sts:AssumeRole"},
    ]});
    clients.iam.update_assume_role_policy().role_name(name).policy_document(trust.to_string()).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_next_door_cannot_take_over_a_registry_it_names() {
    let t = TestEnv::new("registry-takeover").await;
    let dev = t.account(1);
    let role = t.create_role(&dev, "sagekeeper-deployer", None).await;
    // Team B lives in its own namespace and shares team A's dev account.
    let team_b = format!("{}-b", t.namespace);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(team_b.clone()),
            labels: Some([(TEST_LABEL.to_owned(), t.id.clone())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(t.client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    let account: AwsAccount = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {{id}}-dev}}\nspec:\n  accountId: '{dev}'\n  roleArn: {role}\n  namespaceSelector:\n    matchExpressions: [{{key: kubernetes.io/metadata.name, operator: In, values: ['{{ns}}', '{team_b}']}}]\n"
        ),
        false,
    );
    t.accounts().create(&PostParams::default(), &account).await.unwrap();

    // B's people act as B's TeamAdmin through their own IAM user in the dev account.
    let admin = t.clients(&dev).await;
    let person = |name: &'static str| {
        let iam = admin.iam.clone();
        async move { iam.create_user().user_name(name).send().await.unwrap().user.unwrap().arn }
    };
    let (a_admin, b_admin) = (person("team-a-admin").await, person("team-b-admin").await);
    let environment = |name: &str, namespace: &str, principals: &str| -> DataScienceEnvironment {
        let mut env: DataScienceEnvironment = t.manifest(
            &format!(
                "apiVersion: sagekeeper.io/v1alpha1\nkind: DataScienceEnvironment\nmetadata: {{name: {name}}}\nspec:\n  account: {{id}}-dev\n  region: us-east-1\n  network: {{vpcEndpoints: []}}\n  studio:\n    userProfiles: [{{name: lead, persona: TeamAdmin}}]\n  identity: {{personaPrincipals: {{TeamAdmin: [{principals}]}}}}\n"
            ),
            true,
        );
        env.metadata.namespace = Some(namespace.to_owned());
        env
    };
    let project = |name: &str, namespace: &str, group: Option<&str>| -> MLOpsProject {
        let group = group.map(|g| format!("  modelPackageGroupName: {g}\n")).unwrap_or_default();
        let mut project: MLOpsProject = t.manifest(
            &format!(
                "apiVersion: sagekeeper.io/v1alpha1\nkind: MLOpsProject\nmetadata: {{name: {name}}}\nspec:\n  environment: fraud\n{group}  pipeline: {{runOnChange: false}}\n"
            ),
            true,
        );
        project.metadata.namespace = Some(namespace.to_owned());
        project
    };
    let envs_a: Api<DataScienceEnvironment> = t.api();
    let envs_b: Api<DataScienceEnvironment> = Api::namespaced(t.client.clone(), &team_b);
    let projects_a: Api<MLOpsProject> = t.api();
    let projects_b: Api<MLOpsProject> = Api::namespaced(t.client.clone(), &team_b);
    let _controller = t.controller().await;
    envs_a.create(&PostParams::default(), &environment("fraud", &t.namespace, &a_admin)).await.unwrap();
    envs_b.create(&PostParams::default(), &environment("fraud", &team_b, &b_admin)).await.unwrap();
    let long = Duration::from_secs(180);
    t.wait_condition_for(&envs_a, "fraud", "Ready", "True", None, long).await;
    let env_b = t.wait_condition_for(&envs_b, "fraud", "Ready", "True", None, long).await;

    // Team A's project makes its group; team B names it, and owns a group of its own.
    projects_a.create(&PostParams::default(), &project("churn", &t.namespace, None)).await.unwrap();
    let churn = t.wait_condition_for(&projects_a, "churn", "Ready", "True", None, long).await;
    let a_group = churn.status.unwrap().model_package_group_name.unwrap();
    projects_b.create(&PostParams::default(), &project("takeover", &team_b, Some(&a_group))).await.unwrap();
    projects_b.create(&PostParams::default(), &project("own", &team_b, None)).await.unwrap();
    let stalled = t.wait_condition_for(&projects_b, "takeover", "Stalled", "True", Some("NameConflict"), long).await;
    assert!(
        stalled.status.unwrap().model_package_group_arn.is_none(),
        "a group it does not own is not pinned as owned"
    );
    let own = t.wait_condition_for(&projects_b, "own", "Ready", "True", None, long).await;
    let b_group = own.status.unwrap().model_package_group_name.unwrap();
    // Environments grant their roles the groups carrying their uid as registry tag: A's group
    // carries A's, B's group B's; naming A's group made B's project tag nothing.
    let registry_tag = |group: String| {
        let (admin, dev) = (&admin, &dev);
        async move {
            let arn = format!("arn:aws:sagemaker:us-east-1:{dev}:model-package-group/{}", group.to_lowercase());
            let tags = admin.sagemaker.list_tags().resource_arn(arn).send().await.unwrap();
            tags.tags()
                .iter()
                .find(|t| t.key() == Some("sagekeeper.io/environment"))
                .and_then(|t| t.value().map(str::to_owned))
        }
    };
    let env_a = envs_a.get("fraud").await.unwrap();
    assert_eq!(registry_tag(a_group.clone()).await, env_a.metadata.uid, "A's group carries A's registry tag");
    assert_eq!(registry_tag(b_group.clone()).await, env_b.metadata.uid, "B's group carries B's registry tag");
    let b_tag = || {
        sagekeeper_aws::sdk::sagemaker::types::Tag::builder()
            .key("sagekeeper.io/environment")
            .value(env_b.metadata.uid.clone().unwrap())
            .build()
    };

    // A version waits for approval in A's registry.
    let spec = || {
        sagekeeper_aws::sdk::sagemaker::types::InferenceSpecification::builder()
            .containers(
                sagekeeper_aws::sdk::sagemaker::types::ModelPackageContainerDefinition::builder()
                    .image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1")
                    .build(),
            )
            .supported_content_types("text/csv")
            .supported_response_mime_types("text/csv")
            .build()
    };
    let a_tag = sagekeeper_aws::sdk::sagemaker::types::Tag::builder()
        .key("sagekeeper.io/environment")
        .value(env_a.metadata.uid.clone().unwrap())
        .build();
    let a_version = admin
        .sagemaker
        .create_model_package()
        .model_package_group_name(&a_group)
        .model_approval_status(sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus::PendingManualApproval)
        .inference_specification(spec())
        .tags(a_tag)
        .send()
        .await
        .unwrap()
        .model_package_arn
        .unwrap();

    // The attack, as B's TeamAdmin: approve A's version.
    let identity = env_b.status.unwrap().identity.unwrap();
    let b_team_admin = identity.persona_role_arns["TeamAdmin"].clone();
    let keys = t.emulator.user_credentials(&dev, "team-b-admin");
    let b_person = t.aws_config(&keys).await;
    let as_b_admin = {
        use sagekeeper_aws::sdk::config::sts::AssumeRoleProvider;
        use sagekeeper_aws::sdk::credential_types::provider::SharedCredentialsProvider;
        let provider =
            AssumeRoleProvider::builder(&b_team_admin).session_name("b-lead").configure(&b_person).build().await;
        TestEnv::clients_for(
            &b_person.clone().into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build(),
        )
    };
    let approve = as_b_admin
        .sagemaker
        .update_model_package()
        .model_package_arn(&a_version)
        .model_approval_status(sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus::Approved)
        .send()
        .await;
    assert_eq!(code(&approve).as_deref(), Some("AccessDeniedException"), "B's TeamAdmin approved A's version");
    assert!(message(&approve).contains("sagemaker:UpdateModelPackage"), "{}", message(&approve));

    // The attack, as B's pipeline role: register a version in A's group (tagged as B's, the
    // only tag its policy lets it set).
    let b_pipeline = identity.pipeline_role_arn.unwrap();
    trust_the_admin(&t, &admin, &b_pipeline).await;
    let as_b_pipeline = acting_as(&t, &b_pipeline).await;
    let register = as_b_pipeline
        .sagemaker
        .create_model_package()
        .model_package_group_name(&a_group)
        .model_approval_status(sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus::Approved)
        .inference_specification(spec())
        .tags(b_tag())
        .send()
        .await;
    assert_eq!(code(&register).as_deref(), Some("AccessDeniedException"), "B's pipeline role registered in A's group");
    // The same roles work in B's own registry: the refusals are about whose group it is.
    as_b_pipeline
        .sagemaker
        .create_model_package()
        .model_package_group_name(&b_group)
        .model_approval_status(sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus::PendingManualApproval)
        .inference_specification(spec())
        .tags(b_tag())
        .send()
        .await
        .expect("B's pipeline role registers in B's own group");
    let b_version = format!("arn:aws:sagemaker:us-east-1:{dev}:model-package/{}/1", b_group.to_lowercase());
    as_b_admin
        .sagemaker
        .update_model_package()
        .model_package_arn(&b_version)
        .model_approval_status(sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus::Approved)
        .send()
        .await
        .expect("B's TeamAdmin approves in B's own group");

    // A's registry holds only A's version, still waiting for A's approval.
    let versions = admin.sagemaker.list_model_packages().model_package_group_name(&a_group).send().await.unwrap();
    let summaries = versions.model_package_summary_list();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(summaries[0].model_approval_status().map(|s| s.as_str()), Some("PendingManualApproval"));
    t.poke(&projects_a, "churn").await;
    eventually(Duration::from_secs(30), "A's project to read its registry", || {
        let projects_a = projects_a.clone();
        async move {
            let status = projects_a.get("churn").await.ok()?.status?;
            let latest = status.latest_model_package?;
            assert!(latest.version == 1 && status.latest_approved_model_package.is_none(), "{latest:?}");
            Some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_deployer_session_cannot_mint_a_role_beyond_the_boundary() {
    let t = TestEnv::new("role-minting").await;
    let account = t.account(1);
    t.create_role(&account, "sagekeeper-deployer", None).await;
    let admin = t.clients(&account).await;
    let admin_user = t.emulator.admin_credentials(&account).arn;
    let boundary = format!("arn:aws:iam::{account}:policy/sagekeeper-boundary");
    let everything =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let wide_open = admin
        .iam
        .create_policy()
        .policy_name("wide-open")
        .policy_document(everything.to_string())
        .send()
        .await
        .unwrap()
        .policy
        .unwrap()
        .arn
        .unwrap();
    let trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": admin_user}, "Action": "sts:AssumeRole"},
    ]})
    .to_string();
    // A role someone else made, without the boundary.
    admin.iam.create_role().role_name("sk-legacy").assume_role_policy_document(&trust).send().await.unwrap();

    let deployer = t.clients_as_controller(&account).await;
    let iam = &deployer.iam;
    let free = iam.create_role().role_name("sk-free").assume_role_policy_document(&trust).send().await;
    denied(&free, "create a role without the boundary");
    let other = iam
        .create_role()
        .role_name("sk-other")
        .assume_role_policy_document(&trust)
        .permissions_boundary(&wide_open)
        .send()
        .await;
    denied(&other, "create a role with another boundary");
    let widened = iam
        .create_policy_version()
        .policy_arn(&boundary)
        .policy_document(everything.to_string())
        .set_as_default(true)
        .send()
        .await;
    denied(&widened, "rewrite the boundary");
    let trusted = iam.update_assume_role_policy().role_name("sk-legacy").policy_document(&trust).send().await;
    denied(&trusted, "take over the trust of a role without the boundary");
    // It reads the boundary (the AwsAccount checks it exists), and no other policy.
    iam.get_policy().policy_arn(&boundary).send().await.expect("the deployer reads the boundary");
    denied(&iam.get_policy().policy_arn(&wide_open).send().await, "read another managed policy");

    // What it may do: a role with the boundary, given everything, trusting the attacker.
    iam.create_role()
        .role_name("sk-x")
        .assume_role_policy_document(&trust)
        .permissions_boundary(&boundary)
        .send()
        .await
        .expect("the deployer creates a role with the boundary");
    iam.put_role_policy()
        .role_name("sk-x")
        .policy_name("everything")
        .policy_document(everything.to_string())
        .send()
        .await
        .expect("the deployer puts a policy on a role with the boundary");
    denied(&iam.delete_role_permissions_boundary().role_name("sk-x").send().await, "remove the boundary");
    let replaced = iam.put_role_permissions_boundary().role_name("sk-x").permissions_boundary(&wide_open).send().await;
    denied(&replaced, "replace the boundary");
    let attached = iam.attach_role_policy().role_name("sk-x").policy_arn(&wide_open).send().await;
    denied(&attached, "attach a managed policy");

    // The minted role, given `*:*`, still cannot do what the boundary denies or leaves out.
    let role = format!("arn:aws:iam::{account}:role/sk-x");
    let minted = acting_as(&t, &role).await;
    let user = minted.iam.create_user().user_name("backdoor").send().await;
    denied(&user, "create a user through the minted role");
    assert!(message(&user).ends_with("with an explicit deny in a permissions boundary"), "{}", message(&user));
    let escalate = minted
        .iam
        .put_role_policy()
        .role_name("sk-x")
        .policy_name("more")
        .policy_document(everything.to_string())
        .send()
        .await;
    denied(&escalate, "change its own policies");
    let vpc = minted.ec2.create_vpc().cidr_block("10.9.0.0/16").send().await;
    assert_eq!(code(&vpc).as_deref(), Some("UnauthorizedOperation"), "the minted role created a VPC");
    assert!(
        message(&vpc).contains("because no permissions boundary allows the ec2:CreateVpc action"),
        "{}",
        message(&vpc)
    );
    minted.sagemaker.list_models().send().await.expect("within the boundary the role works");
}

/// A dev-only environment under evaluation, Ready; returns its status.
pub(crate) async fn converged_environment(
    t: &TestEnv,
    spec_extra: &str,
) -> sagekeeper_api::DataScienceEnvironmentStatus {
    converged_environment_with(t, "{vpcEndpoints: []}", spec_extra).await
}

/// As [`converged_environment`], with `network` as the spec's network.
async fn converged_environment_with(
    t: &TestEnv,
    network: &str,
    spec_extra: &str,
) -> sagekeeper_api::DataScienceEnvironmentStatus {
    let dev = t.account(1);
    let role = t.create_role(&dev, "sagekeeper-deployer", None).await;
    let account: AwsAccount = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {{id}}-dev}}\nspec:\n  accountId: '{dev}'\n  roleArn: {role}\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: '{{ns}}'}}}}\n"
        ),
        false,
    );
    t.accounts().create(&PostParams::default(), &account).await.unwrap();
    let env: DataScienceEnvironment = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: DataScienceEnvironment\nmetadata: {{name: fraud}}\nspec:\n  account: {{id}}-dev\n  region: us-east-1\n  network: {network}\n{spec_extra}"
        ),
        true,
    );
    t.api::<DataScienceEnvironment>().create(&PostParams::default(), &env).await.unwrap();
    let envs = t.api::<DataScienceEnvironment>();
    let ready = t.wait_condition_for(&envs, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    ready.status.unwrap()
}

/// A converged environment in account 1 whose `persona` role IAM user `user` of that account
/// may assume (created first: a trust policy may name only a principal that exists); returns the
/// user's ARN and the status.
async fn environment_with_a_person(
    t: &TestEnv,
    admin: &AccountClients,
    user: &str,
    persona: &str,
) -> (String, sagekeeper_api::DataScienceEnvironmentStatus) {
    let arn = admin.iam.create_user().user_name(user).send().await.unwrap().user.unwrap().arn;
    let identity = format!("  identity: {{personaPrincipals: {{{persona}: ['{arn}']}}}}\n");
    (arn, converged_environment(t, &identity).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_found_without_the_boundary_gets_it_before_any_other_change() {
    let t = TestEnv::new("boundary-first").await;
    let _controller = t.controller().await;
    let status = converged_environment(&t, "").await;
    let dev = t.account(1);
    let role_arn = status.identity.unwrap().execution_role_arn.unwrap();
    let name = role_arn.rsplit('/').next().unwrap().to_owned();
    // As made by an older version, or changed by hand: no boundary, another policy and trust.
    let admin = t.clients(&dev).await;
    admin.iam.delete_role_permissions_boundary().role_name(&name).send().await.unwrap();
    let other = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
    admin
        .iam
        .put_role_policy()
        .role_name(&name)
        .policy_name("sagekeeper")
        .policy_document(other.to_string())
        .send()
        .await
        .unwrap();
    let trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
    ]});
    admin.iam.update_assume_role_policy().role_name(&name).policy_document(trust.to_string()).send().await.unwrap();
    t.emulator.clear_calls(&dev);
    t.poke(&t.api::<DataScienceEnvironment>(), "fraud").await;
    let boundary = format!("arn:aws:iam::{dev}:policy/sagekeeper-boundary");
    eventually(Duration::from_secs(60), "the role to be repaired", || {
        let iam = admin.iam.clone();
        let (name, boundary) = (name.clone(), boundary.clone());
        async move {
            let role = iam.get_role().role_name(&name).send().await.ok()?.role?;
            let bounded = role.permissions_boundary()?.permissions_boundary_arn() == Some(boundary.as_str());
            let trust = sagekeeper_policy::parse(role.assume_role_policy_document().unwrap_or_default()).ok()?;
            let trust = trust.to_string().contains("sagemaker.amazonaws.com");
            let policy = iam.get_role_policy().role_name(&name).policy_name("sagekeeper").send().await.ok()?;
            let policy = sagekeeper_policy::parse(policy.policy_document()).ok()?.to_string();
            (bounded && trust && !policy.contains("\"s3:*\"")).then_some(())
        }
    })
    .await;
    // The deployer may change trust and policies only of a role with the boundary: the repair
    // put the boundary back first, and nothing it did was refused.
    let writes = t.emulator.controller_writes(&dev);
    let first = |op: &str| writes.iter().position(|w| w == op).unwrap_or_else(|| panic!("no {op}: {writes:?}"));
    assert!(first("PutRolePermissionsBoundary") < first("UpdateAssumeRolePolicy"), "{writes:?}");
    assert!(first("PutRolePermissionsBoundary") < first("PutRolePolicy"), "{writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persona_principals_trust_only_their_own_account_never_its_root() {
    let t = TestEnv::new("persona-principals").await;
    let _controller = t.controller().await;
    let dev = t.account(1);
    let admin = t.clients(&dev).await;
    let (lead, status) = environment_with_a_person(&t, &admin, "lead", "TeamAdmin").await;
    let team_admin = status.identity.unwrap().persona_role_arns["TeamAdmin"].clone();
    let role_name = team_admin.rsplit('/').next().unwrap().to_owned();
    let role = admin.iam.get_role().role_name(&role_name).send().await.unwrap();
    let trust = role.role.unwrap().assume_role_policy_document.unwrap();
    let trust = sagekeeper_policy::parse(&trust).unwrap().to_string();
    assert!(trust.contains(&lead) && !trust.contains(":root"), "{trust}");
    // Its Studio statements name the environment's own domain (made in the pass before), not
    // every domain of the account.
    let domain = status.studio.and_then(|s| s.domain_id).expect("status.studio.domainId");
    eventually(Duration::from_secs(30), "the persona policy to name the domain", || {
        let (iam, role_name, domain) = (admin.iam.clone(), role_name.clone(), domain.clone());
        async move {
            let policy = iam.get_role_policy().role_name(role_name).policy_name("sagekeeper").send().await.ok()?;
            let policy = sagekeeper_policy::parse(policy.policy_document()).ok()?.to_string();
            (policy.contains(&format!("user-profile/{domain}/*")) && !policy.contains("user-profile/*/*")).then_some(())
        }
    })
    .await;
    // The person assumes the TeamAdmin role; another user of the account cannot.
    let keys = t.emulator.user_credentials(&dev, "lead");
    let as_lead = t.aws_config(&keys).await;
    let sts = sagekeeper_aws::sdk::sts::Client::new(&as_lead);
    sts.assume_role()
        .role_arn(&team_admin)
        .role_session_name("lead")
        .send()
        .await
        .expect("the named person assumes TeamAdmin");
    admin.iam.create_user().user_name("someone").send().await.unwrap();
    let someone = t.aws_config(&t.emulator.user_credentials(&dev, "someone")).await;
    let refused = sagekeeper_aws::sdk::sts::Client::new(&someone)
        .assume_role()
        .role_arn(&team_admin)
        .role_session_name("x")
        .send()
        .await;
    assert_eq!(code(&refused).as_deref(), Some("AccessDenied"), "another user of the account assumed TeamAdmin");

    // A principal of another account stalls the environment, naming the field.
    let outside = format!("arn:aws:iam::{}:role/admins", t.account(2));
    let patch = json!({"spec": {"identity": {"personaPrincipals": {"TeamAdmin": [lead, outside]}}}});
    let api = t.api::<DataScienceEnvironment>();
    api.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let stalled = t.wait_condition(&api, "fraud", "Stalled", "True", Some("InvalidConfiguration")).await;
    let ready =
        sagekeeper_api::conditions::find(stalled.status.as_ref().unwrap().conditions.as_slice(), "Ready").unwrap();
    assert!(
        ready.message.starts_with("spec.identity.personaPrincipals.TeamAdmin:") && ready.message.contains(&outside),
        "{}",
        ready.message
    );
}

/// A training job as a data scientist's notebook would start it: in `subnets` with `groups`,
/// volumes under `volume_key`, inter-container traffic encrypted when `encrypted`.
async fn training_job(
    sm: &sagekeeper_aws::sdk::sagemaker::Client,
    name: &str,
    role: &str,
    (subnets, groups): (&[String], &[String]),
    volume_key: Option<&str>,
    encrypted: bool,
    output: &str,
) -> Result<(), String> {
    use sagekeeper_aws::sdk::sagemaker::types::{
        AlgorithmSpecification, OutputDataConfig, ResourceConfig, StoppingCondition, TrainingInputMode,
        TrainingInstanceType, VpcConfig,
    };
    let created = sm
        .create_training_job()
        .training_job_name(name)
        .role_arn(role)
        .algorithm_specification(
            AlgorithmSpecification::builder()
                .training_image("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1")
                .training_input_mode(TrainingInputMode::File)
                .build(),
        )
        .output_data_config(OutputDataConfig::builder().s3_output_path(output).build())
        .resource_config(
            ResourceConfig::builder()
                .instance_type(TrainingInstanceType::MlM5Large)
                .instance_count(1)
                .volume_size_in_gb(10)
                .set_volume_kms_key_id(volume_key.map(str::to_owned))
                .build(),
        )
        .stopping_condition(StoppingCondition::builder().max_runtime_in_seconds(3600).build())
        .vpc_config(
            VpcConfig::builder()
                .set_subnets(Some(subnets.to_vec()))
                .set_security_group_ids(Some(groups.to_vec()))
                .build(),
        )
        .enable_inter_container_traffic_encryption(encrypted)
        .send()
        .await;
    outcome(created)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_models_run_only_in_the_environments_subnets_group_key_and_images() {
    let t = TestEnv::new("job-guardrails").await;
    let _controller = t.controller().await;
    let dev = t.account(1);
    let admin = t.clients(&dev).await;
    let (_, status) = environment_with_a_person(&t, &admin, "scientist", "DataScientist").await;
    let network = status.network.unwrap();
    let subnets = network.private_subnet_ids.clone();
    let groups = vec![network.security_group_ids["workloads"].clone()];
    let ebs = status.encryption.as_ref().unwrap().ebs_key_arn.clone().unwrap();
    let identity = status.identity.unwrap();
    let execution = identity.execution_role_arn.unwrap();
    let model_role = identity.model_execution_role_arn.unwrap();
    let output = format!("s3://{}/jobs/", status.storage.unwrap().models_bucket.unwrap());

    // Another subnet, security group and key of the same account, as the tenant next door has.
    let vpc = admin.ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
    let other_subnet = admin
        .ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.9.0.0/24")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    let other_group = admin
        .ec2
        .create_security_group()
        .vpc_id(&vpc)
        .group_name("other")
        .description("other")
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    let other_key = admin.kms.create_key().send().await.unwrap().key_metadata.unwrap().arn.unwrap();

    // As the data scientist (their own user, through the DataScientist persona role), and as
    // the execution role a notebook's jobs run as.
    let persona =
        t.assume(&t.emulator.user_credentials(&dev, "scientist"), &identity.persona_role_arns["DataScientist"]).await;
    // The test acts as the execution role through a trust the controller would repair: paused,
    // it leaves the role alone while the test runs.
    let pause = json!({"metadata": {"annotations": {"sagekeeper.io/paused": "true"}}});
    let envs = t.api::<DataScienceEnvironment>();
    envs.patch("fraud", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&pause)).await.unwrap();
    t.wait_condition(&envs, "fraud", "Reconciling", "False", Some("Paused")).await;
    trust_the_admin(&t, &admin, &execution).await;
    let as_execution = acting_as(&t, &execution).await;
    let principals = [
        ("DataScientist", sagekeeper_aws::sdk::sagemaker::Client::new(&persona)),
        ("execution role", as_execution.sagemaker),
    ];
    let job_prefix = sagekeeper_api::naming::EnvironmentNames::new(&t.namespace, "fraud").resource_prefix;
    for (n, (who, sm)) in principals.iter().enumerate() {
        let name = |case: &str| format!("{job_prefix}{case}-{n}");
        let ours = (subnets.as_slice(), groups.as_slice());
        let refused = |result: Result<(), String>, what: &str| {
            let message = result.expect_err(&format!("{who} started a training job {what}"));
            assert!(message.starts_with("AccessDeniedException: "), "{who}, {what}: {message}");
            assert!(
                message.contains("explicit deny"),
                "{who}, {what}: refused by a deny, not for lack of an allow: {message}"
            );
        };
        let foreign_subnet = [subnets[0].clone(), other_subnet.clone()];
        let result =
            training_job(sm, &name("subnet"), &execution, (&foreign_subnet, &groups), Some(&ebs), true, &output).await;
        refused(result, "in another subnet");
        let foreign_group = [other_group.clone()];
        let result =
            training_job(sm, &name("group"), &execution, (&subnets, &foreign_group), Some(&ebs), true, &output).await;
        refused(result, "with another security group");
        refused(
            training_job(sm, &name("key"), &execution, ours, Some(&other_key), true, &output).await,
            "with another key",
        );
        refused(training_job(sm, &name("nokey"), &execution, ours, None, true, &output).await, "without a volume key");
        refused(
            training_job(sm, &name("clear"), &execution, ours, Some(&ebs), false, &output).await,
            "with clear traffic",
        );
        training_job(sm, &name("ok"), &execution, ours, Some(&ebs), true, &output)
            .await
            .unwrap_or_else(|e| panic!("{who}: the environment's own subnets, group and key are refused: {e}"));

        // Models run the images their execution role may pull: the region's SageMaker registries
        // and the environment's own account, never anyone else's.
        let foreign = "999999999999.dkr.ecr.us-east-1.amazonaws.com/miner:latest";
        let refusal = model(sm, &name("foreign-image"), &model_role, foreign, ours)
            .await
            .expect_err(&format!("{who} created a model from another account's image"));
        assert!(
            refusal
                .starts_with("ValidationException: Access denied for repository: miner in registry ID: 999999999999."),
            "{who}: {refusal}"
        );
        let sagemaker_image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1";
        let own_image = format!("{dev}.dkr.ecr.us-east-1.amazonaws.com/fraud-scoring:3");
        for (case, image) in [("builtin", sagemaker_image), ("own", own_image.as_str())] {
            model(sm, &name(case), &model_role, image, ours)
                .await
                .unwrap_or_else(|e| panic!("{who}: a model from {image} is refused: {e}"));
        }
    }
}

/// A model of `image` run as `role` in the given subnets and groups.
async fn model(
    sm: &sagekeeper_aws::sdk::sagemaker::Client,
    name: &str,
    role: &str,
    image: &str,
    (subnets, groups): (&[String], &[String]),
) -> Result<(), String> {
    use sagekeeper_aws::sdk::sagemaker::types::{ContainerDefinition, VpcConfig};
    let created = sm
        .create_model()
        .model_name(name)
        .execution_role_arn(role)
        .primary_container(ContainerDefinition::builder().image(image).build())
        .vpc_config(
            VpcConfig::builder()
                .set_subnets(Some(subnets.to_vec()))
                .set_security_group_ids(Some(groups.to_vec()))
                .build(),
        )
        .send()
        .await;
    outcome(created)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_reaches_status_with_its_code_resource_and_remedy_never_an_encoded_message() {
    let t = TestEnv::new("refusal-message").await;
    t.expect_denied("ec2:*");
    let _controller = t.controller().await;
    let dev = t.account(1);
    crate::references::ready_account(&t, "dev", 1, &t.namespace).await;
    // The platform team forgot the deployer's network policy in this account.
    let admin = t.clients(&dev).await;
    let network = format!("arn:aws:iam::{dev}:policy/sagekeeper-deployer-network");
    admin.iam.detach_role_policy().role_name("sagekeeper-deployer").policy_arn(network).send().await.unwrap();
    let env = crate::references::environment(&t, "fraud", "dev", &[]);
    let envs = t.api::<DataScienceEnvironment>();
    envs.create(&PostParams::default(), &env).await.unwrap();
    let stalled = t.wait_condition(&envs, "fraud", "Stalled", "True", Some("AccessDenied")).await;
    let ready =
        sagekeeper_api::conditions::find(stalled.status.as_ref().unwrap().conditions.as_slice(), "Ready").unwrap();
    let message = &ready.message;
    // The AWS code first, then who was refused what on which resource, then the remedy.
    assert!(message.starts_with("UnauthorizedOperation: "), "{message}");
    assert!(message.contains(&format!("arn:aws:sts::{dev}:assumed-role/sagekeeper-deployer/sagekeeper")), "{message}");
    assert!(message.contains("is not authorized to perform: ec2:"), "{message}");
    assert!(message.contains("deploy/aws/deployer/"), "the remedy names the shipped policies: {message}");
    // What EC2 appends (kilobytes of an encoded authorization message) stays out of status and events.
    assert!(!message.contains("Encoded authorization failure message"), "{message}");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(t.client.clone(), &t.namespace);
    for event in events.list(&Default::default()).await.unwrap().items {
        let note = event.note.unwrap_or_default();
        assert!(!note.contains("Encoded authorization failure message"), "{note}");
    }
}

/// A user of `account` allowed `actions` on everything (a platform tool, or the tenant next
/// door's admin): clients with its own credentials.
pub(crate) async fn broad_user(t: &TestEnv, account: &str, name: &str, actions: &[&str]) -> AccountClients {
    let admin = t.clients(account).await;
    admin.iam.create_user().user_name(name).send().await.unwrap();
    let policy =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]});
    admin
        .iam
        .put_user_policy()
        .user_name(name)
        .policy_name("broad")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    TestEnv::clients_for(&t.aws_config(&t.emulator.user_credentials(account, name)).await)
}

/// Marks a request as passing through VPC endpoint `vpce`, when given (the emulator's test header).
pub(crate) fn through(
    vpce: Option<String>,
) -> impl Fn(&mut sagekeeper_aws::sdk::sagemaker::config::http::HttpRequest) + Send + Sync {
    move |req| {
        if let Some(v) = &vpce {
            req.headers_mut().insert("x-emulator-source-vpce", v.clone());
        }
    }
}

/// `Ok` when allowed, else the refusal's code and message.
fn outcome<T, E: ProvideErrorMetadata>(result: Result<T, E>) -> Result<(), String> {
    result.map(|_| ()).map_err(|e| format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environments_endpoints_admit_only_its_accounts_on_either_side() {
    use sagekeeper_aws::sdk::sagemaker::types::{InferenceSpecification, ModelPackageContainerDefinition};
    let t = TestEnv::new("endpoint-policies").await;
    let _controller = t.controller().await;
    let (dev, elsewhere) = (t.account(1), t.account(7));
    let status = converged_environment_with(&t, "{vpcEndpoints: [sagemaker.api, kms]}", "").await;
    let endpoints = status.network.unwrap().vpc_endpoint_ids;
    let (sagemaker_endpoint, kms_endpoint) = (endpoints["sagemaker.api"].clone(), endpoints["kms"].clone());
    let own_key = status.encryption.unwrap().ebs_key_arn.unwrap();
    let actions = ["sagemaker:ListDomains", "sagemaker:DescribeModelPackage", "kms:DescribeKey"];
    let insider = broad_user(&t, &dev, "platform-tool", &actions).await;
    let outsider = broad_user(&t, &elsewhere, "next-door", &actions).await;
    // A model version of another account's registry, shared with the dev account: reachable from
    // anywhere else.
    let foreign = t.clients(&elsewhere).await.sagemaker;
    foreign.create_model_package_group().model_package_group_name("shared").send().await.unwrap();
    let spec = InferenceSpecification::builder()
        .containers(
            ModelPackageContainerDefinition::builder()
                .image("683313688378.dkr.ecr.us-east-1.amazonaws.com/x:1")
                .build(),
        )
        .supported_content_types("text/csv")
        .supported_response_mime_types("text/csv")
        .build();
    let package = foreign.create_model_package().model_package_group_name("shared").inference_specification(spec);
    let package = package.send().await.unwrap().model_package_arn.unwrap();
    let share = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Dev", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{dev}:root")}, "Action": "sagemaker:DescribeModelPackage",
        "Resource": format!("arn:aws:sagemaker:us-east-1:{elsewhere}:model-package/shared/*")}]});
    let share =
        foreign.put_model_package_group_policy().model_package_group_name("shared").resource_policy(share.to_string());
    share.send().await.unwrap();

    let list_domains =
        |c: &AccountClients, vpce: Option<String>| c.sagemaker.list_domains().customize().mutate_request(through(vpce));
    let describe_package = |c: &AccountClients, vpce: Option<String>| {
        c.sagemaker.describe_model_package().model_package_name(&package).customize().mutate_request(through(vpce))
    };
    let describe_key = |c: &AccountClients, key: &str, vpce: Option<String>| {
        c.kms.describe_key().key_id(key).customize().mutate_request(through(vpce))
    };
    let no_endpoint_policy = |result: Result<(), String>, what: &str| {
        let refusal = result.expect_err(&format!("{what} went through"));
        assert!(refusal.starts_with("AccessDeniedException: "), "{what}: {refusal}");
        assert!(
            refusal.contains("because no VPC endpoint policy allows"),
            "{what}: refused by the endpoint: {refusal}"
        );
    };

    // The environment's own account, on its own resources, passes.
    assert_eq!(outcome(list_domains(&insider, Some(sagemaker_endpoint.clone())).send().await), Ok(()));
    assert_eq!(outcome(describe_key(&insider, &own_key, Some(kms_endpoint.clone())).send().await), Ok(()));

    // Credentials of another account, allowed by their own policy, are stopped at the endpoint.
    assert_eq!(outcome(list_domains(&outsider, None).send().await), Ok(()), "the outsider may list its own domains");
    no_endpoint_policy(
        outcome(list_domains(&outsider, Some(sagemaker_endpoint.clone())).send().await),
        "another account's credentials through the sagemaker.api endpoint",
    );

    // The environment's own credentials cannot reach another account's resources through it.
    assert_eq!(outcome(describe_package(&insider, None).send().await), Ok(()), "the version is shared");
    no_endpoint_policy(
        outcome(describe_package(&insider, Some(sagemaker_endpoint.clone())).send().await),
        "the dev account's credentials on another account's model version through the sagemaker.api endpoint",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployer_cannot_change_what_it_does_not_own_in_a_shared_account() {
    use sagekeeper_aws::sdk::sagemaker::types::{
        AuthMode, ContainerDefinition, ProductionVariant, ProductionVariantInstanceType, UserSettings,
    };
    let t = TestEnv::new("deployer-owner-scope").await;
    let dev = t.account(1);
    t.create_role(&dev, "sagekeeper-deployer", None).await;
    let admin = t.clients(&dev).await;
    // Another team's resources in the same account, made without sagekeeper.
    let vpc = admin.ec2.create_vpc().cidr_block("10.8.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
    let subnet = admin.ec2.create_subnet().vpc_id(&vpc).cidr_block("10.8.0.0/24").send().await.unwrap();
    let subnet = subnet.subnet.unwrap().subnet_id.unwrap();
    let trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let role = admin.iam.create_role().role_name("team-b-sagemaker").assume_role_policy_document(trust.to_string());
    let role = role.send().await.unwrap().role.unwrap().arn;
    let pull = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}]});
    let pull =
        admin.iam.put_role_policy().role_name("team-b-sagemaker").policy_name("pull").policy_document(pull.to_string());
    pull.send().await.unwrap();
    let sm = &admin.sagemaker;
    let domain = sm
        .create_domain()
        .domain_name("team-b")
        .auth_mode(AuthMode::Iam)
        .vpc_id(&vpc)
        .subnet_ids(&subnet)
        .default_user_settings(UserSettings::builder().execution_role(&role).build())
        .send()
        .await
        .unwrap()
        .domain_arn
        .unwrap();
    let domain = domain.rsplit('/').next().unwrap().to_owned();
    let image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1";
    let container = ContainerDefinition::builder().image(image).build();
    sm.create_model().model_name("team-b").execution_role_arn(&role).primary_container(container).send().await.unwrap();
    let variant = ProductionVariant::builder()
        .variant_name("main")
        .model_name("team-b")
        .instance_type(ProductionVariantInstanceType::MlM5Large)
        .initial_instance_count(1)
        .build();
    sm.create_endpoint_config().endpoint_config_name("team-b").production_variants(variant).send().await.unwrap();
    let endpoint = sm.create_endpoint().endpoint_name("team-b").endpoint_config_name("team-b").send().await.unwrap();
    let endpoint = endpoint.endpoint_arn.unwrap();
    let group = sm.create_model_package_group().model_package_group_name("team-b").send().await.unwrap();
    let group = group.model_package_group_arn.unwrap();
    let group_policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "TeamB", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{dev}:root")}, "Action": "sagemaker:DescribeModelPackage",
        "Resource": format!("arn:aws:sagemaker:us-east-1:{dev}:model-package/team-b/*")}]});
    sm.put_model_package_group_policy()
        .model_package_group_name("team-b")
        .resource_policy(group_policy.to_string())
        .send()
        .await
        .unwrap();
    // Named as sagekeeper's buckets were before they carried a fixed prefix.
    let bucket = format!("team-b-{dev}-us-east-1-data");
    admin.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let key = admin.kms.create_key().send().await.unwrap().key_metadata.unwrap().arn.unwrap();
    // A log group under sagekeeper's prefix that is not sagekeeper's, and a flow log into it.
    let log_group = "/sagekeeper/vpc-flow-logs/team-b";
    admin.logs.create_log_group().log_group_name(log_group).send().await.unwrap();
    // Tagged as sagekeeper's when `tagged` (the deployer may create flow logs only so).
    let flow_log = |clients: &AccountClients, role: String, tagged: bool| {
        use sagekeeper_aws::sdk::ec2::types::{FlowLogsResourceType, LogDestinationType, TrafficType};
        let tags = sagekeeper_aws::sdk::ec2::types::TagSpecification::builder()
            .resource_type(sagekeeper_aws::sdk::ec2::types::ResourceType::VpcFlowLog)
            .tags(
                sagekeeper_aws::sdk::ec2::types::Tag::builder()
                    .key(sagekeeper_api::naming::OWNER_UID_TAG)
                    .value("x")
                    .build(),
            )
            .build();
        clients
            .ec2
            .create_flow_logs()
            .resource_type(FlowLogsResourceType::Vpc)
            .resource_ids(&vpc)
            .traffic_type(TrafficType::All)
            .log_destination_type(LogDestinationType::CloudWatchLogs)
            .log_group_name(log_group)
            .deliver_logs_permission_arn(role)
            .set_tag_specifications(tagged.then(|| vec![tags]))
    };
    let foreign_flow_log = flow_log(&admin, role.clone(), false).send().await.unwrap().flow_log_ids()[0].clone();

    let deployer = t.clients_as_controller(&dev).await;
    // Every attempt is made and every one that went through is reported.
    let mut could = Vec::new();
    let mut refused = |result: Result<(), String>, what: &str| {
        let denied = |e: &String| e.starts_with("AccessDenied") || e.starts_with("UnauthorizedOperation");
        if !result.as_ref().is_err_and(denied) {
            could.push(format!("{what} ({result:?})"));
        }
    };
    let sm = &deployer.sagemaker;
    refused(outcome(sm.delete_endpoint().endpoint_name("team-b").send().await), "delete a foreign endpoint");
    refused(
        outcome(sm.update_endpoint().endpoint_name("team-b").endpoint_config_name("team-b").send().await),
        "update a foreign endpoint",
    );
    refused(outcome(sm.delete_model().model_name("team-b").send().await), "delete a foreign model");
    refused(outcome(sm.delete_domain().domain_id(&domain).send().await), "delete a foreign domain");
    refused(
        outcome(
            sm.update_domain().domain_id(&domain).default_user_settings(UserSettings::builder().build()).send().await,
        ),
        "update a foreign domain",
    );
    let open = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Anyone", "Effect": "Allow",
        "Principal": {"AWS": "*"}, "Action": "sagemaker:CreateModel", "Resource": "*"}]});
    refused(
        outcome(
            sm.put_model_package_group_policy()
                .model_package_group_name("team-b")
                .resource_policy(open.to_string())
                .send()
                .await,
        ),
        "replace a foreign group's policy",
    );
    refused(
        outcome(sm.delete_model_package_group_policy().model_package_group_name("team-b").send().await),
        "delete a foreign group's policy",
    );
    // Nor can it mark them as its own: tagging what exists needs the tag there already.
    let ours = sagekeeper_aws::sdk::sagemaker::types::Tag::builder()
        .key(sagekeeper_api::naming::OWNER_UID_TAG)
        .value("stolen")
        .build();
    for arn in [&endpoint, &group] {
        refused(outcome(sm.add_tags().resource_arn(arn).tags(ours.clone()).send().await), &format!("claim {arn}"));
    }
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")}]});
    refused(
        outcome(deployer.s3.put_bucket_policy().bucket(&bucket).policy(policy.to_string()).send().await),
        "open a bucket",
    );
    refused(outcome(deployer.s3.delete_bucket().bucket(&bucket).send().await), "delete a foreign bucket");
    // KMS cannot tell tagging a key at creation from tagging it later, so the deployer may tag a
    // key as sagekeeper's; it buys nothing: what it may do to a key, the key's own policy grants.
    let tag = sagekeeper_aws::sdk::kms::types::Tag::builder()
        .tag_key(sagekeeper_api::naming::OWNER_UID_TAG)
        .tag_value("stolen")
        .build()
        .unwrap();
    deployer.kms.tag_resource().key_id(&key).tags(tag).send().await.expect("tagging is not ownership");
    let open = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]});
    refused(
        outcome(
            deployer.kms.put_key_policy().key_id(&key).policy_name("default").policy(open.to_string()).send().await,
        ),
        "replace a foreign key's policy",
    );
    refused(
        outcome(deployer.kms.schedule_key_deletion().key_id(&key).pending_window_in_days(7).send().await),
        "delete a foreign key",
    );
    refused(outcome(deployer.kms.disable_key_rotation().key_id(&key).send().await), "change a foreign key");
    let logs = &deployer.logs;
    refused(outcome(logs.delete_log_group().log_group_name(log_group).send().await), "delete a foreign log group");
    refused(
        outcome(logs.put_retention_policy().log_group_name(log_group).retention_in_days(1).send().await),
        "shorten a foreign log group's retention",
    );
    refused(
        outcome(logs.associate_kms_key().log_group_name(log_group).kms_key_id(&key).send().await),
        "re-key a foreign log group",
    );
    // A delivery role name sagekeeper may pass: only the VPC, not sagekeeper's, is refused.
    let delivery = format!("arn:aws:iam::{dev}:role/sk-team-b-flow-logs");
    refused(outcome(flow_log(&deployer, delivery, true).send().await), "log a foreign VPC");
    refused(
        outcome(deployer.ec2.delete_flow_logs().flow_log_ids(&foreign_flow_log).send().await),
        "stop a foreign flow log",
    );
    assert!(could.is_empty(), "the deployer could:\n{}", could.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_deployer_may_list_the_accounts_roles_and_their_policies() {
    let t = TestEnv::new("role-listing").await;
    let controller = t.controller().await;
    let status = converged_environment(&t, "").await;
    let dev = t.account(1);
    // The controller read the account's roles in one listing, as its deployer session.
    let listings: Vec<_> =
        t.emulator.calls(&dev).into_iter().filter(|c| c.operation == "GetAccountAuthorizationDetails").collect();
    assert!(!listings.is_empty(), "no listing of the account's roles");
    assert!(listings.iter().all(|c| c.status == 200 && c.caller.ends_with("/sagekeeper")), "{listings:?}");
    // Stopped, so the trust changes below stay; every role it made is refused the listing.
    drop(controller);
    let admin = t.clients(&dev).await;
    let identity = status.identity.unwrap();
    let roles =
        identity.persona_role_arns.into_iter().chain([("execution".to_owned(), identity.execution_role_arn.unwrap())]);
    for (what, arn) in roles {
        trust_the_admin(&t, &admin, &arn).await;
        let listed = acting_as(&t, &arn).await.iam.get_account_authorization_details().send().await;
        denied(&listed, &format!("list the account's IAM details as the {what} role"));
    }
}

/// A deployer whose policy predates the role listing (refused `iam:GetAccountAuthorizationDetails`)
/// reads each role on its own: drift in a role is still repaired and the environment stays Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployer_refused_the_role_listing_reads_each_role_and_still_repairs_drift() {
    let t = TestEnv::new("no-role-listing").await;
    let controller = t.controller().await;
    let status = converged_environment(&t, "").await;
    drop(controller);
    let dev = t.account(1);
    let admin = t.clients(&dev).await;
    let refuse = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
        "Action": "iam:GetAccountAuthorizationDetails", "Resource": "*"}]});
    t.expect_denied("iam:GetAccountAuthorizationDetails");
    admin
        .iam
        .put_role_policy()
        .role_name("sagekeeper-deployer")
        .policy_name("older-deployer")
        .policy_document(refuse.to_string())
        .send()
        .await
        .unwrap();
    // Behind its back: the execution role's policy replaced.
    let name = status.identity.unwrap().execution_role_arn.unwrap().rsplit('/').next().unwrap().to_owned();
    let opened =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
    let put = admin.iam.put_role_policy().role_name(&name).policy_name("sagekeeper");
    put.policy_document(opened.to_string()).send().await.unwrap();
    t.emulator.clear_calls(&dev);

    let _controller = t.controller().await;
    eventually(Duration::from_secs(120), "the execution role's policy put back", || async {
        let policy = admin.iam.get_role_policy().role_name(&name).policy_name("sagekeeper").send().await.ok()?;
        let policy = sagekeeper_policy::parse(policy.policy_document()).ok()?;
        (!sagekeeper_policy::equivalent(&policy, &opened)).then_some(())
    })
    .await;
    let envs = t.api::<DataScienceEnvironment>();
    t.wait_condition_for(&envs, "fraud", "Ready", "True", None, Duration::from_secs(60)).await;
    let calls = t.emulator.calls(&dev);
    let listings: Vec<_> = calls.iter().filter(|c| c.operation == "GetAccountAuthorizationDetails").collect();
    assert!(!listings.is_empty(), "the controller should still try the listing");
    assert!(listings.iter().all(|c| c.decision.as_deref() == Some("Deny")), "the listing is refused: {listings:?}");
    let reads = calls.iter().filter(|c| c.operation == "GetRole" && c.status == 200).count();
    assert!(reads >= 2, "each role read on its own: {reads} GetRole");
}
