//! `DataScienceEnvironment`: one team's secure environment in its dev account, plus what its
//! staging and production accounts need to serve models.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::DeletionPolicy;
use crate::schema::{
    AVAILABILITY_ZONE, ENDPOINT_SERVICE, IPV4_CIDR, KMS_KEY_ARN, MAX_NAME, OBJECT_NAME, PRINCIPAL_ARN, REGION,
    SAGEMAKER_NAME, SUBNET_ID, VPC_ID, bound_map,
};

/// What the environment should look like: its account, region, network, keys, buckets, Studio
/// and target accounts.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sagekeeper.io",
    version = "v1alpha1",
    kind = "DataScienceEnvironment",
    plural = "datascienceenvironments",
    shortname = "dse",
    category = "sagekeeper",
    namespaced,
    status = "DataScienceEnvironmentStatus",
    doc = "One team's secure SageMaker environment in its dev account, plus what its staging and production accounts need.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Account", type_ = "string", json_path = ".spec.account"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "VPC", type_ = "string", json_path = ".status.network.vpcId"),
    printcolumn(name = "Domain", type_ = "string", json_path = ".status.studio.domainId"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new(
    "!has(self.network.availabilityZones) || self.network.availabilityZones.all(z, z.startsWith(self.region))"
).message("spec.network.availabilityZones must all be zones of spec.region").field_path(".network.availabilityZones"))]
#[x_kube(validation = Rule::new(
    "!has(self.encryption.existingKeys) || ((!has(self.encryption.existingKeys.ebs) || self.encryption.existingKeys.ebs.contains(':kms:' + self.region + ':')) && (!has(self.encryption.existingKeys.studio) || self.encryption.existingKeys.studio.contains(':kms:' + self.region + ':')) && (!has(self.encryption.existingKeys.s3) || self.encryption.existingKeys.s3.contains(':kms:' + self.region + ':')))"
).message("spec.encryption.existingKeys must be keys of spec.region").field_path(".encryption.existingKeys"))]
#[x_kube(validation = Rule::new(
    "!has(self.targetNetwork.existing) || self.targetNetwork.existing.all(k, (has(oldSelf.targetNetwork.existing) && k in oldSelf.targetNetwork.existing) || !has(oldSelf.targetAccounts) || !oldSelf.targetAccounts.exists(s, k in oldSelf.targetAccounts[s]))"
).message("spec.targetNetwork.existing: an account that already serves a stage keeps the network it has; switching between an existing network and one sagekeeper creates is not supported").field_path(".targetNetwork.existing"))]
#[x_kube(validation = Rule::new(
    "!has(oldSelf.targetNetwork.existing) || oldSelf.targetNetwork.existing.all(k, (has(self.targetNetwork.existing) && k in self.targetNetwork.existing) || !has(self.targetAccounts) || !self.targetAccounts.exists(s, k in self.targetAccounts[s]))"
).message("spec.targetNetwork.existing: an account that still serves a stage keeps the existing network it was given; switching between an existing network and one sagekeeper creates is not supported").field_path(".targetNetwork.existing"))]
#[serde(rename_all = "camelCase")]
pub struct DataScienceEnvironmentSpec {
    /// Name of the AwsAccount (the development account) the environment lives in. Immutable.
    #[schemars(length(max = MAX_NAME), pattern(OBJECT_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.account is immutable"))]
    pub account: String,

    /// AWS region of the environment, also used in every target account. Immutable.
    #[schemars(length(max = 32), pattern(REGION))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.region is immutable"))]
    pub region: String,

    /// The environment's VPC in the dev account.
    #[serde(default)]
    pub network: NetworkSpec,

    /// Customer managed KMS keys (one each for EBS volumes, Studio and S3).
    #[serde(default)]
    pub encryption: EncryptionSpec,

    /// The data and models buckets.
    #[serde(default)]
    pub storage: StorageSpec,

    /// The SageMaker Studio domain and its user profiles.
    #[serde(default)]
    pub studio: StudioSpec,

