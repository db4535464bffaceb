//! Run: the one runner every kind's plan goes through. A plan is a list of named steps, each
//! with the steps whose outputs it needs; the runner starts every step whose inputs are ready,
//! side by side, bounded per AWS account and service, and records each step's result in one
//! type. A step that is pending or failed blocks only the steps that need it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use sagekeeper_api::conditions::Component;
use sagekeeper_aws::{AwsError, ErrorKind};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// A kind's step id: an enum whose variant names the step (a bounded metric label) and whose
/// fields say where (account, purpose).
pub(crate) trait StepId: Clone + Ord + Debug + Send + Sync {
    /// The variant's name, e.g. `VpcEndpoint`: the `step` label of the step metrics.
    fn step(&self) -> &'static str;
    /// The component whose condition reports the step.
    fn component(&self) -> Component;
}

/// What a step found: its outputs, a wait on AWS, or a classified failure.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Done<O> {
    /// Everything exists and matches; these are its outputs.
    Ready(O),
    /// AWS is still working (a resource creating, IAM propagating); looked at again soon.
    Pending { why: String, retry_after: Option<Duration> },
    /// AWS refused or failed.
    Failed(Failure),
}

impl<O> Done<O> {
    /// A wait without a specific time.
    pub(crate) fn pending(why: impl Into<String>) -> Self {
        Self::Pending { why: why.into(), retry_after: None }
    }

    /// Ready with `output`, or the classified failure of `resource`.
    pub(crate) fn from_aws(result: Result<O, AwsError>, resource: impl Into<String>) -> Self {
        match result {
            Ok(output) => Self::Ready(output),
            Err(err) => Self::Failed(Failure::new(err, resource)),
        }
    }

    /// The same result with other outputs.
    pub(crate) fn map<P>(self, f: impl FnOnce(O) -> P) -> Done<P> {
        match self {
            Self::Ready(o) => Done::Ready(f(o)),
            Self::Pending { why, retry_after } => Done::Pending { why, retry_after },
            Self::Failed(failure) => Done::Failed(failure),
        }
    }
}

/// A failed step: the AWS error, the resource it concerned, and what would fix it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Failure {
    /// The classified error.
    pub(crate) error: AwsError,
    /// The resource, as a person names it (`IAM role x in account staging`).
    pub(crate) resource: String,
}

impl Failure {
    /// The failure of `resource`.
    pub(crate) fn new(error: AwsError, resource: impl Into<String>) -> Self {
        Self { error, resource: resource.into() }
    }

    /// What to do about it, for the condition message.
    pub(crate) fn remedy(&self) -> &'static str {
        match self.error.kind {
            ErrorKind::AccessDenied => {
                "grant sagekeeper's role in that account the permission: attach the policies of deploy/aws/deployer/"
            }
            ErrorKind::Quota => "raise the service quota or free capacity",
            ErrorKind::Conflict => {
                "rename or remove the other resource; sagekeeper never adopts what it did not create"
            }
            ErrorKind::Invalid => "fix the spec or the account's settings",
            _ => "",
        }
    }
}

/// What the runner recorded for a step.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Ran<Id, O> {
    /// The step ran.
    Done(Done<O>),
    /// The step did not run: this step it needs is not ready.
    Blocked(Id),
}

/// The AWS service a step calls, for the per-account bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Service {
    Ec2,
    Iam,
    Kms,
    S3,
    SageMaker,
}

/// Where a step's calls go: an account and a service; steps in one lane share its bound.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Lane {
    pub(crate) account: String,
    pub(crate) service: Service,
}

impl Lane {
    /// The lane of `service` in `account`.
    pub(crate) fn new(account: &str, service: Service) -> Self {
        Self { account: account.to_owned(), service }
    }
}

/// The concurrency bound of every lane, shared by every object so bursts across objects stay
/// under AWS's per-account rate limits.
pub(crate) struct Lanes {
    per_lane: usize,
    lanes: Mutex<HashMap<Lane, Arc<Semaphore>>>,
}

impl Lanes {
    /// At most `per_lane` steps at once in each account and service.
    pub(crate) fn new(per_lane: usize) -> Self {
        Self { per_lane: per_lane.max(1), lanes: Mutex::default() }
    }

    fn semaphore(&self, lane: &Lane) -> Arc<Semaphore> {
        let mut lanes = self.lanes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        lanes.entry(lane.clone()).or_insert_with(|| Arc::new(Semaphore::new(self.per_lane))).clone()
    }
}

/// The outputs of the steps a step needs, by id.
pub(crate) struct Inputs<Id, O>(BTreeMap<Id, O>);

impl<Id: Ord, O> Inputs<Id, O> {
    /// The output of `id`, which the step declared it needs.
    pub(crate) fn get(&self, id: &Id) -> Option<&O> {
        self.0.get(id)
    }

    /// Every input, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Id, &O)> {
        self.0.iter()
    }
}

