//! DataScienceEnvironment reconciler: resolve the dev and target accounts (existence, tenancy,
//! region, readiness), plan every resource as a graph of steps, run it, and fold the results
//! into one condition per component. Deletion waits while projects name the environment.

mod borrowed;
mod plan;
mod run;
mod status;
mod teardown;

use kube::ResourceExt;
use std::sync::Arc;

use sagekeeper_api::AwsAccount;
use sagekeeper_api::conditions::{self, Outcome, Reason};
use sagekeeper_api::{DataScienceEnvironment, DataScienceEnvironmentStatus};
use sagekeeper_aws::steps::Changes;

use crate::context::Context;
use kube::runtime::events::EventType;

use crate::lifecycle::{
    Cleanup, EventReason, Kind, Report, Retry, change_notes, namespaced_kind, publish, status_fields,
};
use crate::resolve::{self, Unresolved, environment_users, unless_in_use};
use crate::run::Error;

impl Kind for DataScienceEnvironment {
    type Status = DataScienceEnvironmentStatus;

    namespaced_kind!();
    status_fields!();

    async fn apply(&self, ctx: &Context) -> Result<Report<Self::Status>, Error> {
        let status = self.status.clone().unwrap_or_default();
        let ((dev, targets), sets) = match resolve_accounts(self, ctx).await {
            Ok(resolved) => resolved,
            Err(unresolved) => return Ok(Report::new(status, unresolved.outcome()?)),
        };
        // A persona role trusting another account would hand the team's approvals to it.
        if let Some((persona, arn)) = self.spec.identity.persona_principals.outside(&dev.spec.account_id) {
            let message = format!(
                "spec.identity.personaPrincipals.{persona:?}: {arn} is not a principal of the dev account {} ({}); persona roles trust only principals of their own account",
                dev.spec.account_id,
                dev.name_any()
            );
            return Ok(Report::new(status, Outcome::stalled(Reason::InvalidConfiguration, message)));
        }
        // A key of another account would hand the environment's data to it.
        let dev_id = dev.spec.account_id.as_str();
        let keys = self.spec.encryption.existing_keys.iter().flat_map(|k| k.named());
        if let Some((name, arn)) = keys.into_iter().find(|(_, arn)| arn.split(':').nth(4) != Some(dev_id)) {
            let message = format!(
                "spec.encryption.existingKeys.{name}: {arn} is not a key of the dev account {dev_id} ({}); an environment encrypts with keys of its own account",
                dev.name_any()
            );
            return Ok(Report::new(status, Outcome::stalled(Reason::InvalidConfiguration, message)));
        }
        let pinned = status.network.as_ref().map(|n| n.availability_zones.clone()).unwrap_or_default();
        let zones = match borrowed::check(self, ctx, &dev, &targets, &status, &pinned).await {
            Ok(zones) => zones,
            Err(report) => return Ok(*report),
        };
        let plan = plan::plan(self, &dev, &targets, &sets, &zones, &pinned);
        let changes = sagekeeper_aws::steps::Changes::default();
        let uid = self.metadata.uid.clone().unwrap_or_default();
        let fingerprint = run::fingerprint(&plan, &status);
        let reuse = ctx.reusable::<run::Reuse>(&uid, fingerprint).unwrap_or_default().outputs(&status);
        let inputs = converged_inputs(self);
        let depth = ctx.depth(&uid, inputs);
        let results = run::run(ctx, &plan, &status, &reuse, depth, &changes).await;
        let changes = changes.take();
        let folded = status::fold(&plan, &status, &results);
        let outcome = folded.outcome;
        // Until it converges, the next pass reads only what is not ready yet; once it has, the
        // next pass (a drift check) reads everything again. Only a Full pass's outputs are kept:
        // a Security pass that ends not Ready is followed by a Full one that reads everything.
        // The pass that recorded a new Studio domain is not the end either: the next one (its
        // status write wakes it) names the domain in the persona policies, and runs nothing else
        // whose inputs stay the same (it counts as one of the Security-depth checks between two
        // Full ones, right after a Full pass).
        let new_domain = run::domain_id(&folded.status).is_some_and(|id| run::domain_id(&status) != Some(id));
        let keep = (!outcome.is_ready() || new_domain) && depth == sagekeeper_aws::steps::Depth::Full;
        ctx.keep_reusable(&uid, keep.then(|| (fingerprint, run::Reuse::kept(&results, &status))));
        let mut status = folded.status;
        // Removed tag keys are forgotten only once a pass took them off everything.
        let mut tag_keys: std::collections::BTreeSet<String> = self.spec.tags.keys().cloned().collect();
        if !outcome.is_ready() {
            tag_keys.extend(status.tag_keys.iter().cloned());
        }
        status.tag_keys = tag_keys.into_iter().collect();
        // Writes to an environment that already converged with this very spec were drift being
        // repaired, even when the repair takes several passes; writes after a change of the spec
        // are updates. After a restart, the status says.
        let was_ready = ctx
            .converged_with(&uid, inputs)
            .unwrap_or_else(|| conditions::is_ready(&status.conditions, self.metadata.generation));
        if outcome.is_ready() {
            ctx.record_converged(&uid, inputs);
        }
        ctx.record_depth(&uid, inputs, outcome.is_ready().then_some(depth));
        // A pass that failed somewhere but still made progress is not backed off: the backoff
        // is for an object that gets nowhere, not for one throttled now and then.
        let retry = match folded.retry {
            Retry::Backoff if !changes.is_empty() => Retry::Pending,
            retry => retry,
        };
        Ok(Report {
            status,
            outcome,
            components: folded.components,
            retry,
            failure: folded.failure,
            notes: change_notes(&changes, was_ready),
            extra: Vec::new(),
        })
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Cleanup<Self::Status>, Error> {
        let mut status = self.status.clone().unwrap_or_default();
        let users = environment_users(ctx, &self.namespace().unwrap_or_default(), &self.name_any()).await?;
        if !users.is_empty() {
            return Ok(unless_in_use(&users, status));
        }
        let (dev, targets) = match accounts_for_teardown(self, ctx).await {
            Ok(accounts) => accounts,
            Err(unresolved) => return Ok(Cleanup::Wait(Report::new(status, unresolved.outcome()?))),
        };
        let zones = self
            .spec
            .network
            .availability_zones
            .clone()
            .unwrap_or_else(|| status.network.as_ref().map(|n| n.availability_zones.clone()).unwrap_or_default());
        // Teardown writes no policy: no set's path is needed.
        let plan = plan::plan(self, &dev, &targets, &[], &zones, &zones);
        let domain_id = status.studio.as_ref().and_then(|s| s.domain_id.clone());
        let changes = Changes::default();
        let results = teardown::run(ctx, &plan, domain_id.as_deref(), &status.retained, &changes).await;
        let kept = teardown::kept(&status.retained, &results);
        let folded = crate::fold::deletion(&results);
        // What the teardown deleted, over all its passes, is published once it is done.
        let uid = self.metadata.uid.clone().unwrap_or_default();
        let mut writes = ctx.teardown_writes(&uid, changes.take(), folded.outcome.is_none());
        // One event lists everything, within the API server's 1 kB: what matters most first.
        let rank = |what: &str| {
            ["Studio domain", "VPC ", "IAM role", "bucket", "KMS key"].iter().position(|p| what.starts_with(p))
        };
        writes.sort_by_key(|(_, what)| rank(what).unwrap_or(usize::MAX));
        let Some(outcome) = folded.outcome else {
            for note in change_notes(&writes, false) {
                publish(ctx, self, note.type_, note.reason.as_str(), &note.note).await;
            }
            if !kept.is_empty() {
                let note: Vec<String> =
                    kept.iter().map(|r| format!("{} {} ({})", r.resource, r.id, r.reason)).collect();
                let reason = EventReason::DataRetained.as_str();
                publish(ctx, self, EventType::Warning, reason, &note.join("; ")).await;
            }
            return Ok(Cleanup::Done);
        };
        status.retained = kept;
        let report = Report { retry: folded.retry, failure: folded.failure, ..Report::new(status, outcome) };
        Ok(Cleanup::Wait(report))
    }
}

/// What an environment converges from besides AWS: its spec, by generation. (Its projects'
/// registries are granted by tag, so projects coming and going change nothing here.)
fn converged_inputs(env: &DataScienceEnvironment) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    env.metadata.generation.hash(&mut hasher);
    hasher.finish()
}

