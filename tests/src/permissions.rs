//! The shipped AWS policies, as the tests install them in each emulated account: the emulator
//! evaluates them on every call, so a permission the controller lacks fails the test that needs it.

/// The managed policies shipped for the role sagekeeper assumes in each account
/// (`deploy/aws/deployer/<part>.json`), installed as `sagekeeper-deployer-<part>`.
pub const DEPLOYER_POLICIES: &[(&str, &str)] = &[
    ("network", include_str!("../../deploy/aws/deployer/network.json")),
    ("keys-and-buckets", include_str!("../../deploy/aws/deployer/keys-and-buckets.json")),
    ("roles", include_str!("../../deploy/aws/deployer/roles.json")),
    ("sagemaker", include_str!("../../deploy/aws/deployer/sagemaker.json")),
];

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
}
