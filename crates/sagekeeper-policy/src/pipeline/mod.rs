//! SageMaker pipeline definitions: the built-in templates as typed data, the checks every user
//! definition passes before any AWS call (JSON, a `Steps` list, known parameters and steps,
//! allowed step types, every job locked into the environment's network and keys), the spec's
//! parameter values as defaults, and the hash that tells whether the pipeline must change.

mod check;
mod template;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use check::{ALLOWED_STEP_TYPES, Violation, effective};
pub use template::{ABALONE_ASSETS, ASSETS, Asset, abalone, image_registry};

/// What every job of a project's pipeline must use, from its environment and project.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobSettings {
    /// AWS partition, e.g. `aws`.
    pub partition: String,
    /// The environment's region.
    pub region: String,
    /// The environment's private subnets.
    pub subnets: Vec<String>,
    /// The environment's workloads security group.
    pub security_group: String,
    /// Key for job volumes (the environment's ebs key).
    pub volume_key: String,
    /// Key for job outputs (the environment's s3 key).
    pub output_key: String,
    /// The role jobs run as (the environment's execution role).
    pub job_role: String,
    /// The environment's data bucket (inputs, intermediate data).
    pub data_bucket: String,
    /// The environment's models bucket (model artifacts, evaluation reports).
    pub models_bucket: String,
    /// The project's key prefix in both buckets, ending with `/`.
    pub prefix: String,
    /// The project's model package group.
    pub model_package_group: String,
    /// `PendingManualApproval` or `Approved`, from the project's modelApproval.
    pub approval_status: String,
    /// The environment's uid: registered versions carry it as the registry tag
    /// ([`crate::iam::REGISTRY_TAG_KEY`]), which the environment's roles are granted by.
    pub registry_tag: String,
}

impl JobSettings {
    /// `s3://<bucket>/<prefix><path>`.
    pub fn s3_uri(&self, bucket: &str, path: &str) -> String {
        format!("s3://{bucket}/{}{path}", self.prefix)
    }
}

/// `sha256:<hex>` of a definition in its canonical form (keys sorted, no whitespace), so the
/// same definition always has the same hash.
pub fn hash(definition: &Value) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(canonical(definition).as_bytes())))
}

/// The canonical text of a definition: what is sent to SageMaker and hashed.
pub fn canonical(definition: &Value) -> String {
    sorted(definition).to_string()
}

