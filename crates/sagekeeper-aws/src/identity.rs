//! Caller identity: who a session's credentials belong to, as STS reports it.

use crate::errors::{AwsError, Required};
use crate::sessions::Session;

/// The account and ARN behind a session's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account id.
    pub account: String,
    /// The caller's ARN (an assumed-role session, user or role).
    pub arn: String,
}

/// Calls sts:GetCallerIdentity (obtaining assumed-role credentials first when needed).
pub async fn describe_caller(session: &Session) -> Result<CallerIdentity, AwsError> {
    let out = session.sts().get_caller_identity().send().await.map_err(AwsError::from_sdk)?;
    Ok(CallerIdentity {
        account: out.account().required("GetCallerIdentity", "Account")?,
        arn: out.arn().required("GetCallerIdentity", "Arn")?,
    })
}
