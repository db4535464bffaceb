//! Fold, the part every kind shares: step results become one condition per component, the
//! object's verdict, the failure behind it and when to look again. Pure.

use sagekeeper_api::conditions::{Component, ComponentState, Outcome, Reason};
use sagekeeper_aws::ErrorKind;

use crate::lifecycle::Retry;
use crate::resolve;
use crate::steps::{Done, Failure, Ran, Results, StepId, root};

/// Where a step works, for its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Located {
    /// The object's own (dev) account.
    Dev,
    /// A target account, with the stage it serves.
    Target { account: String, stage: String },
}

/// What the results of a pass amount to.
#[derive(Debug)]
pub(crate) struct Folded {
    /// The verdict; `None` when every step is ready (the kind words its Ready message).
    pub(crate) outcome: Option<Outcome>,
    /// One state per component.
    pub(crate) components: Vec<ComponentState>,
    /// When to look again.
    pub(crate) retry: Retry,
    /// The kind of the first failure, for the error metric.
    pub(crate) failure: Option<ErrorKind>,
}

/// Folds `results` into `components` (in this order). A component is failed by its first
/// failed step, else waits on its first pending or blocked step, else is ready with
/// `ready_message`. The object is stalled only when a step failed for good and no step is still
/// making progress; while any is, it is progressing.
pub(crate) fn components<Id: StepId, O>(
    components: &[Component],
    results: &Results<Id, O>,
    locate: impl Fn(&Id) -> Located,
    ready_message: impl Fn(Component) -> String,
) -> Folded {
    fold(components, results, |id| id.component(), locate, ready_message, |f| f.remedy())
}

/// Folds a teardown's results into the Deletion component: every step counts, and a failure
/// says how to get past it.
pub(crate) fn deletion<Id: StepId, O>(results: &Results<Id, O>) -> Folded {
    let remedy = |f: &Failure| match f.remedy() {
        "" => "sagekeeper retries; fix the cause or set deletionPolicy: Retain to release it",
        remedy => remedy,
    };
    fold(&[Component::Deletion], results, |_| Component::Deletion, |_| Located::Dev, |_| String::new(), remedy)
}

fn fold<Id: StepId, O>(
    components: &[Component],
    results: &Results<Id, O>,
    component_of: impl Fn(&Id) -> Component,
    locate: impl Fn(&Id) -> Located,
    ready_message: impl Fn(Component) -> String,
    remedy: impl Fn(&Failure) -> &'static str,
) -> Folded {
    let mut retry = Retry::Drift;
    let mut failure = None;
    let mut states = Vec::with_capacity(components.len());
    for &component in components {
        let steps = || results.iter().filter(|(id, _)| component_of(id) == component);
        let failed = steps().find_map(|(id, r)| match r {
            Ran::Done(Done::Failed(f)) => Some((id, f)),
            _ => None,
        });
        let outcome = if let Some((id, f)) = failed {
            let resource = format!("{} (step {id:?})", f.resource);
            let (outcome, step_retry) = resolve::failure(component, &f.error, &resource, remedy(f));
            retry = worst(retry, step_retry);
            failure = failure.or(Some(f.error.kind));
            located(outcome, &locate(id))
        } else if let Some((id, why)) = steps().find_map(|(id, r)| waiting(results, id, r).map(|why| (id, why))) {
            located(Outcome::progressing(Reason::Pending(component), why), &locate(id))
        } else {
            Outcome::Ready { message: ready_message(component) }
        };
        states.push(ComponentState { component, outcome });
    }
    for ran in results.values() {
        if let Ran::Done(Done::Pending { retry_after, .. }) = ran {
            retry = worst(retry, retry_after.map_or(Retry::Pending, Retry::After));
        }
    }
    let pending = results.values().any(|r| matches!(r, Ran::Done(Done::Pending { .. })));
    let stalled = states.iter().find(|s| matches!(s.outcome, Outcome::Stalled { .. }));
    let progressing = states.iter().find(|s| matches!(s.outcome, Outcome::Progressing { .. }));
    let outcome = match (stalled, progressing) {
        (Some(stalled), _) if !pending => Some(stalled.outcome.clone()),
        (_, Some(progressing)) => Some(progressing.outcome.clone()),
        // A component failed for good while one of its own other steps still progresses.
        (Some(stalled), None) => Some(Outcome::progressing(
            Reason::Pending(stalled.component),
            format!("still converging; meanwhile {}", stalled.outcome.message()),
        )),
        (None, None) => None,
    };
    Folded { outcome, components: states, retry, failure }
}

/// Why a step that is neither ready nor failed waits: AWS, or the step it needs.
fn waiting<Id: StepId, O>(results: &Results<Id, O>, id: &Id, ran: &Ran<Id, O>) -> Option<String> {
    match ran {
        Ran::Done(Done::Pending { why, .. }) => Some(why.clone()),
        Ran::Blocked(on) => Some(match root(results, on) {
            (root_id, Some(Done::Failed(f))) => {
                format!("waiting for {} (step {root_id:?}), which failed: {}", f.resource, f.error.code)
            }
            (root_id, Some(Done::Pending { why, .. })) => format!("waiting for step {root_id:?}: {why}"),
            (root_id, _) => format!("step {id:?} waits for step {root_id:?}"),
        }),
        Ran::Done(_) => None,
    }
}

/// A message about a target account names the account and its stage.
fn located(outcome: Outcome, at: &Located) -> Outcome {
    let Located::Target { account, stage } = at else { return outcome };
    match outcome {
        Outcome::Progressing { reason, message } => {
            Outcome::progressing(reason, format!("{account} ({stage}): {message}"))
        }
        Outcome::Stalled { reason, message } => {
            Outcome::stalled(reason, format!("{message} (account {account} for stage {stage})"))
        }
        ready => ready,
    }
}

/// The later of two retries: backoff beats pending beats a set time beats drift.
pub(crate) fn worst(a: Retry, b: Retry) -> Retry {
    let rank = |r: Retry| match r {
        Retry::Drift => 0,
        Retry::After(_) => 1,
        Retry::Pending => 2,
        Retry::Backoff => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}
