//! Watch relations between kinds: which objects to look at again when another object changes,
//! so references, tenancy and "still in use" follow at once rather than at the next drift check.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::{Hash, Hasher};

use futures::{Stream, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use sagekeeper_api::account_set::SET_LABEL;
use sagekeeper_api::{AwsAccount, AwsAccountSet, DataScienceEnvironment, MLOpsProject, ModelDeployment};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::Stores;

/// What a relation needs: the client, the watch settings, and the stores to map through.
#[derive(Clone)]
pub(crate) struct Watch {
    pub(crate) client: Client,
    pub(crate) config: watcher::Config,
    pub(crate) stores: Stores,
}

impl Watch {
    /// The events of `K` a relation acts on (see [`Changes`]).
    fn changes<K>(&self, config: watcher::Config) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
    {
        let mut changes = Changes::default();
        watcher(Api::<K>::all(self.client.clone()), config)
            .try_filter_map(move |event| futures::future::ready(Ok(changes.keep(event))))
    }
}

/// Which watch events of a related object reach its dependents: every deletion, and every
/// change except those of annotations alone (kubectl's last-applied copy, Argo CD's tracking
/// id, a restart annotation) and of bookkeeping (resourceVersion, managedFields). Without it
/// an annotation written on one environment makes each of its projects and deployments look
/// at AWS again. A relist after a broken watch passes only what changed meanwhile. (kube's
/// `predicate_filter` is not used: it would also drop the deletion event of an object whose last
/// update it passed, and a holder being deleted waits for exactly that event.)
#[derive(Debug, Default)]
struct Changes {
    /// The fingerprint last passed on, by uid.
    seen: HashMap<String, u64>,
    /// The uids a relist has shown so far (those it did not show are gone).
    listed: Option<HashSet<String>>,
}

impl Changes {
    fn keep<K: Resource + Serialize>(&mut self, event: watcher::Event<K>) -> Option<K> {
        match event {
            watcher::Event::Delete(obj) => {
                if let Some(uid) = obj.meta().uid.as_ref() {
                    self.seen.remove(uid);
                }
                Some(obj)
            }
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                let uid = obj.meta().uid.clone().unwrap_or_default();
                if let Some(listed) = self.listed.as_mut() {
                    listed.insert(uid.clone());
                }
                let print = fingerprint(&obj);
                (self.seen.insert(uid, print) != Some(print)).then_some(obj)
            }
            watcher::Event::Init => {
                self.listed = Some(HashSet::new());
                None
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.listed.take() {
                    self.seen.retain(|uid, _| listed.contains(uid));
                }
                None
            }
        }
    }
}

