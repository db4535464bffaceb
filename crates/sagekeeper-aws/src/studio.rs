//! The SageMaker Studio domain (VpcOnly, IAM auth, the private subnets, the workloads group,
//! the studio key, the execution role) and its user profiles, each running as its persona's
//! role. Teardown goes apps, spaces, profiles, domain; the home file system is kept unless data
//! is to be deleted.

use std::sync::Arc;

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::operation::describe_domain::DescribeDomainOutput;
use aws_sdk_sagemaker::types::{
    AppNetworkAccessType, AppStatus, AuthMode, DomainStatus, RetentionPolicy, RetentionType, SpaceStatus, Tag,
    UserSettings,
};

use crate::errors::{AwsError, ErrorKind, Optional, Required};
use crate::observe::{self, Snapshot};
use crate::sagemaker_tags::{ensure_tags, pairs, tags};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Depth, Owner, Step, StepResult};
use sagekeeper_api::naming::HOME_USED_TAG;

/// What the domain should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPlan {
    /// Tags and adoption.
    pub owner: Owner,
    /// The domain name.
    pub name: String,
    /// The id already pinned in status, if any.
    pub known_id: Option<String>,
    /// The VPC.
    pub vpc_id: String,
    /// The private subnets.
    pub subnet_ids: Vec<String>,
    /// The workloads security group.
    pub security_group_id: String,
    /// The studio key.
    pub kms_key_arn: String,
    /// The default execution role.
    pub execution_role_arn: String,
    /// The domain gets user profiles: mark its home as used before the first one is made.
    pub home_used: bool,
}

/// The domain's identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainOutputs {
    /// `d-...`.
    pub id: String,
    /// The domain ARN.
    pub arn: String,
    /// The Studio URL.
    pub url: Option<String>,
    /// The home EFS file system.
    pub home_efs: Option<String>,
}

/// One user profile and the role it runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfilePlan {
    /// The profile name.
    pub name: String,
    /// Its persona's role.
    pub role_arn: String,
    /// Extra tags, e.g. the persona tag persona policies match profiles by.
    pub tags: Vec<(String, String)>,
}

/// Converges the domain. Its identity is known from the moment it exists (so it can be pinned
/// in status at once); the step is pending while it is being created or updated.
pub async fn ensure_domain(
    session: &Session,
    seen: &Snapshot,
    plan: &DomainPlan,
    depth: Depth,
    changes: &Changes,
) -> Result<(DomainOutputs, Step<()>), AwsError> {
    let sm = session.sagemaker();
    let Some(domain) = find_domain(session, seen, &plan.owner, &plan.name, plan.known_id.as_deref()).await? else {
        return create_domain(sm, plan, changes).await;
    };
    let id = domain.domain_id().required("DescribeDomain", "DomainId")?;
    let outputs = DomainOutputs {
        id: id.clone(),
        arn: domain.domain_arn().required("DescribeDomain", "DomainArn")?,
        url: domain.url().map(str::to_owned),
        home_efs: domain.home_efs_file_system_id().map(str::to_owned),
    };
    if let Step::Pending(why) = in_service(&id, &domain)? {
        return Ok((outputs, Step::Pending(why)));
    }
    // Tags are a setting (the domain is known by the id pinned in status, or was adopted by
    // name only with our owner tags): repaired at Full depth.
    if depth == Depth::Full {
        let what = format!("Studio domain {id}");
        ensure_tags(sm, &outputs.arn, &domain_tags(plan), &plan.owner, &what, changes).await?;
    }
    if domain.vpc_id() != Some(plan.vpc_id.as_str()) {
        let message = format!(
            "Studio domain {id} is in VPC {} and cannot move to {}",
            domain.vpc_id().unwrap_or("?"),
            plan.vpc_id
        );
        return Err(AwsError::from_code("InvalidConfiguration", &message, None));
    }
    let settings = domain.default_user_settings();
    let drifted = settings.and_then(UserSettings::execution_role) != Some(plan.execution_role_arn.as_str())
        || settings.map(UserSettings::security_groups) != Some(std::slice::from_ref(&plan.security_group_id))
        || domain.app_network_access_type() != Some(&AppNetworkAccessType::VpcOnly);
    if drifted {
        sm.update_domain()
            .domain_id(&id)
            .default_user_settings(user_settings(&plan.execution_role_arn, &plan.security_group_id))
            .app_network_access_type(AppNetworkAccessType::VpcOnly)
            .send()
            .await
            .map_err(AwsError::from_sdk)?;
        seen.domains.forget(&observe::key(session, &id));
        changes.record(Action::Updated, format!("Studio domain {id} settings"));
        return Ok((outputs, Step::Pending(format!("Studio domain {id} is being updated"))));
    }
    Ok((outputs, Step::Ready(())))
}

