//! Plan: the spec and its resolved accounts become every name, CIDR, endpoint, key, bucket and
//! role of the environment, in the dev account and in each target account. Pure; the steps
//! take it from here.

use std::collections::BTreeMap;
use std::sync::Arc;

use sagekeeper_api::cidr;
use sagekeeper_api::environment::{ExistingNetwork, InternetAccess, Persona, PersonaPrincipals};
use sagekeeper_api::naming::EnvironmentNames;
use sagekeeper_api::{AwsAccount, DataScienceEnvironment};
use sagekeeper_aws::AccountAccess;
use sagekeeper_aws::network::{Existing, GroupNames, InterfaceEndpoint, NetworkPlan, Zone};
use sagekeeper_aws::steps::Owner;
use sagekeeper_policy::inputs::Accounts;

use crate::resolve::SetMembers;

/// Interface endpoints of the dev VPC when the spec lists none (suffixes of
/// `com.amazonaws.<region>.`; `notebook` is `aws.sagemaker.<region>.notebook`).
pub(crate) const DEFAULT_ENDPOINTS: &[&str] = &[
    "sagemaker.api",
    "sagemaker.runtime",
    "sagemaker.featurestore-runtime",
    "sagemaker.metrics",
    "sts",
    "kms",
    "logs",
    "monitoring",
    "ecr.api",
    "ecr.dkr",
    "ssm",
    "notebook",
];

/// What a SageMaker endpoint in a target account needs to reach, privately.
pub(crate) const TARGET_ENDPOINTS: &[&str] =
    &["sagemaker.api", "sagemaker.runtime", "sts", "kms", "logs", "monitoring", "ecr.api", "ecr.dkr"];

/// One account the environment uses, resolved.
#[derive(Clone, Debug)]
pub(crate) struct AccountPlan {
    /// The AwsAccount's name.
    pub(crate) name: String,
    /// Its 12-digit id.
    pub(crate) account_id: String,
    /// How to reach it.
    pub(crate) access: AccountAccess,
    /// sagekeeper's own principal there (exempt from the endpoint denies).
    pub(crate) controller_arns: Vec<String>,
    /// The permissions boundary every role made there carries.
    pub(crate) boundary: String,
}

/// Everything in one target account.
#[derive(Clone, Debug)]
pub(crate) struct TargetPlan {
    pub(crate) account: AccountPlan,
    pub(crate) stage: String,
    pub(crate) network: NetworkPlan,
    pub(crate) key_alias: String,
    pub(crate) capture_bucket: String,
    pub(crate) model_role: String,
    /// The organization path that admits the account in policies, when a set brought it.
    pub(crate) org_path: Option<String>,
}

/// The whole environment.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) names: EnvironmentNames,
    pub(crate) owner: Owner,
    pub(crate) partition: String,
    pub(crate) region: String,
    pub(crate) dev: AccountPlan,
    pub(crate) zones: Vec<String>,
    pub(crate) network: NetworkPlan,
    pub(crate) rotation: bool,
    /// Keys someone else owns (spec.encryption.existingKeys), used as they are.
    pub(crate) existing_keys: BTreeMap<KeyPurpose, String>,
    pub(crate) versioning: bool,
    /// On teardown, delete data too (bucket objects, the Studio home file system).
    pub(crate) delete_data: bool,
    pub(crate) data_bucket: String,
    pub(crate) models_bucket: String,
    pub(crate) roles: RoleNames,
    /// The personas in use: by a user profile, or named in spec.identity.personaPrincipals.
    pub(crate) personas: Vec<Persona>,
    /// Who besides SageMaker may assume each persona role.
    pub(crate) persona_principals: PersonaPrincipals,
    pub(crate) studio: Option<StudioPlan>,
    /// Flow logs of every VPC of the environment, when on.
    pub(crate) flow_logs: Option<FlowLogsPlan>,
    /// The names of what flow logs use, the same in every account.
    pub(crate) flow_log_names: FlowLogNames,
    pub(crate) targets: Vec<TargetPlan>,
    /// The dev and every target account: by id, sorted, or below the organization paths of
    /// the sets that brought them.
    pub(crate) accounts: Accounts,
    target_cidr: String,
    target_zones: Vec<Zone>,
    target_existing: BTreeMap<String, ExistingNetwork>,
    /// The environment's namespace, to which borrowed VPCs and keys must be lent.
    pub(crate) namespace: String,
    group_names: GroupNames,
}

/// The dev account's role names.
#[derive(Clone, Debug)]
pub(crate) struct RoleNames {
    pub(crate) execution: String,
    pub(crate) pipeline: String,
    pub(crate) model_execution: String,
    pub(crate) data_scientist: String,
    pub(crate) team_admin: String,
}

/// What flow logs record, and for how long.
#[derive(Clone, Debug)]
pub(crate) struct FlowLogsPlan {
    pub(crate) traffic_type: &'static str,
    pub(crate) retention_days: i32,
}

/// The log group and delivery role of flow logs.
#[derive(Clone, Debug)]
pub(crate) struct FlowLogNames {
    pub(crate) log_group: String,
    pub(crate) role: String,
}

/// The Studio domain and its users.
#[derive(Clone, Debug)]
pub(crate) struct StudioPlan {
    pub(crate) domain: String,
    pub(crate) profiles: Vec<(String, Persona)>,
}