/// A hash of everything in an object but its annotations and bookkeeping.
fn fingerprint<K: Serialize>(obj: &K) -> u64 {
    let mut value = serde_json::to_value(obj).unwrap_or_default();
    if let Some(meta) = value.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
        for field in ["annotations", "managedFields", "resourceVersion"] {
            meta.remove(field);
        }
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

/// An account being deleted waits for its users: look again when they change or go. Live
/// accounts do not care, so their users' status writes cost no STS calls.
pub(crate) fn accounts(c: Controller<AwsAccount>, w: Watch) -> Controller<AwsAccount> {
    let (by_env, by_deployment) = (w.stores.accounts.clone(), w.stores.accounts.clone());
    c.watches_stream(w.changes::<DataScienceEnvironment>(w.config.clone()), move |e| {
        let names = std::iter::once(&e.spec.account).chain(e.spec.target_accounts.values().flatten());
        deleting(&by_env, names.map(|a| ObjectRef::new(a)))
    })
    .watches_stream(w.changes::<ModelDeployment>(w.config.clone()), move |d| {
        let in_spec = d.spec.stages.iter().flat_map(|s| s.accounts.iter().flatten());
        let in_status = d.status.iter().flat_map(|s| &s.stages).flat_map(|s| &s.accounts).map(|a| &a.account);
        deleting(&by_deployment, in_spec.chain(in_status).map(|a| ObjectRef::new(a)))
    })
}

/// A set follows its own AwsAccounts (one deleted behind its back is made again) and, while it
/// keeps the AwsAccount of an account that left, the environments and deployments that may
/// still use it (it goes once they stopped).
pub(crate) fn sets(c: Controller<AwsAccountSet>, w: Watch) -> Controller<AwsAccountSet> {
    let (by_env, by_deployment) = (w.stores.sets.clone(), w.stores.sets.clone());
    let leaving = |s: &AwsAccountSet| s.status.iter().flat_map(|s| &s.accounts).any(|a| a.leaving);
    c.watches_stream(w.changes::<AwsAccount>(w.config.clone()), |a| {
        a.labels().get(SET_LABEL).map(|set| ObjectRef::<AwsAccountSet>::new(set)).into_iter().collect::<Vec<_>>()
    })
    .watches_stream(w.changes::<DataScienceEnvironment>(w.config.clone()), move |_| refs(&by_env, leaving))
    .watches_stream(w.changes::<ModelDeployment>(w.config.clone()), move |_| refs(&by_deployment, leaving))
}

/// Environments follow their accounts (readiness, tenancy), the account sets they name, their
/// namespace's labels, and, being deleted, the projects that hold them. (Their projects'
/// registries are granted by tag, so a project coming or going changes nothing for a live
/// environment.)
pub(crate) fn environments(c: Controller<DataScienceEnvironment>, w: Watch) -> Controller<DataScienceEnvironment> {
    let (by_account, by_namespace, by_project, by_set) =
        (w.stores.clone(), w.stores.environments.clone(), w.stores.environments.clone(), w.stores.environments.clone());
    c.watches_stream(w.changes::<AwsAccount>(w.config.clone()), move |a| {
        let name = a.name_any();
        refs(&by_account.environments, |e| uses_account(e, &name) || through_set(&by_account, e, &name))
    })
    .watches_stream(w.changes::<AwsAccountSet>(w.config.clone()), move |s| {
        let name = s.name_any();
        refs(&by_set, |e| e.spec.target_account_sets.values().flatten().any(|n| *n == name))
    })
    .watches_stream(w.changes::<Namespace>(watcher::Config::default()), move |ns| {
        let name = ns.name_any();
        refs(&by_namespace, |e| e.namespace().as_deref() == Some(name.as_str()))
    })
    .watches_stream(w.changes::<MLOpsProject>(w.config.clone()), move |p| {
        deleting(&by_project, p.namespace().map(|ns| ObjectRef::new(&p.spec.environment).within(&ns)))
    })
}

/// Projects follow their environment and, being deleted, the deployments that hold them.
pub(crate) fn projects(c: Controller<MLOpsProject>, w: Watch) -> Controller<MLOpsProject> {
    let (by_env, by_deployment) = (w.stores.projects.clone(), w.stores.projects.clone());
    c.watches_stream(w.changes::<DataScienceEnvironment>(w.config.clone()), move |e| {
        let (name, ns) = (e.name_any(), e.namespace());
        refs(&by_env, |p| p.spec.environment == name && p.namespace() == ns)
    })
    .watches_stream(w.changes::<ModelDeployment>(w.config.clone()), move |d| {
        deleting(&by_deployment, d.namespace().map(|ns| ObjectRef::new(&d.spec.project).within(&ns)))
    })
}

/// Deployments follow their project, its environment (stages, target accounts), the accounts
/// they serve from, and their namespace's labels.
pub(crate) fn deployments(c: Controller<ModelDeployment>, w: Watch) -> Controller<ModelDeployment> {
    let stores = w.stores.clone();
    let (by_project, by_env, by_account, by_namespace) =
        (stores.deployments.clone(), stores.clone(), stores.clone(), stores.deployments.clone());
    c.watches_stream(w.changes::<MLOpsProject>(w.config.clone()), move |p| {
        let (name, ns) = (p.name_any(), p.namespace());
        refs(&by_project, |d| d.spec.project == name && d.namespace() == ns)
    })
    .watches_stream(w.changes::<DataScienceEnvironment>(w.config.clone()), move |e| {
        let (name, ns) = (e.name_any(), e.namespace());
        refs(&by_env.deployments, |d| d.namespace() == ns && environment_of(&by_env, d).as_deref() == Some(&name))
    })
    .watches_stream(w.changes::<AwsAccount>(w.config.clone()), move |a| {
        let name = a.name_any();
        // Through the environment (its target accounts) or named directly in a stage.
        let namespaces: Vec<Option<String>> =
            by_account.environments.state().iter().filter(|e| uses_account(e, &name)).map(|e| e.namespace()).collect();
        refs(&by_account.deployments, |d| {
            namespaces.contains(&d.namespace())
                || d.spec.stages.iter().flat_map(|s| s.accounts.iter().flatten()).any(|n| *n == name)
        })
    })
    .watches_stream(w.changes::<Namespace>(watcher::Config::default()), move |ns| {
        let name = ns.name_any();
        refs(&by_namespace, |d| d.namespace().as_deref() == Some(name.as_str()))
    })
}

fn uses_account(e: &DataScienceEnvironment, name: &str) -> bool {
    e.spec.account == name
        || e.spec.target_accounts.values().flatten().any(|t| t == name)
        || e.status.iter().flat_map(|s| &s.target_accounts).any(|t| t.account == name)
}

/// Whether AwsAccount `name` is a member of a set the environment names.
fn through_set(stores: &Stores, e: &DataScienceEnvironment, name: &str) -> bool {
    e.spec.target_account_sets.values().flatten().any(|set| {
        stores
            .sets
            .get(&ObjectRef::new(set))
            .is_some_and(|s| s.status.iter().flat_map(|st| &st.accounts).any(|a| a.aws_account == name))
    })
}

fn environment_of(stores: &Stores, d: &ModelDeployment) -> Option<String> {
    let ns = d.namespace()?;
    stores.projects.get(&ObjectRef::new(&d.spec.project).within(&ns)).map(|p| p.spec.environment.clone())
}

/// References to the objects in `store` that satisfy `pick`.
fn refs<K>(store: &Store<K>, pick: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.state().iter().filter(|o| pick(o)).map(|o| ObjectRef::from(&**o)).collect()
}

/// The references among `refs` whose objects are being deleted (and so wait for users).
fn deleting<K>(store: &Store<K>, refs: impl IntoIterator<Item = ObjectRef<K>>) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    refs.into_iter().filter(|r| store.get(r).is_some_and(|o| o.meta().deletion_timestamp.is_some())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(uid: &str, annotation: &str, environment: &str) -> MLOpsProject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "MLOpsProject",
            "metadata": {"name": "churn", "namespace": "ml", "uid": uid, "resourceVersion": annotation,
                "annotations": {"argocd.argoproj.io/tracking-id": annotation}},
            "spec": {"environment": environment}
        }))
        .unwrap()
    }

    #[test]
    fn dependents_hear_of_changes_and_deletions_but_not_of_annotation_edits() {
        let mut changes = Changes::default();
        let passed = |c: &mut Changes, e| c.keep(e).is_some();
        assert!(passed(&mut changes, watcher::Event::Apply(project("u1", "a", "fraud"))), "a new object");
        assert!(!passed(&mut changes, watcher::Event::Apply(project("u1", "b", "fraud"))), "an annotation edit");
        assert!(passed(&mut changes, watcher::Event::Apply(project("u1", "b", "churn"))), "a spec change");
        assert!(passed(&mut changes, watcher::Event::Delete(project("u1", "b", "churn"))), "the deletion");
        assert!(passed(&mut changes, watcher::Event::Apply(project("u2", "b", "churn"))), "recreated: a new uid");

        // A relist passes only what changed while the watch was down, and forgets what is gone.
        assert!(passed(&mut changes, watcher::Event::Apply(project("u3", "a", "fraud"))));
        assert!(!passed(&mut changes, watcher::Event::Init));
        assert!(!passed(&mut changes, watcher::Event::InitApply(project("u2", "c", "churn"))), "unchanged");
        assert!(!passed(&mut changes, watcher::Event::InitDone));
        assert_eq!(changes.seen.keys().collect::<Vec<_>>(), ["u2"], "u3 was not relisted: it is gone");
    }
}
