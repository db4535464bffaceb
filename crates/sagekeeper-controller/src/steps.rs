//! Run: the one runner every kind's plan goes through. A plan is a list of named steps, each
//! with the steps whose outputs it needs; the runner starts every step whose inputs are ready,
//! side by side, bounded per AWS account and service, and records each step's result in one
//! type. A step that is pending or failed blocks only the steps that need it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

    /// A step result of `sagekeeper-aws` as the runner's.
    pub(crate) fn from_step(result: sagekeeper_aws::steps::StepResult<O>, resource: impl Into<String>) -> Self {
        match result {
            Ok(sagekeeper_aws::steps::Step::Ready(o)) => Self::Ready(o),
            Ok(sagekeeper_aws::steps::Step::Pending(why)) => Self::pending(why),
            Err(e) => Self::Failed(Failure::new(e, resource)),
        }
    }

    /// A step whose plan declared an input the runner did not hand it: a bug, reported as such.
    pub(crate) fn missing(id: &impl Debug) -> Self {
        let error = AwsError {
            kind: ErrorKind::Invalid,
            code: "InternalError".into(),
            message: format!("step {id:?} lacks an input its plan declared; please report this"),
        };
        Self::Failed(Failure::new(error, format!("{id:?}")))
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
    AutoScaling,
    CloudWatch,
    Ec2,
    Iam,
    Kms,
    Logs,
    Organizations,
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

impl<Id, O> From<BTreeMap<Id, O>> for Inputs<Id, O> {
    fn from(outputs: BTreeMap<Id, O>) -> Self {
        Self(outputs)
    }
}

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

/// A step's work, given its inputs; it may run again in the same pass while it is pending.
pub(crate) type Ensure<'a, Id, O> = Arc<dyn Fn(Inputs<Id, O>) -> BoxFuture<'a, Done<O>> + Send + Sync + 'a>;

/// One node of a plan: its id, what it needs, where its calls go, and its work.
pub(crate) struct Step<'a, Id, O> {
    pub(crate) id: Id,
    pub(crate) needs: Vec<Id>,
    /// Steps that run first, whatever comes of them: the outputs of those that are ready are
    /// handed on too, and one that failed does not block this step.
    pub(crate) after: Vec<Id>,
    pub(crate) lane: Lane,
    pub(crate) ensure: Ensure<'a, Id, O>,
}

impl<'a, Id, O> Step<'a, Id, O> {
    /// A step with its work.
    pub(crate) fn new<F>(id: Id, needs: Vec<Id>, lane: Lane, ensure: F) -> Self
    where
        F: Fn(Inputs<Id, O>) -> BoxFuture<'a, Done<O>> + Send + Sync + 'a,
    {
        Self { id, needs, after: Vec::new(), lane, ensure: Arc::new(ensure) }
    }

    /// The same step, run only once `after` all have a result (see [`Step::after`]).
    pub(crate) fn after(self, after: Vec<Id>) -> Self {
        Self { after, ..self }
    }
}

/// Every step's result, by id, in id order.
pub(crate) type Results<Id, O> = BTreeMap<Id, Ran<Id, O>>;

/// What runs steps: the lanes' bounds, the step metrics, and how soon a pending step is tried
/// again within a pass.
pub(crate) struct Runner<'r> {
    pub(crate) lanes: &'r Lanes,
    pub(crate) metrics: &'r Metrics,
    /// A pending step runs again after this long (or its own `retry_after`) while other steps
    /// of the pass are still working, so a short wait (IAM propagating) does not cost a pass.
    pub(crate) retry: Duration,
}

/// A step that ran: its work, its inputs and its lane, to run it again.
type Started<'a, Id, O> = (Ensure<'a, Id, O>, BTreeMap<Id, O>, Lane);

/// A step in flight: its id, its result (`None` when a retry was called off), and whether it
/// was a retry.
type Flight<'f, Id, O> = BoxFuture<'f, (Id, Option<Done<O>>, bool)>;