impl Plan {
    /// Everything the environment has in a target account serving `stage`.
    pub(crate) fn target(&self, stage: &str, account: &AwsAccount, org_path: Option<String>) -> TargetPlan {
        let account = account_plan(account, &self.region);
        let capture_bucket = self.names.bucket(&account.account_id, &self.region, "capture");
        let buckets = [self.models_bucket.clone(), capture_bucket.clone()];
        let endpoints: Vec<String> = TARGET_ENDPOINTS.iter().map(|s| (*s).to_owned()).collect();
        let field = format!("spec.targetNetwork.existing.{}", account.name);
        let existing = self.target_existing.get(&account.name).map(|e| existing(&field, e, &self.namespace));
        TargetPlan {
            network: NetworkPlan {
                owner: self.owner.clone(),
                name: self.names.ec2_name(stage),
                region: self.region.clone(),
                vpc_cidr: self.target_cidr.clone(),
                zones: if existing.is_some() { Vec::new() } else { self.target_zones.clone() },
                nat: false,
                group_names: self.group_names.clone(),
                interface_endpoints: interface_endpoints(&endpoints, &self.partition, &self.region, &self.accounts),
                s3_endpoint_policy: sagekeeper_policy::endpoints::s3_gateway_policy(
                    &self.partition,
                    &self.region,
                    &buckets,
                    &self.accounts,
                ),
                existing,
            },
            key_alias: self.names.key_alias("endpoint"),
            capture_bucket,
            model_role: self.names.role("model-execution"),
            stage: stage.to_owned(),
            account,
            org_path,
        }
    }

    /// The ARN of role `name` in `account`.
    pub(crate) fn role_arn(&self, account: &str, name: &str) -> String {
        format!("arn:{}:iam::{account}:role/{name}", self.partition)
    }

    /// The role name of a persona.
    pub(crate) fn persona_role(&self, persona: Persona) -> &str {
        match persona {
            Persona::DataScientist => &self.roles.data_scientist,
            Persona::TeamAdmin => &self.roles.team_admin,
        }
    }
}

/// A resolved account: the AwsAccount and the controller principal sagekeeper uses there.
pub(crate) fn account_plan(account: &AwsAccount, region: &str) -> AccountPlan {
    let caller = account.status.as_ref().and_then(|s| s.caller_arn.clone());
    let controller =
        account.spec.role_arn.clone().or_else(|| caller.as_deref().map(principal_of)).into_iter().collect();
    AccountPlan {
        name: account.metadata.name.clone().unwrap_or_default(),
        account_id: account.spec.account_id.clone(),
        access: crate::resolve::access_of(account, Some(region)),
        controller_arns: controller,
        boundary: account.spec.boundary_arn(),
    }
}

/// The IAM principal behind a caller ARN: an assumed-role session becomes its role (policies
/// match `aws:PrincipalArn`, which is the role, never the session).
pub(crate) fn principal_of(caller: &str) -> String {
    match caller.split_once(":assumed-role/") {
        Some((prefix, rest)) => {
            let role = rest.split('/').next().unwrap_or_default();
            format!("{}:role/{role}", prefix.replacen(":sts:", ":iam:", 1))
        }
        None => caller.to_owned(),
    }
}

/// The interface endpoints of `keys`, each admitting only the environment's `accounts`.
fn interface_endpoints(keys: &[String], partition: &str, region: &str, accounts: &Accounts) -> Vec<InterfaceEndpoint> {
    keys.iter()
        .map(|key| InterfaceEndpoint {
            key: key.clone(),
            service: if key == "notebook" {
                format!("aws.sagemaker.{region}.notebook")
            } else {
                format!("com.amazonaws.{region}.{key}")
            },
            policy: sagekeeper_policy::endpoints::interface_policy(partition, region, key, accounts),
        })
        .collect()
}

/// The zones with their subnet CIDRs. A zone keeps the CIDR index it was given when first
/// pinned, so reordering or adding zones never moves an existing subnet.
fn zones(vpc_cidr: &str, zones: &[String], pinned: &[String]) -> Vec<Zone> {
    let mut used: Vec<usize> = zones.iter().filter_map(|z| pinned.iter().position(|p| p == z)).collect();
    zones
        .iter()
        .map(|z| {
            let index = pinned.iter().position(|p| p == z).unwrap_or_else(|| {
                let next = (0..cidr::MAX_ZONES).find(|i| !used.contains(i)).unwrap_or(0);
                used.push(next);
                next
            });
            Zone {
                name: z.clone(),
                private_cidr: cidr::private_subnet(vpc_cidr, index).unwrap_or_default(),
                public_cidr: cidr::public_subnet(vpc_cidr, index).unwrap_or_default(),
            }
        })
        .collect()
}

