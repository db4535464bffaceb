//! The condition rules every kind follows, in one place: the reason vocabulary, the kstatus
//! triple (Ready, Stalled, Reconciling) derived from one reconcile outcome, per-component
//! conditions, and `lastTransitionTime` that moves only when a status changes.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition type: everything the current generation asks for exists in AWS and matches.
pub const READY: &str = "Ready";
/// Condition type: progress needs a spec change or an outside fix.
pub const STALLED: &str = "Stalled";
/// Condition type: the object is neither Ready nor Stalled, so work is under way.
pub const RECONCILING: &str = "Reconciling";

/// Longest message kept in a condition (the API server allows 32768 bytes).
const MAX_MESSAGE: usize = 4096;

/// A part of an object that converges on its own and reports its own `<Component>Ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// An AwsAccount's credentials and caller identity.
    Credentials,
    /// VPC, subnets, route tables, security groups, endpoints.
    Network,
    /// KMS keys and their policies.
    Encryption,
    /// S3 buckets and their policies.
    Storage,
    /// IAM roles and their policies.
    Identity,
    /// The SageMaker Studio domain and user profiles.
    Studio,
    /// What the target accounts need to serve models.
    TargetAccounts,
    /// The environment a project or deployment builds on.
    Environment,
    /// The model package group and its policy.
    Registry,
    /// The SageMaker pipeline.
    Pipeline,
    /// The model version a deployment resolved.
    Model,
    /// The stages of a deployment.
    Stages,
    /// Teardown of what the object created.
    Deletion,
    /// The organizational unit an account set reads.
    Organization,
}

impl Component {
    /// Every component.
    pub const ALL: [Component; 14] = [
        Self::Credentials,
        Self::Network,
        Self::Encryption,
        Self::Storage,
        Self::Identity,
        Self::Studio,
        Self::TargetAccounts,
        Self::Environment,
        Self::Registry,
        Self::Pipeline,
        Self::Model,
        Self::Stages,
        Self::Deletion,
        Self::Organization,
    ];

    /// The component's name as it appears in condition types and reasons.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Credentials => "Credentials",
            Self::Network => "Network",
            Self::Encryption => "Encryption",
            Self::Storage => "Storage",
            Self::Identity => "Identity",
            Self::Studio => "Studio",
            Self::TargetAccounts => "TargetAccounts",
            Self::Environment => "Environment",
            Self::Registry => "Registry",
            Self::Pipeline => "Pipeline",
            Self::Model => "Model",
            Self::Stages => "Stages",
            Self::Deletion => "Deletion",
            Self::Organization => "Organization",
        }
    }

    /// The `<Component>Ready` condition type of this component.
    pub fn condition_type(self) -> String {
        format!("{}Ready", self.as_str())
    }
}

/// The fixed reason vocabulary of every condition sagekeeper writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Everything exists and matches.
    Converged,
    /// A component is still being created or waits on a transitional AWS state.
    Pending(Component),
    /// A component failed in a way a retry may fix.
    Failed(Component),
    /// A referenced object is missing or not Ready yet.
    DependencyNotReady,
    /// The namespace is not selected by the AwsAccount's namespaceSelector.
    AccountNotPermitted,
    /// STS reports an account other than the AwsAccount's accountId.
    AccountMismatch,
    /// AWS refused the call for lack of permission.
    AccessDenied,
    /// The spec asks for something AWS or sagekeeper rejects.
    InvalidConfiguration,
    /// An AWS service quota was hit.
    QuotaExceeded,
    /// A same-named AWS resource belongs to someone else.
    NameConflict,
    /// Deletion waits: other objects still use this one.
    InUse,
    /// The `sagekeeper.io/paused` annotation stops all AWS writes.
    Paused,
    /// The requested model version is missing or not Approved.
    ModelNotApproved,
    /// A pipeline definition uses a step type that is not allowed.
    StepNotAllowed,
    /// This version of sagekeeper does not converge this kind yet.
    NotImplemented,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Converged => f.write_str("Converged"),
            Self::Pending(c) => write!(f, "{}Pending", c.as_str()),
            Self::Failed(c) => write!(f, "{}Failed", c.as_str()),
            Self::DependencyNotReady => f.write_str("DependencyNotReady"),
            Self::AccountNotPermitted => f.write_str("AccountNotPermitted"),
            Self::AccountMismatch => f.write_str("AccountMismatch"),
            Self::AccessDenied => f.write_str("AccessDenied"),
            Self::InvalidConfiguration => f.write_str("InvalidConfiguration"),
            Self::QuotaExceeded => f.write_str("QuotaExceeded"),
            Self::NameConflict => f.write_str("NameConflict"),
            Self::InUse => f.write_str("InUse"),
            Self::Paused => f.write_str("Paused"),
            Self::ModelNotApproved => f.write_str("ModelNotApproved"),
            Self::StepNotAllowed => f.write_str("StepNotAllowed"),
            Self::NotImplemented => f.write_str("NotImplemented"),
        }
    }
}

