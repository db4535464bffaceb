//! VPC endpoint policies, in dev and target accounts alike. The S3 gateway endpoint lets through
//! only the environment's buckets and the AWS-owned buckets SageMaker and ECR read; every
//! interface endpoint only principals of the environment's accounts acting on resources of those
//! accounts, and its ECR endpoints also pulls from the region's SageMaker image registries. So
//! credentials from elsewhere cannot use the environment's private network, and the
//! environment's own credentials cannot carry data out through it to another account.
//!
//! AWS-owned buckets, and where they are documented:
//! - `prod-<region>-starport-layer-bucket`: ECR image layers, `s3:GetObject` on its objects
//!   (Amazon ECR User Guide, "Amazon ECR interface VPC endpoints", minimum S3 bucket permissions).
//! - `sagemaker-example-files-prod-<region>`, `sagemaker-sample-files` and
//!   `jumpstart-cache-prod-<region>`: the sample datasets and JumpStart artifacts the official
//!   aws/amazon-sagemaker-examples notebooks and the SageMaker Python SDK read. Read-only.
//!
//! The reference allowed `arn:aws:s3:::*sagemaker*`: any bucket with "sagemaker" in its name, in
//! any account, so anyone could create such a bucket and carry data out through the endpoint.
//! The SageMaker SDK's `default_bucket()` (`sagemaker-<region>-<account>`) is refused for the same
//! reason: work goes to the environment's buckets.

use serde_json::Value;

use crate::document::{Statement, document};
use crate::inputs::{Accounts, bucket_and_objects};

/// What the environment's workloads do in their own buckets (the bucket and identity policies
/// narrow it further per role).
const DATA_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListBucketMultipartUploads",
    "s3:ListMultipartUploadParts",
    "s3:AbortMultipartUpload",
];

/// What a principal pulling an image does in a registry.
const IMAGE_PULL_ACTIONS: &[&str] =
    &["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"];

/// The S3 gateway endpoint policy of a dev or target VPC. `buckets`: the environment's data and
/// models buckets (in a target account: the dev models bucket and the capture bucket);
/// `accounts`: the environment's accounts, whose principals alone may use them (those of an
/// organizational unit by its path).
///
/// ECR's layer downloads are presigned by ECR, so their principal is AWS's, not the puller's:
/// that grant names no principal account. It reads one AWS-owned bucket and can write nothing.
pub fn s3_gateway_policy(partition: &str, region: &str, buckets: &[String], accounts: &Accounts) -> Value {
    let mut statements = Vec::new();
    if !buckets.is_empty() {
        let buckets = Statement::allow("EnvironmentBuckets")
            .any_principal()
            .actions(DATA_ACTIONS)
            .resources(buckets.iter().flat_map(|b| bucket_and_objects(partition, b)));
        statements.extend(buckets.per_principal_accounts(accounts).into_iter().map(Statement::build));
    }
    statements.push(
        Statement::allow("EcrImageLayers")
            .any_principal()
            .actions(&["s3:GetObject"])
            .resources([format!("arn:{partition}:s3:::prod-{region}-starport-layer-bucket/*")])
            .build(),
    );
    // sagemaker-sample-files lives in one region; gateway endpoints only route same-region
    // buckets, so elsewhere this grant is simply never used.
    let samples = [
        format!("sagemaker-example-files-prod-{region}"),
        "sagemaker-sample-files".to_string(),
        format!("jumpstart-cache-prod-{region}"),
    ];
    let samples = Statement::allow("SageMakerSampleBucketsRead")
        .any_principal()
        .actions(&["s3:GetObject", "s3:ListBucket"])
        .resources(samples.iter().flat_map(|b| bucket_and_objects(partition, b)));
    statements.extend(samples.per_principal_accounts(accounts).into_iter().map(Statement::build));
    document(statements)
}