/// The dev account, and each target account with its stage.
type Accounts = (Arc<AwsAccount>, Vec<(String, Arc<AwsAccount>)>);

/// The dev account and each target account (with its stage), resolved, and the members of
/// the sets that brought some of them; or why not.
async fn resolve_accounts(
    env: &DataScienceEnvironment,
    ctx: &Context,
) -> Result<(Accounts, Vec<resolve::SetMembers>), Unresolved> {
    let namespace = env.namespace().unwrap_or_default();
    let labels = resolve::namespace_labels(ctx, &namespace).await?;
    let region = Some(env.spec.region.as_str());
    let dev = resolve::account(ctx, &env.spec.account, &namespace, &labels, region).await?;
    let (stages, sets) = resolve::stage_accounts(ctx, &env.spec.target_accounts, &env.spec.target_account_sets).await?;
    let mut targets = Vec::new();
    for (stage, names) in &stages {
        for name in names {
            if let Some((other, _)) = targets.iter().find(|(_, a): &&(String, Arc<AwsAccount>)| a.name_any() == *name) {
                let message = format!(
                    "spec.targetAccounts and spec.targetAccountSets: AwsAccount {name} is listed for stages {other} and {stage}; an account serves one stage"
                );
                return Err(Outcome::stalled(Reason::InvalidConfiguration, message).into());
            }
            if *name == env.spec.account {
                let message = format!(
                    "spec.targetAccounts and spec.targetAccountSets: AwsAccount {name} is the dev account; a target account must be another account"
                );
                return Err(Outcome::stalled(Reason::InvalidConfiguration, message).into());
            }
            targets.push((stage.clone(), resolve::account(ctx, name, &namespace, &labels, region).await?));
        }
    }
    Ok(((dev, targets), sets))
}

/// The accounts to clean up in: the dev account and the target accounts the status records
/// (where something may have been made), never those only the spec names now; each must still
/// admit the namespace.
async fn accounts_for_teardown(env: &DataScienceEnvironment, ctx: &Context) -> Result<Accounts, Unresolved> {
    let namespace = env.namespace().unwrap_or_default();
    let labels = resolve::namespace_labels(ctx, &namespace).await?;
    let dev = resolve::account_for_teardown(ctx, &env.spec.account, &namespace, &labels).await?;
    let mut targets = Vec::new();
    for recorded in env.status.iter().flat_map(|s| &s.target_accounts) {
        let account = resolve::account_for_teardown(ctx, &recorded.account, &namespace, &labels).await?;
        targets.push((recorded.stage.clone(), account));
    }
    Ok((dev, targets))
}
