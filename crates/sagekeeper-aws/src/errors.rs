//! Error classification, done once for every AWS call: each failure becomes an [`AwsError`]
//! with a [`ErrorKind`] that tells the reconciler whether to back off, wait for a change, or
//! treat the resource as missing. The AWS code is kept for condition messages.

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// What a failed AWS call means for the reconciler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The resource does not exist.
    NotFound,
    /// AWS asked us to slow down: back off.
    Throttled,
    /// A network, timeout or server-side failure: back off and retry.
    Transient,
    /// The name is taken by another resource.
    Conflict,
    /// The resource is in a state that forbids the call right now (in use, a dependency still
    /// attached, a concurrent change): wait and retry.
    Busy,
    /// The caller lacks permission: wait for an outside fix.
    AccessDenied,
    /// A service quota was hit: wait for an outside fix.
    Quota,
    /// AWS rejected the request as invalid: wait for a spec change.
    Invalid,
}

impl ErrorKind {
    /// A fixed label for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Throttled => "throttled",
            Self::Transient => "transient",
            Self::Conflict => "conflict",
            Self::Busy => "busy",
            Self::AccessDenied => "access_denied",
            Self::Quota => "quota",
            Self::Invalid => "invalid",
        }
    }

    /// True when waiting (with backoff) can fix it without any change.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Transient | Self::Busy)
    }
}

/// A classified AWS failure: the kind, the AWS error code, and AWS's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// What it means for the reconciler.
    pub kind: ErrorKind,
    /// The AWS error code (e.g. `AccessDenied`, `InvalidVpcID.NotFound`), or a stand-in such as
    /// `NetworkError` when AWS never answered.
    pub code: String,
    /// AWS's message, or the transport error.
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl StdError for AwsError {}

impl AwsError {
    /// An error from a code and message, classified by the code.
    pub fn from_code(code: &str, message: &str, http_status: Option<u16>) -> Self {
        let message = without_encoded_authorization(message);
        Self { kind: kind_of(code, &message, http_status), code: code.to_owned(), message }
    }

    /// Classifies the error of any SDK operation.
    pub fn from_sdk<E>(err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        // A failed assume-role surfaces inside whatever call needed the credentials: report the
        // STS failure itself, which names the real cause.
        if let Some(inner) = find_in_chain::<Self>(&err) {
            return inner.clone();
        }
        match &err {
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let service_err = context.err();
                match service_err.code() {
                    Some(code) => Self::from_code(code, service_err.message().unwrap_or_default(), Some(status)),
                    None => Self::from_status(status, &err),
                }
            }
            SdkError::ResponseError(context) => Self::from_status(context.raw().status().as_u16(), &err),
            SdkError::TimeoutError(_) => Self::transport("Timeout", &err),
            SdkError::DispatchFailure(_) => Self::transport("NetworkError", &err),
            // Construction failures are local: a request we could not even build.
            _ => Self { kind: ErrorKind::Invalid, code: "RequestConstructionFailed".into(), message: chain(&err) },
        }
    }

    /// True when AWS refused a policy for naming a principal it does not know, which right
    /// after the principal's creation means IAM has not propagated it yet.
    pub fn names_unknown_principal(&self) -> bool {
        matches!(self.code.as_str(), "MalformedPolicyDocumentException" | "MalformedPolicy" | "MalformedPolicyDocument")
            && self.message.to_ascii_lowercase().contains("principal")
    }

    fn from_status(status: u16, err: &dyn StdError) -> Self {
        let code = match status {
            403 => "AccessDenied",
            404 => "NotFound",
            429 => "Throttling",
            s if s >= 500 => "InternalFailure",
            _ => "UnknownError",
        };
        Self::from_code(code, &format!("HTTP {status}: {}", chain(err)), Some(status))
    }

    fn transport(code: &str, err: &dyn StdError) -> Self {
        Self { kind: ErrorKind::Transient, code: code.to_owned(), message: chain(err) }
    }
}

/// The one way a read says "not there": a NotFound failure becomes `Ok(None)`, every other
/// failure stays what it was.
pub trait Optional<T> {
    /// `Ok(Some(value))`, `Ok(None)` for NotFound, or the error.
    fn optional(self) -> Result<Option<T>, AwsError>;
}

