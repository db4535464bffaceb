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
    //! target accounts named one by one and 300 more from an organizational unit (admitted by
    //! its path: only their endpoint ids are listed), both personas with named principals. With `SAGEKEEPER_POLICY_DUMP` set to
    //! a folder, the documents are also written there, one file each, for the linters `make test`
    //! runs over them (`tests/lint/check.py`).

    use super::*;
    use crate::inputs::fixtures;
    use crate::inputs::{Environment, Persona, Principals, Target};
    use crate::{endpoints, iam, kms, registry, s3};

    const PROJECTS: usize = 50;
    const TARGETS: usize = 10;
    const UNIT_TARGETS: usize = 300;
    const UNIT: &str = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*";

    fn large_environment() -> Environment {
        let mut env = fixtures::env();
        env.targets = (0..TARGETS + UNIT_TARGETS)
            .map(|n| {
                let account = format!("{}", 200_000_000_000u64 + n as u64);
                let mut target = fixtures::target(
                    &account,
                    &format!("arn:aws:iam::{account}:role/sk-team-fraud-fraud-3f2a1b-model-execution"),
                    &format!("arn:aws:iam::{account}:role/sagekeeper-deployer"),
                );
                target.by_org_path = n >= TARGETS;
                target
            })
            .collect();
        env.target_org_paths = vec![UNIT.into()];
        let accounts = TARGETS + UNIT_TARGETS;
        env.s3_endpoint_ids = (0..=accounts).map(|n| format!("vpce-0123456789abc{n:04}")).collect();
        env.kms_endpoint_ids = (0..=accounts).map(|n| format!("vpce-0fedcba987654{n:04}")).collect();
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
            (
                "bucket-data".into(),
                "bucket",
                s3::environment_bucket_policy(env, &env.data_bucket, &Principals::default()),
            ),
            (
                "bucket-models".into(),
                "bucket",
                s3::environment_bucket_policy(env, &env.models_bucket, &env.target_model_roles()),
            ),
            (
                "endpoint-s3-dev".into(),
                "endpoint",
                endpoints::s3_gateway_policy(
                    &env.partition,
                    &env.region,
                    &[env.data_bucket.clone(), env.models_bucket.clone()],
                    &env.accounts(),
                ),
            ),
        ];
        for key in ["sagemaker.api", "sts", "ecr.dkr"] {
            let policy = endpoints::interface_policy(&env.partition, &env.region, key, &env.accounts());
            out.push((format!("endpoint-{key}"), "endpoint", policy));
        }
        let deployers =
            env.targets.iter().flat_map(|t| t.controller_arns.iter().map(|arn| (arn.as_str(), t.by_org_path)));
        let deployers = Principals::of(deployers, &env.target_org_paths);
        let model_roles = env.target_model_roles();
        for n in 0..PROJECTS {
            let group = format!("team-fraud-a-project-with-a-long-name-{n:02}-3f2a1b");
            let arn = format!("arn:aws:sagemaker:{}:{}:model-package-group/{group}", env.region, env.account_id);
            if let Some(policy) = registry::group_policy(&arn, &model_roles, &deployers) {
                out.push((format!("registry-{n:02}"), "registry", policy));
            }
        }
        // The unit's targets have documents of one shape: the first of them stands for all.
        for (n, target) in env.targets.iter().enumerate().take(TARGETS + 1) {
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
                    &env.accounts(),
                ),
            ),
        ]
    }

    #[test]
    fn every_document_of_an_environment_with_50_projects_10_targets_and_a_unit_of_300_fits_aws_limits() {
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
