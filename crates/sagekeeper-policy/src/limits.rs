//! AWS's size limits on the documents sagekeeper writes, and how AWS counts against them: IAM
//! counts characters without white space, S3, KMS and VPC endpoints count the whole text.

use serde_json::Value;

/// A role's inline policies together (IAM, characters without white space).
pub const INLINE_ROLE_POLICIES: usize = 10_240;
/// One customer managed policy (IAM, characters without white space).
pub const MANAGED_POLICY: usize = 6_144;
/// A role's trust policy (IAM's default quota, characters without white space).
pub const TRUST_POLICY: usize = 2_048;
/// A bucket policy (S3, bytes).
pub const BUCKET_POLICY: usize = 20_480;
/// A key policy (KMS, bytes).
pub const KEY_POLICY: usize = 32_768;
/// A VPC endpoint policy (EC2, characters including white space).
pub const ENDPOINT_POLICY: usize = 20_480;

/// The size IAM counts: characters of the compact JSON, white space inside strings excluded too.
pub fn iam_size(document: &Value) -> usize {
    document.to_string().chars().filter(|c| !c.is_whitespace()).count()
}

/// The size S3, KMS and EC2 count: bytes of the JSON as sagekeeper sends it (compact).
pub fn text_size(document: &Value) -> usize {
    document.to_string().len()
}

#[cfg(test)]
mod tests {
    //! Every document of an environment at the size a platform team reaches: 50 projects, 10
    //! target accounts, both personas with named principals. With `SAGEKEEPER_POLICY_DUMP` set to
    //! a folder, the documents are also written there, one file each, for the linters `make test`
    //! runs over them (`tests/lint/check.py`).

    use super::*;
    use crate::inputs::fixtures;
    use crate::inputs::{Environment, Persona, Target};
    use crate::{endpoints, iam, kms, registry, s3};

    const PROJECTS: usize = 50;
    const TARGETS: usize = 10;

    fn large_environment() -> Environment {
        let mut env = fixtures::env();
        env.targets = (0..TARGETS)
            .map(|n| {
                let account = format!("{}", 200_000_000_000u64 + n as u64);
                fixtures::target(
                    &account,
                    &format!("arn:aws:iam::{account}:role/sk-team-fraud-fraud-3f2a1b-model-execution"),
                    &format!("arn:aws:iam::{account}:role/sagekeeper-deployer"),
                )
            })
            .collect();
        env.s3_endpoint_ids = (0..=TARGETS).map(|n| format!("vpce-0123456789abcdef{n}")).collect();
        env.kms_endpoint_ids = (0..=TARGETS).map(|n| format!("vpce-0fedcba987654321{n}")).collect();
        // The largest role policies: every key someone else's, granted by the roles' own.
        env.borrowed_keys = crate::inputs::BorrowedKeys { ebs: true, studio: true, s3: true };
        env
    }

