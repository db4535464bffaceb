//! Admission: the CRDs installed in a real API server accept the examples, reject bad input with
//! a message that names the field, refuse changes to immutable fields, and explain themselves.

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, MLOpsProject, ModelDeployment};
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::stack::repo_root;
use serde_json::{Value, json};

fn api(t: &TestEnv, kind: &str) -> Api<DynamicObject> {
    let (resource, namespaced) = match kind {
        "AwsAccount" => (ApiResource::erase::<AwsAccount>(&()), false),
        "AwsAccountSet" => (ApiResource::erase::<sagekeeper_api::AwsAccountSet>(&()), false),
        "DataScienceEnvironment" => (ApiResource::erase::<DataScienceEnvironment>(&()), true),
        "MLOpsProject" => (ApiResource::erase::<MLOpsProject>(&()), true),
        "ModelDeployment" => (ApiResource::erase::<ModelDeployment>(&()), true),
        "Namespace" => (ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()), false),
        other => panic!("unexpected kind {other}"),
    };
    if namespaced {
        Api::namespaced_with(t.client.clone(), &t.namespace, &resource)
    } else {
        Api::all_with(t.client.clone(), &resource)
    }
}

/// A valid object of each kind; cases change one thing about it.
fn valid(t: &TestEnv, kind: &str, name: &str) -> Value {
    let spec = match kind {
        "AwsAccount" => json!({
            "accountId": "111111111111",
            "roleArn": "arn:aws:iam::111111111111:role/sagekeeper-deployer",
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": t.namespace}},
        }),
        "DataScienceEnvironment" => json!({
            "account": "dev",
            "region": "us-east-1",
            "studio": {"userProfiles": [{"name": "alice", "persona": "DataScientist"}]},
            "targetAccounts": {"staging": ["staging"]},
        }),
        "MLOpsProject" => json!({"environment": "fraud"}),
        "ModelDeployment" => json!({
            "project": "churn",
            "stages": [{"name": "staging", "instanceType": "ml.m5.large"}],
        }),
        other => panic!("unexpected kind {other}"),
    };
    json!({
        "apiVersion": "sagekeeper.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Merges `patch` into `base` (JSON merge patch semantics: null removes).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

struct Case {
    what: &'static str,
    kind: &'static str,
    /// Merged into the valid object before creating it.
    create: Value,
    /// When set, the (valid) object is created first and this merge patch must be refused.
    update: Option<Value>,
    /// Text the API server's message must contain: the field path.
    field: &'static str,
}

fn case(what: &'static str, kind: &'static str, create: Value, field: &'static str) -> Case {
    Case { what, kind, create, update: None, field }
}

fn update(what: &'static str, kind: &'static str, update: Value, field: &'static str) -> Case {
    Case { what, kind, create: json!({}), update: Some(update), field }
}

fn cases() -> Vec<Case> {
    let stage = |extra: Value| {
        let mut s = json!({"name": "staging", "instanceType": "ml.m5.large"});
        merge(&mut s, &extra);
        s
    };
    vec![
        case(
            "a flow log retention CloudWatch Logs does not offer",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"flowLogs": {"retentionDays": 10}}}}),
            "spec.network.flowLogs.retentionDays",
        ),
        case(
            "an unknown flow log traffic type",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"flowLogs": {"trafficType": "DROPPED"}}}}),
            "spec.network.flowLogs.trafficType",
        ),
        case("account id too short", "AwsAccount", json!({"spec": {"accountId": "12345"}}), "spec.accountId"),
        case("account id not digits", "AwsAccount", json!({"spec": {"accountId": "abcdefghijkl"}}), "spec.accountId"),
        case(
            "role ARN of another account",
            "AwsAccount",
            json!({"spec": {"roleArn": "arn:aws:iam::222222222222:role/sagekeeper-deployer"}}),
            "spec.roleArn",
        ),
        case(
            "role ARN naming a user",
            "AwsAccount",
            json!({"spec": {"roleArn": "arn:aws:iam::111111111111:user/x"}}),
            "spec.roleArn",
        ),
        case(
            "empty namespace selector",
            "AwsAccount",
            json!({"spec": {"namespaceSelector": {"matchLabels": null}}}),
            "spec.namespaceSelector",
        ),
        case(
            "selector of NotIn only",
            "AwsAccount",
            json!({"spec": {"namespaceSelector": {"matchLabels": null, "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
            ]}}}),
            "spec.namespaceSelector",
        ),
        case(
            "selector with an unknown operator",
            "AwsAccount",
            json!({"spec": {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Matches", "values": ["a"]}]}}}),
            "spec.namespaceSelector.matchExpressions",
        ),
        case(
            "selector In without values",
            "AwsAccount",
            json!({"spec": {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}}),
            "spec.namespaceSelector.matchExpressions",
        ),
        case(
            "missing namespace selector",
            "AwsAccount",
            json!({"spec": {"namespaceSelector": null}}),
            "spec.namespaceSelector",
        ),
        case("bad region in allow-list", "AwsAccount", json!({"spec": {"regions": ["us-east"]}}), "spec.regions[0]"),
        case("external id too short", "AwsAccount", json!({"spec": {"externalId": "a"}}), "spec.externalId"),
        case(
            "boundary policy of another account",
            "AwsAccount",
            json!({"spec": {"permissionsBoundaryArn": "arn:aws:iam::222222222222:policy/boundary"}}),
            "spec.permissionsBoundaryArn",
        ),
        update(
            "changed account id",
            "AwsAccount",
            json!({"spec": {"accountId": "999999999999", "roleArn": null}}),
            "spec.accountId",
        ),
        case(
            "CIDR prefix /8",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"vpcCidr": "10.0.0.0/8"}}}),
            "spec.network.vpcCidr",
        ),
        case(
            "CIDR prefix /28",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"vpcCidr": "10.0.0.0/28"}}}),
            "spec.network.vpcCidr",
        ),
        case(
            "CIDR host bits set",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"vpcCidr": "10.0.0.1/16"}}}),
            "spec.network.vpcCidr",
        ),
        case(
            "CIDR not an address",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"vpcCidr": "300.0.0.0/16"}}}),
            "spec.network.vpcCidr",
        ),
        case(
            "five availability zones",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e"]}}}),
            "spec.network.availabilityZones",
        ),
        case(
            "zone of another region",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"availabilityZones": ["us-west-2a"]}}}),
            "spec.network.availabilityZones",
        ),
        case(
            "unknown internet access",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"internetAccess": "Sometimes"}}}),
            "spec.network.internetAccess",
        ),
        case(
            "unknown persona",
            "DataScienceEnvironment",
            json!({"spec": {"studio": {"userProfiles": [{"name": "alice", "persona": "Intern"}]}}}),
            "spec.studio.userProfiles[0].persona",
        ),
        case(
            "duplicate user profile",
            "DataScienceEnvironment",
            json!({"spec": {"studio": {"userProfiles": [{"name": "alice", "persona": "DataScientist"}, {"name": "alice", "persona": "TeamAdmin"}]}}}),
            "spec.studio.userProfiles[1]",
        ),
        case(
            "unknown auth mode",
            "DataScienceEnvironment",
            json!({"spec": {"studio": {"authMode": "SSO"}}}),
            "spec.studio.authMode",
        ),
        case("malformed region", "DataScienceEnvironment", json!({"spec": {"region": "useast1"}}), "spec.region"),
        case("reserved tag key", "DataScienceEnvironment", json!({"spec": {"tags": {"aws:owner": "x"}}}), "spec.tags"),
        case(
            "bad stage name",
            "DataScienceEnvironment",
            json!({"spec": {"targetAccounts": {"Prod!": ["prod"]}}}),
            "spec.targetAccounts",
        ),
        case(
            "stage without accounts",
            "DataScienceEnvironment",
            json!({"spec": {"targetAccounts": {"prod": []}}}),
            "spec.targetAccounts.prod",
        ),
        case(
            "unknown deletion policy",
            "DataScienceEnvironment",
            json!({"spec": {"deletionPolicy": "Orphan"}}),
            "spec.deletionPolicy",
        ),
        update("changed region", "DataScienceEnvironment", json!({"spec": {"region": "us-west-2"}}), "spec.region"),
        update(
            "changed VPC CIDR",
            "DataScienceEnvironment",
            json!({"spec": {"network": {"vpcCidr": "10.1.0.0/16"}}}),
            "spec.network.vpcCidr",
        ),
        update("changed account", "DataScienceEnvironment", json!({"spec": {"account": "other"}}), "spec.account"),
        update(
            "target CIDR added later",
            "DataScienceEnvironment",
            json!({"spec": {"targetNetwork": {"vpcCidr": "10.9.0.0/16"}}}),
            "spec.targetNetwork",
        ),
        case(
            "bad model package group name",
            "MLOpsProject",
            json!({"spec": {"modelPackageGroupName": "bad_name!"}}),
            "spec.modelPackageGroupName",
        ),
        case(
            "unknown approval mode",
            "MLOpsProject",
            json!({"spec": {"modelApproval": "Sometimes"}}),
            "spec.modelApproval",
        ),
        case(
            "unknown template",
            "MLOpsProject",
            json!({"spec": {"pipeline": {"template": "Other"}}}),
            "spec.pipeline.template",
        ),
        update(
            "group name set later",
            "MLOpsProject",
            json!({"spec": {"modelPackageGroupName": "team-churn"}}),
            "spec.modelPackageGroupName",
        ),
        update("changed environment", "MLOpsProject", json!({"spec": {"environment": "other"}}), "spec.environment"),
        case("no stages", "ModelDeployment", json!({"spec": {"stages": []}}), "spec.stages"),
        case(
            "eleven stages",
            "ModelDeployment",
            json!({"spec": {"stages": (0..11).map(|i| stage(json!({"name": format!("s{i}")}))).collect::<Vec<_>>()}}),
            "spec.stages",
        ),
        case(
            "zero instances",
            "ModelDeployment",
            json!({"spec": {"stages": [stage(json!({"initialInstanceCount": 0}))]}}),
            "spec.stages[0].initialInstanceCount",
        ),
        case(
            "unknown stage approval",
            "ModelDeployment",
            json!({"spec": {"stages": [stage(json!({"approval": "Later"}))]}}),
            "spec.stages[0].approval",
        ),
        case(
            "approved version on an automatic stage",
            "ModelDeployment",
            json!({"spec": {"stages": [stage(json!({"approvedVersion": "3"}))]}}),
            "spec.stages[0].approvedVersion",
        ),
        case(
            "instance type without ml. prefix",
            "ModelDeployment",
            json!({"spec": {"stages": [stage(json!({"instanceType": "m5.large"}))]}}),
            "spec.stages[0].instanceType",
        ),
        case(
            "duplicate stage names",
            "ModelDeployment",
            json!({"spec": {"stages": [stage(json!({})), stage(json!({}))]}}),
            "spec.stages[1]",
        ),
        case(
            "model version not a number",
            "ModelDeployment",
            json!({"spec": {"modelVersion": "latest"}}),
            "spec.modelVersion",
        ),
        update("changed project", "ModelDeployment", json!({"spec": {"project": "other"}}), "spec.project"),
        case(
            "canary on inf1",
            "ModelDeployment",
            one_stage(
                json!({"instanceType": "ml.inf1.xlarge", "rollout": {"strategy": "Canary", "canarySize": {"type": "CapacityPercent", "value": 10}}}),
            ),
            "spec.stages[].rollout.strategy: Canary and Linear are not available on ml.inf1",
        ),
        case(
            "linear on inf1",
            "ModelDeployment",
            one_stage(
                json!({"instanceType": "ml.inf1.2xlarge", "rollout": {"strategy": "Linear", "linearStepSize": {"type": "CapacityPercent", "value": 20}}}),
            ),
            "spec.stages[].rollout.strategy: Canary and Linear are not available on ml.inf1",
        ),
        case(
            "canary with autoscaling down to one instance",
            "ModelDeployment",
            one_stage(json!({"initialInstanceCount": 2,
                "rollout": {"strategy": "Canary", "canarySize": {"type": "CapacityPercent", "value": 10}},
                "autoscaling": {"minInstances": 1, "maxInstances": 4, "targetInvocationsPerInstance": 10}})),
            "spec.stages[].autoscaling.minInstances: Canary and Linear need at least 2 instances at any scale",
        ),
        case(
            "linear instance steps below a tenth of the autoscaling maximum",
            "ModelDeployment",
            one_stage(json!({"initialInstanceCount": 4,
                "rollout": {"strategy": "Linear", "linearStepSize": {"type": "InstanceCount", "value": 1}},
                "autoscaling": {"minInstances": 2, "maxInstances": 20, "targetInvocationsPerInstance": 10}})),
            "spec.stages[].rollout.linearStepSize: 10% of autoscaling.maxInstances",
        ),
        case(
            "canary on a single instance",
            "ModelDeployment",
            one_stage(
                json!({"rollout": {"strategy": "Canary", "canarySize": {"type": "CapacityPercent", "value": 10}}}),
            ),
            "spec.stages[].rollout.strategy: Canary and Linear need initialInstanceCount of at least 2",
        ),
        case(
            "canary above half the capacity",
            "ModelDeployment",
            one_stage(
                json!({"rollout": {"strategy": "Canary", "canarySize": {"type": "CapacityPercent", "value": 51}}}),
            ),
            "spec.stages[].rollout.canarySize: at most 50 percent",
        ),
        case(
            "canary above half the instances",
            "ModelDeployment",
            one_stage(
                json!({"initialInstanceCount": 3, "rollout": {"strategy": "Canary", "canarySize": {"type": "InstanceCount", "value": 2}}}),
            ),
            "spec.stages[].rollout.canarySize: at most half of initialInstanceCount",
        ),
        case(
            "canary without its size",
            "ModelDeployment",
            one_stage(json!({"rollout": {"strategy": "Canary"}})),
            "spec.stages[].rollout.canarySize is required with strategy: Canary",
        ),
        case(
            "linear step below 10%",
            "ModelDeployment",
            one_stage(
                json!({"rollout": {"strategy": "Linear", "linearStepSize": {"type": "CapacityPercent", "value": 5}}}),
            ),
            "spec.stages[].rollout.linearStepSize: 10 to 50 percent",
        ),
        case(
            "linear step above 50%",
            "ModelDeployment",
            one_stage(
                json!({"rollout": {"strategy": "Linear", "linearStepSize": {"type": "CapacityPercent", "value": 60}}}),
            ),
            "spec.stages[].rollout.linearStepSize: 10 to 50 percent",
        ),
        case(
            "linear step of instances outside 10-50%",
            "ModelDeployment",
            one_stage(
                json!({"initialInstanceCount": 4, "rollout": {"strategy": "Linear", "linearStepSize": {"type": "InstanceCount", "value": 3}}}),
            ),
            "spec.stages[].rollout.linearStepSize: 10% to 50% of initialInstanceCount",
        ),
        case(
            "a step size of the other strategy",
            "ModelDeployment",
            one_stage(
                json!({"rollout": {"strategy": "Linear", "linearStepSize": {"type": "CapacityPercent", "value": 20}, "canarySize": {"type": "CapacityPercent", "value": 10}}}),
            ),
            "spec.stages[].rollout.canarySize is required with strategy: Canary and only used with it",
        ),
        case(
            "bakes longer than a deployment may take",
            "ModelDeployment",
            one_stage(
                json!({"rollout": {"strategy": "Linear", "bakeSeconds": 3600, "linearStepSize": {"type": "CapacityPercent", "value": 10}}}),
            ),
            "spec.stages[].rollout.bakeSeconds",
        ),
        case(
            "a bake above an hour",
            "ModelDeployment",
            one_stage(json!({"rollout": {"bakeSeconds": 3601}})),
            "spec.stages[0].rollout.bakeSeconds",
        ),
        case(
            "more alarms than AWS takes",
            "ModelDeployment",
            one_stage(json!({"rollout": {"alarms": {"alarmNames": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}}})),
            "spec.stages[0].rollout.alarms.alarmNames",
        ),
        case(
            "autoscaling minimum above the initial count",
            "ModelDeployment",
            one_stage(
                json!({"initialInstanceCount": 1, "autoscaling": {"minInstances": 2, "maxInstances": 4, "targetInvocationsPerInstance": 100}}),
            ),
            "spec.stages[].autoscaling: minInstances <= initialInstanceCount <= maxInstances",
        ),
        case(
            "autoscaling maximum below the initial count",
            "ModelDeployment",
            one_stage(
                json!({"initialInstanceCount": 5, "autoscaling": {"minInstances": 1, "maxInstances": 4, "targetInvocationsPerInstance": 100}}),
            ),
            "spec.stages[].autoscaling: minInstances <= initialInstanceCount <= maxInstances",
        ),
    ]
}

