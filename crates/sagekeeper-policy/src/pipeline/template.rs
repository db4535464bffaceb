//! The built-in `AbaloneXGBoost` pipeline, as typed data: preprocess (scikit-learn processing)
//! -> train (the built-in XGBoost algorithm) -> evaluate -> condition (MSE <= `MseThreshold`)
//! -> register (or fail). Every job runs in the environment's private subnets and workloads
//! group, with its volume and output keys and inter-container encryption; inputs and outputs
//! live under the project's prefix, each run's under `runs/<execution id>/`.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

use super::JobSettings;

/// The definition schema version SageMaker accepts.
const VERSION: &str = "2020-12-01";
/// The built-in XGBoost algorithm's image tag.
const XGBOOST: &str = "sagemaker-xgboost:1.7-1";
/// The scikit-learn processing image tag.
const SKLEARN: &str = "sagemaker-scikit-learn:1.2-1-cpu-py3";

/// A file the template's jobs read, uploaded by the controller under the project's prefix in
/// the data bucket, at a key named by its content: the controller never reads objects back
/// (the bucket policy denies it even a HEAD), so a listing tells whether an upload is current.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// The file name.
    pub name: &'static str,
    /// The content.
    pub body: &'static [u8],
}

impl Asset {
    /// Its key below the project's prefix: `assets/<first 12 hex of sha256>/<name>`.
    pub fn path(&self) -> String {
        use sha2::{Digest, Sha256};
        format!("{ASSETS}{}/{}", &hex::encode(Sha256::digest(self.body))[..12], self.name)
    }
}

/// Where the assets live below the project's prefix.
pub const ASSETS: &str = "assets/";

/// The scripts and sample data of `AbaloneXGBoost`.
pub const ABALONE_ASSETS: &[Asset] = &[
    Asset { name: "preprocess.py", body: include_bytes!("abalone/preprocess.py") },
    Asset { name: "evaluate.py", body: include_bytes!("abalone/evaluate.py") },
    Asset { name: "abalone.csv", body: include_bytes!("abalone/abalone.csv") },
];

fn asset(name: &str) -> String {
    ABALONE_ASSETS.iter().find(|a| a.name == name).map(Asset::path).unwrap_or_default()
}

/// The AWS account that serves the official SageMaker XGBoost and scikit-learn images in a
/// region (from the SageMaker Python SDK's image_uri_config); `None` for a region not listed.
pub fn image_registry(region: &str) -> Option<&'static str> {
    IMAGE_ACCOUNTS.iter().find(|(r, _)| *r == region).map(|(_, account)| *account)
}

/// Region -> account of the `sagemaker-xgboost` and `sagemaker-scikit-learn` repositories, for
/// every commercial region `abalone/images.md` verified against the SageMaker Python SDK.
const IMAGE_ACCOUNTS: &[(&str, &str)] = &[
    ("af-south-1", "510948584623"),
    ("ap-east-1", "651117190479"),
    ("ap-northeast-1", "354813040037"),
    ("ap-northeast-2", "366743142698"),
    ("ap-northeast-3", "867004704886"),
    ("ap-south-1", "720646828776"),
    ("ap-south-2", "628508329040"),
    ("ap-southeast-1", "121021644041"),
    ("ap-southeast-2", "783357654285"),
    ("ap-southeast-3", "951798379941"),
    ("ap-southeast-4", "106583098589"),
    ("ca-central-1", "341280168497"),
    ("ca-west-1", "190319476487"),
    ("eu-central-1", "492215442770"),
    ("eu-central-2", "680994064768"),
    ("eu-north-1", "662702820516"),
    ("eu-south-1", "978288397137"),
    ("eu-south-2", "104374241257"),
    ("eu-west-1", "141502667606"),
    ("eu-west-2", "764974769150"),
    ("eu-west-3", "659782779980"),
    ("il-central-1", "898809789911"),
    ("me-central-1", "272398656194"),
    ("me-south-1", "801668240914"),
    ("sa-east-1", "737474898029"),
    ("us-east-1", "683313688378"),
    ("us-east-2", "257758044811"),
    ("us-west-1", "746614075791"),
    ("us-west-2", "246618743249"),
];

