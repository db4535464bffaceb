//! The promotion gate, as pure functions: which version `modelVersion` resolves to, what each
//! stage may serve given what the earlier stages verified and what a person approved, and the
//! one-line summary of a stage.

use sagekeeper_api::deployment::{Approval, LATEST_APPROVED, Stage, StagePhase, StageStatus};
use sagekeeper_aws::registry::{Approval as Registered, Version};

/// The version `model_version` names among `versions` (the newest hundred), or why none.
pub(super) fn resolve_model(model_version: &str, versions: &[Version], group: &str) -> Result<Version, String> {
    if model_version == LATEST_APPROVED {
        return versions
            .iter()
            .find(|v| v.approval_status == Registered::Approved)
            .cloned()
            .ok_or_else(|| format!("model package group {group} has no Approved version yet: approve one"));
    }
    let Ok(number) = model_version.parse::<i64>() else {
        return Err(format!("spec.modelVersion {model_version} is not a version number"));
    };
    match versions.iter().find(|v| v.version == number) {
        Some(v) if v.approval_status == Registered::Approved => Ok(v.clone()),
        Some(v) => Err(format!(
            "spec.modelVersion: v{number} of model package group {group} is {}, not Approved",
            v.approval_status.as_str()
        )),
        None => Err(format!("spec.modelVersion: model package group {group} has no version {number}")),
    }
}

/// What one stage's decision is made from.
pub(super) struct Input<'a> {
    /// The stage's index in spec.stages, for the message that says what to set.
    pub(super) index: usize,
    pub(super) stage: &'a Stage,
    /// The version modelVersion resolved to.
    pub(super) wanted: Option<i64>,
    /// modelVersion is LatestApproved (so a step back to an older version is not a decision).
    pub(super) following: bool,
    /// What the stage serves now.
    pub(super) serving: Option<i64>,
    /// Each earlier stage, with the versions it verified.
    pub(super) earlier: &'a [(String, Vec<i64>)],
    /// The registry's versions.
    pub(super) versions: &'a [Version],
    pub(super) group: &'a str,
}

/// What the gate lets one stage serve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Decision {
    /// The version to serve now; `None`: nothing yet.
    pub(super) target: Option<i64>,
    /// A version a Manual stage waits for a person to approve.
    pub(super) waiting_for: Option<i64>,
    /// The Rejected version the stage keeps serving until a person decides.
    pub(super) rejected_serving: Option<i64>,
    /// Why the target may only be kept where it serves, not deployed anew (it is not Approved
    /// any more): no account gets it newly, and no endpoint is moved to new settings.
    pub(super) hold: Option<String>,
    /// Why it serves what it does, or exactly what to set.
    pub(super) message: String,
}

/// A stage deploys version N only when every earlier stage verified N and N is Approved (or the
/// stage already serves it); a Manual stage only the approvedVersion a person set. A Rejected
/// version is never newly deployed, and one already served keeps serving until a person
/// decides: following LatestApproved never steps back from it on its own.
pub(super) fn decide(input: &Input<'_>) -> Decision {
    let approval = |v: i64| input.versions.iter().find(|x| x.version == v).map(|x| x.approval_status.as_str());
    let blocked = |v: i64| -> Option<String> {
        if let Some((name, _)) = input.earlier.iter().find(|(_, verified)| !verified.contains(&v)) {
            return Some(format!("v{v} is not verified by stage {name} yet"));
        }
        if Some(v) == input.serving {
            return None;
        }
        match approval(v) {
            Some("Approved") => None,
            Some(other) => Some(format!("v{v} is {other} in model package group {}, not Approved", input.group)),
            None => Some(format!("model package group {} has no v{v}", input.group)),
        }
    };
    let rejected = input.serving.filter(|s| approval(*s) == Some("Rejected"));
    let mut messages = Vec::new();
    let mut waiting_for = None;
    let target = match input.stage.approval {
        Approval::Automatic => match input.wanted {
            Some(n) if input.following && rejected.is_some_and(|s| n < s) => input.serving,
            Some(n) => match blocked(n) {
                None => Some(n),
                Some(why) => {
                    messages.push(why);
                    input.serving
                }
            },
            None => input.serving,
        },
        Approval::Manual => {
            let approved = input.stage.approved_version.as_deref().and_then(|v| v.parse::<i64>().ok());
            let target = match approved {
                Some(a) => match blocked(a) {
                    None => Some(a),
                    Some(why) => {
                        messages.push(format!("approvedVersion {a}: {why}"));
                        input.serving
                    }
                },
                None => input.serving,
            };
            if let Some(n) = input.wanted.filter(|n| Some(*n) != target && blocked(*n).is_none()) {
                waiting_for = Some(n);
                messages.push(format!(
                    "set spec.stages[{}].approvedVersion: \"{n}\" to deploy v{n} to {}",
                    input.index, input.stage.name
                ));
            }
            target
        }
    };
    let rejected_serving = rejected.filter(|s| Some(*s) == target);
    if let Some(s) = rejected_serving {
        let remedy = match input.stage.approval {
            Approval::Automatic => "pin spec.modelVersion or approve a newer version to replace it",
            Approval::Manual => "set approvedVersion to another version to replace it",
        };
        messages.insert(0, format!("v{s} is Rejected and still serves: {remedy}"));
    }
    let hold = target.and_then(|t| match approval(t) {
        Some("Approved") => None,
        Some(other) => Some(format!("v{t} is {other}, so it is not deployed anew")),
        None => Some(format!("v{t} is no longer in model package group {}, so it is not deployed anew", input.group)),
    });
    Decision { target, waiting_for, rejected_serving, hold, message: messages.join("; ") }
}

