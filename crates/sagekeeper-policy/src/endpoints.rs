//! VPC endpoint policies: the S3 gateway endpoint lets through only the environment's buckets and
//! the AWS-owned buckets SageMaker and ECR read, in dev and target accounts alike.
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
use crate::inputs::bucket_and_objects;

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

/// The S3 gateway endpoint policy of a dev or target VPC. `buckets`: the environment's data and
/// models buckets (in a target account: the dev models bucket and the capture bucket).
pub fn s3_gateway_policy(partition: &str, region: &str, buckets: &[String]) -> Value {
    let mut statements = Vec::new();
    if !buckets.is_empty() {
        statements.push(
            Statement::allow("EnvironmentBuckets")
                .any_principal()
                .actions(DATA_ACTIONS)
                .resources(buckets.iter().flat_map(|b| bucket_and_objects(partition, b)))
                .build(),
        );
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
    statements.push(
        Statement::allow("SageMakerSampleBucketsRead")
            .any_principal()
            .actions(&["s3:GetObject", "s3:ListBucket"])
            .resources(samples.iter().flat_map(|b| bucket_and_objects(partition, b)))
            .build(),
    );
    document(statements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::checks::{statement, well_formed};
    use serde_json::json;

    fn dev_policy() -> Value {
        s3_gateway_policy("aws", "eu-west-1", &["team-data".into(), "team-models".into()])
    }

    #[test]
    fn gateway_policy_is_well_formed_and_round_trips() {
        well_formed(&dev_policy());
        well_formed(&s3_gateway_policy("aws", "eu-west-1", &[]));
    }

    #[test]
    fn gateway_allows_the_environment_buckets() {
        assert_eq!(
            statement(&dev_policy(), "EnvironmentBuckets"),
            &json!({"Sid": "EnvironmentBuckets", "Effect": "Allow", "Principal": "*", "Action": DATA_ACTIONS,
                "Resource": ["arn:aws:s3:::team-data", "arn:aws:s3:::team-data/*",
                    "arn:aws:s3:::team-models", "arn:aws:s3:::team-models/*"]})
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
                    "arn:aws:s3:::jumpstart-cache-prod-eu-west-1", "arn:aws:s3:::jumpstart-cache-prod-eu-west-1/*"]})
        );
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
        let policy = s3_gateway_policy("aws-us-gov", "us-gov-west-1", &[]);
        assert_eq!(crate::statement_ids(&policy), ["EcrImageLayers", "SageMakerSampleBucketsRead"]);
        assert_eq!(
            statement(&policy, "EcrImageLayers")["Resource"],
            json!(["arn:aws-us-gov:s3:::prod-us-gov-west-1-starport-layer-bucket/*"])
        );
    }
}