/// A step's work, given its inputs.
pub(crate) type Ensure<'a, Id, O> = Box<dyn FnOnce(Inputs<Id, O>) -> BoxFuture<'a, Done<O>> + Send + 'a>;

/// One node of a plan: its id, what it needs, where its calls go, and its work.
pub(crate) struct Step<'a, Id, O> {
    pub(crate) id: Id,
    pub(crate) needs: Vec<Id>,
    pub(crate) lane: Lane,
    pub(crate) ensure: Ensure<'a, Id, O>,
}

impl<'a, Id, O> Step<'a, Id, O> {
    /// A step with its work.
    pub(crate) fn new<F>(id: Id, needs: Vec<Id>, lane: Lane, ensure: F) -> Self
    where
        F: FnOnce(Inputs<Id, O>) -> BoxFuture<'a, Done<O>> + Send + 'a,
    {
        Self { id, needs, lane, ensure: Box::new(ensure) }
    }
}

/// Every step's result, by id, in id order.
pub(crate) type Results<Id, O> = BTreeMap<Id, Ran<Id, O>>;

/// Runs `steps`: each as soon as every step it needs is ready, side by side within the lanes'
/// bounds; a step that needs one not ready is recorded as blocked and never runs. A step in
/// `reuse` whose needs were all reused too is ready with that output without running: an
/// object still converging does not read again what an earlier pass of it found ready.
pub(crate) async fn run<'a, Id, O>(
    kind: &'static str,
    steps: Vec<Step<'a, Id, O>>,
    reuse: &BTreeMap<Id, O>,
    lanes: &Lanes,
    metrics: &Metrics,
) -> Results<Id, O>
where
    Id: StepId + 'a,
    O: Clone + Send + 'a,
{
    let mut results: Results<Id, O> = BTreeMap::new();
    let mut reused = std::collections::BTreeSet::new();
    let mut waiting = steps;
    let mut running = FuturesUnordered::new();
    loop {
        // Settle everything that can be decided without running a step, until nothing changes.
        let mut changed = true;
        while changed {
            changed = false;
            let mut i = 0;
            while i < waiting.len() {
                match readiness(&waiting[i].needs, &results) {
                    Readiness::Wait => i += 1,
                    Readiness::Blocked(on) => {
                        let step = waiting.swap_remove(i);
                        results.insert(step.id, Ran::Blocked(on));
                        changed = true;
                    }
                    Readiness::Go => {
                        let step = waiting.swap_remove(i);
                        let kept = reuse.get(&step.id).filter(|_| step.needs.iter().all(|n| reused.contains(n)));
                        if let Some(output) = kept {
                            reused.insert(step.id.clone());
                            results.insert(step.id, Ran::Done(Done::Ready(output.clone())));
                            changed = true;
                            continue;
                        }
                        let inputs = step
                            .needs
                            .iter()
                            .filter_map(|n| match results.get(n) {
                                Some(Ran::Done(Done::Ready(o))) => Some((n.clone(), o.clone())),
                                _ => None,
                            })
                            .collect();
                        let semaphore = lanes.semaphore(&step.lane);
                        let (id, ensure) = (step.id, step.ensure);
                        running.push(async move {
                            // A closed semaphore cannot happen (never closed); run unbounded if it did.
                            let _permit = semaphore.acquire_owned().await.ok();
                            let started = Instant::now();
                            let done = ensure(Inputs(inputs)).await;
                            metrics.step(kind, id.step(), started.elapsed(), failure_category(&done));
                            (id, done)
                        });
                    }
                }
            }
        }
        // A need nothing produces (or a cycle) can never be met: blocked on it.
        if running.is_empty() {
            for step in waiting.drain(..) {
                let on = step.needs.iter().find(|n| !results.contains_key(*n)).cloned().unwrap_or(step.id.clone());
                results.insert(step.id, Ran::Blocked(on));
            }
            return results;
        }
        if let Some((id, done)) = running.next().await {
            results.insert(id, Ran::Done(done));
        }
    }
}

enum Readiness<Id> {
    Go,
    Wait,
    Blocked(Id),
}

fn readiness<Id: Ord + Clone, O>(needs: &[Id], results: &Results<Id, O>) -> Readiness<Id> {
    let mut all = true;
    for need in needs {
        match results.get(need) {
            Some(Ran::Done(Done::Ready(_))) => {}
            Some(_) => return Readiness::Blocked(need.clone()),
            None => all = false,
        }
    }
    if all { Readiness::Go } else { Readiness::Wait }
}

fn failure_category<O>(done: &Done<O>) -> Option<&'static str> {
    match done {
        Done::Failed(f) => Some(f.error.kind.as_str()),
        _ => None,
    }
}

