//! What operators chart and alert on: the alert rules pass `promtool check rules` and fire (or
//! stay quiet) on the series `deploy/prometheus/alerts.test.yaml` gives them, and every metric the
//! Grafana dashboard and the alerts name is exported by a running controller.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use sagekeeper_api::AwsAccount;
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::stack::{repo_root, stack};

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new(stack().bin.join("promtool"))
        .args(args)
        .current_dir(repo_root().join("deploy/prometheus"))
        .output()
        .unwrap()
}

#[test]
fn the_alert_rules_pass_promtool_and_fire_only_on_the_series_that_should_fire_them() {
    for args in [&["check", "rules", "alerts.yaml"][..], &["test", "rules", "alerts.test.yaml"]] {
        let out = promtool(args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {args:?}: {text}");
    }
    // Every alert has a test case.
    let rules = std::fs::read_to_string(repo_root().join("deploy/prometheus/alerts.yaml")).unwrap();
    let tests = std::fs::read_to_string(repo_root().join("deploy/prometheus/alerts.test.yaml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(tests.contains(&format!("alertname: {alert}")), "no promtool test for {alert}");
    }
}

/// Metric names in PromQL expressions (histogram series named by their family).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("sagekeeper_") {
        let name: String = text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let family =
            ["_bucket", "_sum", "_count"].iter().fold(name.clone(), |n, s| n.strip_suffix(s).unwrap_or(&n).to_owned());
        names.insert(family);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alerts_name_is_exported_by_a_running_controller() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("deploy/grafana/sagekeeper.json")).unwrap())
            .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_owned()))
        .collect();
    let alerts = std::fs::read_to_string(repo_root().join("deploy/prometheus/alerts.yaml")).unwrap();
    let named: BTreeSet<String> = metric_names(&exprs.join("\n")).into_iter().chain(metric_names(&alerts)).collect();
    assert!(named.len() >= 6, "{named:?}");

    // A controller with one account that converges and one whose role cannot be assumed.
    let t = TestEnv::new("operate-metrics").await;
    t.expect_denied("sts:AssumeRole");
    let controller = t.spawn_sagekeeper("metrics", &[]);
    let role = t.create_role(&t.account(1), "sagekeeper-deployer", None).await;
    let missing = format!("arn:aws:iam::{}:role/not-there", t.account(2));
    for (name, account, role) in [("good", t.account(1), role), ("bad", t.account(2), missing)] {
        let obj: AwsAccount = t.manifest(
            &format!(
                "apiVersion: sagekeeper.io/v1alpha1\nkind: AwsAccount\nmetadata: {{name: {}}}\nspec:\n  accountId: '{account}'\n  roleArn: {role}\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: '{{ns}}'}}}}\n",
                t.name(name),
            ),
            false,
        );
        t.accounts().create(&Default::default(), &obj).await.unwrap();
    }
    t.wait_condition(&t.accounts(), &t.name("good"), "Ready", "True", None).await;
    t.wait_condition(&t.accounts(), &t.name("bad"), "Stalled", "True", None).await;
    let scrape = || {
        let body = controller.get("/metrics").map(|(_, b)| b).unwrap_or_default();
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(|n| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .fold(n.to_owned(), |n, s| n.strip_suffix(s).unwrap_or(&n).to_owned())
            })
            .collect::<BTreeSet<String>>()
    };
    let start = std::time::Instant::now();
    let mut exported = scrape();
    while !named.is_subset(&exported) && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        exported = scrape();
    }
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(missing.is_empty(), "named by the dashboard or the alerts but not exported: {missing:?}");
}
