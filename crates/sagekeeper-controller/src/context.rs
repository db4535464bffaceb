//! What every reconcile shares: the Kubernetes client, the AWS sessions, the stores of all five
//! kinds (for references and "in use" checks), metrics, events, and per-object error backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use sagekeeper_api::{AwsAccount, AwsAccountSet, DataScienceEnvironment, MLOpsProject, ModelDeployment};
use sagekeeper_aws::Sessions;

use crate::metrics::Metrics;

/// How the controller behaves; the binary fills it from flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a converged object is checked for drift (jittered by up to 10%).
    pub drift_interval: Duration,
    /// Every how many drift checks of a converged environment one also reads the settings
    /// that guard neither data nor access ([`sagekeeper_aws::steps::Depth`]); 1 reads
    /// everything every time.
    pub full_check_every: u32,
    /// How old an account-wide read (an account's roles, its networks) a pass may take from another object's
    /// pass: drift in what it shows is seen within the drift interval plus this age. Zero reads
    /// it for every pass.
    pub account_read_age: Duration,
    /// How soon an object waiting on something that changes by itself is looked at again.
    pub pending_interval: Duration,
    /// How often a project re-reads its registry (latest versions) and its running pipeline run.
    pub poll_interval: Duration,
    /// How often the SageMaker endpoints of each account deployments use are listed (one call
    /// per account), waking a deployment whose endpoint changed.
    pub endpoint_interval: Duration,
    /// At most this many plan steps at once per AWS account and service, across all objects.
    pub aws_concurrency: usize,
    /// At most this many reconciles of one kind at once.
    pub max_concurrent_reconciles: u16,
    /// Watch only objects with these labels (sharding; tests use it to isolate controllers).
    pub label_selector: Option<String>,
    /// The controller's name in events.
    pub instance: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            drift_interval: Duration::from_secs(600),
            full_check_every: 6,
            account_read_age: Duration::from_secs(300),
            pending_interval: Duration::from_secs(10),
            poll_interval: Duration::from_secs(60),
            endpoint_interval: Duration::from_secs(30),
            aws_concurrency: 4,
            max_concurrent_reconciles: 16,
            label_selector: None,
            instance: "sagekeeper".into(),
        }
    }
}

/// The stores of the five kinds, kept current by the controllers' watches.
#[derive(Clone)]
pub(crate) struct Stores {
    pub(crate) accounts: Store<AwsAccount>,
    pub(crate) sets: Store<AwsAccountSet>,
    pub(crate) environments: Store<DataScienceEnvironment>,
    pub(crate) projects: Store<MLOpsProject>,
    pub(crate) deployments: Store<ModelDeployment>,
}

/// Shared by every reconcile of every kind.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) sessions: Sessions,
    pub(crate) stores: Stores,
    pub(crate) metrics: Metrics,
    pub(crate) settings: Settings,
    /// kube's event recorder and when it was made: see [`Context::recorder`].
    recorder: Mutex<(Recorder, std::time::Instant)>,
    pub(crate) lanes: crate::steps::Lanes,
    /// What objects read of AWS and share across passes (a registry's newest versions).
    pub(crate) shared: sagekeeper_aws::Shared,
    failures: Mutex<HashMap<String, u32>>,
    full_checks: Mutex<HashMap<String, (std::time::Instant, u64)>>,
    converged: Mutex<HashMap<String, u64>>,
    /// By uid: the inputs of the object's last Ready pass, and how many Security-depth passes
    /// it made since its last Full one.
    depths: Mutex<HashMap<String, (u64, u32)>>,
    status_written: Mutex<HashMap<String, u64>>,
    reusable: Mutex<HashMap<String, Reusable>>,
    deleted: Mutex<HashMap<String, Vec<(sagekeeper_aws::steps::Action, String)>>>,
    synced: tokio::sync::watch::Receiver<bool>,
}

/// A pass's ready step outputs (of the kind's own type) and the fingerprint of its plan.
type Reusable = (u64, Box<dyn std::any::Any + Send>);

/// How long one event recorder is used (its repeats are counted for six minutes).
const RECORDER_AGE: Duration = Duration::from_secs(600);