/// `staging=v7 Serving`, `production=v6 WaitingForApproval(v7)`, `staging=v6 Deploying(v7)`.
pub(super) fn summary(stage: &StageStatus, waiting_for: Option<i64>) -> String {
    let serving = stage.serving_version.map_or("none".to_owned(), |v| format!("v{v}"));
    let phase = format!("{:?}", stage.phase);
    match (stage.phase, waiting_for, stage.desired_version) {
        (StagePhase::WaitingForApproval, Some(n), _) => format!("{}={serving} {phase}(v{n})", stage.name),
        (StagePhase::Deploying | StagePhase::Baking | StagePhase::Failed, _, Some(n))
            if Some(n) != stage.serving_version =>
        {
            format!("{}={serving} {phase}(v{n})", stage.name)
        }
        _ => format!("{}={serving} {phase}", stage.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(version: i64, approval: &str) -> Version {
        Version {
            arn: format!("arn:aws:sagemaker:us-east-1:1:model-package/g/{version}"),
            version,
            approval_status: Registered::parse(approval),
        }
    }

    fn stage(approval: Approval, approved: Option<&str>) -> Stage {
        Stage {
            name: "production".into(),
            accounts: None,
            account_sets: None,
            instance_type: "ml.m5.large".into(),
            initial_instance_count: 1,
            approval,
            approved_version: approved.map(str::to_owned),
            data_capture: None,
            rollout: None,
            autoscaling: None,
        }
    }

    /// Decides for `stage` as the second stage, after a staging stage that verified `verified`.
    fn decide_after(stage: &Stage, wanted: Option<i64>, serving: Option<i64>, verified: &[i64]) -> Decision {
        let versions = [
            version(4, "PendingManualApproval"),
            version(3, "Approved"),
            version(2, "Rejected"),
            version(1, "Approved"),
        ];
        let earlier = [("staging".to_owned(), verified.to_vec())];
        decide(&Input {
            index: 1,
            stage,
            wanted,
            following: true,
            serving,
            earlier: &earlier,
            versions: &versions,
            group: "g",
        })
    }

    #[test]
    fn latest_approved_is_the_newest_approved_and_a_pin_must_be_approved() {
        let versions = [version(3, "PendingManualApproval"), version(2, "Approved"), version(1, "Rejected")];
        assert_eq!(resolve_model(LATEST_APPROVED, &versions, "g").map(|v| v.version), Ok(2));
        assert_eq!(resolve_model("2", &versions, "g").map(|v| v.version), Ok(2));
        assert!(resolve_model("1", &versions, "g").unwrap_err().contains("v1 of model package group g is Rejected"));
        assert!(resolve_model("9", &versions, "g").unwrap_err().contains("has no version 9"));
        assert!(resolve_model(LATEST_APPROVED, &versions[..1], "g").unwrap_err().contains("no Approved version"));
    }

    #[test]
    fn an_automatic_stage_deploys_only_what_every_earlier_stage_verified() {
        let automatic = stage(Approval::Automatic, None);
        assert_eq!(decide_after(&automatic, Some(3), Some(1), &[1, 3]).target, Some(3));
        let held = decide_after(&automatic, Some(3), Some(1), &[1]);
        assert_eq!(held.target, Some(1), "keeps serving v1");
        assert_eq!(held.message, "v3 is not verified by stage staging yet");
        assert_eq!(decide_after(&automatic, Some(3), None, &[]).target, None, "nothing verified, nothing served");
    }

    #[test]
    fn a_manual_stage_waits_for_approved_version_and_says_what_to_set() {
        let waiting = decide_after(&stage(Approval::Manual, None), Some(3), None, &[3]);
        assert_eq!(waiting.target, None);
        assert_eq!(waiting.waiting_for, Some(3));
        assert_eq!(waiting.message, "set spec.stages[1].approvedVersion: \"3\" to deploy v3 to production");
        let serving_old = decide_after(&stage(Approval::Manual, Some("1")), Some(3), Some(1), &[1, 3]);
        assert_eq!((serving_old.target, serving_old.waiting_for), (Some(1), Some(3)));
        let approved = decide_after(&stage(Approval::Manual, Some("3")), Some(3), Some(1), &[1, 3]);
        assert_eq!(approved, Decision { target: Some(3), ..Decision::default() });
        // Rollback to a version staging verified earlier is the same one field.
        let back = decide_after(&stage(Approval::Manual, Some("1")), Some(3), Some(3), &[1, 3]);
        assert_eq!(back.target, Some(1));
        // Not verified by staging: nothing new is deployed, and the message says why.
        let early = decide_after(&stage(Approval::Manual, Some("3")), Some(3), Some(1), &[1]);
        assert_eq!(early.target, Some(1));
        assert_eq!(early.message, "approvedVersion 3: v3 is not verified by stage staging yet");
    }

    #[test]
    fn only_approved_versions_are_newly_deployed() {
        let pending = decide_after(&stage(Approval::Manual, Some("4")), Some(3), Some(3), &[3, 4]);
        assert_eq!(pending.target, Some(3));
        assert!(pending.message.contains("v4 is PendingManualApproval in model package group g, not Approved"));
        let rejected = decide_after(&stage(Approval::Manual, Some("2")), Some(3), Some(3), &[2, 3]);
        assert_eq!(rejected.target, Some(3));
        assert!(rejected.message.contains("v2 is Rejected"));
    }

    #[test]
    fn a_rejected_version_keeps_serving_until_a_person_decides() {
        // Staging serves v2, which was Rejected since: LatestApproved fell back to v1, yet the
        // stage does not step back on its own.
        let automatic = stage(Approval::Automatic, None);
        let held = decide_after(&automatic, Some(1), Some(2), &[1, 2]);
        assert_eq!((held.target, held.rejected_serving), (Some(2), Some(2)));
        assert!(held.message.starts_with("v2 is Rejected and still serves: pin spec.modelVersion"));
        // A newer approval replaces it.
        assert_eq!(decide_after(&automatic, Some(3), Some(2), &[2, 3]).target, Some(3));
        // A Manual stage approved for it keeps it too, and says so.
        let manual = decide_after(&stage(Approval::Manual, Some("2")), Some(3), Some(2), &[2]);
        assert_eq!(manual.rejected_serving, Some(2));
        assert!(manual.message.starts_with("v2 is Rejected and still serves: set approvedVersion"));
    }

    #[test]
    fn a_version_no_longer_approved_is_only_kept_where_it_serves() {
        let held = decide_after(&stage(Approval::Automatic, None), Some(1), Some(2), &[1, 2]);
        assert_eq!(held.hold.as_deref(), Some("v2 is Rejected, so it is not deployed anew"));
        let manual = decide_after(&stage(Approval::Manual, Some("4")), Some(3), Some(4), &[3, 4]);
        assert_eq!(manual.target, Some(4));
        assert_eq!(manual.hold.as_deref(), Some("v4 is PendingManualApproval, so it is not deployed anew"));
        assert_eq!(decide_after(&stage(Approval::Automatic, None), Some(3), Some(1), &[1, 3]).hold, None);
    }

    #[test]
    fn a_pin_steps_back_from_a_rejected_version_when_a_person_asks() {
        let versions = [version(3, "Approved"), version(2, "Rejected"), version(1, "Approved")];
        let decision = decide(&Input {
            index: 0,
            stage: &stage(Approval::Automatic, None),
            wanted: Some(1),
            following: false,
            serving: Some(2),
            earlier: &[],
            versions: &versions,
            group: "g",
        });
        assert_eq!((decision.target, decision.hold), (Some(1), None));
    }

    #[test]
    fn summary_says_what_serves_and_what_waits() {
        let stage = |phase, serving, desired| StageStatus {
            name: "production".into(),
            phase,
            serving_version: serving,
            desired_version: desired,
            ..Default::default()
        };
        assert_eq!(summary(&stage(StagePhase::Serving, Some(7), Some(7)), None), "production=v7 Serving");
        assert_eq!(
            summary(&stage(StagePhase::WaitingForApproval, Some(6), Some(6)), Some(7)),
            "production=v6 WaitingForApproval(v7)"
        );
        assert_eq!(summary(&stage(StagePhase::Deploying, Some(6), Some(7)), None), "production=v6 Deploying(v7)");
        assert_eq!(summary(&stage(StagePhase::Pending, None, None), None), "production=none Pending");
    }
}
