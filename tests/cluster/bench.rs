//! Benchmarks (`make bench`, ignored by `make test`): AWS calls to converge one environment and
//! for one drift check, the time to converge, and the controller's memory with 50 environments
//! converged; AWS calls to converge one project, per full check and per registry poll; AWS
//! calls and time per promotion of a model version, and the longest reconcile. The
//! `sagekeeper` binary runs as a process against the local stack.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kube::ResourceExt;
use sagekeeper_api::deployment::StagePhase;
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment};
use sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus;
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::emulator::is_read;

const ENVIRONMENTS: u32 = 50;
/// The target accounts all environments share (their resources are per environment).
const STAGING: u32 = 101;
const PRODUCTION: u32 = 102;
/// How long the environment bench's controller shares an account's listings (its roles, its
/// networks): each drift check it measures comes after they aged out, so it pays the listing of
/// every account it uses once, as the first check of a drift interval does. A fifth of the
/// shipped 300 s, and still longer than a check of 50 environments poked at once takes with 16
/// reconciles in flight (at 20 s, their listings aged out twice during it).
pub(crate) const ACCOUNT_READ_AGE: Duration = Duration::from_secs(60);

pub(crate) async fn account(t: &TestEnv, name: &str, n: u32) {
    let role = t.create_role(&t.account(n), "sagekeeper-deployer", None).await;
    let obj: AwsAccount = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {}}}\nspec:\n  accountId: '{}'\n  roleArn: {role}\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: '{{ns}}'}}}}\n",
            t.name(name),
            t.account(n)
        ),
        false,
    );
    t.accounts().create(&Default::default(), &obj).await.unwrap();
}

fn environment(t: &TestEnv, i: u32) -> DataScienceEnvironment {
    environment_in(t, &format!("env-{i}"), &format!("dev-{i}"), "staging", "prod")
}

/// Environment `name` in the account named `dev`, deploying to `staging` and `prod`.
pub(crate) fn environment_in(t: &TestEnv, name: &str, dev: &str, staging: &str, prod: &str) -> DataScienceEnvironment {
    t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1
kind: DataScienceEnvironment
metadata: {{name: {name}}}
spec:
  account: {dev}
  region: us-east-1
  network: {{availabilityZones: [us-east-1a, us-east-1b]}}
  studio:
    userProfiles:
      - {{name: alice, persona: DataScientist}}
      - {{name: bob, persona: TeamAdmin}}
  targetAccounts:
    staging: [{staging}]
    production: [{prod}]
",
            dev = t.name(dev),
            staging = t.name(staging),
            prod = t.name(prod)
        ),
        true,
    )
}

async fn wait_ready(t: &TestEnv, name: &str) {
    let api = t.api::<DataScienceEnvironment>();
    t.wait_condition_for(&api, name, "Ready", "True", None, Duration::from_secs(1800)).await;
}

fn by_operation(t: &TestEnv, accounts: &[u32]) -> BTreeMap<String, usize> {
    tally(t, accounts, |call| call.operation)
}

/// The calls of `accounts`, counted by `key`.
pub(crate) fn tally(
    t: &TestEnv,
    accounts: &[u32],
    key: impl Fn(sagekeeper_tests::emulator::Call) -> String,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for n in accounts {
        for call in t.emulator.calls(&t.account(*n)) {
            *counts.entry(key(call)).or_default() += 1;
        }
    }
    counts
}

