//! AwsAccount reconciler: obtains credentials for the account (assuming its role when set) and
//! checks with sts:GetCallerIdentity that they belong to spec.accountId. Deletion waits while
//! environments or deployments still name the account.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Api, Client, ResourceExt};
use sagekeeper_api::conditions::{Component, Outcome, Reason};
use sagekeeper_api::{AwsAccount, AwsAccountStatus};
use sagekeeper_aws::identity::describe_caller;

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Report};
use crate::resolve::{access_of, account_users, aws_failure, in_use};
use crate::run::Error;

impl Kind for AwsAccount {
    type Status = AwsAccountStatus;

    fn api(client: Client, _namespace: Option<&str>) -> Api<Self> {
        Api::all(client)
    }

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn conditions(status: &Self::Status) -> &[Condition] {
        &status.conditions
    }

    fn finish(status: &mut Self::Status, generation: Option<i64>, conditions: Vec<Condition>) {
        status.observed_generation = generation;
        status.conditions = conditions;
    }

    fn retain_on_delete(&self) -> bool {
        false
    }

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let session = ctx.sessions.session(&access_of(self));
        let report = match describe_caller(&session).await {
            Ok(caller) if caller.account == self.spec.account_id => {
                let outcome = Outcome::Ready { message: format!("credentials for {}", caller.arn) };
                Report::new(AwsAccountStatus { caller_arn: Some(caller.arn), ..Default::default() }, outcome)
            }
            Ok(caller) => Report::new(
                AwsAccountStatus::default(),
                Outcome::stalled(
                    Reason::AccountMismatch,
                    format!(
                        "STS reports account {} ({}), not spec.accountId {}: fix spec.accountId, spec.roleArn or the controller's credentials",
                        caller.account, caller.arn, self.spec.account_id
                    ),
                ),
            ),
            Err(err) => {
                let (resource, remedy) = match &self.spec.role_arn {
                    Some(role) => (
                        format!("sts:AssumeRole {role}"),
                        "let the controller's principal assume the role (trust policy, and the external id when spec.externalId is set)",
                    ),
                    None => ("sts:GetCallerIdentity".to_owned(), "check the controller's own AWS credentials"),
                };
                let (outcome, retry) = aws_failure(Component::Credentials, &err, &resource, remedy);
                Report { retry, ..Report::new(AwsAccountStatus::default(), outcome) }
            }
        };
        Ok(report)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let users = account_users(&ctx.stores, &self.name_any());
        if users.is_empty() {
            return Ok(Cleanup::Done);
        }
        let status = self.status.clone().unwrap_or_default();
        Ok(Cleanup::Wait(Report::new(status, in_use(&users))))
    }
}