/// Builds the plan.
pub(crate) fn plan(
    env: &DataScienceEnvironment,
    dev: &Arc<AwsAccount>,
    targets: &[(String, Arc<AwsAccount>)],
    sets: &[SetMembers],
    chosen_zones: &[String],
    pinned_zones: &[String],
) -> Plan {
    let namespace = env.metadata.namespace.clone().unwrap_or_default();
    let name = env.metadata.name.clone().unwrap_or_default();
    let names = EnvironmentNames::new(&namespace, &name);
    let uid = env.metadata.uid.clone().unwrap_or_default();
    let spec = &env.spec;
    let region = spec.region.clone();
    let partition = partition_of(dev.spec.role_arn.as_deref());
    let mut base_tags = names.tags(&uid, "", &spec.tags);
    base_tags.remove(sagekeeper_api::naming::COMPONENT_TAG);
    let applied = env.status.as_ref().map(|s| s.tag_keys.as_slice()).unwrap_or_default();
    let removed_tags = applied.iter().filter(|k| !spec.tags.contains_key(*k)).cloned().collect();
    let owner = Owner { uid, base_tags, removed_tags };
    let dev = account_plan(dev, &region);
    let data_bucket = names.bucket(&dev.account_id, &region, "data");
    let models_bucket = names.bucket(&dev.account_id, &region, "models");
    let endpoint_keys: Vec<String> = spec
        .network
        .vpc_endpoints
        .clone()
        .unwrap_or_else(|| DEFAULT_ENDPOINTS.iter().map(|s| (*s).to_owned()).collect());
    let groups =
        GroupNames { workloads: names.security_group("workloads"), endpoints: names.security_group("endpoints") };
    let dev_buckets = [data_bucket.clone(), models_bucket.clone()];
    // Every account of the environment: principals and resources its endpoints admit, those a
    // set brought by its unit's path.
    let org_path = |account: &AwsAccount| {
        let name = account.metadata.name.as_deref().unwrap_or_default();
        sets.iter().find(|s| s.made.iter().any(|a| a == name)).and_then(|s| s.org_path.clone())
    };
    let mut accounts = Accounts { ids: vec![dev.account_id.clone()], org_paths: Vec::new() };
    for (_, account) in targets {
        match org_path(account) {
            Some(path) => accounts.org_paths.push(path),
            None => accounts.ids.push(account.spec.account_id.clone()),
        }
    }
    for list in [&mut accounts.ids, &mut accounts.org_paths] {
        list.sort();
        list.dedup();
    }
    let existing = spec.network.existing.as_ref().map(|e| existing("spec.network.existing", e, &namespace));
    let network = NetworkPlan {
        owner: owner.clone(),
        name: names.ec2_name("dev"),
        region: region.clone(),
        vpc_cidr: spec.network.vpc_cidr.clone(),
        zones: match existing {
            Some(_) => Vec::new(),
            None => zones(&spec.network.vpc_cidr, chosen_zones, pinned_zones),
        },
        nat: spec.network.internet_access == InternetAccess::NatGateway,
        group_names: groups.clone(),
        interface_endpoints: interface_endpoints(&endpoint_keys, &partition, &region, &accounts),
        s3_endpoint_policy: sagekeeper_policy::endpoints::s3_gateway_policy(
            &partition,
            &region,
            &dev_buckets,
            &accounts,
        ),
        existing,
    };
    let target_cidr = spec.target_network.vpc_cidr.clone().unwrap_or_else(|| spec.network.vpc_cidr.clone());
    // A borrowed dev network may span more zones than a made one can have.
    let target_chosen: Vec<String> = chosen_zones.iter().take(cidr::MAX_ZONES).cloned().collect();
    let target_zones = zones(&target_cidr, &target_chosen, pinned_zones);
    let principals = &spec.identity.persona_principals;
    let mut personas: Vec<Persona> = spec.studio.user_profiles.iter().map(|p| p.persona).collect();
    personas.extend([Persona::DataScientist, Persona::TeamAdmin].into_iter().filter(|p| !principals.of(*p).is_empty()));
    personas.sort();
    personas.dedup();
    let studio = spec.studio.enabled.then(|| StudioPlan {
        domain: names.domain(),
        profiles: spec.studio.user_profiles.iter().map(|p| (p.name.clone(), p.persona)).collect(),
    });
    let mut plan = Plan {
        roles: RoleNames {
            execution: names.role("execution"),
            pipeline: names.role("pipeline"),
            model_execution: names.role("model-execution"),
            data_scientist: names.role("data-scientist"),
            team_admin: names.role("team-admin"),
        },
        owner,
        partition,
        region,
        dev,
        zones: chosen_zones.to_vec(),
        network,
        rotation: spec.encryption.key_rotation,
        existing_keys: (spec.encryption.existing_keys.iter())
            .flat_map(|keys| keys.named())
            .filter_map(|(name, arn)| Some((KeyPurpose::ALL.into_iter().find(|p| p.name() == name)?, arn.to_owned())))
            .collect(),
        versioning: spec.storage.versioning,
        delete_data: spec.delete_data_on_delete,
        data_bucket,
        models_bucket,
        personas,
        persona_principals: principals.clone(),
        studio,
        flow_logs: spec.network.flow_logs.enabled.then(|| FlowLogsPlan {
            traffic_type: spec.network.flow_logs.traffic_type.as_str(),
            retention_days: spec.network.flow_logs.retention_days,
        }),
        flow_log_names: FlowLogNames { log_group: names.flow_log_group(), role: names.role("flow-logs") },
        targets: Vec::new(),
        accounts,
        target_cidr,
        target_zones,
        target_existing: target_existing(env),
        namespace: namespace.clone(),
        group_names: groups,
        names,
    };
    plan.targets = targets.iter().map(|(stage, account)| plan.target(stage, account, org_path(account))).collect();
    plan
}

/// The plan's form of a spec's existing network (`field` names it in messages).
pub(crate) fn existing(field: &str, spec: &ExistingNetwork, namespace: &str) -> Existing {
    Existing {
        field: field.to_owned(),
        vpc_id: spec.vpc_id.clone(),
        subnet_ids: spec.private_subnet_ids.clone(),
        namespace: namespace.to_owned(),
    }
}

