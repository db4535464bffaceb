//! Semantic comparison of policy documents. AWS returns policies in other shapes than we sent
//! them: statements reordered, one-element lists as scalars, account ids as root ARNs, booleans
//! as strings, IAM documents URL-encoded. Comparing strings would rewrite an equal policy on
//! every drift check; comparing normalized documents does not.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// Parses a policy as AWS returns it: plain JSON, or URL-encoded JSON (IAM's Get*Policy).
pub fn parse(document: &str) -> Result<Value, serde_json::Error> {
    let trimmed = document.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed);
    }
    serde_json::from_str(&percent_decode(trimmed))
}

/// True when two policies grant and deny the same things (same statements, each with the
/// same effect, principals, actions, resources and conditions, in any order and shape).
pub fn equivalent(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

/// True when `document`, a policy as AWS returns it (plain or URL-encoded JSON), grants and
/// denies what `planned` does ([`equivalent`]). Both sides' digests are remembered, so a drift
/// check that finds the same texts as the last one parses and normalizes nothing.
pub fn same_policy(document: &str, planned: &Value) -> bool {
    digest_of(document).is_some_and(|have| have == digest(planned))
}

/// The SHA-256 of a policy's normalized form: equal for equivalent policies, and (a
/// cryptographic hash) never equal for others, even ones made to look alike.
pub type Digest = [u8; 32];

/// The [`Digest`] of a policy.
pub fn digest(policy: &Value) -> Digest {
    remembered(&policy.to_string(), || Some(normalized_digest(policy))).unwrap_or_default()
}

/// [`digest`] of a document as AWS returns it (URL-encoded or not); `None` when it is no JSON.
pub fn digest_of(document: &str) -> Option<Digest> {
    remembered(document, || parse(document).ok().map(|policy| normalized_digest(&policy)))
}

fn normalized_digest(policy: &Value) -> Digest {
    sha256(&normalize(policy).to_string())
}

fn sha256(text: &str) -> Digest {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(text.as_bytes()).into()
}

/// The digest of `text` as `compute` gives it, remembered by the text's SHA-256.
///
/// Normalizing a document costs far more than reading it: an account's role listing holds
/// every role's trust and inline policies (hundreds at a few hundred projects), and the same
/// documents come back in every listing, every drift check and every plan. So the digests are
/// kept for as long as the process runs (some 150 bytes each; emptied when they would pass
/// [`DIGESTS_KEPT`]).
fn remembered(text: &str, compute: impl FnOnce() -> Option<Digest>) -> Option<Digest> {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};
    static DIGESTS: Mutex<Option<HashMap<Digest, Option<Digest>>>> = Mutex::new(None);
    let key = sha256(text);
    if let Some(known) = DIGESTS.lock().unwrap_or_else(PoisonError::into_inner).as_ref().and_then(|d| d.get(&key)) {
        return *known;
    }
    let digest = compute();
    let mut digests = DIGESTS.lock().unwrap_or_else(PoisonError::into_inner);
    let digests = digests.get_or_insert_with(HashMap::new);
    if digests.len() >= DIGESTS_KEPT {
        digests.clear();
    }
    digests.insert(key, digest);
    digest
}

/// How many digests [`remembered`] keeps at most.
const DIGESTS_KEPT: usize = 16384;

/// The canonical form of a policy: one-element lists become scalars, lists are sorted and
/// deduplicated, scalars become strings, and bare account-id principals become root ARNs.
pub fn normalize(policy: &Value) -> Value {
    normalize_value(policy, None)
}

fn normalize_value(value: &Value, key: Option<&str>) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), normalize_value(v, Some(k)));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(|v| normalize_value(v, key)).collect();
            items.sort_by(order);
            items.dedup();
            if items.len() == 1 { items.pop().unwrap_or(Value::Null) } else { Value::Array(items) }
        }
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) if key == Some("AWS") && is_account_id(s) => Value::String(format!("arn:aws:iam::{s}:root")),
        other => other.clone(),
    }
}

/// A total order of values, so equal ones end up side by side when sorted (what order it is
/// does not matter, only that it is one): by kind, then by content, with no text made.
fn order(a: &Value, b: &Value) -> Ordering {
    let kind = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    };
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x.to_string().cmp(&y.to_string()),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            x.len().cmp(&y.len()).then_with(|| first_difference(x.iter().zip(y).map(|(a, b)| order(a, b))))
        }
        // serde_json's maps iterate in key order, so equal maps compare equal.
        (Value::Object(x), Value::Object(y)) => x.len().cmp(&y.len()).then_with(|| {
            let pairs = x.iter().zip(y).map(|((ka, va), (kb, vb))| ka.cmp(kb).then_with(|| order(va, vb)));
            first_difference(pairs)
        }),
        _ => kind(a).cmp(&kind(b)),
    }
}