impl std::str::FromStr for Reason {
    type Err = String;

    /// Reads a reason back from a condition (the inverse of `Display`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fixed = [
            Self::Converged,
            Self::DependencyNotReady,
            Self::AccountNotPermitted,
            Self::AccountMismatch,
            Self::AccessDenied,
            Self::InvalidConfiguration,
            Self::QuotaExceeded,
            Self::NameConflict,
            Self::InUse,
            Self::Paused,
            Self::ModelNotApproved,
            Self::StepNotAllowed,
            Self::NotImplemented,
        ];
        let composed = Component::ALL.into_iter().flat_map(|c| [Self::Pending(c), Self::Failed(c)]);
        fixed.into_iter().chain(composed).find(|r| r.to_string() == s).ok_or_else(|| format!("unknown reason {s}"))
    }
}

/// The verdict of one reconcile of one object, from which Ready, Stalled and Reconciling follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything the current generation asks for exists and matches.
    Ready {
        /// What is ready, for people reading `kubectl describe`.
        message: String,
    },
    /// Work is under way or waits on something that will change by itself.
    Progressing {
        /// Why it is not ready yet.
        reason: Reason,
        /// What it waits for.
        message: String,
    },
    /// Progress needs a spec change or an outside fix.
    Stalled {
        /// Why it cannot go on.
        reason: Reason,
        /// The AWS error code first (when there is one), the resource, and what to do.
        message: String,
    },
}

impl Outcome {
    /// A Progressing outcome.
    pub fn progressing(reason: Reason, message: impl Into<String>) -> Self {
        Self::Progressing { reason, message: message.into() }
    }

    /// A Stalled outcome.
    pub fn stalled(reason: Reason, message: impl Into<String>) -> Self {
        Self::Stalled { reason, message: message.into() }
    }

    /// The reason the Ready condition carries for this outcome.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Ready { .. } => Reason::Converged,
            Self::Progressing { reason, .. } | Self::Stalled { reason, .. } => *reason,
        }
    }

    /// The message the Ready condition carries for this outcome.
    pub fn message(&self) -> &str {
        match self {
            Self::Ready { message } | Self::Progressing { message, .. } | Self::Stalled { message, .. } => message,
        }
    }

    /// True for the Ready outcome.
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready { .. })
    }
}

/// The state of one component, reported as its `<Component>Ready` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentState {
    /// The component.
    pub component: Component,
    /// The outcome of its step(s).
    pub outcome: Outcome,
}

/// Formats a message for a failure AWS reported: the AWS code first, then the resource, what AWS
/// said, and what to do. Codes go in messages, never in reasons (they may contain dots).
pub fn aws_failure_message(code: &str, resource: &str, detail: &str, remedy: &str) -> String {
    let mut message = format!("{code}: {resource}");
    for part in [detail, remedy] {
        if !part.is_empty() {
            message.push_str(": ");
            message.push_str(part);
        }
    }
    message
}

/// Builds the full condition list of an object: Ready, Stalled and Reconciling from the outcome,
/// then one condition per component. `lastTransitionTime` is kept from `previous` when a status
/// is unchanged.
pub fn conditions(
    outcome: &Outcome,
    components: &[ComponentState],
    generation: Option<i64>,
    now: &Time,
    previous: &[Condition],
) -> Vec<Condition> {
    let build = |type_: &str, status: bool, reason: Reason, message: &str| {
        condition(type_, if status { "True" } else { "False" }, &reason.to_string(), message, generation, now, previous)
    };
    let stalled = matches!(outcome, Outcome::Stalled { .. });
    let ready = outcome.is_ready();
    let quiet = |yes: bool| if yes { outcome.message() } else { "" };
    let mut out = vec![
        build(READY, ready, outcome.reason(), outcome.message()),
        build(STALLED, stalled, outcome.reason(), quiet(stalled)),
        build(RECONCILING, !ready && !stalled, outcome.reason(), quiet(!ready && !stalled)),
    ];
    for state in components {
        let c = &state.outcome;
        out.push(build(&state.component.condition_type(), c.is_ready(), c.reason(), c.message()));
    }
    out
}

