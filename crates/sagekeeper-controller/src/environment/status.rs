//! Fold: the step results of one pass become the status fields, one condition per component,
//! the object's verdict and when to look again. Pure.

use sagekeeper_api::DataScienceEnvironmentStatus;
use sagekeeper_api::conditions::{Component, ComponentState, Outcome};
use sagekeeper_api::environment::{
    EncryptionStatus, FlowLogsStatus, IdentityStatus, NetworkStatus, StorageStatus, StudioStatus, TargetAccountStatus,
};
use sagekeeper_aws::ErrorKind;
use sagekeeper_aws::network::{EndpointOutputs, NetworkOutputs};

use super::plan::{BucketPurpose, EnvStep, KeyPurpose, Plan, RoleKind};
use super::run::{EnvOutput, leaving};
use crate::fold::{self, Located};
use crate::lifecycle::Retry;
use crate::steps::{Ran, Results};

/// The components of an environment, in condition order.
const COMPONENTS: [Component; 6] = [
    Component::Network,
    Component::Encryption,
    Component::Storage,
    Component::Identity,
    Component::Studio,
    Component::TargetAccounts,
];

/// What a pass amounts to.
#[derive(Debug)]
pub(crate) struct Folded {
    pub(crate) status: DataScienceEnvironmentStatus,
    pub(crate) outcome: Outcome,
    pub(crate) components: Vec<ComponentState>,
    pub(crate) retry: Retry,
    pub(crate) failure: Option<ErrorKind>,
}

/// Folds a pass's results over the previous status.
pub(crate) fn fold(
    plan: &Plan,
    previous: &DataScienceEnvironmentStatus,
    results: &Results<EnvStep, EnvOutput>,
) -> Folded {
    let locate = |id: &EnvStep| match id.target() {
        None => Located::Dev,
        Some(name) => {
            let stage = plan
                .targets
                .iter()
                .find(|t| t.account.name == name)
                .map(|t| t.stage.clone())
                .or_else(|| previous.target_accounts.iter().find(|t| t.account == name).map(|t| t.stage.clone()))
                .unwrap_or_default();
            Located::Target { account: name.to_owned(), stage }
        }
    };
    let folded = fold::components(&COMPONENTS, results, locate, |component| ready_message(plan, results, component));
    Folded {
        status: status(plan, previous, results),
        outcome: folded.outcome.unwrap_or_else(|| Outcome::Ready {
            message: "network, keys, buckets, roles, Studio and target accounts converged".into(),
        }),
        components: folded.components,
        retry: folded.retry,
        failure: folded.failure,
    }
}

