//! Wiring: waits for leadership, then runs one kube-runtime `Controller` per kind with the
//! watch relations between kinds, until shutdown or loss of leadership. Also the health state
//! the binary serves on `/healthz` and `/readyz`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use futures::{StreamExt, TryStreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client};
use sagekeeper_api::{AwsAccount, AwsAccountSet, DataScienceEnvironment, MLOpsProject, ModelDeployment};
use sagekeeper_aws::Sessions;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::context::{Context, Settings, Stores};
use crate::leader::{LeaderElector, LeaseSettings};
use crate::lifecycle::{self, Kind};
use crate::metrics::Metrics;
use crate::{endpoint_watch, relations};

/// Why a reconcile or the controller failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an object from the Kubernetes API failed.
    #[error("reading {0}: {1}")]
    Read(String, #[source] kube::Error),
    /// Writing an object's status failed.
    #[error("writing the status of {0}: {1}")]
    WriteStatus(String, #[source] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("updating the finalizer of {0}: {1}")]
    Finalizer(String, #[source] kube::Error),
    /// Writing an object the controller keeps (an account set's AwsAccounts) failed.
    #[error("writing {0}: {1}")]
    Write(String, #[source] kube::Error),
    /// Another replica took the lease, or it could not be renewed.
    #[error("lost leadership of lease {0}")]
    LostLeadership(String),
}

impl Error {
    /// A fixed label for the error metric.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Read(..) => "kube_read",
            Self::WriteStatus(..) => "kube_status",
            Self::Finalizer(..) => "kube_finalizer",
            Self::Write(..) => "kube_write",
            Self::LostLeadership(..) => "leadership",
        }
    }
}

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Default)]
pub struct Health {
    leader: AtomicBool,
    synced: AtomicBool,
    standby: AtomicBool,
    /// What keeps this replica from ever becoming ready until someone acts, if anything.
    problem: std::sync::Mutex<Option<String>>,
}

impl Health {
    /// Ready: a leader whose watches have all synced, or a standby waiting for the lease (not
    /// one that can never get it).
    pub fn ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
            || (self.standby.load(Ordering::Relaxed)
                && !self.leader.load(Ordering::Relaxed)
                && self.problem().is_none())
    }

    /// What keeps this replica from becoming ready until someone acts, for `/readyz`.
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_problem(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
    }

    /// True while this replica holds the lease (or runs without leader election).
    pub fn leading(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
}

