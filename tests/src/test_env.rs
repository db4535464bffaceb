//! One test's world: a namespace labelled with the test's id, AWS account ids nobody else uses,
//! a Kubernetes client, the emulator, and an in-process controller that reconciles only the
//! objects carrying the test's label.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};
use sagekeeper_api::conditions;
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment};
use sagekeeper_aws::Sessions;
use sagekeeper_aws::sdk::config::{BehaviorVersion, Region, SdkConfig};
use sagekeeper_aws::sdk::credential_types::Credentials;
use sagekeeper_controller::{Health, Metrics, Settings};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::emulator::{AccountCredentials, Emulator};

use crate::stack::{Stack, stack};

/// The label that ties objects to one test (and so to that test's controller).
pub const TEST_LABEL: &str = "sagekeeper.io/test";

/// The IAM user of the controller's own credentials in each test's home account.
pub const CONTROLLER_USER: &str = "sagekeeper-controller";

/// The Kubernetes user the controller acts as: the ServiceAccount `deploy/kubernetes/` binds.
pub const CONTROLLER_SERVICE_ACCOUNT: &str = "system:serviceaccount:sagekeeper-system:sagekeeper";

static NEXT_TEST: AtomicU32 = AtomicU32::new(0);

/// One test's namespace, accounts, clients and emulator.
pub struct TestEnv {
    /// The test's id: namespace name, label value, and prefix of cluster-scoped names.
    pub id: String,
    /// The test's namespace.
    pub namespace: String,
    /// An admin client.
    pub client: Client,
    /// The emulator's control API.
    pub emulator: Emulator,
    /// The account of the controller's own credentials.
    pub home_account: String,
    /// The controller's own credentials.
    pub home: AccountCredentials,
    index: u32,
    /// Actions the controller is expected to be refused in this test (see [`Self::expect_denied`]).
    expected_denials: std::sync::Mutex<Vec<String>>,
}