fn ready_message(plan: &Plan, results: &Results<EnvStep, EnvOutput>, component: Component) -> String {
    match component {
        Component::Network => match (ready(results, &EnvStep::Network), ready(results, &EnvStep::VpcEndpoints)) {
            (Some(EnvOutput::Network(n)), Some(EnvOutput::Endpoints(e))) => {
                let logged = match (&plan.flow_logs, ready(results, &EnvStep::FlowLogs(None))) {
                    (Some(f), Some(EnvOutput::FlowLogs(Some(_)))) => {
                        format!(", flow logs ({}) to {}", f.traffic_type, plan.flow_log_names.log_group)
                    }
                    _ if plan.network.existing.is_some() => String::new(),
                    _ => ", flow logs off".to_owned(),
                };
                let unsure = not_guaranteed(&plan.network, n, Some(e));
                match unsure.is_empty() {
                    true => format!("VPC {} with {} endpoints{logged}", n.vpc_id, e.ids.len()),
                    false => format!(
                        "existing VPC {} (not sagekeeper's) with {} endpoints ({} of them its owner's){logged}; not guaranteed on a borrowed network: {}",
                        n.vpc_id,
                        e.ids.len(),
                        e.borrowed.len(),
                        unsure.join("; ")
                    ),
                }
            }
            _ => "network ready".into(),
        },
        Component::Encryption if plan.existing_keys.is_empty() => {
            "keys ebs, studio, s3 with rotation and policies".into()
        }
        Component::Encryption => {
            let names: Vec<&str> = plan.existing_keys.keys().map(|k| k.name()).collect();
            format!(
                "keys ebs, studio, s3; existing keys {} used as their owners' policies allow (sagekeeper changes nothing of them: rotation, and for s3 the deny outside the environment's VPC endpoints, are their owners' to set)",
                names.join(", ")
            )
        }
        Component::Storage => format!("buckets {} and {}", plan.data_bucket, plan.models_bucket),
        Component::Identity => {
            let roles = results.iter().filter(|(id, r)| {
                matches!(id, EnvStep::Role(_))
                    && matches!(r, Ran::Done(crate::steps::Done::Ready(EnvOutput::Role(Some(_)))))
            });
            format!("{} roles", roles.count())
        }
        Component::Studio => match (ready(results, &EnvStep::Domain), ready(results, &EnvStep::UserProfiles)) {
            (Some(EnvOutput::Domain(Some((d, _)))), Some(EnvOutput::Profiles(p))) => {
                format!("domain {} with {} user profiles", d.id, p.len())
            }
            _ => "Studio disabled".into(),
        },
        _ if plan.targets.is_empty() => "no target accounts".into(),
        _ => {
            let borrowed = plan.targets.iter().filter(|t| t.network.existing.is_some()).count();
            match borrowed {
                0 => format!("{} target accounts ready", plan.targets.len()),
                n => format!(
                    "{} target accounts ready, {n} of them on an existing network (what is not guaranteed there: status.targetAccounts[].notGuaranteed)",
                    plan.targets.len()
                ),
            }
        }
    }
}

/// What sagekeeper cannot vouch for on a borrowed network (none on one it made): the owner's
/// routing and filtering, subnets shared with others, and endpoints the owner made.
fn not_guaranteed(
    network: &sagekeeper_aws::network::NetworkPlan,
    net: &NetworkOutputs,
    endpoints: Option<&EndpointOutputs>,
) -> Vec<String> {
    let Some(existing) = &network.existing else { return Vec::new() };
    let mut unsure = vec![
        format!(
            "egress of VPC {}: its route tables ({}), network ACLs and any transit gateway, peering or firewall routes are its owner's (sagekeeper checks only that the subnets have no route to an internet or NAT gateway{})",
            existing.vpc_id,
            net.private_route_table_ids.join(", "),
            if network.nat { ", which internetAccess NatGateway allows" } else { "" }
        ),
        format!(
            "subnets {} may be shared with others' workloads: the endpoints security group admits HTTPS and NFS from their whole ranges",
            existing.subnet_ids.join(", ")
        ),
        format!(
            "flow logs of VPC {}: its owner's (sagekeeper logs only VPCs it made: a flow log records every workload of the VPC, others' too)",
            existing.vpc_id
        ),
    ];
    let added: Vec<String> = endpoints
        .into_iter()
        .flat_map(|e| {
            e.ids.iter().filter(|(key, _)| !e.borrowed.contains(*key)).map(|(key, id)| format!("{id} ({key})"))
        })
        .collect();
    if !added.is_empty() {
        unsure.push(format!(
            "the VPC endpoints sagekeeper added to VPC {} ({}; private DNS, and the S3 gateway on route tables {}) serve every workload of the VPC: others' requests through them are limited to this environment's accounts and buckets",
            existing.vpc_id,
            added.join(", "),
            net.private_route_table_ids.join(", ")
        ));
    }
    for key in endpoints.map(|e| &e.borrowed).into_iter().flatten() {
        let id = endpoints.and_then(|e| e.ids.get(key)).map(String::as_str).unwrap_or("?");
        unsure.push(format!(
            "VPC endpoint {id} ({key}) was made by the VPC's owner: its policy and security groups are not restricted to this environment"
        ));
    }
    unsure
}

