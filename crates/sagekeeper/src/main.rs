//! The `sagekeeper` binary: `run` starts the controller (leader election, watches, health and
//! metrics server); `crds` writes the CustomResourceDefinitions; `trace` shows an object with
//! everything it uses and that uses it (also as the kubectl plugin `kubectl-sagekeeper`).

mod serve;
mod trace;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sagekeeper_aws::Sessions;
use sagekeeper_controller::{Health, LeaseSettings, Metrics, Settings};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// mimalloc gives freed memory back to the system soon after a burst. With glibc's malloc the
/// controller kept the heap of its busiest moment: converging 1,003 objects, 130 MB at the peak
/// and 30 MB live afterwards, and an RSS of 168 MiB that stayed (heaptrack, `make bench`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sagekeeper: a secure, multi-account SageMaker platform as Kubernetes custom resources.
/// The version and the git revision the binary was built from (`build.rs`).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SAGEKEEPER_REVISION"), ")");

#[derive(Parser, Debug)]
#[command(version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// Write the CustomResourceDefinitions, one file per kind.
    Crds {
        /// Folder to write `<plural>.sagekeeper.io.yaml` into; `-` prints them to stdout.
        #[arg(long, default_value = "crds")]
        out: PathBuf,
    },
    /// Show an object, the objects it uses and that use it, and from their status each AWS
    /// resource with its account, id and state, and every condition not in its good state.
    Trace(trace::TraceArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Address of the health (/healthz, /readyz) and metrics (/metrics) server.
    #[arg(long, env = "SAGEKEEPER_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Compete for a Lease and reconcile only while holding it.
    #[arg(long, env = "SAGEKEEPER_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease (defaults to the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sagekeeper-system")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "sagekeeper-leader")]
    lease_name: String,
    /// Seconds a lease stays valid after its last renewal (renew deadline and retry period
    /// scale with it).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..))]
    lease_duration_seconds: u64,
    /// This replica's identity in the lease and in events (defaults to the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds between drift checks of a converged object (jittered).
    #[arg(long, default_value_t = 600)]
    drift_interval_seconds: u64,
    /// Every how many drift checks of an environment one also reads the settings that guard
    /// neither data nor access (bucket ownership controls and versioning, key rotation, VPC DNS
    /// attributes, key state, tags of buckets, keys and the Studio domain); the others read
    /// bucket and key policies, encryption, public access blocks, roles, networks and VPC
    /// endpoints. 1 reads everything every time.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    full_check_every: u32,
    /// Seconds an account-wide read (one listing of an account's roles, one of its networks) is shared by the passes
    /// of every object using the account: drift it shows is seen within the drift interval plus
    /// this age. 0 reads it for every pass.
    #[arg(long, default_value_t = 300)]
    account_read_age_seconds: u64,
    /// Seconds between reads of a project's registry (latest versions) and its running
    /// pipeline run: an approval reaches deployments within this time.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    poll_interval_seconds: u64,
    /// Seconds between listings of the SageMaker endpoints in each account deployments use (one
    /// ListEndpoints per account): an endpoint deleted, failed or moved behind sagekeeper's back
    /// is noticed within this time.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    endpoint_watch_seconds: u64,
    /// Seconds before an object waiting on AWS (an endpoint or domain still being created) is
    /// looked at again.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pending_interval_seconds: u64,
    /// Plan steps run at once per AWS account and service, across all objects: keeps bursts
    /// under AWS's per-account rate limits.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    aws_concurrency: u64,
    /// Reconciles of one kind in flight at once; the rest wait in the queue. Bounds the
    /// memory of a start or fail-over, when every object is looked at.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    /// Reconcile only objects with these labels, e.g. `shard=a` (sharding across controllers).
    #[arg(long, env = "SAGEKEEPER_WATCH_LABEL_SELECTOR")]
    watch_label_selector: Option<String>,
    /// Log format.
    #[arg(long, env = "SAGEKEEPER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out } => match write_crds(&out) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sagekeeper crds: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Trace(args) => match trace::run(args).await {
            Ok(text) => {
                print!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            init_logging(args.log_format);
            match run(args).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    error!(error = %e, "sagekeeper stopped");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,aws=warn"));
    // The log lines, filtered by RUST_LOG; and the CPU of AWS SDK calls, which the reconcile
    // CPU metrics leave out of a reconcile's own work.
    use tracing_subscriber::util::SubscriberInitExt;
    sagekeeper_controller::metrics::subscriber(matches!(format, LogFormat::Json), filter).init();
}

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let metrics = Metrics::new()?;
    let health = Arc::new(Health::default());
    let client = kube::Client::try_default().await?;
    // An account no object asked for in three drift intervals is one no object uses.
    let idle = Duration::from_secs(args.drift_interval_seconds.saturating_mul(3));
    let sessions = Sessions::from_env(metrics.aws.clone()).await.drop_idle_after(idle);
    let identity = args.identity.unwrap_or_else(default_identity);
    let settings = Settings {
        drift_interval: Duration::from_secs(args.drift_interval_seconds),
        full_check_every: args.full_check_every,
        account_read_age: Duration::from_secs(args.account_read_age_seconds),
        poll_interval: Duration::from_secs(args.poll_interval_seconds),
        pending_interval: Duration::from_secs(args.pending_interval_seconds),
        endpoint_interval: Duration::from_secs(args.endpoint_watch_seconds),
        aws_concurrency: usize::try_from(args.aws_concurrency).unwrap_or(4),
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        label_selector: args.watch_label_selector,
        instance: identity.clone(),
    };
    let lease = args.leader_elect.then(|| {
        let duration = Duration::from_secs(args.lease_duration_seconds);
        LeaseSettings::new(args.lease_namespace, args.lease_name, identity.clone(), duration)
    });

    let shutdown = CancellationToken::new();
    let server = serve::start(args.metrics_addr, metrics.registry.clone(), health.clone(), shutdown.clone()).await?;
    info!(addr = %server, identity = %identity, "sagekeeper started");
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            serve::signal().await;
            info!("shutting down");
            shutdown.cancel();
        }
    });
    let result = sagekeeper_controller::run(client, sessions, metrics, settings, lease, health, shutdown.clone()).await;
    shutdown.cancel();
    Ok(result?)
}

