//! Inputs of the policy builders: the names and ARNs an environment and its target accounts
//! have in AWS, resolved by the controller before it asks for any document.

/// The tag sagekeeper puts on everything it makes, valued with the owning object's uid (the
/// API's `naming::OWNER_UID_TAG`; the controller's tests check they agree).
pub const OWNER_UID_TAG_KEY: &str = "sagekeeper.io/owner-uid";

/// One data science environment: its dev account, its resources and its target accounts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Environment {
    /// AWS partition, e.g. `aws`.
    pub partition: String,
    /// Region of the environment and of its target-account resources, e.g. `us-east-1`.
    pub region: String,
    /// The dev account id.
    pub account_id: String,
    /// Prefix of every SageMaker resource the environment's roles may create or change.
    pub name_prefix: String,
    /// The environment's uid: the value of the registry tag (`sagekeeper.io/environment`) its
    /// projects put on the model package groups they own and on every version in them; its
    /// roles register into and TeamAdmin approves in what carries it.
    pub uid: String,
    /// sagekeeper's own principals in the dev account (role or user ARNs, never session ARNs).
    pub controller_arns: Vec<String>,
    /// Name of the data bucket.
    pub data_bucket: String,
    /// Name of the models bucket.
    pub models_bucket: String,
    /// ARNs of the environment's three KMS keys.
    pub keys: Keys,
    /// ARNs of the environment's roles.
    pub roles: Roles,
    /// The dev S3 gateway endpoint and every target account's S3 gateway endpoint.
    pub s3_endpoint_ids: Vec<String>,
    /// The dev KMS interface endpoint and every target account's KMS interface endpoint.
    pub kms_endpoint_ids: Vec<String>,
    /// The environment's private subnets: the only subnets its roles may put jobs, models and
    /// notebooks in.
    pub subnets: Vec<String>,
    /// The environment's workloads security group: the only group its roles may give them.
    pub security_groups: Vec<String>,
    /// Id of the Studio domain once it exists; `None` scopes persona Studio access to the account.
    pub studio_domain_id: Option<String>,
    /// The CloudWatch Logs group of the flow logs of the environment's VPC in each account
    /// (the same name in every account); its key lets CloudWatch Logs use it for that group.
    pub flow_log_group: String,
    /// The staging and production accounts.
    pub targets: Vec<Target>,
    /// `aws:PrincipalOrgPaths` patterns of the organizational units whose accounts serve as
    /// target accounts (spec.targetAccountSets): `o-…/r-…/ou-…/`, ending `*` when nested units
    /// count. Policies admit the targets below them by path and role name instead of listing
    /// each; only each account's VPC endpoint ids are still listed (about 700 accounts fit).
    pub target_org_paths: Vec<String>,
    /// Which of `keys` someone else owns (spec.encryption.existingKeys): their key policies may
    /// leave use to IAM, so the roles' own policies grant them.
    pub borrowed_keys: BorrowedKeys,
}

/// Which of the environment's keys someone else owns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BorrowedKeys {
    /// The ebs key.
    pub ebs: bool,
    /// The studio key.
    pub studio: bool,
    /// The s3 key.
    pub s3: bool,
}

/// ARNs of the environment's customer managed keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Keys {
    /// Key for job, notebook and endpoint volumes.
    pub ebs: String,
    /// Key for the Studio domain's home file system and app volumes.
    pub studio: String,
    /// Key for SSE-KMS on the data and models buckets.
    pub s3: String,
}

/// ARNs of the environment's roles in the dev account.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Roles {
    /// SageMaker execution role: jobs, the Studio domain default and shared spaces.
    pub execution: String,
    /// SageMaker pipeline execution role.
    pub pipeline: String,
    /// Role the containers of dev endpoints run as.
    pub model_execution: String,
    /// DataScientist persona role, when a user profile has that persona.
    pub data_scientist: Option<String>,
    /// TeamAdmin persona role, when a user profile has that persona.
    pub team_admin: Option<String>,
}

/// One staging or production account the environment deploys to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Target {
    /// The target account id.
    pub account_id: String,
    /// sagekeeper's principals in the target account.
    pub controller_arns: Vec<String>,
    /// ARN of the model execution role in the target account.
    pub model_execution_role: String,
    /// ARN of the target's KMS key for endpoint volumes and data capture.
    pub endpoint_key: String,
    /// Name of the target's data-capture bucket.
    pub capture_bucket: String,
    /// Whether the account lies below one of `Environment::target_org_paths`: policies admit
    /// it by path, not by id or ARN.
    pub by_org_path: bool,
}

