//! `kubectl sagekeeper trace`: the binary on PATH as `kubectl-sagekeeper`, run by the stack's
//! kubectl as a plugin, on an environment Stalled in one target account, then on the same
//! environment converged with a project and a deployment, and as a team member who may read only
//! their own namespace.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sagekeeper_api::DataScienceEnvironment;
use sagekeeper_aws::sdk::sagemaker::types::ModelApprovalStatus;
use sagekeeper_tests::TestEnv;
use serde_json::{Value, json};

use crate::approval::{EDITOR, bind, wait_allowed};
use crate::deployments::{TWO_STAGES, create, is_ready, register, serving, set_approval, until};
use crate::projects::create_project;
use crate::references::{environment, ready_account};

/// A folder holding `kubectl-sagekeeper`, a link to the binary under test, as a user installs it.
fn plugin_dir(t: &TestEnv) -> PathBuf {
    let dir = t.stack().dir.join(format!("plugins-{}", t.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl-sagekeeper");
    std::fs::remove_file(&link).ok();
    std::os::unix::fs::symlink(sagekeeper_tests::process::binary(), &link).unwrap();
    dir
}

/// `kubectl sagekeeper trace ARGS` with `kubeconfig`: its stdout, or its stderr as the error.
fn trace(t: &TestEnv, plugins: &Path, kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let path = format!("{}:{}", plugins.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new(t.stack().bin.join("kubectl"))
        .args(["sagekeeper", "trace"])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .output()
        .expect("run kubectl");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    if out.status.success() { Ok(stdout) } else { Err(stderr) }
}

/// The nodes of a `-o json` tree, depth first.
fn nodes(tree: &Value) -> Vec<&Value> {
    let mut all = vec![tree];
    for child in tree["children"].as_array().into_iter().flatten() {
        all.extend(nodes(child));
    }
    all
}

fn node<'a>(tree: &'a Value, kind: &str, name: &str) -> &'a Value {
    nodes(tree)
        .into_iter()
        .find(|n| n["kind"] == kind && n["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {tree:#}"))
}

/// The table row whose NAME column is `kind/name` (after the tree's drawing).
fn row<'a>(table: &'a str, label: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.trim_start_matches(['│', '├', '└', '─', ' ']).split_whitespace().next() == Some(label))
        .unwrap_or_else(|| panic!("no row {label} in\n{table}"))
}