/// A domain's state as it decides what sagekeeper does; states this version does not know
/// are kept by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// Serving: its settings can be compared and changed.
    InService,
    /// Being created, updated or deleted: wait.
    Busy(String),
    /// Creation or an update failed.
    Failed,
    /// A state AWS added after this version.
    Unknown(String),
}

impl DomainState {
    /// The state of a `DescribeDomain` status.
    pub fn of(status: Option<&DomainStatus>) -> Self {
        match status {
            Some(DomainStatus::InService) => Self::InService,
            Some(DomainStatus::Failed | DomainStatus::UpdateFailed | DomainStatus::DeleteFailed) => Self::Failed,
            Some(s @ (DomainStatus::Pending | DomainStatus::Updating | DomainStatus::Deleting)) => {
                Self::Busy(s.as_str().to_owned())
            }
            other => Self::Unknown(other.map_or("unknown", |s| s.as_str()).to_owned()),
        }
    }
}

/// Ready once the domain serves; pending while it is busy; an error naming AWS's reason if it failed.
fn in_service(id: &str, domain: &DescribeDomainOutput) -> StepResult<()> {
    match DomainState::of(domain.status()) {
        DomainState::InService => Ok(Step::Ready(())),
        DomainState::Failed => {
            let reason = domain.failure_reason().unwrap_or("no reason given");
            Err(AwsError::from_code("DomainFailed", &format!("Studio domain {id} failed: {reason}"), None))
        }
        DomainState::Busy(state) | DomainState::Unknown(state) => {
            Ok(Step::Pending(format!("Studio domain {id} is {state}")))
        }
    }
}

/// Waits for domain `id` to serve, from what the pass saw of it (without converging its
/// settings again); while it does not serve, that is forgotten so the next try looks again.
pub async fn domain_in_service(session: &Session, seen: &Snapshot, id: &str) -> StepResult<()> {
    let read = || describe_domain(session.sagemaker(), id);
    let serves = |d: &Option<Arc<DescribeDomainOutput>>| {
        d.as_ref().is_some_and(|d| DomainState::of(d.status()) == DomainState::InService)
    };
    let Some(domain) = seen.domains.waiting(&observe::key(session, id), read, serves).await? else {
        return Err(AwsError::from_code("ResourceNotFound", &format!("Studio domain {id} does not exist"), None));
    };
    in_service(id, &domain)
}

/// Domain `id` as DescribeDomain reports it; `None` when there is none.
async fn describe_domain(sm: &Client, id: &str) -> Result<Option<Arc<DescribeDomainOutput>>, AwsError> {
    let described = sm.describe_domain().domain_id(id).send().await.map_err(AwsError::from_sdk).optional()?;
    Ok(described.map(Arc::new))
}

fn user_settings(role: &str, group: &str) -> UserSettings {
    UserSettings::builder().execution_role(role).security_groups(group).build()
}

/// The domain's tags; the home-used mark is added, never taken away.
fn domain_tags(plan: &DomainPlan) -> Vec<Tag> {
    let mut all = tags(&plan.owner, "studio/domain");
    if plan.home_used {
        all.push(Tag::builder().key(HOME_USED_TAG).value("true").build());
    }
    all
}

fn profile_tags(owner: &Owner, profile: &ProfilePlan) -> Vec<Tag> {
    let mut all = tags(owner, &format!("studio/user-profile/{}", profile.name));
    all.extend(profile.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()));
    all
}

