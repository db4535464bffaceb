//! MLOpsProject reconciler. This version resolves the project's environment (EnvironmentReady)
//! and reports honestly that it does not create the registry and pipeline yet. Deletion waits
//! while deployments name the project.

use kube::{Api, Client, Resource, ResourceExt};
use sagekeeper_api::conditions::{Component, ComponentState, Outcome, Reason};
use sagekeeper_api::{DataScienceEnvironment, DeletionPolicy, MLOpsProject, MLOpsProjectStatus};

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Report, status_fields};
use crate::resolve::{self, project_users, unless_in_use};
use crate::run::Error;

impl Kind for MLOpsProject {
    type Status = MLOpsProjectStatus;

    fn api(client: Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }

    status_fields!();

    fn retain_on_delete(&self) -> bool {
        self.spec.deletion_policy == DeletionPolicy::Retain
    }

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let name = &self.spec.environment;
        let status = self.status.clone().unwrap_or_default();
        let environment = resolve::fetch::<DataScienceEnvironment>(ctx, Some(&namespace), name).await?;
        let env_outcome = match &environment {
            None => {
                Outcome::progressing(Reason::DependencyNotReady, format!("DataScienceEnvironment {name} not found"))
            }
            Some(env) => {
                let list = env.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
                match resolve::ready("DataScienceEnvironment", name, list, env.meta().generation) {
                    Ok(()) => Outcome::Ready { message: format!("DataScienceEnvironment {name} is Ready") },
                    Err(outcome) => outcome,
                }
            }
        };
        let outcome = if env_outcome.is_ready() {
            Outcome::stalled(
                Reason::NotImplemented,
                format!(
                    "sagekeeper {} does not create the registry and pipeline of a project yet",
                    env!("CARGO_PKG_VERSION")
                ),
            )
        } else {
            env_outcome.clone()
        };
        let mut report = Report::new(status, outcome);
        report.components = vec![ComponentState { component: Component::Environment, outcome: env_outcome }];
        Ok(report)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let users = project_users(ctx, &self.namespace().unwrap_or_default(), &self.name_any()).await?;
        Ok(unless_in_use(&users, self.status.clone().unwrap_or_default()))
    }
}