/// Every AWS id, name and ARN a status names (strings under the listed fields).
fn ids(status: &Value, fields: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    match status {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if fields.contains(&k.as_str()) => found.push(s.clone()),
                    Value::Array(items) if fields.contains(&k.as_str()) => {
                        found.extend(items.iter().filter_map(Value::as_str).map(String::from));
                    }
                    Value::Object(inner) if fields.contains(&k.as_str()) => {
                        found.extend(inner.values().filter_map(Value::as_str).map(String::from));
                    }
                    _ => found.extend(ids(v, fields)),
                }
            }
        }
        Value::Array(items) => found.extend(items.iter().flat_map(|v| ids(v, fields))),
        _ => {}
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_names_the_failing_target_account_resource_then_shows_the_converged_tree_to_its_readers() {
    let t = TestEnv::new("trace").await;
    let _controller = t
        .controller_with(
            |s| {
                s.pending_interval = Duration::from_secs(1);
                s.poll_interval = Duration::from_secs(1);
            },
            None,
        )
        .await;
    let plugins = plugin_dir(&t);
    let admin = t.stack().kubeconfig.clone();
    let ns = t.namespace.clone();
    for (name, n) in [("dev", 1), ("staging", 2), ("production", 3)] {
        ready_account(&t, name, n, &ns).await;
    }
    let (dev, staging, production) = (t.name("dev"), t.name("staging"), t.name("production"));

    // Stalled in one target account: IAM refuses sagekeeper everything in staging.
    let fault = t.emulator.fault(json!({"operation": "*", "service": "iam", "account": t.account(2),
        "code": "AccessDenied", "httpStatus": 403, "message": "User is not authorized to perform this iam action"}));
    let envs = t.api::<DataScienceEnvironment>();
    let env = environment(&t, "fraud", "dev", &[("staging", "staging"), ("production", "production")]);
    envs.create(&Default::default(), &env).await.unwrap();
    let env =
        t.wait_condition_for(&envs, "fraud", "Stalled", "True", Some("AccessDenied"), Duration::from_secs(120)).await;
    let status = env.status.clone().unwrap();

    let table = trace(&t, &plugins, &admin, &["dse/fraud", "-n", &ns]).unwrap();
    println!("{table}");
    let root = row(&table, "DataScienceEnvironment/fraud");
    assert!(root.contains(" False ") && root.contains("Stalled: AccessDenied: "), "{root}");
    let target = row(&table, &format!("TargetAccount/staging/{staging}"));
    assert!(target.contains(" False ") && target.contains("AccessDenied: IAM role"), "{target}");
    let role = table
        .lines()
        .skip_while(|l| !l.contains(&format!("TargetAccount/staging/{staging}")))
        .find(|l| l.contains("IAMRole/model-execution"))
        .unwrap();
    assert!(role.contains(" False ") && role.contains("NotCreated"), "the role IAM refused is shown missing: {role}");
    assert!(row(&table, &format!("TargetAccount/production/{production}")).contains(" True "), "{table}");
    let vpc = status.network.as_ref().and_then(|n| n.vpc_id.clone()).unwrap();
    assert!(row(&table, "Network").contains(" True "), "{table}");
    assert!(table.lines().any(|l| l.contains("VPC") && l.contains(&vpc)), "the dev VPC {vpc}: {table}");

    let tree: Value =
        serde_json::from_str(&trace(&t, &plugins, &admin, &["dse/fraud", "-n", &ns, "-o", "json"]).unwrap()).unwrap();
    let target = node(&tree, "TargetAccount", &format!("staging/{staging}"));
    assert_eq!(
        (target["ready"].as_str(), target["state"].as_str()),
        (Some("False"), Some("AccessDenied")),
        "{target:#}"
    );
    assert_eq!(target["account"]["id"], t.account(2));
    let message = target["message"].as_str().unwrap();
    assert!(
        message.starts_with("AccessDenied: IAM role")
            && message.contains(&format!("account {staging} for stage staging")),
        "{message}"
    );
    assert_eq!(
        node(&tree, "AwsAccount", &staging)["ready"],
        "True",
        "the account itself is fine: IAM refused the calls"
    );
    let wide = trace(&t, &plugins, &admin, &["dse/fraud", "-n", &ns, "-o", "wide"]).unwrap();
    assert!(wide.contains(message), "wide keeps the whole message:\n{wide}");

    // IAM admits sagekeeper: the environment converges; a project and a deployment use it.
    t.emulator.remove_fault(&fault);
    t.poke(&envs, "fraud").await;
    let env = t.wait_condition_for(&envs, "fraud", "Ready", "True", None, Duration::from_secs(120)).await;
    let (projects, _) = create_project(&t, "churn", json!({})).await;
    let project = t.wait_condition_for(&projects, "churn", "Ready", "True", None, Duration::from_secs(90)).await;
    let group = project.status.clone().unwrap().model_package_group_name.unwrap();
    let v1 = register(&t, &group).await;
    set_approval(&t, &group, v1, ModelApprovalStatus::Approved).await;
    let deployments = create(&t, "churn", serde_json::from_str(TWO_STAGES).unwrap()).await;
    let d = until(&deployments, "churn", "staging serving v1", 120, |d| serving(d, "staging", v1) && is_ready(d)).await;
    let project = projects.get("churn").await.unwrap();

    let wide = trace(&t, &plugins, &admin, &["dse/fraud", "-n", &ns, "-o", "wide"]).unwrap();
    println!("{wide}");
    for label in ["DataScienceEnvironment/fraud", "MLOpsProject/churn", "ModelDeployment/churn", "Network", "Studio"] {
        assert!(row(&wide, label).contains(" True "), "{label}:\n{wide}");
    }
    assert!(!wide.lines().skip(1).any(|l| l.contains(" False ")), "nothing is False once converged:\n{wide}");
    // Every AWS resource the three statuses name is in the tree.
    let env_status = serde_json::to_value(env.status.unwrap()).unwrap();
    let fields = [
        "vpcId",
        "privateSubnetIds",
        "publicSubnetIds",
        "securityGroupIds",
        "vpcEndpointIds",
        "securityGroupId",
        "ebsKeyArn",
        "studioKeyArn",
        "s3KeyArn",
        "endpointKeyArn",
        "dataBucket",
        "modelsBucket",
        "dataCaptureBucket",
        "executionRoleArn",
        "pipelineRoleArn",
        "modelExecutionRoleArn",
        "personaRoleArns",
        "deployerArn",
        "domainId",
        "modelPackageGroupArn",
        "pipelineArn",
        "endpointArn",
        "endpointConfigName",
        "modelName",
    ];
    let mut expected = ids(&env_status, &fields);
    expected.extend(ids(&serde_json::to_value(project.status.unwrap()).unwrap(), &fields));
    expected.extend(ids(&serde_json::to_value(d.status.clone().unwrap()).unwrap(), &fields));
    assert!(expected.len() > 30, "{expected:?}");
    let missing: Vec<_> = expected.iter().filter(|id| !wide.contains(id.as_str())).collect();
    assert!(missing.is_empty(), "not in the trace: {missing:?}\n{wide}");
    let endpoint = row(
        &wide,
        &format!(
            "SageMakerEndpoint/{}",
            d.status.as_ref().unwrap().stages[0].accounts[0].endpoint_name.clone().unwrap()
        ),
    );
    assert!(
        endpoint.contains(&format!("{staging} ({})", t.account(2))) && endpoint.contains("InService"),
        "{endpoint}"
    );
    assert!(row(&wide, "Stage/production").contains("WaitingForApproval"), "{wide}");

    // The deployment's trace goes up to its project and environment.
    let tree: Value =
        serde_json::from_str(&trace(&t, &plugins, &admin, &["mdep", "churn", "-n", &ns, "-o", "json"]).unwrap())
            .unwrap();
    let used = &tree["children"][0];
    assert_eq!((used["kind"].as_str(), used["relation"].as_str()), (Some("MLOpsProject"), Some("uses")), "{tree:#}");
    assert_eq!(used["children"][0]["kind"], "DataScienceEnvironment");
    // The project's trace holds its registry and the deployment using it.
    let table = trace(&t, &plugins, &admin, &["mlp/churn", "-n", &ns]).unwrap();
    assert!(row(&table, &format!("ModelPackageGroup/{group}")).contains(&dev), "{table}");
    assert!(row(&table, "ModelDeployment/churn").contains(" True "), "{table}");
    // The staging account's trace: what lives there, nothing from the dev account.
    let table = trace(&t, &plugins, &admin, &[&format!("awsacct/{staging}")]).unwrap();
    assert!(row(&table, &format!("TargetAccount/staging/{staging}")).contains(" True "), "{table}");
    assert!(table.contains("SageMakerEndpoint/"), "{table}");
    assert!(!table.contains(&vpc) && !table.contains("TargetAccount/production"), "only staging's resources:\n{table}");

    // A team editor traces their own namespace; the AwsAccounts, which they may not read, say so.
    bind(&t, EDITOR, "sagekeeper-team-editor").await;
    wait_allowed(&t, EDITOR, "list").await;
    let editor = t.stack().dir.join(format!("editor-{ns}.kubeconfig"));
    sagekeeper_tests::stack::write_impersonating(&admin, &editor, EDITOR);
    let table = trace(&t, &plugins, &editor, &["dse/fraud", "-n", &ns]).unwrap();
    assert!(row(&table, "DataScienceEnvironment/fraud").contains(" True "), "{table}");
    assert!(row(&table, &format!("AwsAccount/{dev}")).contains("Unreadable: Forbidden"), "{table}");
    // Nothing of another namespace or of the accounts' other users.
    let other = trace(&t, &plugins, &editor, &["dse/fraud", "-n", "kube-system"]).unwrap_err();
    assert!(other.contains("Forbidden"), "{other}");
    let account = trace(&t, &plugins, &editor, &[&format!("awsacct/{staging}")]).unwrap_err();
    assert!(account.contains("Forbidden"), "{account}");
    let missing = trace(&t, &plugins, &admin, &["dse/nothing", "-n", &ns]).unwrap_err();
    assert!(missing.contains("datascienceenvironments.sagekeeper.io \"nothing\" not found"), "{missing}");
}