    /// Who may act as the persona roles besides SageMaker.
    #[serde(default, skip_serializing_if = "IdentitySpec::is_empty")]
    pub identity: IdentitySpec,

    /// Stage name -> names of AwsAccounts that serve models in that stage. ModelDeployment
    /// stages use these stage names (and those of targetAccountSets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = |s: &mut schemars::Schema| bound_map(s, 10, serde_json::json!({
        "minItems": 1, "maxItems": 10, "items": {"type": "string", "maxLength": MAX_NAME, "pattern": OBJECT_NAME}
    })))]
    #[x_kube(validation = Rule::new(
        "self.all(stage, size(stage) <= 32 && stage.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))"
    ).message("spec.targetAccounts keys must be stage names: lowercase letters, digits and '-', at most 32 characters"))]
    pub target_accounts: BTreeMap<String, Vec<String>>,

    /// Stage name -> names of AwsAccountSets whose every member account (now and later)
    /// serves models in that stage, besides the accounts of targetAccounts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = |s: &mut schemars::Schema| bound_map(s, 10, serde_json::json!({
        "minItems": 1, "maxItems": 10, "items": {"type": "string", "maxLength": MAX_NAME, "pattern": OBJECT_NAME}
    })))]
    #[x_kube(validation = Rule::new(
        "self.all(stage, size(stage) <= 32 && stage.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))"
    ).message("spec.targetAccountSets keys must be stage names: lowercase letters, digits and '-', at most 32 characters"))]
    pub target_account_sets: BTreeMap<String, Vec<String>>,

    /// The VPC made in each target account.
    #[serde(default)]
    pub target_network: TargetNetworkSpec,

    /// Tags added to every AWS resource the environment creates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = |s: &mut schemars::Schema| bound_map(s, 40, serde_json::json!({"maxLength": 256})))]
    #[x_kube(validation = Rule::new(
        "self.all(k, size(k) >= 1 && size(k) <= 128 && !k.startsWith('aws:') && !k.startsWith('sagekeeper.io/'))"
    ).message("spec.tags keys must be 1 to 128 characters and not start with 'aws:' or 'sagekeeper.io/'"))]
    pub tags: BTreeMap<String, String>,

    /// Delete (default): remove what the environment created, keeping data unless
    /// deleteDataOnDelete. Retain: release the object and touch nothing in AWS.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// On deletion, also delete bucket objects, the Studio home file system and the keys that
    /// encrypt them. Default false: kept data is listed in status.retained.
    #[serde(default)]
    pub delete_data_on_delete: bool,
}

/// The environment's network in its dev account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.existing) == has(oldSelf.existing)")
    .message("spec.network.existing cannot be added or removed after creation: switching between an existing network and one sagekeeper creates is not supported (create a new environment)"))]
