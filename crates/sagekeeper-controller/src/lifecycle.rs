//! The reconcile lifecycle every kind shares: the finalizer, the pause annotation, deletion
//! (cleanup until done, then release), status written once per pass with server-side apply on
//! `/status`, events on Ready/Stalled transitions, and when to look again.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource, ResourceExt};
use sagekeeper_api::conditions::{self, ComponentState, Outcome, READY, STALLED};
use sagekeeper_api::{FIELD_MANAGER, FINALIZER, is_paused};
use sagekeeper_aws::ErrorKind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::context::Context;
use crate::run::Error;

/// A sagekeeper kind as the lifecycle sees it: how to reach its API, read and fill its status,
/// and the two things only the kind knows: how to converge it and how to clean up after it.
pub(crate) trait Kind:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize + Send + Sync + 'static
{
    /// The kind's status type (without conditions and observedGeneration, which the lifecycle sets).
    type Status: Clone + Debug + Default + PartialEq + Serialize + Send + Sync;

    /// The API for objects of this kind in `namespace` (or cluster-wide).
    fn api(client: Client, namespace: Option<&str>) -> Api<Self>;

    /// The status as last written.
    fn status(&self) -> Option<&Self::Status>;

    /// The conditions of a status.
    fn conditions(status: &Self::Status) -> &[Condition];

    /// The generation a status describes.
    fn observed_generation(status: &Self::Status) -> Option<i64>;

    /// Fills the lifecycle's part of a status.
    fn finish(status: &mut Self::Status, generation: Option<i64>, conditions: Vec<Condition>);

    /// True when deletion must leave AWS untouched (`deletionPolicy: Retain`).
    fn retain_on_delete(&self) -> bool;

    /// Converges the object: resolve, plan, ensure; the outcome becomes status.
    fn apply(&self, ctx: &Context) -> impl Future<Output = Result<Report<Self::Status>, Error>> + Send;

    /// Removes what the object created; `Done` releases the finalizer.
    fn cleanup(&self, ctx: &Context) -> impl Future<Output = Result<Cleanup<Self::Status>, Error>> + Send;
}

/// The status plumbing of [`Kind`], the same for every kind: `status.conditions` and
/// `status.observedGeneration`.
macro_rules! status_fields {
    () => {
        fn status(&self) -> Option<&Self::Status> {
            self.status.as_ref()
        }

        fn conditions(status: &Self::Status) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
            &status.conditions
        }

        fn observed_generation(status: &Self::Status) -> Option<i64> {
            status.observed_generation
        }

        fn finish(
            status: &mut Self::Status,
            generation: Option<i64>,
            conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
        ) {
            status.observed_generation = generation;
            status.conditions = conditions;
        }
    };
}
pub(crate) use status_fields;

/// The part of [`Kind`] every namespaced kind shares: its API in the object's namespace, and
/// `spec.deletionPolicy: Retain` leaving AWS untouched.
macro_rules! namespaced_kind {
    () => {
        fn api(client: kube::Client, namespace: Option<&str>) -> kube::Api<Self> {
            kube::Api::namespaced(client, namespace.unwrap_or_default())
        }

        fn retain_on_delete(&self) -> bool {
            self.spec.deletion_policy == sagekeeper_api::DeletionPolicy::Retain
        }
    };
}
pub(crate) use namespaced_kind;

/// What one pass over an object found.
#[derive(Debug)]
pub(crate) struct Report<S> {
    /// The kind's status fields.
    pub(crate) status: S,
    /// The verdict, from which Ready, Stalled and Reconciling follow.
    pub(crate) outcome: Outcome,
    /// One state per component, each its own `<Component>Ready` condition.
    pub(crate) components: Vec<ComponentState>,
    /// When to look again.
    pub(crate) retry: Retry,
    /// The kind of AWS failure behind this report, counted in the error metric.
    pub(crate) failure: Option<ErrorKind>,
    /// Events to publish once the status is written (what was created, repaired, deleted).
    pub(crate) notes: Vec<Note>,
    /// Conditions beyond Ready, Stalled, Reconciling and the components.
    pub(crate) extra: Vec<conditions::Extra>,
}

