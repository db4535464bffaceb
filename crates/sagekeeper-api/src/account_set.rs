//! `AwsAccountSet`: every active account of an AWS Organizations OU, now and later, each as an
//! `AwsAccount` the set owns.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::schema::{EXTERNAL_ID, MAX_NAME, OBJECT_NAME, bound_label_selector};

/// The label on every AwsAccount a set made: the set's name.
pub const SET_LABEL: &str = "sagekeeper.io/account-set";

/// Which OU, read through which account, and how to reach and admit its member accounts.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sagekeeper.io",
    version = "v1alpha1",
    kind = "AwsAccountSet",
    plural = "awsaccountsets",
    shortname = "awsacctset",
    category = "sagekeeper",
    status = "AwsAccountSetStatus",
    doc = "Every active account of an AWS Organizations OU, each kept as an AwsAccount the set owns.",
    printcolumn(name = "OU", type_ = "string", json_path = ".spec.organizationalUnitId"),
    printcolumn(name = "Accounts", type_ = "integer", json_path = ".status.accountCount"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountSetSpec {
    /// The AwsAccount that may read the organization: its management account or a delegated
    /// administrator. Immutable.
    #[schemars(length(max = MAX_NAME), pattern(OBJECT_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.organizationAccount is immutable"))]
    pub organization_account: String,

    /// The organizational unit (ou-...). Immutable.
    #[schemars(length(max = 68), pattern(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.organizationalUnitId is immutable"))]
    pub organizational_unit_id: String,

    /// Whether accounts of OUs nested under it count too. Default true.
    #[serde(default = "yes")]
    pub include_nested_units: bool,

    /// The role sagekeeper assumes in each member account (it must hold the deployer policies,
    /// and the account the permissions boundary, as for any AwsAccount).
    #[schemars(length(min = 1, max = 64), pattern(r"^[\w+=,.@-]+$"))]
    pub role_name: String,

    /// External id passed to sts:AssumeRole in each member account, when the role requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224), pattern(EXTERNAL_ID))]
    pub external_id: Option<String>,

    /// Which namespaces may use the member accounts: given to each AwsAccount the set makes.
    /// The same rules as AwsAccount's namespaceSelector.
    #[schemars(transform = bound_label_selector)]
    #[x_kube(validation = Rule::new(
        "(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && self.matchExpressions.exists(e, e.operator == 'In' || e.operator == 'Exists'))"
    ).message("spec.namespaceSelector must name the namespaces it admits: a matchLabels entry, or an In or Exists expression"))]
    pub namespace_selector: LabelSelector,

    /// How often the OU is read, in seconds (30 to 86400, default 300).
    #[serde(default = "default_poll")]
    #[schemars(range(min = 30, max = 86400))]
    pub poll_interval_seconds: u32,
}

fn yes() -> bool {
    true
}

fn default_poll() -> u32 {
    300
}

/// What sagekeeper last saw of the OU.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountSetStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The OU's path in the organization (`o-…/r-…/ou-…/`), which `aws:PrincipalOrgPaths`
    /// conditions name to admit every member account at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_path: Option<String>,

    /// The active member accounts and the AwsAccount each is used through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<SetAccount>,

    /// How many accounts `accounts` holds.
    #[serde(default)]
    pub account_count: u32,

    /// Ready, Reconciling, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// One member account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetAccount {
    /// The 12-digit account id.
    pub account_id: String,
    /// The AwsAccount it is used through: `<set>-<accountId>`, or one that existed before.
    pub aws_account: String,
    /// The account's name in the organization.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// True when the AwsAccount existed before and is not the set's (it is used only where its
    /// own namespaceSelector admits the namespace).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub existing: bool,
    /// True when the account left the OU and its AwsAccount stays while something uses it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
}

/// The name of the AwsAccount a set makes for a member account.
pub fn member_name(set: &str, account_id: &str) -> String {
    format!("{set}-{account_id}")
}
