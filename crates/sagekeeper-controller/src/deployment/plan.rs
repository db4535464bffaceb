//! Plan: a deployment as a graph of steps. The registry is read once; each stage's gate decides
//! what the stage may serve from the registry and what the stage before it verified in this
//! same pass; each account of the stage then converges its endpoint; accounts that left the
//! spec are cleaned up on their own. Pure.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::{Resource, ResourceExt};
use sagekeeper_api::conditions::Component;
use sagekeeper_api::deployment::{LATEST_APPROVED, Stage, StageAccountStatus, StageStatus};
use sagekeeper_api::naming::{DeploymentNames, EnvironmentNames, OWNER_TAG, OWNER_UID_TAG};
use sagekeeper_api::{AwsAccount, DataScienceEnvironment, ModelDeployment};
use sagekeeper_aws::AccountAccess;
use sagekeeper_aws::steps::Owner;

use super::sagemaker_endpoint::Prepared;
use crate::resolve;
use crate::steps::StepId;

/// A step of a deployment's graph.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum DeployStep {
    /// The project's registry: the newest versions, and older ones the deployment names.
    Registry,
    /// The promotion gate of stage `n` (its index in spec.stages).
    Gate(usize),
    /// The rollback alarms of stage `n`'s endpoint in an account: kept while the stage has a
    /// rollout, removed once it has none.
    Alarms(usize, String),
    /// The endpoint of stage `n` in an account.
    Endpoint(usize, String),
    /// The autoscaling of stage `n`'s endpoint in an account: registered while the stage has
    /// autoscaling, deregistered once it has none.
    Scaling(usize, String),
    /// The endpoint of a stage in an account the spec no longer has there: removed.
    Remove(String, String),
}

impl StepId for DeployStep {
    fn step(&self) -> &'static str {
        match self {
            Self::Registry => "Registry",
            Self::Gate(_) => "Gate",
            Self::Alarms(..) => "Alarms",
            Self::Endpoint(..) => "Endpoint",
            Self::Scaling(..) => "Scaling",
            Self::Remove(..) => "Remove",
        }
    }

    fn component(&self) -> Component {
        match self {
            Self::Registry => Component::Model,
            _ => Component::Stages,
        }
    }
}

/// Where a deployment's AWS work happens.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Place {
    /// The AwsAccount name.
    pub(super) name: String,
    pub(super) account_id: String,
    pub(super) access: AccountAccess,
}

impl Place {
    pub(super) fn of(account: &AwsAccount, region: &str) -> Self {
        Self {
            name: account.name_any(),
            account_id: account.spec.account_id.clone(),
            access: resolve::access_of(account, Some(region)),
        }
    }
}

/// One account of a stage.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct AccountPlan {
    pub(super) place: Place,
    /// What the environment prepared there, or why it has not yet.
    pub(super) prepared: Result<Prepared, String>,
    /// What the last pass recorded for it.
    pub(super) before: Option<StageAccountStatus>,
}

impl AccountPlan {
    /// The last pass reported rollback alarms here.
    pub(super) fn had_alarms(&self) -> bool {
        self.before.as_ref().is_some_and(|b| !b.rollback_alarms.is_empty())
    }

    /// The last pass reported a scalable target here.
    pub(super) fn had_scaling(&self) -> bool {
        self.before.as_ref().is_some_and(|b| b.scaling_target.is_some())
    }
}

/// One stage.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct StagePlan {
    pub(super) stage: Stage,
    /// The stage's endpoint name (the same in each of its accounts).
    pub(super) endpoint: String,
    pub(super) previous: StageStatus,
    pub(super) accounts: Vec<AccountPlan>,
}

/// What a stage's endpoint may have besides itself in an account, and so what its removal
/// looks for: rollback alarms, a scalable target (not looked for otherwise, so an account whose
/// sagekeeper role has no alarm or scaling permissions can still be cleaned up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Extras {
    pub(super) alarms: bool,
    pub(super) scaling: bool,
}

impl Extras {
    /// From what the status recorded there and what the spec's stage (if still there) asks.
    pub(super) fn of(status: Option<&StageAccountStatus>, stage: Option<&Stage>) -> Self {
        Self {
            alarms: status.is_some_and(|s| !s.rollback_alarms.is_empty()) || stage.is_some_and(|s| s.rollout.is_some()),
            scaling: status.is_some_and(|s| s.scaling_target.is_some())
                || stage.is_some_and(|s| s.autoscaling.is_some()),
        }
    }
}

