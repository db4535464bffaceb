//! AwsAccount reconciler: obtains credentials for the account (assuming its role when set),
//! checks with sts:GetCallerIdentity that they belong to spec.accountId, and that the permissions
//! boundary every role sagekeeper creates there will carry exists: two steps, the second needing
//! the first, through the one runner. Deletion waits while environments or deployments still
//! name the account.

use std::collections::BTreeMap;

use futures::FutureExt;
use kube::{Api, Client, ResourceExt};
use sagekeeper_api::conditions::{self, Component, Outcome, Reason};
use sagekeeper_api::{AwsAccount, AwsAccountStatus};
use sagekeeper_aws::identity::{CallerIdentity, describe_caller};
use sagekeeper_aws::{ErrorKind, Session, iam};

use crate::context::Context;
use crate::lifecycle::{Cleanup, Kind, Report, Retry, status_fields};
use crate::resolve::{access_of, account_users, aws_failure, unless_in_use};
use crate::run::Error;
use crate::steps::{Done, Lane, Ran, Results, Service, Step, StepId};

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
        let session = ctx.sessions.session(&access_of(self, None));
        let boundary = self.spec.boundary_arn();
        let results = run(ctx, &self.spec.account_id, &session, &boundary).await;
        let was_ready =
            self.status.as_ref().is_some_and(|s| conditions::is_ready(&s.conditions, self.metadata.generation));
        // A blip (throttling, a timeout) does not take a Ready account down, nor everything
        // built on it: it backs off and only reports once it failed several times in a row.
        let tolerate = was_ready && ctx.failures(&self.uid().unwrap_or_default()) < 3;
        Ok(fold(self, &boundary, tolerate, &results))
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let users = account_users(ctx, &self.name_any()).await?;
        Ok(unless_in_use(&users, self.status.clone().unwrap_or_default()))
    }
}

/// A step of an account's check.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AccountStep {
    /// Who the credentials are (assuming the role first, when the account names one).
    Caller,
    /// Whether the permissions boundary exists (asked only in the right account).
    Boundary,
}

impl StepId for AccountStep {
    fn step(&self) -> &'static str {
        match self {
            Self::Caller => "Caller",
            Self::Boundary => "Boundary",
        }
    }

    fn component(&self) -> Component {
        Component::Credentials
    }
}

/// What a step of an account's check found.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AccountOutput {
    /// The caller.
    Caller(CallerIdentity),
    /// Whether the boundary exists; `None` when the credentials are another account's.
    Boundary(Option<bool>),
}

/// Runs the check: the caller, then the boundary.
async fn run(
    ctx: &Context,
    account_id: &str,
    session: &Session,
    boundary: &str,
) -> Results<AccountStep, AccountOutput> {
    use AccountStep as S;
    let caller = Step::new(S::Caller, vec![], Lane::new(account_id, Service::Iam), move |_| {
        async move { Done::from_aws(describe_caller(session).await.map(AccountOutput::Caller), "caller") }.boxed()
    });
    let exists = Step::new(S::Boundary, vec![S::Caller], Lane::new(account_id, Service::Iam), move |inputs| {
        async move {
            match inputs.get(&S::Caller) {
                Some(AccountOutput::Caller(caller)) if caller.account == account_id => {
                    let found = iam::policy_exists(session, boundary).await;
                    Done::from_aws(found.map(|f| AccountOutput::Boundary(Some(f))), "boundary")
                }
                Some(AccountOutput::Caller(_)) => Done::Ready(AccountOutput::Boundary(None)),
                _ => Done::missing(&S::Caller),
            }
        }
        .boxed()
    });
    ctx.runner().run("AwsAccount", vec![caller, exists], &BTreeMap::new()).await
}