/// Accounts a policy admits: each by id, and every account below organization paths.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accounts {
    /// Account ids, named one by one.
    pub ids: Vec<String>,
    /// `aws:PrincipalOrgPaths` (and `aws:ResourceOrgPaths`) patterns.
    pub org_paths: Vec<String>,
}

/// IAM principals a resource policy grants: by ARN, and below organization paths by ARN
/// pattern (`arn:aws:iam::*:role/<name>`): the roles of that name in the unit's accounts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Principals {
    /// Principal ARNs, named one by one.
    pub arns: Vec<String>,
    /// `aws:PrincipalOrgPaths` patterns.
    pub org_paths: Vec<String>,
    /// `aws:PrincipalArn` patterns the principals below `org_paths` must match.
    pub org_arns: Vec<String>,
    /// The `sagekeeper.io/owner-uid` tag the principals below `org_paths` must carry (the
    /// environment's, on the roles it made): a role of the same name someone else made in an
    /// account of the unit is not admitted.
    pub owner_uid: Option<String>,
}

impl Principals {
    /// `arns` of accounts below `org_paths` (`by_org_path`) become ARN patterns there; the
    /// others are named.
    pub fn of<'a>(arns: impl IntoIterator<Item = (&'a str, bool)>, org_paths: &[String]) -> Self {
        let mut out = Principals::default();
        for (arn, by_org_path) in arns {
            if by_org_path && !org_paths.is_empty() {
                out.org_arns.push(any_account(arn));
            } else {
                out.arns.push(arn.to_owned());
            }
        }
        for list in [&mut out.arns, &mut out.org_arns] {
            list.sort();
            list.dedup();
        }
        if !out.org_arns.is_empty() {
            out.org_paths = org_paths.to_vec();
        }
        out
    }

    /// The same, requiring the principals below `org_paths` to carry `uid` as their
    /// `sagekeeper.io/owner-uid` tag.
    pub fn owned_by(self, uid: &str) -> Self {
        Self { owner_uid: Some(uid.to_owned()), ..self }
    }

    /// Whether it grants nobody.
    pub fn is_empty(&self) -> bool {
        self.arns.is_empty() && self.org_arns.is_empty()
    }

    /// The organizations of `org_paths` (their first segment, `o-…`), each once.
    pub fn org_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> =
            self.org_paths.iter().filter_map(|p| p.split('/').next()).map(str::to_owned).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// An IAM ARN with its account left open: `arn:aws:iam::*:role/<name>`.
fn any_account(arn: &str) -> String {
    let mut parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() == 6 {
        parts[4] = "*";
    }
    parts.join(":")
}

impl Environment {
    /// The dev account and every target account: by id, or by organization path.
    pub fn accounts(&self) -> Accounts {
        let mut ids: Vec<String> = std::iter::once(&self.account_id)
            .chain(
                self.targets
                    .iter()
                    .filter(|t| !t.by_org_path || self.target_org_paths.is_empty())
                    .map(|t| &t.account_id),
            )
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        let by_path = self.targets.iter().any(|t| t.by_org_path);
        Accounts { ids, org_paths: if by_path { self.target_org_paths.clone() } else { Vec::new() } }
    }

    /// The target accounts' model execution roles (below an organization path: the roles of
    /// that name carrying the environment's uid).
    pub fn target_model_roles(&self) -> Principals {
        let roles = self.targets.iter().map(|t| (t.model_execution_role.as_str(), t.by_org_path));
        Principals::of(roles, &self.target_org_paths).owned_by(&self.uid)
    }
}

/// The people-facing roles of an environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Persona {
    /// Builds and trains models; can never approve one.
    DataScientist,
    /// Runs the team's environment and approves model versions.
    TeamAdmin,
}

impl Persona {
    /// The name used in the API and in the `sagekeeper.io/persona` tag of user profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::DataScientist => "DataScientist",
            Persona::TeamAdmin => "TeamAdmin",
        }
    }
}

/// Where ARNs point: a partition, a region and an account.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope<'a> {
    pub(crate) partition: &'a str,
    pub(crate) region: &'a str,
    pub(crate) account: &'a str,
}

impl<'a> Scope<'a> {
    /// The dev account of an environment.
    pub(crate) fn dev(env: &'a Environment) -> Self {
        Scope { partition: &env.partition, region: &env.region, account: &env.account_id }
    }

    /// A target account of an environment (same partition and region).
    pub(crate) fn target(env: &'a Environment, target: &'a Target) -> Self {
        Scope { partition: &env.partition, region: &env.region, account: &target.account_id }
    }

    /// A regional ARN of this account.
    pub(crate) fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}:{}:{}:{resource}", self.partition, self.region, self.account)
    }
}

/// The root principal of an account.
pub(crate) fn root_arn(partition: &str, account: &str) -> String {
    format!("arn:{partition}:iam::{account}:root")
}

