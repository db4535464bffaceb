//! The sagekeeper API (`sagekeeper.io/v1alpha1`): custom resource types, the condition rules
//! every reconciler shares, and pure checks (tenancy, naming). No I/O, no AWS, no tokio.

pub mod account;
pub mod account_set;
pub mod cidr;
pub mod conditions;
pub mod deployment;
pub mod environment;
pub mod naming;
pub mod project;
mod schema;
pub mod tenancy;

pub use account::{AwsAccount, AwsAccountSpec, AwsAccountStatus};
pub use account_set::{AwsAccountSet, AwsAccountSetSpec, AwsAccountSetStatus};
pub use deployment::{ModelDeployment, ModelDeploymentSpec, ModelDeploymentStatus};
pub use environment::{DataScienceEnvironment, DataScienceEnvironmentSpec, DataScienceEnvironmentStatus};
pub use project::{MLOpsProject, MLOpsProjectSpec, MLOpsProjectStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every sagekeeper kind.
pub const GROUP: &str = "sagekeeper.io";
/// The finalizer sagekeeper puts on every object it manages.
pub const FINALIZER: &str = "sagekeeper.io/cleanup";
/// The server-side-apply field manager of every write sagekeeper makes.
pub const FIELD_MANAGER: &str = "sagekeeper";
/// Annotation that stops all AWS writes for one object while set to `"true"`.
pub const PAUSED_ANNOTATION: &str = "sagekeeper.io/paused";

/// What deletion of a sagekeeper object does to what it created in AWS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub enum DeletionPolicy {
    /// Remove what the object created (data is kept unless `deleteDataOnDelete` says otherwise).
    #[default]
    Delete,
    /// Release the object and leave everything in AWS untouched.
    Retain,
}

/// The CustomResourceDefinitions of all five kinds, in the order `kubectl apply` should see them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        AwsAccount::crd(),
        AwsAccountSet::crd(),
        DataScienceEnvironment::crd(),
        MLOpsProject::crd(),
        ModelDeployment::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
                schema::unwrap_descriptions(schema);
            }
        }
    }
    crds
}

/// True when the object carries `sagekeeper.io/paused: "true"`.
pub fn is_paused(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.annotations.as_ref().and_then(|a| a.get(PAUSED_ANNOTATION)).is_some_and(|v| v == "true")
}
