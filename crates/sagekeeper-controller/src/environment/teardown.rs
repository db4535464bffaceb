//! Deletion in reverse dependency order: the Studio domain (after its profiles, spaces and
//! apps), the target accounts' resources, the roles, the network (with the NFS groups SageMaker
//! made), the buckets, the keys. Data is kept unless `deleteDataOnDelete`: buckets that hold
//! objects, the Studio home file system and the network it still occupies, and the keys that
//! encrypt what is kept stay, listed in `status.retained`.

use futures::future::join_all;
use sagekeeper_api::environment::RetainedResource;
use sagekeeper_aws::kms;
use sagekeeper_aws::s3::{self, Deleted};
use sagekeeper_aws::steps::{Changes, Step};
use sagekeeper_aws::{AwsError, iam, network, studio};

use super::plan::{Plan, TargetPlan};
use crate::context::Context;

/// What one teardown pass achieved.
pub(crate) enum Teardown {
    /// Everything that goes is gone; these were kept.
    Done(Vec<RetainedResource>),
    /// Still going: why, and what is kept so far.
    Waiting(String, Vec<RetainedResource>),
    /// AWS refused: the error, the resource, and what is kept so far.
    Failed(AwsError, String, Vec<RetainedResource>),
}

/// One pass of teardown. `retained` is what earlier passes recorded as kept.
pub(crate) async fn teardown(
    ctx: &Context,
    plan: &Plan,
    domain_id: Option<&str>,
    delete_data: bool,
    retained: &[RetainedResource],
    changes: &Changes,
) -> Teardown {
    let dev = ctx.sessions.session(&plan.dev.access);
    let mut kept: Vec<RetainedResource> = retained.to_vec();

    // The domain first: its home file system (kept unless data goes) is recorded before it
    // goes, and a pass that cannot tell whether the home was used stops there.
    let home_recorded = kept.iter().any(|r| r.resource == "efs-file-system");
    if !delete_data && !home_recorded {
        match studio::used_home(&dev, &plan.owner, &plan.names.domain(), domain_id).await {
            Ok(Some(efs)) => keep(
                &mut kept,
                "efs-file-system",
                &efs,
                "it holds Studio home directories; deleteDataOnDelete is false",
            ),
            Ok(None) => {}
            Err(e) => return Teardown::Failed(e, "Studio domain".into(), kept),
        }
    }
    let keep_home = kept.iter().any(|r| r.resource == "efs-file-system");
    match studio::delete_domain(&dev, &plan.owner, &plan.names.domain(), domain_id, !keep_home, changes).await {
        Ok(Step::Ready(())) => {}
        Ok(Step::Pending(why)) => return Teardown::Waiting(why, kept),
        Err(e) => return Teardown::Failed(e, "Studio domain".into(), kept),
    }

    let targets = join_all(plan.targets.iter().map(|t| teardown_target(ctx, plan, t, changes))).await;
    for result in targets {
        match result {
            Ok((Some(why), _)) => return Teardown::Waiting(why, kept),
            Ok((None, target_kept)) => {
                target_kept.into_iter().for_each(|r| keep(&mut kept, &r.resource, &r.id, &r.reason))
            }
            Err((e, what)) => return Teardown::Failed(e, what, kept),
        }
    }

    let roles = [
        &plan.roles.execution,
        &plan.roles.pipeline,
        &plan.roles.model_execution,
        &plan.roles.data_scientist,
        &plan.roles.team_admin,
    ];
    for name in roles {
        if let Err(e) = iam::delete_role(&dev, &plan.owner, name, &plan.dev.boundary, changes).await {
            return Teardown::Failed(e, format!("IAM role {name}"), kept);
        }
    }

    // The home file system still has mount targets in the private subnets: its network stays.
    let efs_kept = kept.iter().any(|r| r.resource == "efs-file-system");
    if efs_kept {
        keep(
            &mut kept,
            "vpc",
            &plan.names.ec2_name("dev"),
            "the kept Studio home file system still has mount targets in it",
        );
    } else {
        match network::delete_network(&dev, &plan.owner, changes).await {
            Ok(Step::Ready(())) => {}
            Ok(Step::Pending(why)) => return Teardown::Waiting(why, kept),
            Err(e) => return Teardown::Failed(e, "network".into(), kept),
        }
    }

    let mut data_kept = false;
    for bucket in [&plan.data_bucket, &plan.models_bucket] {
        match s3::delete_bucket(&dev, &plan.owner, bucket, delete_data, changes).await {
            Ok(Deleted::Gone) => {}
            Ok(Deleted::KeptWithData) => {
                data_kept = true;
                keep(&mut kept, "s3-bucket", bucket, "it holds objects; deleteDataOnDelete is false");
            }
            Err(e) => return Teardown::Failed(e, format!("bucket {bucket}"), kept),
        }
    }
    for (purpose, keep_it) in [("ebs", false), ("studio", efs_kept), ("s3", data_kept)] {
        let alias = plan.names.key_alias(purpose);
        if keep_it {
            keep(&mut kept, "kms-key", &alias, "it encrypts kept data");
            continue;
        }
        if let Err(e) = kms::delete_key(&dev, &plan.owner, &alias, changes).await {
            return Teardown::Failed(e, format!("KMS key {alias}"), kept);
        }
    }
    Teardown::Done(kept)
}

/// One target account: capture bucket, role, network, key. Returns what it waits for (if
/// anything) and what it keeps.
pub(crate) async fn teardown_target(
    ctx: &Context,
    plan: &Plan,
    target: &TargetPlan,
    changes: &Changes,
) -> Result<(Option<String>, Vec<RetainedResource>), (AwsError, String)> {
    let delete_data = plan.delete_data;
    let session = ctx.sessions.session(&target.account.access);
    let mut kept = Vec::new();
    let bucket = &target.capture_bucket;
    let data_kept = match s3::delete_bucket(&session, &plan.owner, bucket, delete_data, changes).await {
        Ok(Deleted::Gone) => false,
        Ok(Deleted::KeptWithData) => {
            keep(
                &mut kept,
                "s3-bucket",
                bucket,
                &format!("captured data in account {}; deleteDataOnDelete is false", target.account.name),
            );
            true
        }
        Err(e) => return Err((e, format!("bucket {bucket}"))),
    };
    iam::delete_role(&session, &plan.owner, &target.model_role, &target.account.boundary, changes)
        .await
        .map_err(|e| (e, format!("IAM role {} in {}", target.model_role, target.account.name)))?;
    match network::delete_network(&session, &plan.owner, changes).await {
        Ok(Step::Ready(())) => {}
        Ok(Step::Pending(why)) => return Ok((Some(format!("{}: {why}", target.account.name)), kept)),
        Err(e) => return Err((e, format!("network in {}", target.account.name))),
    }
    if data_kept {
        keep(
            &mut kept,
            "kms-key",
            &target.key_alias,
            &format!("it encrypts the kept capture bucket in {}", target.account.name),
        );
    } else {
        kms::delete_key(&session, &plan.owner, &target.key_alias, changes)
            .await
            .map_err(|e| (e, format!("KMS key in {}", target.account.name)))?;
    }
    Ok((None, kept))
}

pub(crate) fn keep(kept: &mut Vec<RetainedResource>, resource: &str, id: &str, reason: &str) {
    if !kept.iter().any(|r| r.resource == resource && r.id == id) {
        kept.push(RetainedResource { resource: resource.to_owned(), id: id.to_owned(), reason: reason.to_owned() });
    }
}
