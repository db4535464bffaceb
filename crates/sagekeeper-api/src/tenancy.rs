//! Tenancy: whether an AwsAccount's `namespaceSelector` admits a namespace. Every reconciler
//! calls this before it touches an account; anything it cannot read as a match is a refusal.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// True when `selector` selects a namespace with these labels. Deny by default: an empty
/// selector (which Kubernetes reads as "everything") and an unknown operator select nothing.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector.match_labels.as_ref().filter(|m| !m.is_empty());
    let expressions = selector.match_expressions.as_deref().unwrap_or_default();
    if match_labels.is_none() && expressions.is_empty() {
        return false;
    }
    let labels_match = match_labels.is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    labels_match
        && expressions.iter().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn by_name(name: &str) -> LabelSelector {
        LabelSelector { match_labels: Some(labels(&[("kubernetes.io/metadata.name", name)])), ..Default::default() }
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn selects_the_named_namespace_only() {
        let team = labels(&[("kubernetes.io/metadata.name", "team-fraud")]);
        let other = labels(&[("kubernetes.io/metadata.name", "team-risk")]);
        assert!(selects(&by_name("team-fraud"), &team));
        assert!(!selects(&by_name("team-fraud"), &other));
    }

    #[test]
    fn all_match_labels_must_match() {
        let mut selector = by_name("team-fraud");
        selector.match_labels.as_mut().map(|m| m.insert("tier".into(), "gold".into()));
        assert!(!selects(&selector, &labels(&[("kubernetes.io/metadata.name", "team-fraud")])));
        assert!(selects(&selector, &labels(&[("kubernetes.io/metadata.name", "team-fraud"), ("tier", "gold")])));
    }

    #[test]
    fn empty_selector_selects_nothing() {
        assert!(!selects(&LabelSelector::default(), &labels(&[("a", "b")])));
        let empty_parts = LabelSelector { match_labels: Some(BTreeMap::new()), match_expressions: Some(vec![]) };
        assert!(!selects(&empty_parts, &labels(&[("a", "b")])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let ns = labels(&[("kubernetes.io/metadata.name", "team-a"), ("team", "a")]);
        assert!(selects(&expression("team", "In", &["a", "b"]), &ns));
        assert!(!selects(&expression("team", "In", &["b"]), &ns));
        assert!(!selects(&expression("team", "NotIn", &["a"]), &ns));
        assert!(selects(&expression("missing", "NotIn", &["a"]), &ns));
        assert!(selects(&expression("team", "Exists", &[]), &ns));
        assert!(!selects(&expression("missing", "Exists", &[]), &ns));
        assert!(selects(&expression("missing", "DoesNotExist", &[]), &ns));
        assert!(!selects(&expression("team", "DoesNotExist", &[]), &ns));
    }

    #[test]
    fn unknown_operator_refuses() {
        let ns = labels(&[("team", "a")]);
        assert!(!selects(&expression("team", "Matches", &["a"]), &ns));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let mut selector = by_name("team-a");
        selector.match_expressions = expression("team", "In", &["b"]).match_expressions;
        assert!(!selects(&selector, &labels(&[("kubernetes.io/metadata.name", "team-a"), ("team", "a")])));
    }
}