/// A bucket and every object in it, the two resources bucket-wide statements name.
pub(crate) fn bucket_and_objects(partition: &str, bucket: &str) -> [String; 2] {
    [format!("arn:{partition}:s3:::{bucket}"), format!("arn:{partition}:s3:::{bucket}/*")]
}

/// Service endpoint DNS suffix of a partition, as `kms:ViaService` values spell it.
pub(crate) fn dns_suffix(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A two-target environment every test builds its documents from.

    use super::*;

    pub(crate) const DEV: &str = "111111111111";
    pub(crate) const STAGING: &str = "222222222222";
    pub(crate) const PROD: &str = "333333333333";
    pub(crate) const CONTROLLER: &str = "arn:aws:iam::111111111111:role/sagekeeper";
    pub(crate) const EXECUTION: &str = "arn:aws:iam::111111111111:role/sk-fraud-3f2a-execution";
    pub(crate) const PIPELINE: &str = "arn:aws:iam::111111111111:role/sk-fraud-3f2a-pipeline";
    pub(crate) const MODEL_EXECUTION: &str = "arn:aws:iam::111111111111:role/sk-fraud-3f2a-model-execution";
    pub(crate) const DATA_SCIENTIST: &str = "arn:aws:iam::111111111111:role/sk-fraud-3f2a-data-scientist";
    pub(crate) const TEAM_ADMIN: &str = "arn:aws:iam::111111111111:role/sk-fraud-3f2a-team-admin";
    pub(crate) const EBS_KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/ebs";
    pub(crate) const STUDIO_KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/studio";
    pub(crate) const S3_KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/s3";
    pub(crate) const STAGING_ROLE: &str = "arn:aws:iam::222222222222:role/sk-fraud-3f2a-model-execution";
    pub(crate) const PROD_ROLE: &str = "arn:aws:iam::333333333333:role/sk-fraud-3f2a-model-execution";
    pub(crate) const STAGING_CONTROLLER: &str = "arn:aws:iam::222222222222:role/sagekeeper-deployer";

    pub(crate) fn target(account: &str, role: &str, controller: &str) -> Target {
        Target {
            account_id: account.into(),
            controller_arns: vec![controller.into()],
            model_execution_role: role.into(),
            endpoint_key: format!("arn:aws:kms:us-east-1:{account}:key/endpoint"),
            capture_bucket: format!("sk-fraud-3f2a-{account}-capture"),
            by_org_path: false,
        }
    }

    pub(crate) fn env() -> Environment {
        Environment {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account_id: DEV.into(),
            name_prefix: "sk-fraud-3f2a".into(),
            uid: "0b9d3c1e-5f7a-4c2b-9e8d-1a2b3c4d5e6f".into(),
            controller_arns: vec![CONTROLLER.into()],
            data_bucket: "sk-fraud-3f2a-111111111111-us-east-1-data".into(),
            models_bucket: "sk-fraud-3f2a-111111111111-us-east-1-models".into(),
            keys: Keys { ebs: EBS_KEY.into(), studio: STUDIO_KEY.into(), s3: S3_KEY.into() },
            roles: Roles {
                execution: EXECUTION.into(),
                pipeline: PIPELINE.into(),
                model_execution: MODEL_EXECUTION.into(),
                data_scientist: Some(DATA_SCIENTIST.into()),
                team_admin: Some(TEAM_ADMIN.into()),
            },
            s3_endpoint_ids: vec!["vpce-s3dev".into(), "vpce-s3stg".into(), "vpce-s3prd".into()],
            kms_endpoint_ids: vec!["vpce-kmsdev".into(), "vpce-kmsstg".into(), "vpce-kmsprd".into()],
            subnets: vec!["subnet-0a1".into(), "subnet-0b2".into()],
            security_groups: vec!["sg-0work".into()],
            studio_domain_id: Some("d-abc123".into()),
            flow_log_group: "/sagekeeper/vpc-flow-logs/fraud-3f2a".into(),
            targets: vec![
                target(STAGING, STAGING_ROLE, STAGING_CONTROLLER),
                target(PROD, PROD_ROLE, "arn:aws:iam::333333333333:role/sagekeeper-deployer"),
            ],
            target_org_paths: Vec::new(),
            borrowed_keys: Default::default(),
        }
    }

    /// The production targets' organization path, nested units included.
    pub(crate) const PROD_PATH: &str = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*";

    /// `env()` with its production account taken from an organizational unit.
    pub(crate) fn env_with_prod_unit() -> Environment {
        let mut env = env();
        env.target_org_paths = vec![PROD_PATH.into()];
        env.targets[1].by_org_path = true;
        env
    }
}