/// The existing networks of target accounts: the spec's, and those status records as borrowed
/// for accounts the spec no longer names (so cleaning up there leaves them as they are).
fn target_existing(env: &DataScienceEnvironment) -> BTreeMap<String, ExistingNetwork> {
    let mut existing = env.spec.target_network.existing.clone();
    for recorded in env.status.iter().flat_map(|s| &s.target_accounts) {
        if let (Some(vpc_id), true) = (&recorded.vpc_id, recorded.existing_network) {
            existing.entry(recorded.account.clone()).or_insert_with(|| ExistingNetwork {
                vpc_id: vpc_id.clone(),
                private_subnet_ids: recorded.private_subnet_ids.clone(),
            });
        }
    }
    existing
}

/// The partition of the dev account, from its role ARN (`aws` when there is none).
fn partition_of(role_arn: Option<&str>) -> String {
    role_arn.and_then(|arn| arn.split(':').nth(1)).unwrap_or("aws").to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::{BTreeMap, BTreeSet};

    fn account(name: &str, id: &str) -> Arc<AwsAccount> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "sagekeeper.io/v1alpha1", "kind": "AwsAccount", "metadata": {"name": name},
                "spec": {"accountId": id, "roleArn": format!("arn:aws:iam::{id}:role/sagekeeper-deployer"), "namespaceSelector": {}}
            }))
            .unwrap(),
        )
    }

    /// The plan of an environment with a dev account, staging and production, and `profiles`.
    pub(crate) fn example(profiles: serde_json::Value) -> Plan {
        let env: DataScienceEnvironment = serde_json::from_value(json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "DataScienceEnvironment",
            "metadata": {"name": "fraud", "namespace": "team-a", "uid": "u-1"},
            "spec": {"account": "dev", "region": "us-east-1", "studio": {"userProfiles": profiles},
                     "targetAccounts": {"staging": ["staging"], "production": ["prod"]}}
        }))
        .unwrap();
        let targets = [
            ("staging".to_owned(), account("staging", "222222222222")),
            ("production".to_owned(), account("prod", "333333333333")),
        ];
        let zones = ["us-east-1a".to_owned(), "us-east-1b".to_owned()];
        plan(&env, &account("dev", "111111111111"), &targets, &[], &zones, &[])
    }

    #[test]
    fn the_policies_owner_tag_is_the_one_sagekeeper_puts_on_its_roles() {
        assert_eq!(sagekeeper_policy::inputs::OWNER_UID_TAG_KEY, sagekeeper_api::naming::OWNER_UID_TAG);
    }

    #[test]
    fn accounts_a_set_brought_are_admitted_by_its_units_path_once_known_and_the_others_by_id() {
        let env: DataScienceEnvironment = serde_json::from_value(json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "DataScienceEnvironment",
            "metadata": {"name": "fraud", "namespace": "team-a", "uid": "u-1"},
            "spec": {"account": "dev", "region": "us-east-1", "targetAccounts": {"staging": ["staging"]},
                     "targetAccountSets": {"production": ["prod"]}}
        }))
        .unwrap();
        let targets = [
            ("staging".to_owned(), account("staging", "222222222222")),
            ("production".to_owned(), account("prod-333333333333", "333333333333")),
        ];
        let path = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*".to_owned();
        let dev = account("dev", "111111111111");
        let zones = ["us-east-1a".to_owned()];
        let set = |org_path: Option<String>| {
            let accounts = vec!["prod-333333333333".to_owned()];
            [SetMembers { made: accounts.clone(), accounts, org_path }]
        };
        let plan = plan(&env, &dev, &targets, &set(Some(path.clone())), &zones, &[]);
        assert_eq!(
            plan.accounts,
            Accounts { ids: vec!["111111111111".into(), "222222222222".into()], org_paths: vec![path.clone()] }
        );
        assert_eq!(plan.targets.iter().map(|t| t.org_path.clone()).collect::<Vec<_>>(), [None, Some(path.clone())]);
        let endpoint = &plan.targets[1].network.interface_endpoints[0].policy;
        assert!(sagekeeper_policy::find_statement(endpoint, "EnvironmentAccountsByOrgPath").is_some(), "{endpoint}");
        assert!(!endpoint.to_string().contains("333333333333"), "{endpoint}");
        // Before the set has read its unit's path, its accounts are listed.
        let unread = super::plan(&env, &dev, &targets, &set(None), &zones, &[]);
        assert_eq!(unread.accounts.ids, ["111111111111", "222222222222", "333333333333"]);
        assert!(unread.accounts.org_paths.is_empty() && unread.targets[1].org_path.is_none());
        // An AwsAccount that existed before the set (another role name, perhaps) is named.
        let existing =
            [SetMembers { accounts: vec!["prod-333333333333".into()], made: Vec::new(), org_path: Some(path) }];
        let named = super::plan(&env, &dev, &targets, &existing, &zones, &[]);
        assert_eq!(named.accounts.ids, ["111111111111", "222222222222", "333333333333"]);
        assert!(named.targets[1].org_path.is_none());
    }

    /// Every step `id` waits for, directly or through others.
    fn upstream(graph: &[(EnvStep, Vec<EnvStep>)], id: &EnvStep) -> BTreeSet<EnvStep> {
        let needs: BTreeMap<&EnvStep, &Vec<EnvStep>> = graph.iter().map(|(id, n)| (id, n)).collect();
        let mut seen = BTreeSet::new();
        let mut todo = vec![id.clone()];
        while let Some(next) = todo.pop() {
            for need in needs.get(&next).copied().into_iter().flatten() {
                if seen.insert(need.clone()) {
                    todo.push(need.clone());
                }
            }
        }
        seen
    }

    #[test]
    fn the_studio_domain_waits_only_for_the_dev_network_studio_key_and_execution_role() {
        let plan = example(json!([{"name": "alice", "persona": "DataScientist"}]));
        let graph = plan.graph(&[]);
        let before = upstream(&graph, &EnvStep::Domain);
        assert!(before.iter().all(|s| s.target().is_none()), "the domain waits for a target account: {before:?}");
        let expected: BTreeSet<EnvStep> = [
            EnvStep::Network,
            EnvStep::Key(KeyPurpose::Ebs),
            EnvStep::Key(KeyPurpose::Studio),
            EnvStep::Key(KeyPurpose::S3),
            EnvStep::KeyPolicy(KeyPurpose::Studio),
            EnvStep::Role(RoleKind::Execution),
            EnvStep::Role(RoleKind::Persona(Persona::DataScientist)),
        ]
        .into();
        assert_eq!(before, expected, "endpoint availability and unrelated roles never hold the domain back");
    }

    #[test]
    fn the_s3_key_policy_and_models_bucket_wait_for_every_accounts_role_and_network() {
        let plan = example(json!([]));
        let graph = plan.graph(&[]);
        for id in [EnvStep::KeyPolicy(KeyPurpose::S3), EnvStep::Bucket(BucketPurpose::Models)] {
            let before = upstream(&graph, &id);
            for account in ["staging", "prod"] {
                assert!(before.contains(&EnvStep::TargetRole(account.into())), "{id:?} names {account}'s role");
                assert!(
                    before.contains(&EnvStep::TargetVpcEndpoints(account.into())),
                    "{id:?} names {account}'s endpoints"
                );
            }
        }
        let data = upstream(&graph, &EnvStep::Bucket(BucketPurpose::Data));
        assert!(!data.iter().any(|s| matches!(s, EnvStep::TargetRole(_))), "the data bucket names no target role");
    }

    #[test]
    fn a_target_account_waits_for_nothing_of_another_target_account() {
        let plan = example(json!([]));
        let graph = plan.graph(&[]);
        for (id, _) in graph.iter().filter(|(id, _)| id.target() == Some("prod")) {
            let before = upstream(&graph, id);
            assert!(before.iter().all(|s| s.target() != Some("staging")), "{id:?} waits for staging: {before:?}");
        }
    }

    #[test]
    fn teardown_is_the_graph_reversed_through_the_steps_that_only_wait_or_write_policies() {
        use EnvStep as S;
        // No persona in use and Studio without profiles: teardown still orders all of them.
        let plan = example(json!([]));
        let down: BTreeMap<EnvStep, Vec<EnvStep>> = plan.teardown_graph().into_iter().collect();
        assert!(down.keys().all(EnvStep::removable));
        let after = |id: &EnvStep| upstream(&plan.teardown_graph(), id);
        // What nothing needs goes first: the domain and the buckets.
        for first in [S::Home, S::Bucket(BucketPurpose::Data), S::Bucket(BucketPurpose::Models)] {
            assert!(down[&first].is_empty(), "{first:?} waits for {:?}", down[&first]);
        }
        // The home is recorded before the domain, the network and the studio key go.
        for id in [S::Domain, S::Network, S::Key(KeyPurpose::Studio)] {
            assert!(down[&id].contains(&S::Home), "{id:?}");
        }
        // A role goes after the buckets whose policies name it; the execution role after the
        // domain that runs as it.
        for kind in RoleKind::ALL {
            assert!(after(&S::Role(kind)).contains(&S::Bucket(BucketPurpose::Data)), "{kind:?}");
        }
        assert!(after(&S::Role(RoleKind::Execution)).contains(&S::Domain));
        assert!(after(&S::Network).contains(&S::Domain));
        assert!(after(&S::Key(KeyPurpose::Studio)).contains(&S::Domain));
        let s3 = after(&S::Key(KeyPurpose::S3));
        assert!(s3.contains(&S::Bucket(BucketPurpose::Models)) && s3.contains(&S::TargetRole("prod".into())));
        assert!(after(&S::TargetKey("prod".into())).contains(&S::CaptureBucket("prod".into())));
        // Another target account's teardown never waits for this one's.
        assert!(after(&S::TargetKey("prod".into())).iter().all(|s| s.target() != Some("staging")));
        // And reversed again, every forward need is kept: a step goes after all that needs it.
        for (id, needs) in plan.graph(&[]) {
            for need in needs.iter().filter(|n| n.removable() && id.removable()) {
                assert!(down[need].contains(&id), "{need:?} must go after {id:?}");
            }
        }
    }

    #[test]
    fn every_need_is_a_step_and_the_graph_has_no_cycle() {
        for profiles in [json!([]), json!([{"name": "bob", "persona": "TeamAdmin"}])] {
            let plan = example(profiles);
            let graph = plan.graph(&["old".to_owned()]);
            let ids: BTreeSet<&EnvStep> = graph.iter().map(|(id, _)| id).collect();
            assert_eq!(ids.len(), graph.len(), "a step is declared twice");
            for (id, needs) in &graph {
                assert!(needs.iter().all(|n| ids.contains(n)), "{id:?} needs an undeclared step: {needs:?}");
                assert!(!upstream(&graph, id).contains(id), "{id:?} waits for itself");
            }
            assert!(ids.contains(&EnvStep::RemoveTarget("old".into())));
        }
    }

    #[test]
    fn a_persona_no_profile_uses_is_removed_and_nothing_waits_for_it() {
        let plan = example(json!([{"name": "alice", "persona": "DataScientist"}]));
        let graph = plan.graph(&[]);
        let team_admin = EnvStep::Role(RoleKind::Persona(Persona::TeamAdmin));
        let (_, needs) = graph.iter().find(|(id, _)| *id == team_admin).unwrap();
        assert!(needs.is_empty(), "removing a role needs nothing: {needs:?}");
        assert!(graph.iter().all(|(_, needs)| !needs.contains(&team_admin)), "something waits for a removed role");
    }

    #[test]
    fn assumed_role_sessions_become_their_role() {
        assert_eq!(
            principal_of("arn:aws:sts::111111111111:assumed-role/sagekeeper-deployer/sagekeeper"),
            "arn:aws:iam::111111111111:role/sagekeeper-deployer"
        );
        assert_eq!(principal_of("arn:aws:iam::111111111111:user/ci"), "arn:aws:iam::111111111111:user/ci");
        assert_eq!(
            principal_of("arn:aws-us-gov:sts::111111111111:assumed-role/r/s"),
            "arn:aws-us-gov:iam::111111111111:role/r"
        );
    }

    #[test]
    fn zones_keep_their_pinned_cidr_when_reordered_or_extended() {
        let first = zones("10.0.0.0/16", &["us-east-1a".into(), "us-east-1b".into()], &[]);
        assert_eq!(first[1].private_cidr, "10.0.32.0/19");
        let pinned = vec!["us-east-1a".to_owned(), "us-east-1b".to_owned()];
        let later = zones("10.0.0.0/16", &["us-east-1c".into(), "us-east-1b".into(), "us-east-1a".into()], &pinned);
        assert_eq!(later[1].private_cidr, "10.0.32.0/19", "us-east-1b keeps its block");
        assert_eq!(later[2].private_cidr, "10.0.0.0/19", "us-east-1a keeps its block");
        assert_eq!(later[0].private_cidr, "10.0.64.0/19", "the new zone takes the next free block");
        assert_eq!(later[0].public_cidr, "10.0.160.0/20");
    }

    #[test]
    fn endpoint_keys_map_to_service_names() {
        let accounts = Accounts { ids: vec!["111111111111".to_owned()], org_paths: Vec::new() };
        let endpoints =
            interface_endpoints(&["sagemaker.api".into(), "notebook".into()], "aws", "eu-west-1", &accounts);
        assert_eq!(endpoints[0].service, "com.amazonaws.eu-west-1.sagemaker.api");
        assert_eq!(endpoints[1].service, "aws.sagemaker.eu-west-1.notebook");
        assert_eq!(
            endpoints[1].policy,
            sagekeeper_policy::endpoints::interface_policy("aws", "eu-west-1", "notebook", &accounts)
        );
        assert!(DEFAULT_ENDPOINTS.contains(&"sagemaker.featurestore-runtime") && DEFAULT_ENDPOINTS.len() == 12);
    }
}

