//! Customer managed KMS keys, found by their alias. A key is created with the policy the caller
//! gives (the administrative one first, since AWS refuses policies naming roles that do not
//! exist yet), tagged at creation, aliased, rotated; drift in state, rotation, policy and tags is
//! put back. A crash between CreateKey and CreateAlias leaves a tagged key that is found again.

use std::collections::BTreeMap;

use aws_sdk_kms::Client;
use aws_sdk_kms::types::{KeyMetadata, KeyState, Tag};

use crate::errors::{AwsError, ErrorKind, Optional, Required};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Depth, Owner, Step, StepResult};

/// What one key should be.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyPlan {
    /// Tags and adoption.
    pub owner: Owner,
    /// The component tag, e.g. `key/s3`.
    pub component: String,
    /// `alias/...`.
    pub alias: String,
    /// What the key is for.
    pub description: String,
    /// Yearly automatic rotation.
    pub rotation: bool,
    /// The policy a new key starts with: administrative only, since AWS refuses a policy naming
    /// roles that do not exist yet.
    pub create_policy: serde_json::Value,
    /// The full policy, once every principal it names exists; `None` leaves the policy alone.
    pub policy: Option<serde_json::Value>,
}

/// A key's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOutputs {
    /// The key ARN.
    pub arn: String,
    /// The key id.
    pub id: String,
}

/// Converges one key.
pub async fn ensure_key(session: &Session, plan: &KeyPlan, depth: Depth, changes: &Changes) -> StepResult<KeyOutputs> {
    let kms = session.kms();
    // A key this process already found under the alias with our owner tags: a Security-depth
    // check reads no more than its policy (where this step manages it; a key's ARN is never
    // another's). Its state, rotation and tags are left to the next Full check: a deletion AWS
    // schedules at least 7 days out is cancelled long before it happens, a key disabled behind
    // our back stays so until then (an outage of what it encrypts, not an opening), and what
    // the environment encrypts names the key by ARN, not by alias.
    if depth == Depth::Security
        && let Some(arn) = session.proven(&plan.alias, &plan.owner.uid)
    {
        let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
        if let Some(policy) = &plan.policy {
            ensure_policy(session, &id, policy, changes).await?;
        }
        return Ok(Step::Ready(KeyOutputs { arn, id }));
    }
    // The tags seen, to converge below; a key just created carries ours already.
    let (meta, tags) = match describe(kms, &plan.alias).await? {
        Some(meta) => {
            let tags = tags_of(kms, meta.key_id()).await?;
            if !plan.owner.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                session.forget(&plan.alias);
                return Err(plan.owner.conflict(&format!("KMS alias {}", plan.alias), []));
            }
            (meta, Some(tags))
        }
        None => match find_orphan(kms, plan).await? {
            Some((meta, tags)) => {
                alias(kms, plan, meta.key_id(), changes).await?;
                (meta, Some(tags))
            }
            None => (create(kms, plan, changes).await?, None),
        },
    };
    let id = meta.key_id().to_owned();
    let arn = meta.arn().required("DescribeKey", "Arn")?;
    match meta.key_state() {
        Some(KeyState::PendingDeletion) => {
            kms.cancel_key_deletion().key_id(&id).send().await.map_err(AwsError::from_sdk)?;
            kms.enable_key().key_id(&id).send().await.map_err(AwsError::from_sdk)?;
            changes.record(Action::Updated, format!("KMS key {id}: deletion cancelled, re-enabled"));
        }
        Some(KeyState::Disabled) => {
            kms.enable_key().key_id(&id).send().await.map_err(AwsError::from_sdk)?;
            changes.record(Action::Updated, format!("KMS key {id} re-enabled"));
        }
        Some(KeyState::Creating | KeyState::Updating) => {
            return Ok(Step::Pending(format!("KMS key {id} is being created")));
        }
        _ => {}
    }
    // A key just created rotates only once told to.
    let created = tags.is_none();
    if created || depth == Depth::Full {
        ensure_rotation(kms, &id, plan.rotation, created, changes).await?;
    }
    if let Some(policy) = &plan.policy {
        ensure_policy(session, &id, policy, changes).await?;
    }
    if let Some(tags) = tags {
        ensure_tags(kms, &id, &tags, &plan.owner, &plan.component, changes).await?;
    }
    session.prove(&plan.alias, &plan.owner.uid, &arn);
    Ok(Step::Ready(KeyOutputs { arn, id }))
}

