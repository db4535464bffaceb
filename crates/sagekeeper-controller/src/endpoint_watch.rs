//! The SageMaker endpoints of every deployment, watched per account: every interval, one
//! ListEndpoints per account and region that deployments' status names, compared with what each
//! deployment's status says and with the previous listing. A deployment whose endpoint is gone,
//! stands otherwise than its status says, or was modified since the last listing is looked at
//! again at once (its pass describes its endpoints and puts them right); nothing else is read.
//! Watching endpoints so costs one call per account per interval, however many endpoints there
//! are. The listing only wakes reconciles: no write is ever decided on it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::Stream;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use sagekeeper_api::ModelDeployment;
use sagekeeper_aws::AccountAccess;
use sagekeeper_aws::sagemaker_endpoints::{self, EndpointStatus, ListedEndpoint};
use tracing::debug;

use crate::context::Context;
use crate::resolve;

/// One endpoint a deployment's status names: where, and what the status says of it.
struct Watched {
    access: AccountAccess,
    endpoint: String,
    status: Option<EndpointStatus>,
    deployment: ObjectRef<ModelDeployment>,
}

/// The deployments to look at again, round after round, forever (the controllers' shutdown
/// ends it with them).
pub(crate) fn watch(ctx: Arc<Context>) -> impl Stream<Item = ObjectRef<ModelDeployment>> + Send + 'static {
    let every = ctx.settings.endpoint_interval;
    let rounds = futures::stream::unfold((ctx, HashMap::new()), move |(ctx, mut last)| async move {
        tokio::time::sleep(every).await;
        ctx.wait_synced().await;
        let due = round(&ctx, &mut last).await;
        Some((futures::stream::iter(due), (ctx, last)))
    });
    futures::StreamExt::flatten(rounds)
}

/// One round: list each account once, and name the deployments whose endpoints changed.
/// `last` holds the previous listing of every watched endpoint (and only those).
async fn round(
    ctx: &Context,
    last: &mut HashMap<(AccountAccess, String), ListedEndpoint>,
) -> Vec<ObjectRef<ModelDeployment>> {
    let watched = watched(ctx);
    let accounts: HashSet<_> = watched.iter().map(|w| w.access.clone()).collect();
    let mut listings = HashMap::new();
    for access in accounts {
        let session = ctx.sessions.session(&access);
        match sagemaker_endpoints::list_endpoints(&session).await {
            Ok(listed) => {
                listings.insert(access, listed);
            }
            // The deployments' own drift checks still look; a refusal shows in their status.
            Err(e) => debug!(role = ?access.role_arn, error = %e, "listing endpoints failed"),
        }
    }
    let mut due = HashSet::new();
    let mut now = HashMap::new();
    for w in watched {
        let Some(listed) = listings.get(&w.access) else { continue };
        let key = (w.access, w.endpoint);
        let seen = listed.get(&key.1);
        let changed = match seen {
            None => w.status.is_some(),
            Some(seen) => {
                w.status.as_ref() != Some(&seen.status)
                    || last.get(&key).is_some_and(|before| before.changed != seen.changed)
            }
        };
        if changed {
            due.insert(w.deployment);
        }
        if let Some(seen) = seen {
            now.insert(key, seen.clone());
        }
    }
    *last = now;
    due.into_iter().collect()
}

/// Every endpoint the deployments' status names, with the access to its account in the
/// environment's region.
fn watched(ctx: &Context) -> Vec<Watched> {
    let stores = &ctx.stores;
    let mut all = Vec::new();
    for d in stores.deployments.state() {
        let (Some(namespace), Some(status)) = (d.namespace(), d.status.as_ref()) else { continue };
        let project = stores.projects.get(&ObjectRef::new(&d.spec.project).within(&namespace));
        let environment =
            project.and_then(|p| stores.environments.get(&ObjectRef::new(&p.spec.environment).within(&namespace)));
        let Some(environment) = environment else { continue };
        for a in status.stages.iter().flat_map(|s| &s.accounts) {
            let (Some(endpoint), Some(account)) =
                (a.endpoint_name.clone(), stores.accounts.get(&ObjectRef::new(&a.account)))
            else {
                continue;
            };
            all.push(Watched {
                access: resolve::access_of(&account, Some(&environment.spec.region)),
                endpoint,
                status: a.endpoint_status.as_deref().map(EndpointStatus::of),
                deployment: ObjectRef::from_obj(d.as_ref()),
            });
        }
    }
    all
}