/// The account's status from its check. `tolerate`: a retryable failure keeps a Ready account
/// Ready (with its last message) and backs off. Pure.
fn fold(
    account: &AwsAccount,
    boundary: &str,
    tolerate: bool,
    results: &Results<AccountStep, AccountOutput>,
) -> Report<AwsAccountStatus> {
    use AccountStep as S;
    let failed = results.iter().find_map(|(id, r)| match r {
        Ran::Done(Done::Failed(f)) => Some((id, f)),
        _ => None,
    });
    if let Some((id, f)) = failed {
        if f.error.kind.is_retryable() && tolerate {
            let status = account.status.clone().unwrap_or_default();
            let previous = conditions::find(&status.conditions, conditions::READY).map(|c| c.message.clone());
            let outcome = Outcome::Ready { message: previous.unwrap_or_default() };
            return Report { retry: Retry::Backoff, failure: Some(f.error.kind), ..Report::new(status, outcome) };
        }
        let (resource, remedy) = match (id, &account.spec.role_arn) {
            (S::Boundary, _) => (
                format!("iam:GetPolicy {boundary}"),
                "let sagekeeper's role read the permissions boundary (deploy/aws/deployer/roles.json grants iam:GetPolicy on it)",
            ),
            (S::Caller, Some(role)) => (
                format!("sts:AssumeRole {role}"),
                "let the controller's principal assume the role (trust policy, and the external id when spec.externalId is set)",
            ),
            (S::Caller, None) => ("sts:GetCallerIdentity".to_owned(), "check the controller's own AWS credentials"),
        };
        let report = aws_failure(AwsAccountStatus::default(), Component::Credentials, &f.error, &resource, remedy);
        // A role just made (or a trust policy just changed) can refuse AssumeRole while IAM
        // propagates: look again on the backoff schedule, not only at the next drift check.
        return match (id, f.error.kind) {
            (S::Caller, ErrorKind::AccessDenied) => Report { retry: Retry::Backoff, ..report },
            _ => report,
        };
    }
    let (
        Some(Ran::Done(Done::Ready(AccountOutput::Caller(caller)))),
        Some(Ran::Done(Done::Ready(AccountOutput::Boundary(exists)))),
    ) = (results.get(&S::Caller), results.get(&S::Boundary))
    else {
        let outcome = Outcome::progressing(Reason::Pending(Component::Credentials), "checking the credentials");
        return Report { retry: Retry::Backoff, ..Report::new(AwsAccountStatus::default(), outcome) };
    };
    let account_id = &account.spec.account_id;
    match exists {
        Some(true) => {
            let message =
                format!("credentials for {}; roles made here carry permissions boundary {boundary}", caller.arn);
            let status = AwsAccountStatus {
                caller_arn: Some(caller.arn.clone()),
                permissions_boundary_arn: Some(boundary.to_owned()),
                ..Default::default()
            };
            Report::new(status, Outcome::Ready { message })
        }
        Some(false) => Report::new(
            AwsAccountStatus { caller_arn: Some(caller.arn.clone()), ..Default::default() },
            Outcome::stalled(
                Reason::InvalidConfiguration,
                format!(
                    "NoSuchEntity: permissions boundary {boundary} does not exist in account {account_id}: create it from deploy/aws/sagekeeper-boundary.json, or name another policy in spec.permissionsBoundaryArn"
                ),
            ),
        ),
        None => Report::new(
            AwsAccountStatus::default(),
            Outcome::stalled(
                Reason::AccountMismatch,
                format!(
                    "STS reports account {} ({}), not spec.accountId {account_id}: fix spec.accountId, spec.roleArn or the controller's credentials",
                    caller.account, caller.arn
                ),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use sagekeeper_aws::AwsError;

    use super::*;
    use crate::steps::Failure;

    fn account(role: Option<&str>, ready: bool) -> AwsAccount {
        let mut a: AwsAccount = serde_json::from_value(serde_json::json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "AwsAccount",
            "metadata": {"name": "prod", "generation": 1},
            "spec": {"accountId": "222222222222", "roleArn": role, "namespaceSelector": {}},
        }))
        .expect("an account");
        if ready {
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
            let ready = Outcome::Ready { message: "credentials for x".into() };
            let status = AwsAccountStatus {
                conditions: conditions::conditions(&ready, &[], Some(1), &now, &[]),
                ..Default::default()
            };
            a.status = Some(status);
        }
        a
    }

    fn caller(account: &str) -> Ran<AccountStep, AccountOutput> {
        Ran::Done(Done::Ready(AccountOutput::Caller(CallerIdentity {
            account: account.into(),
            arn: format!("arn:aws:sts::{account}:assumed-role/sagekeeper/s"),
        })))
    }

    fn failed(kind: ErrorKind, code: &str) -> Ran<AccountStep, AccountOutput> {
        Ran::Done(Done::Failed(Failure::new(AwsError { kind, code: code.into(), message: "no".into() }, "x")))
    }

    const BOUNDARY: &str = "arn:aws:iam::222222222222:policy/sagekeeper-boundary";

    #[test]
    fn the_right_account_with_its_boundary_is_ready_and_names_both() {
        let results = BTreeMap::from([
            (AccountStep::Caller, caller("222222222222")),
            (AccountStep::Boundary, Ran::Done(Done::Ready(AccountOutput::Boundary(Some(true))))),
        ]);
        let report = fold(&account(None, false), BOUNDARY, false, &results);
        assert!(report.outcome.is_ready(), "{:?}", report.outcome);
        assert_eq!(report.status.permissions_boundary_arn.as_deref(), Some(BOUNDARY));
        assert!(report.status.caller_arn.as_deref().is_some_and(|a| a.contains("222222222222")));
    }

    #[test]
    fn credentials_of_another_account_stall_as_a_mismatch_and_a_missing_boundary_as_invalid() {
        let other = BTreeMap::from([
            (AccountStep::Caller, caller("333333333333")),
            (AccountStep::Boundary, Ran::Done(Done::Ready(AccountOutput::Boundary(None)))),
        ]);
        let report = fold(&account(None, false), BOUNDARY, false, &other);
        assert!(
            matches!(&report.outcome, Outcome::Stalled { reason: Reason::AccountMismatch, message }
            if message.starts_with("STS reports account 333333333333")),
            "{:?}",
            report.outcome
        );
        let missing = BTreeMap::from([
            (AccountStep::Caller, caller("222222222222")),
            (AccountStep::Boundary, Ran::Done(Done::Ready(AccountOutput::Boundary(Some(false))))),
        ]);
        let report = fold(&account(None, false), BOUNDARY, false, &missing);
        assert!(
            matches!(&report.outcome, Outcome::Stalled { reason: Reason::InvalidConfiguration, message }
            if message.starts_with("NoSuchEntity: permissions boundary")),
            "{:?}",
            report.outcome
        );
    }

    #[test]
    fn a_refused_assume_role_names_the_role_and_backs_off_and_a_blip_keeps_a_ready_account_ready() {
        let role = "arn:aws:iam::222222222222:role/sagekeeper";
        let denied = BTreeMap::from([
            (AccountStep::Caller, failed(ErrorKind::AccessDenied, "AccessDenied")),
            (AccountStep::Boundary, Ran::Blocked(AccountStep::Caller)),
        ]);
        let report = fold(&account(Some(role), true), BOUNDARY, true, &denied);
        assert!(
            matches!(&report.outcome, Outcome::Stalled { reason: Reason::AccessDenied, message }
            if message.starts_with(&format!("AccessDenied: sts:AssumeRole {role}"))),
            "{:?}",
            report.outcome
        );
        assert_eq!(report.retry, Retry::Backoff);
        let throttled = BTreeMap::from([
            (AccountStep::Caller, caller("222222222222")),
            (AccountStep::Boundary, failed(ErrorKind::Throttled, "Throttling")),
        ]);
        let kept = fold(&account(Some(role), true), BOUNDARY, true, &throttled);
        assert!(kept.outcome.is_ready(), "{:?}", kept.outcome);
        assert_eq!((kept.retry, kept.failure), (Retry::Backoff, Some(ErrorKind::Throttled)));
        // The third blip in a row is reported.
        let reported = fold(&account(Some(role), true), BOUNDARY, false, &throttled);
        assert!(!reported.outcome.is_ready());
        assert!(reported.outcome.message().starts_with(&format!("Throttling: iam:GetPolicy {BOUNDARY}")));
    }
}
