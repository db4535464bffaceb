//! Deterministic AWS names and ownership tags. A name is derived from the object's namespace
//! and name only, cut to the AWS limit and charset, and always carries a short hash of both, so
//! `a/b-c` and `a-b/c` never collide and a crash between a create and the status write finds
//! the same name again.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Tag key: `<kind>/<namespace>/<name>` of the object that owns an AWS resource.
pub const OWNER_TAG: &str = "sagekeeper.io/owner";
/// Tag key: the owning object's uid; only resources carrying our uid are ever adopted.
pub const OWNER_UID_TAG: &str = "sagekeeper.io/owner-uid";
/// Tag key an owner puts on a VPC or KMS key it lends to the environments of one namespace
/// (`spec.network.existing`, `spec.encryption.existingKeys`): the value is that namespace.
pub const LENT_TO_TAG: &str = "sagekeeper.io/lent-to";
/// Tag key: which part of the object the resource is (`vpc`, `subnet/private/0`, `key/s3`, ...).
pub const COMPONENT_TAG: &str = "sagekeeper.io/component";
/// Tag key on a Studio domain once it had a user profile: its home file system may hold home
/// directories from then on (they outlive their profiles), so deletion keeps it.
pub const HOME_USED_TAG: &str = "sagekeeper.io/home-used";
/// Every bucket name starts with it (`deploy/aws/deployer/keys-and-buckets.json` names it).
pub const BUCKET_PREFIX: &str = "sagekeeper-";

/// The first 6 hex digits of sha256 over `parts` joined by `/` (which no Kubernetes name holds).
pub fn short_hash(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("/").as_bytes());
    hex::encode(&digest[..3])
}

/// Lowercase letters, digits and single hyphens, no hyphen at either end, at most `max` bytes.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_owned()
}

/// The names of everything a DataScienceEnvironment creates, from its namespace and name (and,
/// for buckets, the accounts and region, since bucket names are global).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentNames {
    namespace: String,
    name: String,
    /// `<namespace>-<name>` cut to fit, plus the hash: the stem of every name.
    stem: String,
    /// Short prefix the environment's SageMaker resources must start with (IAM policies scope to
    /// it). It ends with `-`, so no other environment's prefix can extend it.
    pub resource_prefix: String,
}

impl EnvironmentNames {
    /// The names for environment `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        let hash = short_hash(&[namespace, name]);
        let stem = format!("{}-{hash}", sanitize(&format!("{namespace}-{name}"), 24));
        let resource_prefix = format!("{}-{hash}-", sanitize(name, 16));
        Self { namespace: namespace.to_owned(), name: name.to_owned(), stem, resource_prefix }
    }

    /// `DataScienceEnvironment/<namespace>/<name>`, the owner tag's value.
    pub fn owner(&self) -> String {
        format!("DataScienceEnvironment/{}/{}", self.namespace, self.name)
    }

    /// The tags every resource carries: owner, owner uid, component, then the user's tags
    /// (which cannot override ours: admission refuses their keys).
    pub fn tags(&self, uid: &str, component: &str, user: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut tags = user.clone();
        tags.insert(OWNER_TAG.into(), self.owner());
        tags.insert(OWNER_UID_TAG.into(), uid.into());
        tags.insert(COMPONENT_TAG.into(), component.into());
        tags
    }

    /// A `Name` tag for EC2 resources: `<stem>-<what>`.
    pub fn ec2_name(&self, what: &str) -> String {
        format!("{}-{what}", self.stem)
    }

    /// An IAM role name (at most 64 characters): `sk-<stem>-<role>`.
    pub fn role(&self, role: &str) -> String {
        let mut name = format!("sk-{}-{role}", self.stem);
        name.truncate(64);
        name
    }

    /// A KMS alias: `alias/sagekeeper/<namespace>/<name>/<key>`.
    pub fn key_alias(&self, key: &str) -> String {
        format!("alias/sagekeeper/{}/{}/{key}", self.namespace, self.name)
    }

    /// A bucket name (global, at most 63):
    /// `sagekeeper-<namespace>-<name>-<hash>-<account>-<region>-<purpose>`, the namespace and name
    /// cut to fit. The fixed prefix is what the deployer policy's bucket grants name.
    pub fn bucket(&self, account_id: &str, region: &str, purpose: &str) -> String {
        let tail = format!("-{account_id}-{region}-{purpose}");
        let room = 63usize.saturating_sub(BUCKET_PREFIX.len() + tail.len() + 7);
        let hash = &self.stem[self.stem.len() - 6..];
        format!("{BUCKET_PREFIX}{}-{hash}{tail}", sanitize(&format!("{}-{}", self.namespace, self.name), room))
    }

    /// A security group name: `sagekeeper-<stem>-<role>`.
    pub fn security_group(&self, role: &str) -> String {
        format!("sagekeeper-{}-{role}", self.stem)
    }

    /// The Studio domain name (at most 63).
    pub fn domain(&self) -> String {
        self.stem.clone()
    }

    /// The CloudWatch Logs group of the flow logs of the environment's VPC in any of its
    /// accounts: `/sagekeeper/vpc-flow-logs/<stem>`. The fixed prefix is what the deployer
    /// policy's log grants name.
    pub fn flow_log_group(&self) -> String {
        format!("{LOG_GROUP_PREFIX}vpc-flow-logs/{}", self.stem)
    }
}

