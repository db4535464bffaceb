//! AwsAccount reconciler: obtains credentials for the account (assuming its role when set),
//! checks with sts:GetCallerIdentity that they belong to spec.accountId, and that the permissions
//! boundary every role sagekeeper creates there will carry exists. Deletion waits while
//! environments or deployments still name the account.

use kube::{Api, Client, ResourceExt};
use sagekeeper_api::conditions::{self, Component, Outcome, Reason};
use sagekeeper_api::{AwsAccount, AwsAccountStatus};
use sagekeeper_aws::identity::{CallerIdentity, describe_caller};
use sagekeeper_aws::{AwsError, ErrorKind, Session, iam};

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Report, Retry, status_fields};
use crate::resolve::{access_of, account_users, aws_failure, unless_in_use};
use crate::run::Error;

impl Kind for AwsAccount {
    type Status = AwsAccountStatus;

    fn api(client: Client, _namespace: Option<&str>) -> Api<Self> {
        Api::all(client)
    }

    status_fields!();

    fn retain_on_delete(&self) -> bool {
        false
    }

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let session = ctx.sessions.session(&access_of(self));
        let was_ready =
            self.status.as_ref().is_some_and(|s| conditions::is_ready(&s.conditions, self.metadata.generation));
        let boundary = self.spec.boundary_arn();
        let report = match check(&session, &self.spec.account_id, &boundary).await {
            Ok(Checked::Ready(caller)) => {
                let outcome = Outcome::Ready {
                    message: format!(
                        "credentials for {}; roles made here carry permissions boundary {boundary}",
                        caller.arn
                    ),
                };
                let status = AwsAccountStatus {
                    caller_arn: Some(caller.arn),
                    permissions_boundary_arn: Some(boundary),
                    ..Default::default()
                };
                Report::new(status, outcome)
            }
            Ok(Checked::NoBoundary(caller)) => Report::new(
                AwsAccountStatus { caller_arn: Some(caller.arn), ..Default::default() },
                Outcome::stalled(
                    Reason::InvalidConfiguration,
                    format!(
                        "NoSuchEntity: permissions boundary {boundary} does not exist in account {}: create it from deploy/aws/sagekeeper-boundary.json, or name another policy in spec.permissionsBoundaryArn",
                        self.spec.account_id
                    ),
                ),
            ),
            Ok(Checked::Mismatch(caller)) => Report::new(
                AwsAccountStatus::default(),
                Outcome::stalled(
                    Reason::AccountMismatch,
                    format!(
                        "STS reports account {} ({}), not spec.accountId {}: fix spec.accountId, spec.roleArn or the controller's credentials",
                        caller.account, caller.arn, self.spec.account_id
                    ),
                ),
            ),
            // A blip (throttling, a timeout) does not take a Ready account down, nor everything
            // built on it: it backs off and only reports once it failed several times in a row.
            Err((err, _))
                if err.kind.is_retryable() && was_ready && ctx.failures(&self.uid().unwrap_or_default()) < 3 =>
            {
                let status = self.status.clone().unwrap_or_default();
                let previous = conditions::find(&status.conditions, conditions::READY).map(|c| c.message.clone());
                let outcome = Outcome::Ready { message: previous.unwrap_or_default() };
                Report { retry: Retry::Backoff, failure: Some(err.kind), ..Report::new(status, outcome) }
            }
            Err((err, Step::Boundary)) => aws_failure(
                AwsAccountStatus::default(),
                Component::Credentials,
                &err,
                &format!("iam:GetPolicy {boundary}"),
                "let sagekeeper's role read the permissions boundary (deploy/aws/deployer/roles.json grants iam:GetPolicy on it)",
            ),
            Err((err, Step::Caller)) => {
                let (resource, remedy) = match &self.spec.role_arn {
                    Some(role) => (
                        format!("sts:AssumeRole {role}"),
                        "let the controller's principal assume the role (trust policy, and the external id when spec.externalId is set)",
                    ),
                    None => ("sts:GetCallerIdentity".to_owned(), "check the controller's own AWS credentials"),
                };
                let report = aws_failure(AwsAccountStatus::default(), Component::Credentials, &err, &resource, remedy);
                // A role just made (or a trust policy just changed) can refuse AssumeRole while IAM
                // propagates: look again on the backoff schedule, not only at the next drift check.
                match err.kind {
                    ErrorKind::AccessDenied => Report { retry: Retry::Backoff, ..report },
                    _ => report,
                }
            }
        };
        Ok(report)
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let users = account_users(ctx, &self.name_any()).await?;
        Ok(unless_in_use(&users, self.status.clone().unwrap_or_default()))
    }
}

/// What checking an account found.
enum Checked {
    /// The caller is in the account and the boundary exists.
    Ready(CallerIdentity),
    /// The caller is in the account; the boundary policy does not exist.
    NoBoundary(CallerIdentity),
    /// The credentials belong to another account.
    Mismatch(CallerIdentity),
}

/// Which call of the check failed.
enum Step {
    Caller,
    Boundary,
}

/// Who the credentials are, then whether the boundary exists (only in the right account).
async fn check(session: &Session, account_id: &str, boundary: &str) -> Result<Checked, (AwsError, Step)> {
    let caller = describe_caller(session).await.map_err(|e| (e, Step::Caller))?;
    if caller.account != account_id {
        return Ok(Checked::Mismatch(caller));
    }
    match iam::policy_exists(session, boundary).await {
        Ok(true) => Ok(Checked::Ready(caller)),
        Ok(false) => Ok(Checked::NoBoundary(caller)),
        Err(e) => Err((e, Step::Boundary)),
    }
}