/// A value in a definition: a literal, or an expression SageMaker evaluates at run time.
#[derive(Clone, Debug)]
enum Expr {
    Str(String),
    /// `{"Get": "Parameters.X"}`, `{"Get": "Steps.S.Property"}`, `{"Get": "Execution.X"}`.
    Get(String),
    /// `{"Std:Join": {"On": ..., "Values": [...]}}`.
    Join(&'static str, Vec<Expr>),
    /// `{"Std:JsonGet": {"PropertyFile": {"Get": ...}, "Path": ...}}`.
    JsonGet(String, &'static str),
}

impl Serialize for Expr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Str(text) => s.serialize_str(text),
            Self::Get(path) => one(s, "Get", path),
            Self::Join(on, values) => {
                #[derive(Serialize)]
                #[serde(rename_all = "PascalCase")]
                struct Join<'a> {
                    on: &'a str,
                    values: &'a [Expr],
                }
                one(s, "Std:Join", &Join { on, values })
            }
            Self::JsonGet(file, path) => {
                #[derive(Serialize)]
                #[serde(rename_all = "PascalCase")]
                struct JsonGet<'a> {
                    property_file: Expr,
                    path: &'a str,
                }
                one(s, "Std:JsonGet", &JsonGet { property_file: Expr::Get(file.clone()), path })
            }
        }
    }
}

fn one<S: Serializer, V: Serialize + ?Sized>(s: S, key: &str, value: &V) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry(key, value)?;
    map.end()
}

fn get(path: impl Into<String>) -> Expr {
    Expr::Get(path.into())
}