    /// (file name, kind, document) for every document sagekeeper writes for `env`.
    fn documents(env: &Environment) -> Vec<(String, &'static str, Value)> {
        let principals: Vec<String> = (0..3)
            .map(|n| format!("arn:aws:iam::{}:role/AWSReservedSSO_MLTeam{n}_0123456789abcdef", env.account_id))
            .collect();
        let mut out = vec![
            ("role-execution".into(), "inline", iam::execution_role_policy(env)),
            ("role-pipeline".into(), "inline", iam::pipeline_role_policy(env)),
            ("role-model-execution".into(), "inline", iam::model_execution_role_policy(env)),
            ("role-data-scientist".into(), "inline", iam::persona_policy(Persona::DataScientist, env)),
            ("role-team-admin".into(), "inline", iam::persona_policy(Persona::TeamAdmin, env)),
            ("trust-sagemaker".into(), "trust", iam::service_trust("sagemaker.amazonaws.com", &env.account_id)),
            ("trust-persona".into(), "trust", iam::persona_trust(env, &principals)),
            ("key-admin".into(), "key", kms::admin_policy(&env.partition, &env.account_id, &env.controller_arns)),
            ("key-ebs".into(), "key", kms::ebs_key_policy(env)),
            ("key-studio".into(), "key", kms::studio_key_policy(env)),
            ("key-s3".into(), "key", kms::s3_key_policy(env)),
            ("bucket-data".into(), "bucket", s3::environment_bucket_policy(env, &env.data_bucket, &[])),
            (
                "bucket-models".into(),
                "bucket",
                s3::environment_bucket_policy(
                    env,
                    &env.models_bucket,
                    &env.targets.iter().map(|t| t.model_execution_role.clone()).collect::<Vec<_>>(),
                ),
            ),
            (
                "endpoint-s3-dev".into(),
                "endpoint",
                endpoints::s3_gateway_policy(
                    &env.partition,
                    &env.region,
                    &[env.data_bucket.clone(), env.models_bucket.clone()],
                    &accounts(env),
                ),
            ),
        ];
        for key in ["sagemaker.api", "sts", "ecr.dkr"] {
            let policy = endpoints::interface_policy(&env.partition, &env.region, key, &accounts(env));
            out.push((format!("endpoint-{key}"), "endpoint", policy));
        }
        let principals: Vec<String> = env
            .targets
            .iter()
            .flat_map(|t| t.controller_arns.iter().cloned().chain([t.model_execution_role.clone()]))
            .collect();
        for n in 0..PROJECTS {
            let group = format!("team-fraud-a-project-with-a-long-name-{n:02}-3f2a1b");
            let arn = format!("arn:aws:sagemaker:{}:{}:model-package-group/{group}", env.region, env.account_id);
            if let Some(policy) = registry::group_policy(&arn, &principals) {
                out.push((format!("registry-{n:02}"), "registry", policy));
            }
        }
        for (n, target) in env.targets.iter().enumerate() {
            out.extend(target_documents(env, target, n));
        }
        out
    }

    fn target_documents(env: &Environment, target: &Target, n: usize) -> Vec<(String, &'static str, Value)> {
        vec![
            (
                format!("target-{n:02}-role-model-execution"),
                "inline",
                iam::target_model_execution_role_policy(env, target),
            ),
            (format!("target-{n:02}-key-endpoint"), "key", kms::target_key_policy(env, target)),
            (format!("target-{n:02}-bucket-capture"), "bucket", s3::capture_bucket_policy(env, target)),
            (
                format!("target-{n:02}-endpoint-s3"),
                "endpoint",
                endpoints::s3_gateway_policy(
                    &env.partition,
                    &env.region,
                    &[env.models_bucket.clone(), target.capture_bucket.clone()],
                    &accounts(env),
                ),
            ),
        ]
    }

    /// The dev and every target account.
    fn accounts(env: &Environment) -> Vec<String> {
        std::iter::once(env.account_id.clone()).chain(env.targets.iter().map(|t| t.account_id.clone())).collect()
    }

    #[test]
    fn every_document_of_an_environment_with_50_projects_and_10_targets_fits_aws_limits() {
        let env = large_environment();
        let documents = documents(&env);
        let mut over = Vec::new();
        let mut largest: std::collections::BTreeMap<&str, (usize, usize, String)> = Default::default();
        for (name, kind, document) in &documents {
            let (size, limit) = match *kind {
                // Each role has one inline policy, so its size is the role's total.
                "inline" => (iam_size(document), INLINE_ROLE_POLICIES),
                "trust" => (iam_size(document), TRUST_POLICY),
                "key" => (text_size(document), KEY_POLICY),
                "bucket" => (text_size(document), BUCKET_POLICY),
                "endpoint" => (text_size(document), ENDPOINT_POLICY),
                // SageMaker documents no size limit of its own for group policies; S3's is the
                // usual resource-policy bound.
                _ => (text_size(document), BUCKET_POLICY),
            };
            if size > limit {
                over.push(format!("{name}: {size} > {limit}"));
            }
            let entry = largest.entry(kind).or_insert((0, limit, String::new()));
            if size > entry.0 {
                *entry = (size, limit, name.clone());
            }
        }
        for (kind, (size, limit, name)) in &largest {
            println!("largest {kind} document: {name}, {size} of {limit}");
        }
        assert!(over.is_empty(), "over AWS's limits: {over:#?}");

        if let Some(dir) = std::env::var_os("SAGEKEEPER_POLICY_DUMP") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, _, document) in &documents {
                let text = serde_json::to_string_pretty(document).unwrap();
                std::fs::write(dir.join(format!("{name}.json")), text).unwrap();
            }
        }
    }
}