/// The policy of interface endpoint `key` (e.g. `sts`, `ecr.dkr`): principals of `accounts`
/// acting on resources of `accounts` (each side by id or by organization path: up to four
/// statements); the ECR endpoints also let them pull from the region's SageMaker image
/// registries (`images::sagemaker_image_accounts`).
pub fn interface_policy(partition: &str, region: &str, key: &str, accounts: &Accounts) -> Value {
    let everything = Statement::allow("EnvironmentAccounts").any_principal().actions(&["*"]).resources(["*"]);
    let mut statements: Vec<Value> = everything
        .per_principal_accounts(accounts)
        .into_iter()
        .flat_map(|s| s.per_resource_accounts(accounts))
        .map(Statement::build)
        .collect();
    if key.starts_with("ecr.") {
        let registries = crate::images::sagemaker_image_accounts(region);
        let images = Statement::allow("SageMakerImages")
            .any_principal()
            .actions(IMAGE_PULL_ACTIONS)
            .resources(registries.iter().map(|a| format!("arn:{partition}:ecr:{region}:{a}:repository/*")));
        statements.extend(images.per_principal_accounts(accounts).into_iter().map(Statement::build));
    }
    document(statements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::checks::{statement, well_formed};
    use serde_json::json;

    fn accounts() -> Accounts {
        Accounts { ids: vec!["111111111111".into(), "222222222222".into()], org_paths: Vec::new() }
    }

    const UNIT: &str = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*";

    /// The dev account by id, and an organizational unit of target accounts by path.
    fn with_unit() -> Accounts {
        Accounts { ids: vec!["111111111111".into()], org_paths: vec![UNIT.into()] }
    }

    fn dev_policy() -> Value {
        s3_gateway_policy("aws", "eu-west-1", &["team-data".into(), "team-models".into()], &accounts())
    }

    #[test]
    fn gateway_policy_is_well_formed_and_round_trips() {
        well_formed(&dev_policy());
        well_formed(&s3_gateway_policy("aws", "eu-west-1", &[], &accounts()));
        well_formed(&interface_policy("aws", "eu-west-1", "sts", &accounts()));
        well_formed(&interface_policy("aws", "eu-west-1", "ecr.dkr", &accounts()));
    }

    #[test]
    fn gateway_allows_the_environment_buckets() {
        assert_eq!(
            statement(&dev_policy(), "EnvironmentBuckets"),
            &json!({"Sid": "EnvironmentBuckets", "Effect": "Allow", "Principal": "*", "Action": DATA_ACTIONS,
                "Resource": ["arn:aws:s3:::team-data", "arn:aws:s3:::team-data/*",
                    "arn:aws:s3:::team-models", "arn:aws:s3:::team-models/*"],
                "Condition": {"StringEquals": {"aws:PrincipalAccount": ["111111111111", "222222222222"]}}})
        );
    }

    #[test]
    fn gateway_allows_reading_ecr_layers_and_sagemaker_samples_of_the_region() {
        let policy = dev_policy();
        assert_eq!(
            statement(&policy, "EcrImageLayers"),
            &json!({"Sid": "EcrImageLayers", "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                "Resource": ["arn:aws:s3:::prod-eu-west-1-starport-layer-bucket/*"]})
        );
        assert_eq!(
            statement(&policy, "SageMakerSampleBucketsRead"),
            &json!({"Sid": "SageMakerSampleBucketsRead", "Effect": "Allow", "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": [
                    "arn:aws:s3:::sagemaker-example-files-prod-eu-west-1",
                    "arn:aws:s3:::sagemaker-example-files-prod-eu-west-1/*",
                    "arn:aws:s3:::sagemaker-sample-files", "arn:aws:s3:::sagemaker-sample-files/*",
                    "arn:aws:s3:::jumpstart-cache-prod-eu-west-1", "arn:aws:s3:::jumpstart-cache-prod-eu-west-1/*"],
                "Condition": {"StringEquals": {"aws:PrincipalAccount": ["111111111111", "222222222222"]}}})
        );
        assert!(statement(&policy, "EcrImageLayers").get("Condition").is_none(), "ECR presigns layer downloads");
    }

    #[test]
    fn gateway_names_no_wildcard_bucket() {
        let policy = dev_policy();
        for s in policy["Statement"].as_array().into_iter().flatten() {
            assert_eq!(s["Effect"], "Allow");
            for resource in s["Resource"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                let bucket = resource.trim_start_matches("arn:aws:s3:::").split('/').next().unwrap_or_default();
                assert!(!bucket.contains('*') && !bucket.contains('?') && !bucket.is_empty(), "{resource}");
            }
        }
    }

    #[test]
    fn gateway_without_buckets_allows_only_aws_owned_reads() {
        let policy = s3_gateway_policy("aws-us-gov", "us-gov-west-1", &[], &accounts());
        assert_eq!(crate::statement_ids(&policy), ["EcrImageLayers", "SageMakerSampleBucketsRead"]);
        assert_eq!(
            statement(&policy, "EcrImageLayers")["Resource"],
            json!(["arn:aws-us-gov:s3:::prod-us-gov-west-1-starport-layer-bucket/*"])
        );
    }

    #[test]
    fn interface_endpoints_admit_only_the_environments_accounts_on_both_sides() {
        for key in ["sagemaker.api", "sts", "kms", "logs", "notebook"] {
            let policy = interface_policy("aws", "eu-west-1", key, &accounts());
            assert_eq!(crate::statement_ids(&policy), ["EnvironmentAccounts"], "{key}");
            assert_eq!(
                statement(&policy, "EnvironmentAccounts"),
                &json!({"Sid": "EnvironmentAccounts", "Effect": "Allow", "Principal": "*", "Action": ["*"],
                    "Resource": ["*"], "Condition": {"StringEquals": {
                        "aws:PrincipalAccount": ["111111111111", "222222222222"],
                        "aws:ResourceAccount": ["111111111111", "222222222222"]}}}),
                "{key}"
            );
        }
    }

    #[test]
    fn ecr_endpoints_also_pull_from_the_regions_sagemaker_registries_only() {
        for key in ["ecr.api", "ecr.dkr"] {
            let policy = interface_policy("aws", "eu-west-1", key, &accounts());
            let images = statement(&policy, "SageMakerImages");
            assert_eq!(images["Action"], json!(IMAGE_PULL_ACTIONS), "pulls, never pushes");
            let resources: Vec<&str> =
                images["Resource"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            assert!(resources.contains(&"arn:aws:ecr:eu-west-1:141502667606:repository/*"), "{resources:?}");
            assert!(resources.iter().all(|r| r.starts_with("arn:aws:ecr:eu-west-1:")), "{resources:?}");
            assert_eq!(
                images["Condition"],
                json!({"StringEquals": {"aws:PrincipalAccount": ["111111111111", "222222222222"]}})
            );
        }
    }

    #[test]
    fn a_unit_of_target_accounts_is_admitted_by_its_path_in_a_statement_of_its_own() {
        let by_id = json!({"StringEquals": {"aws:PrincipalAccount": ["111111111111"]}});
        let by_path = json!({"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [UNIT]}});
        let gateway = s3_gateway_policy("aws", "eu-west-1", &["team-models".into()], &with_unit());
        well_formed(&gateway);
        assert_eq!(statement(&gateway, "EnvironmentBuckets")["Condition"], by_id);
        assert_eq!(statement(&gateway, "EnvironmentBucketsByOrgPath")["Condition"], by_path);
        assert_eq!(statement(&gateway, "SageMakerSampleBucketsReadByOrgPath")["Condition"], by_path);
        assert_eq!(
            statement(&gateway, "EnvironmentBucketsByOrgPath")["Resource"],
            statement(&gateway, "EnvironmentBuckets")["Resource"]
        );

        // Both sides of an interface endpoint: each pair of ways, never a side left open.
        let policy = interface_policy("aws", "eu-west-1", "ecr.dkr", &with_unit());
        well_formed(&policy);
        let principal_path = json!([UNIT]);
        let conditions: Vec<(&str, Value)> = ["", "ResourcesByOrgPath", "ByOrgPath", "ByOrgPathResourcesByOrgPath"]
            .iter()
            .map(|suffix| (*suffix, statement(&policy, &format!("EnvironmentAccounts{suffix}"))["Condition"].clone()))
            .collect();
        for (suffix, condition) in &conditions {
            let principal = if suffix.starts_with("ByOrgPath") {
                &condition["ForAnyValue:StringLike"]["aws:PrincipalOrgPaths"]
            } else {
                &condition["StringEquals"]["aws:PrincipalAccount"]
            };
            let resource = if suffix.ends_with("ResourcesByOrgPath") {
                &condition["ForAnyValue:StringLike"]["aws:ResourceOrgPaths"]
            } else {
                &condition["StringEquals"]["aws:ResourceAccount"]
            };
            for side in [principal, resource] {
                assert!(*side == json!(["111111111111"]) || *side == principal_path, "{suffix}: {condition}");
            }
        }
        assert_eq!(statement(&policy, "SageMakerImagesByOrgPath")["Condition"], by_path);
        assert_eq!(crate::statement_ids(&policy).len(), 6);
    }
}
