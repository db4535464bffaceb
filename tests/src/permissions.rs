//! The shipped AWS policies, as the tests install them in each emulated account: the emulator
//! evaluates them on every call, so a permission the controller lacks fails the test that needs it.

/// The managed policies shipped for the role sagekeeper assumes in each account
/// (`deploy/aws/deployer/<part>.json`), installed as `sagekeeper-deployer-<part>`.
pub const DEPLOYER_POLICIES: &[(&str, &str)] = &[
    ("network", include_str!("../../deploy/aws/deployer/network.json")),
    ("keys-and-buckets", include_str!("../../deploy/aws/deployer/keys-and-buckets.json")),
    ("roles", include_str!("../../deploy/aws/deployer/roles.json")),
    ("sagemaker", include_str!("../../deploy/aws/deployer/sagemaker.json")),
    ("alarms-and-scaling", include_str!("../../deploy/aws/deployer/alarms-and-scaling.json")),
];

/// What the role of an AwsAccountSet's organization account needs besides the deployer policies
/// (`deploy/aws/organization-reader.json`), for `account` (the management account).
pub fn organization_reader(account: &str) -> String {
    include_str!("../../deploy/aws/organization-reader.json").replace("ACCOUNT_ID", account)
}

/// The permissions boundary shipped for every role sagekeeper creates.
pub const BOUNDARY: &str = include_str!("../../deploy/aws/sagekeeper-boundary.json");

/// The deployer policies for `account`, as a platform team installs them: (name, document).
pub fn deployer_policies(account: &str) -> Vec<(String, String)> {
    DEPLOYER_POLICIES
        .iter()
        .map(|(part, text)| (format!("sagekeeper-deployer-{part}"), text.replace("ACCOUNT_ID", account)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_deployer_policy_is_installed() {
        let dir = crate::stack::repo_root().join("deploy/aws/deployer");
        let mut shipped: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        shipped.sort();
        let mut installed: Vec<String> = DEPLOYER_POLICIES.iter().map(|(part, _)| (*part).to_owned()).collect();
        installed.sort();
        assert_eq!(shipped, installed);
    }

    /// IAM counts a policy's characters without white space: at most 6,144 for each managed
    /// policy (the boundary, every deployer policy) and 2,048 for the deployer's trust policy.
    #[test]
    fn the_shipped_policies_fit_iams_size_limits() {
        use sagekeeper_policy::limits::{MANAGED_POLICY, TRUST_POLICY, iam_size};
        let size = |text: &str| iam_size(&serde_json::from_str(text).unwrap());
        let boundary = size(BOUNDARY);
        assert!(boundary <= MANAGED_POLICY, "the boundary has {boundary} characters of {MANAGED_POLICY}");
        for (name, document) in deployer_policies("111111111111") {
            let n = size(&document);
            assert!(n <= MANAGED_POLICY, "{name} has {n} characters of {MANAGED_POLICY}");
        }
        let trust = std::fs::read_to_string(crate::stack::repo_root().join("deploy/aws/controller-trust-policy.json"))
            .unwrap()
            .replace("CONTROLLER_ACCOUNT_ID", "222222222222");
        let n = size(&trust);
        assert!(n <= TRUST_POLICY, "the deployer's trust policy has {n} characters of {TRUST_POLICY}");
    }
}
