//! S3 buckets, found by their deterministic name (global, so it carries account and region):
//! tagged at creation, SSE-KMS with a bucket key, all four public access blocks, bucket-owner
//! enforced, versioning, and the bucket policy. Each setting is read, compared and only
//! written when it drifted. Deletion keeps a bucket that holds objects unless told otherwise.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};

use crate::errors::{AwsError, ErrorKind, Optional, Required};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Depth, Owner, Step, StepResult};

/// What one bucket should be.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketPlan {
    /// Tags and adoption.
    pub owner: Owner,
    /// The component tag, e.g. `bucket/data`.
    pub component: String,
    /// The bucket name.
    pub name: String,
    /// The bucket's region.
    pub region: String,
    /// The KMS key for default encryption.
    pub key_arn: String,
    /// Object versioning.
    pub versioning: bool,
    /// The bucket policy.
    pub policy: serde_json::Value,
}

/// Converges one bucket.
pub async fn ensure_bucket(session: &Session, plan: &BucketPlan, depth: Depth, changes: &Changes) -> StepResult<()> {
    let s3 = session.s3();
    // Tags are a setting: a Security-depth check of a bucket this process already found to be
    // ours reads what guards the data and, when that is as planned, leaves its tags to the next
    // Full check. Anything else goes the whole way, tags first: a write lands only on a bucket
    // just seen carrying our owner tags (and a bucket gone is made again).
    if depth == Depth::Security && session.proven(&plan.name, &plan.owner.uid).is_some() && guarded(s3, plan).await? {
        return Ok(Step::Ready(()));
    }
    let tags = plan.owner.tags(&plan.component);
    match bucket_tags(s3, &plan.name).await {
        Ok(Some(have)) => {
            let pairs = || have.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            if !plan.owner.owns(pairs()) {
                session.forget(&plan.name);
                return Err(plan.owner.conflict(&format!("bucket {}", plan.name), pairs()));
            }
            session.prove(&plan.name, &plan.owner.uid, &plan.name);
            // S3 replaces the whole tag set: keep what others put there, drop the keys
            // removed from spec.tags, put ours.
            let stale = plan.owner.stale_keys(have.keys().map(String::as_str));
            let mut want = have.clone();
            want.retain(|k, _| !stale.contains(k));
            want.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            if have != want {
                put_tags(s3, &plan.name, &want).await?;
                changes.record(Action::Updated, format!("bucket {} tags", plan.name));
            }
        }
        Ok(None) => {
            let created = create(s3, plan, &tags, changes).await?;
            if matches!(created, Step::Ready(())) {
                session.prove(&plan.name, &plan.owner.uid, &plan.name);
            }
            return Ok(created);
        }
        // Someone else's bucket, in another account: the name is taken.
        Err(e) if e.kind == ErrorKind::AccessDenied => {
            session.forget(&plan.name);
            return Err(plan.owner.conflict(&format!("bucket {} (in another account)", plan.name), []));
        }
        Err(e) => return Err(e),
    }
    ensure_encryption(s3, plan, Seen::Read, changes).await?;
    ensure_public_access_block(s3, &plan.name, Seen::Read, changes).await?;
    ensure_policy(s3, &plan.name, &plan.policy, Seen::Read, changes).await?;
    if depth == Depth::Full {
        ensure_ownership(s3, &plan.name, changes).await?;
        ensure_versioning(s3, plan, Seen::Read, changes).await?;
    }
    Ok(Step::Ready(()))
}

/// The bucket's tags; `None` when the bucket does not exist. A bucket without tags is not ours.
async fn bucket_tags(s3: &Client, bucket: &str) -> Result<Option<BTreeMap<String, String>>, AwsError> {
    match s3.get_bucket_tagging().bucket(bucket).send().await {
        Ok(out) => Ok(Some(out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect())),
        Err(e) => match AwsError::from_sdk(e) {
            e if e.code == "NoSuchTagSet" => Ok(Some(BTreeMap::new())),
            e if e.code == "NoSuchBucket" => Ok(None),
            e => Err(e),
        },
    }
}