/// A deployment whose one stage (staging, ml.m5.large) also has `fields`.
fn one_stage(fields: Value) -> Value {
    let mut stage = json!({"name": "staging", "instanceType": "ml.m5.large"});
    merge(&mut stage, &fields);
    json!({"spec": {"stages": [stage]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifests_are_rejected_naming_the_field() {
    let t = TestEnv::new("invalid-manifests").await;
    let all = cases();
    assert!(all.len() >= 20);
    let mut failures = Vec::new();
    for (i, c) in all.iter().enumerate() {
        let name = format!("{}-case-{i}", t.id);
        let api = api(&t, c.kind);
        let mut obj = valid(&t, c.kind, &name);
        let refused = match &c.update {
            None => {
                merge(&mut obj, &c.create);
                let obj: DynamicObject = serde_json::from_value(obj).unwrap();
                api.create(&PostParams { dry_run: true, ..Default::default() }, &obj).await.err()
            }
            Some(patch) => {
                let created: DynamicObject = serde_json::from_value(obj).unwrap();
                if let Err(e) = api.create(&PostParams::default(), &created).await {
                    failures.push(format!("{}: the valid object was refused: {e}", c.what));
                    continue;
                }
                let refused = api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.err();
                api.delete(&name, &Default::default()).await.unwrap();
                refused
            }
        };
        match refused {
            Some(kube::Error::Api(status)) if status.code == 422 && status.message.contains(c.field) => {}
            Some(other) => failures.push(format!("{}: refused without naming {}: {other}", c.what, c.field)),
            None => failures.push(format!("{}: accepted", c.what)),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), all.len(), failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_manifest_is_accepted() {
    let t = TestEnv::new("examples-accepted").await;
    let dir = repo_root().join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut seen = 0;
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            let mut obj: DynamicObject = serde_json::from_value(value).unwrap();
            let kind = obj.types.as_ref().unwrap().kind.clone();
            obj.metadata.namespace = None;
            let params = PostParams { dry_run: true, ..Default::default() };
            if let Err(e) = api(&t, &kind).create(&params, &obj).await {
                panic!("{}: {kind} {} refused: {e}", file.display(), obj.metadata.name.unwrap_or_default());
            }
            seen += 1;
        }
    }
    assert!(seen >= 8, "expected every kind in examples/, saw {seen} objects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_materialize_from_an_absent_or_empty_network() {
    let t = TestEnv::new("defaults").await;
    let api = api(&t, "DataScienceEnvironment");
    for network in [None, Some(json!({}))] {
        let mut obj = valid(&t, "DataScienceEnvironment", "defaults");
        if let Some(network) = &network {
            obj["spec"]["network"] = network.clone();
        }
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        let created = api.create(&PostParams { dry_run: true, ..Default::default() }, &obj).await.unwrap();
        assert_defaults(&created.data["spec"]);
    }
}

fn assert_defaults(spec: &Value) {
    assert_eq!(spec["network"]["vpcCidr"], "10.0.0.0/16");
    assert_eq!(spec["network"]["internetAccess"], "None");
    assert_eq!(spec["encryption"]["keyRotation"], true);
    assert_eq!(spec["storage"]["versioning"], true);
    assert_eq!(spec["studio"]["enabled"], true);
    let flow_logs = &spec["network"]["flowLogs"];
    assert_eq!(
        (&flow_logs["enabled"], &flow_logs["trafficType"], &flow_logs["retentionDays"]),
        (&json!(true), &json!("REJECT"), &json!(14))
    );
    assert_eq!(spec["deletionPolicy"], "Delete");
    assert_eq!(spec["deleteDataOnDelete"], false);
    assert!(spec["network"].get("availabilityZones").is_none(), "zones are chosen by the controller, not defaulted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_describes_spec_fields() {
    let t = TestEnv::new("explain").await;
    let expectations = [
        ("awsacct.spec.roleArn", "IAM role sagekeeper assumes in this account"),
        ("dse.spec.network", "The environment's VPC in the dev account"),
        ("dse.spec.network.vpcCidr", "prefix /16 to /24"),
        ("dse.spec.network.flowLogs.trafficType", "REJECT (default), ACCEPT or ALL"),
        ("mlp.spec.pipeline.runRequest", "start one more run"),
        ("mdep.spec.stages.approvedVersion", "The version a person approved"),
    ];
    for (path, text) in expectations {
        let out = t.stack().kubectl(&["explain", path]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "kubectl explain {path}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(text), "kubectl explain {path} lacks {text:?}:\n{stdout}");
    }
}