fn text(value: impl Into<String>) -> Expr {
    Expr::Str(value.into())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Definition {
    version: &'static str,
    parameters: Vec<Parameter>,
    steps: Vec<Step>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Parameter {
    name: &'static str,
    #[serde(rename = "Type")]
    kind: &'static str,
    default_value: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Step {
    name: &'static str,
    #[serde(rename = "Type")]
    kind: &'static str,
    arguments: Arguments,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    property_files: Vec<PropertyFile>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Arguments {
    Processing(Box<Processing>),
    Training(Box<Training>),
    Condition(Box<Condition>),
    Register(Box<Register>),
    Fail(Fail),
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PropertyFile {
    property_file_name: &'static str,
    output_name: &'static str,
    file_path: &'static str,
}

/// The network every job gets: private subnets, workloads group.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VpcConfig {
    security_group_ids: Vec<String>,
    subnets: Vec<String>,
}

// CreateProcessingJob, as a Processing step's arguments.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Processing {
    processing_resources: ProcessingResources,
    app_specification: AppSpecification,
    role_arn: String,
    processing_inputs: Vec<ProcessingInput>,
    processing_output_config: ProcessingOutputConfig,
    network_config: NetworkConfig,
    stopping_condition: StoppingCondition,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingResources {
    cluster_config: ClusterConfig,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ClusterConfig {
    instance_type: Expr,
    instance_count: Expr,
    #[serde(rename = "VolumeSizeInGB")]
    volume_size_in_gb: i64,
    volume_kms_key_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AppSpecification {
    image_uri: String,
    container_entrypoint: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingInput {
    input_name: &'static str,
    app_managed: bool,
    #[serde(rename = "S3Input")]
    s3_input: S3Input,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct S3Input {
    #[serde(rename = "S3Uri")]
    s3_uri: Expr,
    local_path: String,
    #[serde(rename = "S3DataType")]
    s3_data_type: &'static str,
    #[serde(rename = "S3InputMode")]
    s3_input_mode: &'static str,
    #[serde(rename = "S3DataDistributionType")]
    s3_data_distribution_type: &'static str,
    #[serde(rename = "S3CompressionType")]
    s3_compression_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingOutputConfig {
    outputs: Vec<ProcessingOutput>,
    kms_key_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessingOutput {
    output_name: &'static str,
    app_managed: bool,
    #[serde(rename = "S3Output")]
    s3_output: S3Output,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct S3Output {
    #[serde(rename = "S3Uri")]
    s3_uri: Expr,
    local_path: String,
    #[serde(rename = "S3UploadMode")]
    s3_upload_mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkConfig {
    enable_inter_container_traffic_encryption: bool,
    enable_network_isolation: bool,
    vpc_config: VpcConfig,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StoppingCondition {
    max_runtime_in_seconds: i64,
}

// CreateTrainingJob, as a Training step's arguments.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Training {
    algorithm_specification: AlgorithmSpecification,
    role_arn: String,
    input_data_config: Vec<Channel>,
    output_data_config: OutputDataConfig,
    resource_config: ResourceConfig,
    stopping_condition: StoppingCondition,
    hyper_parameters: std::collections::BTreeMap<&'static str, &'static str>,
    vpc_config: VpcConfig,
    enable_inter_container_traffic_encryption: bool,
    enable_network_isolation: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AlgorithmSpecification {
    training_image: String,
    training_input_mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Channel {
    channel_name: &'static str,
    content_type: &'static str,
    data_source: DataSource,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataSource {
    #[serde(rename = "S3DataSource")]
    s3_data_source: S3DataSource,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct S3DataSource {
    #[serde(rename = "S3DataType")]
    s3_data_type: &'static str,
    #[serde(rename = "S3Uri")]
    s3_uri: Expr,
    #[serde(rename = "S3DataDistributionType")]
    s3_data_distribution_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct OutputDataConfig {
    #[serde(rename = "S3OutputPath")]
    s3_output_path: Expr,
    kms_key_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceConfig {
    instance_type: Expr,
    instance_count: i64,
    #[serde(rename = "VolumeSizeInGB")]
    volume_size_in_gb: i64,
    volume_kms_key_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Condition {
    conditions: Vec<Comparison>,
    if_steps: Vec<Step>,
    else_steps: Vec<Step>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Comparison {
    #[serde(rename = "Type")]
    kind: &'static str,
    left_value: Expr,
    right_value: Expr,
}

// CreateModelPackage, as a RegisterModel step's arguments.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Register {
    model_package_group_name: String,
    model_approval_status: String,
    inference_specification: InferenceSpecification,
    model_metrics: ModelMetrics,
    tags: Vec<RegisterTag>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterTag {
    key: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InferenceSpecification {
    containers: Vec<Container>,
    supported_content_types: Vec<&'static str>,
    #[serde(rename = "SupportedResponseMIMETypes")]
    supported_response_mime_types: Vec<&'static str>,
    supported_realtime_inference_instance_types: Vec<&'static str>,
    supported_transform_instance_types: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Container {
    image: String,
    model_data_url: Expr,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ModelMetrics {
    model_quality: ModelQuality,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ModelQuality {
    statistics: MetricsSource,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricsSource {
    content_type: &'static str,
    #[serde(rename = "S3Uri")]
    s3_uri: Expr,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Fail {
    error_message: Expr,
}

const PREPROCESS: &str = "PreprocessAbaloneData";
const TRAIN: &str = "TrainAbaloneModel";
const EVALUATE: &str = "EvaluateAbaloneModel";

/// The `AbaloneXGBoost` definition for a project; `None` when the region has no known image
/// registry. The spec's parameter values are applied afterwards, like a user definition's.
pub fn abalone(settings: &JobSettings) -> Option<Value> {
    let registry = image_registry(&settings.region)?;
    let image = |tag: &str| format!("{registry}.dkr.ecr.{}.amazonaws.com/{tag}", settings.region);
    let run_uri = |bucket: &str, what: &'static str| {
        Expr::Join("/", vec![text(settings.s3_uri(bucket, "runs")), get("Execution.PipelineExecutionId"), text(what)])
    };
    let vpc =
        || VpcConfig { security_group_ids: vec![settings.security_group.clone()], subnets: settings.subnets.clone() };
    let network = || NetworkConfig {
        enable_inter_container_traffic_encryption: true,
        enable_network_isolation: false,
        vpc_config: vpc(),
    };
    let input = |name: &'static str, uri: Expr, path: &str| ProcessingInput {
        input_name: name,
        app_managed: false,
        s3_input: S3Input {
            s3_uri: uri,
            local_path: format!("/opt/ml/processing/{path}"),
            s3_data_type: "S3Prefix",
            s3_input_mode: "File",
            s3_data_distribution_type: "FullyReplicated",
            s3_compression_type: "None",
        },
    };
    let output = |name: &'static str, bucket: &str| ProcessingOutput {
        output_name: name,
        app_managed: false,
        s3_output: S3Output {
            s3_uri: run_uri(bucket, name),
            local_path: format!("/opt/ml/processing/{name}"),
            s3_upload_mode: "EndOfJob",
        },
    };
    let code = |script: &str| input("code", text(settings.s3_uri(&settings.data_bucket, &asset(script))), "input/code");
    let processing =
        |image_uri: String, script: &str, inputs: Vec<ProcessingInput>, outputs: Vec<ProcessingOutput>| Processing {
            processing_resources: ProcessingResources {
                cluster_config: ClusterConfig {
                    instance_type: get("Parameters.ProcessingInstanceType"),
                    instance_count: get("Parameters.ProcessingInstanceCount"),
                    volume_size_in_gb: 30,
                    volume_kms_key_id: settings.volume_key.clone(),
                },
            },
            app_specification: AppSpecification {
                image_uri,
                container_entrypoint: vec!["python3".into(), format!("/opt/ml/processing/input/code/{script}")],
            },
            role_arn: settings.job_role.clone(),
            processing_inputs: inputs,
            processing_output_config: ProcessingOutputConfig { outputs, kms_key_id: settings.output_key.clone() },
            network_config: network(),
            stopping_condition: StoppingCondition { max_runtime_in_seconds: 3600 },
        };
    let split = |name: &str| get(format!("Steps.{PREPROCESS}.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"));
    let channel = |name: &'static str| Channel {
        channel_name: name,
        content_type: "text/csv",
        data_source: DataSource {
            s3_data_source: S3DataSource {
                s3_data_type: "S3Prefix",
                s3_uri: split(name),
                s3_data_distribution_type: "FullyReplicated",
            },
        },
    };
    let model_data = || get(format!("Steps.{TRAIN}.ModelArtifacts.S3ModelArtifacts"));
    let evaluation_uri = get(format!("Steps.{EVALUATE}.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"));

    let preprocess = Step {
        name: PREPROCESS,
        kind: "Processing",
        arguments: Arguments::Processing(Box::new(processing(
            image(SKLEARN),
            "preprocess.py",
            vec![input("input-data", get("Parameters.InputDataUrl"), "input"), code("preprocess.py")],
            vec![
                output("train", &settings.data_bucket),
                output("validation", &settings.data_bucket),
                output("test", &settings.data_bucket),
            ],
        ))),
        property_files: Vec::new(),
    };
    let train = Step {
        name: TRAIN,
        kind: "Training",
        arguments: Arguments::Training(Box::new(Training {
            algorithm_specification: AlgorithmSpecification {
                training_image: image(XGBOOST),
                training_input_mode: "File",
            },
            role_arn: settings.job_role.clone(),
            input_data_config: vec![channel("train"), channel("validation")],
            output_data_config: OutputDataConfig {
                s3_output_path: run_uri(&settings.models_bucket, "model"),
                kms_key_id: settings.output_key.clone(),
            },
            resource_config: ResourceConfig {
                instance_type: get("Parameters.TrainingInstanceType"),
                instance_count: 1,
                volume_size_in_gb: 30,
                volume_kms_key_id: settings.volume_key.clone(),
            },
            stopping_condition: StoppingCondition { max_runtime_in_seconds: 86400 },
            hyper_parameters: [
                ("objective", "reg:squarederror"),
                ("num_round", "50"),
                ("max_depth", "5"),
                ("eta", "0.2"),
                ("gamma", "4"),
                ("min_child_weight", "6"),
                ("subsample", "0.7"),
            ]
            .into_iter()
            .collect(),
            vpc_config: vpc(),
            enable_inter_container_traffic_encryption: true,
            enable_network_isolation: false,
        })),
        property_files: Vec::new(),
    };
    let evaluate = Step {
        name: EVALUATE,
        kind: "Processing",
        arguments: Arguments::Processing(Box::new(processing(
            image(XGBOOST),
            "evaluate.py",
            vec![input("model", model_data(), "model"), input("test", split("test"), "test"), code("evaluate.py")],
            vec![output("evaluation", &settings.models_bucket)],
        ))),
        property_files: vec![PropertyFile {
            property_file_name: "EvaluationReport",
            output_name: "evaluation",
            file_path: "evaluation.json",
        }],
    };
    let register = Step {
        name: "RegisterAbaloneModel",
        kind: "RegisterModel",
        arguments: Arguments::Register(Box::new(Register {
            model_package_group_name: settings.model_package_group.clone(),
            model_approval_status: settings.approval_status.clone(),
            tags: vec![RegisterTag { key: crate::iam::REGISTRY_TAG_KEY, value: settings.registry_tag.clone() }],
            inference_specification: InferenceSpecification {
                containers: vec![Container { image: image(XGBOOST), model_data_url: model_data() }],
                supported_content_types: vec!["text/csv"],
                supported_response_mime_types: vec!["text/csv"],
                supported_realtime_inference_instance_types: vec!["ml.t2.medium", "ml.m5.large", "ml.m5.xlarge"],
                supported_transform_instance_types: vec!["ml.m5.large", "ml.m5.xlarge"],
            },
            model_metrics: ModelMetrics {
                model_quality: ModelQuality {
                    statistics: MetricsSource {
                        content_type: "application/json",
                        s3_uri: Expr::Join("/", vec![evaluation_uri, text("evaluation.json")]),
                    },
                },
            },
        })),
        property_files: Vec::new(),
    };
    let fail = Step {
        name: "MseAboveThreshold",
        kind: "Fail",
        arguments: Arguments::Fail(Fail {
            error_message: Expr::Join(
                " ",
                vec![text("The model's MSE is above the threshold"), get("Parameters.MseThreshold")],
            ),
        }),
        property_files: Vec::new(),
    };
    let check = Step {
        name: "CheckMseAbaloneEvaluation",
        kind: "Condition",
        arguments: Arguments::Condition(Box::new(Condition {
            conditions: vec![Comparison {
                kind: "LessThanOrEqualTo",
                left_value: Expr::JsonGet(
                    format!("Steps.{EVALUATE}.PropertyFiles.EvaluationReport"),
                    "regression_metrics.mse.value",
                ),
                right_value: get("Parameters.MseThreshold"),
            }],
            if_steps: vec![register],
            else_steps: vec![fail],
        })),
        property_files: Vec::new(),
    };
    let parameter = |name, kind, default_value| Parameter { name, kind, default_value };
    let definition = Definition {
        version: VERSION,
        parameters: vec![
            parameter("ProcessingInstanceType", "String", Value::from("ml.m5.xlarge")),
            parameter("ProcessingInstanceCount", "Integer", Value::from(1)),
            parameter("TrainingInstanceType", "String", Value::from("ml.m5.xlarge")),
            parameter("MseThreshold", "Float", Value::from(6.0)),
            parameter(
                "InputDataUrl",
                "String",
                Value::from(settings.s3_uri(&settings.data_bucket, &asset("abalone.csv"))),
            ),
        ],
        steps: vec![preprocess, train, evaluate, check],
    };
    serde_json::to_value(definition).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_table_is_the_verified_one() {
        let verified = include_str!("abalone/images.md");
        let rows: Vec<(&str, &str)> = verified
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                (cells.len() == 2 && cells[1].len() == 12 && cells[1].bytes().all(|b| b.is_ascii_digit()))
                    .then(|| (cells[0], cells[1]))
            })
            .collect();
        assert_eq!(rows.len(), 29);
        assert_eq!(rows, IMAGE_ACCOUNTS.to_vec());
        assert_eq!(image_registry("us-east-1"), Some("683313688378"));
        assert_eq!(image_registry("mx-central-1"), None);
    }
}