/// An account a stage left (or of a stage that left), as the status knows it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Leaving {
    pub(super) stage: String,
    pub(super) status: StageAccountStatus,
    /// `None`: the AwsAccount is gone, so nothing can be removed there.
    pub(super) place: Option<Place>,
}

/// Everything one pass needs.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Plan {
    pub(super) names: DeploymentNames,
    /// The environment's names (its resource prefix starts the alarms' names).
    pub(super) env_names: EnvironmentNames,
    pub(super) owner: Owner,
    pub(super) model_version: String,
    pub(super) group: String,
    pub(super) group_arn: String,
    /// Versions older than the newest hundred that the deployment names (a pinned
    /// modelVersion, approvedVersions, what the stages serve): looked up one by one.
    pub(super) named: BTreeSet<i64>,
    pub(super) dev: Place,
    pub(super) stages: Vec<StagePlan>,
    pub(super) leaving: Vec<Leaving>,
}

impl Plan {
    /// modelVersion follows the newest Approved version.
    pub(super) fn following(&self) -> bool {
        self.model_version == LATEST_APPROVED
    }

    /// The graph: a stage's gate needs the registry and the gate before it, and runs after the
    /// previous stage's endpoints whatever came of them (a stage that failed there verified
    /// nothing new, and holds nothing else back); each endpoint needs its stage's gate, and its
    /// alarms when the stage has a rollout (or had one there); its autoscaling needs it.
    pub(super) fn graph(&self) -> Vec<(DeployStep, Vec<DeployStep>, Vec<DeployStep>)> {
        use DeployStep as S;
        let mut steps = vec![(S::Registry, vec![], vec![])];
        for (n, stage) in self.stages.iter().enumerate() {
            let mut needs = vec![S::Registry];
            let mut after = Vec::new();
            if n > 0 {
                needs.push(S::Gate(n - 1));
                after = self.stages[n - 1].accounts.iter().map(|a| S::Endpoint(n - 1, a.place.name.clone())).collect();
            }
            steps.push((S::Gate(n), needs, after));
            for account in &stage.accounts {
                let name = account.place.name.clone();
                let mut needs = vec![S::Gate(n)];
                if stage.stage.rollout.is_some() || account.had_alarms() {
                    steps.push((S::Alarms(n, name.clone()), vec![], vec![]));
                    needs.push(S::Alarms(n, name.clone()));
                }
                steps.push((S::Endpoint(n, name.clone()), needs, vec![]));
                if stage.stage.autoscaling.is_some() || account.had_scaling() {
                    steps.push((S::Scaling(n, name.clone()), vec![S::Endpoint(n, name)], vec![]));
                }
            }
        }
        for leaving in self.leaving.iter().filter(|l| l.place.is_some()) {
            steps.push((S::Remove(leaving.stage.clone(), leaving.status.account.clone()), vec![], vec![]));
        }
        steps
    }
}