/// A VPC's flow log, its group, key and delivery role, once all are ready.
fn flow_logs(
    plan: &Plan,
    results: &Results<EnvStep, EnvOutput>,
    scope: Option<&String>,
    account_id: &str,
) -> Option<FlowLogsStatus> {
    let key = scope.cloned().map_or(EnvStep::Key(KeyPurpose::Ebs), EnvStep::TargetKey);
    let (Some(EnvOutput::FlowLogs(Some(f))), Some(EnvOutput::Key(key))) =
        (ready(results, &EnvStep::FlowLogs(scope.cloned())), ready(results, &key))
    else {
        return None;
    };
    Some(FlowLogsStatus {
        flow_log_id: f.flow_log_id.clone(),
        log_group: plan.flow_log_names.log_group.clone(),
        key_arn: key.arn.clone(),
        delivery_role_arn: plan.role_arn(account_id, &plan.flow_log_names.role),
    })
}

fn ready<'r>(results: &'r Results<EnvStep, EnvOutput>, id: &EnvStep) -> Option<&'r EnvOutput> {
    match results.get(id) {
        Some(Ran::Done(crate::steps::Done::Ready(o))) => Some(o),
        _ => None,
    }
}

/// The status: what is known now, pinned values kept from before.
fn status(
    plan: &Plan,
    previous: &DataScienceEnvironmentStatus,
    results: &Results<EnvStep, EnvOutput>,
) -> DataScienceEnvironmentStatus {
    let mut status = previous.clone();
    status.account_id = Some(plan.dev.account_id.clone());
    let mut net = status.network.take().unwrap_or_default();
    net.availability_zones = plan.zones.clone();
    net.private_subnet_cidrs = plan.network.zones.iter().map(|z| z.private_cidr.clone()).collect();
    if let Some(EnvOutput::Network(n)) = ready(results, &EnvStep::Network) {
        net.vpc_id = Some(n.vpc_id.clone());
        net.private_subnet_ids = n.private_subnet_ids.clone();
        net.public_subnet_ids = n.public_subnet_ids.clone();
        net.security_group_ids = [
            ("workloads".to_owned(), n.groups.workloads.clone()),
            ("endpoints".to_owned(), n.groups.endpoints.clone()),
        ]
        .into();
    }
    if let Some(EnvOutput::Endpoints(e)) = ready(results, &EnvStep::VpcEndpoints) {
        net.vpc_endpoint_ids = e.ids.clone();
    }
    if let Some(EnvOutput::Network(n)) = ready(results, &EnvStep::Network) {
        let endpoints = match ready(results, &EnvStep::VpcEndpoints) {
            Some(EnvOutput::Endpoints(e)) => Some(e),
            _ => None,
        };
        net.not_guaranteed = not_guaranteed(&plan.network, n, endpoints);
    }
    if let Some(EnvOutput::FlowLogs(_)) = ready(results, &EnvStep::FlowLogs(None)) {
        net.flow_logs = flow_logs(plan, results, None, &plan.dev.account_id);
    }
    status.network = Some(NetworkStatus { ..net });
    let key = |purpose: KeyPurpose| match ready(results, &EnvStep::Key(purpose)) {
        Some(EnvOutput::Key(k)) => Some(k.arn.clone()),
        _ => None,
    };
    if let (Some(ebs), Some(studio), Some(s3)) = (key(KeyPurpose::Ebs), key(KeyPurpose::Studio), key(KeyPurpose::S3)) {
        status.encryption =
            Some(EncryptionStatus { ebs_key_arn: Some(ebs), studio_key_arn: Some(studio), s3_key_arn: Some(s3) });
    }
    let buckets = [BucketPurpose::Data, BucketPurpose::Models];
    if buckets.iter().all(|b| ready(results, &EnvStep::Bucket(*b)).is_some()) {
        status.storage = Some(StorageStatus {
            data_bucket: Some(plan.data_bucket.clone()),
            models_bucket: Some(plan.models_bucket.clone()),
        });
    }
    if RoleKind::ALL.iter().all(|k| ready(results, &EnvStep::Role(*k)).is_some()) {
        let dev = &plan.dev.account_id;
        status.identity = Some(IdentityStatus {
            execution_role_arn: Some(plan.role_arn(dev, &plan.roles.execution)),
            pipeline_role_arn: Some(plan.role_arn(dev, &plan.roles.pipeline)),
            model_execution_role_arn: Some(plan.role_arn(dev, &plan.roles.model_execution)),
            persona_role_arns: plan
                .personas
                .iter()
                .map(|p| (format!("{p:?}"), plan.role_arn(dev, plan.persona_role(*p))))
                .collect(),
        });
    }
    match ready(results, &EnvStep::Domain) {
        // The domain id is pinned as soon as the domain exists: the persona policies scope to it.
        Some(EnvOutput::Domain(Some((domain, _)))) => {
            let studio = status.studio.get_or_insert_with(StudioStatus::default);
            studio.domain_id = Some(domain.id.clone());
            studio.url = studio.url.take().or_else(|| domain.url.clone());
            if let Some(EnvOutput::Profiles(names)) = ready(results, &EnvStep::UserProfiles) {
                studio.user_profiles = names.clone();
            }
        }
        Some(EnvOutput::Domain(None)) => status.studio = None,
        _ => {}
    }
    status.target_accounts = plan
        .targets
        .iter()
        .map(|t| {
            let name = &t.account.name;
            let net = match ready(results, &EnvStep::TargetNetwork(name.clone())) {
                Some(EnvOutput::Network(n)) => Some(n),
                _ => None,
            };
            let capture = ready(results, &EnvStep::CaptureBucket(name.clone())).is_some();
            let known = previous.target_accounts.iter().find(|k| &k.account == name && k.stage == t.stage);
            let endpoints = match ready(results, &EnvStep::TargetVpcEndpoints(name.clone())) {
                Some(EnvOutput::Endpoints(e)) => Some(e),
                _ => None,
            };
            TargetAccountStatus {
                account: name.clone(),
                account_id: Some(t.account.account_id.clone()),
                stage: t.stage.clone(),
                // The last known network stays while a pass cannot confirm it: teardown finds a
                // borrowed VPC by it.
                vpc_id: net.map(|n| n.vpc_id.clone()).or_else(|| known.and_then(|k| k.vpc_id.clone())),
                private_subnet_ids: net
                    .map(|n| n.private_subnet_ids.clone())
                    .or_else(|| known.map(|k| k.private_subnet_ids.clone()))
                    .unwrap_or_default(),
                existing_network: t.network.existing.is_some(),
                security_group_id: net.map(|n| n.groups.workloads.clone()),
                endpoint_key_arn: match ready(results, &EnvStep::TargetKey(name.clone())) {
                    Some(EnvOutput::Key(k)) => Some(k.arn.clone()),
                    _ => None,
                },
                data_capture_bucket: capture.then(|| t.capture_bucket.clone()),
                model_execution_role_arn: match ready(results, &EnvStep::TargetRole(name.clone())) {
                    Some(EnvOutput::Role(Some(r))) => Some(r.arn.clone()),
                    _ => None,
                },
                flow_logs: flow_logs(plan, results, Some(name), &t.account.account_id),
                not_guaranteed: net.map(|n| not_guaranteed(&t.network, n, endpoints)).unwrap_or_default(),
                deployer_arn: t.account.controller_arns.first().cloned(),
                organization_path: t.org_path.clone(),
                ready: results
                    .iter()
                    .filter(|(id, _)| id.target() == Some(name))
                    .all(|(_, r)| matches!(r, Ran::Done(crate::steps::Done::Ready(_)))),
            }
        })
        .collect();
    // An account the spec dropped stays in use until its cleanup is done.
    for entry in leaving(plan, previous) {
        match ready(results, &EnvStep::RemoveTarget(entry.account.clone())) {
            Some(EnvOutput::Removed(kept)) => {
                for k in kept {
                    super::teardown::keep(&mut status.retained, &k.resource, &k.id, &k.reason);
                }
            }
            _ => status.target_accounts.push(entry),
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use futures::FutureExt;
    use sagekeeper_api::conditions::Reason;
    use sagekeeper_api::environment::RetainedResource;
    use sagekeeper_aws::iam::RoleOutputs;
    use sagekeeper_aws::kms::KeyOutputs;
    use sagekeeper_aws::network::{EndpointOutputs, Groups, NetworkOutputs};
    use sagekeeper_aws::studio::DomainOutputs;
    use sagekeeper_aws::{AwsError, ErrorKind};
    use serde_json::json;

    use super::*;
    use crate::environment::plan::tests::example;
    use crate::metrics::Metrics;
    use crate::steps::{Done, Failure, Lane, Lanes, Runner, Service, Step};

    fn output(id: &EnvStep) -> EnvOutput {
        match id {
            EnvStep::Network | EnvStep::TargetNetwork(_) => EnvOutput::Network(NetworkOutputs {
                vpc_id: "vpc-1".into(),
                private_subnet_ids: vec!["subnet-1".into()],
                groups: Groups { workloads: "sg-1".into(), endpoints: "sg-2".into() },
                ..NetworkOutputs::default()
            }),
            EnvStep::VpcEndpoints | EnvStep::TargetVpcEndpoints(_) => EnvOutput::Endpoints(EndpointOutputs {
                ids: [("s3".to_owned(), "vpce-1".to_owned())].into(),
                ..EndpointOutputs::default()
            }),
            EnvStep::Key(_) | EnvStep::TargetKey(_) => {
                EnvOutput::Key(KeyOutputs { arn: "arn:aws:kms:us-east-1:111111111111:key/k".into(), id: "k".into() })
            }
            EnvStep::Role(_) | EnvStep::TargetRole(_) => EnvOutput::Role(Some(RoleOutputs {
                arn: "arn:aws:iam::222222222222:role/r".into(),
                created: SystemTime::UNIX_EPOCH,
            })),
            EnvStep::Domain => EnvOutput::Domain(Some((
                DomainOutputs {
                    id: "d-1".into(),
                    arn: "arn:d-1".into(),
                    url: Some("https://d-1".into()),
                    home_efs: None,
                },
                None,
            ))),
            EnvStep::UserProfiles => EnvOutput::Profiles(vec!["alice".into()]),
            EnvStep::RemoveTarget(_) => EnvOutput::Removed(vec![RetainedResource {
                resource: "s3-bucket".into(),
                id: "capture".into(),
                reason: "it holds data".into(),
            }]),
            _ => EnvOutput::Done,
        }
    }

    /// The results of a pass in which each step does what `result` says (I/O-free).
    async fn simulate(
        plan: &Plan,
        leaving: &[String],
        result: impl Fn(&EnvStep) -> Option<Done<EnvOutput>>,
    ) -> Results<EnvStep, EnvOutput> {
        let steps = plan
            .graph(leaving)
            .into_iter()
            .map(|(id, needs)| {
                let done = result(&id).unwrap_or_else(|| Done::Ready(output(&id)));
                Step::new(id, needs, Lane::new("111111111111", Service::Ec2), move |_| {
                    let done = done.clone();
                    async move { done }.boxed()
                })
            })
            .collect();
        let (lanes, metrics) = (Lanes::new(8), Metrics::new().unwrap());
        Runner { lanes: &lanes, metrics: &metrics, retry: std::time::Duration::from_millis(10) }
            .run("Test", steps, &Default::default())
            .await
    }

    fn denied() -> Done<EnvOutput> {
        let error = AwsError { kind: ErrorKind::AccessDenied, code: "AccessDenied".into(), message: "no iam".into() };
        Done::Failed(Failure::new(error, "IAM role fraud-model-execution in staging"))
    }

    fn component(folded: &Folded, component: Component) -> &Outcome {
        &folded.components.iter().find(|c| c.component == component).unwrap().outcome
    }

    #[tokio::test]
    async fn a_refusal_in_one_target_account_stalls_only_once_nothing_else_progresses() {
        let plan = example(json!([{"name": "alice", "persona": "DataScientist"}]));
        let previous = DataScienceEnvironmentStatus::default();
        let staging_role = EnvStep::TargetRole("staging".into());
        let results = simulate(&plan, &[], |id| (*id == staging_role).then(denied)).await;
        let folded = fold(&plan, &previous, &results);
        let Outcome::Stalled { reason: Reason::AccessDenied, message } = component(&folded, Component::TargetAccounts)
        else {
            panic!("{folded:?}")
        };
        assert!(
            message
                .starts_with("AccessDenied: IAM role fraud-model-execution in staging (step TargetRole(\"staging\"))"),
            "{message}"
        );
        assert!(message.ends_with("(account staging for stage staging)"), "{message}");
        assert!(component(&folded, Component::Studio).is_ready(), "Studio waited for staging");
        assert!(component(&folded, Component::Identity).is_ready());
        let encryption = component(&folded, Component::Encryption).message();
        assert!(encryption.contains("which failed: AccessDenied"), "{encryption}");
        assert!(
            matches!(folded.outcome, Outcome::Stalled { reason: Reason::AccessDenied, .. }),
            "{:?}",
            folded.outcome
        );
        assert_eq!(folded.failure, Some(ErrorKind::AccessDenied));
        let ready: Vec<(&str, bool)> =
            folded.status.target_accounts.iter().map(|t| (t.account.as_str(), t.ready)).collect();
        assert_eq!(ready, [("staging", false), ("prod", true)]);
        assert_eq!(folded.status.studio.unwrap().domain_id.as_deref(), Some("d-1"));

        // While the domain is still being created, the object is progressing, not stalled.
        let results = simulate(&plan, &[], |id| match id {
            EnvStep::DomainInService => Some(Done::pending("Studio domain d-1 is Pending")),
            id if *id == staging_role => Some(denied()),
            _ => None,
        })
        .await;
        let folded = fold(&plan, &previous, &results);
        assert!(matches!(folded.outcome, Outcome::Progressing { .. }), "{:?}", folded.outcome);
        assert!(matches!(component(&folded, Component::TargetAccounts), Outcome::Stalled { .. }));
        assert_eq!(folded.retry, Retry::Pending);
    }

    #[tokio::test]
    async fn every_step_ready_folds_into_ready_with_every_status_field() {
        let plan = example(json!([{"name": "alice", "persona": "DataScientist"}]));
        let results = simulate(&plan, &[], |_| None).await;
        let folded = fold(&plan, &DataScienceEnvironmentStatus::default(), &results);
        assert!(folded.outcome.is_ready(), "{:?}", folded.outcome);
        assert!(folded.components.iter().all(|c| c.outcome.is_ready()), "{:?}", folded.components);
        assert_eq!(folded.retry, Retry::Drift);
        let status = folded.status;
        assert_eq!(status.network.unwrap().security_group_ids["workloads"], "sg-1");
        assert!(status.encryption.unwrap().s3_key_arn.is_some());
        assert!(status.storage.unwrap().models_bucket.is_some());
        assert!(status.identity.unwrap().persona_role_arns.contains_key("DataScientist"));
        assert_eq!(status.studio.unwrap().user_profiles, ["alice"]);
        assert!(status.target_accounts.iter().all(|t| t.ready && t.data_capture_bucket.is_some()));
    }

    #[tokio::test]
    async fn a_target_the_spec_dropped_stays_in_status_until_its_cleanup_is_done() {
        let plan = example(json!([]));
        let old = TargetAccountStatus {
            account: "old".into(),
            account_id: Some("444444444444".into()),
            stage: "staging".into(),
            ..TargetAccountStatus::default()
        };
        let previous = DataScienceEnvironmentStatus { target_accounts: vec![old], ..Default::default() };
        let leaving = ["old".to_owned()];
        let removal = EnvStep::RemoveTarget("old".into());
        let results = simulate(&plan, &leaving, |id| (*id == removal).then(|| Done::pending("buckets emptying"))).await;
        let folded = fold(&plan, &previous, &results);
        assert!(folded.status.target_accounts.iter().any(|t| t.account == "old"), "released before cleanup");
        let message = component(&folded, Component::TargetAccounts).message();
        assert!(message.starts_with("old (staging): buckets emptying"), "{message}");
        let results = simulate(&plan, &leaving, |_| None).await;
        let folded = fold(&plan, &previous, &results);
        assert!(!folded.status.target_accounts.iter().any(|t| t.account == "old"));
        assert_eq!(folded.status.retained.len(), 1, "what the cleanup kept is recorded");
        assert!(folded.outcome.is_ready());
    }
}