/// Every alarm sagekeeper owns starts with it (`deploy/aws/deployer/alarms-and-scaling.json` names it).
pub const ALARM_PREFIX: &str = "sagekeeper-";

/// Every log group name starts with it (`deploy/aws/deployer/network.json` names it).
pub const LOG_GROUP_PREFIX: &str = "/sagekeeper/";

/// The names of what an MLOpsProject creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectNames {
    namespace: String,
    name: String,
}

impl ProjectNames {
    /// The names for project `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self { namespace: namespace.to_owned(), name: name.to_owned() }
    }

    /// `MLOpsProject/<namespace>/<name>`, the owner tag's value.
    pub fn owner(&self) -> String {
        format!("MLOpsProject/{}/{}", self.namespace, self.name)
    }

    /// The default model package group name: `<namespace>-<name>-<short hash>`, cut to 63
    /// characters. The hash keeps `team-fraud/churn` and `team/fraud-churn` apart: two tenants
    /// of one dev account never default to the same group.
    pub fn default_group(&self) -> String {
        let hash = short_hash(&[&self.namespace, &self.name]);
        format!("{}-{hash}", sanitize(&format!("{}-{}", self.namespace, self.name), 56))
    }

    /// The model package group `project` uses: as its spec names it, else as its status pinned
    /// it, else the default.
    pub fn group(project: &crate::MLOpsProject) -> String {
        let meta = &project.metadata;
        project
            .spec
            .model_package_group_name
            .clone()
            .or_else(|| project.status.as_ref().and_then(|s| s.model_package_group_name.clone()))
            .unwrap_or_else(|| {
                let names =
                    Self::new(meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default());
                names.default_group()
            })
    }

    /// The pipeline name: the environment's resource prefix (so its roles may run it), then the
    /// project name and the short hash. At most 256 characters.
    pub fn pipeline(&self, environment: &EnvironmentNames) -> String {
        let hash = short_hash(&[&self.namespace, &self.name]);
        format!("{}{}-{hash}", environment.resource_prefix, sanitize(&self.name, 200))
    }

    /// The S3 key prefix of the project in the environment's buckets: `projects/<name>/`.
    pub fn prefix(&self) -> String {
        format!("projects/{}/", self.name)
    }
}

/// The names of what a ModelDeployment creates in its target accounts. Names are letters,
/// digits and hyphens, at most 63 characters, as SageMaker allows for models, endpoint configs
/// and endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentNames {
    namespace: String,
    name: String,
}