/// A condition outside the kstatus triple and the components (such as `LastRunSucceeded`):
/// `status` None is `Unknown`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extra {
    /// The condition type.
    pub type_: &'static str,
    /// True, False, or None for Unknown.
    pub status: Option<bool>,
    /// Its reason, from the vocabulary.
    pub reason: Reason,
    /// What it says.
    pub message: String,
}

/// The condition of an [`Extra`], with `lastTransitionTime` kept from `previous` when its
/// status is unchanged.
pub fn extra(extra: &Extra, generation: Option<i64>, now: &Time, previous: &[Condition]) -> Condition {
    let status = match extra.status {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    };
    condition(extra.type_, status, &extra.reason.to_string(), &extra.message, generation, now, previous)
}

/// The condition list of a paused object: every condition keeps its last observation and only
/// Reconciling changes (False, reason Paused).
pub fn paused(generation: Option<i64>, now: &Time, previous: &[Condition]) -> Vec<Condition> {
    let mut out: Vec<Condition> = previous.iter().filter(|c| c.type_ != RECONCILING).cloned().collect();
    out.push(condition(
        RECONCILING,
        "False",
        &Reason::Paused.to_string(),
        "sagekeeper.io/paused is \"true\": no AWS writes until it is removed",
        generation,
        now,
        previous,
    ));
    out
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
    previous: &[Condition],
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: truncate(message),
        observed_generation: generation,
        last_transition_time,
    }
}