/// Creates the bucket with its tags in the same call, then lets the next pass configure it (the
/// settings below run in the same pass too, so one pass is enough on a healthy account).
async fn create(s3: &Client, plan: &BucketPlan, tags: &BTreeMap<String, String>, changes: &Changes) -> StepResult<()> {
    let mut config = CreateBucketConfiguration::builder().set_tags(Some(s3_tags(tags)?));
    // us-east-1 is the one region that refuses its own name as a location constraint.
    if plan.region != "us-east-1" {
        config = config.location_constraint(BucketLocationConstraint::from(plan.region.as_str()));
    }
    let created = s3
        .create_bucket()
        .bucket(&plan.name)
        .create_bucket_configuration(config.build())
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await;
    match created.map_err(AwsError::from_sdk) {
        Ok(_) => {}
        Err(e) if e.code == "BucketAlreadyExists" => {
            return Err(plan.owner.conflict(&format!("bucket {}", plan.name), []));
        }
        // Our own create raced a retry: configure it on the next pass, once its tags are seen.
        Err(e) if e.code == "BucketAlreadyOwnedByYou" => {
            return Ok(Step::Pending(format!("bucket {} was just created", plan.name)));
        }
        Err(e) => return Err(e),
    }
    changes.record(Action::Created, format!("bucket {}", plan.name));
    // Create-time tags are new in S3; put them again so older endpoints hold them too.
    put_tags(s3, &plan.name, tags).await?;
    // What a bucket just made holds is known: nothing of ours but its tags and the object
    // ownership it was created with. Each setting is put without reading it first.
    ensure_encryption(s3, plan, Seen::New, changes).await?;
    ensure_public_access_block(s3, &plan.name, Seen::New, changes).await?;
    ensure_versioning(s3, plan, Seen::New, changes).await?;
    ensure_policy(s3, &plan.name, &plan.policy, Seen::New, changes).await?;
    Ok(Step::Ready(()))
}

/// Whether a setting is read before it is put, or is known to be unset (a bucket just created).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    Read,
    New,
}

fn s3_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| AwsError::from_code("InvalidTag", &e.to_string(), None))
}

async fn put_tags(s3: &Client, bucket: &str, tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
    let tagging = Tagging::builder()
        .set_tag_set(Some(s3_tags(tags)?))
        .build()
        .map_err(|e| AwsError::from_code("InvalidTag", &e.to_string(), None))?;
    s3.put_bucket_tagging().bucket(bucket).tagging(tagging).send().await.map_err(AwsError::from_sdk)?;
    Ok(())
}

/// Whether encryption, public access block and policy are as planned (reads only; a bucket
/// that is gone is not).
async fn guarded(s3: &Client, plan: &BucketPlan) -> Result<bool, AwsError> {
    Ok(encryption_matches(plan, read_encryption(s3, &plan.name).await?.as_ref())
        && all_blocked(read_public_access_block(s3, &plan.name).await?.as_ref())
        && policy_matches(&plan.policy, read_policy(s3, &plan.name).await?.as_deref()))
}

async fn read_encryption(s3: &Client, bucket: &str) -> Result<Option<ServerSideEncryptionRule>, AwsError> {
    Ok(s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .map_err(AwsError::from_sdk)
        .optional()?
        .and_then(|out| out.server_side_encryption_configuration().and_then(|c| c.rules().first().cloned())))
}

fn encryption_matches(plan: &BucketPlan, current: Option<&ServerSideEncryptionRule>) -> bool {
    current.is_some_and(|rule| {
        let default = rule.apply_server_side_encryption_by_default();
        default.map(ServerSideEncryptionByDefault::sse_algorithm) == Some(&ServerSideEncryption::AwsKms)
            && default.and_then(ServerSideEncryptionByDefault::kms_master_key_id) == Some(plan.key_arn.as_str())
            && rule.bucket_key_enabled() == Some(true)
    })
}

async fn ensure_encryption(s3: &Client, plan: &BucketPlan, seen: Seen, changes: &Changes) -> Result<(), AwsError> {
    let current = match seen {
        Seen::New => None,
        Seen::Read => read_encryption(s3, &plan.name).await?,
    };
    if encryption_matches(plan, current.as_ref()) {
        return Ok(());
    }
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id(&plan.key_arn)
        .build()
        .map_err(|e| AwsError::from_code("InvalidRequest", &e.to_string(), None))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(by_default)
        .bucket_key_enabled(true)
        .build();
    let config = ServerSideEncryptionConfiguration::builder()
        .rules(rule)
        .build()
        .map_err(|e| AwsError::from_code("InvalidRequest", &e.to_string(), None))?;
    s3.put_bucket_encryption()
        .bucket(&plan.name)
        .server_side_encryption_configuration(config)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    record_drift(changes, current.is_some(), &plan.name, "encryption");
    Ok(())
}

async fn read_public_access_block(
    s3: &Client,
    bucket: &str,
) -> Result<Option<PublicAccessBlockConfiguration>, AwsError> {
    Ok(s3
        .get_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .map_err(AwsError::from_sdk)
        .optional()?
        .and_then(|out| out.public_access_block_configuration().cloned()))
}

fn all_blocked(current: Option<&PublicAccessBlockConfiguration>) -> bool {
    current.is_some_and(|c| {
        [c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()]
            .iter()
            .all(|v| *v == Some(true))
    })
}

async fn ensure_public_access_block(s3: &Client, bucket: &str, seen: Seen, changes: &Changes) -> Result<(), AwsError> {
    let current = match seen {
        Seen::New => None,
        Seen::Read => read_public_access_block(s3, bucket).await?,
    };
    if all_blocked(current.as_ref()) {
        return Ok(());
    }
    let config = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(config)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    record_drift(changes, current.is_some(), bucket, "public access block");
    Ok(())
}

