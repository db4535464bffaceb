//! Separation of duties in Kubernetes: `deploy/helm/sagekeeper/templates/approval.yaml` (rendered into `deploy/kubernetes/`) on the real API server,
//! acting as impersonated users. A team editor may edit the team's objects but not approve: not
//! set or change an approved version, make a stage or a project approve automatically, make a user
//! TeamAdmin or name who may act as a persona. An approver may. The controller's own writes (status,
//! finalizers) pass untouched.

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, Status};
use kube::{Api, Client, Config};
use sagekeeper_api::{DataScienceEnvironment, MLOpsProject, ModelDeployment};
use sagekeeper_tests::TestEnv;
use serde_json::{Value, json};

pub(crate) const EDITOR: &str = "editor@example.com";
const APPROVER: &str = "approver@example.com";
const CONTROLLER: &str = "system:serviceaccount:sagekeeper-system:sagekeeper";

/// A client acting as `user` (impersonated by the admin).
async fn as_user(t: &TestEnv, user: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(&t.stack().kubeconfig).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    config.auth_info.impersonate = Some(user.to_owned());
    Client::try_from(config).unwrap()
}

/// Binds `cluster_role` to `user` in the test namespace.
pub(crate) async fn bind(t: &TestEnv, user: &str, cluster_role: &str) {
    let binding = RoleBinding {
        metadata: ObjectMeta { name: Some(format!("{cluster_role}-{}", user.replace('@', "-"))), ..Default::default() },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: cluster_role.into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: user.into(),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(t.client.clone(), &t.namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

/// Waits until the API server's authorizer lets `user` do `verb` on modeldeployments here (a new
/// RoleBinding reaches the RBAC authorizer's cache within moments).
pub(crate) async fn wait_allowed(t: &TestEnv, user: &str, verb: &str) {
    use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            resource_attributes: Some(ResourceAttributes {
                group: Some("sagekeeper.io".into()),
                resource: Some("modeldeployments".into()),
                namespace: Some(t.namespace.clone()),
                verb: Some(verb.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(t.client.clone());
    sagekeeper_tests::eventually(std::time::Duration::from_secs(20), "a role binding to take effect", || {
        let (reviews, review) = (reviews.clone(), review.clone());
        async move {
            let answer = reviews.create(&PostParams::default(), &review).await.ok()?;
            answer.status.is_some_and(|s| s.allowed).then_some(())
        }
    })
    .await;
}

/// An editor, and an approver who may also edit, in the test namespace.
async fn team(t: &TestEnv) -> (Client, Client) {
    bind(t, EDITOR, "sagekeeper-team-editor").await;
    bind(t, APPROVER, "sagekeeper-team-editor").await;
    bind(t, APPROVER, "sagekeeper-approver").await;
    for (user, verb) in [(EDITOR, "create"), (APPROVER, "create"), (APPROVER, "approve")] {
        wait_allowed(t, user, verb).await;
    }
    (as_user(t, EDITOR).await, as_user(t, APPROVER).await)
}

fn api<K: kube::Resource<DynamicType = ()>>(t: &TestEnv, client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &t.namespace, &ApiResource::erase::<K>(&()))
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "sagekeeper.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

fn merge(api: &Api<DynamicObject>, name: &str, patch: Value) -> impl Future<Output = kube::Result<DynamicObject>> {
    let api = api.clone();
    let name = name.to_owned();
    async move { api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await }
}

/// The refusal of `result`: a 403 from admission naming `field` and the approver role.
fn refused(result: kube::Result<DynamicObject>, field: &str) -> Box<Status> {
    let Err(kube::Error::Api(error)) = result else { panic!("expected a refusal naming {field}, got {result:?}") };
    assert_eq!(error.code, 403, "{error:?}");
    assert!(error.message.contains(field), "the refusal names {field}: {}", error.message);
    assert!(error.message.contains("sagekeeper-approver"), "the refusal names the role: {}", error.message);
    error
}

/// The gate is on once an editor's dry-run create of an automatic stage is refused (the API
/// server loads new admission policies within moments).
async fn gate_is_on(t: &TestEnv, editor: &Client) {
    let spec = json!({"project": "churn", "stages": [{"name": "staging", "instanceType": "ml.m5.large"}]});
    let probe = object("ModelDeployment", "probe", spec);
    let dry = PostParams { dry_run: true, ..Default::default() };
    sagekeeper_tests::eventually(std::time::Duration::from_secs(20), "the approval policies to be enforced", || {
        let api = api::<ModelDeployment>(t, editor);
        let probe = probe.clone();
        let dry = dry.clone();
        async move { api.create(&dry, &probe).await.is_err().then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_deployment_needs_the_approver_role() {
    let t = TestEnv::new("approval-deployment").await;
    let (editor, approver) = team(&t).await;
    gate_is_on(&t, &editor).await;
    let (as_editor, as_approver) = (api::<ModelDeployment>(&t, &editor), api::<ModelDeployment>(&t, &approver));
    let manual = json!({"project": "churn", "stages": [{"name": "production", "instanceType": "ml.m5.large", "approval": "Manual"}]});
    as_editor
        .create(&PostParams::default(), &object("ModelDeployment", "churn", manual))
        .await
        .expect("an editor creates a Manual deployment");

    let approve = |version: &str| json!({"spec": {"stages": [{"name": "production", "instanceType": "ml.m5.large", "approval": "Manual", "approvedVersion": version}]}});
    refused(merge(&as_editor, "churn", approve("3")).await, "spec.stages[].approvedVersion");
    merge(&as_approver, "churn", approve("3")).await.expect("an approver approves version 3");
    // Editing the stage around an unchanged approval is an editor's job; changing it is not.
    let resized = json!({"spec": {"stages": [{"name": "production", "instanceType": "ml.m5.xlarge", "approval": "Manual", "approvedVersion": "3"}]}});
    merge(&as_editor, "churn", resized).await.expect("an editor resizes the approved stage");
    refused(merge(&as_editor, "churn", approve("4")).await, "spec.stages[].approvedVersion");
    // Taking an approval away stops promotion: no approver needed.
    let withdrawn =
        json!({"spec": {"stages": [{"name": "production", "instanceType": "ml.m5.xlarge", "approval": "Manual"}]}});
    merge(&as_editor, "churn", withdrawn).await.expect("an editor withdraws the approval");

    // Automatic stages promote without a person: an editor may not add one, nor switch one.
    let automatic = json!({"project": "churn", "stages": [{"name": "staging", "instanceType": "ml.m5.large"}]});
    refused(
        as_editor.create(&PostParams::default(), &object("ModelDeployment", "auto", automatic.clone())).await,
        "spec.stages[].approval",
    );
    as_approver
        .create(&PostParams::default(), &object("ModelDeployment", "auto", automatic))
        .await
        .expect("an approver creates it");
    let more = json!({"spec": {"stages": [
        {"name": "staging", "instanceType": "ml.m5.xlarge"},
        {"name": "production", "instanceType": "ml.m5.large"},
    ]}});
    refused(merge(&as_editor, "auto", more).await, "spec.stages[].approval");
    let resized = json!({"spec": {"stages": [{"name": "staging", "instanceType": "ml.m5.xlarge"}]}});
    merge(&as_editor, "auto", resized).await.expect("an editor edits an automatic stage an approver made");
    let switched =
        json!({"spec": {"stages": [{"name": "production", "instanceType": "ml.m5.large", "approval": "Automatic"}]}});
    refused(merge(&as_editor, "churn", switched).await, "spec.stages[].approval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_model_approval_needs_the_approver_role() {
    let t = TestEnv::new("approval-project").await;
    let (editor, approver) = team(&t).await;
    gate_is_on(&t, &editor).await;
    let (as_editor, as_approver) = (api::<MLOpsProject>(&t, &editor), api::<MLOpsProject>(&t, &approver));
    let automatic = json!({"environment": "fraud", "modelApproval": "Automatic"});
    refused(
        as_editor.create(&PostParams::default(), &object("MLOpsProject", "auto", automatic.clone())).await,
        "spec.modelApproval",
    );
    as_approver
        .create(&PostParams::default(), &object("MLOpsProject", "auto", automatic))
        .await
        .expect("an approver creates it");
    as_editor
        .create(&PostParams::default(), &object("MLOpsProject", "churn", json!({"environment": "fraud"})))
        .await
        .expect("an editor creates a project with manual approval");
    refused(merge(&as_editor, "churn", json!({"spec": {"modelApproval": "Automatic"}})).await, "spec.modelApproval");
    merge(&as_approver, "churn", json!({"spec": {"modelApproval": "Automatic"}}))
        .await
        .expect("an approver switches it");
    let run = json!({"spec": {"pipeline": {"runRequest": "again"}}});
    merge(&as_editor, "churn", run).await.expect("an editor asks for a run of an automatic project");
    merge(&as_editor, "churn", json!({"spec": {"modelApproval": "Manual"}}))
        .await
        .expect("back to manual needs no approver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_admins_and_persona_principals_need_the_approver_role() {
    let t = TestEnv::new("approval-environment").await;
    let (editor, approver) = team(&t).await;
    gate_is_on(&t, &editor).await;
    let (as_editor, as_approver) =
        (api::<DataScienceEnvironment>(&t, &editor), api::<DataScienceEnvironment>(&t, &approver));
    let profiles = |list: Value| json!({"spec": {"studio": {"userProfiles": list}}});
    let spec = json!({"account": "dev", "region": "us-east-1", "studio": {"userProfiles": [{"name": "alice", "persona": "DataScientist"}]}});
    as_editor
        .create(&PostParams::default(), &object("DataScienceEnvironment", "fraud", spec))
        .await
        .expect("an editor creates it");
    let with_admin =
        profiles(json!([{"name": "alice", "persona": "DataScientist"}, {"name": "bob", "persona": "TeamAdmin"}]));
    refused(merge(&as_editor, "fraud", with_admin.clone()).await, "spec.studio.userProfiles[].persona");
    let promoted = profiles(json!([{"name": "alice", "persona": "TeamAdmin"}]));
    refused(merge(&as_editor, "fraud", promoted).await, "spec.studio.userProfiles[].persona");
    merge(&as_approver, "fraud", with_admin).await.expect("an approver makes bob TeamAdmin");
    let more = profiles(json!([
        {"name": "alice", "persona": "DataScientist"}, {"name": "bob", "persona": "TeamAdmin"}, {"name": "carol", "persona": "DataScientist"},
    ]));
    merge(&as_editor, "fraud", more).await.expect("an editor adds a data scientist beside an existing TeamAdmin");

    let admins = |arns: Value| json!({"spec": {"identity": {"personaPrincipals": {"TeamAdmin": arns}}}});
    let sso = "arn:aws:iam::111111111111:role/AWSReservedSSO_MLAdmins_abc";
    let other = "arn:aws:iam::111111111111:role/someone-else";
    refused(merge(&as_editor, "fraud", admins(json!([sso]))).await, "spec.identity.personaPrincipals");
    merge(&as_approver, "fraud", admins(json!([sso, other])))
        .await
        .expect("an approver names who may act as TeamAdmin");
    refused(
        merge(&as_editor, "fraud", json!({"spec": {"identity": {"personaPrincipals": {"DataScientist": [other]}}}}))
            .await,
        "spec.identity.personaPrincipals",
    );
    merge(&as_editor, "fraud", admins(json!([sso]))).await.expect("an editor may take a principal away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_own_writes_pass_the_gate() {
    let t = TestEnv::new("approval-controller").await;
    let (editor, approver) = team(&t).await;
    gate_is_on(&t, &editor).await;
    let spec = json!({"project": "churn", "stages": [{"name": "production", "instanceType": "ml.m5.large", "approval": "Manual", "approvedVersion": "6"}]});
    api::<ModelDeployment>(&t, &approver)
        .create(&PostParams::default(), &object("ModelDeployment", "churn", spec))
        .await
        .expect("an approver creates an approved deployment");
    // The controller (its ServiceAccount, with the chart's ClusterRole) adds
    // its finalizer to the object and writes status: neither is an approval.
    let controller = api::<ModelDeployment>(&t, &as_user(&t, CONTROLLER).await);
    let finalizer = json!({"metadata": {"finalizers": ["sagekeeper.io/cleanup"]}});
    merge(&controller, "churn", finalizer).await.expect("the controller adds its finalizer");
    let status = json!({"status": {"summary": "production=v6 Serving"}});
    controller
        .patch_status("churn", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the controller writes status");
    let cleared = json!({"metadata": {"finalizers": null}});
    merge(&controller, "churn", cleared).await.expect("the controller removes its finalizer");
}
