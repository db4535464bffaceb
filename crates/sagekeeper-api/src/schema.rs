//! Schema building blocks shared by the kinds: the patterns and bounds the API server checks
//! at admission, and the description formatting every kind shares.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// A 12-digit AWS account id.
pub(crate) const ACCOUNT_ID: &str = r"^[0-9]{12}$";
/// An IAM role ARN in any partition.
pub(crate) const ROLE_ARN: &str = r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$";
/// An IAM role or user ARN (so never an account root or a service).
pub(crate) const PRINCIPAL_ARN: &str = r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]{1,512}$";
/// An IAM managed policy ARN, customer managed or AWS managed.
pub(crate) const POLICY_ARN: &str = r"^arn:aws(-cn|-us-gov)?:iam::([0-9]{12}|aws):policy/[A-Za-z0-9+=,.@_/-]{1,512}$";
/// The characters and length STS accepts for an external id.
pub(crate) const EXTERNAL_ID: &str = r"^[A-Za-z0-9+=,.@:/_-]+$";
/// An AWS region name such as `us-east-1` or `us-gov-west-1`.
pub(crate) const REGION: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$";
/// An availability zone name such as `us-east-1a`.
pub(crate) const AVAILABILITY_ZONE: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}[a-z]$";
/// The name of another Kubernetes object (a DNS subdomain).
pub(crate) const OBJECT_NAME: &str = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";
/// A dotted-quad IPv4 CIDR; CEL checks the value and prefix length on top.
pub(crate) const IPV4_CIDR: &str = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$";
/// A SageMaker name: letters, digits and hyphens, 1 to 63 characters.
pub(crate) const SAGEMAKER_NAME: &str = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$";
/// A stage name: lowercase DNS label of at most 32 characters (it becomes part of AWS names).
pub(crate) const STAGE_NAME: &str = r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$";
/// The suffix of a VPC endpoint service name after `com.amazonaws.<region>.`.
pub(crate) const ENDPOINT_SERVICE: &str = r"^[a-z0-9]+([.-][a-z0-9]+)*$";
/// A KMS key ARN (not an alias), single- or multi-Region.
pub(crate) const KMS_KEY_ARN: &str = r"^arn:aws(-cn|-us-gov)?:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-)?[0-9a-f-]{32,36}$";
/// A VPC id.
pub(crate) const VPC_ID: &str = r"^vpc-[0-9a-f]{8,17}$";
/// A subnet id.
pub(crate) const SUBNET_ID: &str = r"^subnet-[0-9a-f]{8,17}$";
/// A SageMaker hosting instance type such as `ml.m5.large`.
pub(crate) const INSTANCE_TYPE: &str = r"^ml\.[a-z0-9]+\.[a-z0-9]+$";
/// A model package version number.
pub(crate) const VERSION_NUMBER: &str = r"^[1-9][0-9]{0,8}$";

/// Longest object name accepted in a reference.
pub(crate) const MAX_NAME: u32 = 253;

/// The CEL rule that checks an IPv4 CIDR lies between /16 and /24 and is a network address.
pub(crate) const VPC_CIDR_RULE: &str = "isCIDR(self) && cidr(self).ip().family() == 4 \
     && cidr(self).prefixLength() >= 16 && cidr(self).prefixLength() <= 24 \
     && string(cidr(self).masked()) == self";

/// Caps a map at `max_properties` entries and merges `values` into the schema of its values.
/// (schemars' `length` and `inner` do not reach maps, and CEL needs bounded maps to cost them.)
pub(crate) fn bound_map(schema: &mut schemars::Schema, max_properties: u32, values: serde_json::Value) {
    schema.insert("maxProperties".into(), max_properties.into());
    if let (Some(target), serde_json::Value::Object(extra)) =
        (schema.get_mut("additionalProperties").and_then(|v| v.as_object_mut()), values)
    {
        target.extend(extra);
    }
}

/// Joins the lines of each paragraph of every description, so `kubectl explain` wraps the text
/// itself instead of breaking where the doc comment did.
pub(crate) fn unwrap_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(text) = schema.description.as_mut() {
        *text = text
            .split("\n\n")
            .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.items.as_mut().and_then(|i| match i {
            JSONSchemaPropsOrArray::Schema(s) => Some(s.as_mut()),
            JSONSchemaPropsOrArray::Schemas(_) => None,
        }))
        .chain(schema.additional_properties.as_mut().and_then(|a| match a {
            JSONSchemaPropsOrBool::Schema(s) => Some(s.as_mut()),
            JSONSchemaPropsOrBool::Bool(_) => None,
        }));
    for child in children {
        unwrap_descriptions(child);
    }
}

/// Bounds a label selector (list sizes, key and value lengths) so the CEL rules on it stay cheap.
pub(crate) fn bound_label_selector(schema: &mut schemars::Schema) {
    let bounds = serde_json::json!({
        "matchLabels": {"maxProperties": 16, "additionalProperties": {"maxLength": 63}},
        "matchExpressions": {"maxItems": 16, "items": {"properties": {
            "key": {"maxLength": 317},
            "operator": {"maxLength": 16},
            "values": {"maxItems": 64, "items": {"maxLength": 63}},
        }}},
    });
    if let Some(properties) = schema.get_mut("properties") {
        merge_json(properties, &bounds);
    }
}

/// Merges `extra` into `target`, object by object.
fn merge_json(target: &mut serde_json::Value, extra: &serde_json::Value) {
    match (target, extra) {
        (serde_json::Value::Object(t), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge_json(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (t, e) => *t = e.clone(),
    }
}
