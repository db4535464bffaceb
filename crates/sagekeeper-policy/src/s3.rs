//! S3 bucket policies: the data and models buckets answer only through the environment's VPC
//! endpoints and over TLS, the controller manages them without reading data, and the target
//! accounts' model execution roles read the models bucket; the capture buckets are TLS-only.

use serde_json::Value;

use crate::document::{Statement, document};
use crate::inputs::{Environment, Principals, Target, bucket_and_objects};

/// The data or models bucket. `readers` (the target accounts' model execution roles, for the
/// models bucket: `Environment::target_model_roles`) may read it from their own accounts,
/// through their own S3 gateway endpoints.
pub fn environment_bucket_policy(env: &Environment, bucket: &str, readers: &Principals) -> Value {
    let arns = bucket_and_objects(&env.partition, bucket);
    let mut statements = vec![
        deny_outside_vpc_endpoints(env, &arns),
        deny_pipeline_writes_outside_vpc_endpoints(env, &arns),
        deny_insecure_transport(&arns),
        // A request naming SSE-S3 (or anything but SSE-KMS) would store data that never meets
        // the s3 key's endpoint perimeter. Requests without the header get the bucket default.
        Statement::deny("DenyNonKmsEncryption")
            .any_principal()
            .actions(&["s3:PutObject"])
            .resources([arns[1].clone()])
            .condition("StringNotEquals", "s3:x-amz-server-side-encryption", "aws:kms")
            .condition("Null", "s3:x-amz-server-side-encryption", "false")
            .build(),
        // Naming another KMS key (even one of another account) would do the same. Requests that
        // name none get the bucket default, the s3 key.
        Statement::deny("DenyOtherKmsKeys")
            .any_principal()
            .actions(&["s3:PutObject"])
            .resources([arns[1].clone()])
            .condition_any(
                "StringNotEquals",
                "s3:x-amz-server-side-encryption-aws-kms-key-id",
                &[env.keys.s3.as_str(), env.keys.s3.rsplit('/').next().unwrap_or_default()],
            )
            .condition("Null", "s3:x-amz-server-side-encryption-aws-kms-key-id", "false")
            .build(),
    ];
    if !env.controller_arns.is_empty() {
        // The controller lists (emptiness checks), puts (template scripts) and deletes (with
        // deleteDataOnDelete), but never reads data, not even a HEAD.
        statements.push(
            Statement::deny("DenyControllerObjectReads")
                .aws_principals(env.controller_arns.clone())
                .actions(&["s3:GetObject*"])
                .resources([arns[1].clone()])
                .build(),
        );
    }
    let read = Statement::allow("AllowTargetModelReaders").actions(&["s3:GetObject", "s3:ListBucket"]).resources(arns);
    statements.extend(read.per_principals(readers, "ByOrgPath").into_iter().map(Statement::build));
    document(statements)
}

/// A target account's data-capture bucket: TLS only. SageMaker writes captures from its own
/// service network rather than through the target VPC, so an `aws:sourceVpce` deny would drop
/// them; no other deny has been checked against its writes, so none is made.
pub fn capture_bucket_policy(env: &Environment, target: &Target) -> Value {
    document(vec![deny_insecure_transport(&bucket_and_objects(&env.partition, &target.capture_bucket))])
}

/// Exempt by `aws:PrincipalArn`, which callers cannot forge (the reference matched a principal
/// tag, which anyone allowed to tag a role could set): the controller, which manages and checks
/// the buckets from outside any VPC, and the pipeline role, whose condition steps SageMaker
/// Pipelines evaluates in its own network (for reading only: see the next deny). With no
/// endpoint known yet, nothing else gets in.
fn deny_outside_vpc_endpoints(env: &Environment, arns: &[String; 2]) -> Value {
    let mut deny =
        Statement::deny("DenyOutsideVpcEndpoints").any_principal().actions(&["s3:*"]).resources(arns.clone());
    if !env.s3_endpoint_ids.is_empty() {
        deny = deny.condition_any("StringNotEquals", "aws:sourceVpce", &env.s3_endpoint_ids);
    }
    let exempt: Vec<&String> = env.controller_arns.iter().chain([&env.roles.pipeline]).collect();
    deny.condition_any("ArnNotEquals", "aws:PrincipalArn", &exempt).build()
}