/// A dev key, by what it encrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum KeyPurpose {
    Ebs,
    Studio,
    S3,
}

impl KeyPurpose {
    /// All three, in order.
    pub(crate) const ALL: [Self; 3] = [Self::Ebs, Self::Studio, Self::S3];

    /// Its name in aliases, components and messages.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Ebs => "ebs",
            Self::Studio => "studio",
            Self::S3 => "s3",
        }
    }
}

/// A dev role, by what it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum RoleKind {
    Execution,
    Pipeline,
    ModelExecution,
    Persona(Persona),
}

impl RoleKind {
    /// All of them, in order.
    pub(crate) const ALL: [Self; 5] = [
        Self::Execution,
        Self::Pipeline,
        Self::ModelExecution,
        Self::Persona(Persona::DataScientist),
        Self::Persona(Persona::TeamAdmin),
    ];
}

/// A dev bucket, by what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum BucketPurpose {
    Data,
    Models,
}

/// One step of an environment. Target steps carry the AwsAccount's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum EnvStep {
    /// The dev VPC, subnets, route tables, gateways and security groups.
    Network,
    /// The dev VPC's endpoints (their ids, as soon as they exist).
    VpcEndpoints,
    /// Waits until the dev network's NAT gateways and VPC endpoints are available.
    NetworkAvailable,
    /// A dev key with its administrative policy.
    Key(KeyPurpose),
    /// A dev role: ensured when in use, removed when a persona is no longer used.
    Role(RoleKind),
    /// A dev key's full policy, naming the roles (and for s3, every VPC endpoint).
    KeyPolicy(KeyPurpose),
    /// A dev bucket with its policy.
    Bucket(BucketPurpose),
    /// The Studio domain (removed when Studio is disabled).
    Domain,
    /// Waits until the domain is InService.
    DomainInService,
    /// The domain's user profiles.
    UserProfiles,
    /// A target account's network.
    TargetNetwork(String),
    /// A target account's VPC endpoints.
    TargetVpcEndpoints(String),
    /// Waits until a target network's VPC endpoints are available.
    TargetNetworkAvailable(String),
    /// A target account's endpoint key with its administrative policy.
    TargetKey(String),
    /// A target account's model execution role.
    TargetRole(String),
    /// A target account's endpoint key policy, naming its role.
    TargetKeyPolicy(String),
    /// A target account's data capture bucket.
    CaptureBucket(String),
    /// The flow-logs delivery role in the dev account (`None`) or a target account: ensured while flow logs are on, else removed.
    FlowLogRole(Option<String>),
    /// The VPC's flow log group (encrypted with the ebs key in the dev account, the endpoint
    /// key in a target account) and flow log there; with flow logs off, the flow log goes.
    FlowLogs(Option<String>),
    /// Cleans up in an account the spec no longer lists.
    RemoveTarget(String),
    /// Teardown only: records the Studio home file system as kept (unless data goes) before
    /// the domain goes.
    Home,
}

