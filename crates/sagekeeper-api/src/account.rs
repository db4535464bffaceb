//! `AwsAccount`: a trusted AWS account, how sagekeeper reaches it, and which namespaces may use it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::schema::{ACCOUNT_ID, EXTERNAL_ID, POLICY_ARN, REGION, ROLE_ARN, bound_label_selector};

/// How sagekeeper reaches the account and which namespaces may use it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sagekeeper.io",
    version = "v1alpha1",
    kind = "AwsAccount",
    plural = "awsaccounts",
    shortname = "awsacct",
    category = "sagekeeper",
    status = "AwsAccountStatus",
    doc = "A trusted AWS account: how sagekeeper reaches it and which namespaces may use it.",
    printcolumn(name = "Account-ID", type_ = "string", json_path = ".spec.accountId"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new(
    "!has(self.roleArn) || self.roleArn.contains(':iam::' + self.accountId + ':role/')"
).message("spec.roleArn must name a role in spec.accountId").field_path(".roleArn"))]
#[x_kube(validation = Rule::new(
    "!has(self.permissionsBoundaryArn) || self.permissionsBoundaryArn.contains(':iam::' + self.accountId + ':') || self.permissionsBoundaryArn.contains(':iam::aws:')"
).message("spec.permissionsBoundaryArn must name a policy in spec.accountId or an AWS managed policy").field_path(".permissionsBoundaryArn"))]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountSpec {
    /// The 12-digit AWS account id. Immutable.
    #[schemars(length(max = 12), pattern(ACCOUNT_ID))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.accountId is immutable"))]
    pub account_id: String,

    /// IAM role sagekeeper assumes in this account. Omit it for the account of sagekeeper's own
    /// credentials. The role's account must equal accountId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(ROLE_ARN))]
    pub role_arn: Option<String>,

    /// External id passed to sts:AssumeRole, when the role's trust policy requires one.
    /// It is not a secret: it guards against the confused-deputy problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224), pattern(EXTERNAL_ID))]
    pub external_id: Option<String>,

    /// Regions sagekeeper may use in this account. Absent: any region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), inner(length(max = 32), pattern(REGION)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub regions: Option<Vec<String>>,

    /// IAM managed policy attached as permissions boundary to every role sagekeeper creates here.
    /// Absent: `arn:<partition>:iam::<accountId>:policy/sagekeeper-boundary`, the policy of
    /// `deploy/aws/sagekeeper-boundary.json`. It must exist (the account is Stalled until it
    /// does); the shipped deployer policy creates and changes roles only with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(POLICY_ARN))]
    pub permissions_boundary_arn: Option<String>,

    /// Which namespaces may use this account; objects elsewhere are refused with
    /// AccountNotPermitted. Select by `kubernetes.io/metadata.name`, which the API server sets and
    /// users cannot: a selector on other labels is only as strong as the RBAC on labelling
    /// namespaces. It must name what it admits: an empty selector, or one made only of NotIn or
    /// DoesNotExist, is refused.
    #[schemars(transform = bound_label_selector)]
    #[x_kube(validation = Rule::new(
        "(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && self.matchExpressions.exists(e, e.operator == 'In' || e.operator == 'Exists'))"
    ).message("spec.namespaceSelector must name the namespaces it admits: a matchLabels entry, or an In or Exists expression (NotIn and DoesNotExist alone would admit almost every namespace)"))]
    #[x_kube(validation = Rule::new(
        "!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator == 'In' || e.operator == 'NotIn') ? (has(e.values) && size(e.values) > 0) : ((e.operator == 'Exists' || e.operator == 'DoesNotExist') && (!has(e.values) || size(e.values) == 0)))"
    ).message("spec.namespaceSelector.matchExpressions: the operator must be In or NotIn with values, or Exists or DoesNotExist without"))]
    pub namespace_selector: LabelSelector,
}

/// What sagekeeper last observed of an AwsAccount.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The identity STS reported for sagekeeper's credentials in this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_arn: Option<String>,

    /// The permissions boundary every role sagekeeper creates here carries (spec or default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary_arn: Option<String>,

    /// Ready: credentials obtained, the caller's account is accountId and the permissions
    /// boundary exists. Also Stalled, Reconciling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Name of the permissions boundary policy sagekeeper expects when an AwsAccount names none.
pub const DEFAULT_BOUNDARY_NAME: &str = "sagekeeper-boundary";

impl AwsAccountSpec {
    /// The permissions boundary of every role sagekeeper creates in this account: the spec's, or
    /// `arn:<partition>:iam::<accountId>:policy/sagekeeper-boundary` (the partition of roleArn).
    /// A CRD default cannot be computed from another field, so the controller resolves it.
    pub fn boundary_arn(&self) -> String {
        self.permissions_boundary_arn.clone().unwrap_or_else(|| {
            let partition = self.role_arn.as_deref().and_then(|arn| arn.split(':').nth(1)).unwrap_or("aws");
            format!("arn:{partition}:iam::{}:policy/{DEFAULT_BOUNDARY_NAME}", self.account_id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(role_arn: Option<&str>, boundary: Option<&str>) -> AwsAccountSpec {
        AwsAccountSpec {
            account_id: "111111111111".into(),
            role_arn: role_arn.map(str::to_owned),
            external_id: None,
            regions: None,
            permissions_boundary_arn: boundary.map(str::to_owned),
            namespace_selector: LabelSelector::default(),
        }
    }

    #[test]
    fn the_boundary_defaults_to_sagekeeper_boundary_in_the_accounts_partition() {
        assert_eq!(spec(None, None).boundary_arn(), "arn:aws:iam::111111111111:policy/sagekeeper-boundary");
        let china = spec(Some("arn:aws-cn:iam::111111111111:role/deployer"), None);
        assert_eq!(china.boundary_arn(), "arn:aws-cn:iam::111111111111:policy/sagekeeper-boundary");
        let own = "arn:aws:iam::111111111111:policy/team/own-boundary";
        assert_eq!(spec(None, Some(own)).boundary_arn(), own);
    }
}