impl<T> Optional<T> for Result<T, AwsError> {
    fn optional(self) -> Result<Option<T>, AwsError> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An id or ARN an AWS answer must carry: its absence is an error naming the operation and the
/// field, never an empty string that a later call would act on.
pub trait Required {
    /// The value, or an `IncompleteResponse` error naming the operation and the field.
    fn required(self, operation: &str, field: &str) -> Result<String, AwsError>;
}

impl Required for Option<&str> {
    fn required(self, operation: &str, field: &str) -> Result<String, AwsError> {
        match self {
            Some(value) if !value.is_empty() => Ok(value.to_owned()),
            _ => Err(AwsError {
                kind: ErrorKind::Transient,
                code: "IncompleteResponse".into(),
                message: format!("the {operation} answer has no {field}"),
            }),
        }
    }
}

/// EC2 appends an encoded authorization failure message to a refusal: kilobytes of opaque
/// text that only `sts:DecodeAuthorizationMessage` reads, and that tells whoever reads it which
/// policies and conditions refused the call. It never reaches a status, an event or a log: the
/// plain part before it already names the caller, the action and the resource.
fn without_encoded_authorization(message: &str) -> String {
    const MARKER: &str = "Encoded authorization failure message:";
    match message.find(MARKER) {
        Some(at) => format!("{} (encoded authorization message omitted)", message[..at].trim_end()),
        None => message.to_owned(),
    }
}

fn kind_of(code: &str, message: &str, http_status: Option<u16>) -> ErrorKind {
    const ACCESS_DENIED: &[&str] = &[
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "NotAuthorized",
        "AuthorizationError",
        "InvalidAccessKeyId",
        "OptInRequired",
    ];
    const THROTTLED: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "SlowDown",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
        "BandwidthLimitExceeded",
    ];
    const TRANSIENT: &[&str] = &[
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "InternalServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "ExpiredToken",
        "ExpiredTokenException",
        "IDPCommunicationError",
        "KMSInternalException",
    ];
    // Creating steps look up by name first; a step that creates buckets treats
    // BucketAlreadyOwnedByYou as the success it is.
    const CONFLICT: &[&str] =
        &["EntityAlreadyExists", "AlreadyExistsException", "BucketAlreadyExists", "BucketAlreadyOwnedByYou"];
    const BUSY: &[&str] = &[
        "ResourceInUse",
        "ResourceInUseException",
        "ConflictException",
        "DependencyViolation",
        "DeleteConflict",
        "InvalidStateException",
        "IncorrectState",
        "ConcurrentModification",
        "ConcurrentModificationException",
        "OperationAborted",
    ];
    const NOT_FOUND: &[&str] = &[
        "NotFound",
        "NotFoundException",
        "NoSuchEntity",
        "NoSuchBucket",
        "NoSuchKey",
        "NoSuchBucketPolicy",
        "NoSuchPublicAccessBlockConfiguration",
        "ServerSideEncryptionConfigurationNotFoundError",
        "OwnershipControlsNotFoundError",
        "NoSuchTagSet",
        "ResourceNotFound",
        "ResourceNotFoundException",
        "ObjectNotFoundException",
    ];
    if ACCESS_DENIED.contains(&code) {
        ErrorKind::AccessDenied
    } else if THROTTLED.contains(&code) {
        ErrorKind::Throttled
    } else if TRANSIENT.contains(&code) || http_status.is_some_and(|s| s >= 500) {
        ErrorKind::Transient
    } else if NOT_FOUND.contains(&code) || code.ends_with(".NotFound") {
        ErrorKind::NotFound
    } else if code == "ValidationException" && ["Could not find", "Cannot find"].iter().any(|m| message.starts_with(m))
    {
        // SageMaker answers Describe* of a missing resource (an endpoint, a group's policy) with
        // a ValidationException.
        ErrorKind::NotFound
    } else if CONFLICT.contains(&code) || code.ends_with(".Duplicate") || code.ends_with("AlreadyExists") {
        ErrorKind::Conflict
    } else if BUSY.contains(&code) {
        ErrorKind::Busy
    } else if code.contains("LimitExceeded") || code.contains("QuotaExceeded") || code == "InsufficientCapacity" {
        ErrorKind::Quota
    } else {
        ErrorKind::Invalid
    }
}

