//! Semantic comparison of policy documents. AWS returns policies in other shapes than we sent
//! them: statements reordered, one-element lists as scalars, account ids as root ARNs, booleans
//! as strings, IAM documents URL-encoded. Comparing strings would rewrite an equal policy on
//! every drift check; comparing normalized documents does not.

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
            items.sort_by_cached_key(Value::to_string);
            items.dedup();
            if items.len() == 1 { items.pop().unwrap_or(Value::Null) } else { Value::Array(items) }
        }
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) if key == Some("AWS") && is_account_id(s) => Value::String(format!("arn:aws:iam::{s}:root")),
        other => other.clone(),
    }
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
