//! Watch relations between kinds: which objects to look at again when another object changes,
//! so references, tenancy and "still in use" follow at once rather than at the next drift check.

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment};

use crate::context::Stores;

/// What a relation needs: the client, the watch settings, and the stores to map through.
#[derive(Clone)]
pub(crate) struct Watch {
    pub(crate) client: Client,
    pub(crate) config: watcher::Config,
    pub(crate) stores: Stores,
}

impl Watch {
    fn api<K: Resource<DynamicType = ()>>(&self) -> Api<K> {
        Api::all(self.client.clone())
    }
}

/// An account being deleted waits for its users: look again when they change or go. Live
/// accounts do not care, so their users' status writes cost no STS calls.
pub(crate) fn accounts(c: Controller<AwsAccount>, w: Watch) -> Controller<AwsAccount> {
    let (by_env, by_deployment) = (w.stores.accounts.clone(), w.stores.accounts.clone());
    c.watches(w.api::<DataScienceEnvironment>(), w.config.clone(), move |e| {
        let names = std::iter::once(&e.spec.account).chain(e.spec.target_accounts.values().flatten());
        deleting(&by_env, names.map(|a| ObjectRef::new(a)))
    })
    .watches(w.api::<ModelDeployment>(), w.config.clone(), move |d| {
        let in_spec = d.spec.stages.iter().flat_map(|s| s.accounts.iter().flatten());
        let in_status = d.status.iter().flat_map(|s| &s.stages).flat_map(|s| &s.accounts).map(|a| &a.account);
        deleting(&by_deployment, in_spec.chain(in_status).map(|a| ObjectRef::new(a)))
    })
}

/// Environments follow their accounts (readiness, tenancy) and their namespace's labels, and,
/// being deleted, the projects that hold them. (Their projects' registries are granted by tag,
/// so a project coming or going changes nothing for a live environment.)
pub(crate) fn environments(c: Controller<DataScienceEnvironment>, w: Watch) -> Controller<DataScienceEnvironment> {
    let (by_account, by_namespace, by_project) =
        (w.stores.environments.clone(), w.stores.environments.clone(), w.stores.environments.clone());
    c.watches(w.api::<AwsAccount>(), w.config.clone(), move |a| {
        let name = a.name_any();
        refs(&by_account, |e| uses_account(e, &name))
    })
    .watches(w.api::<Namespace>(), watcher::Config::default(), move |ns| {
        let name = ns.name_any();
        refs(&by_namespace, |e| e.namespace().as_deref() == Some(name.as_str()))
    })
    .watches(w.api::<MLOpsProject>(), w.config.clone(), move |p| {
        deleting(&by_project, p.namespace().map(|ns| ObjectRef::new(&p.spec.environment).within(&ns)))
    })
}

/// Projects follow their environment and, being deleted, the deployments that hold them.
pub(crate) fn projects(c: Controller<MLOpsProject>, w: Watch) -> Controller<MLOpsProject> {
    let (by_env, by_deployment) = (w.stores.projects.clone(), w.stores.projects.clone());
    c.watches(w.api::<DataScienceEnvironment>(), w.config.clone(), move |e| {
        let (name, ns) = (e.name_any(), e.namespace());
        refs(&by_env, |p| p.spec.environment == name && p.namespace() == ns)
    })
    .watches(w.api::<ModelDeployment>(), w.config.clone(), move |d| {
        deleting(&by_deployment, d.namespace().map(|ns| ObjectRef::new(&d.spec.project).within(&ns)))
    })
}

/// Deployments follow their project, its environment (stages, target accounts), the accounts
/// they serve from, and their namespace's labels.
pub(crate) fn deployments(c: Controller<ModelDeployment>, w: Watch) -> Controller<ModelDeployment> {
    let stores = w.stores.clone();
    let (by_project, by_env, by_account, by_namespace) =
        (stores.deployments.clone(), stores.clone(), stores.clone(), stores.deployments.clone());
    c.watches(w.api::<MLOpsProject>(), w.config.clone(), move |p| {
        let (name, ns) = (p.name_any(), p.namespace());
        refs(&by_project, |d| d.spec.project == name && d.namespace() == ns)
    })
    .watches(w.api::<DataScienceEnvironment>(), w.config.clone(), move |e| {
        let (name, ns) = (e.name_any(), e.namespace());
        refs(&by_env.deployments, |d| d.namespace() == ns && environment_of(&by_env, d).as_deref() == Some(&name))
    })
    .watches(w.api::<AwsAccount>(), w.config.clone(), move |a| {
        let name = a.name_any();
        // Through the environment (its target accounts) or named directly in a stage.
        let namespaces: Vec<Option<String>> =
            by_account.environments.state().iter().filter(|e| uses_account(e, &name)).map(|e| e.namespace()).collect();
        refs(&by_account.deployments, |d| {
            namespaces.contains(&d.namespace())
                || d.spec.stages.iter().flat_map(|s| s.accounts.iter().flatten()).any(|n| *n == name)
        })
    })
    .watches(w.api::<Namespace>(), watcher::Config::default(), move |ns| {
        let name = ns.name_any();
        refs(&by_namespace, |d| d.namespace().as_deref() == Some(name.as_str()))
    })
}

fn uses_account(e: &DataScienceEnvironment, name: &str) -> bool {
    e.spec.account == name || e.spec.target_accounts.values().flatten().any(|t| t == name)
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
