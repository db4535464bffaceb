//! DataScienceEnvironment reconciler. This version resolves the environment's accounts (dev and
//! every target account: existence, tenancy, region, readiness) and reports honestly that it does
//! not create AWS resources yet. Deletion waits while projects name the environment.

use kube::{Api, Client, ResourceExt};
use sagekeeper_api::conditions::{Outcome, Reason};
use sagekeeper_api::{DataScienceEnvironment, DataScienceEnvironmentStatus, DeletionPolicy};

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Report, status_fields};
use crate::resolve::{self, environment_users, unless_in_use};
use crate::run::Error;

impl Kind for DataScienceEnvironment {
    type Status = DataScienceEnvironmentStatus;

    fn api(client: Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }

    status_fields!();

    fn retain_on_delete(&self) -> bool {
        self.spec.deletion_policy == DeletionPolicy::Retain
    }

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let labels = resolve::namespace_labels(ctx, &namespace).await?;
        let mut status = self.status.clone().unwrap_or_default();
        let region = Some(self.spec.region.as_str());
        let dev = match resolve::account(&ctx.stores, &self.spec.account, &namespace, &labels, region) {
            Ok(dev) => dev,
            Err(outcome) => return Ok(Report::new(status, outcome)),
        };
        status.account_id = Some(dev.spec.account_id.clone());
        let mut seen = std::collections::BTreeMap::new();
        for (stage, names) in &self.spec.target_accounts {
            for name in names {
                if let Some(other) = seen.insert(name, stage) {
                    let message = format!(
                        "spec.targetAccounts: AwsAccount {name} is listed for stages {other} and {stage}; an account serves one stage"
                    );
                    return Ok(Report::new(status, Outcome::stalled(Reason::InvalidConfiguration, message)));
                }
                if let Err(outcome) = resolve::account(&ctx.stores, name, &namespace, &labels, region) {
                    return Ok(Report::new(status, outcome));
                }
            }
        }
        let message = format!(
            "sagekeeper {} checks this environment's accounts ({} in {}) but does not create its AWS resources yet",
            env!("CARGO_PKG_VERSION"),
            dev.spec.account_id,
            self.spec.region
        );
        Ok(Report::new(status, Outcome::stalled(Reason::NotImplemented, message)))
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let users = environment_users(ctx, &self.namespace().unwrap_or_default(), &self.name_any()).await?;
        Ok(unless_in_use(&users, self.status.clone().unwrap_or_default()))
    }
}
