//! The Helm chart (`deploy/helm/sagekeeper`), checked with the real `helm` (built from its Go
//! module) and the test API server: it lints, the plain manifests are the chart rendered with
//! its defaults, its CRDs are the generated ones, and both renderings (defaults, and every
//! optional part on) are admitted by the API server in a server-side dry run. Every other
//! cluster test runs the controller as the ServiceAccount that rendering binds.

use std::path::PathBuf;
use std::process::{Command, Output};

use sagekeeper_tests::stack::{repo_root, stack};

fn chart() -> PathBuf {
    repo_root().join("deploy/helm/sagekeeper")
}

fn helm(args: &[&str]) -> Output {
    let s = stack();
    Command::new(s.bin.join("helm"))
        .args(args)
        .env("HELM_CACHE_HOME", s.dir.join("helm/cache"))
        .env("HELM_CONFIG_HOME", s.dir.join("helm/config"))
        .env("HELM_DATA_HOME", s.dir.join("helm/data"))
        .env("KUBECONFIG", &s.kubeconfig)
        .output()
        .expect("run helm")
}

fn ok(out: Output, what: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    text
}

/// Every optional part on.
const ALL_ON: &[&str] = &[
    "--set",
    "podDisruptionBudget.enabled=true,serviceMonitor.enabled=true,prometheusRule.enabled=true",
    "--set",
    "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/sagekeeper-controller",
];

fn render(release: &str, extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", release, chart.to_str().unwrap(), "--namespace", "sagekeeper-system"];
    args.extend_from_slice(extra);
    ok(helm(&args), &format!("helm template {extra:?}"))
}

/// (kind, name) of every object of a rendering.
fn objects(rendered: &str) -> Vec<(String, String)> {
    serde_yaml::Deserializer::from_str(rendered)
        .filter_map(|doc| <serde_yaml::Value as serde::Deserialize>::deserialize(doc).ok())
        .filter(|v| v["kind"].is_string())
        .map(|v| (v["kind"].as_str().unwrap().to_owned(), v["metadata"]["name"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn helm_lint_passes_with_defaults_and_with_every_optional_part_on() {
    let chart = chart();
    let path = chart.to_str().unwrap();
    ok(helm(&["lint", "--strict", path]), "helm lint");
    let mut args = vec!["lint", "--strict", path];
    args.extend_from_slice(ALL_ON);
    ok(helm(&args), "helm lint (all on)");
}

#[test]
fn the_plain_manifests_are_the_chart_rendered_and_its_crds_are_the_generated_ones() {
    let shipped = std::fs::read_to_string(repo_root().join("deploy/kubernetes/sagekeeper.yaml")).unwrap();
    let rendered = render("sagekeeper", &[]);
    let body: String = shipped.lines().skip_while(|l| l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    assert!(body == rendered, "deploy/kubernetes/sagekeeper.yaml is stale: run `make manifests`");
    for entry in std::fs::read_dir(repo_root().join("crds")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let in_chart = std::fs::read_to_string(chart().join("crds").join(name))
            .unwrap_or_else(|_| panic!("the chart lacks {name:?}: run `make manifests`"));
        assert!(in_chart == std::fs::read_to_string(&path).unwrap(), "chart CRD {name:?} is stale: `make manifests`");
    }
    let alerts = std::fs::read_to_string(chart().join("files/alerts.yaml")).unwrap();
    let shipped_alerts = std::fs::read_to_string(repo_root().join("deploy/prometheus/alerts.yaml")).unwrap();
    assert!(alerts == shipped_alerts, "deploy/prometheus/alerts.yaml is stale: run `make manifests`");
    // In the chart's crds/ folder, which Helm installs but never upgrades or deletes: uninstalling
    // the chart must not delete every object of a kind (and start tearing down AWS).
    assert!(objects(&rendered).iter().all(|(kind, _)| kind != "CustomResourceDefinition"));
}

#[test]
fn both_renderings_are_admitted_by_the_api_server_in_a_server_side_dry_run() {
    let s = stack();
    let crds = repo_root().join("tests/stack/prometheus-operator");
    ok(s.kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]), "installing the Prometheus CRDs");
    ok(
        s.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
            "--timeout=60s",
        ]),
        "Prometheus CRDs established",
    );
    // Established comes before the API server's discovery lists the new resources; a loaded
    // machine showed the gap (kubectl then cannot map the kinds), so wait for discovery too.
    let start = std::time::Instant::now();
    loop {
        let listed =
            ok(s.kubectl(&["api-resources", "--api-group=monitoring.coreos.com", "-o", "name"]), "api-resources");
        if listed.contains("servicemonitors.monitoring.coreos.com")
            && listed.contains("prometheusrules.monitoring.coreos.com")
        {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "discovery lacks the Prometheus kinds: {listed}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for extra in [&[][..], ALL_ON] {
        let rendered = render("sagekeeper", extra);
        let kinds: Vec<String> = objects(&rendered).into_iter().map(|(k, _)| k).collect();
        if extra == ALL_ON {
            for kind in ["PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"] {
                assert!(kinds.iter().any(|k| k == kind), "all-on rendering lacks a {kind}: {kinds:?}");
            }
        } else {
            assert!(kinds.iter().any(|k| k == "NetworkPolicy"), "the NetworkPolicy is on by default: {kinds:?}");
        }
        let out = s.kubectl_with_input(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=chart-test",
                "--force-conflicts",
                "-f",
                "-",
            ],
            Some(&rendered),
        );
        ok(out, &format!("server-side dry run of the rendering {extra:?}"));
    }
}

#[test]
fn a_second_release_for_a_shard_installs_no_cluster_wide_objects_twice() {
    let first = objects(&render("sagekeeper", &[]));
    let second = objects(&render(
        "sagekeeper-shard-b",
        &["--set", "clusterResources=false", "--set", "controller.watchLabelSelector=shard=b"],
    ));
    let cluster_wide = ["ClusterRole", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"];
    for (kind, name) in &second {
        assert!(!cluster_wide.contains(&kind.as_str()), "the second release renders {kind} {name} again");
        assert!(!first.contains(&(kind.clone(), name.clone())), "both releases render {kind} {name}");
    }
    // Its own ServiceAccount is bound to the shared ClusterRole, its own lease, its own shard.
    assert!(second.contains(&("ClusterRoleBinding".into(), "sagekeeper-shard-b".into())), "{second:?}");
    let rendered = render("sagekeeper-shard-b", &["--set", "controller.watchLabelSelector=shard=b"]);
    assert!(rendered.contains("--lease-name=sagekeeper-shard-b-leader"), "{rendered}");
    assert!(rendered.contains("--watch-label-selector=shard=b"), "{rendered}");
}

#[test]
fn the_argo_cd_application_syncs_the_examples_folder_without_automatic_pruning() {
    let text = std::fs::read_to_string(repo_root().join("deploy/argocd/examples-application.yaml")).unwrap();
    let app: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(app["kind"], "Application");
    let path = app["spec"]["source"]["path"].as_str().unwrap();
    let folder = repo_root().join(path);
    let manifests = std::fs::read_dir(&folder)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "yaml"));
    assert!(manifests.count() >= 4, "{path} holds the example manifests");
    assert_eq!(
        app["spec"]["syncPolicy"]["automated"]["prune"], false,
        "pruning deletes environments, and AWS with them"
    );
}