/// First and longest wait after consecutive retryable failures of one object.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Context {
    pub(crate) fn new(
        client: Client,
        sessions: Sessions,
        stores: Stores,
        metrics: Metrics,
        settings: Settings,
        synced: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let recorder = Mutex::new((new_recorder(&client, &settings.instance), std::time::Instant::now()));
        let lanes = crate::steps::Lanes::new(settings.aws_concurrency);
        // A project re-reads its registry every poll interval and wakes its deployments when
        // the latest versions change, so a deployment takes a read younger than two polls.
        let shared = sagekeeper_aws::Shared::new(settings.poll_interval * 2, settings.account_read_age);
        Self {
            client,
            sessions,
            stores,
            metrics,
            settings,
            recorder,
            lanes,
            shared,
            failures: Mutex::default(),
            full_checks: Mutex::default(),
            converged: Mutex::default(),
            depths: Mutex::default(),
            status_written: Mutex::default(),
            reusable: Mutex::default(),
            deleted: Mutex::default(),
            synced,
        }
    }

    /// The event recorder. kube's keeps every event of the last six minutes to count repeats,
    /// in a table that never shrinks: after converging 1,000 objects it held 6 MB for good
    /// (heaptrack). A recorder older than ten minutes is replaced by a fresh one, so the table
    /// is as big as the recent events; a repeat right after the swap starts a new series.
    pub(crate) fn recorder(&self) -> Recorder {
        let mut held = self.recorder.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.1.elapsed() > RECORDER_AGE {
            *held = (new_recorder(&self.client, &self.settings.instance), std::time::Instant::now());
        }
        held.0.clone()
    }

    /// Waits until every kind's cache holds a full list, so references and "still in use"
    /// checks never read a half-filled cache (as right after a start or a fail-over).
    pub(crate) async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        // An Err means the sender is gone: the controllers are stopping, nothing to wait for.
        let _ = synced.wait_for(|s| *s).await;
    }

    /// How many times in a row the object's last passes failed with a retryable error.
    pub(crate) fn failures(&self, uid: &str) -> u32 {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(uid).copied().unwrap_or(0)
    }

    /// The next wait for an object that failed again: exponential from 1 s, capped at 5 min,
    /// with jitter so many objects failing together do not retry together.
    pub(crate) fn backoff(&self, uid: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = failures.entry(uid.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let exp = BACKOFF_FIRST.saturating_mul(1 << (*n - 1).min(16));
        jitter(exp.min(BACKOFF_MAX), 0.2)
    }

    /// Forgets an object's failures after it made progress.
    pub(crate) fn reset_backoff(&self, uid: &str) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(uid);
    }

    /// True when the object's last full check saw the same inputs (`fingerprint`) less than a
    /// drift interval ago, so a poll may stay light. Kept in memory: a restart checks fully.
    pub(crate) fn recently_checked(&self, uid: &str, fingerprint: u64) -> bool {
        let checks = self.full_checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        checks.get(uid).is_some_and(|(at, seen)| *seen == fingerprint && at.elapsed() < self.settings.drift_interval)
    }

    /// Records a full check of the object with these inputs.
    pub(crate) fn checked(&self, uid: &str, fingerprint: u64) {
        let mut checks = self.full_checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        checks.insert(uid.to_owned(), (std::time::Instant::now(), fingerprint));
    }

    /// Forgets the object's full checks (it went away, or its last pass was not clean).
    pub(crate) fn forget_check(&self, uid: &str) {
        self.full_checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(uid);
    }

    /// Whether the object's last Ready pass (in this process) had these inputs; `None` when this
    /// process has not seen it Ready yet. Writes to an object that already converged with the
    /// inputs it has now repair drift; writes after a change of inputs apply that change.
    pub(crate) fn converged_with(&self, uid: &str, inputs: u64) -> Option<bool> {
        let converged = self.converged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        converged.get(uid).map(|seen| *seen == inputs)
    }

    /// Records that the object converged with these inputs.
    pub(crate) fn record_converged(&self, uid: &str, inputs: u64) {
        let mut converged = self.converged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        converged.insert(uid.to_owned(), inputs);
    }

    /// How deep the object's next pass looks: `Full` unless its last pass was Ready with these
    /// inputs and fewer than `full_check_every - 1` Security passes followed its last Full one
    /// (a new spec, a pass that was not Ready, or a restart reads everything).
    pub(crate) fn depth(&self, uid: &str, inputs: u64) -> sagekeeper_aws::steps::Depth {
        let depths = self.depths.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match depths.get(uid) {
            Some((seen, light)) if *seen == inputs && light + 1 < self.settings.full_check_every => {
                sagekeeper_aws::steps::Depth::Security
            }
            _ => sagekeeper_aws::steps::Depth::Full,
        }
    }

    /// Records the depth of a Ready pass with these inputs, or (`None`) a pass that was not
    /// Ready, so the next one looks at everything.
    pub(crate) fn record_depth(&self, uid: &str, inputs: u64, ready: Option<sagekeeper_aws::steps::Depth>) {
        let mut depths = self.depths.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match ready {
            Some(sagekeeper_aws::steps::Depth::Full) => depths.insert(uid.to_owned(), (inputs, 0)),
            Some(sagekeeper_aws::steps::Depth::Security) => {
                let light = depths.get(uid).map_or(0, |(_, light)| light + 1);
                depths.insert(uid.to_owned(), (inputs, light))
            }
            None => depths.remove(uid),
        };
    }

    /// Records the resource version a status write of the object produced.
    pub(crate) fn wrote_status(&self, uid: &str, resource_version: Option<&str>) {
        if let Some(version) = resource_version.and_then(|v| v.parse().ok()) {
            self.status_written
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(uid.to_owned(), version);
        }
    }

    /// Whether the object in hand (from the watch cache) is older than this process's last
    /// status write to it, so its status is not the one last written. The cache lags the API
    /// server under load; a pass that compared against it would write the same status again
    /// with new transition times. (Resource versions are etcd revisions; one that does not
    /// parse as a number is never called stale.)
    pub(crate) fn status_is_stale(&self, uid: &str, resource_version: Option<&str>) -> bool {
        let Some(seen) = resource_version.and_then(|v| v.parse::<u64>().ok()) else { return false };
        let written = self.status_written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        written.get(uid).is_some_and(|last| *last > seen)
    }

    /// Forgets what the object converged with (it went away).
    pub(crate) fn forget_converged(&self, uid: &str) {
        self.converged.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(uid);
        self.depths.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(uid);
        self.status_written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(uid);
        self.keep_reusable::<()>(uid, None);
        self.deleted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(uid);
    }

    /// The step outputs an object's last pass found ready, if that pass planned the same
    /// (`fingerprint`): a pass of an object still converging reuses them instead of reading
    /// again. Kept in memory only; a restart reads everything.
    pub(crate) fn reusable<T: Clone + 'static>(&self, uid: &str, fingerprint: u64) -> Option<T> {
        let reusable = self.reusable.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        reusable
            .get(uid)
            .filter(|(seen, _)| *seen == fingerprint)
            .and_then(|(_, outputs)| outputs.downcast_ref::<T>().cloned())
    }

    /// Keeps what a pass found ready for the object's next pass, or (`None`) forgets it, so
    /// the next pass reads everything (a drift check).
    pub(crate) fn keep_reusable<T: Send + 'static>(&self, uid: &str, kept: Option<(u64, T)>) {
        let mut reusable = self.reusable.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match kept {
            Some((fingerprint, outputs)) => reusable.insert(uid.to_owned(), (fingerprint, Box::new(outputs))),
            None => reusable.remove(uid),
        };
    }

    /// Adds what a teardown pass of the object wrote to what its earlier passes wrote, and
    /// returns the whole list when `done`. (kube's event recorder keeps the first note of a
    /// reason for six minutes and only counts the repeats, so a teardown's Deleted event is
    /// published once, at the end, listing everything.)
    pub(crate) fn teardown_writes(
        &self,
        uid: &str,
        writes: Vec<(sagekeeper_aws::steps::Action, String)>,
        done: bool,
    ) -> Vec<(sagekeeper_aws::steps::Action, String)> {
        let mut deleted = self.deleted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let all = deleted.entry(uid.to_owned()).or_default();
        all.extend(writes);
        if done { deleted.remove(uid).unwrap_or_default() } else { Vec::new() }
    }

    /// The runner of every kind's steps.
    pub(crate) fn runner(&self) -> crate::steps::Runner<'_> {
        crate::steps::Runner { lanes: &self.lanes, metrics: &self.metrics, retry: self.settings.pending_interval }
    }

    /// The drift-check interval with jitter, so converged objects spread out.
    pub(crate) fn drift_interval(&self) -> Duration {
        jitter(self.settings.drift_interval, 0.1)
    }
}

/// `base` shortened by a random share of up to `spread`.
fn jitter(base: Duration, spread: f64) -> Duration {
    base.mul_f64(1.0 - spread * rand::random::<f64>())
}

fn new_recorder(client: &Client, instance: &str) -> Recorder {
    Recorder::new(client.clone(), Reporter { controller: "sagekeeper".into(), instance: Some(instance.to_owned()) })
}