/// One event about the object.
#[derive(Clone, Debug)]
pub(crate) struct Note {
    /// Normal or Warning.
    pub(crate) type_: EventType,
    /// Why, one of a fixed set.
    pub(crate) reason: EventReason,
    /// What happened.
    pub(crate) note: String,
}

impl<S> Report<S> {
    /// A report whose retry follows from the outcome: drift interval when ready or stalled
    /// (stalled objects are re-checked, never given up on), soon when progressing.
    pub(crate) fn new(status: S, outcome: Outcome) -> Self {
        let retry = match outcome {
            Outcome::Progressing { .. } => Retry::Pending,
            Outcome::Ready { .. } | Outcome::Stalled { .. } => Retry::Drift,
        };
        Self { status, outcome, components: Vec::new(), retry, failure: None, notes: Vec::new(), extra: Vec::new() }
    }
}

/// When to look at an object again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// At the next drift check.
    Drift,
    /// Soon: something is in progress.
    Pending,
    /// After the object's next exponential backoff step (throttling, transient failures).
    Backoff,
    /// After this long (polling something that changes outside the object, like a registry).
    After(std::time::Duration),
}

/// The reasons of sagekeeper's own events (a Stalled event takes its condition's reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventReason {
    Created,
    Updated,
    Deleted,
    DriftRepaired,
    DataRetained,
    Ready,
    RunSucceeded,
    RunFailed,
    Serving,
    DeploymentFailed,
    RolledBack,
    RejectedVersionServing,
}

impl EventReason {
    /// The reason as events carry it.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Updated => "Updated",
            Self::Deleted => "Deleted",
            Self::DriftRepaired => "DriftRepaired",
            Self::DataRetained => "DataRetained",
            Self::Ready => "Ready",
            Self::RunSucceeded => "RunSucceeded",
            Self::RunFailed => "RunFailed",
            Self::Serving => "Serving",
            Self::DeploymentFailed => "DeploymentFailed",
            Self::RolledBack => "RolledBack",
            Self::RejectedVersionServing => "RejectedVersionServing",
        }
    }
}

/// The events for what a pass wrote, decided the same way for every kind. When the object had
/// already converged with the inputs it has now (`drift`), every write repaired drift: one
/// Warning `DriftRepaired` listing them. Otherwise one Normal event per kind of write
/// (Created, Updated, Deleted), each listing its resources.
pub(crate) fn change_notes(changes: &[(sagekeeper_aws::steps::Action, String)], drift: bool) -> Vec<Note> {
    use sagekeeper_aws::steps::Action::{Created, Deleted, Updated};
    if drift && !changes.is_empty() {
        let all: Vec<&str> = changes.iter().map(|(_, what)| what.as_str()).collect();
        return vec![Note { type_: EventType::Warning, reason: EventReason::DriftRepaired, note: all.join("; ") }];
    }
    [(Created, EventReason::Created), (Updated, EventReason::Updated), (Deleted, EventReason::Deleted)]
        .into_iter()
        .filter_map(|(action, reason)| {
            let items: Vec<&str> = changes.iter().filter(|(a, _)| *a == action).map(|(_, w)| w.as_str()).collect();
            (!items.is_empty()).then(|| Note { type_: EventType::Normal, reason, note: items.join("; ") })
        })
        .collect()
}

/// The result of a cleanup pass.
#[derive(Debug)]
pub(crate) enum Cleanup<S> {
    /// Everything is removed (or kept on purpose): release the finalizer.
    Done,
    /// Not yet: report why and look again.
    Wait(Report<S>),
}