#[x_kube(validation = Rule::new("!has(self.existing) || self.existing == oldSelf.existing")
    .message("spec.network.existing is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// IPv4 CIDR of the VPC, prefix /16 to /24. Private subnets are its first blocks of prefix
    /// +3 (a /16 gives /19s). Immutable.
    #[serde(default = "default_vpc_cidr")]
    #[schemars(length(max = 18), pattern(IPV4_CIDR))]
    #[x_kube(validation = Rule::new(crate::schema::VPC_CIDR_RULE)
        .message("spec.network.vpcCidr must be an IPv4 network address with a prefix from /16 to /24"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.network.vpcCidr is immutable"))]
    pub vpc_cidr: String,

    /// 1 to 4 availability zones of the region. Absent: the region's first two, chosen once
    /// and pinned in status.network.availabilityZones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4), inner(length(max = 32), pattern(AVAILABILITY_ZONE)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub availability_zones: Option<Vec<String>>,

    /// None (default): no internet gateway, egress only inside the VPC and to S3. NatGateway:
    /// public subnets, an internet gateway and one NAT gateway per zone.
    #[serde(default)]
    pub internet_access: InternetAccess,

    /// Interface endpoints by service suffix (after `com.amazonaws.<region>.`). Absent: the
    /// default list; []: none. The S3 gateway endpoint is always made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), inner(length(max = 64), pattern(ENDPOINT_SERVICE)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub vpc_endpoints: Option<Vec<String>>,

    /// VPC flow logs of the environment's VPCs (dev and every target account) to CloudWatch
    /// Logs, each log group encrypted with a key of its own. On by default.
    #[serde(default)]
    pub flow_logs: FlowLogsSpec,

    /// A VPC and private subnets someone else owns (a network team) to use instead of making
    /// one; vpcCidr is then ignored. The owner lends the VPC to this namespace by tagging it
    /// sagekeeper.io/lent-to=<namespace>. sagekeeper checks them before any write, adds only its
    /// security groups and the VPC endpoints the VPC lacks (with its S3 gateway endpoint on the
    /// subnets' route tables), never modifies or deletes what it did not create, and leaves flow
    /// logs to the VPC's owner. Cannot be added, removed or changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<ExistingNetwork>,
}

/// A VPC and private subnets someone else owns. The subnets must belong to the VPC, lie in
/// the region's availability zones (and in spec.network.availabilityZones when given), and
/// have no route to an internet or NAT gateway unless internetAccess is NatGateway.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExistingNetwork {
    /// The VPC id (vpc-...).
    #[schemars(length(max = 21), pattern(VPC_ID))]
    pub vpc_id: String,

    /// 1 to 8 private subnets of the VPC (subnet-...): jobs, Studio, endpoints and the interface
    /// VPC endpoints (in the first subnet of each zone) use them.
    #[schemars(length(min = 1, max = 8), inner(length(max = 24), pattern(SUBNET_ID)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub private_subnet_ids: Vec<String>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            vpc_cidr: default_vpc_cidr(),
            availability_zones: None,
            internet_access: InternetAccess::None,
            vpc_endpoints: None,
            flow_logs: FlowLogsSpec::default(),
            existing: None,
        }
    }
}

/// VPC flow logs: one log group per VPC, in the VPC's account, encrypted with a key the
/// environment owns, written by a delivery role only the flow-logs service may assume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FlowLogsSpec {
    /// Whether to log. Default true. Turning it off removes the flow logs and their delivery
    /// roles; the log groups (data) and their keys stay until the environment is deleted.
    #[serde(default = "yes")]
    pub enabled: bool,

    /// Which traffic to log: REJECT (default), ACCEPT or ALL.
    #[serde(default)]
    pub traffic_type: TrafficType,

    /// How long CloudWatch Logs keeps the records, in days: one of 1, 3, 5, 7, 14 (default),
    /// 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653.
    #[serde(default = "default_retention_days")]
    #[x_kube(validation = Rule::new(
        "self in [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]"
    ).message("spec.network.flowLogs.retentionDays must be a retention CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653"))]
    pub retention_days: i32,
}

impl Default for FlowLogsSpec {
    fn default() -> Self {
        Self { enabled: true, traffic_type: TrafficType::Reject, retention_days: default_retention_days() }
    }
}

fn default_retention_days() -> i32 {
    14
}

/// The traffic a flow log records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TrafficType {
    /// Rejected traffic only.
    #[default]
    Reject,
    /// Accepted traffic only.
    Accept,
    /// All traffic.
    All,
}

impl TrafficType {
    /// The value EC2 takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "REJECT",
            Self::Accept => "ACCEPT",
            Self::All => "ALL",
        }
    }
}

fn default_vpc_cidr() -> String {
    "10.0.0.0/16".to_owned()
}

/// How workloads in the environment reach the internet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum InternetAccess {
    /// No internet path: egress stays inside the VPC and goes to S3 through the gateway endpoint.
    #[default]
    None,
    /// A NAT gateway per availability zone.
    NatGateway,
}