impl Runner<'_> {
    /// Runs `steps` of `kind`: each as soon as every step it needs is ready, side by side
    /// within the lanes' bounds; a step that needs one not ready is recorded as blocked and
    /// never runs. A step in `reuse` whose needs all ended as `reuse` holds them (reused, or run
    /// again with the same outputs) is ready with that output without running: an object still
    /// converging does not read again what an earlier pass found ready, and a step run again
    /// for what it writes (a policy naming something new) takes along only the steps its
    /// outputs changed. A pending step is tried again while other steps are still working.
    pub(crate) async fn run<'a, Id, O>(
        &self,
        kind: &'static str,
        steps: Vec<Step<'a, Id, O>>,
        reuse: &BTreeMap<Id, O>,
    ) -> Results<Id, O>
    where
        Id: StepId + 'a,
        O: Clone + PartialEq + Send + Sync + 'a,
    {
        self.run_again(kind, steps, reuse, &BTreeSet::new()).await
    }

    /// [`Runner::run`], where the steps of `again` run whatever `reuse` holds for them (what
    /// they write changed); `reuse` still tells whether their outputs did.
    pub(crate) async fn run_again<'a, Id, O>(
        &self,
        kind: &'static str,
        steps: Vec<Step<'a, Id, O>>,
        reuse: &BTreeMap<Id, O>,
        again: &BTreeSet<Id>,
    ) -> Results<Id, O>
    where
        Id: StepId + 'a,
        O: Clone + PartialEq + Send + Sync + 'a,
    {
        let mut results: Results<Id, O> = BTreeMap::new();
        let mut retrying: BTreeSet<Id> = BTreeSet::new();
        let mut started: BTreeMap<Id, Started<'a, Id, O>> = BTreeMap::new();
        let mut waiting = steps;
        let mut running: FuturesUnordered<Flight<'_, Id, O>> = FuturesUnordered::new();
        let mut first_runs = 0usize;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        loop {
            // Settle everything that can be decided without running a step, until nothing changes.
            let mut changed = true;
            while changed {
                changed = false;
                let mut i = 0;
                while i < waiting.len() {
                    match readiness(&waiting[i].needs, &waiting[i].after, &results, &retrying) {
                        Readiness::Wait => i += 1,
                        Readiness::Blocked(on) => {
                            let step = waiting.swap_remove(i);
                            results.insert(step.id, Ran::Blocked(on));
                            changed = true;
                        }
                        Readiness::Go => {
                            let step = waiting.swap_remove(i);
                            let same = |n: &Id| matches!(results.get(n), Some(Ran::Done(Done::Ready(o))) if reuse.get(n) == Some(o));
                            let kept = (reuse.get(&step.id))
                                .filter(|_| !again.contains(&step.id))
                                .filter(|_| step.needs.iter().chain(&step.after).all(same));
                            if let Some(output) = kept {
                                results.insert(step.id, Ran::Done(Done::Ready(output.clone())));
                                changed = true;
                                continue;
                            }
                            let inputs: BTreeMap<Id, O> = step
                                .needs
                                .iter()
                                .chain(&step.after)
                                .filter_map(|n| match results.get(n) {
                                    Some(Ran::Done(Done::Ready(o))) => Some((n.clone(), o.clone())),
                                    _ => None,
                                })
                                .collect();
                            running.push(self.flight(
                                kind,
                                &step.id,
                                &step.ensure,
                                &inputs,
                                &step.lane,
                                None,
                                &stopped,
                            ));
                            started.insert(step.id, (step.ensure, inputs, step.lane));
                            first_runs += 1;
                        }
                    }
                }
            }
            // Nothing else works: retries still waiting are called off (they stay pending).
            if first_runs == 0 && !retrying.is_empty() {
                stop.send_replace(true);
            }
            let Some((id, done, was_retry)) = running.next().await else { break };
            if !was_retry {
                first_runs -= 1;
            }
            let Some(done) = done else {
                retrying.remove(&id);
                continue;
            };
            let again = match &done {
                Done::Pending { retry_after, .. } if first_runs > 0 && !*stopped.borrow() => {
                    Some(retry_after.unwrap_or(self.retry))
                }
                _ => None,
            };
            match (again, started.get(&id)) {
                (Some(delay), Some((ensure, inputs, lane))) => {
                    running.push(self.flight(kind, &id, ensure, inputs, lane, Some(delay), &stopped));
                    retrying.insert(id.clone());
                }
                _ => {
                    retrying.remove(&id);
                }
            }
            results.insert(id, Ran::Done(done));
        }
        // A need nothing produces (or a cycle) can never be met: blocked on it.
        for step in waiting.drain(..) {
            let on = step
                .needs
                .iter()
                .chain(&step.after)
                .find(|n| !results.contains_key(*n))
                .cloned()
                .unwrap_or(step.id.clone());
            results.insert(step.id, Ran::Blocked(on));
        }
        results
    }

    /// One run of a step, after `delay` if it is a retry (called off when `stopped` turns true
    /// first), within its lane's bound, timed.
    #[allow(clippy::too_many_arguments)]
    fn flight<'f, 'a: 'f, Id, O>(
        &'f self,
        kind: &'static str,
        id: &Id,
        ensure: &Ensure<'a, Id, O>,
        inputs: &BTreeMap<Id, O>,
        lane: &Lane,
        delay: Option<Duration>,
        stopped: &tokio::sync::watch::Receiver<bool>,
    ) -> Flight<'f, Id, O>
    where
        Id: StepId + 'a,
        O: Clone + Send + Sync + 'a,
    {
        let (id, ensure, inputs) = (id.clone(), ensure.clone(), inputs.clone());
        let semaphore = self.lanes.semaphore(lane);
        let mut stopped = stopped.clone();
        let metrics = self.metrics;
        Box::pin(async move {
            if let Some(delay) = delay {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stopped.wait_for(|s| *s) => return (id, None, true),
                }
            }
            // A closed semaphore cannot happen (never closed); run unbounded if it did.
            let _permit = semaphore.acquire_owned().await.ok();
            let started = Instant::now();
            let done = ensure(Inputs(inputs)).await;
            metrics.step(kind, id.step(), started.elapsed(), failure_category(&done));
            let result = match &done {
                Done::Ready(_) => "ready",
                Done::Pending { .. } => "pending",
                Done::Failed(_) => "failed",
            };
            tracing::debug!(kind, step = ?id, took = ?started.elapsed(), retry = delay.is_some(), result, "step ran");
            (id, Some(done), delay.is_some())
        })
    }
}