/// The step a blocked step ultimately waits on: follows blocks to the step that ran.
pub(crate) fn root<'r, Id: Ord, O>(results: &'r Results<Id, O>, mut on: &'r Id) -> (&'r Id, Option<&'r Done<O>>) {
    // Blocks point at steps recorded earlier, so this ends; the bound guards a bug.
    for _ in 0..=results.len() {
        match results.get(on) {
            Some(Ran::Blocked(next)) => on = next,
            Some(Ran::Done(done)) => return (on, Some(done)),
            None => return (on, None),
        }
    }
    (on, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Id {
        A,
        B,
        C,
        D,
    }

    impl StepId for Id {
        fn step(&self) -> &'static str {
            "Test"
        }
        fn component(&self) -> Component {
            Component::Network
        }
    }

    /// Which steps ran, with the inputs each got.
    type Log = Arc<Mutex<Vec<(Id, Vec<u32>)>>>;

    fn step(id: Id, needs: Vec<Id>, done: Done<u32>, log: Log) -> Step<'static, Id, u32> {
        Step::new(id, needs, Lane::new("111111111111", Service::Ec2), move |inputs: Inputs<Id, u32>| {
            async move {
                log.lock().unwrap().push((id, inputs.iter().map(|(_, o)| *o).collect()));
                done
            }
            .boxed()
        })
    }

    #[tokio::test]
    async fn a_step_runs_with_its_inputs_and_a_failure_blocks_only_its_dependents() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let denied = AwsError { kind: ErrorKind::AccessDenied, code: "AccessDenied".into(), message: "no".into() };
        let steps = vec![
            step(Id::D, vec![Id::B, Id::C], Done::Ready(4), log.clone()),
            step(Id::C, vec![Id::A], Done::Ready(3), log.clone()),
            step(Id::B, vec![], Done::Failed(Failure::new(denied, "b")), log.clone()),
            step(Id::A, vec![], Done::Ready(1), log.clone()),
        ];
        let lanes = Lanes::new(2);
        let metrics = Metrics::new().unwrap();
        let results = run("Test", steps, &BTreeMap::new(), &lanes, &metrics).await;
        assert_eq!(results[&Id::A], Ran::Done(Done::Ready(1)));
        assert_eq!(results[&Id::C], Ran::Done(Done::Ready(3)));
        assert_eq!(results[&Id::D], Ran::Blocked(Id::B));
        assert!(matches!(root(&results, &Id::B), (Id::B, Some(Done::Failed(_)))));
        let log = log.lock().unwrap();
        assert!(log.contains(&(Id::C, vec![1])), "C got A's output: {log:?}");
        assert!(!log.iter().any(|(id, _)| *id == Id::D), "D never ran: {log:?}");
    }

    #[tokio::test]
    async fn independent_steps_run_side_by_side_within_their_lane_bound() {
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let steps: Vec<Step<'static, Id, u32>> = [Id::A, Id::B, Id::C, Id::D]
            .into_iter()
            .map(|id| {
                let (running, most) = (running.clone(), most.clone());
                Step::new(id, vec![], Lane::new("111111111111", Service::Kms), move |_| {
                    async move {
                        use std::sync::atomic::Ordering::SeqCst;
                        let now = running.fetch_add(1, SeqCst) + 1;
                        most.fetch_max(now, SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        running.fetch_sub(1, SeqCst);
                        Done::Ready(0)
                    }
                    .boxed()
                })
            })
            .collect();
        let lanes = Lanes::new(2);
        let metrics = Metrics::new().unwrap();
        let results = run("Test", steps, &BTreeMap::new(), &lanes, &metrics).await;
        assert_eq!(results.len(), 4);
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2, "two at once in one lane, never more");
    }

    #[tokio::test]
    async fn a_reused_step_does_not_run_and_a_step_after_one_that_ran_runs_again() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = vec![
            step(Id::A, vec![], Done::Ready(10), log.clone()),
            step(Id::B, vec![Id::A], Done::Ready(20), log.clone()),
            step(Id::C, vec![], Done::Ready(30), log.clone()),
            step(Id::D, vec![Id::C], Done::Ready(40), log.clone()),
        ];
        // A and B were ready before; C was not, so D (after C) runs again although it was ready.
        let reuse = BTreeMap::from([(Id::A, 1), (Id::B, 2), (Id::D, 4)]);
        let (lanes, metrics) = (Lanes::new(2), Metrics::new().unwrap());
        let results = run("Test", steps, &reuse, &lanes, &metrics).await;
        assert_eq!(results[&Id::A], Ran::Done(Done::Ready(1)));
        assert_eq!(results[&Id::B], Ran::Done(Done::Ready(2)));
        assert_eq!(results[&Id::D], Ran::Done(Done::Ready(40)));
        let ran: Vec<Id> = log.lock().unwrap().iter().map(|(id, _)| *id).collect();
        assert_eq!(ran, [Id::C, Id::D]);
    }

    #[tokio::test]
    async fn a_need_no_step_produces_blocks_instead_of_hanging() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = vec![step(Id::B, vec![Id::A], Done::Ready(2), log)];
        let lanes = Lanes::new(1);
        let metrics = Metrics::new().unwrap();
        let results = run("Test", steps, &BTreeMap::new(), &lanes, &metrics).await;
        assert_eq!(results[&Id::B], Ran::Blocked(Id::A));
    }
}