fn truncate(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the conditions say Ready=True for the given generation.
pub fn is_ready(conditions: &[Condition], generation: Option<i64>) -> bool {
    find(conditions, READY).is_some_and(|c| c.status == "True" && c.observed_generation == generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    fn get<'a>(list: &'a [Condition], type_: &str) -> &'a Condition {
        find(list, type_).unwrap_or_else(|| panic!("condition {type_} missing"))
    }

    fn all_outcomes() -> Vec<Outcome> {
        vec![
            Outcome::Ready { message: "all good".into() },
            Outcome::progressing(Reason::Pending(Component::Network), "waiting for vpce-1"),
            Outcome::progressing(Reason::DependencyNotReady, "AwsAccount dev is not Ready"),
            Outcome::stalled(Reason::AccessDenied, "AccessDenied: role x"),
            Outcome::stalled(Reason::AccountNotPermitted, "namespace not selected"),
            Outcome::stalled(Reason::NotImplemented, "not yet"),
        ]
    }

    #[test]
    fn reasons_are_camel_case_and_components_compose() {
        let pattern_ok = |s: &str| {
            s.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
        };
        let reasons = [
            Reason::Converged,
            Reason::Pending(Component::TargetAccounts),
            Reason::Failed(Component::Studio),
            Reason::DependencyNotReady,
            Reason::AccountNotPermitted,
            Reason::AccountMismatch,
            Reason::AccessDenied,
            Reason::InvalidConfiguration,
            Reason::QuotaExceeded,
            Reason::NameConflict,
            Reason::InUse,
            Reason::Paused,
            Reason::ModelNotApproved,
            Reason::StepNotAllowed,
            Reason::NotImplemented,
        ];
        for reason in reasons {
            assert!(pattern_ok(&reason.to_string()), "{reason} is not CamelCase");
        }
        assert_eq!(Reason::Pending(Component::TargetAccounts).to_string(), "TargetAccountsPending");
        assert_eq!(Reason::Failed(Component::Studio).to_string(), "StudioFailed");
        assert_eq!(Component::Network.condition_type(), "NetworkReady");
        for reason in reasons {
            assert_eq!(reason.to_string().parse::<Reason>(), Ok(reason), "{reason} reads back");
        }
        assert!("Whatever".parse::<Reason>().is_err());
    }

    #[test]
    fn stalled_true_implies_ready_false_with_the_same_reason() {
        for outcome in all_outcomes() {
            let list = conditions(&outcome, &[], Some(1), &at(10), &[]);
            let (ready, stalled) = (get(&list, READY), get(&list, STALLED));
            if stalled.status == "True" {
                assert_eq!(ready.status, "False", "{outcome:?}");
                assert_eq!(ready.reason, stalled.reason, "{outcome:?}");
            }
        }
    }

    #[test]
    fn reconciling_is_true_exactly_when_neither_ready_nor_stalled() {
        for outcome in all_outcomes() {
            let list = conditions(&outcome, &[], Some(1), &at(10), &[]);
            let busy = get(&list, READY).status == "False" && get(&list, STALLED).status == "False";
            assert_eq!(get(&list, RECONCILING).status == "True", busy, "{outcome:?}");
        }
    }

    #[test]
    fn ready_outcome_gives_ready_true_converged() {
        let list = conditions(&Outcome::Ready { message: "ok".into() }, &[], Some(4), &at(10), &[]);
        let ready = get(&list, READY);
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Converged"));
        assert_eq!(ready.observed_generation, Some(4));
        assert!(is_ready(&list, Some(4)));
        assert!(!is_ready(&list, Some(5)), "a Ready of an older generation is not Ready");
    }

    #[test]
    fn last_transition_time_moves_only_when_status_changes() {
        let pending = Outcome::progressing(Reason::Pending(Component::Network), "a");
        let first = conditions(&pending, &[], Some(1), &at(10), &[]);
        // Same status, new reason and message: the transition time stays.
        let still = Outcome::progressing(Reason::Pending(Component::Studio), "b");
        let second = conditions(&still, &[], Some(2), &at(20), &first);
        assert_eq!(get(&second, READY).last_transition_time, at(10));
        assert_eq!(get(&second, READY).reason, "StudioPending");
        // Status flips: the transition time moves, on Ready and Reconciling alike.
        let third = conditions(&Outcome::Ready { message: String::new() }, &[], Some(2), &at(30), &second);
        assert_eq!(get(&third, READY).last_transition_time, at(30));
        assert_eq!(get(&third, RECONCILING).last_transition_time, at(30));
        assert_eq!(get(&third, STALLED).last_transition_time, at(10), "Stalled stayed False");
    }

    #[test]
    fn paused_keeps_last_observation_and_sets_reconciling_false_paused() {
        let before = conditions(&Outcome::Ready { message: "ok".into() }, &[], Some(1), &at(10), &[]);
        let list = paused(Some(2), &at(20), &before);
        assert_eq!(get(&list, READY), get(&before, READY), "Ready reflects the last observation");
        assert_eq!(get(&list, STALLED), get(&before, STALLED));
        let reconciling = get(&list, RECONCILING);
        assert_eq!((reconciling.status.as_str(), reconciling.reason.as_str()), ("False", "Paused"));
    }

    #[test]
    fn components_report_their_own_condition() {
        let components = [
            ComponentState { component: Component::Network, outcome: Outcome::Ready { message: "vpc-1".into() } },
            ComponentState {
                component: Component::Studio,
                outcome: Outcome::progressing(Reason::Pending(Component::Studio), "domain d-1 is Pending"),
            },
        ];
        let outcome = Outcome::progressing(Reason::Pending(Component::Studio), "domain d-1 is Pending");
        let list = conditions(&outcome, &components, Some(1), &at(10), &[]);
        assert_eq!(get(&list, "NetworkReady").status, "True");
        let studio = get(&list, "StudioReady");
        assert_eq!((studio.status.as_str(), studio.reason.as_str()), ("False", "StudioPending"));
        assert_eq!(list.len(), 5);
    }

    #[test]
    fn aws_code_starts_the_message_and_never_the_reason() {
        let message = aws_failure_message(
            "AccessDenied",
            "sts:AssumeRole arn:aws:iam::222222222222:role/x",
            "User is not authorized",
            "allow sagekeeper in the role's trust policy",
        );
        assert!(message.starts_with("AccessDenied: sts:AssumeRole arn:aws:iam::222222222222:role/x: "));
        let list = conditions(&Outcome::stalled(Reason::AccessDenied, message), &[], None, &at(1), &[]);
        assert_eq!(get(&list, READY).reason, "AccessDenied");
        assert_eq!(aws_failure_message("ValidationException.Foo", "r", "", ""), "ValidationException.Foo: r");
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE);
        let list = conditions(&Outcome::stalled(Reason::InvalidConfiguration, long), &[], None, &at(1), &[]);
        assert!(get(&list, READY).message.len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}