impl EnvStep {
    /// A step whose resource teardown removes (the others only wait, or write a policy that
    /// goes with its resource).
    pub(crate) fn removable(&self) -> bool {
        matches!(
            self,
            Self::Network
                | Self::Key(_)
                | Self::Role(_)
                | Self::Bucket(_)
                | Self::Home
                | Self::Domain
                | Self::TargetNetwork(_)
                | Self::TargetKey(_)
                | Self::TargetRole(_)
                | Self::CaptureBucket(_)
                | Self::FlowLogRole(_)
                | Self::FlowLogs(_)
        )
    }

    /// The target account (AwsAccount name) the step works in, if not the dev account.
    pub(crate) fn target(&self) -> Option<&str> {
        match self {
            Self::TargetNetwork(a)
            | Self::TargetVpcEndpoints(a)
            | Self::TargetNetworkAvailable(a)
            | Self::TargetKey(a)
            | Self::TargetRole(a)
            | Self::TargetKeyPolicy(a)
            | Self::CaptureBucket(a)
            | Self::RemoveTarget(a) => Some(a),
            Self::FlowLogRole(a) | Self::FlowLogs(a) => a.as_deref(),
            _ => None,
        }
    }
}

impl crate::steps::StepId for EnvStep {
    fn step(&self) -> &'static str {
        match self {
            Self::Network => "Network",
            Self::VpcEndpoints => "VpcEndpoints",
            Self::NetworkAvailable => "NetworkAvailable",
            Self::Key(_) => "Key",
            Self::Role(_) => "Role",
            Self::KeyPolicy(_) => "KeyPolicy",
            Self::Bucket(_) => "Bucket",
            Self::Domain => "Domain",
            Self::DomainInService => "DomainInService",
            Self::UserProfiles => "UserProfiles",
            Self::TargetNetwork(_) => "TargetNetwork",
            Self::TargetVpcEndpoints(_) => "TargetVpcEndpoints",
            Self::TargetNetworkAvailable(_) => "TargetNetworkAvailable",
            Self::TargetKey(_) => "TargetKey",
            Self::TargetRole(_) => "TargetRole",
            Self::TargetKeyPolicy(_) => "TargetKeyPolicy",
            Self::CaptureBucket(_) => "CaptureBucket",
            Self::FlowLogRole(_) => "FlowLogRole",
            Self::FlowLogs(_) => "FlowLogs",
            Self::RemoveTarget(_) => "RemoveTarget",
            Self::Home => "Home",
        }
    }

    fn component(&self) -> sagekeeper_api::conditions::Component {
        use sagekeeper_api::conditions::Component;
        match self {
            Self::Network | Self::VpcEndpoints | Self::NetworkAvailable => Component::Network,
            Self::FlowLogRole(None) | Self::FlowLogs(None) => Component::Network,
            Self::Key(_) | Self::KeyPolicy(_) => Component::Encryption,
            Self::Role(_) => Component::Identity,
            Self::Bucket(_) => Component::Storage,
            Self::Domain | Self::DomainInService | Self::UserProfiles | Self::Home => Component::Studio,
            _ => Component::TargetAccounts,
        }
    }
}