async fn ensure_ownership(s3: &Client, bucket: &str, changes: &Changes) -> Result<(), AwsError> {
    let current = s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
        .map_err(AwsError::from_sdk)
        .optional()?
        .and_then(|out| out.ownership_controls().and_then(|c| c.rules().first()).map(|r| r.object_ownership().clone()));
    if current == Some(ObjectOwnership::BucketOwnerEnforced) {
        return Ok(());
    }
    let rule = OwnershipControlsRule::builder()
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .build()
        .map_err(|e| AwsError::from_code("InvalidRequest", &e.to_string(), None))?;
    let controls = OwnershipControls::builder()
        .rules(rule)
        .build()
        .map_err(|e| AwsError::from_code("InvalidRequest", &e.to_string(), None))?;
    s3.put_bucket_ownership_controls()
        .bucket(bucket)
        .ownership_controls(controls)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    record_drift(changes, current.is_some(), bucket, "object ownership");
    Ok(())
}

async fn ensure_versioning(s3: &Client, plan: &BucketPlan, seen: Seen, changes: &Changes) -> Result<(), AwsError> {
    let current = match seen {
        Seen::New => None,
        Seen::Read => s3.get_bucket_versioning().bucket(&plan.name).send().await.map_err(AwsError::from_sdk)?.status,
    };
    let want = if plan.versioning {
        Some(BucketVersioningStatus::Enabled)
    } else if current.is_some() {
        // Versioning cannot be switched off, only suspended.
        Some(BucketVersioningStatus::Suspended)
    } else {
        None
    };
    let Some(want) = want.filter(|w| current.as_ref() != Some(w)) else { return Ok(()) };
    let config = VersioningConfiguration::builder().status(want).build();
    s3.put_bucket_versioning()
        .bucket(&plan.name)
        .versioning_configuration(config)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    record_drift(changes, current.is_some(), &plan.name, "versioning");
    Ok(())
}

/// Puts the bucket policy if it differs semantically.
async fn ensure_policy(
    s3: &Client,
    bucket: &str,
    policy: &serde_json::Value,
    seen: Seen,
    changes: &Changes,
) -> Result<(), AwsError> {
    let current = match seen {
        Seen::New => None,
        Seen::Read => read_policy(s3, bucket).await?,
    };
    if policy_matches(policy, current.as_deref()) {
        return Ok(());
    }
    s3.put_bucket_policy().bucket(bucket).policy(policy.to_string()).send().await.map_err(AwsError::from_sdk)?;
    record_drift(changes, current.is_some(), bucket, "policy");
    Ok(())
}

async fn read_policy(s3: &Client, bucket: &str) -> Result<Option<String>, AwsError> {
    Ok(s3
        .get_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .map_err(AwsError::from_sdk)
        .optional()?
        .and_then(|out| out.policy))
}

fn policy_matches(policy: &serde_json::Value, current: Option<&str>) -> bool {
    current.is_some_and(|c| sagekeeper_policy::same_policy(c, policy))
}

fn record_drift(changes: &Changes, existed: bool, bucket: &str, what: &str) {
    let action = if existed { Action::Updated } else { Action::Created };
    changes.record(action, format!("bucket {bucket} {what}"));
}

/// What deleting a bucket did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// The bucket is gone (or never existed, or is not ours).
    Gone,
    /// It holds objects and data is kept: it stays.
    KeptWithData,
}

/// Deletes the bucket if it is ours. With `delete_data`, every object version and delete
/// marker goes first; without, a bucket holding anything is kept.
pub async fn delete_bucket(
    session: &Session,
    owner: &Owner,
    bucket: &str,
    delete_data: bool,
    changes: &Changes,
) -> Result<Deleted, AwsError> {
    let s3 = session.s3();
    session.forget(bucket);
    match bucket_tags(s3, bucket).await? {
        Some(tags) if owner.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) => {}
        _ => return Ok(Deleted::Gone),
    }
    loop {
        let page = s3.list_object_versions().bucket(bucket).max_keys(1000).send().await.map_err(AwsError::from_sdk)?;
        let mut objects: Vec<(String, Option<String>)> = Vec::new();
        for v in page.versions() {
            objects.push((v.key().required("ListObjectVersions", "Versions.Key")?, v.version_id().map(str::to_owned)));
        }
        for m in page.delete_markers() {
            let key = m.key().required("ListObjectVersions", "DeleteMarkers.Key")?;
            objects.push((key, m.version_id().map(str::to_owned)));
        }
        if objects.is_empty() {
            break;
        }
        if !delete_data {
            return Ok(Deleted::KeptWithData);
        }
        for (key, version) in &objects {
            s3.delete_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version.clone())
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
        }
        changes.record(Action::Deleted, format!("{} objects in bucket {bucket}", objects.len()));
    }
    s3.delete_bucket().bucket(bucket).send().await.map_err(AwsError::from_sdk)?;
    changes.record(Action::Deleted, format!("bucket {bucket}"));
    Ok(Deleted::Gone)
}