/// Encryption settings of the environment's KMS keys.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.existingKeys) == has(oldSelf.existingKeys) && (!has(self.existingKeys) || self.existingKeys == oldSelf.existingKeys)")
    .message("spec.encryption.existingKeys is immutable: what a key encrypts (buckets, the Studio home) cannot move to another one"))]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// Yearly automatic rotation of the keys sagekeeper makes. Default true.
    #[serde(default = "yes")]
    pub key_rotation: bool,

    /// Keys a security team owns, used instead of making them (any of ebs, studio, s3): keys of
    /// the dev account and spec.region, each lent to this namespace by its tag
    /// sagekeeper.io/lent-to=<namespace>. sagekeeper never changes, rotates, tags or schedules the
    /// deletion of them; their key policies must let the environment's roles use them (name them,
    /// or delegate to IAM through the account root), else the environment stalls with the
    /// statements to add. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_keys: Option<ExistingKeys>,
}

impl Default for EncryptionSpec {
    fn default() -> Self {
        Self { key_rotation: true, existing_keys: None }
    }
}

/// ARNs of keys someone else owns, by purpose.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExistingKeys {
    /// Key of job, notebook and endpoint volumes (and of the dev VPC's flow log group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(KMS_KEY_ARN))]
    pub ebs: Option<String>,

    /// Key of the Studio domain and its home file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(KMS_KEY_ARN))]
    pub studio: Option<String>,

    /// Key of the data and models buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(KMS_KEY_ARN))]
    pub s3: Option<String>,
}

impl ExistingKeys {
    /// Each key given, with its field name.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [("ebs", &self.ebs), ("studio", &self.studio), ("s3", &self.s3)]
            .into_iter()
            .filter_map(|(name, arn)| Some((name, arn.as_deref()?)))
    }
}

/// Settings of the data and models buckets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Object versioning on both buckets. Default true.
    #[serde(default = "yes")]
    pub versioning: bool,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self { versioning: true }
    }
}

/// The SageMaker Studio domain and its users.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StudioSpec {
    /// Whether to create the Studio domain. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,

    /// How users sign in to Studio. IAM is the only mode for now.
    #[serde(default)]
    pub auth_mode: AuthMode,

    /// Studio user profiles, keyed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub user_profiles: Vec<UserProfile>,
}

impl Default for StudioSpec {
    fn default() -> Self {
        Self { enabled: true, auth_mode: AuthMode::Iam, user_profiles: Vec::new() }
    }
}

/// How Studio users authenticate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AuthMode {
    /// AWS IAM.
    #[default]
    #[serde(rename = "IAM")]
    Iam,
}

/// One Studio user.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    /// The user profile name in Studio: letters, digits and hyphens, at most 63 characters.
    #[schemars(length(max = 63), pattern(SAGEMAKER_NAME))]
    pub name: String,

    /// What the user may do; each persona gets its own IAM role.
    pub persona: Persona,
}

/// The kinds of Studio user, each with its own least-privilege role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Persona {
    /// Builds and trains models; cannot approve model versions by any route.
    DataScientist,
    /// Administers the team's environment and approves model versions.
    TeamAdmin,
}

/// Who may assume the persona roles.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// IAM roles or users of the dev account (for example the role your SSO permission set
    /// gives a team) that may assume each persona role, besides SageMaker for Studio. Never the
    /// account root. Setting it needs the sagekeeper-approver role (deploy/kubernetes/).
    #[serde(default, skip_serializing_if = "PersonaPrincipals::is_empty")]
    pub persona_principals: PersonaPrincipals,
}

impl IdentitySpec {
    fn is_empty(&self) -> bool {
        self.persona_principals.is_empty()
    }
}