/// Finds an error of type `T` anywhere in the source chain of `err`.
pub(crate) fn find_in_chain<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// The whole source chain as one line, for messages (the SDK's Display stops at the top).
fn chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_authorization_messages_are_cut_and_the_plain_refusal_kept() {
        let message = "You are not authorized to perform this operation. User: arn:aws:sts::111111111111:assumed-role/sagekeeper-deployer/sagekeeper is not authorized to perform: ec2:CreateVpc on resource: arn:aws:ec2:us-east-1:111111111111:vpc/* because no identity-based policy allows the ec2:CreateVpc action. Encoded authorization failure message: 3Ad9fKq-VeryLongOpaqueBlob";
        let err = AwsError::from_code("UnauthorizedOperation", message, Some(403));
        assert_eq!(err.kind, ErrorKind::AccessDenied);
        assert!(!err.message.contains("3Ad9fKq") && !err.message.contains("Encoded authorization failure message"));
        assert!(err.message.contains("not authorized to perform: ec2:CreateVpc on resource"), "{}", err.message);
        assert!(err.message.ends_with("(encoded authorization message omitted)"), "{}", err.message);
        assert_eq!(AwsError::from_code("AccessDenied", "plain", Some(403)).message, "plain");
    }

    #[test]
    fn codes_map_to_the_kind_the_reconciler_acts_on() {
        let cases = [
            ("AccessDenied", ErrorKind::AccessDenied),
            ("UnauthorizedOperation", ErrorKind::AccessDenied),
            ("ThrottlingException", ErrorKind::Throttled),
            ("RequestLimitExceeded", ErrorKind::Throttled),
            ("SlowDown", ErrorKind::Throttled),
            ("InternalError", ErrorKind::Transient),
            ("InvalidVpcID.NotFound", ErrorKind::NotFound),
            ("NoSuchEntity", ErrorKind::NotFound),
            ("ResourceNotFound", ErrorKind::NotFound),
            ("OwnershipControlsNotFoundError", ErrorKind::NotFound),
            ("EntityAlreadyExists", ErrorKind::Conflict),
            ("InvalidGroup.Duplicate", ErrorKind::Conflict),
            ("DependencyViolation", ErrorKind::Busy),
            ("ResourceInUse", ErrorKind::Busy),
            ("ConcurrentModificationException", ErrorKind::Busy),
            ("ResourceLimitExceeded", ErrorKind::Quota),
            ("VpcLimitExceeded", ErrorKind::Quota),
            ("ServiceQuotaExceededException", ErrorKind::Quota),
            ("ValidationException", ErrorKind::Invalid),
            ("MalformedPolicyDocumentException", ErrorKind::Invalid),
            ("InvalidParameterValue", ErrorKind::Invalid),
        ];
        for (code, kind) in cases {
            assert_eq!(AwsError::from_code(code, "", Some(400)).kind, kind, "{code}");
        }
    }

    #[test]
    fn optional_turns_only_not_found_into_none() {
        let missing: Result<u8, AwsError> = Err(AwsError::from_code("NoSuchEntity", "", Some(404)));
        assert_eq!(missing.optional(), Ok(None));
        let refused: Result<u8, AwsError> = Err(AwsError::from_code("AccessDenied", "", Some(403)));
        assert_eq!(refused.optional().map_err(|e| e.kind), Err(ErrorKind::AccessDenied));
        assert_eq!(Ok::<u8, AwsError>(7).optional(), Ok(Some(7)));
    }

    #[test]
    fn a_missing_id_is_an_error_naming_the_operation_never_empty() {
        assert_eq!(Some("vpc-1").required("CreateVpc", "VpcId"), Ok("vpc-1".to_owned()));
        for missing in [None, Some("")] {
            let err = missing.required("CreateVpc", "VpcId").unwrap_err();
            assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Transient, "IncompleteResponse"));
            assert_eq!(err.message, "the CreateVpc answer has no VpcId");
        }
    }

    #[test]
    fn sagemaker_could_not_find_is_not_found() {
        let err = AwsError::from_code("ValidationException", "Could not find endpoint \"x\".", Some(400));
        assert_eq!(err.kind, ErrorKind::NotFound);
        let other = AwsError::from_code("ValidationException", "Instance type not supported", Some(400));
        assert_eq!(other.kind, ErrorKind::Invalid);
        // A create naming a missing role is the caller's mistake, not a missing resource.
        let role = AwsError::from_code("ValidationException", "Role arn:aws:iam::1:role/x does not exist", Some(400));
        assert_eq!(role.kind, ErrorKind::Invalid);
        let policy = AwsError::from_code("ValidationException", "Cannot find resource policy for: arn", Some(400));
        assert_eq!(policy.kind, ErrorKind::NotFound);
    }

    #[test]
    fn server_errors_are_transient_whatever_the_code() {
        assert_eq!(AwsError::from_code("Whatever", "", Some(503)).kind, ErrorKind::Transient);
        assert!(
            ErrorKind::Transient.is_retryable()
                && ErrorKind::Throttled.is_retryable()
                && ErrorKind::Busy.is_retryable()
        );
        assert!(!ErrorKind::AccessDenied.is_retryable() && !ErrorKind::Invalid.is_retryable());
    }

    #[test]
    fn display_starts_with_the_code() {
        let err = AwsError::from_code("AccessDenied", "not authorized", Some(403));
        assert_eq!(err.to_string(), "AccessDenied: not authorized");
    }
}
