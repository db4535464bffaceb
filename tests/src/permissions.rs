//! The deployer role's permissions (`deploy/aws/deployer-permissions.json`) against the calls the
//! controller made. The emulator does not enforce Allow statements, so this is how the tests
//! keep the shipped policy complete: every operation the controller's session called must be an
//! action the policy allows. Resources and conditions are not evaluated here.

use std::collections::BTreeSet;

use crate::emulator::Call;

/// The policy shipped for the role sagekeeper assumes in each account.
pub const DEPLOYER_PERMISSIONS: &str = include_str!("../../deploy/aws/deployer-permissions.json");

/// The permissions boundary shipped for every role sagekeeper creates.
pub const BOUNDARY: &str = include_str!("../../deploy/aws/sagekeeper-boundary.json");

/// The deployer policy for `account`, as a platform team installs it.
pub fn deployer_permissions(account: &str) -> String {
    DEPLOYER_PERMISSIONS.replace("ACCOUNT_ID", account)
}

/// The IAM actions the deployer policy allows (as written, possibly with `*`).
fn allowed_actions() -> Vec<String> {
    let policy: serde_json::Value = serde_json::from_str(DEPLOYER_PERMISSIONS).expect("deployer-permissions.json");
    let mut actions = Vec::new();
    for statement in policy["Statement"].as_array().expect("Statement") {
        if statement["Effect"] != "Allow" {
            continue;
        }
        match &statement["Action"] {
            serde_json::Value::String(a) => actions.push(a.clone()),
            serde_json::Value::Array(list) => actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned))),
            other => panic!("Action must be a string or a list: {other}"),
        }
    }
    actions
}

/// The IAM action that authorizes `operation` of `service`. Only S3's REST operations are named
/// differently from their actions.
pub fn action(service: &str, operation: &str) -> String {
    let s3 = match operation {
        "GetBucketEncryption" => Some("GetEncryptionConfiguration"),
        "PutBucketEncryption" => Some("PutEncryptionConfiguration"),
        "GetPublicAccessBlock" => Some("GetBucketPublicAccessBlock"),
        "PutPublicAccessBlock" => Some("PutBucketPublicAccessBlock"),
        "ListObjectVersions" => Some("ListBucketVersions"),
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => Some("ListBucket"),
        "DeleteObjects" => Some("DeleteObject"),
        _ => None,
    };
    match (service, s3) {
        ("s3", Some(action)) => format!("s3:{action}"),
        _ => format!("{service}:{operation}"),
    }
}

/// The actions `caller` (a session ARN) called (through `calls`) that the deployer policy does
/// not allow.
pub fn unpermitted(calls: &[Call], caller: &str) -> BTreeSet<String> {
    let allowed = allowed_actions();
    calls
        .iter()
        .filter(|c| c.caller == caller)
        .map(|c| action(&c.service, &c.operation))
        .filter(|a| !allowed.iter().any(|p| sagekeeper_policy::action_matches(p, a)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(caller: &str, service: &str, operation: &str) -> Call {
        Call {
            account: "111111111111".into(),
            caller: caller.into(),
            service: service.into(),
            operation: operation.into(),
            status: 200,
            decision: None,
            message: None,
        }
    }

    #[test]
    fn s3_rest_operations_map_to_their_actions() {
        assert_eq!(action("s3", "GetBucketEncryption"), "s3:GetEncryptionConfiguration");
        assert_eq!(action("s3", "CreateBucket"), "s3:CreateBucket");
        assert_eq!(action("ec2", "CreateVpc"), "ec2:CreateVpc");
    }

    #[test]
    fn only_the_roles_calls_outside_the_policy_are_reported() {
        let session = "arn:aws:sts::111111111111:assumed-role/sagekeeper-deployer/sagekeeper";
        let calls = [
            call(session, "ec2", "CreateVpc"),
            call(session, "ec2", "RunInstances"),
            call("arn:aws:sts::111111111111:assumed-role/sagekeeper-deployer/tests", "ec2", "TerminateInstances"),
        ];
        assert_eq!(unpermitted(&calls, session), BTreeSet::from(["ec2:RunInstances".to_owned()]));
    }

    /// IAM counts a policy's characters without white space: at most 6,144 for a managed policy
    /// (the boundary) and 10,240 for a role's inline policies together (the deployer's).
    #[test]
    fn the_shipped_policies_fit_iams_size_limits() {
        let size = |text: &str| text.chars().filter(|c| !c.is_whitespace()).count();
        let boundary = size(BOUNDARY);
        assert!(boundary <= 6_144, "the boundary has {boundary} characters; a managed policy takes 6,144");
        let deployer = size(&deployer_permissions("111111111111"));
        assert!(
            deployer <= 10_240,
            "the deployer policy has {deployer} characters; a role's inline policies take 10,240"
        );
    }

    #[test]
    fn globs_match_actions() {
        use sagekeeper_policy::action_matches;
        assert!(action_matches("ec2:Describe*", "ec2:DescribeVpcs"));
        assert!(action_matches("s3:*", "s3:GetBucketPolicy"));
        assert!(!action_matches("ec2:Describe*", "ec2:CreateVpc"));
        assert!(action_matches("kms:ListKeys", "kms:listkeys"));
    }
}