impl DeploymentNames {
    /// The names for deployment `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self { namespace: namespace.to_owned(), name: name.to_owned() }
    }

    /// `ModelDeployment/<namespace>/<name>`, the owner tag's value.
    pub fn owner(&self) -> String {
        format!("ModelDeployment/{}/{}", self.namespace, self.name)
    }

    /// A stage's endpoint (the same name in each of the stage's accounts), and the stem of its
    /// models' and configs' names: at most 40 characters.
    pub fn endpoint(&self, stage: &str) -> String {
        let hash = short_hash(&[&self.namespace, &self.name, stage]);
        format!("{}-{}-{hash}", sanitize(&self.name, 20), sanitize(stage, 12))
    }

    /// A model or endpoint config of a stage for `version` with `settings` (hashed): a change
    /// of either makes a new name, so the endpoint moves blue/green. At most 63 characters.
    pub fn versioned(&self, stage: &str, version: i64, settings: &str) -> String {
        format!("{}-v{version}-{}", self.endpoint(stage), short_hash(&[settings]))
    }

    /// A CloudWatch alarm sagekeeper owns on a stage's endpoint:
    /// `sagekeeper-<environment's resource prefix><endpoint>-<what>`. The fixed prefix is what the
    /// deployer policy's alarm grants name; the environment's is what its model roles may read.
    pub fn alarm(&self, environment: &EnvironmentNames, stage: &str, what: &str) -> String {
        format!("{ALARM_PREFIX}{}{}-{what}", environment.resource_prefix, self.endpoint(stage))
    }

    /// The S3 key prefix of the deployment in the capture buckets: `deployments/<name>/`.
    pub fn prefix(&self) -> String {
        format!("deployments/{}/", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_names_fit_sagemaker_and_change_with_version_and_settings() {
        let names = DeploymentNames::new("a-very-long-namespace-name-for-a-team", "a-deployment-with-a-long-name");
        let endpoint = names.endpoint("production-eu-west");
        assert!(endpoint.len() <= 40, "{endpoint}");
        let model = names.versioned("production-eu-west", 123_456_789, "settings");
        assert!(model.len() <= 63, "{model}");
        for name in [&endpoint, &model] {
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{name}");
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        }
        assert!(model.starts_with(&endpoint));
        assert_ne!(model, names.versioned("production-eu-west", 123_456_789, "other settings"));
        assert_ne!(model, names.versioned("production-eu-west", 8, "settings"));
        assert_ne!(names.endpoint("staging"), DeploymentNames::new("a", "b").endpoint("staging"));
        assert_ne!(DeploymentNames::new("a-b", "c").endpoint("s"), DeploymentNames::new("a", "b-c").endpoint("s"));
    }

    #[test]
    fn names_are_deterministic_and_do_not_collide_across_splits() {
        let a = EnvironmentNames::new("team-a", "b");
        assert_eq!(a, EnvironmentNames::new("team-a", "b"));
        let b = EnvironmentNames::new("team", "a-b");
        assert_ne!(a.domain(), b.domain(), "same text, different namespace/name split");
        assert_ne!(a.role("execution"), b.role("execution"));
    }

    #[test]
    fn names_fit_aws_limits_for_the_longest_inputs() {
        let long = "x".repeat(63);
        let names = EnvironmentNames::new(&long, &"y".repeat(253));
        assert!(names.role("model-execution").len() <= 64, "{}", names.role("model-execution"));
        assert!(names.domain().len() <= 63);
        let bucket = names.bucket("123456789012", "ap-southeast-2", "models");
        assert!(bucket.len() <= 63, "{bucket}");
        assert!(bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{bucket}");
        assert!(!bucket.starts_with('-') && !bucket.contains("--"), "{bucket}");
        assert!(names.resource_prefix.len() <= 24 && names.resource_prefix.ends_with('-'));
    }

    #[test]
    fn bucket_names_carry_account_and_region() {
        let names = EnvironmentNames::new("team-fraud", "fraud");
        let bucket = names.bucket("111111111111", "us-east-1", "data");
        assert!(bucket.starts_with("sagekeeper-team-fraud-fraud-"), "{bucket}");
        assert!(bucket.ends_with("-111111111111-us-east-1-data"), "{bucket}");
        assert_ne!(bucket, names.bucket("222222222222", "us-east-1", "data"));
    }

    #[test]
    fn sanitize_keeps_names_valid() {
        assert_eq!(sanitize("Team_Fraud..Prod-", 63), "team-fraud-prod");
        assert_eq!(sanitize("--a", 63), "a");
        assert_eq!(sanitize("abcdef", 3), "abc");
        assert_eq!(sanitize("ab-cdef", 3), "ab");
    }

    #[test]
    fn tags_name_the_owner_uid_and_component_and_keep_user_tags() {
        let names = EnvironmentNames::new("team-fraud", "fraud");
        let user = BTreeMap::from([("cost-center".to_owned(), "4711".to_owned())]);
        let tags = names.tags("uid-1", "vpc", &user);
        assert_eq!(tags[OWNER_TAG], "DataScienceEnvironment/team-fraud/fraud");
        assert_eq!(tags[OWNER_UID_TAG], "uid-1");
        assert_eq!(tags[COMPONENT_TAG], "vpc");
        assert_eq!(tags["cost-center"], "4711");
        assert_eq!(names.key_alias("s3"), "alias/sagekeeper/team-fraud/fraud/s3");
    }

    #[test]
    fn project_names_default_to_namespace_dash_name_and_fit_sagemaker_limits() {
        let names = ProjectNames::new("team-fraud", "churn");
        let group = names.default_group();
        assert!(group.starts_with("team-fraud-churn-") && group.len() == "team-fraud-churn-".len() + 6, "{group}");
        // The same text split differently between namespace and name is another group.
        assert_ne!(group, ProjectNames::new("team", "fraud-churn").default_group());
        assert_eq!(names.owner(), "MLOpsProject/team-fraud/churn");
        let long = ProjectNames::new(&"n".repeat(63), "a.b");
        let group = long.default_group();
        assert!(group.len() <= 63 && group.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{group}");
        assert_ne!(group, ProjectNames::new(&"n".repeat(63), "a-b").default_group());
        let env = EnvironmentNames::new("team-fraud", "fraud");
        let pipeline = names.pipeline(&env);
        assert!(pipeline.starts_with(&env.resource_prefix), "{pipeline}");
        assert!(ProjectNames::new("x", &"y".repeat(253)).pipeline(&env).len() <= 256);
        assert_eq!(names.prefix(), "projects/churn/");
    }
}
