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

/// The group policy for `group_arn`, granting exactly the target accounts' model execution
/// roles (`model_roles`) and deployer roles (`deployers`, which create models from the
/// versions): by ARN, or in an organizational unit of target accounts by path and role name (the
/// model roles also by the environment's owner tag). Never an account root: that would let every
/// principal of a target account whose own policy allows these actions use the registry. `None`
/// when there is no target account: no policy at all.
pub fn group_policy(group_arn: &str, model_roles: &Principals, deployers: &Principals) -> Option<Value> {
    if model_roles.is_empty() && deployers.is_empty() {
        return None;
    }
    let versions = group_arn.replacen(":model-package-group/", ":model-package/", 1) + "/*";
    let named = Principals {
        arns: model_roles
            .arns
            .iter()
            .chain(&deployers.arns)
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        ..Principals::default()
    };
    let group = Statement::allow("TargetAccountsReadGroup").actions(GROUP_READ_ACTIONS).resources([group_arn]);
    let versions = Statement::allow("TargetAccountsUseVersions").actions(VERSION_ACTIONS).resources([versions]);
    let mut statements = Vec::new();
    for statement in [group, versions] {
        statements.extend(statement.clone().per_principals(&named, ""));
        let by_path = |p: &Principals| Principals { arns: Vec::new(), ..p.clone() };
        statements.extend(statement.clone().per_principals(&by_path(model_roles), "ModelRolesByOrgPath"));
        statements.extend(statement.per_principals(&by_path(deployers), "DeployersByOrgPath"));
    }
    Some(document(statements.into_iter().map(Statement::build).collect()))
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
        let models = Principals::of([(model, false)], &[]);
        let policy =
            group_policy(GROUP, &models, &Principals::of([(deployer, false), (deployer, false)], &[])).unwrap();
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
        let policy = group_policy(GROUP, &Principals::default(), &Principals::of([(deployer, false)], &[])).unwrap();
        let text = policy.to_string();
        for forbidden in ["UpdateModelPackage", "CreateModelPackage", "Delete", "Put", "*\"]"] {
            assert!(!text.contains(&format!("sagemaker:{forbidden}")), "{forbidden} in {text}");
        }
        assert!(!text.contains("\"Deny\""));
    }

    #[test]
    fn no_target_account_means_no_policy() {
        assert_eq!(group_policy(GROUP, &Principals::default(), &Principals::default()), None);
        // A unit with no target account in it yet grants nothing either.
        let unit = Principals::of([], &["o-a1b2c3d4e5/r-ab12/".into()]);
        assert_eq!(group_policy(GROUP, &unit, &unit), None);
    }

    #[test]
    fn a_unit_of_target_accounts_reads_by_path_and_role_names_the_model_roles_also_by_owner_tag() {
        let path = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/".to_owned();
        let deployers = Principals::of(
            [
                ("arn:aws:iam::222222222222:role/sagekeeper-deployer", false),
                ("arn:aws:iam::333333333333:role/sagekeeper-deployer", true),
            ],
            std::slice::from_ref(&path),
        );
        let models = Principals::of(
            [
                ("arn:aws:iam::333333333333:role/sk-fraud-model-execution", true),
                ("arn:aws:iam::444444444444:role/sk-fraud-model-execution", true),
            ],
            std::slice::from_ref(&path),
        )
        .owned_by("env-uid");
        let policy = group_policy(GROUP, &models, &deployers).unwrap();
        let versions = json!(["arn:aws:sagemaker:us-east-1:111111111111:model-package/team-fraud-churn/*"]);
        assert_eq!(
            find_statement(&policy, "TargetAccountsUseVersionsModelRolesByOrgPath").unwrap(),
            &json!({"Sid": "TargetAccountsUseVersionsModelRolesByOrgPath", "Effect": "Allow", "Principal": "*",
            "Action": ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages", "sagemaker:CreateModel"],
            "Resource": versions,
            "Condition": {
                "StringEquals": {"aws:PrincipalOrgID": ["o-a1b2c3d4e5"], "aws:PrincipalTag/sagekeeper.io/owner-uid": "env-uid"},
                "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [path]},
                "ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/sk-fraud-model-execution"]}
            }})
        );
        assert_eq!(
            find_statement(&policy, "TargetAccountsUseVersionsDeployersByOrgPath").unwrap()["Condition"],
            json!({
                "StringEquals": {"aws:PrincipalOrgID": ["o-a1b2c3d4e5"]},
                "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [path]},
                "ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/sagekeeper-deployer"]}
            })
        );
        assert_eq!(
            find_statement(&policy, "TargetAccountsReadGroup").unwrap()["Principal"],
            json!({"AWS": ["arn:aws:iam::222222222222:role/sagekeeper-deployer"]})
        );
        assert_eq!(crate::statement_ids(&policy).len(), 6);
        assert!(!policy.to_string().contains("333333333333") && !policy.to_string().contains("444444444444"));
    }
}