impl TestEnv {
    /// A fresh world for the test called `name`.
    pub async fn new(name: &str) -> Self {
        let stack = tokio::task::spawn_blocking(stack).await.expect("start the stack");
        let index = NEXT_TEST.fetch_add(1, Ordering::Relaxed) + 1;
        let slug: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        let id = format!("t{index}-{}", slug.chars().take(40).collect::<String>().trim_end_matches('-'));
        let client = admin_client(stack).await;
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(id.clone()),
                labels: Some([(TEST_LABEL.to_owned(), id.clone())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");
        let emulator = Emulator::new(&stack.aws_endpoint);
        let home_account = account_id(index, 0);
        let home = emulator.user_credentials(&home_account, CONTROLLER_USER);
        let t = Self {
            namespace: id.clone(),
            id,
            client,
            emulator,
            home_account,
            home,
            index,
            expected_denials: Default::default(),
        };
        t.evaluate_iam();
        t.install_controller_identity().await;
        t
    }

    /// Declares that the controller's identities may be refused `action` (`service:Action`, `*`
    /// allowed) in this test: every other refusal fails the test when it ends (see the `Drop`
    /// below).
    pub fn expect_denied(&self, action: &str) {
        self.expected_denials.lock().unwrap().push(action.to_owned());
    }

    /// The refusals (or, in audit mode, would-be refusals) of the controller's identities (its
    /// `sagekeeper` session of each deployer role, the `sagekeeper-controller` user) in this test's
    /// accounts that the test did not declare with [`Self::expect_denied`].
    pub fn unexpected_denials(&self) -> Vec<String> {
        let expected = self.expected_denials.lock().unwrap().clone();
        let controller = |caller: &str| {
            caller.ends_with(":assumed-role/sagekeeper-deployer/sagekeeper")
                || caller.ends_with(&format!(":user/{CONTROLLER_USER}"))
        };
        (0..10)
            .flat_map(|n| self.emulator.calls(&self.account(n)))
            .filter(|c| matches!(c.decision.as_deref(), Some("Deny" | "WouldDeny")) && controller(&c.caller))
            .filter(|c| {
                let action = c.action.as_deref().unwrap_or_default();
                !expected.iter().any(|pattern| sagekeeper_policy::action_matches(pattern, action))
            })
            .map(|c| format!("{} {}: {}", c.caller, c.operation, c.message.unwrap_or_default()))
            .collect()
    }

    /// The controller's own identity may assume the deployer roles and nothing else, as
    /// `deploy/aws/README.md` tells platform teams.
    async fn install_controller_identity(&self) {
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "AssumeDeployerRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
            "Resource": "arn:aws:iam::*:role/sagekeeper-deployer",
        }]});
        let iam = sagekeeper_aws::sdk::iam::Client::new(&self.admin_config(&self.home_account).await);
        iam.put_user_policy()
            .user_name(CONTROLLER_USER)
            .policy_name("sagekeeper-controller")
            .policy_document(policy.to_string())
            .send()
            .await
            .expect("put the controller's policy");
    }

    /// IAM evaluation (`enforce`) for every account of this test, from its start: each call of
    /// the controller, and of any identity a test acts as, is judged by the policies it carries
    /// (the account-admin identity tests arrange scenarios with is exempt).
    /// `SAGEKEEPER_TEST_IAM_MODE=audit` records what would be refused instead (to find every
    /// missing permission in one run while changing policies).
    fn evaluate_iam(&self) {
        let accounts: Vec<String> = (0..10).map(|n| self.account(n)).collect();
        let mode = std::env::var("SAGEKEEPER_TEST_IAM_MODE").unwrap_or_else(|_| "enforce".into());
        self.emulator.iam_evaluation(&mode, &accounts);
    }

    /// An AWS config acting as the account-admin identity of `account` (exempt from evaluation).
    pub async fn admin_config(&self, account: &str) -> SdkConfig {
        self.aws_config(&self.emulator.admin_credentials(account)).await
    }

    /// The stack of this run.
    pub fn stack(&self) -> &'static Stack {
        stack()
    }

    /// The test's `n`th AWS account id (0 is the controller's own account).
    pub fn account(&self, n: u32) -> String {
        account_id(self.index, n)
    }

    /// A cluster-wide unique name for a cluster-scoped object of this test.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }

    /// Adds the test label (and, for namespaced kinds, the test namespace) to an object.
    pub fn own<K: Resource>(&self, mut obj: K, namespaced: bool) -> K {
        let meta = obj.meta_mut();
        meta.labels.get_or_insert_with(Default::default).insert(TEST_LABEL.into(), self.id.clone());
        if namespaced {
            meta.namespace = Some(self.namespace.clone());
        }
        obj
    }

    /// Parses a manifest into a typed object owned by this test. `{ns}`, `{id}` and `{account:N}`
    /// in the text are replaced by the namespace, the test id and the Nth account id.
    pub fn manifest<K: Resource + DeserializeOwned>(&self, yaml: &str, namespaced: bool) -> K {
        let obj: K = serde_yaml::from_str(&self.expand(yaml)).expect("valid manifest");
        self.own(obj, namespaced)
    }

    /// Replaces `{ns}`, `{id}` and `{account:N}` (N = 0..9) in `text`.
    pub fn expand(&self, text: &str) -> String {
        let mut out = text.replace("{ns}", &self.namespace).replace("{id}", &self.id);
        for n in 0..10 {
            out = out.replace(&format!("{{account:{n}}}"), &self.account(n));
        }
        out
    }

    /// The AwsAccount API.
    pub fn accounts(&self) -> Api<AwsAccount> {
        Api::all(self.client.clone())
    }

    /// The API of a namespaced kind in the test namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// An AWS config signed with `credentials`, pointed at the emulator.
    pub async fn aws_config(&self, credentials: &AccountCredentials) -> SdkConfig {
        let creds = Credentials::new(
            &credentials.access_key_id,
            &credentials.secret_access_key,
            None,
            None,
            "sagekeeper-tests",
        );
        sagekeeper_aws::sdk::config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.emulator.url())
            .credentials_provider(creds)
            .load()
            .await
    }

    /// Installs sagekeeper in `account` as a platform team would before adding the AwsAccount:
    /// the permissions boundary policy (`deploy/aws/sagekeeper-boundary.json`, once per account)
    /// and role `name` trusting the controller's own account (with `sts:ExternalId` when given)
    /// with exactly the managed policies of `deploy/aws/deployer/` as its permissions.
    pub async fn create_role(&self, account: &str, name: &str, external_id: Option<&str>) -> String {
        let condition = external_id.map(|e| serde_json::json!({"StringEquals": {"sts:ExternalId": e}}));
        let mut statement = serde_json::json!({
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{}:root", self.home_account)},
            "Action": "sts:AssumeRole",
        });
        if let Some(condition) = condition {
            statement["Condition"] = condition;
        }
        let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [statement]});
        self.install_boundary(account).await;
        let iam = sagekeeper_aws::sdk::iam::Client::new(&self.admin_config(account).await);
        let out = iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .expect("create role");
        for policy in self.install_deployer_policies(account).await {
            iam.attach_role_policy().role_name(name).policy_arn(policy).send().await.expect("attach a deployer policy");
        }
        out.role.expect("role").arn
    }

    /// Lets role `role` of `account` read the organization as an AwsAccountSet's organization
    /// account does (`deploy/aws/organization-reader.json`, inline).
    pub async fn attach_organization_reader(&self, account: &str, role: &str) {
        let iam = sagekeeper_aws::sdk::iam::Client::new(&self.admin_config(account).await);
        let policy = crate::permissions::organization_reader(account);
        let put = iam.put_role_policy().role_name(role).policy_name("organization-reader").policy_document(policy);
        put.send().await.expect("attach the organization reader policy");
    }

    /// Gives the controller's own identity (user `sagekeeper-controller` of the home account) the
    /// deployer policies there: what an AwsAccount without `roleArn` acts with.
    pub async fn grant_deployer_policies_to_controller(&self) {
        self.install_boundary(&self.home_account).await;
        let iam = sagekeeper_aws::sdk::iam::Client::new(&self.admin_config(&self.home_account).await);
        for policy in self.install_deployer_policies(&self.home_account).await {
            iam.attach_user_policy()
                .user_name(CONTROLLER_USER)
                .policy_arn(policy)
                .send()
                .await
                .expect("attach a deployer policy");
        }
    }

    /// Creates the deployer's managed policies in `account` unless it has them; returns their ARNs.
    async fn install_deployer_policies(&self, account: &str) -> Vec<String> {
        let iam = sagekeeper_aws::sdk::iam::Client::new(&self.admin_config(account).await);
        let mut arns = Vec::new();
        for (name, document) in crate::permissions::deployer_policies(account) {
            let created = iam.create_policy().policy_name(&name).policy_document(document).send().await;
            if let Err(e) = created {
                let code =
                    e.as_service_error().and_then(|e| sagekeeper_aws::sdk::iam::error::ProvideErrorMetadata::code(e));
                assert_eq!(code, Some("EntityAlreadyExists"), "create the deployer policy {name}: {e:?}");
            }
            arns.push(format!("arn:aws:iam::{account}:policy/{name}"));
        }
        arns
    }

    /// Creates the `sagekeeper-boundary` managed policy in `account` unless it has it.
    pub async fn install_boundary(&self, account: &str) {
        let iam = sagekeeper_aws::sdk::iam::Client::new(&self.admin_config(account).await);
        let created = iam
            .create_policy()
            .policy_name(sagekeeper_api::account::DEFAULT_BOUNDARY_NAME)
            .policy_document(crate::permissions::BOUNDARY)
            .description("The ceiling of every role sagekeeper creates")
            .send()
            .await;
        if let Err(e) = created {
            let code =
                e.as_service_error().and_then(|e| sagekeeper_aws::sdk::iam::error::ProvideErrorMetadata::code(e));
            assert_eq!(code, Some("EntityAlreadyExists"), "create the boundary policy: {e:?}");
        }
    }

    /// Starts a controller in this process that reconciles only this test's objects, with the
    /// controller's own credentials in the test's home account.
    pub async fn controller(&self) -> Controller {
        self.controller_with(|_| {}, None).await
    }

    /// [`Self::controller`] with changed settings and, when given, a different number of SDK
    /// attempts per AWS call than the product's default (1 turns SDK retries off).
    pub async fn controller_with(&self, adjust: impl FnOnce(&mut Settings), attempts: Option<u32>) -> Controller {
        let metrics = Metrics::new().expect("metrics");
        let attempts = attempts.unwrap_or(sagekeeper_aws::sessions::DEFAULT_MAX_ATTEMPTS);
        let retry = sagekeeper_aws::sdk::config::retry::RetryConfig::standard().with_max_attempts(attempts);
        let config = self.aws_config(&self.home).await.into_builder().retry_config(retry).build();
        let sessions = Sessions::new(config, metrics.aws.clone());
        // Waiting objects are not polled soon: a test that sees an object follow a change
        // proves the watch relation, not a requeue timer.
        let mut settings = Settings {
            label_selector: Some(format!("{TEST_LABEL}={}", self.id)),
            pending_interval: Duration::from_secs(300),
            // Nor are endpoints listed: the test of the endpoint watch sets its own interval.
            endpoint_interval: Duration::from_secs(3600),
            // Every drift check reads everything: a test that edits a setting behind the
            // controller's back sees the next check repair it; the tiers have their own test.
            full_check_every: 1,
            // Nor does a pass take another pass's listing of an account's roles: a test that
            // edits a role behind its back sees the next pass read it; sharing has its own test.
            account_read_age: Duration::ZERO,
            instance: self.id.clone(),
            ..Settings::default()
        };
        adjust(&mut settings);
        let token = CancellationToken::new();
        let task = tokio::spawn(sagekeeper_controller::run(
            self.controller_client().await,
            sessions,
            metrics.clone(),
            settings,
            None,
            Arc::new(Health::default()),
            token.clone(),
        ));
        Controller { token, task: Some(task), metrics }
    }

    /// Waits until `get` returns an object whose conditions have `type_` with `status` (and
    /// `reason`, when given) for its current generation; returns the object.
    pub async fn wait_condition<K: HasConditions>(
        &self,
        api: &Api<K>,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> K {
        self.wait_condition_for(api, name, type_, status, reason, Duration::from_secs(60)).await
    }

    /// [`Self::wait_condition`] with its own timeout; the last conditions seen go in the panic.
    pub async fn wait_condition_for<K: HasConditions>(
        &self,
        api: &Api<K>,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
        timeout: Duration,
    ) -> K {
        let start = std::time::Instant::now();
        let mut last = Vec::new();
        loop {
            if let Some(obj) = api.get_opt(name).await.expect("get") {
                last = obj.conditions().to_vec();
                let matches = conditions::find(obj.conditions(), type_).is_some_and(|c| {
                    c.status == status
                        && reason.is_none_or(|r| c.reason == r)
                        && c.observed_generation == obj.meta().generation
                });
                if matches {
                    return obj;
                }
            }
            if start.elapsed() > timeout {
                let seen: Vec<String> =
                    last.iter().map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message)).collect();
                panic!(
                    "timed out after {timeout:?} waiting for {} {name}: {type_}={status} {}; last conditions:\n  {}{}",
                    K::kind(&()),
                    reason.unwrap_or(""),
                    seen.join("\n  "),
                    self.denials_note()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the object is gone; on timeout, says what its conditions last were.
    pub async fn wait_gone<K: HasConditions>(&self, api: &Api<K>, name: &str) {
        let start = std::time::Instant::now();
        while let Some(obj) = api.get_opt(name).await.expect("get") {
            if start.elapsed() > Duration::from_secs(120) {
                let seen: Vec<String> = obj
                    .conditions()
                    .iter()
                    .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                    .collect();
                panic!(
                    "timed out after 120s waiting for {name} to be deleted; last conditions:\n  {}{}",
                    seen.join("\n  "),
                    self.denials_note()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl TestEnv {
    /// What the controller was refused, for a timeout's message (a refusal often explains it).
    fn denials_note(&self) -> String {
        let denied = self.unexpected_denials();
        if denied.is_empty() {
            String::new()
        } else {
            format!("\nthe controller was refused:\n  {}", denied.join("\n  "))
        }
    }

    /// A Kubernetes client acting as the controller's ServiceAccount (the admin impersonates it),
    /// so the RBAC of `deploy/kubernetes/` decides what the controller may do.
    pub async fn controller_client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.stack().controller_kubeconfig).expect("read kubeconfig");
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig");
        assert_eq!(config.auth_info.impersonate.as_deref(), Some(CONTROLLER_SERVICE_ACCOUNT));
        Client::try_from(config).expect("client")
    }
}

/// A test that ends without panicking fails if the controller was refused anything it did not
/// declare: every cluster test runs under IAM evaluation with the shipped deployer policy, so a
/// missing permission shows up here even when the object still became Ready.
impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let denied = self.unexpected_denials();
        assert!(
            denied.is_empty(),
            "the controller was refused what the shipped policies should allow:\n  {}",
            denied.join("\n  ")
        );
    }
}

fn account_id(index: u32, n: u32) -> String {
    format!("9{index:07}{n:04}")
}

async fn admin_client(stack: &Stack) -> Client {
    let kubeconfig = Kubeconfig::read_from(&stack.kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// A controller running inside the test process; stopped when dropped.
pub struct Controller {
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), sagekeeper_controller::Error>>>,
    /// The controller's metrics.
    pub metrics: Metrics,
}

impl Controller {
    /// Stops the controller and waits until its in-flight reconciles finished.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("controller task").expect("controller stopped cleanly");
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// The kinds whose status carries conditions.
pub trait HasConditions: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug {
    /// The object's conditions (empty before the first status write).
    fn conditions(&self) -> &[Condition];
}

macro_rules! has_conditions {
    ($($kind:ty),*) => {$(
        impl HasConditions for $kind {
            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
            }
        }
    )*};
}
has_conditions!(AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment);

/// AWS clients for one emulated account, for reading what the controller made.
pub struct AccountClients {
    /// EC2.
    pub ec2: sagekeeper_aws::sdk::ec2::Client,
    /// IAM.
    pub iam: sagekeeper_aws::sdk::iam::Client,
    /// KMS.
    pub kms: sagekeeper_aws::sdk::kms::Client,
    /// S3.
    pub s3: sagekeeper_aws::sdk::s3::Client,
    /// SageMaker.
    pub sagemaker: sagekeeper_aws::sdk::sagemaker::Client,
    /// CloudWatch Logs.
    pub logs: sagekeeper_aws::sdk::logs::Client,
    /// AWS Organizations.
    pub organizations: sagekeeper_aws::sdk::organizations::Client,
    /// CloudWatch (alarms).
    pub cloudwatch: sagekeeper_aws::sdk::cloudwatch::Client,
    /// Application Auto Scaling.
    pub autoscaling: sagekeeper_aws::sdk::autoscaling::Client,
}

impl TestEnv {
    /// Clients acting as the account-admin identity of `account` (not the controller): what a
    /// test reads and arranges with, exempt from IAM evaluation.
    pub async fn clients(&self, account: &str) -> AccountClients {
        Self::clients_for(&self.admin_config(account).await)
    }

    /// Clients acting as sagekeeper does in `account`: the `sagekeeper-deployer` role that
    /// [`Self::create_role`] made there, assumed from the controller's own account. Policies
    /// exempt this principal from their endpoint denies, as they exempt the controller.
    pub async fn clients_as_controller(&self, account: &str) -> AccountClients {
        use sagekeeper_aws::sdk::config::sts::AssumeRoleProvider;
        let home = self.aws_config(&self.home).await;
        let role = format!("arn:aws:iam::{account}:role/sagekeeper-deployer");
        let provider = AssumeRoleProvider::builder(role).session_name("tests").configure(&home).build().await;
        Self::clients_for(
            &home
                .into_builder()
                .credentials_provider(sagekeeper_aws::sdk::credential_types::provider::SharedCredentialsProvider::new(
                    provider,
                ))
                .build(),
        )
    }

    /// An AWS config acting as a session of `role_arn`, assumed with `credentials` (which the
    /// role's trust policy must admit).
    pub async fn assume(&self, credentials: &AccountCredentials, role_arn: &str) -> SdkConfig {
        use sagekeeper_aws::sdk::config::sts::AssumeRoleProvider;
        use sagekeeper_aws::sdk::credential_types::provider::SharedCredentialsProvider;
        let base = self.aws_config(credentials).await;
        let provider = AssumeRoleProvider::builder(role_arn).session_name("tests").configure(&base).build().await;
        base.into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build()
    }

    /// Clients for a config (credentials, endpoint and region).
    pub fn clients_for(config: &SdkConfig) -> AccountClients {
        use sagekeeper_aws::sdk;
        AccountClients {
            ec2: sdk::ec2::Client::new(config),
            iam: sdk::iam::Client::new(config),
            kms: sdk::kms::Client::new(config),
            s3: sdk::s3::Client::new(config),
            sagemaker: sdk::sagemaker::Client::new(config),
            logs: sdk::logs::Client::new(config),
            organizations: sdk::organizations::Client::new(config),
            cloudwatch: sdk::cloudwatch::Client::new(config),
            autoscaling: sdk::autoscaling::Client::new(config),
        }
    }

    /// Makes the controller look at an object again without changing its spec (an annotation
    /// change is a watch event, not a new generation).
    pub async fn poke<K>(&self, api: &Api<K>, name: &str)
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let value =
            format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        let patch = serde_json::json!({"metadata": {"annotations": {"sagekeeper.io/test-poke": value}}});
        api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.expect("poke");
    }

    /// Waits until an event with `reason` was recorded for `name` (events are published right
    /// after the status write a test sees, so they can trail it); panics after 15 s.
    pub async fn wait_event(&self, name: &str, reason: &str) {
        crate::eventually(Duration::from_secs(15), &format!("a {reason} event for {name}"), || async {
            self.event_reasons(name).await.iter().any(|r| r == reason).then_some(())
        })
        .await;
    }

    /// Event reasons recorded for an object of this test's namespace.
    pub async fn event_reasons(&self, name: &str) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = events.list(&Default::default()).await.expect("list events");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.reason)
            .collect()
    }
}
