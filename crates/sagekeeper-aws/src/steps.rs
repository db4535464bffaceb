//! What every step shares: its result (ready with outputs, or pending on a transitional AWS
//! state), the owner whose tags it writes and by whose uid alone it adopts, and the log of the
//! writes it made (for events, and so a drift check can prove it wrote nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use sagekeeper_api::naming::{OWNER_TAG, OWNER_UID_TAG};

use crate::errors::{AwsError, ErrorKind};

/// The outcome of a step that did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<T> {
    /// Everything exists and matches; these are its outputs.
    Ready(T),
    /// Waiting on AWS (a resource still creating, IAM still propagating); what it waits for.
    Pending(String),
}

/// A step's result: ready, pending, or a classified AWS failure.
pub type StepResult<T> = Result<Step<T>, AwsError>;

/// The object that owns what a step creates: the tags it writes, and the uid it adopts by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// The owning object's uid.
    pub uid: String,
    /// Tags on every resource (owner, uid and user tags), without the component tag.
    pub base_tags: BTreeMap<String, String>,
    /// User tag keys once applied and since removed from the spec: taken off where found.
    pub removed_tags: BTreeSet<String>,
}

impl Owner {
    /// The tags of one component.
    pub fn tags(&self, component: &str) -> BTreeMap<String, String> {
        let mut tags = self.base_tags.clone();
        tags.insert(sagekeeper_api::naming::COMPONENT_TAG.into(), component.into());
        tags
    }

    /// The removed tag keys among `have`, the keys a resource carries.
    pub fn stale_keys<'a>(&self, have: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        have.into_iter().filter(|k| self.removed_tags.contains(*k)).map(str::to_owned).collect()
    }

    /// True when these tags carry this owner's uid.
    pub fn owns<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        tags.into_iter().any(|(k, v)| k == OWNER_UID_TAG && v == self.uid)
    }

    /// The error for a same-named resource that belongs to someone else: never adopted.
    pub fn conflict<'a>(&self, resource: &str, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> AwsError {
        let holder =
            tags.into_iter().find(|(k, _)| *k == OWNER_TAG).map_or("something else".to_owned(), |(_, v)| v.to_owned());
        AwsError {
            kind: ErrorKind::Conflict,
            code: "NameConflict".into(),
            message: format!(
                "{resource} exists and belongs to {holder}; sagekeeper adopts only what carries its own owner-uid"
            ),
        }
    }
}

/// How much of a converged resource a pass looks at where AWS offers no batch read: a drift
/// check at `Security` depth reads what guards data and access (bucket policies, public access
/// blocks and encryption, key policies, roles with their trust, boundary and policies,
/// security groups, routes and VPC endpoints); one at `Full` depth also reads the settings
/// (bucket ownership controls and versioning, key rotation, VPC DNS attributes), key state
/// (AWS schedules a deletion at least 7 days out) and the tags of the Studio domain (found by
/// its pinned id) and of buckets and keys this process has found carrying its owner's tags (a
/// Security check reads a bucket's or key's tags when it has not, and before any write to a
/// bucket: drift found there is repaired only on a bucket just seen to be ours). User
/// profiles' tags are read at either depth: persona policies open a profile by its persona
/// tag. Resources AWS lists with their tags (roles, networks) are checked wholly at either
/// depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Depth {
    /// What guards data and access.
    Security,
    /// Everything.
    #[default]
    Full,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A resource was created.
    Created,
    /// A resource was changed back to its desired state (drift repaired).
    Updated,
    /// A resource was deleted.
    Deleted,
}

/// The writes one pass made, in order.
#[derive(Debug, Default)]
pub struct Changes {
    log: Mutex<Vec<(Action, String)>>,
}

impl Changes {
    /// Records a write.
    pub fn record(&self, action: Action, resource: impl Into<String>) {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((action, resource.into()));
    }

    /// Moves what `other` recorded here; true when it recorded anything (a step that writes
    /// through its own log learns whether it wrote, whatever other steps wrote meanwhile).
    pub fn absorb(&self, other: Self) -> bool {
        let moved = other.take();
        let wrote = !moved.is_empty();
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(moved);
        wrote
    }

    /// Everything recorded so far.
    pub fn take(&self) -> Vec<(Action, String)> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}