/// Turns automatic rotation on or off as planned.
async fn ensure_rotation(
    kms: &Client,
    id: &str,
    rotation: bool,
    created: bool,
    changes: &Changes,
) -> Result<(), AwsError> {
    let current = match created {
        true => false,
        false => {
            kms.get_key_rotation_status().key_id(id).send().await.map_err(AwsError::from_sdk)?.key_rotation_enabled()
        }
    };
    if current != rotation {
        if rotation {
            kms.enable_key_rotation().key_id(id).send().await.map_err(AwsError::from_sdk)?;
        } else {
            kms.disable_key_rotation().key_id(id).send().await.map_err(AwsError::from_sdk)?;
        }
        changes.record(Action::Updated, format!("KMS key {id} rotation"));
    }
    Ok(())
}

/// A key someone else owns (`field` names it in the spec), checked as it is: it must exist, be
/// lent to `namespace` (its `sagekeeper.io/lent-to` tag), be enabled and be a symmetric
/// encryption key. Nothing of it is changed.
pub async fn existing_key(session: &Session, field: &str, arn: &str, namespace: &str) -> Result<KeyOutputs, AwsError> {
    let invalid = |why: String| AwsError::from_code("InvalidConfiguration", &format!("{field}: key {arn} {why}"), None);
    let found = session.kms().describe_key().key_id(arn).send().await.map_err(AwsError::from_sdk);
    let meta = match found {
        Err(e) if e.kind == ErrorKind::NotFound => return Err(invalid("does not exist".into())),
        found => found?.key_metadata,
    };
    let Some(meta) = meta else { return Err(invalid("has no metadata in DescribeKey's answer".into())) };
    if meta.key_state() != Some(&KeyState::Enabled) {
        let state = meta.key_state().map_or("unknown", KeyState::as_str);
        return Err(invalid(format!("is {state}, not Enabled")));
    }
    // AWS always answers both; an answer without one is taken as the default it would be.
    let usage = meta.key_usage().map_or("ENCRYPT_DECRYPT", |u| u.as_str());
    let spec = meta.key_spec().map_or("SYMMETRIC_DEFAULT", |s| s.as_str());
    if usage != "ENCRYPT_DECRYPT" || spec != "SYMMETRIC_DEFAULT" {
        return Err(invalid(format!(
            "is a {spec} key for {usage}; SageMaker, EBS and S3 need a SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT"
        )));
    }
    // Only a key its owner lent to this namespace: a key of the account is not every tenant's.
    let lent = sagekeeper_api::naming::LENT_TO_TAG;
    if tags_of(session.kms(), meta.key_id()).await?.get(lent).map(String::as_str) != Some(namespace) {
        return Err(invalid(format!(
            "is not lent to namespace {namespace}: its owner lends it by tagging it {lent}={namespace}"
        )));
    }
    Ok(KeyOutputs { arn: meta.arn().unwrap_or(arn).to_owned(), id: meta.key_id().to_owned() })
}

/// Checks that the policy of a key someone else owns allows what `policy` (the one sagekeeper
/// would give a key of its own) needs of it, by reading it (no grant is made to find out); the
/// statements it lacks are the error, as JSON to add to it. The policy is never changed.
pub async fn check_existing_policy(
    session: &Session,
    field: &str,
    key: &KeyOutputs,
    policy: &serde_json::Value,
) -> Result<(), AwsError> {
    let current = session.kms().get_key_policy().key_id(&key.id).policy_name("default").send().await;
    let current = current.map_err(AwsError::from_sdk)?;
    let current = sagekeeper_policy::parse(current.policy().unwrap_or("{}"))
        .map_err(|e| AwsError::from_code("MalformedPolicyDocument", &format!("key {}: {e}", key.arn), None))?;
    let denying = sagekeeper_policy::kms::denying_statements(&current, policy, &key.arn);
    if !denying.is_empty() {
        let message = format!(
            "{field}: the policy of key {} denies what the environment needs of it in {}; remove or narrow them",
            key.arn,
            denying.join(", ")
        );
        return Err(AwsError::from_code("InvalidConfiguration", &message, None));
    }
    let missing = sagekeeper_policy::kms::missing_statements(&current, policy, &key.arn);
    if missing.is_empty() {
        return Ok(());
    }
    let statements = serde_json::Value::Array(missing).to_string();
    let message = format!(
        "{field}: the policy of key {} does not let the environment use it; add these statements to it (or leave use to IAM through the account root, for the roles): {statements}",
        key.arn
    );
    Err(AwsError::from_code("InvalidConfiguration", &message, None))
}

/// Puts the key policy if it differs semantically from `policy`.
pub async fn ensure_policy(
    session: &Session,
    key_id: &str,
    policy: &serde_json::Value,
    changes: &Changes,
) -> Result<(), AwsError> {
    let kms = session.kms();
    // "default" is the only policy name; moto (and old SDKs) need it spelled out.
    let current =
        kms.get_key_policy().key_id(key_id).policy_name("default").send().await.map_err(AwsError::from_sdk)?;
    let same = current.policy().is_some_and(|p| sagekeeper_policy::same_policy(p, policy));
    if !same {
        kms.put_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .policy(policy.to_string())
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("KMS key {key_id} policy"));
    }
    Ok(())
}

