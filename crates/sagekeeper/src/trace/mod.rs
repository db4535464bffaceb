//! `sagekeeper trace dse/<name>` (also `mlp/…`, `mdep/…`, `awsacct/…`): the object, the objects
//! it uses and that use it, and from their status each AWS resource with its account, id and
//! state, and every condition not in its good state with its message. Reads with the kubeconfig
//! as kubectl does; installed as `kubectl-sagekeeper` it is `kubectl sagekeeper trace …`.

mod render;
mod tree;

use std::path::PathBuf;

use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment};
use serde::de::DeserializeOwned;

use tree::{Kind, World};

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// What to trace: `dse/<name>`, `mlp/<name>`, `mdep/<name>` or `awsacct/<name>` (or the
    /// type and the name as two words, as kubectl takes them).
    #[arg(value_name = "TYPE/NAME")]
    what: String,
    /// The name, when the type is given alone.
    #[arg(value_name = "NAME")]
    name: Option<String>,
    /// Namespace of the object (default: the kubeconfig context's).
    #[arg(short, long)]
    namespace: Option<String>,
    /// `wide`: whole ARNs, whole messages and each account's id; `json`: the tree as JSON.
    #[arg(short, long, value_enum)]
    output: Option<Output>,
    /// Path of the kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    context: Option<String>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Output {
    Wide,
    Json,
}

/// The rendered trace, or why there is none.
pub async fn run(args: TraceArgs) -> Result<String, String> {
    let (kind, name) = target(&args)?;
    let config = config(&args).await.map_err(|e| format!("kubeconfig: {e}"))?;
    let namespace = args.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| format!("client: {e}"))?;
    let world = read(&client, kind, &namespace, &name).await?;
    let root = tree::build(&world, kind, &namespace, &name).ok_or_else(|| match kind {
        Kind::Account => format!("{} {name:?} not found", plural(kind)),
        _ => format!("{} {name:?} not found in namespace {namespace:?}", plural(kind)),
    })?;
    Ok(match args.output {
        None => render::table(&root, false),
        Some(Output::Wide) => render::table(&root, true),
        Some(Output::Json) => render::json(&root),
    })
}

fn target(args: &TraceArgs) -> Result<(Kind, String), String> {
    let (kind, name) = match (args.what.split_once('/'), &args.name) {
        (Some((kind, name)), None) => (kind, name.to_owned()),
        (None, Some(name)) => (args.what.as_str(), name.clone()),
        _ => return Err("name one object: TYPE/NAME or TYPE NAME, e.g. dse/fraud".into()),
    };
    let kind = Kind::parse(kind).ok_or_else(|| {
        format!("{kind:?} is not a sagekeeper kind: use dse, mlp, mdep or awsacct (or their full names)")
    })?;
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    Ok((kind, name))
}

async fn config(args: &TraceArgs) -> Result<Config, Box<dyn std::error::Error>> {
    let options = KubeConfigOptions { context: args.context.clone(), ..KubeConfigOptions::default() };
    Ok(match &args.kubeconfig {
        Some(path) => Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?,
        None if args.context.is_some() => Config::from_kubeconfig(&options).await?,
        None => Config::infer().await?,
    })
}

fn plural(kind: Kind) -> String {
    let plural = match kind {
        Kind::Environment => DataScienceEnvironment::plural(&()),
        Kind::Project => MLOpsProject::plural(&()),
        Kind::Deployment => ModelDeployment::plural(&()),
        Kind::Account => AwsAccount::plural(&()),
    };
    format!("{plural}.{}", sagekeeper_api::GROUP)
}

/// What the tree needs: the namespace's environments, projects and deployments (every
/// namespace's, for an account) and the AwsAccounts they name. The traced kind must be readable;
/// any other list that is not is named in the tree instead.
async fn read(client: &Client, kind: Kind, namespace: &str, name: &str) -> Result<World, String> {
    let mut world = World::default();
    let scoped = kind != Kind::Account;
    let must = |k: Kind| k == kind;
    world.environments = list(client, scoped.then_some(namespace), must(Kind::Environment), &mut world.unread).await?;
    if scoped {
        world.projects = list(client, Some(namespace), must(Kind::Project), &mut world.unread).await?;
    }
    world.deployments = list(client, scoped.then_some(namespace), must(Kind::Deployment), &mut world.unread).await?;
    let mut names: Vec<String> = Vec::new();
    if kind == Kind::Account {
        names.push(name.to_owned());
    }
    for e in &world.environments {
        let targets = e.spec.target_accounts.values().flatten();
        let leaving = e.status.iter().flat_map(|s| &s.target_accounts).map(|t| &t.account);
        names.extend(std::iter::once(&e.spec.account).chain(targets).chain(leaving).cloned());
    }
    names.sort();
    names.dedup();
    let accounts: Api<AwsAccount> = Api::all(client.clone());
    for account in names {
        let read = accounts.get_opt(&account).await;
        let found = match read {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err("not found".to_owned()),
            Err(e) => Err(why(&e)),
        };
        if let (Kind::Account, Err(e)) = (kind, &found)
            && account == name
        {
            return Err(format!("{} {name:?}: {e}", plural(kind)));
        }
        world.accounts.push((account, found));
    }
    Ok(world)
}

/// One kind's objects in `namespace` (all namespaces if `None`). A list that fails is an error
/// when `must`, else it is noted in `unread`.
async fn list<K>(
    client: &Client,
    namespace: Option<&str>,
    must: bool,
    unread: &mut Vec<String>,
) -> Result<Vec<K>, String>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(e) if must => Err(format!("{}.{}: {}", K::plural(&()), K::group(&()), why(&e))),
        Err(e) => {
            unread.push(format!("{}.{} ({})", K::plural(&()), K::group(&()), why(&e)));
            Ok(Vec::new())
        }
    }
}

/// A Kubernetes error as kubectl says it: the reason and the server's message.
fn why(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{}: {}", status.reason, status.message),
        other => other.to_string(),
    }
}
