//! The binary as a process: leader election (a standby stays passive and takes over when the
//! leader dies), health, readiness and metrics.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use sagekeeper_api::AwsAccount;
use sagekeeper_tests::{TestEnv, eventually};
use serde_json::json;

const LEASE_SECONDS: u64 = 4;

async fn holder(t: &TestEnv) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(t.client.clone(), &t.namespace);
    leases.get_opt("sagekeeper-leader").await.ok()??.spec?.holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_stays_passive_and_takes_over_within_the_lease_duration() {
    let t = TestEnv::new("leader-election").await;
    let lease = format!("--lease-duration-seconds={LEASE_SECONDS}");
    let first = t.spawn_sagekeeper("first", &[&lease]);
    eventually(Duration::from_secs(30), "first to lead", || async {
        (holder(&t).await.as_deref() == Some("first")).then_some(())
    })
    .await;
    let second = t.spawn_sagekeeper("second", &[&lease]);
    eventually(Duration::from_secs(30), "second to serve /readyz as standby", || async {
        second.get("/readyz").filter(|(code, body)| *code == 200 && body.contains("standby"))
    })
    .await;

    // Work arrives: the leader does it, the standby neither reconciles nor writes.
    let role = t.create_role(&t.account(1), "sagekeeper-deployer", None).await;
    let obj: AwsAccount = t.manifest(
        &format!(
            "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {}}}\nspec:\n  accountId: '{}'\n  roleArn: {role}\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: '{{ns}}'}}}}\n",
            t.name("home"),
            t.account(1)
        ),
        false,
    );
    t.accounts().create(&Default::default(), &obj).await.unwrap();
    let ready = t.wait_condition(&t.accounts(), &t.name("home"), "Ready", "True", None).await;
    assert!(first.metric("sagekeeper_reconciles_total{kind=\"AwsAccount\"}") >= 1.0);
    let (code, body) = first.get("/readyz").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("leader"), "{body}");
    assert!(first.metric("sagekeeper_aws_calls_total{operation=\"GetCallerIdentity\"") >= 1.0);
    // The standby saw the same object appear and change, and did nothing about it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = t.accounts().get(&t.name("home")).await.unwrap();
    assert_eq!(now.metadata.resource_version, ready.metadata.resource_version, "someone wrote to the account");
    assert_eq!(second.metric("sagekeeper_reconciles_total"), 0.0, "the standby reconciled");
    assert_eq!(second.metric("sagekeeper_aws_calls_total"), 0.0, "the standby called AWS");
    assert_eq!(second.metric("sagekeeper_leader"), 0.0);

    // The leader dies without releasing the lease; the standby takes over once it expires.
    let killed = Instant::now();
    first.kill().await;
    eventually(Duration::from_secs(LEASE_SECONDS * 4), "second to take the lease", || async {
        (holder(&t).await.as_deref() == Some("second")).then_some(())
    })
    .await;
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(LEASE_SECONDS + 3), "take-over took {took:?}");

    // And it reconciles: a spec change converges under the new leader.
    let patch = json!({"spec": {"regions": ["us-east-1"]}});
    t.accounts().patch(&t.name("home"), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    t.wait_condition(&t.accounts(), &t.name("home"), "Ready", "True", None).await;
    eventually(Duration::from_secs(10), "second to report its reconciles", || async {
        (second.metric("sagekeeper_reconciles_total{kind=\"AwsAccount\"}") >= 1.0).then_some(())
    })
    .await;
    assert_eq!(second.metric("sagekeeper_leader"), 1.0, "{}", second.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_and_readyz_waits_for_synced_watches() {
    let t = TestEnv::new("health").await;
    let process = t.spawn_sagekeeper("solo", &["--leader-elect=false"]);
    let (code, body) = eventually(Duration::from_secs(30), "/healthz", || async { process.get("/healthz") }).await;
    assert_eq!((code, body.as_str()), (200, "ok"));
    let (_, body) = eventually(Duration::from_secs(30), "/readyz to be ready", || async {
        process.get("/readyz").filter(|(code, _)| *code == 200)
    })
    .await;
    assert!(body.contains("watches synced"), "{body}");
    let (code, metrics) = process.get("/metrics").unwrap();
    assert_eq!(code, 200);
    for name in [
        "sagekeeper_leader 1",
        "sagekeeper_reconciles_total{kind=\"DataScienceEnvironment\"} 0",
        "sagekeeper_reconcile_duration_seconds_bucket{kind=\"ModelDeployment\",le=\"0.1\"} 0",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_lease_namespace_is_said_once_and_readyz_reports_it_until_it_exists() {
    use k8s_openapi::api::core::v1::Namespace;
    let t = TestEnv::new("lease-namespace").await;
    let missing = format!("{}-lease", t.namespace);
    let process = t.spawn_sagekeeper("lonely", &[&format!("--lease-namespace={missing}")]);
    let body = eventually(Duration::from_secs(30), "/readyz to report the missing namespace", || async {
        process.get("/readyz").filter(|(code, body)| *code == 503 && body.contains("does not exist")).map(|(_, b)| b)
    })
    .await;
    for part in [missing.as_str(), "kubectl create namespace", "--lease-namespace=", "--leader-elect=false"] {
        assert!(body.contains(part), "/readyz should name {part:?}: {body}");
    }
    // Said once, not every retry.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = std::fs::read_to_string(&process.log).unwrap();
    assert_eq!(log.matches("does not exist").count(), 1, "{log}");

    // Once the namespace exists, the replica goes on to compete for the lease, ready as a standby.
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": missing}})).unwrap();
    namespaces.create(&Default::default(), &ns).await.unwrap();
    eventually(Duration::from_secs(30), "/readyz to turn ready once the namespace exists", || async {
        process.get("/readyz").filter(|(code, _)| *code == 200)
    })
    .await;
    namespaces.delete(&missing, &Default::default()).await.unwrap();
}

#[test]
fn version_names_the_release_and_the_git_revision_it_was_built_from() {
    let root = sagekeeper_tests::stack::repo_root();
    let git = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(&root).output();
    let revision = String::from_utf8(git.unwrap().stdout).unwrap().trim().to_owned();
    let out = std::process::Command::new(sagekeeper_tests::process::binary()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.trim(), format!("sagekeeper {} ({revision})", env!("CARGO_PKG_VERSION")));
}