/// The plan for `d`, from its stages' accounts (resolved, in spec order), the environment's
/// report of them, and `find` for the AwsAccounts of what leaves.
pub(super) fn plan(
    d: &ModelDeployment,
    env: &DataScienceEnvironment,
    dev: &AwsAccount,
    stages: &[Vec<Arc<AwsAccount>>],
    (group, group_arn): (String, String),
    find: impl Fn(&str) -> Option<Arc<AwsAccount>>,
) -> Plan {
    let region = &env.spec.region;
    let names = DeploymentNames::new(&d.namespace().unwrap_or_default(), &d.name_any());
    let previous = d.status.clone().unwrap_or_default();
    let targets = env.status.as_ref().map(|s| s.target_accounts.as_slice()).unwrap_or_default();
    let stage_plans: Vec<StagePlan> = d
        .spec
        .stages
        .iter()
        .zip(stages)
        .map(|(stage, accounts)| {
            let before = previous.stages.iter().find(|s| s.name == stage.name).cloned().unwrap_or_default();
            let accounts = accounts
                .iter()
                .map(|account| {
                    let name = account.name_any();
                    let reported = targets.iter().find(|t| t.account == name && t.stage == stage.name && t.ready);
                    let prepared = match reported.map(|t| Prepared::of(t, stage)) {
                        Some(Ok(prepared)) => Ok(prepared),
                        missing => {
                            let missing = match missing {
                                Some(Err(missing)) => format!(" (no {} yet)", missing.join(", ")),
                                _ => String::new(),
                            };
                            Err(format!(
                                "DataScienceEnvironment {} has not prepared AwsAccount {name} for stage {}{missing}",
                                env.name_any(),
                                stage.name
                            ))
                        }
                    };
                    AccountPlan {
                        before: before.accounts.iter().find(|a| a.account == name).cloned(),
                        place: Place::of(account, region),
                        prepared,
                    }
                })
                .collect();
            StagePlan { stage: stage.clone(), endpoint: names.endpoint(&stage.name), previous: before, accounts }
        })
        .collect();
    let leaving = previous
        .stages
        .iter()
        .flat_map(|old| old.accounts.iter().map(move |a| (old, a)))
        .filter(|(old, account)| {
            !stage_plans
                .iter()
                .any(|s| s.stage.name == old.name && s.accounts.iter().any(|a| a.place.name == account.account))
        })
        .map(|(old, account)| Leaving {
            stage: old.name.clone(),
            status: account.clone(),
            place: find(&account.account).map(|a| Place::of(&a, region)),
        })
        .collect();
    let named = std::iter::once(d.spec.model_version.as_str())
        .chain(d.spec.stages.iter().filter_map(|s| s.approved_version.as_deref()))
        .filter_map(|v| v.parse().ok())
        .chain(previous.stages.iter().filter_map(|s| s.serving_version))
        .collect();
    Plan {
        names,
        env_names: EnvironmentNames::new(&d.namespace().unwrap_or_default(), &env.name_any()),
        owner: owner(d),
        model_version: d.spec.model_version.clone(),
        group,
        group_arn,
        named,
        dev: Place::of(dev, region),
        stages: stage_plans,
        leaving,
    }
}