/// Runs the controller until `shutdown` is cancelled (Ok) or leadership is lost (Err). With
/// `lease` set, it first waits to become leader and does nothing else meanwhile: no watches, no
/// reconciles, no writes.
pub async fn run(
    client: Client,
    sessions: Sessions,
    metrics: Metrics,
    settings: Settings,
    lease: Option<LeaseSettings>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let namespace = lease.as_ref().map(|l| l.namespace.clone());
    let mut elector = lease.map(|l| LeaderElector::new(client.clone(), l));
    if let (Some(elector), Some(namespace)) = (elector.as_mut(), namespace) {
        health.standby.store(true, Ordering::Relaxed);
        tokio::select! {
            () = async {
                lease_namespace(&client, &namespace, &health).await;
                elector.acquire().await;
            } => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
    health.leader.store(true, Ordering::Relaxed);
    metrics.set_leader(true);

    let stop = shutdown.child_token();
    let controllers = controllers(client, sessions, metrics.clone(), settings, health.clone(), stop.clone());
    let result = match elector.as_mut() {
        Some(elector) => {
            tokio::select! {
                () = controllers => Ok(()),
                () = elector.hold() => {
                    stop.cancel();
                    Err(Error::LostLeadership(elector.lease_name().to_owned()))
                }
            }
        }
        None => {
            controllers.await;
            Ok(())
        }
    };
    health.leader.store(false, Ordering::Relaxed);
    metrics.set_leader(false);
    if let (Ok(()), Some(elector)) = (&result, elector.as_mut()) {
        elector.release().await;
    }
    result
}

/// Waits until the lease's namespace exists. A missing one is said once, in one line with the
/// two ways out, and `/readyz` reports it until it appears (a cluster without the chart's
/// namespace, or a local run that forgot `--lease-namespace`).
async fn lease_namespace(client: &Client, namespace: &str, health: &Health) {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    loop {
        match namespaces.get_opt(namespace).await {
            Ok(Some(_)) => break,
            Ok(None) => {
                if health.problem().is_none() {
                    let problem = format!(
                        "the leader lease's namespace {namespace} does not exist: create it (kubectl create namespace \
                         {namespace}), or for a local run pass --lease-namespace=<an existing namespace> or \
                         --leader-elect=false"
                    );
                    tracing::error!("{problem}");
                    health.set_problem(Some(problem));
                }
            }
            // Not allowed to read namespaces, or the API server is away: the lease itself says more.
            Err(_) => break,
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    if health.problem().is_some() {
        tracing::info!(namespace, "the leader lease's namespace exists now");
        health.set_problem(None);
    }
}

/// The five controllers with their watch relations, run until `stop` is cancelled (in-flight
/// reconciles finish first).
async fn controllers(
    client: Client,
    sessions: Sessions,
    metrics: Metrics,
    settings: Settings,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    let config = match &settings.label_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
    let synced = Arc::new(Synced { kinds: Mutex::default(), health: health.clone(), done: synced_tx });
    let queue = kube::runtime::controller::Config::default().concurrency(settings.max_concurrent_reconciles);
    let (accounts, account_store) = controller::<AwsAccount>(&client, &config, &queue, &synced);
    let (sets, set_store) = controller::<AwsAccountSet>(&client, &config, &queue, &synced);
    let (environments, environment_store) = controller::<DataScienceEnvironment>(&client, &config, &queue, &synced);
    let (projects, project_store) = controller::<MLOpsProject>(&client, &config, &queue, &synced);
    let (deployments, deployment_store) = controller::<ModelDeployment>(&client, &config, &queue, &synced);
    let stores = Stores {
        accounts: account_store,
        sets: set_store,
        environments: environment_store,
        projects: project_store,
        deployments: deployment_store,
    };
    let w = relations::Watch { client: client.clone(), config: config.clone(), stores: stores.clone() };
    let accounts = relations::accounts(accounts, w.clone());
    let sets = relations::sets(sets, w.clone());
    let environments = relations::environments(environments, w.clone());
    let projects = relations::projects(projects, w.clone());

    let ctx = Arc::new(Context::new(client, sessions, stores, metrics, settings, synced_rx));
    let deployments = relations::deployments(deployments, w).reconcile_on(endpoint_watch::watch(ctx.clone()));
    join_all([
        drive(accounts.graceful_shutdown_on(stop.clone().cancelled_owned()), ctx.clone()),
        drive(sets.graceful_shutdown_on(stop.clone().cancelled_owned()), ctx.clone()),
        drive(environments.graceful_shutdown_on(stop.clone().cancelled_owned()), ctx.clone()),
        drive(projects.graceful_shutdown_on(stop.clone().cancelled_owned()), ctx.clone()),
        drive(deployments.graceful_shutdown_on(stop.cancelled_owned()), ctx),
    ])
    .await;
}

/// How many kinds sagekeeper reconciles.
const KINDS: usize = 5;

/// Counts the kinds whose watch has listed everything once. When all of them have, reconciles may
/// start (a half-filled cache would make "still in use" checks and references lie) and
/// `/readyz` turns ready. Waiting on the stores' own readiness from here would lose wake-ups:
/// a store remembers only its latest waiter, and the controller already waits on it.
struct Synced {
    kinds: Mutex<HashSet<String>>,
    health: Arc<Health>,
    done: tokio::sync::watch::Sender<bool>,
}

impl Synced {
    fn mark(&self, kind: &str) {
        let mut kinds = self.kinds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if kinds.insert(kind.to_owned()) && kinds.len() == KINDS {
            self.health.synced.store(true, Ordering::Relaxed);
            self.done.send_replace(true);
            info!("watches synced");
        }
    }
}

impl Drop for Synced {
    fn drop(&mut self) {
        self.health.synced.store(false, Ordering::Relaxed);
    }
}

/// A controller of kind `K` whose own watch reports when its first full list arrived.
fn controller<K: Kind>(
    client: &Client,
    config: &watcher::Config,
    queue: &kube::runtime::controller::Config,
    synced: &Arc<Synced>,
) -> (Controller<K>, Store<K>) {
    let (reader, writer) = reflector::store();
    let synced = synced.clone();
    let kind = K::kind(&()).into_owned();
    let stream = watcher::watcher(Api::<K>::all(client.clone()), config.clone())
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) {
                synced.mark(&kind);
            }
        })
        .applied_objects();
    (Controller::for_stream(stream, reader.clone()).with_config(queue.clone()), reader)
}

/// What the store keeps of an object: everything reconcile reads. `managedFields` and kubectl's
/// copy of the whole applied object (`last-applied-configuration`) are most of an object's bytes
/// in memory, and nothing reads them.
fn slim<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Runs one controller to completion, logging what its queue reports.
fn drive<K: Kind>(controller: Controller<K>, ctx: Arc<Context>) -> futures::future::BoxFuture<'static, ()> {
    let kind = K::kind(&()).into_owned();
    let reconcile = move |obj: Arc<K>, ctx: Arc<Context>| {
        crate::metrics::cpu_timed(ctx.metrics.reconcile_cpu(&kind), lifecycle::reconcile::<K>(obj, ctx))
    };
    Box::pin(controller.run(reconcile, lifecycle::error_policy::<K>, ctx).for_each(|result| async move {
        // Failed reconciles are logged by the error policy; report only queue trouble.
        match result {
            Ok(_) | Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
            Err(e) => warn!(error = %e, "controller queue error"),
        }
    }))
}
