//! The checks a pipeline definition passes before any AWS call, and the spec's parameter values
//! applied as its defaults. A user definition is never rewritten behind the user's back: a job
//! that does not run in the environment's network with its keys is refused, naming the step
//! and the field, and the values it must have.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::JobSettings;

/// The step types a definition may use.
pub const ALLOWED_STEP_TYPES: &[&str] = &[
    "Processing",
    "Training",
    "Tuning",
    "Transform",
    "Model",
    "CreateModel",
    "RegisterModel",
    "Condition",
    "Fail",
    "QualityCheck",
    "ClarifyCheck",
];

/// Why a definition is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A step of a type that is not allowed (reason `StepNotAllowed`).
    StepNotAllowed(String),
    /// Anything else: not JSON, no steps, unknown references, jobs outside the network or
    /// without the keys, bad parameter values (reason `InvalidConfiguration`).
    Invalid(String),
}

impl Violation {
    /// The message, for the condition.
    pub fn message(&self) -> &str {
        match self {
            Self::StepNotAllowed(m) | Self::Invalid(m) => m,
        }
    }
}

const FIELD: &str = "spec.pipeline.definition";

/// The definition to send to SageMaker: `user` (the spec's JSON) or else `template`, checked,
/// with `parameters` as the defaults of its parameters.
pub fn effective(
    user: Option<&str>,
    template: Option<Value>,
    parameters: &BTreeMap<String, String>,
    settings: &JobSettings,
) -> Result<Value, Violation> {
    let mut definition = match (user, template) {
        (Some(text), _) => serde_json::from_str::<Value>(text)
            .map_err(|e| Violation::Invalid(format!("{FIELD}: not valid JSON: {e}")))?,
        (None, Some(template)) => template,
        (None, None) => return Err(Violation::Invalid(format!("{FIELD}: no definition and no template"))),
    };
    let Some(document) = definition.as_object_mut() else {
        return Err(Violation::Invalid(format!("{FIELD}: must be a JSON object with a Steps list")));
    };
    let steps = match document.get("Steps") {
        Some(Value::Array(steps)) if !steps.is_empty() => steps,
        _ => return Err(Violation::Invalid(format!("{FIELD}: must have a non-empty Steps list"))),
    };
    let mut all = Vec::new();
    flatten(steps, &mut all)?;
    let names = step_names(&all)?;
    let declared = declared_parameters(document)?;
    for step in &all {
        check_references(step, &names, &declared)?;
    }
    let problems: Vec<String> = all.iter().flat_map(|step| job_problems(step, settings)).collect();
    if !problems.is_empty() {
        return Err(Violation::Invalid(format!("{FIELD}: {}", problems.join("; "))));
    }
    apply_parameters(document, parameters)?;
    Ok(definition)
}

/// Every step, with the steps nested in conditions; unnamed steps and disallowed types refused.
fn flatten<'a>(steps: &'a [Value], out: &mut Vec<&'a Map<String, Value>>) -> Result<(), Violation> {
    for (i, step) in steps.iter().enumerate() {
        let Some(step) = step.as_object() else {
            return Err(Violation::Invalid(format!("{FIELD}: Steps[{i}] is not an object")));
        };
        let Some(name) = step.get("Name").and_then(Value::as_str) else {
            return Err(Violation::Invalid(format!("{FIELD}: Steps[{i}] has no Name")));
        };
        let kind = step.get("Type").and_then(Value::as_str).unwrap_or_default();
        if !ALLOWED_STEP_TYPES.contains(&kind) {
            return Err(Violation::StepNotAllowed(format!(
                "{FIELD}: step {name} has type {}; allowed step types: {}",
                if kind.is_empty() { "(none)" } else { kind },
                ALLOWED_STEP_TYPES.join(", ")
            )));
        }
        out.push(step);
        if kind == "Condition" {
            for branch in ["IfSteps", "ElseSteps"] {
                if let Some(Value::Array(nested)) = step.get("Arguments").and_then(|a| a.get(branch)) {
                    flatten(nested, out)?;
                }
            }
        }
    }
    Ok(())
}

fn name(step: &Map<String, Value>) -> &str {
    step.get("Name").and_then(Value::as_str).unwrap_or_default()
}

fn kind(step: &Map<String, Value>) -> &str {
    step.get("Type").and_then(Value::as_str).unwrap_or_default()
}

fn step_names<'a>(steps: &[&'a Map<String, Value>]) -> Result<BTreeSet<&'a str>, Violation> {
    let mut names = BTreeSet::new();
    for step in steps {
        if !names.insert(name(step)) {
            return Err(Violation::Invalid(format!("{FIELD}: two steps are named {}", name(step))));
        }
    }
    Ok(names)
}