/// Our domain: by the id pinned in status (as the pass saw it), else by name (adopting only
/// our own).
async fn find_domain(
    session: &Session,
    seen: &Snapshot,
    owner: &Owner,
    name: &str,
    known: Option<&str>,
) -> Result<Option<Arc<DescribeDomainOutput>>, AwsError> {
    let sm = session.sagemaker();
    if let Some(id) = known
        && let Some(domain) = seen.domains.get(&observe::key(session, id), || describe_domain(sm, id)).await?
    {
        return Ok(Some(domain));
    }
    let mut pages = sm.list_domains().into_paginator().send();
    while let Some(page) = pages.next().await {
        for domain in page.map_err(AwsError::from_sdk)?.domains() {
            if domain.domain_name() != Some(name) || domain.status() == Some(&DomainStatus::Deleting) {
                continue;
            }
            let arn = domain.domain_arn().required("ListDomains", "DomainArn")?;
            let listed = sm.list_tags().resource_arn(arn).send().await.map_err(AwsError::from_sdk)?;
            let tags = pairs(listed.tags());
            if !owner.owns(tags.iter().copied()) {
                return Err(owner.conflict(&format!("Studio domain {name}"), tags.iter().copied()));
            }
            let id = domain.domain_id().required("ListDomains", "DomainId")?;
            return Ok(Some(Arc::new(sm.describe_domain().domain_id(id).send().await.map_err(AwsError::from_sdk)?)));
        }
    }
    Ok(None)
}

async fn create_domain(
    sm: &Client,
    plan: &DomainPlan,
    changes: &Changes,
) -> Result<(DomainOutputs, Step<()>), AwsError> {
    let created = sm
        .create_domain()
        .domain_name(&plan.name)
        .auth_mode(AuthMode::Iam)
        .app_network_access_type(AppNetworkAccessType::VpcOnly)
        .vpc_id(&plan.vpc_id)
        .set_subnet_ids(Some(plan.subnet_ids.clone()))
        .kms_key_id(&plan.kms_key_arn)
        .default_user_settings(user_settings(&plan.execution_role_arn, &plan.security_group_id))
        .set_tags(Some(domain_tags(plan)))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let arn = created.domain_arn().required("CreateDomain", "DomainArn")?;
    let id = arn.rsplit('/').next().required("CreateDomain", "domain id in DomainArn")?;
    changes.record(Action::Created, format!("Studio domain {id}"));
    let pending = Step::Pending(format!("Studio domain {id} is being created"));
    Ok((DomainOutputs { id, arn, url: created.url().map(str::to_owned), home_efs: None }, pending))
}

/// Converges the user profiles: creates missing ones, puts back their role and group, removes
/// the ones this environment created that the spec no longer lists. Returns the profile names.
pub async fn ensure_user_profiles(
    session: &Session,
    owner: &Owner,
    domain_id: &str,
    profiles: &[ProfilePlan],
    security_group: &str,
    changes: &Changes,
) -> StepResult<Vec<String>> {
    let sm = session.sagemaker();
    let existing = list_profiles(sm, domain_id).await?;
    let mut pending = None;
    for profile in profiles {
        if !existing.contains(&profile.name) {
            sm.create_user_profile()
                .domain_id(domain_id)
                .user_profile_name(&profile.name)
                .user_settings(user_settings(&profile.role_arn, security_group))
                .set_tags(Some(profile_tags(owner, profile)))
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            changes.record(Action::Created, format!("Studio user profile {}", profile.name));
            continue;
        }
        let current = sm.describe_user_profile().domain_id(domain_id).user_profile_name(&profile.name).send().await;
        let current = current.map_err(AwsError::from_sdk)?;
        let arn = current.user_profile_arn().required("DescribeUserProfile", "UserProfileArn")?;
        // Read at every depth: persona policies open a profile by its persona tag.
        let what = format!("Studio user profile {}", profile.name);
        ensure_tags(sm, &arn, &profile_tags(owner, profile), owner, &what, changes).await?;
        let settings = current.user_settings();
        let drifted = settings.and_then(UserSettings::execution_role) != Some(profile.role_arn.as_str())
            || settings.map(UserSettings::security_groups) != Some(std::slice::from_ref(&security_group.to_owned()));
        if drifted {
            sm.update_user_profile()
                .domain_id(domain_id)
                .user_profile_name(&profile.name)
                .user_settings(user_settings(&profile.role_arn, security_group))
                .send()
                .await
                .map_err(AwsError::from_sdk)?;
            changes.record(Action::Updated, format!("Studio user profile {} settings", profile.name));
        }
    }
    for extra in existing.iter().filter(|name| !profiles.iter().any(|p| &p.name == *name)) {
        if !profile_owned(sm, owner, domain_id, extra).await? {
            continue;
        }
        if let Step::Pending(why) = delete_profile(sm, domain_id, extra, changes).await? {
            pending = Some(why);
        }
    }
    let names = profiles.iter().map(|p| p.name.clone()).collect();
    Ok(pending.map_or(Step::Ready(names), Step::Pending))
}