/// IAM principals (role or user ARNs of the dev account) per persona.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PersonaPrincipals {
    /// Who may act as the DataScientist role.
    #[serde(rename = "DataScientist", default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(max = 2048), pattern(PRINCIPAL_ARN)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub data_scientist: Vec<String>,

    /// Who may act as the TeamAdmin role (which approves model versions).
    #[serde(rename = "TeamAdmin", default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(max = 2048), pattern(PRINCIPAL_ARN)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub team_admin: Vec<String>,
}

impl PersonaPrincipals {
    /// Whether no persona names a principal.
    pub fn is_empty(&self) -> bool {
        self.data_scientist.is_empty() && self.team_admin.is_empty()
    }

    /// The principals of one persona.
    pub fn of(&self, persona: Persona) -> &[String] {
        match persona {
            Persona::DataScientist => &self.data_scientist,
            Persona::TeamAdmin => &self.team_admin,
        }
    }

    /// The first principal outside `account`, with its persona.
    pub fn outside(&self, account: &str) -> Option<(Persona, &str)> {
        [Persona::DataScientist, Persona::TeamAdmin].into_iter().find_map(|persona| {
            self.of(persona)
                .iter()
                .find(|arn| arn.split(':').nth(4) != Some(account))
                .map(|arn| (persona, arn.as_str()))
        })
    }
}

/// The VPC made in each target account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.vpcCidr) == has(oldSelf.vpcCidr)")
    .message("spec.targetNetwork.vpcCidr cannot be added or removed after creation"))]
pub struct TargetNetworkSpec {
    /// IPv4 CIDR of the VPC in each target account, /16 to /24. Default: spec.network.vpcCidr.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 18), pattern(IPV4_CIDR))]
    #[x_kube(validation = Rule::new(crate::schema::VPC_CIDR_RULE)
        .message("spec.targetNetwork.vpcCidr must be an IPv4 network address with a prefix from /16 to /24"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.targetNetwork.vpcCidr is immutable"))]
    pub vpc_cidr: Option<String>,

    /// Target AwsAccount name -> a VPC and private subnets someone else owns there, lent to this
    /// namespace by its sagekeeper.io/lent-to tag, used instead of making one (as
    /// spec.network.existing is in the dev account). An entry is
    /// immutable, and cannot be added or removed while the account serves a stage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = |s: &mut schemars::Schema| bound_map(s, 50, serde_json::json!({})))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 253)")
        .message("spec.targetNetwork.existing keys must be AwsAccount names"))]
    #[x_kube(validation = Rule::new("self.all(k, !(k in oldSelf) || self[k] == oldSelf[k])")
        .message("spec.targetNetwork.existing entries are immutable"))]
    pub existing: BTreeMap<String, ExistingNetwork>,
}

fn yes() -> bool {
    true
}

/// What sagekeeper last observed of a DataScienceEnvironment, and the AWS ids it pinned.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataScienceEnvironmentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Reconciling, Stalled, and NetworkReady, EncryptionReady, StorageReady,
    /// IdentityReady, StudioReady, TargetAccountsReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The dev account's id (its AwsAccount's accountId, which STS confirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,

    /// The network in the dev account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStatus>,

    /// The KMS keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionStatus>,

    /// The buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,

    /// The IAM roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityStatus>,

    /// The Studio domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub studio: Option<StudioStatus>,

    /// What each target account has, one entry per account and stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_accounts: Vec<TargetAccountStatus>,

    /// The keys of `spec.tags` that may still be on the environment's resources. A key removed
    /// from `spec.tags` is taken off every resource; tags others put there are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_keys: Vec<String>,

    /// What deletion kept and why (non-empty buckets, the Studio home file system, the keys
    /// that encrypt them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<RetainedResource>,
}

