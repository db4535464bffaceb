//! What every SageMaker step shares: resource tags as SageMaker takes them, and keeping them
//! as the spec says (added, changed, and removed only where sagekeeper applied them).

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::types::Tag;

use crate::errors::AwsError;
use crate::steps::{Action, Changes, Owner};

/// The owner's tags for `component`, as SageMaker tags.
pub(crate) fn tags(owner: &Owner, component: &str) -> Vec<Tag> {
    owner.tags(component).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// Puts the wanted tags on a SageMaker resource (AddTags replaces a value) and takes the keys
/// removed from spec.tags off it; others' tags stay.
pub(crate) async fn ensure_tags(
    sm: &Client,
    arn: &str,
    want: &[Tag],
    owner: &Owner,
    what: &str,
    changes: &Changes,
) -> Result<(), AwsError> {
    let listed = sm.list_tags().resource_arn(arn).send().await.map_err(AwsError::from_sdk)?;
    let have = pairs(listed.tags());
    let missing: Vec<Tag> = want
        .iter()
        .filter(|t| !have.contains(&(t.key().unwrap_or_default(), t.value().unwrap_or_default())))
        .cloned()
        .collect();
    if !missing.is_empty() {
        sm.add_tags().resource_arn(arn).set_tags(Some(missing)).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("{what} tags"));
    }
    let stale = owner.stale_keys(have.iter().map(|(k, _)| *k));
    if !stale.is_empty() {
        sm.delete_tags().resource_arn(arn).set_tag_keys(Some(stale)).send().await.map_err(AwsError::from_sdk)?;
        changes.record(Action::Updated, format!("{what} removed tags"));
    }
    Ok(())
}

/// Key and value of each tag.
pub(crate) fn pairs(tags: &[Tag]) -> Vec<(&str, &str)> {
    tags.iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect()
}
