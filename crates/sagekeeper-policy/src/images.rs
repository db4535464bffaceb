//! The ECR registries SageMaker's own images live in, per region: what an environment's roles may
//! pull from (besides their own account), and what its ECR endpoints let through.
//!
//! From the SageMaker Python SDK's image URI configuration (`aws/sagemaker-python-sdk`,
//! `sagemaker-core/src/sagemaker/core/image_uri_config/`): the union, over every version and
//! scope, of the registries of `xgboost.json`, `sklearn.json` (first-party framework images and
//! the built-in XGBoost algorithm), `pytorch.json`, `tensorflow.json`, `huggingface.json`,
//! `huggingface-llm.json`, `djl-lmi.json` and `djl-deepspeed.json` (Deep Learning Containers,
//! and the pre-2019 framework images in the original regions). A region missing here admits only
//! the environment's own account.

/// Region -> registry accounts, for every commercial region sagekeeper supports.
pub(crate) const SAGEMAKER_IMAGE_ACCOUNTS: &[(&str, &[&str])] = &[
    ("af-south-1", &["313743910680", "455444449433", "510948584623", "626614931356"]),
    ("ap-east-1", &["057415533634", "286214385809", "651117190479", "871362719292"]),
    ("ap-northeast-1", &["354813040037", "501404015308", "520713654638", "763104351884"]),
    ("ap-northeast-2", &["306986355934", "366743142698", "520713654638", "763104351884"]),
    ("ap-northeast-3", &["364406365360", "867004704886"]),
    ("ap-south-1", &["520713654638", "720646828776", "763104351884", "991648021394"]),
    ("ap-south-2", &["628508329040", "772153158452"]),
    ("ap-southeast-1", &["121021644041", "475088953585", "520713654638", "763104351884"]),
    ("ap-southeast-2", &["520713654638", "544295431143", "763104351884", "783357654285"]),
    ("ap-southeast-3", &["907027046896", "951798379941"]),
    ("ap-southeast-4", &["106583098589", "457447274322"]),
    ("ca-central-1", &["341280168497", "469771592824", "520713654638", "763104351884"]),
    ("ca-west-1", &["190319476487", "204538143572"]),
    ("eu-central-1", &["492215442770", "520713654638", "763104351884", "813361260812"]),
    ("eu-central-2", &["380420809688", "680994064768"]),
    ("eu-north-1", &["520713654638", "662702820516", "669576153137", "763104351884"]),
    ("eu-south-1", &["048378556238", "257386234256", "692866216735", "978288397137"]),
    ("eu-south-2", &["104374241257", "503227376785"]),
    ("eu-west-1", &["141502667606", "520713654638", "685385470294", "763104351884"]),
    ("eu-west-2", &["520713654638", "644912444149", "763104351884", "764974769150"]),
    ("eu-west-3", &["520713654638", "659782779980", "749696950732", "763104351884"]),
    ("il-central-1", &["780543022126", "898809789911"]),
    ("me-central-1", &["272398656194", "914824155844"]),
    ("me-south-1", &["217643126080", "249704162688", "724002660598", "801668240914"]),
    ("sa-east-1", &["520713654638", "737474898029", "763104351884", "855470959533"]),
    ("us-east-1", &["520713654638", "683313688378", "763104351884", "811284229777"]),
    ("us-east-2", &["257758044811", "520713654638", "763104351884", "825641698319"]),
    ("us-west-1", &["520713654638", "632365934929", "746614075791", "763104351884"]),
    ("us-west-2", &["246618743249", "433757028032", "520713654638", "763104351884"]),
];

/// The accounts of the region's SageMaker image registries (none for an unknown region).
pub fn sagemaker_image_accounts(region: &str) -> &'static [&'static str] {
    SAGEMAKER_IMAGE_ACCOUNTS.iter().find(|(r, _)| *r == region).map_or(&[], |(_, accounts)| accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_has_its_deep_learning_and_first_party_registries() {
        assert_eq!(SAGEMAKER_IMAGE_ACCOUNTS.len(), 29);
        for (region, accounts) in SAGEMAKER_IMAGE_ACCOUNTS {
            assert!((2..=4).contains(&accounts.len()), "{region}: {accounts:?}");
            assert!(accounts.windows(2).all(|w| w[0] < w[1]), "{region}: sorted and unique");
            assert!(accounts.iter().all(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())), "{region}");
        }
        assert!(sagemaker_image_accounts("eu-west-1").contains(&"763104351884"), "Deep Learning Containers");
        assert!(sagemaker_image_accounts("eu-west-1").contains(&"141502667606"), "XGBoost and scikit-learn");
        assert!(sagemaker_image_accounts("af-south-1").contains(&"626614931356"), "opt-in regions have their own");
        assert!(sagemaker_image_accounts("mars-east-1").is_empty());
    }

    #[test]
    fn the_pipeline_templates_images_are_among_them() {
        for region in SAGEMAKER_IMAGE_ACCOUNTS.iter().map(|(r, _)| *r) {
            let account = crate::pipeline::image_registry(region).expect(region);
            assert!(sagemaker_image_accounts(region).contains(&account), "{region}: {account}");
        }
    }
}