/// The value with every object's keys in order, whatever map type serde_json was built with.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: std::collections::BTreeMap<&String, Value> = map.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;

    pub(crate) fn settings() -> JobSettings {
        JobSettings {
            partition: "aws".into(),
            region: "us-east-1".into(),
            subnets: vec!["subnet-a".into(), "subnet-b".into()],
            security_group: "sg-work".into(),
            volume_key: "arn:aws:kms:us-east-1:111111111111:key/ebs".into(),
            output_key: "arn:aws:kms:us-east-1:111111111111:key/s3".into(),
            job_role: "arn:aws:iam::111111111111:role/execution".into(),
            data_bucket: "data-bucket".into(),
            models_bucket: "models-bucket".into(),
            prefix: "projects/churn/".into(),
            model_package_group: "team-fraud-churn".into(),
            approval_status: "PendingManualApproval".into(),
            registry_tag: "0b9d3c1e-5f7a-4c2b-9e8d-1a2b3c4d5e6f".into(),
        }
    }

    fn steps(definition: &Value) -> Vec<&Value> {
        let mut out = Vec::new();
        fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
            for step in list.as_array().into_iter().flatten() {
                out.push(step);
                for branch in ["IfSteps", "ElseSteps"] {
                    if let Some(nested) = step["Arguments"].get(branch) {
                        walk(nested, out);
                    }
                }
            }
        }
        walk(&definition["Steps"], &mut out);
        out
    }

    fn template() -> Value {
        effective(None, abalone(&settings()), &BTreeMap::new(), &settings())
            .expect("the template passes its own checks")
    }

    #[test]
    fn abalone_is_preprocess_train_evaluate_condition_register_or_fail() {
        let definition = template();
        let kinds: Vec<(&str, &str)> =
            steps(&definition).iter().map(|s| (s["Name"].as_str().unwrap(), s["Type"].as_str().unwrap())).collect();
        assert_eq!(
            kinds,
            [
                ("PreprocessAbaloneData", "Processing"),
                ("TrainAbaloneModel", "Training"),
                ("EvaluateAbaloneModel", "Processing"),
                ("CheckMseAbaloneEvaluation", "Condition"),
                ("RegisterAbaloneModel", "RegisterModel"),
                ("MseAboveThreshold", "Fail"),
            ]
        );
        let condition = &steps(&definition)[3]["Arguments"]["Conditions"][0];
        assert_eq!(condition["Type"], "LessThanOrEqualTo");
        assert_eq!(condition["RightValue"], json!({"Get": "Parameters.MseThreshold"}));
        assert_eq!(
            condition["LeftValue"]["Std:JsonGet"]["PropertyFile"],
            json!({"Get": "Steps.EvaluateAbaloneModel.PropertyFiles.EvaluationReport"})
        );
    }

    #[test]
    fn every_abalone_job_runs_in_the_network_with_the_keys() {
        let definition = template();
        let s = settings();
        let all = steps(&definition);
        for step in all.iter().filter(|s| s["Type"] == "Processing") {
            let args = &step["Arguments"];
            assert_eq!(
                args["NetworkConfig"]["VpcConfig"],
                json!({"SecurityGroupIds": ["sg-work"], "Subnets": ["subnet-a", "subnet-b"]})
            );
            assert_eq!(args["NetworkConfig"]["EnableInterContainerTrafficEncryption"], true);
            assert_eq!(args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"], s.volume_key);
            assert_eq!(args["ProcessingOutputConfig"]["KmsKeyId"], s.output_key);
            assert_eq!(args["RoleArn"], s.job_role);
        }
        let train = &all[1]["Arguments"];
        assert_eq!(train["VpcConfig"], json!({"SecurityGroupIds": ["sg-work"], "Subnets": ["subnet-a", "subnet-b"]}));
        assert_eq!(train["EnableInterContainerTrafficEncryption"], true);
        assert_eq!(train["ResourceConfig"]["VolumeKmsKeyId"], s.volume_key);
        assert_eq!(train["OutputDataConfig"]["KmsKeyId"], s.output_key);
        assert_eq!(
            train["AlgorithmSpecification"]["TrainingImage"],
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
        );
        let register = &all[4]["Arguments"];
        assert_eq!(register["ModelPackageGroupName"], "team-fraud-churn");
        assert_eq!(register["ModelApprovalStatus"], "PendingManualApproval");
    }

    #[test]
    fn abalone_reads_and_writes_only_under_the_project_prefix() {
        let text = template().to_string();
        let uris: Vec<&str> = text.split('"').filter(|t| t.starts_with("s3://")).collect();
        assert!(!uris.is_empty());
        for uri in uris {
            assert!(
                uri.starts_with("s3://data-bucket/projects/churn/")
                    || uri.starts_with("s3://models-bucket/projects/churn/"),
                "{uri}"
            );
        }
    }

    #[test]
    fn spec_parameters_become_typed_defaults_and_change_the_hash() {
        let base = template();
        let values = BTreeMap::from([
            ("MseThreshold".to_owned(), "4.5".to_owned()),
            ("TrainingInstanceType".to_owned(), "ml.m5.2xlarge".to_owned()),
        ]);
        let changed = effective(None, abalone(&settings()), &values, &settings()).unwrap();
        let find = |d: &Value, n: &str| {
            d["Parameters"].as_array().unwrap().iter().find(|p| p["Name"] == n).unwrap()["DefaultValue"].clone()
        };
        assert_eq!(find(&changed, "MseThreshold"), json!(4.5));
        assert_eq!(find(&changed, "TrainingInstanceType"), json!("ml.m5.2xlarge"));
        assert_ne!(hash(&base), hash(&changed));
        assert_eq!(hash(&base), hash(&template()), "the same inputs hash the same");
        let unknown = BTreeMap::from([("Nope".to_owned(), "1".to_owned())]);
        let err = effective(None, abalone(&settings()), &unknown, &settings()).unwrap_err();
        assert!(
            err.message().starts_with("spec.pipeline.parameters.Nope: the pipeline has no such parameter"),
            "{err:?}"
        );
        let bad = BTreeMap::from([("MseThreshold".to_owned(), "six".to_owned())]);
        let err = effective(None, abalone(&settings()), &bad, &settings()).unwrap_err();
        assert_eq!(err.message(), "spec.pipeline.parameters.MseThreshold: \"six\" is not a valid Float");
    }

    #[test]
    fn hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": 2, "x": 3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": {"x": 3, "y": 2}, "b": 1}"#).unwrap();
        assert_eq!(hash(&a), hash(&b));
        assert!(hash(&a).starts_with("sha256:") && hash(&a).len() == 71);
    }

    #[test]
    fn unknown_regions_have_no_template() {
        let mut s = settings();
        s.region = "xx-nowhere-1".into();
        assert_eq!(abalone(&s), None);
    }

    fn user(definition: Value) -> Result<Value, Violation> {
        effective(Some(&definition.to_string()), None, &BTreeMap::new(), &settings())
    }

    #[test]
    fn a_user_definition_with_every_job_locked_down_passes_unchanged() {
        let definition = template();
        assert_eq!(user(definition.clone()).unwrap(), definition);
    }

    #[test]
    fn a_job_without_network_settings_is_refused_naming_step_and_fields() {
        let mut definition = template();
        definition["Steps"][1]["Arguments"].as_object_mut().unwrap().remove("VpcConfig");
        let err = user(definition).unwrap_err();
        let Violation::Invalid(message) = err else { panic!("{err:?}") };
        assert!(message.contains("step TrainAbaloneModel (Training): VpcConfig.Subnets must be the environment's private subnets (subnet-a, subnet-b)"), "{message}");
        assert!(
            message.contains("step TrainAbaloneModel (Training): VpcConfig.SecurityGroupIds must be [sg-work]"),
            "{message}"
        );
    }

    #[test]
    fn wrong_keys_encryption_and_foreign_subnets_are_refused() {
        let mut definition = template();
        let args = &mut definition["Steps"][0]["Arguments"];
        args["NetworkConfig"]["EnableInterContainerTrafficEncryption"] = json!(false);
        args["NetworkConfig"]["VpcConfig"]["Subnets"] = json!(["subnet-a", "subnet-elsewhere"]);
        args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] = json!("alias/aws/ebs");
        args["ProcessingOutputConfig"].as_object_mut().unwrap().remove("KmsKeyId");
        let message = user(definition).unwrap_err().message().to_owned();
        for field in [
            "NetworkConfig.EnableInterContainerTrafficEncryption must be true",
            "NetworkConfig.VpcConfig.Subnets must be",
            "ProcessingResources.ClusterConfig.VolumeKmsKeyId must be arn:aws:kms:us-east-1:111111111111:key/ebs",
            "ProcessingOutputConfig.KmsKeyId must be arn:aws:kms:us-east-1:111111111111:key/s3",
        ] {
            assert!(
                message.contains(&format!("step PreprocessAbaloneData (Processing): {field}")),
                "{field}: {message}"
            );
        }
    }

    #[test]
    fn a_lambda_step_is_not_allowed_even_nested_in_a_condition() {
        let lambda = json!({"Name": "CallOut", "Type": "Lambda", "Arguments": {}});
        let err = user(json!({"Version": "2020-12-01", "Steps": [lambda.clone()]})).unwrap_err();
        let Violation::StepNotAllowed(message) = &err else { panic!("{err:?}") };
        assert!(
            message.starts_with(
                "spec.pipeline.definition: step CallOut has type Lambda; allowed step types: Processing, Training"
            ),
            "{message}"
        );
        let nested = json!({"Version": "2020-12-01", "Steps": [{"Name": "Check", "Type": "Condition",
            "Arguments": {"Conditions": [], "IfSteps": [lambda], "ElseSteps": []}}]});
        assert!(matches!(user(nested), Err(Violation::StepNotAllowed(m)) if m.contains("step CallOut")));
    }

    #[test]
    fn invalid_json_missing_steps_and_unknown_references_are_refused() {
        let err = effective(Some("{not json"), None, &BTreeMap::new(), &settings()).unwrap_err();
        assert!(err.message().starts_with("spec.pipeline.definition: not valid JSON: "), "{err:?}");
        assert_eq!(
            user(json!({"Version": "2020-12-01"})).unwrap_err().message(),
            "spec.pipeline.definition: must have a non-empty Steps list"
        );
        let fail = |message: Value| json!({"Version": "2020-12-01", "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": message}}]});
        assert_eq!(
            user(fail(json!({"Get": "Parameters.Missing"}))).unwrap_err().message(),
            "spec.pipeline.definition: step Stop references parameter Missing, which Parameters does not declare"
        );
        assert_eq!(
            user(fail(json!({"Get": "Steps.Ghost.Properties"}))).unwrap_err().message(),
            "spec.pipeline.definition: step Stop references step Ghost, which the definition does not have"
        );
    }

    #[test]
    fn registration_keeps_the_projects_approval_and_group() {
        let mut definition = template();
        definition["Steps"][3]["Arguments"]["IfSteps"][0]["Arguments"]["ModelApprovalStatus"] = json!("Approved");
        let message = user(definition).unwrap_err().message().to_owned();
        assert!(message.contains("step RegisterAbaloneModel (RegisterModel): ModelApprovalStatus must be PendingManualApproval (from spec.modelApproval)"), "{message}");
    }
}