fn declared_parameters(document: &Map<String, Value>) -> Result<BTreeSet<String>, Violation> {
    let mut names = BTreeSet::new();
    for (i, parameter) in document.get("Parameters").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let Some(name) = parameter.get("Name").and_then(Value::as_str) else {
            return Err(Violation::Invalid(format!("{FIELD}: Parameters[{i}] has no Name")));
        };
        names.insert(name.to_owned());
    }
    Ok(names)
}

/// Every `{"Get": "Parameters.X"}` names a declared parameter and every `{"Get": "Steps.S..."}`
/// a step of the definition.
fn check_references(
    step: &Map<String, Value>,
    steps: &BTreeSet<&str>,
    parameters: &BTreeSet<String>,
) -> Result<(), Violation> {
    let mut gets = Vec::new();
    // Nested steps are checked on their own; a condition's own references are its conditions.
    for (key, value) in step {
        if !(kind(step) == "Condition" && key == "Arguments") {
            collect_gets(value, &mut gets);
        }
    }
    if kind(step) == "Condition"
        && let Some(conditions) = step.get("Arguments").and_then(|a| a.get("Conditions"))
    {
        collect_gets(conditions, &mut gets);
    }
    for path in gets {
        let mut parts = path.splitn(3, '.');
        let (root, first) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        // Parameters.X; Steps.S.Property or Steps.S (S may be followed by [ or ]).
        let first = first.split(['[', ']']).next().unwrap_or_default();
        match root {
            "Parameters" if !parameters.contains(first) => {
                return Err(Violation::Invalid(format!(
                    "{FIELD}: step {} references parameter {first}, which Parameters does not declare",
                    name(step)
                )));
            }
            "Steps" if !steps.contains(first) => {
                return Err(Violation::Invalid(format!(
                    "{FIELD}: step {} references step {first}, which the definition does not have",
                    name(step)
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn collect_gets<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(path)) = map.get("Get") {
                out.push(path);
            }
            map.values().for_each(|v| collect_gets(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_gets(v, out)),
        _ => {}
    }
}

/// What is wrong with a job step's network, keys or registration, one line per field.
fn job_problems(step: &Map<String, Value>, settings: &JobSettings) -> Vec<String> {
    let Some(args) = step.get("Arguments") else {
        return vec![format!("step {} ({}) has no Arguments", name(step), kind(step))];
    };
    let mut c = Checker { settings, step: format!("step {} ({})", name(step), kind(step)), problems: Vec::new() };
    match kind(step) {
        "Processing" | "QualityCheck" | "ClarifyCheck" => {
            let network = args.get("NetworkConfig");
            c.vpc("NetworkConfig.VpcConfig", network.and_then(|n| n.get("VpcConfig")));
            c.encrypted("NetworkConfig.", network);
            let cluster = args.get("ProcessingResources").and_then(|r| r.get("ClusterConfig"));
            c.volume_key(
                "ProcessingResources.ClusterConfig.VolumeKmsKeyId",
                cluster.and_then(|v| v.get("VolumeKmsKeyId")),
            );
            if let Some(outputs) = args.get("ProcessingOutputConfig") {
                c.output_key("ProcessingOutputConfig.KmsKeyId", outputs.get("KmsKeyId"));
            }
        }
        "Training" => c.training(args, ""),
        "Tuning" => {
            let single = args.get("TrainingJobDefinition").into_iter();
            let many = args.get("TrainingJobDefinitions").and_then(Value::as_array).into_iter().flatten();
            let definitions: Vec<&Value> = single.chain(many).collect();
            c.need(!definitions.is_empty(), "TrainingJobDefinition", "set".into());
            for (i, definition) in definitions.into_iter().enumerate() {
                c.training(definition, &format!("TrainingJobDefinitions[{i}]."));
            }
        }
        "Transform" => {
            let resources = args.get("TransformResources").and_then(|r| r.get("VolumeKmsKeyId"));
            c.volume_key("TransformResources.VolumeKmsKeyId", resources);
            c.output_key("TransformOutput.KmsKeyId", args.get("TransformOutput").and_then(|o| o.get("KmsKeyId")));
        }
        "Model" | "CreateModel" => c.vpc("VpcConfig", args.get("VpcConfig")),
        "RegisterModel" => {
            let approval = args.get("ModelApprovalStatus").and_then(Value::as_str);
            let want = format!("{} (from spec.modelApproval)", settings.approval_status);
            c.need(approval == Some(settings.approval_status.as_str()), "ModelApprovalStatus", want);
            let group = args.get("ModelPackageGroupName").and_then(Value::as_str);
            let want = format!("{} (the project's model package group)", settings.model_package_group);
            c.need(group == Some(settings.model_package_group.as_str()), "ModelPackageGroupName", want);
            // The environment's roles find the versions they may read and approve by this tag.
            let key = crate::iam::REGISTRY_TAG_KEY;
            let tagged = args.get("Tags").and_then(Value::as_array).into_iter().flatten().any(|t| {
                t.get("Key").and_then(Value::as_str) == Some(key)
                    && t.get("Value").and_then(Value::as_str) == Some(settings.registry_tag.as_str())
            });
            let want =
                format!("to include {{Key: {key}, Value: {}}} (the environment's registry tag)", settings.registry_tag);
            c.need(tagged, "Tags", want);
        }
        _ => {}
    }
    c.problems
}

/// Collects what one step lacks.
struct Checker<'a> {
    settings: &'a JobSettings,
    step: String,
    problems: Vec<String>,
}

impl Checker<'_> {
    fn need(&mut self, ok: bool, field: &str, want: String) {
        if !ok {
            self.problems.push(format!("{}: {field} must be {want}", self.step));
        }
    }

    fn vpc(&mut self, at: &str, vpc: Option<&Value>) {
        let subnets = strings(vpc.and_then(|v| v.get("Subnets")));
        let groups = strings(vpc.and_then(|v| v.get("SecurityGroupIds")));
        let want = format!("the environment's private subnets ({})", self.settings.subnets.join(", "));
        let ok = !subnets.is_empty() && subnets.iter().all(|s| self.settings.subnets.contains(s));
        self.need(ok, &format!("{at}.Subnets"), want);
        let want = format!("[{}] (the environment's workloads group)", self.settings.security_group);
        let ok = groups == [self.settings.security_group.clone()];
        self.need(ok, &format!("{at}.SecurityGroupIds"), want);
    }

    fn encrypted(&mut self, at: &str, config: Option<&Value>) {
        let on = config.and_then(|c| c.get("EnableInterContainerTrafficEncryption")) == Some(&Value::Bool(true));
        self.need(on, &format!("{at}EnableInterContainerTrafficEncryption"), "true".into());
    }

    fn volume_key(&mut self, field: &str, key: Option<&Value>) {
        let want = format!("{} (the environment's ebs key)", self.settings.volume_key);
        self.need(key.and_then(Value::as_str) == Some(self.settings.volume_key.as_str()), field, want);
    }

    fn output_key(&mut self, field: &str, key: Option<&Value>) {
        let want = format!("{} (the environment's s3 key)", self.settings.output_key);
        self.need(key.and_then(Value::as_str) == Some(self.settings.output_key.as_str()), field, want);
    }

    /// A training job (or one of a tuning job's definitions), its fields under `at`.
    fn training(&mut self, args: &Value, at: &str) {
        self.vpc(&format!("{at}VpcConfig"), args.get("VpcConfig"));
        self.encrypted(at, Some(args));
        let resources = args.get("ResourceConfig").or_else(|| args.get("HyperParameterTuningResourceConfig"));
        self.volume_key(&format!("{at}ResourceConfig.VolumeKmsKeyId"), resources.and_then(|r| r.get("VolumeKmsKeyId")));
        let output = args.get("OutputDataConfig").and_then(|o| o.get("KmsKeyId"));
        self.output_key(&format!("{at}OutputDataConfig.KmsKeyId"), output);
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

/// The spec's parameter values become the defaults of the definition's parameters, typed as
/// each parameter declares.
fn apply_parameters(document: &mut Map<String, Value>, values: &BTreeMap<String, String>) -> Result<(), Violation> {
    let list = document.get_mut("Parameters").and_then(Value::as_array_mut);
    let mut declared: Vec<&mut Value> = list.map(|l| l.iter_mut().collect()).unwrap_or_default();
    for (name, text) in values {
        let field = format!("spec.pipeline.parameters.{name}");
        let Some(parameter) = declared.iter_mut().find(|p| p.get("Name").and_then(Value::as_str) == Some(name)) else {
            let mut known: Vec<String> =
                declared.iter().filter_map(|p| p.get("Name").and_then(Value::as_str).map(str::to_owned)).collect();
            known.sort();
            return Err(Violation::Invalid(format!(
                "{field}: the pipeline has no such parameter (it has: {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        };
        let kind = parameter.get("Type").and_then(Value::as_str).unwrap_or("String").to_owned();
        let value = match kind.as_str() {
            "Integer" => text.trim().parse::<i64>().ok().map(Value::from),
            "Float" => text.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::from),
            "Boolean" => text.trim().parse::<bool>().ok().map(Value::from),
            _ => Some(Value::from(text.clone())),
        };
        let Some(value) = value else {
            return Err(Violation::Invalid(format!("{field}: {text:?} is not a valid {kind}")));
        };
        if let Some(parameter) = parameter.as_object_mut() {
            parameter.insert("DefaultValue".into(), value);
        }
    }
    Ok(())
}
