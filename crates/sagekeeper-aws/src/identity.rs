//! Caller identity: who a session's credentials belong to, as STS reports it.

use crate::errors::AwsError;
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
    Ok(CallerIdentity { account: out.account.unwrap_or_default(), arn: out.arn.unwrap_or_default() })
}