/// Prints the calls by operation; returns how many there were.
fn report(title: &str, counts: &BTreeMap<String, usize>) -> usize {
    let total: usize = counts.values().sum();
    let writes: usize = counts.iter().filter(|(op, _)| !is_read(op)).map(|(_, n)| n).sum();
    println!("\n{title}: {total} calls ({writes} writes, {} reads)", total - writes);
    for (op, n) in counts {
        println!("  {op:<36} {n}");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with make bench"]
async fn bench_environments() {
    let t = TestEnv::new("bench").await;
    let age = format!("--account-read-age-seconds={}", ACCOUNT_READ_AGE.as_secs());
    let mut process = t.spawn_sagekeeper("bench", &["--leader-elect=false", &age]);
    account(&t, "staging", STAGING).await;
    account(&t, "prod", PRODUCTION).await;
    join_all((1..=ENVIRONMENTS).map(|i| {
        let t = &t;
        async move { account(t, &format!("dev-{i}"), i).await }
    }))
    .await;
    let one = [1, STAGING, PRODUCTION];
    let all: Vec<u32> = (1..=ENVIRONMENTS).chain([STAGING, PRODUCTION]).collect();
    settle(&t, &all).await;
    clear(&t, &one);
    let api = t.api::<DataScienceEnvironment>();

    // One environment from nothing, alone.
    let started = Instant::now();
    api.create(&Default::default(), &environment(&t, 1)).await.unwrap();
    wait_ready(&t, "env-1").await;
    let first = started.elapsed();
    settle(&t, &one).await;
    let converge = report("converge one environment (dev + 2 target accounts)", &by_operation(&t, &one));
    assert!(converge <= 240, "{converge} calls to converge one environment (bar 240)");

    // One drift check of it at each depth: security settings (every drift interval), then
    // everything (every sixth interval), with a controller that reads everything every time.
    // The first check after converging lists the accounts' networks in full (the converge's
    // writes made the last complete listing stale); the ones after it list only what guards
    // access and take the rest from that listing.
    let mut security = Vec::new();
    for title in [
        "the first drift check of a converged environment, security tier",
        "one drift check of a converged environment, security tier (every interval)",
    ] {
        tokio::time::sleep(ACCOUNT_READ_AGE).await;
        clear(&t, &one);
        t.poke(&api, "env-1").await;
        settle(&t, &one).await;
        security.push(report(title, &by_operation(&t, &one)));
    }
    let (first_check, check) = (security[0], security[1]);
    assert!(first_check <= 56, "{first_check} reads in the first security-tier check of one environment (bar 56)");
    assert!(check <= 40, "{check} reads in a security-tier drift check of one environment (bar 40)");
    process = restart(&t, process, "bench-full", &["--full-check-every=1", &age], &one).await;
    let full =
        report("one drift check of a converged environment, full tier (every 6th interval)", &by_operation(&t, &one));
    assert!(full <= 96, "{full} reads in a full-tier drift check of one environment (bar 96)");
    process = restart(&t, process, "bench-2", &[&age], &one).await;

    // The other 49 at once.
    let started = Instant::now();
    join_all((2..=ENVIRONMENTS).map(|i| {
        let api = api.clone();
        let env = environment(&t, i);
        async move { api.create(&Default::default(), &env).await.unwrap() }
    }))
    .await;
    join_all((2..=ENVIRONMENTS).map(|i| {
        let t = &t;
        async move { wait_ready(t, &format!("env-{i}")).await }
    }))
    .await;
    let rest = started.elapsed();
    settle(&t, &all).await;
    let (rss, peak) = process.memory_kib();
    let (anon, file) = process.memory_split_kib();

    // A drift check of all of them at once, at each depth (at the security tier, the first
    // after converging and the next one).
    let mut security = 0.0;
    for tier in ["security tier, the first after converging", "security tier"] {
        tokio::time::sleep(ACCOUNT_READ_AGE).await;
        clear(&t, &all);
        let checking = Instant::now();
        for i in 1..=ENVIRONMENTS {
            t.poke(&api, &format!("env-{i}")).await;
        }
        settle(&t, &all).await;
        security = per_environment(tier, &t, &all, checking.elapsed());
    }
    let checking = Instant::now();
    let _process = restart(&t, process, "bench-full-50", &["--full-check-every=1", &age], &all).await;
    let full = per_environment("full tier", &t, &all, checking.elapsed());

    println!("\ntime to converge one environment alone: {:.1} s", first.as_secs_f64());
    println!("time to converge {} more at once: {:.1} s", ENVIRONMENTS - 1, rest.as_secs_f64());
    println!(
        "controller memory with {ENVIRONMENTS} environments converged: RSS {} MiB, peak {} MiB",
        rss / 1024,
        peak / 1024
    );
    println!(
        "  of the RSS: anonymous (heap, stacks) {} MiB, file-backed (binary, libraries) {} MiB",
        anon / 1024,
        file / 1024
    );
    println!(
        "reads per environment per drift check with {ENVIRONMENTS}: security tier {security:.1}, full tier {full:.1}"
    );
    assert!(rss < 96 * 1024, "RSS {} MiB is over the 96 MiB bar", rss / 1024);
    assert!(security <= 30.0, "{security:.1} reads per environment per security-tier drift check (bar 30)");
    assert!(full < 80.0, "{full:.1} reads per environment per full-tier drift check (bar 80)");
}

/// Waits until `accounts` saw no call for two seconds.
async fn settle(t: &TestEnv, accounts: &[u32]) {
    settle_for(t, accounts, Duration::from_secs(2)).await;
}

/// Waits until `accounts` saw no call for `quiet`.
pub(crate) async fn settle_for(t: &TestEnv, accounts: &[u32], quiet: Duration) {
    let count = || accounts.iter().map(|n| t.emulator.calls(&t.account(*n)).len()).sum::<usize>();
    let mut last = count();
    loop {
        tokio::time::sleep(quiet).await;
        let now = count();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Stops the controller and starts another with `args`, lets its first passes (which read
/// everything: it has no record of earlier checks) go by, then pokes every environment once:
/// returns it once those drift checks are over, with the call log of `accounts` holding only
/// what they did.
async fn restart(
    t: &TestEnv,
    process: sagekeeper_tests::process::Process,
    identity: &str,
    args: &[&str],
    accounts: &[u32],
) -> sagekeeper_tests::process::Process {
    process.kill().await;
    let api = t.api::<DataScienceEnvironment>();
    let names: Vec<String> = api.list(&Default::default()).await.unwrap().items.iter().map(|e| e.name_any()).collect();
    let process = t.spawn_sagekeeper(identity, &[&["--leader-elect=false"], args].concat());
    let deadline = Instant::now() + Duration::from_secs(600);
    while process.get("/metrics").is_none()
        || process.metric("sagekeeper_reconciles_total{kind=\"DataScienceEnvironment\"}") < names.len() as f64
    {
        assert!(Instant::now() < deadline, "the restarted controller did not look at every environment");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    settle(t, accounts).await;
    tokio::time::sleep(ACCOUNT_READ_AGE).await;
    clear(t, accounts);
    for name in &names {
        t.poke(&api, name).await;
    }
    settle(t, accounts).await;
    process
}

/// Prints the reads of one drift check of every environment (one that took `took`) by service
/// and returns the reads per environment.
fn per_environment(tier: &str, t: &TestEnv, accounts: &[u32], took: Duration) -> f64 {
    let mut by_service = BTreeMap::<String, usize>::new();
    let mut writes = 0;
    for n in accounts {
        for call in t.emulator.calls(&t.account(*n)) {
            if is_read(&call.operation) {
                *by_service.entry(call.service).or_default() += 1;
            } else {
                writes += 1;
            }
        }
    }
    let reads: usize = by_service.values().sum();
    let per = reads as f64 / f64::from(ENVIRONMENTS);
    println!(
        "\none drift check of {ENVIRONMENTS} environments sharing 2 target accounts, {tier}: {reads} reads ({per:.1} per environment), {writes} writes"
    );
    for (service, n) in &by_service {
        println!("  {service:<36} {n} ({:.1} per environment)", *n as f64 / f64::from(ENVIRONMENTS));
    }
    // What the accounts every environment shares cost: a listing per account, not per environment.
    let mut shared = BTreeMap::<String, usize>::new();
    for n in [STAGING, PRODUCTION] {
        for call in t.emulator.calls(&t.account(n)).into_iter().filter(|c| is_read(&c.operation)) {
            *shared.entry(call.service).or_default() += 1;
        }
    }
    println!("  of them in the 2 target accounts all {ENVIRONMENTS} share: {shared:?}");
    assert_eq!(writes, 0, "a drift check of converged environments wrote");
    // One listing per account (eight EC2 calls for the networks and one for the flow logs; a
    // GetAccountAuthorizationDetails of a page or two for 50 roles) per read age the 50 checks
    // took, whatever the number of environments. The full tier's VPC attributes are read per
    // VPC (AWS has no batch read for them), and a full-tier pass reads the flow log listing
    // afresh to decide on it.
    let listings = 1 + (took.as_secs() / ACCOUNT_READ_AGE.as_secs()) as usize;
    println!("  the check took {:.0} s: {listings} listings per shared account at most", took.as_secs_f64());
    for service in ["ec2", "iam"] {
        let bar = match (service, tier.starts_with("full")) {
            ("ec2", false) => 2 * 9 * listings,
            ("ec2", true) => 2 * 9 * listings + 2 * 3 * ENVIRONMENTS as usize,
            _ => 2 * 2 * listings,
        };
        let made = shared.get(service).copied().unwrap_or(0);
        assert!(made <= bar, "{made} {service} reads in the shared accounts for {ENVIRONMENTS} environments");
    }
    per
}

pub(crate) fn clear(t: &TestEnv, accounts: &[u32]) {
    for n in accounts {
        t.emulator.clear_calls(&t.account(*n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with make bench"]
async fn bench_project() {
    let t = TestEnv::new("bench-project").await;
    let poll = 5;
    let process =
        t.spawn_sagekeeper("bench-project", &["--leader-elect=false", &format!("--poll-interval-seconds={poll}")]);
    let accounts = [1, STAGING, PRODUCTION];
    account(&t, "staging", STAGING).await;
    account(&t, "prod", PRODUCTION).await;
    account(&t, "dev-1", 1).await;
    t.api::<DataScienceEnvironment>().create(&Default::default(), &environment(&t, 1)).await.unwrap();
    wait_ready(&t, "env-1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // One project from nothing, with its first run, and the environment granting its group.
    clear(&t, &accounts);
    let projects = t.api::<MLOpsProject>();
    let project: MLOpsProject = t.manifest(
        "apiVersion: sagekeeper.io/v1alpha1\nkind: MLOpsProject\nmetadata: {name: churn}\nspec: {environment: env-1}\n",
        true,
    );
    let started = Instant::now();
    projects.create(&Default::default(), &project).await.unwrap();
    t.wait_condition_for(&projects, "churn", "Ready", "True", None, Duration::from_secs(300)).await;
    let ready_in = started.elapsed();
    report(
        "converge one project to Ready (its first run started; the environment's grant included)",
        &by_operation(&t, &accounts),
    );
    t.wait_condition_for(&projects, "churn", "LastRunSucceeded", "True", None, Duration::from_secs(300)).await;
    println!("\ntime to converge one project: {:.1} s", ready_in.as_secs_f64());

    // A full check of the converged project (what the drift timer does): a spec change that
    // changes nothing in AWS forces one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    clear(&t, &accounts);
    let patch = serde_json::json!({"spec": {"deletionPolicy": "Retain"}});
    projects.patch("churn", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    report("one full (drift) check of a converged project", &by_operation(&t, &accounts));

    // Registry polls with a pending version registered (the most a poll reads: the newest
    // versions, then the newest approved one).
    let p = projects.get("churn").await.unwrap();
    let group = p.status.unwrap().model_package_group_name.unwrap();
    let sm = t.clients(&t.account(1)).await.sagemaker;
    register(&sm, &group, ModelApprovalStatus::PendingManualApproval).await;
    tokio::time::sleep(Duration::from_secs(poll + 1)).await;
    clear(&t, &accounts);
    let reconciles = || process.metric("sagekeeper_reconciles_total{kind=\"MLOpsProject\"}");
    let before = reconciles();
    tokio::time::sleep(Duration::from_secs(6 * poll)).await;
    let polls = reconciles() - before;
    let counts = by_operation(&t, &accounts);
    let calls: usize = counts.values().sum();
    report(&format!("{polls} registry polls ({poll} s apart)"), &counts);
    assert!(polls >= 4.0, "only {polls} polls in {} s", 6 * poll);
    println!("calls per registry poll: {:.1}", calls as f64 / polls);

    // A deployment: staging follows the newest approved version, production waits for a person.
    let transition = 3;
    for n in [STAGING, PRODUCTION] {
        t.emulator.configure(serde_json::json!({"account": t.account(n),
            "endpointCreatingSeconds": transition, "endpointUpdatingSeconds": transition}));
    }
    let deployments = t.api::<ModelDeployment>();
    let deployment: ModelDeployment = t.manifest(
        "apiVersion: sagekeeper.io/v1alpha1\nkind: ModelDeployment\nmetadata: {name: churn}\nspec:\n  project: churn\n  stages:\n  - {name: staging, instanceType: ml.m5.large}\n  - {name: production, instanceType: ml.m5.large, approval: Manual}\n",
        true,
    );
    deployments.create(&Default::default(), &deployment).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("\nendpoint transitions in the emulator: Creating and Updating last {transition} s");
    let serving = |stage: &'static str, version: i64| {
        let deployments = deployments.clone();
        async move {
            sagekeeper_tests::eventually(Duration::from_secs(120), "the stage serving", || async {
                let d = deployments.get("churn").await.unwrap();
                let s = d.status?.stages.into_iter().find(|s| s.name == stage)?;
                (s.serving_version == Some(version) && s.phase != StagePhase::Deploying).then_some(())
            })
            .await
        }
    };
    let approve = |version: i64| {
        let sm = sm.clone();
        let group = group.clone();
        let account = t.account(1);
        async move {
            let arn = format!("arn:aws:sagemaker:us-east-1:{account}:model-package/{group}/{version}");
            sm.update_model_package()
                .model_package_arn(arn)
                .model_approval_status(sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus::Approved)
                .send()
                .await
                .unwrap();
        }
    };
    clear(&t, &accounts);
    let started = Instant::now();
    approve(1).await;
    serving("staging", 1).await;
    let to_staging = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    report(
        "v1 approved until staging serves it (a new endpoint; project polls included)",
        &by_operation(&t, &accounts),
    );
    println!("time from approval to Serving in staging: {:.1} s", to_staging.as_secs_f64());

    clear(&t, &accounts);
    let started = Instant::now();
    let patch = serde_json::json!({"spec": {"stages": [{"name": "staging", "instanceType": "ml.m5.large"},
        {"name": "production", "instanceType": "ml.m5.large", "approval": "Manual", "approvedVersion": "1"}]}});
    deployments.patch("churn", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    serving("production", 1).await;
    let to_production = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    report("approvedVersion set until production serves v1", &by_operation(&t, &accounts));
    println!("time from approvedVersion to Serving in production: {:.1} s", to_production.as_secs_f64());

    let v2 = register(&sm, &group, ModelApprovalStatus::PendingManualApproval).await;
    tokio::time::sleep(Duration::from_secs(poll + 1)).await;
    clear(&t, &accounts);
    let started = Instant::now();
    approve(v2).await;
    serving("staging", v2).await;
    let moved = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    report(
        "v2 approved until staging serves it (UpdateEndpoint, old model and config removed)",
        &by_operation(&t, &accounts),
    );
    println!("time from approval to Serving through UpdateEndpoint: {:.1} s", moved.as_secs_f64());

    // A check of the converged deployment (what the drift timer does).
    tokio::time::sleep(Duration::from_secs(2)).await;
    clear(&t, &accounts);
    t.poke(&deployments, "churn").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let check = by_operation(&t, &accounts);
    report("one check of a converged deployment (2 stages, 1 account each)", &check);

    let longest = process.metric("sagekeeper_reconcile_duration_max_seconds{kind=\"ModelDeployment\"}");
    println!("longest ModelDeployment reconcile: {:.3} s", longest);
    for kind in ["DataScienceEnvironment", "MLOpsProject"] {
        let longest = process.metric(&format!("sagekeeper_reconcile_duration_max_seconds{{kind=\"{kind}\"}}"));
        println!("longest {kind} reconcile: {longest:.3} s");
    }
}

/// What takes time in AWS, in AWS's own seconds (typical figures; the bench scales them all by
/// [`SCALE`]): an interface VPC endpoint's `pending`, a Studio domain's `Pending`, IAM making a
/// new role usable in other policies, and the round trip of one API call.
const AWS_ENDPOINT_PENDING: f64 = 120.0;
const AWS_DOMAIN_PENDING: f64 = 300.0;
const AWS_IAM_PROPAGATION: f64 = 10.0;
const AWS_CALL_LATENCY: f64 = 0.05;
/// The controller's default wait before looking at a pending object again (`--pending-interval-seconds`).
const PENDING_INTERVAL: f64 = 10.0;
/// One factor for AWS's durations and the controller's own intervals: large enough that the
/// environment's critical path stays over two minutes, so waits, not the emulator's serial
/// call time, decide the ratio.
const SCALE: f64 = 0.5;

/// One step of an environment's work as its data requires: what it waits for once it starts,
/// and the steps whose outputs it needs.
struct PathStep {
    name: &'static str,
    wait: f64,
    needs: &'static [&'static str],
}

/// The environment's steps by data dependency (dev + target accounts alike): endpoint ids exist
/// as soon as they are created, so key and bucket policies need the roles, not the endpoints'
/// availability; the domain needs the network, the execution role and the studio key (whose
/// policy names dev roles only); user profiles need the domain.
const ENVIRONMENT_PATH: &[PathStep] = &[
    PathStep { name: "network", wait: 0.0, needs: &[] },
    PathStep { name: "interface endpoints available", wait: AWS_ENDPOINT_PENDING, needs: &["network"] },
    PathStep { name: "roles usable", wait: AWS_IAM_PROPAGATION, needs: &[] },
    PathStep { name: "key policies", wait: 0.0, needs: &["roles usable", "network"] },
    PathStep { name: "buckets", wait: 0.0, needs: &["key policies"] },
    PathStep { name: "studio domain InService", wait: AWS_DOMAIN_PENDING, needs: &["network", "roles usable"] },
    PathStep { name: "user profiles", wait: 0.0, needs: &["studio domain InService"] },
];

/// The longest chain of waits through `steps` (in AWS seconds) and the steps on it.
fn critical_path(steps: &[PathStep]) -> (f64, Vec<&'static str>) {
    fn finish(steps: &[PathStep], name: &str) -> (f64, Vec<&'static str>) {
        let step = steps.iter().find(|s| s.name == name).expect("a declared step");
        let (before, mut path) =
            step.needs.iter().map(|n| finish(steps, n)).max_by(|a, b| a.0.total_cmp(&b.0)).unwrap_or((0.0, Vec::new()));
        path.push(step.name);
        (before + step.wait, path)
    }
    steps.iter().map(|s| finish(steps, s.name)).max_by(|a, b| a.0.total_cmp(&b.0)).unwrap_or_default()
}

#[test]
fn the_environments_critical_path_is_its_domain_after_its_roles() {
    let (seconds, path) = critical_path(ENVIRONMENT_PATH);
    assert_eq!(seconds, AWS_IAM_PROPAGATION + AWS_DOMAIN_PENDING);
    assert_eq!(path, ["roles usable", "studio domain InService", "user profiles"]);
    assert!(seconds * SCALE >= 120.0, "the scaled critical path must stay over two minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with make bench"]
async fn bench_environment_critical_path() {
    let t = TestEnv::new("bench-path").await;
    let pending = ((PENDING_INTERVAL * SCALE).round() as u64).max(1);
    let process =
        t.spawn_sagekeeper("bench-path", &["--leader-elect=false", &format!("--pending-interval-seconds={pending}")]);
    let accounts = [1, STAGING, PRODUCTION];
    for n in accounts {
        t.emulator.configure(serde_json::json!({"account": t.account(n),
            "vpcEndpointPendingSeconds": AWS_ENDPOINT_PENDING * SCALE,
            "domainPendingSeconds": AWS_DOMAIN_PENDING * SCALE,
            "iamPropagationSeconds": AWS_IAM_PROPAGATION * SCALE,
            "callLatencySeconds": AWS_CALL_LATENCY * SCALE}));
    }
    account(&t, "staging", STAGING).await;
    account(&t, "prod", PRODUCTION).await;
    account(&t, "dev-1", 1).await;
    // The clock measures the environment, not the accounts it builds on: they are Ready first.
    for name in ["staging", "prod", "dev-1"] {
        t.wait_condition_for(&t.accounts(), &t.name(name), "Ready", "True", None, Duration::from_secs(60)).await;
    }
    clear(&t, &accounts);
    let api = t.api::<DataScienceEnvironment>();
    let started = Instant::now();
    api.create(&Default::default(), &environment(&t, 1)).await.unwrap();
    // When each component's condition first turned True: where the time went.
    let mut milestones: Vec<(String, f64)> = Vec::new();
    loop {
        let env = api.get("env-1").await.unwrap();
        for c in env.status.iter().flat_map(|s| &s.conditions) {
            if c.status == "True" && c.type_.ends_with("Ready") && !milestones.iter().any(|(t, _)| *t == c.type_) {
                milestones.push((c.type_.clone(), started.elapsed().as_secs_f64()));
            }
        }
        let domain = env.status.as_ref().and_then(|s| s.studio.as_ref()).and_then(|s| s.domain_id.as_ref());
        if domain.is_some() && !milestones.iter().any(|(t, _)| t == "domain created") {
            milestones.push(("domain created".into(), started.elapsed().as_secs_f64()));
        }
        if milestones.iter().any(|(t, _)| t == "Ready") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "not Ready in 30 minutes");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let converged = started.elapsed().as_secs_f64();
    let (path, steps) = critical_path(ENVIRONMENT_PATH);
    let path = path * SCALE;
    println!(
        "\nAWS durations scaled by {SCALE}: interface endpoints pending {:.0} s, domain pending {:.0} s, \
         IAM propagation {:.0} s, {:.0} ms per call; pending interval {pending} s",
        AWS_ENDPOINT_PENDING * SCALE,
        AWS_DOMAIN_PENDING * SCALE,
        AWS_IAM_PROPAGATION * SCALE,
        AWS_CALL_LATENCY * SCALE * 1000.0
    );
    println!("environment critical path: {path:.1} s ({})", steps.join(" -> "));
    let firsts: Vec<String> = milestones.iter().map(|(t, at)| format!("{t} {at:.1} s")).collect();
    println!("conditions first True at: {}", firsts.join(", "));
    println!("environment converged in {converged:.1} s: {:.2}x its critical path", converged / path);
    report("calls to converge it", &by_operation(&t, &accounts));
    drop(process);
}

/// Deployments serving in the one staging account for the endpoint-watch bench.
const SERVING: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with make bench"]
async fn bench_endpoint_watch() {
    let t = TestEnv::new("bench-endpoints").await;
    // The shipped intervals: endpoints listed every 30 s, registry polled every 60 s.
    let process = t.spawn_sagekeeper("bench-endpoints", &["--leader-elect=false"]);
    let accounts = [1, STAGING, PRODUCTION];
    account(&t, "staging", STAGING).await;
    account(&t, "prod", PRODUCTION).await;
    account(&t, "dev-1", 1).await;
    t.emulator.configure(serde_json::json!({"account": t.account(STAGING), "endpointCreatingSeconds": 1}));
    t.api::<DataScienceEnvironment>().create(&Default::default(), &environment(&t, 1)).await.unwrap();
    wait_ready(&t, "env-1").await;
    let projects = t.api::<MLOpsProject>();
    let project: MLOpsProject = t.manifest(
        "apiVersion: sagekeeper.io/v1alpha1\nkind: MLOpsProject\nmetadata: {name: churn}\nspec: {environment: env-1}\n",
        true,
    );
    projects.create(&Default::default(), &project).await.unwrap();
    let p = t.wait_condition_for(&projects, "churn", "Ready", "True", None, Duration::from_secs(300)).await;
    let group = p.status.unwrap().model_package_group_name.unwrap();
    let sm = t.clients(&t.account(1)).await.sagemaker;
    register(&sm, &group, ModelApprovalStatus::Approved).await;
    let deployments = t.api::<ModelDeployment>();
    for i in 1..=SERVING {
        let deployment: ModelDeployment = t.manifest(
            &format!("apiVersion: sagekeeper.io/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: d-{i}}}\nspec:\n  project: churn\n  stages:\n  - {{name: staging, instanceType: ml.m5.large}}\n"),
            true,
        );
        deployments.create(&Default::default(), &deployment).await.unwrap();
    }
    let endpoint = |d: &ModelDeployment| {
        let stage = d.status.as_ref()?.stages.iter().find(|s| s.name == "staging")?;
        (stage.serving_version == Some(1) && stage.phase == StagePhase::Serving)
            .then(|| stage.accounts.first().and_then(|a| a.endpoint_name.clone()))?
    };
    let mut names = Vec::new();
    for i in 1..=SERVING {
        let name = format!("d-{i}");
        let d = sagekeeper_tests::eventually(Duration::from_secs(300), "a deployment serving", || async {
            endpoint(&deployments.get(&name).await.unwrap())
        })
        .await;
        names.push(d);
    }
    settle(&t, &accounts).await;

    // Steady state: nothing changes for three minutes.
    clear(&t, &accounts);
    let window = Duration::from_secs(180);
    tokio::time::sleep(window).await;
    let minutes = window.as_secs_f64() / 60.0;
    let staging: BTreeMap<String, usize> = by_operation(&t, &[STAGING]);
    report(
        &format!("{SERVING} serving endpoints in one account, {minutes:.0} minutes of steady state, staging account"),
        &staging,
    );
    let total: usize = staging.values().sum();
    println!("calls per minute to watch {SERVING} endpoints in one account: {:.1}", total as f64 / minutes);
    report("the same minutes, dev account (the project's registry polls)", &by_operation(&t, &[1]));

    // An endpoint deleted behind sagekeeper's back: noticed (re-created) within the watch interval.
    let staging_sm = t.clients(&t.account(STAGING)).await.sagemaker;
    clear(&t, &accounts);
    let started = Instant::now();
    staging_sm.delete_endpoint().endpoint_name(&names[0]).send().await.unwrap();
    sagekeeper_tests::eventually(Duration::from_secs(120), "the endpoint re-created", || async {
        t.emulator.calls(&t.account(STAGING)).iter().any(|c| c.operation == "CreateEndpoint").then_some(())
    })
    .await;
    println!("endpoint deleted behind its back, re-created after {:.1} s", started.elapsed().as_secs_f64());
    drop(process);
}

/// Registers a version in the group with `status`, as a pipeline run would; returns its number.
async fn register(sm: &sagekeeper_aws::sdk::sagemaker::Client, group: &str, status: ModelApprovalStatus) -> i64 {
    let out = sm.create_model_package().model_package_group_name(group).model_approval_status(status).send().await;
    out.unwrap().model_package_arn().unwrap().rsplit('/').next().unwrap().parse().unwrap()
}
