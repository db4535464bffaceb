//! The shipped Kubernetes manifests (`deploy/kubernetes/`) against the test API server: the
//! controller's pod passes the `restricted` Pod Security level its namespace enforces. The stack
//! has no kubelet and no network plugin, so pods are checked by admission with a server-side dry
//! run, and the NetworkPolicy by what it admits on paper.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use sagekeeper_tests::TestEnv;
use sagekeeper_tests::stack::repo_root;

/// The objects of kind `K` in `deploy/kubernetes/<file>`.
fn shipped<K: serde::de::DeserializeOwned>(file: &str, kind: &str) -> Vec<K> {
    let text = std::fs::read_to_string(repo_root().join("deploy/kubernetes").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap())
        .filter(|value| value["kind"] == kind)
        .map(|value| serde_yaml::from_value(value).unwrap())
        .collect()
}

/// A pod made from the shipped Deployment's template, as its ReplicaSet would make it.
fn controller_pod() -> Pod {
    let deployment = shipped::<Deployment>("sagekeeper.yaml", "Deployment").remove(0);
    let template = deployment.spec.unwrap().template;
    Pod {
        metadata: ObjectMeta {
            generate_name: Some("sagekeeper-".into()),
            labels: template.metadata.and_then(|m| m.labels),
            ..Default::default()
        },
        spec: template.spec,
        ..Default::default()
    }
}

async fn dry_run_create(t: &TestEnv, pod: &Pod) -> Result<Pod, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "sagekeeper-system");
    pods.create(&PostParams { dry_run: true, ..Default::default() }, pod).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_pod_is_admitted_at_the_restricted_pod_security_level() {
    let t = TestEnv::new("pod-security").await;
    let namespace = Api::<Namespace>::all(t.client.clone()).get("sagekeeper-system").await.unwrap();
    let labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("pod-security.kubernetes.io/enforce").map(String::as_str), Some("restricted"));

    let pod = controller_pod();
    dry_run_create(&t, &pod).await.expect("the controller's pod passes the restricted level");
    let spec = pod.spec.as_ref().unwrap();
    let security = spec.security_context.as_ref().unwrap();
    assert!(security.run_as_user.is_some_and(|uid| uid >= 10_000), "a numeric, high user id");
    let container = &spec.containers[0];
    let requests = container.resources.as_ref().and_then(|r| r.requests.as_ref()).unwrap();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"), "{requests:?}");

    // The namespace really enforces: the same pod allowed to escalate privileges is refused.
    let mut escalating = pod.clone();
    let context = escalating.spec.as_mut().unwrap().containers[0].security_context.as_mut().unwrap();
    context.allow_privilege_escalation = Some(true);
    let refused = dry_run_create(&t, &escalating).await.expect_err("a pod allowed to escalate is refused");
    assert!(refused.to_string().contains("allowPrivilegeEscalation"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_network_policy_admits_only_metrics_in_and_dns_api_and_aws_out() {
    let t = TestEnv::new("network-policy").await;
    let policies: Api<NetworkPolicy> = Api::namespaced(t.client.clone(), "sagekeeper-system");
    let policy = policies.get("sagekeeper").await.expect("the shipped NetworkPolicy is installed");
    let spec = policy.spec.unwrap();
    let pod = controller_pod();
    let selector = spec.pod_selector.and_then(|s| s.match_labels).unwrap_or_default();
    let labels = pod.metadata.labels.unwrap_or_default();
    assert!(!selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v)), "it selects the pod");
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_owned(), "Egress".to_owned()]));

    let ports = |rules: Vec<Option<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPort>>>| {
        let mut out: Vec<String> = rules
            .into_iter()
            .flat_map(|ports| ports.expect("every rule names its ports"))
            .map(|p| {
                let port = match p.port.expect("a port") {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s,
                };
                format!("{}/{port}", p.protocol.unwrap_or_else(|| "TCP".into()))
            })
            .collect();
        out.sort();
        out
    };
    let ingress = spec.ingress.unwrap();
    assert!(ingress.iter().all(|r| r.from.is_none()), "metrics may be scraped from anywhere in the cluster");
    assert_eq!(ports(ingress.into_iter().map(|r| r.ports).collect()), ["TCP/8080"]);
    let egress = spec.egress.unwrap();
    assert_eq!(
        ports(egress.into_iter().map(|r| r.ports).collect()),
        ["TCP/443", "TCP/53", "TCP/6443", "UDP/53"],
        "DNS, the API server and AWS, nothing else"
    );
}
