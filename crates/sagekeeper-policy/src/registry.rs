//! The model package group's resource policy: the environment's target accounts read the group
//! and its versions and create models from them (what deploying a registered version in another
//! account needs), and nothing else: no approval, no change, no new versions.

use serde_json::Value;

use crate::document::{Statement, document};
use crate::inputs::Principals;

/// What a target account's roles may do on the group itself.
pub const GROUP_READ_ACTIONS: &[&str] = &["sagemaker:DescribeModelPackageGroup", "sagemaker:ListModelPackages"];

/// What a target account may do on the group's versions.
pub const VERSION_ACTIONS: &[&str] =
    &["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages", "sagemaker:CreateModel"];

/// The group policy for `group_arn`, granting exactly `principals`: the target accounts'
/// deployer roles (which create models from the versions) and model execution roles, by ARN or,
/// in an organizational unit of target accounts, by path and role name. Never an account root:
/// that would let every principal of a target account whose own policy allows these actions use
/// the registry. `None` when there is no target account: no policy at all.
pub fn group_policy(group_arn: &str, principals: &Principals) -> Option<Value> {
    if principals.is_empty() {
        return None;
    }
    let versions = group_arn.replacen(":model-package-group/", ":model-package/", 1) + "/*";
    let group = Statement::allow("TargetAccountsReadGroup").actions(GROUP_READ_ACTIONS).resources([group_arn]);
    let versions = Statement::allow("TargetAccountsUseVersions").actions(VERSION_ACTIONS).resources([versions]);
    let statements = [group, versions].into_iter().flat_map(|s| s.per_principals(principals)).map(Statement::build);
    Some(document(statements.collect()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::find_statement;

    const GROUP: &str = "arn:aws:sagemaker:us-east-1:111111111111:model-package-group/team-fraud-churn";

    #[test]
    fn the_target_accounts_deployer_and_model_execution_roles_read_the_group_and_use_its_versions() {
        let (deployer, model) = (
            "arn:aws:iam::222222222222:role/sagekeeper-deployer",
            "arn:aws:iam::222222222222:role/sk-team-fraud-fraud-3f2a1b-model-execution",
        );
        let named = Principals::of([(model, false), (deployer, false), (deployer, false)], &[]);
        let policy = group_policy(GROUP, &named).unwrap();
        let roots = json!({"AWS": [deployer, model]});
        assert!(!policy.to_string().contains(":root"), "{policy}");
        assert_eq!(
            find_statement(&policy, "TargetAccountsReadGroup").unwrap(),
            &json!({"Sid": "TargetAccountsReadGroup", "Effect": "Allow", "Principal": roots,
                "Action": ["sagemaker:DescribeModelPackageGroup", "sagemaker:ListModelPackages"],
                "Resource": [GROUP]})
        );
        assert_eq!(
            find_statement(&policy, "TargetAccountsUseVersions").unwrap(),
            &json!({"Sid": "TargetAccountsUseVersions", "Effect": "Allow", "Principal": roots,
                "Action": ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages", "sagemaker:CreateModel"],
                "Resource": ["arn:aws:sagemaker:us-east-1:111111111111:model-package/team-fraud-churn/*"]})
        );
        assert_eq!(crate::statement_ids(&policy).len(), 2);
    }

    #[test]
    fn nothing_grants_approval_or_change() {
        let deployer = "arn:aws:iam::222222222222:role/sagekeeper-deployer";
        let policy = group_policy(GROUP, &Principals::of([(deployer, false)], &[])).unwrap();
        let text = policy.to_string();
        for forbidden in ["UpdateModelPackage", "CreateModelPackage", "Delete", "Put", "*\"]"] {
            assert!(!text.contains(&format!("sagemaker:{forbidden}")), "{forbidden} in {text}");
        }
        assert!(!text.contains("\"Deny\""));
    }

    #[test]
    fn no_target_account_means_no_policy() {
        assert_eq!(group_policy(GROUP, &Principals::default()), None);
        // A unit with no target account in it yet grants nothing either.
        assert_eq!(group_policy(GROUP, &Principals::of([], &["o-a1b2c3d4e5/r-ab12/".into()])), None);
    }

    #[test]
    fn a_unit_of_target_accounts_reads_by_path_and_role_names_besides_those_named() {
        let path = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/";
        let roles = [
            ("arn:aws:iam::222222222222:role/sagekeeper-deployer", false),
            ("arn:aws:iam::333333333333:role/sagekeeper-deployer", true),
            ("arn:aws:iam::333333333333:role/sk-fraud-model-execution", true),
            ("arn:aws:iam::444444444444:role/sk-fraud-model-execution", true),
        ];
        let policy = group_policy(GROUP, &Principals::of(roles, &[path.into()])).unwrap();
        assert_eq!(
            find_statement(&policy, "TargetAccountsUseVersionsByOrgPath").unwrap(),
            &json!({"Sid": "TargetAccountsUseVersionsByOrgPath", "Effect": "Allow", "Principal": "*",
            "Action": ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages", "sagemaker:CreateModel"],
            "Resource": ["arn:aws:sagemaker:us-east-1:111111111111:model-package/team-fraud-churn/*"],
            "Condition": {
                "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [path]},
                "ArnLike": {"aws:PrincipalArn": [
                    "arn:aws:iam::*:role/sagekeeper-deployer", "arn:aws:iam::*:role/sk-fraud-model-execution"]}
            }})
        );
        assert_eq!(
            find_statement(&policy, "TargetAccountsReadGroup").unwrap()["Principal"],
            json!({"AWS": ["arn:aws:iam::222222222222:role/sagekeeper-deployer"]})
        );
        assert_eq!(crate::statement_ids(&policy).len(), 4);
        assert!(!policy.to_string().contains("333333333333") && !policy.to_string().contains("444444444444"));
    }
}