/// The tags and adoption rule of everything the deployment makes.
pub(super) fn owner(d: &ModelDeployment) -> Owner {
    let names = DeploymentNames::new(&d.namespace().unwrap_or_default(), &d.name_any());
    let uid = d.meta().uid.clone().unwrap_or_default();
    let base_tags = [(OWNER_TAG.to_owned(), names.owner()), (OWNER_UID_TAG.to_owned(), uid.clone())].into();
    Owner { uid, base_tags, removed_tags: Default::default() }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    pub(in crate::deployment) fn account(name: &str, id: &str) -> Arc<AwsAccount> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "sagekeeper.io/v1alpha1", "kind": "AwsAccount",
                "metadata": {"name": name},
                "spec": {"accountId": id, "namespaceSelector": {}},
            }))
            .expect("an account"),
        )
    }

    /// A deployment with stages staging (one account) and prod (two), in an environment that
    /// prepared staging and prod-a but not yet prod-b; the status remembers an account that
    /// left.
    pub(in crate::deployment) fn example() -> Plan {
        let target = |account: &str, stage: &str, id: &str| {
            serde_json::json!({
                "account": account, "stage": stage, "accountId": id, "ready": true,
                "privateSubnetIds": ["subnet-1"], "securityGroupId": "sg-1",
                "modelExecutionRoleArn": format!("arn:aws:iam::{id}:role/model"),
                "endpointKeyArn": format!("arn:aws:kms:us-east-1:{id}:key/k"),
            })
        };
        let env: DataScienceEnvironment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "DataScienceEnvironment",
            "metadata": {"name": "fraud", "namespace": "team-a"},
            "spec": {"account": "dev", "region": "us-east-1",
                     "targetAccounts": {"staging": ["staging"], "prod": ["prod-a", "prod-b"]}},
            "status": {"targetAccounts": [target("staging", "staging", "222222222222"), target("prod-a", "prod", "333333333333")]}
        }))
        .expect("an environment");
        let d: ModelDeployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sagekeeper.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "churn", "namespace": "team-a", "uid": "d-uid"},
            "spec": {"project": "churn", "modelVersion": "LatestApproved", "stages": [
                {"name": "staging", "instanceType": "ml.m5.large"},
                {"name": "prod", "instanceType": "ml.m5.large", "approval": "Manual", "approvedVersion": "3"},
            ]},
            "status": {"stages": [{"name": "staging", "servingVersion": 2, "accounts": [
                {"account": "staging"}, {"account": "old-staging"}
            ]}]}
        }))
        .expect("a deployment");
        let accounts: BTreeMap<&str, Arc<AwsAccount>> = [
            ("dev", account("dev", "111111111111")),
            ("staging", account("staging", "222222222222")),
            ("prod-a", account("prod-a", "333333333333")),
            ("prod-b", account("prod-b", "444444444444")),
            ("old-staging", account("old-staging", "555555555555")),
        ]
        .into();
        let stages =
            vec![vec![accounts["staging"].clone()], vec![accounts["prod-a"].clone(), accounts["prod-b"].clone()]];
        let group = (
            "team-a-churn".to_owned(),
            "arn:aws:sagemaker:us-east-1:111111111111:model-package-group/team-a-churn".to_owned(),
        );
        plan(&d, &env, &accounts["dev"], &stages, group, |name| accounts.get(name).cloned())
    }

    #[test]
    fn each_gate_follows_the_stage_before_it_and_each_account_its_gate() {
        use DeployStep as S;
        let plan = example();
        let graph: BTreeMap<_, _> = plan.graph().into_iter().map(|(id, needs, after)| (id, (needs, after))).collect();
        assert_eq!(graph[&S::Gate(0)], (vec![S::Registry], vec![]));
        assert_eq!(
            graph[&S::Gate(1)],
            (vec![S::Registry, S::Gate(0)], vec![S::Endpoint(0, "staging".into())]),
            "prod decides after staging's endpoint, whatever came of it"
        );
        assert_eq!(graph[&S::Endpoint(1, "prod-b".into())], (vec![S::Gate(1)], vec![]));
        // The account that left is removed on its own.
        assert_eq!(graph[&S::Remove("staging".into(), "old-staging".into())], (vec![], vec![]));
        assert_eq!(graph.len(), 1 + 2 + 3 + 1);
    }

    #[test]
    fn alarms_come_before_a_guarded_endpoint_and_scaling_after_it_and_both_stay_to_be_removed() {
        use DeployStep as S;
        let mut plan = example();
        let rollout = serde_json::from_value(serde_json::json!({"strategy": "AllAtOnce"})).unwrap();
        plan.stages[1].stage.rollout = Some(rollout);
        plan.stages[1].stage.autoscaling = Some(
            serde_json::from_value(
                serde_json::json!({"minInstances": 1, "maxInstances": 2, "targetInvocationsPerInstance": 10}),
            )
            .unwrap(),
        );
        // Staging has neither, but reported both last pass: they are removed.
        plan.stages[0].accounts[0].before.as_mut().unwrap().rollback_alarms = vec!["a".into()];
        plan.stages[0].accounts[0].before.as_mut().unwrap().scaling_target = Some("t".into());
        let graph: BTreeMap<_, _> = plan.graph().into_iter().map(|(id, needs, after)| (id, (needs, after))).collect();
        assert_eq!(graph[&S::Endpoint(1, "prod-a".into())].0, vec![S::Gate(1), S::Alarms(1, "prod-a".into())]);
        assert_eq!(graph[&S::Scaling(1, "prod-b".into())].0, vec![S::Endpoint(1, "prod-b".into())]);
        assert_eq!(graph[&S::Endpoint(0, "staging".into())].0, vec![S::Gate(0), S::Alarms(0, "staging".into())]);
        assert!(graph.contains_key(&S::Scaling(0, "staging".into())));
        assert_eq!(graph.len(), 1 + 2 + 3 + 1 + 3 + 3);
        // Without either, and nothing reported, there are no such steps.
        assert!(!example().graph().iter().any(|(id, ..)| matches!(id, S::Alarms(..) | S::Scaling(..))));
    }

    #[test]
    fn an_account_the_environment_has_not_prepared_says_what_it_lacks_and_named_versions_are_looked_up() {
        let plan = example();
        let prod = &plan.stages[1];
        assert!(prod.accounts[0].prepared.is_ok());
        let why = prod.accounts[1].prepared.as_ref().expect_err("not prepared");
        assert!(why.contains("has not prepared AwsAccount prod-b for stage prod"), "{why}");
        assert_eq!(plan.stages[0].accounts[0].before.as_ref().map(|a| a.account.as_str()), Some("staging"));
        // approvedVersion 3 and the served v2; LatestApproved names no number.
        assert_eq!(plan.named, BTreeSet::from([2, 3]));
        assert_eq!(plan.leaving.len(), 1);
        assert_eq!(plan.leaving[0].place.as_ref().map(|p| p.account_id.as_str()), Some("555555555555"));
        assert_eq!(plan.dev.account_id, "111111111111");
    }
}