impl Plan {
    /// The environment as a graph: every step with the steps whose outputs it needs. A step
    /// needs exactly what its AWS call or policy document names, nothing coarser; `leaving`
    /// are the target accounts the status holds and the spec no longer lists.
    pub(crate) fn graph(&self, leaving: &[String]) -> Vec<(EnvStep, Vec<EnvStep>)> {
        self.edges(leaving, false)
    }

    /// Teardown: the graph reversed. What a step needs goes only after that step is gone; the
    /// steps that only wait or write a policy pass their dependents on. The graph reversed is
    /// the whole one (every persona, Studio), since what a spec dropped may still be there.
    pub(crate) fn teardown_graph(&self) -> Vec<(EnvStep, Vec<EnvStep>)> {
        use EnvStep as S;
        let forward = self.edges(&[], true);
        let needed_by = |id: &EnvStep| -> Vec<&EnvStep> {
            forward.iter().filter(|(_, needs)| needs.contains(id)).map(|(by, _)| by).collect()
        };
        let mut down: Vec<(EnvStep, Vec<EnvStep>)> = forward
            .iter()
            .filter(|(id, _)| id.removable())
            .map(|(id, _)| {
                let mut after: Vec<EnvStep> = Vec::new();
                let mut open: Vec<&EnvStep> = needed_by(id);
                while let Some(by) = open.pop() {
                    if by.removable() {
                        if !after.contains(by) {
                            after.push(by.clone());
                        }
                    } else {
                        open.extend(needed_by(by));
                    }
                }
                after.sort();
                (id.clone(), after)
            })
            .collect();
        // The home is recorded before the domain goes; what it keeps (the domain's file
        // system) keeps the network and the studio key too.
        for (id, after) in &mut down {
            if matches!(id, S::Domain | S::Network | S::Key(KeyPurpose::Studio)) {
                after.insert(0, S::Home);
            }
        }
        down.push((S::Home, vec![]));
        down
    }