/// The pipeline role outside the endpoints may read (property files) and nothing else.
fn deny_pipeline_writes_outside_vpc_endpoints(env: &Environment, arns: &[String; 2]) -> Value {
    let mut deny = Statement::deny("DenyPipelineRoleWritesOutsideVpcEndpoints")
        .any_principal()
        .not_actions(&["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"])
        .resources(arns.clone());
    if !env.s3_endpoint_ids.is_empty() {
        deny = deny.condition_any("StringNotEquals", "aws:sourceVpce", &env.s3_endpoint_ids);
    }
    deny.condition_any("ArnEquals", "aws:PrincipalArn", &[&env.roles.pipeline]).build()
}

fn deny_insecure_transport(arns: &[String; 2]) -> Value {
    Statement::deny("DenyInsecureTransport")
        .any_principal()
        .actions(&["s3:*"])
        .resources(arns.clone())
        .condition("Bool", "aws:SecureTransport", "false")
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::checks::{statement, well_formed};
    use crate::inputs::fixtures::*;
    use serde_json::json;

    const MODELS: &str = "arn:aws:s3:::sk-fraud-3f2a-111111111111-us-east-1-models";

    fn models_policy() -> Value {
        let env = env();
        environment_bucket_policy(&env, &env.models_bucket, &env.target_model_roles())
    }

    #[test]
    fn bucket_policies_are_well_formed_and_round_trip() {
        let env = env();
        well_formed(&models_policy());
        well_formed(&environment_bucket_policy(&env, &env.data_bucket, &Principals::default()));
        well_formed(&capture_bucket_policy(&env, &env.targets[0]));
    }

    #[test]
    fn bucket_denies_requests_outside_the_endpoints_except_controller_and_pipeline_role() {
        assert_eq!(
            statement(&models_policy(), "DenyOutsideVpcEndpoints"),
            &json!({"Sid": "DenyOutsideVpcEndpoints", "Effect": "Deny", "Principal": "*", "Action": ["s3:*"],
            "Resource": [MODELS, format!("{MODELS}/*")],
            "Condition": {
                "StringNotEquals": {"aws:sourceVpce": ["vpce-s3dev", "vpce-s3stg", "vpce-s3prd"]},
                "ArnNotEquals": {"aws:PrincipalArn": [CONTROLLER, PIPELINE]}
            }})
        );
    }

    #[test]
    fn bucket_denies_insecure_transport_for_everyone() {
        assert_eq!(
            statement(&models_policy(), "DenyInsecureTransport"),
            &json!({"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": ["s3:*"],
                "Resource": [MODELS, format!("{MODELS}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
        );
    }

    #[test]
    fn bucket_denies_uploads_that_name_another_encryption() {
        assert_eq!(
            statement(&models_policy(), "DenyNonKmsEncryption"),
            &json!({"Sid": "DenyNonKmsEncryption", "Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject"],
            "Resource": [format!("{MODELS}/*")],
            "Condition": {
                "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                "Null": {"s3:x-amz-server-side-encryption": "false"}
            }})
        );
    }

    #[test]
    fn bucket_denies_uploads_that_name_another_kms_key() {
        assert_eq!(
            statement(&models_policy(), "DenyOtherKmsKeys"),
            &json!({"Sid": "DenyOtherKmsKeys", "Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject"],
            "Resource": [format!("{MODELS}/*")],
            "Condition": {
                "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": [S3_KEY, "s3"]},
                "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"}
            }})
        );
    }

    #[test]
    fn pipeline_role_only_reads_outside_the_endpoints() {
        assert_eq!(
            statement(&models_policy(), "DenyPipelineRoleWritesOutsideVpcEndpoints"),
            &json!({"Sid": "DenyPipelineRoleWritesOutsideVpcEndpoints", "Effect": "Deny", "Principal": "*",
            "NotAction": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": [MODELS, format!("{MODELS}/*")],
            "Condition": {
                "StringNotEquals": {"aws:sourceVpce": ["vpce-s3dev", "vpce-s3stg", "vpce-s3prd"]},
                "ArnEquals": {"aws:PrincipalArn": [PIPELINE]}
            }})
        );
    }

    #[test]
    fn controller_may_not_read_objects() {
        assert_eq!(
            statement(&models_policy(), "DenyControllerObjectReads"),
            &json!({"Sid": "DenyControllerObjectReads", "Effect": "Deny", "Principal": {"AWS": [CONTROLLER]},
                "Action": ["s3:GetObject*"], "Resource": [format!("{MODELS}/*")]})
        );
    }

    #[test]
    fn models_bucket_is_readable_by_target_model_roles() {
        assert_eq!(
            statement(&models_policy(), "AllowTargetModelReaders"),
            &json!({"Sid": "AllowTargetModelReaders", "Effect": "Allow", "Principal": {"AWS": [STAGING_ROLE, PROD_ROLE]},
                "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": [MODELS, format!("{MODELS}/*")]})
        );
    }

    #[test]
    fn target_model_roles_of_a_unit_read_the_models_bucket_by_path_and_role_name() {
        let env = env_with_prod_unit();
        let policy = environment_bucket_policy(&env, &env.models_bucket, &env.target_model_roles());
        well_formed(&policy);
        assert_eq!(statement(&policy, "AllowTargetModelReaders")["Principal"], json!({"AWS": [STAGING_ROLE]}));
        assert_eq!(
            statement(&policy, "AllowTargetModelReadersByOrgPath"),
            &json!({"Sid": "AllowTargetModelReadersByOrgPath", "Effect": "Allow", "Principal": "*",
            "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": [MODELS, format!("{MODELS}/*")],
            "Condition": {
                    "StringEquals": {"aws:PrincipalOrgID": ["o-a1b2c3d4e5"],
                        "aws:PrincipalTag/sagekeeper.io/owner-uid": env.uid},
                "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [PROD_PATH]},
                "ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/sk-fraud-3f2a-model-execution"]}
            }})
        );
        assert!(!policy.to_string().contains(PROD), "the unit's accounts are not listed");
    }

    #[test]
    fn data_bucket_grants_nobody_outside_the_account() {
        let env = env();
        let policy = environment_bucket_policy(&env, &env.data_bucket, &Principals::default());
        assert_eq!(
            crate::statement_ids(&policy),
            [
                "DenyOutsideVpcEndpoints",
                "DenyPipelineRoleWritesOutsideVpcEndpoints",
                "DenyInsecureTransport",
                "DenyNonKmsEncryption",
                "DenyOtherKmsKeys",
                "DenyControllerObjectReads"
            ]
        );
        assert!(policy["Statement"].as_array().into_iter().flatten().all(|s| s["Effect"] == "Deny"));
    }

    #[test]
    fn bucket_fails_closed_before_endpoints_are_known() {
        let mut env = env();
        env.s3_endpoint_ids.clear();
        env.controller_arns.clear();
        let policy = environment_bucket_policy(&env, &env.data_bucket, &Principals::default());
        assert_eq!(
            statement(&policy, "DenyOutsideVpcEndpoints")["Condition"],
            json!({"ArnNotEquals": {"aws:PrincipalArn": [PIPELINE]}})
        );
        assert!(crate::find_statement(&policy, "DenyControllerObjectReads").is_none());
        well_formed(&policy);
    }

    #[test]
    fn capture_bucket_is_tls_only() {
        let env = env();
        let bucket = "arn:aws:s3:::sk-fraud-3f2a-222222222222-capture";
        assert_eq!(
            capture_bucket_policy(&env, &env.targets[0]),
            json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": ["s3:*"],
                "Resource": [bucket, format!("{bucket}/*")], "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }]})
        );
    }
}