/// One reconcile of one object of any kind.
pub(crate) async fn reconcile<K: Kind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.wait_synced().await;
    let kind = K::kind(&());
    let _timer = ctx.metrics.reconcile(&kind);
    let api = K::api(ctx.client.clone(), obj.namespace().as_deref());
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    let paused = is_paused(obj.meta());

    if obj.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        if paused {
            write_status(&api, &obj, &ctx, None).await?;
            return Ok(Action::requeue(ctx.drift_interval()));
        }
        let cleanup = if obj.retain_on_delete() { Cleanup::Done } else { obj.cleanup(&ctx).await? };
        return match cleanup {
            Cleanup::Done => {
                remove_finalizer(&api, &obj).await?;
                info!(kind = %kind, name = %obj.name_any(), namespace = ?obj.namespace(), "released");
                let note = if obj.retain_on_delete() {
                    "deletionPolicy Retain: released, AWS resources left untouched"
                } else {
                    "cleanup done, finalizer released"
                };
                publish(&ctx, &*obj, EventType::Normal, EventReason::Deleted.as_str(), note).await;
                ctx.reset_backoff(&uid(&*obj));
                ctx.forget_check(&uid(&*obj));
                ctx.forget_converged(&uid(&*obj));
                ctx.metrics.object_gone(&uid(&*obj));
                Ok(Action::await_change())
            }
            Cleanup::Wait(report) => {
                count_failure(&ctx, &kind, &report);
                write_status(&api, &obj, &ctx, Some(&report)).await?;
                publish_notes(&ctx, &*obj, &report.notes).await;
                Ok(action(&ctx, &*obj, report.retry))
            }
        };
    }

    if !has_finalizer {
        add_finalizer(&api, &obj).await?;
    }
    if paused {
        write_status(&api, &obj, &ctx, None).await?;
        return Ok(Action::requeue(ctx.drift_interval()));
    }
    let report = obj.apply(&ctx).await?;
    count_failure(&ctx, &kind, &report);
    write_status(&api, &obj, &ctx, Some(&report)).await?;
    publish_notes(&ctx, &*obj, &report.notes).await;
    Ok(action(&ctx, &*obj, report.retry))
}