/// The network sagekeeper made in the dev account; zones and CIDRs are chosen once and pinned.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// The VPC id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// The availability zones in use, pinned at creation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub availability_zones: Vec<String>,
    /// The private subnet CIDRs, one per zone, in zone order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_subnet_cidrs: Vec<String>,
    /// The private subnet ids, in zone order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_subnet_ids: Vec<String>,
    /// The public subnet ids (NatGateway only), in zone order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_subnet_ids: Vec<String>,
    /// Security group ids by role: workloads, endpoints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub security_group_ids: BTreeMap<String, String>,
    /// VPC endpoint ids by service suffix (s3 for the gateway).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vpc_endpoint_ids: BTreeMap<String, String>,
    /// The VPC's flow log, while flow logs are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_logs: Option<FlowLogsStatus>,
    /// On an existing network (spec.network.existing): the guarantees sagekeeper cannot give
    /// there, because their owner is someone else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_guaranteed: Vec<String>,
}

/// One VPC's flow log and where it writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowLogsStatus {
    /// The flow log id (fl-...).
    pub flow_log_id: String,
    /// The CloudWatch Logs log group.
    pub log_group: String,
    /// The KMS key that encrypts the log group.
    pub key_arn: String,
    /// The role the flow-logs service writes with.
    pub delivery_role_arn: String,
}

/// The environment's KMS keys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionStatus {
    /// Key for EBS volumes of jobs, notebooks and endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_key_arn: Option<String>,
    /// Key for the Studio domain and its home file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub studio_key_arn: Option<String>,
    /// Key for the S3 buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_key_arn: Option<String>,
}

/// The environment's buckets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// The data bucket name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_bucket: Option<String>,
    /// The models bucket name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_bucket: Option<String>,
}

/// The environment's IAM roles.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityStatus {
    /// SageMaker execution role (Studio default, jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    /// Pipeline execution role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_role_arn: Option<String>,
    /// Model execution role in the dev account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_execution_role_arn: Option<String>,
    /// Role of each persona in use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub persona_role_arns: BTreeMap<String, String>,
}

/// The Studio domain.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudioStatus {
    /// The domain id (d-...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<String>,
    /// The domain's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The user profiles that exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_profiles: Vec<String>,
}

/// What one target account has for serving models.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetAccountStatus {
    /// The AwsAccount name.
    pub account: String,
    /// Its account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The stage it serves.
    pub stage: String,
    /// The VPC id there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// Its private subnet ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_subnet_ids: Vec<String>,
    /// The security group of endpoints there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_id: Option<String>,
    /// The KMS key for endpoint volumes and data capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_key_arn: Option<String>,
    /// The data capture bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_capture_bucket: Option<String>,
    /// The model execution role there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_execution_role_arn: Option<String>,
    /// The VPC's flow log there, while flow logs are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_logs: Option<FlowLogsStatus>,
    /// Whether the VPC there is someone else's (spec.targetNetwork.existing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub existing_network: bool,
    /// On an existing network (spec.targetNetwork.existing): the guarantees sagekeeper cannot
    /// give there, because their owner is someone else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_guaranteed: Vec<String>,
    /// sagekeeper's principal there (the AwsAccount's role): with the model execution role, the
    /// only principal of the account the projects' model registries are shared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployer_arn: Option<String>,
    /// For an account a spec.targetAccountSets set made: the `aws:PrincipalOrgPaths` pattern of
    /// the set's unit (`o-…/r-…/ou-…/`, ending `*` when nested units count). Bucket, key,
    /// registry and VPC endpoint policies admit the unit's accounts by this path (with the
    /// organization's id) and by the names of sagekeeper's roles (the model execution role also
    /// by the environment's owner tag), never listing their roles, so those policies grow only
    /// by each account's VPC endpoint ids (about 700 accounts fit the models bucket policy's
    /// 20 KB). An account whose AwsAccount existed before the set is named as any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_path: Option<String>,
    /// Whether everything the account needs exists and matches.
    #[serde(default)]
    pub ready: bool,
}

/// Something deletion kept on purpose.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetainedResource {
    /// The kind of AWS resource, e.g. `s3-bucket`, `kms-key`, `efs-file-system`.
    pub resource: String,
    /// Its id, name or ARN.
    pub id: String,
    /// Why it was kept.
    pub reason: String,
}
