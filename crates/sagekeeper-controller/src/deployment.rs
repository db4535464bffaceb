//! ModelDeployment reconciler. This version resolves the project and its environment, checks
//! every stage against the environment's target accounts and the accounts' tenancy, and reports
//! honestly that it does not deploy endpoints yet.

use kube::{Api, Client, Resource, ResourceExt};
use sagekeeper_api::conditions::{Outcome, Reason};
use sagekeeper_api::{DataScienceEnvironment, DeletionPolicy, MLOpsProject, ModelDeployment, ModelDeploymentStatus};

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Report, status_fields};
use crate::resolve;
use crate::run::Error;

impl Kind for ModelDeployment {
    type Status = ModelDeploymentStatus;

    fn api(client: Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }

    status_fields!();

    fn retain_on_delete(&self) -> bool {
        self.spec.deletion_policy == DeletionPolicy::Retain
    }

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let status = self.status.clone().unwrap_or_default();
        let name = &self.spec.project;
        let Some(project) = resolve::fetch::<MLOpsProject>(ctx, Some(&namespace), name).await? else {
            let outcome = Outcome::progressing(Reason::DependencyNotReady, format!("MLOpsProject {name} not found"));
            return Ok(Report::new(status, outcome));
        };
        let env_name = &project.spec.environment;
        let Some(environment) = resolve::fetch::<DataScienceEnvironment>(ctx, Some(&namespace), env_name).await? else {
            let message = format!("DataScienceEnvironment {env_name} (of MLOpsProject {name}) not found");
            return Ok(Report::new(status, Outcome::progressing(Reason::DependencyNotReady, message)));
        };
        let labels = resolve::namespace_labels(ctx, &namespace).await?;
        if let Err(outcome) = check_stages(self, ctx, &environment, &namespace, &labels).await? {
            return Ok(Report::new(status, outcome));
        }
        let list = project.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        if let Err(outcome) = resolve::ready("MLOpsProject", name, list, project.meta().generation) {
            return Ok(Report::new(status, outcome));
        }
        let message = format!("sagekeeper {} does not deploy models to endpoints yet", env!("CARGO_PKG_VERSION"));
        Ok(Report::new(status, Outcome::stalled(Reason::NotImplemented, message)))
    }

    async fn cleanup(&self, _ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        // Nothing is created in AWS by this version, so nothing is left to remove.
        Ok(Cleanup::Done)
    }
}

/// Every stage must be a stage of the environment, name only that stage's accounts, and each
/// account must admit the namespace.
async fn check_stages(
    deployment: &ModelDeployment,
    ctx: &Context,
    environment: &DataScienceEnvironment,
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<Result<(), Outcome>, Error> {
    let env_name = environment.name_any();
    let targets = &environment.spec.target_accounts;
    for stage in &deployment.spec.stages {
        let Some(stage_accounts) = targets.get(&stage.name) else {
            let known: Vec<&str> = targets.keys().map(String::as_str).collect();
            return Ok(Err(Outcome::stalled(
                Reason::InvalidConfiguration,
                format!(
                    "spec.stages[{}]: not a stage of DataScienceEnvironment {env_name} (its spec.targetAccounts has: {})",
                    stage.name,
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            )));
        };
        let accounts = stage.accounts.as_ref().unwrap_or(stage_accounts);
        for account in accounts {
            if !stage_accounts.contains(account) {
                return Ok(Err(Outcome::stalled(
                    Reason::InvalidConfiguration,
                    format!(
                        "spec.stages[{}].accounts: AwsAccount {account} is not an account of stage {} in DataScienceEnvironment {env_name}",
                        stage.name, stage.name
                    ),
                )));
            }
            if let Err(outcome) =
                resolve::account(ctx, account, namespace, labels, Some(&environment.spec.region)).await?
            {
                return Ok(Err(outcome));
            }
        }
    }
    Ok(Ok(()))
}