fn first_difference(mut pairs: impl Iterator<Item = Ordering>) -> Ordering {
    pairs.find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
            }
            _ => None,
        };
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an IAM action pattern (`s3:Get*`, case-insensitive) matches an action. A pattern with
/// `*` matches that pattern written literally too, so wildcards can be checked for coverage.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(action),
        Some((head, rest)) => {
            action.len() >= head.len()
                && action.is_char_boundary(head.len())
                && action[..head.len()].eq_ignore_ascii_case(head)
                && (head.len()..=action.len())
                    .filter(|i| action.is_char_boundary(*i))
                    .any(|i| action_matches(rest, &action[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statement_and_list_order_do_not_matter() {
        let a = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
        ]});
        let b = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": ["s3:*"], "Resource": ["*"]},
            {"Resource": "arn:aws:s3:::b/*", "Action": ["s3:PutObject", "s3:GetObject"], "Effect": "Allow"}
        ]});
        assert!(equivalent(&a, &b));
    }

    #[test]
    fn a_statement_repeated_anywhere_in_the_list_counts_once() {
        let allow = |action: &str| json!({"Effect": "Allow", "Action": action, "Resource": ["b", "a"]});
        let deny = json!({"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Principal": "*"});
        let a = json!({"Statement": [allow("s3:GetObject"), deny, allow("s3:PutObject"), allow("s3:GetObject")]});
        let b = json!({"Statement": [allow("s3:PutObject"), deny, allow("s3:GetObject")]});
        assert!(equivalent(&a, &b));
        let c = json!({"Statement": [allow("s3:PutObject"), deny]});
        assert!(!equivalent(&a, &c));
    }

    #[test]
    fn a_single_statement_object_equals_a_list_of_one() {
        let a = json!({"Statement": {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}});
        let b = json!({"Statement": [{"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*"}]});
        assert!(equivalent(&a, &b));
    }

    #[test]
    fn account_id_principals_equal_root_arns_and_booleans_equal_strings() {
        let a = json!({"Statement": [{"Effect": "Deny", "Principal": {"AWS": "111111111111"},
            "Condition": {"Bool": {"aws:SecureTransport": false}}}]});
        let b = json!({"Statement": [{"Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam::111111111111:root"]},
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
        assert!(equivalent(&a, &b));
    }

    #[test]
    fn different_grants_are_not_equivalent() {
        let a = json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
        let wider =
            json!({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*"}]});
        let denied = json!({"Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]});
        let conditioned = json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
            "Condition": {"StringEquals": {"aws:sourceVpce": "vpce-1"}}}]});
        assert!(!equivalent(&a, &wider));
        assert!(!equivalent(&a, &denied));
        assert!(!equivalent(&a, &conditioned));
    }

    #[test]
    fn a_policy_text_is_the_planned_one_when_equivalent_asked_again_or_not() {
        let planned = json!({"Statement": [{"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*"}]});
        let encoded = "%7B%22Statement%22%3A%7B%22Resource%22%3A%5B%22*%22%5D%2C%22Action%22%3A%22kms%3ADecrypt%22%2C%22Effect%22%3A%22Allow%22%7D%7D";
        let wider = r#"{"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}"#;
        for _ in 0..2 {
            assert!(same_policy(encoded, &planned));
            assert!(!same_policy(wider, &planned));
            assert!(!same_policy("%7Bnot json", &planned));
        }
    }

    #[test]
    fn parses_plain_and_url_encoded_documents() {
        let plain = parse(r#"{"Version":"2012-10-17","Statement":[]}"#).expect("plain json");
        let encoded = parse("%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D").expect("encoded json");
        assert_eq!(plain, encoded);
        assert!(parse("%7Bnot json").is_err());
    }

    #[test]
    fn a_plus_stays_a_plus_as_iam_encodes_documents() {
        // IAM encodes per RFC 3986: a literal '+' (legal in names and conditions) is not a space.
        let encoded = parse("%7B%22Sid%22%3A%22a+b%2Bc%22%7D").expect("encoded json");
        assert_eq!(encoded, serde_json::json!({"Sid": "a+b+c"}));
    }
}