async fn list_profiles(sm: &Client, domain_id: &str) -> Result<Vec<String>, AwsError> {
    let mut names = Vec::new();
    let mut pages = sm.list_user_profiles().domain_id_equals(domain_id).into_paginator().send();
    while let Some(page) = pages.next().await {
        names.extend(
            page.map_err(AwsError::from_sdk)?
                .user_profiles()
                .iter()
                .filter_map(|p| p.user_profile_name().map(str::to_owned)),
        );
    }
    Ok(names)
}

async fn profile_owned(sm: &Client, owner: &Owner, domain_id: &str, name: &str) -> Result<bool, AwsError> {
    let profile = sm
        .describe_user_profile()
        .domain_id(domain_id)
        .user_profile_name(name)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    let listed = sm
        .list_tags()
        .resource_arn(profile.user_profile_arn().required("DescribeUserProfile", "UserProfileArn")?)
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(owner.owns(pairs(listed.tags())))
}

/// The domain's home file system if it may hold home directories, which outlive their
/// profiles: the domain had user profiles from sagekeeper (the home-used tag), or has profiles
/// or spaces now. `None` when there is no domain or its home was never used.
pub async fn used_home(
    session: &Session,
    owner: &Owner,
    name: &str,
    known_id: Option<&str>,
) -> Result<Option<String>, AwsError> {
    let sm = session.sagemaker();
    // Teardown decides on reads of its own.
    let Some(domain) = find_domain(session, &Snapshot::default(), owner, name, known_id).await? else {
        return Ok(None);
    };
    let Some(efs) = domain.home_efs_file_system_id() else { return Ok(None) };
    let id = domain.domain_id().required("DescribeDomain", "DomainId")?;
    let listed = sm.list_tags().resource_arn(domain.domain_arn().required("DescribeDomain", "DomainArn")?).send().await;
    let marked = listed.map_err(AwsError::from_sdk)?.tags().iter().any(|t| t.key() == Some(HOME_USED_TAG));
    let used = marked
        || !list_profiles(sm, &id).await?.is_empty()
        || !sm.list_spaces().domain_id_equals(id).send().await.map_err(AwsError::from_sdk)?.spaces().is_empty();
    Ok(used.then(|| efs.to_owned()))
}

/// Deletes a profile after its apps and the spaces it owns; pending while those drain.
async fn delete_profile(sm: &Client, domain_id: &str, name: &str, changes: &Changes) -> StepResult<()> {
    let mut waiting = delete_apps(sm, domain_id, Some(name), None, changes).await?;
    let mut spaces = sm.list_spaces().domain_id_equals(domain_id).into_paginator().send();
    while let Some(page) = spaces.next().await {
        for space in page.map_err(AwsError::from_sdk)?.spaces() {
            let owned_by_profile =
                space.ownership_settings_summary().and_then(|o| o.owner_user_profile_name()) == Some(name);
            if owned_by_profile {
                let space_name = space.space_name().required("ListSpaces", "SpaceName")?;
                waiting |= delete_space(sm, domain_id, &space_name, space.status(), changes).await?;
            }
        }
    }
    if waiting {
        return Ok(Step::Pending(format!("apps and spaces of Studio user profile {name} are being deleted")));
    }
    match sm
        .delete_user_profile()
        .domain_id(domain_id)
        .user_profile_name(name)
        .send()
        .await
        .map_err(AwsError::from_sdk)
        .optional()
    {
        Ok(Some(_)) => changes.record(Action::Deleted, format!("Studio user profile {name}")),
        Ok(None) => {}
        Err(e) if e.kind == ErrorKind::Busy => return Ok(Step::Pending(e.to_string())),
        Err(e) => return Err(e),
    }
    Ok(Step::Ready(()))
}