/// What to do after a failed reconcile (a Kubernetes API error): back off per object.
pub(crate) fn error_policy<K: Kind>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    let kind = K::kind(&());
    ctx.metrics.error(&kind, err.category());
    let wait = ctx.backoff(&uid(&*obj));
    warn!(kind = %kind, name = %obj.name_any(), namespace = ?obj.namespace(), error = %err, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

fn count_failure<S>(ctx: &Context, kind: &str, report: &Report<S>) {
    if let Some(failure) = report.failure {
        ctx.metrics.error(kind, failure.as_str());
    }
}

fn action<K: Resource>(ctx: &Context, obj: &K, retry: Retry) -> Action {
    match retry {
        Retry::Drift => {
            ctx.reset_backoff(&uid(obj));
            Action::requeue(ctx.drift_interval())
        }
        Retry::Pending => {
            ctx.reset_backoff(&uid(obj));
            Action::requeue(ctx.settings.pending_interval)
        }
        Retry::Backoff => Action::requeue(ctx.backoff(&uid(obj))),
        Retry::After(wait) => {
            ctx.reset_backoff(&uid(obj));
            Action::requeue(wait.min(ctx.drift_interval()))
        }
    }
}

fn uid<K: Resource>(obj: &K) -> String {
    obj.meta().uid.clone().unwrap_or_default()
}

/// Writes the status of one pass with server-side apply, unless nothing changed; `None` means
/// paused (the last observation stays, only Reconciling changes). Emits events when Ready or
/// Stalled flips.
async fn write_status<K: Kind>(
    api: &Api<K>,
    obj: &K,
    ctx: &Context,
    report: Option<&Report<K::Status>>,
) -> Result<(), Error> {
    // The status to compare with is the last one written: the cached object's, unless the
    // cache has not caught up with this process's last write yet.
    let fresh = if ctx.status_is_stale(&uid(obj), obj.meta().resource_version.as_deref()) {
        Some(api.get_status(&obj.name_any()).await.map_err(|e| Error::Read(obj.name_any(), e))?)
    } else {
        None
    };
    let previous = fresh.as_ref().map_or(obj.status(), |f| f.status());
    let previous_conditions = previous.map(K::conditions).unwrap_or_default();
    let generation = obj.meta().generation;
    let now = Time(Timestamp::now());
    // A paused object has not acted on its current generation: it keeps the generation it last
    // observed, so kstatus readers do not take an unapplied spec for a current one.
    let (mut status, list, observed) = match report {
        Some(r) => {
            let mut list = conditions::conditions(&r.outcome, &r.components, generation, &now, previous_conditions);
            list.extend(r.extra.iter().map(|e| conditions::extra(e, generation, &now, previous_conditions)));
            (r.status.clone(), list, generation)
        }
        None => (
            previous.cloned().unwrap_or_default(),
            conditions::paused(generation, &now, previous_conditions),
            previous.and_then(K::observed_generation),
        ),
    };
    K::finish(&mut status, observed, list);
    ctx.metrics.object(&K::kind(&()), &uid(obj), K::conditions(&status));
    if previous == Some(&status) {
        debug!(name = %obj.name_any(), "status unchanged");
        return Ok(());
    }
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(&obj.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|e| Error::WriteStatus(obj.name_any(), e))?;
    ctx.wrote_status(&uid(obj), written.meta().resource_version.as_deref());
    publish_transition(ctx, obj, previous_conditions, K::conditions(&status)).await;
    Ok(())
}

/// Events on the transitions people care about: became Ready, became (or changed why it is)
/// Stalled.
async fn publish_transition<K: Kind>(ctx: &Context, obj: &K, before: &[Condition], after: &[Condition]) {
    let state = |list: &[Condition], t: &str| conditions::find(list, t).map(|c| (c.status.clone(), c.reason.clone()));
    let became_ready =
        state(after, READY).is_some_and(|(s, _)| s == "True") && state(before, READY).is_none_or(|(s, _)| s != "True");
    let stalled = state(after, STALLED).filter(|(s, _)| s == "True");
    if became_ready {
        let note = conditions::find(after, READY).map(|c| c.message.clone()).unwrap_or_default();
        publish(ctx, obj, EventType::Normal, EventReason::Ready.as_str(), &note).await;
    } else if let Some((_, reason)) = stalled.filter(|now| state(before, STALLED).as_ref() != Some(now)) {
        let note = conditions::find(after, STALLED).map(|c| c.message.clone()).unwrap_or_default();
        publish(ctx, obj, EventType::Warning, &reason, &note).await;
    }
}

async fn publish_notes<K: Kind>(ctx: &Context, obj: &K, notes: &[Note]) {
    for note in notes {
        publish(ctx, obj, note.type_, note.reason.as_str(), &note.note).await;
    }
}

/// Publishes one event about `obj`; failing to publish is logged, never fatal.
pub(crate) async fn publish<K: Kind>(ctx: &Context, obj: &K, type_: EventType, reason: &str, note: &str) {
    // The API server refuses notes over 1 kB.
    let mut note = note.to_owned();
    if note.len() > 1000 {
        let mut end = 990;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str(" …");
    }
    let event =
        Event { type_, reason: reason.to_owned(), note: Some(note), action: "Reconcile".into(), secondary: None };
    if let Err(e) = ctx.recorder().publish(&event, &obj.object_ref(&())).await {
        warn!(name = %obj.name_any(), error = %e, "could not publish event");
    }
}

/// Adds the finalizer with a JSON patch that fails (and so retries) if the list changed
/// meanwhile, since the API server does not deduplicate finalizers.
async fn add_finalizer<K: Kind>(api: &Api<K>, obj: &K) -> Result<(), Error> {
    let ops = if obj.finalizers().is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": obj.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    patch_finalizers(api, obj, ops).await
}

/// Removes the finalizer by index, testing the index still holds it.
async fn remove_finalizer<K: Kind>(api: &Api<K>, obj: &K) -> Result<(), Error> {
    let Some(index) = obj.finalizers().iter().position(|f| f == FINALIZER) else { return Ok(()) };
    let path = format!("/metadata/finalizers/{index}");
    let ops = json!([{"op": "test", "path": path, "value": FINALIZER}, {"op": "remove", "path": path}]);
    match patch_finalizers(api, obj, ops).await {
        Err(Error::Finalizer(_, kube::Error::Api(s))) if s.code == 404 => Ok(()),
        other => other,
    }
}

async fn patch_finalizers<K: Kind>(api: &Api<K>, obj: &K, ops: serde_json::Value) -> Result<(), Error> {
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| Error::Finalizer(obj.name_any(), kube::Error::SerdeError(e)))?;
    api.patch(&obj.name_any(), &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map_err(|e| Error::Finalizer(obj.name_any(), e))?;
    Ok(())
}
