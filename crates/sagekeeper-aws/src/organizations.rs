//! AWS Organizations, read only: the active accounts under an organizational unit (its nested
//! units too, when asked) and the unit's path, which `aws:PrincipalOrgPaths` conditions name.
//! Every listing is read to its last page (AWS may answer a short page with more to come).

use aws_sdk_organizations::Client;
use aws_sdk_organizations::types::AccountStatus;

use crate::errors::AwsError;
use crate::sessions::Session;

/// One active member account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The 12-digit account id.
    pub id: String,
    /// Its name in the organization.
    pub name: String,
}

/// An organizational unit's active accounts and its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// `o-…/r-…/ou-…/…/`: the organization, the root and every unit down to this one, as
    /// `aws:PrincipalOrgPaths` carries it for the accounts below.
    pub path: String,
    /// The active accounts directly in it and, when asked, in the units nested under it;
    /// sorted by id.
    pub members: Vec<Member>,
}

/// The unit `ou` and its active accounts (`nested`: also those of every unit below it).
pub async fn unit(session: &Session, ou: &str, nested: bool) -> Result<Unit, AwsError> {
    let org = session.organizations();
    let path = path_of(org, ou).await?;
    let mut members = Vec::new();
    let mut parents = vec![ou.to_owned()];
    while let Some(parent) = parents.pop() {
        members.extend(active_accounts(org, &parent).await?);
        if nested {
            parents.extend(child_units(org, &parent).await?);
        }
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    members.dedup_by(|a, b| a.id == b.id);
    Ok(Unit { path, members })
}

/// The path from the organization down to `ou`, ending with `/`.
async fn path_of(org: &Client, ou: &str) -> Result<String, AwsError> {
    let organization = org.describe_organization().send().await.map_err(AwsError::from_sdk)?;
    let organization_id = organization
        .organization()
        .and_then(|o| o.id())
        .ok_or_else(|| AwsError::from_code("InvalidResponse", "DescribeOrganization returned no id", None))?
        .to_owned();
    // The unit exists (a mistyped id stalls with AWS's code), then its parents up to the root.
    org.describe_organizational_unit().organizational_unit_id(ou).send().await.map_err(AwsError::from_sdk)?;
    let mut chain = vec![ou.to_owned()];
    loop {
        let child = chain.last().cloned().unwrap_or_default();
        let parents = org.list_parents().child_id(&child).send().await.map_err(AwsError::from_sdk)?;
        let parent = parents.parents().first().and_then(|p| p.id()).ok_or_else(|| {
            AwsError::from_code("InvalidResponse", &format!("ListParents of {child} returned no parent"), None)
        })?;
        chain.push(parent.to_owned());
        if parent.starts_with("r-") || chain.len() > 7 {
            break;
        }
    }
    chain.reverse();
    Ok(format!("{organization_id}/{}/", chain.join("/")))
}

async fn active_accounts(org: &Client, parent: &str) -> Result<Vec<Member>, AwsError> {
    let mut found = Vec::new();
    let mut pages = org.list_accounts_for_parent().parent_id(parent).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk)?;
        found.extend(
            page.accounts()
                .iter()
                .filter(|a| a.status() == Some(&AccountStatus::Active))
                .filter_map(|a| Some(Member { id: a.id()?.to_owned(), name: a.name().unwrap_or_default().to_owned() })),
        );
    }
    Ok(found)
}

async fn child_units(org: &Client, parent: &str) -> Result<Vec<String>, AwsError> {
    let mut found = Vec::new();
    let mut pages = org.list_organizational_units_for_parent().parent_id(parent).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(AwsError::from_sdk)?;
        found.extend(page.organizational_units().iter().filter_map(|u| u.id().map(str::to_owned)));
    }
    Ok(found)
}