    /// The graph; `everything`: as if every persona were in use and Studio enabled.
    fn edges(&self, leaving: &[String], everything: bool) -> Vec<(EnvStep, Vec<EnvStep>)> {
        use EnvStep as S;
        let in_use = |kind: &RoleKind| match kind {
            RoleKind::Persona(p) => everything || self.personas.contains(p),
            _ => true,
        };
        let dev_roles: Vec<EnvStep> = RoleKind::ALL.iter().filter(|k| in_use(k)).map(|k| S::Role(*k)).collect();
        let personas: Vec<EnvStep> = RoleKind::ALL
            .iter()
            .filter(|k| matches!(k, RoleKind::Persona(_)) && in_use(k))
            .map(|k| S::Role(*k))
            .collect();
        let target_roles = self.targets.iter().map(|t| S::TargetRole(t.account.name.clone()));
        // Every account's VPC endpoints: the s3 key and the buckets admit requests only through them.
        let endpoints: Vec<EnvStep> = std::iter::once(S::VpcEndpoints)
            .chain(self.targets.iter().map(|t| S::TargetVpcEndpoints(t.account.name.clone())))
            .collect();
        let mut graph = vec![
            (S::Network, vec![]),
            (S::VpcEndpoints, vec![S::Network]),
            (S::NetworkAvailable, vec![S::Network, S::VpcEndpoints]),
        ];
        graph.extend(KeyPurpose::ALL.map(|k| (S::Key(k), vec![])));
        for kind in RoleKind::ALL {
            // Role policies name the ebs and s3 keys, the subnets and the workloads group.
            let needs =
                if in_use(&kind) { vec![S::Key(KeyPurpose::Ebs), S::Key(KeyPurpose::S3), S::Network] } else { vec![] };
            graph.push((S::Role(kind), needs));
        }
        graph.push((S::KeyPolicy(KeyPurpose::Ebs), [vec![S::Key(KeyPurpose::Ebs)], dev_roles.clone()].concat()));
        let studio_users = [vec![S::Key(KeyPurpose::Studio), S::Role(RoleKind::Execution)], personas.clone()].concat();
        graph.push((S::KeyPolicy(KeyPurpose::Studio), studio_users));
        // The s3 key is used only through the VPC endpoints of every account, by every role.
        let everyone = [dev_roles.clone(), target_roles.clone().collect(), endpoints.clone()].concat();
        graph.push((S::KeyPolicy(KeyPurpose::S3), [vec![S::Key(KeyPurpose::S3)], everyone.clone()].concat()));
        let data = [vec![S::Key(KeyPurpose::S3)], dev_roles.clone(), endpoints].concat();
        graph.push((S::Bucket(BucketPurpose::Data), data));
        graph.push((S::Bucket(BucketPurpose::Models), [vec![S::Key(KeyPurpose::S3)], everyone].concat()));
        if everything || self.studio.is_some() {
            // The domain encrypts with the studio key once its policy lets the execution role use it.
            let domain = vec![
                S::Network,
                S::Key(KeyPurpose::Studio),
                S::KeyPolicy(KeyPurpose::Studio),
                S::Role(RoleKind::Execution),
            ];
            graph.push((S::Domain, domain));
            graph.push((S::DomainInService, vec![S::Domain]));
            graph.push((S::UserProfiles, [vec![S::Network, S::Domain, S::DomainInService], personas].concat()));
        } else {
            graph.push((S::Domain, vec![]));
        }
        for target in &self.targets {
            let a = target.account.name.clone();
            graph.extend([
                (S::TargetNetwork(a.clone()), vec![]),
                (S::TargetVpcEndpoints(a.clone()), vec![S::TargetNetwork(a.clone())]),
                (
                    S::TargetNetworkAvailable(a.clone()),
                    vec![S::TargetNetwork(a.clone()), S::TargetVpcEndpoints(a.clone())],
                ),
                (S::TargetKey(a.clone()), vec![]),
                (S::TargetRole(a.clone()), vec![S::Key(KeyPurpose::S3), S::TargetKey(a.clone())]),
                (S::TargetKeyPolicy(a.clone()), vec![S::TargetKey(a.clone()), S::TargetRole(a.clone())]),
                (S::CaptureBucket(a.clone()), vec![S::TargetKey(a)]),
            ]);
        }
        // Flow logs of every VPC, into a group encrypted with the account's ebs or endpoint key
        // once its policy admits CloudWatch Logs; with them off, the flow log goes, then its
        // delivery role.
        // Never of a borrowed VPC: its flow log would record the workloads of everyone using it.
        let scopes = std::iter::once((None, &self.network))
            .chain(self.targets.iter().map(|t| (Some(t.account.name.clone()), &t.network)))
            .filter(|(_, network)| everything || network.existing.is_none())
            .map(|(scope, _)| scope);
        for scope in scopes {
            let (network, key, key_policy) = match scope.clone() {
                None => (S::Network, S::Key(KeyPurpose::Ebs), S::KeyPolicy(KeyPurpose::Ebs)),
                Some(a) => (S::TargetNetwork(a.clone()), S::TargetKey(a.clone()), S::TargetKeyPolicy(a)),
            };
            if everything || self.flow_logs.is_some() {
                let needs = vec![network, key, key_policy, S::FlowLogRole(scope.clone())];
                graph.extend([(S::FlowLogRole(scope.clone()), vec![]), (S::FlowLogs(scope), needs)]);
            } else {
                graph.push((S::FlowLogs(scope.clone()), vec![network]));
                graph.push((S::FlowLogRole(scope.clone()), vec![S::FlowLogs(scope)]));
            }
        }
        graph.extend(leaving.iter().map(|a| (S::RemoveTarget(a.clone()), vec![])));
        graph
    }
}