enum Readiness<Id> {
    Go,
    Wait,
    Blocked(Id),
}

fn readiness<Id: Ord + Clone, O>(
    needs: &[Id],
    after: &[Id],
    results: &Results<Id, O>,
    retrying: &BTreeSet<Id>,
) -> Readiness<Id> {
    let mut all = after.iter().all(|a| results.contains_key(a) && !retrying.contains(a));
    for need in needs {
        if retrying.contains(need) {
            all = false;
            continue;
        }
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
            let (log, done) = (log.clone(), done.clone());
            async move {
                log.lock().unwrap().push((id, inputs.iter().map(|(_, o)| *o).collect()));
                done
            }
            .boxed()
        })
    }

    #[tokio::test]
    async fn a_step_after_others_waits_for_them_gets_what_is_ready_and_runs_even_when_one_failed() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let denied = AwsError { kind: ErrorKind::AccessDenied, code: "AccessDenied".into(), message: "no".into() };
        let steps = vec![
            step(Id::C, vec![Id::A], Done::Ready(3), log.clone()).after(vec![Id::B, Id::D]),
            step(Id::A, vec![], Done::Ready(1), log.clone()),
            step(Id::B, vec![], Done::Failed(Failure::new(denied, "b")), log.clone()),
            step(Id::D, vec![], Done::Ready(4), log.clone()),
        ];
        let lanes = Lanes::new(2);
        let metrics = Metrics::new().unwrap();
        let results = Runner { lanes: &lanes, metrics: &metrics, retry: Duration::from_millis(20) }
            .run("Test", steps, &BTreeMap::new())
            .await;
        assert_eq!(results[&Id::C], Ran::Done(Done::Ready(3)));
        let log = log.lock().unwrap();
        // C ran last, with A (its need) and D (ready before it); B failed and is not an input.
        assert_eq!(log.last(), Some(&(Id::C, vec![1, 4])));
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
        let results = Runner { lanes: &lanes, metrics: &metrics, retry: Duration::from_millis(20) }
            .run("Test", steps, &BTreeMap::new())
            .await;
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
                    let (running, most) = (running.clone(), most.clone());
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
        let results = Runner { lanes: &lanes, metrics: &metrics, retry: Duration::from_millis(20) }
            .run("Test", steps, &BTreeMap::new())
            .await;
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
        let results = Runner { lanes: &lanes, metrics: &metrics, retry: Duration::from_millis(20) }
            .run("Test", steps, &reuse)
            .await;
        assert_eq!(results[&Id::A], Ran::Done(Done::Ready(1)));
        assert_eq!(results[&Id::B], Ran::Done(Done::Ready(2)));
        assert_eq!(results[&Id::D], Ran::Done(Done::Ready(40)));
        let ran: Vec<Id> = log.lock().unwrap().iter().map(|(id, _)| *id).collect();
        assert_eq!(ran, [Id::C, Id::D]);
    }

    #[tokio::test]
    async fn a_step_run_again_with_the_same_outputs_keeps_what_needs_it_reused() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = vec![
            step(Id::A, vec![], Done::Ready(1), log.clone()),
            step(Id::B, vec![Id::A], Done::Ready(20), log.clone()),
            step(Id::C, vec![], Done::Ready(31), log.clone()),
            step(Id::D, vec![Id::C], Done::Ready(40), log.clone()),
        ];
        // Everything was ready before; A and C must run again (what they write changed). A
        // ends as it was, so B is reused; C does not, so D runs again.
        let reuse = BTreeMap::from([(Id::A, 1), (Id::B, 2), (Id::C, 3), (Id::D, 4)]);
        let (lanes, metrics) = (Lanes::new(2), Metrics::new().unwrap());
        let results = Runner { lanes: &lanes, metrics: &metrics, retry: Duration::from_millis(20) }
            .run_again("Test", steps, &reuse, &BTreeSet::from([Id::A, Id::C]))
            .await;
        assert_eq!(results[&Id::B], Ran::Done(Done::Ready(2)));
        assert_eq!(results[&Id::D], Ran::Done(Done::Ready(40)));
        let ran: Vec<Id> = log.lock().unwrap().iter().map(|(id, _)| *id).collect();
        assert_eq!(ran.len(), 3, "{ran:?}");
        assert!(ran.contains(&Id::A) && ran.contains(&Id::C) && ran.contains(&Id::D), "{ran:?}");
    }

    #[tokio::test]
    async fn a_pending_step_runs_again_while_others_work_and_its_dependents_follow() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let tries = Arc::new(AtomicUsize::new(0));
        let counted = tries.clone();
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = vec![
            // Pending on its first try (as a key policy while IAM propagates), ready on the next.
            Step::new(Id::A, vec![], Lane::new("111111111111", Service::Kms), move |_| {
                let counted = counted.clone();
                async move { if counted.fetch_add(1, SeqCst) == 0 { Done::pending("propagating") } else { Done::Ready(1) } }
                    .boxed()
            }),
            Step::new(Id::B, vec![], Lane::new("111111111111", Service::S3), |_| {
                async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Done::Ready(2)
                }
                .boxed()
            }),
            step(Id::C, vec![Id::A], Done::Ready(3), log.clone()),
        ];
        let (lanes, metrics) = (Lanes::new(2), Metrics::new().unwrap());
        let results = Runner { lanes: &lanes, metrics: &metrics, retry: Duration::from_millis(20) }
            .run("Test", steps, &BTreeMap::new())
            .await;
        assert_eq!(results[&Id::A], Ran::Done(Done::Ready(1)), "A was tried again within the pass");
        assert_eq!(results[&Id::C], Ran::Done(Done::Ready(3)), "C ran after A's retry");
        assert_eq!(tries.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn a_pending_step_alone_ends_the_pass_without_waiting() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = vec![
            step(Id::A, vec![], Done::pending("domain creating"), log.clone()),
            step(Id::B, vec![Id::A], Done::Ready(2), log),
        ];
        let (lanes, metrics) = (Lanes::new(2), Metrics::new().unwrap());
        let started = Instant::now();
        let results = Runner { lanes: &lanes, metrics: &metrics, retry: Duration::from_secs(30) }
            .run("Test", steps, &BTreeMap::new())
            .await;
        assert!(started.elapsed() < Duration::from_secs(5), "the pass waited for a retry nothing needed");
        assert!(matches!(results[&Id::A], Ran::Done(Done::Pending { .. })));
        assert_eq!(results[&Id::B], Ran::Blocked(Id::A));
    }

    #[tokio::test]
    async fn a_need_no_step_produces_blocks_instead_of_hanging() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = vec![step(Id::B, vec![Id::A], Done::Ready(2), log)];
        let lanes = Lanes::new(1);
        let metrics = Metrics::new().unwrap();
        let results = Runner { lanes: &lanes, metrics: &metrics, retry: Duration::from_millis(20) }
            .run("Test", steps, &BTreeMap::new())
            .await;
        assert_eq!(results[&Id::B], Ran::Blocked(Id::A));
    }
}