async fn describe(kms: &Client, alias: &str) -> Result<Option<KeyMetadata>, AwsError> {
    Ok(kms
        .describe_key()
        .key_id(alias)
        .send()
        .await
        .map_err(AwsError::from_sdk)
        .optional()?
        .and_then(|out| out.key_metadata))
}

async fn tags_of(kms: &Client, key_id: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let out = kms.list_resource_tags().key_id(key_id).send().await.map_err(AwsError::from_sdk)?;
    Ok(out.tags().iter().map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned())).collect())
}

/// A key of ours (owner uid and component) that lost or never got its alias.
async fn find_orphan(
    kms: &Client,
    plan: &KeyPlan,
) -> Result<Option<(KeyMetadata, BTreeMap<String, String>)>, AwsError> {
    let want = plan.owner.tags(&plan.component);
    let mut keys = kms.list_keys().into_paginator().send();
    while let Some(page) = keys.next().await {
        for key in page.map_err(AwsError::from_sdk)?.keys() {
            let Some(id) = key.key_id() else { continue };
            let tags = match tags_of(kms, id).await {
                Ok(tags) => tags,
                // Keys of other services and accounts' grants may refuse us: not ours either way.
                Err(e) if e.kind == ErrorKind::AccessDenied => continue,
                Err(e) => return Err(e),
            };
            let ours =
                want.iter().filter(|(k, _)| k.starts_with("sagekeeper.io/")).all(|(k, v)| tags.get(k) == Some(v));
            if ours {
                return Ok(describe(kms, id).await?.map(|meta| (meta, tags)));
            }
        }
    }
    Ok(None)
}

async fn create(kms: &Client, plan: &KeyPlan, changes: &Changes) -> Result<KeyMetadata, AwsError> {
    let tags =
        plan.owner.tags(&plan.component).into_iter().map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build());
    let created = kms
        .create_key()
        .description(&plan.description)
        .policy(plan.create_policy.to_string())
        .set_tags(Some(
            tags.collect::<Result<Vec<_>, _>>().map_err(|e| AwsError::from_code("InvalidTag", &e.to_string(), None))?,
        ))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let meta = created
        .key_metadata
        .ok_or_else(|| AwsError::from_code("InvalidResponse", "CreateKey returned no key", None))?;
    changes.record(Action::Created, format!("KMS key {}", meta.key_id()));
    alias(kms, plan, meta.key_id(), changes).await?;
    Ok(meta)
}

async fn alias(kms: &Client, plan: &KeyPlan, key_id: &str, changes: &Changes) -> Result<(), AwsError> {
    kms.create_alias().alias_name(&plan.alias).target_key_id(key_id).send().await.map_err(AwsError::from_sdk)?;
    changes.record(Action::Created, format!("KMS alias {}", plan.alias));
    Ok(())
}

async fn ensure_tags(
    kms: &Client,
    key_id: &str,
    have: &BTreeMap<String, String>,
    owner: &Owner,
    component: &str,
    changes: &Changes,
) -> Result<(), AwsError> {
    let missing: Vec<Tag> = owner
        .tags(component)
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .filter_map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build().ok())
        .collect();
    if !missing.is_empty() {
        kms.tag_resource().key_id(key_id).set_tags(Some(missing)).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("KMS key {key_id} tags"));
    }
    let stale = owner.stale_keys(have.keys().map(String::as_str));
    if !stale.is_empty() {
        kms.untag_resource().key_id(key_id).set_tag_keys(Some(stale)).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("KMS key {key_id} removed tags"));
    }
    Ok(())
}

/// Removes the alias and schedules the key for deletion after 7 days (the shortest AWS allows,
/// and a week to cancel). Nothing to do when the alias is gone or the key is not ours.
pub async fn delete_key(session: &Session, owner: &Owner, alias: &str, changes: &Changes) -> Result<(), AwsError> {
    let kms = session.kms();
    session.forget(alias);
    let Some(meta) = describe(kms, alias).await? else { return Ok(()) };
    let tags = tags_of(kms, meta.key_id()).await?;
    if !owner.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(());
    }
    kms.delete_alias().alias_name(alias).send().await.map_err(AwsError::from_sdk)?;
    if meta.key_state() != Some(&KeyState::PendingDeletion) {
        kms.schedule_key_deletion()
            .key_id(meta.key_id())
            .pending_window_in_days(7)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
    }
    changes.record(Action::Deleted, format!("KMS key {} (deletion scheduled in 7 days)", meta.key_id()));
    Ok(())
}