/// The host name plus a random suffix, so two processes on one host never share an identity.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    format!("{}-{:08x}", if host.is_empty() { "sagekeeper" } else { &host }, rand::random::<u32>())
}

fn write_crds(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let stdout = out.as_os_str() == "-";
    if !stdout {
        std::fs::create_dir_all(out)?;
    }
    for crd in sagekeeper_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let yaml = format!("# Generated by `sagekeeper crds`; do not edit.\n{}", serde_yaml::to_string(&crd)?);
        if stdout {
            print!("---\n{yaml}");
        } else {
            std::fs::write(out.join(format!("{name}.yaml")), yaml)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `crds/` is generated, never edited by hand: fail when it differs from what the types say.
    #[test]
    fn committed_crds_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
        let fresh = std::env::temp_dir().join(format!("sagekeeper-crds-{}", std::process::id()));
        write_crds(&fresh).expect("generate crds");
        for crd in sagekeeper_api::crds() {
            let file = format!("{}.yaml", crd.metadata.name.unwrap_or_default());
            let committed = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
            let generated = std::fs::read_to_string(fresh.join(&file)).expect("generated file");
            assert!(committed == generated, "crds/{file} is stale: run `make crds` and commit the result");
        }
        let committed_files = std::fs::read_dir(&dir).expect("crds dir").count();
        assert_eq!(committed_files, 5, "crds/ holds exactly one file per kind");
        std::fs::remove_dir_all(fresh).ok();
    }
}