/// Deletes the apps of a profile or a space; true while any is still running or deleting.
async fn delete_apps(
    sm: &Client,
    domain_id: &str,
    profile: Option<&str>,
    space: Option<&str>,
    changes: &Changes,
) -> Result<bool, AwsError> {
    let mut waiting = false;
    let mut pages = sm
        .list_apps()
        .domain_id_equals(domain_id)
        .set_user_profile_name_equals(profile.map(str::to_owned))
        .set_space_name_equals(space.map(str::to_owned))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for app in page.map_err(AwsError::from_sdk)?.apps() {
            match app.status() {
                Some(AppStatus::Deleted | AppStatus::Failed) => {}
                Some(AppStatus::Deleting) => waiting = true,
                _ => {
                    let app_name = app.app_name().required("ListApps", "AppName")?;
                    sm.delete_app()
                        .domain_id(domain_id)
                        .set_user_profile_name(app.user_profile_name().map(str::to_owned))
                        .set_space_name(app.space_name().map(str::to_owned))
                        .set_app_type(app.app_type().cloned())
                        .app_name(&app_name)
                        .send()
                        .await
                        .map_err(AwsError::from_sdk)?;
                    changes.record(Action::Deleted, format!("Studio app {app_name}"));
                    waiting = true;
                }
            }
        }
    }
    Ok(waiting)
}

/// Deletes a space after its apps; true while it is still going.
async fn delete_space(
    sm: &Client,
    domain_id: &str,
    space: &str,
    status: Option<&SpaceStatus>,
    changes: &Changes,
) -> Result<bool, AwsError> {
    if status == Some(&SpaceStatus::Deleting) {
        return Ok(true);
    }
    if delete_apps(sm, domain_id, None, Some(space), changes).await? {
        return Ok(true);
    }
    sm.delete_space().domain_id(domain_id).space_name(space).send().await.map_err(AwsError::from_sdk)?;
    changes.record(Action::Deleted, format!("Studio space {space}"));
    Ok(true)
}

/// Deletes the domain and everything in it: the profiles this environment created (after their
/// apps and spaces), the remaining spaces, then the domain itself, keeping its home file system
/// unless `delete_home`. Ready once the domain is gone.
pub async fn delete_domain(
    session: &Session,
    owner: &Owner,
    name: &str,
    known_id: Option<&str>,
    delete_home: bool,
    changes: &Changes,
) -> StepResult<()> {
    let sm = session.sagemaker();
    let Some(domain) = find_domain(session, &Snapshot::default(), owner, name, known_id).await? else {
        return Ok(Step::Ready(()));
    };
    let id = domain.domain_id().required("DescribeDomain", "DomainId")?;
    if domain.status() == Some(&DomainStatus::Deleting) {
        return Ok(Step::Pending(format!("Studio domain {id} is being deleted")));
    }
    let mut waiting = false;
    for profile in list_profiles(sm, &id).await? {
        if let Step::Pending(_) = delete_profile(sm, &id, &profile, changes).await? {
            waiting = true;
        }
    }
    let mut spaces = sm.list_spaces().domain_id_equals(&id).into_paginator().send();
    while let Some(page) = spaces.next().await {
        for space in page.map_err(AwsError::from_sdk)?.spaces() {
            let space_name = space.space_name().required("ListSpaces", "SpaceName")?;
            waiting |= delete_space(sm, &id, &space_name, space.status(), changes).await?;
        }
    }
    if waiting {
        return Ok(Step::Pending(format!("Studio domain {id}: user profiles, spaces and apps are being deleted")));
    }
    let retention = if delete_home { RetentionType::Delete } else { RetentionType::Retain };
    let deleted = sm
        .delete_domain()
        .domain_id(&id)
        .retention_policy(RetentionPolicy::builder().home_efs_file_system(retention).build())
        .send()
        .await
        .map_err(AwsError::from_sdk);
    match deleted {
        Ok(_) => changes.record(Action::Deleted, format!("Studio domain {id}")),
        Err(e) if e.kind == ErrorKind::Busy => return Ok(Step::Pending(e.to_string())),
        Err(e) => return Err(e),
    }
    Ok(Step::Pending(format!("Studio domain {id} is being deleted")))
}
