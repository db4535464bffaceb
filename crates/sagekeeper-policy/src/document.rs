//! Policy documents and statements as JSON values: the one shape every builder emits, and the
//! lookup by `Sid` that tests and the controller use to find a statement again.

use serde_json::{Map, Value, json};

use crate::inputs::{Accounts, Principals};

/// The current policy language version (the older one has no policy variables).
pub(crate) const VERSION: &str = "2012-10-17";

/// Wraps statements into a policy document.
pub(crate) fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": VERSION, "Statement": statements })
}

/// The statement with this `Sid`, if the policy has one.
pub fn find_statement<'a>(policy: &'a Value, sid: &str) -> Option<&'a Value> {
    statements(policy).find(|statement| statement.get("Sid").and_then(Value::as_str) == Some(sid))
}

/// The `Sid` of every statement, in document order.
pub fn statement_ids(policy: &Value) -> Vec<&str> {
    statements(policy).filter_map(|statement| statement.get("Sid").and_then(Value::as_str)).collect()
}

fn statements(policy: &Value) -> impl Iterator<Item = &Value> {
    policy.get("Statement").and_then(Value::as_array).into_iter().flatten()
}

/// Builds one statement. Lists are always emitted as arrays, so a document has one shape.
#[derive(Clone)]
pub(crate) struct Statement {
    fields: Map<String, Value>,
    conditions: Map<String, Value>,
}

impl Statement {
    /// An `Allow` statement.
    pub(crate) fn allow(sid: &str) -> Self {
        Self::new(sid, "Allow")
    }

    /// A `Deny` statement.
    pub(crate) fn deny(sid: &str) -> Self {
        Self::new(sid, "Deny")
    }

    fn new(sid: &str, effect: &str) -> Self {
        let mut fields = Map::new();
        fields.insert("Sid".into(), sid.into());
        fields.insert("Effect".into(), effect.into());
        Statement { fields, conditions: Map::new() }
    }

    /// The actions, as written.
    pub(crate) fn actions(mut self, actions: &[&str]) -> Self {
        self.fields.insert("Action".into(), json!(actions));
        self
    }

    /// Every action but these (`NotAction`).
    pub(crate) fn not_actions(mut self, actions: &[&str]) -> Self {
        self.fields.insert("NotAction".into(), json!(actions));
        self
    }

    /// The resources, as given.
    pub(crate) fn resources<S: Into<String>>(mut self, resources: impl IntoIterator<Item = S>) -> Self {
        let resources: Vec<String> = resources.into_iter().map(Into::into).collect();
        self.fields.insert("Resource".into(), json!(resources));
        self
    }

    /// IAM principals (account roots, roles, users).
    pub(crate) fn aws_principals<S: Into<String>>(mut self, principals: impl IntoIterator<Item = S>) -> Self {
        let principals: Vec<String> = principals.into_iter().map(Into::into).collect();
        self.fields.insert("Principal".into(), json!({ "AWS": principals }));
        self
    }

    /// An AWS service principal, such as `sagemaker.amazonaws.com`.
    pub(crate) fn service_principal(mut self, service: &str) -> Self {
        self.fields.insert("Principal".into(), json!({ "Service": [service] }));
        self
    }

    /// Every principal: resource policies whose conditions decide who is affected.
    pub(crate) fn any_principal(mut self) -> Self {
        self.fields.insert("Principal".into(), "*".into());
        self
    }

    /// Adds `operator: { key: value }` to the condition block. Keys in one block are ANDed.
    pub(crate) fn condition(mut self, operator: &str, key: &str, value: impl Into<Value>) -> Self {
        let block = self.conditions.entry(operator).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(block) = block {
            block.insert(key.into(), value.into());
        }
        self
    }

    /// Adds a condition with a list of values (ORed by AWS), as an array even for one value.
    pub(crate) fn condition_any<S: AsRef<str>>(self, operator: &str, key: &str, values: &[S]) -> Self {
        let values: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
        self.condition(operator, key, json!(values))
    }

    /// The statement once per way `accounts` are named on the principal side: by id
    /// (`aws:PrincipalAccount`), and below organization paths (`aws:PrincipalOrgPaths`, its Sid
    /// ending `ByOrgPath`). Conditions in one statement are ANDed, hence two statements.
    pub(crate) fn per_principal_accounts(self, accounts: &Accounts) -> Vec<Statement> {
        self.per_accounts(accounts, "aws:PrincipalAccount", "aws:PrincipalOrgPaths", "ByOrgPath")
    }

    /// The same on the resource side (`aws:ResourceAccount`, `aws:ResourceOrgPaths`, Sid ending
    /// `ResourcesByOrgPath`).
    pub(crate) fn per_resource_accounts(self, accounts: &Accounts) -> Vec<Statement> {
        self.per_accounts(accounts, "aws:ResourceAccount", "aws:ResourceOrgPaths", "ResourcesByOrgPath")
    }

    fn per_accounts(self, accounts: &Accounts, id_key: &str, path_key: &str, suffix: &str) -> Vec<Statement> {
        let mut out = Vec::new();
        if !accounts.org_paths.is_empty() {
            let by_path = self.clone().sid_suffix(suffix);
            out.push(by_path.condition_any("ForAnyValue:StringLike", path_key, &accounts.org_paths));
        }
        if !accounts.ids.is_empty() {
            out.insert(0, self.condition_any("StringEquals", id_key, &accounts.ids));
        }
        out
    }

    /// The statement once per way `principals` are named: by ARN, and (as `Principal: *`) below
    /// organization paths by `aws:PrincipalArn` pattern, its Sid ending `suffix`. The latter
    /// also names the organizations by id, a fixed value, so S3's Block Public Access does not
    /// count it as public, and the owner tag the principals must carry, when there is one.
    pub(crate) fn per_principals(self, principals: &Principals, suffix: &str) -> Vec<Statement> {
        let mut out = Vec::new();
        if !principals.arns.is_empty() {
            out.push(self.clone().aws_principals(principals.arns.clone()));
        }
        if !principals.org_arns.is_empty() {
            let mut by_path = self
                .sid_suffix(suffix)
                .any_principal()
                .condition_any("StringEquals", "aws:PrincipalOrgID", &principals.org_ids())
                .condition_any("ForAnyValue:StringLike", "aws:PrincipalOrgPaths", &principals.org_paths)
                .condition_any("ArnLike", "aws:PrincipalArn", &principals.org_arns);
            if let Some(uid) = &principals.owner_uid {
                let key = format!("aws:PrincipalTag/{}", crate::inputs::OWNER_UID_TAG_KEY);
                by_path = by_path.condition("StringEquals", &key, uid.as_str());
            }
            out.push(by_path);
        }
        out
    }

    fn sid_suffix(mut self, suffix: &str) -> Self {
        let sid = format!("{}{suffix}", self.fields["Sid"].as_str().unwrap_or_default());
        self.fields.insert("Sid".into(), sid.into());
        self
    }

    /// The finished statement.
    pub(crate) fn build(mut self) -> Value {
        if !self.conditions.is_empty() {
            self.fields.insert("Condition".into(), Value::Object(self.conditions));
        }
        Value::Object(self.fields)
    }
}

#[cfg(test)]
pub(crate) mod checks {
    //! Properties every document must have, whatever it grants.

    use super::*;
    use crate::compare::equivalent;

    /// The statement with this Sid, or a panic naming the Sids that exist.
    pub(crate) fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
        find_statement(policy, sid).unwrap_or_else(|| panic!("no statement {sid} in {:?}", statement_ids(policy)))
    }

    /// Version, unique alphanumeric Sids (IAM rejects others), and order-insensitive equality.
    pub(crate) fn well_formed(policy: &Value) {
        assert_eq!(policy["Version"], VERSION);
        let ids = statement_ids(policy);
        assert_eq!(ids.len(), policy["Statement"].as_array().map_or(0, Vec::len), "every statement has a Sid");
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "duplicate Sid in {ids:?}");
        for id in &ids {
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "Sid {id} is not alphanumeric");
        }
        let mut reordered = policy.clone();
        if let Some(statements) = reordered["Statement"].as_array_mut() {
            statements.reverse();
        }
        assert!(equivalent(policy, &reordered));
        assert!(equivalent(policy, policy));
    }

    /// The actions of a statement, as strings.
    pub(crate) fn actions(statement: &Value) -> Vec<&str> {
        statement["Action"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_emit_lists_as_arrays_and_merge_conditions_per_operator() {
        let statement = Statement::deny("DenyThing")
            .any_principal()
            .actions(&["s3:*"])
            .resources(["arn:aws:s3:::b"])
            .condition("Bool", "aws:SecureTransport", "false")
            .condition_any("StringNotEquals", "aws:sourceVpce", &["vpce-1"])
            .condition("Bool", "aws:ViaAWSService", "false")
            .build();
        assert_eq!(
            statement,
            json!({
                "Sid": "DenyThing", "Effect": "Deny", "Principal": "*", "Action": ["s3:*"],
                "Resource": ["arn:aws:s3:::b"],
                "Condition": {
                    "Bool": {"aws:SecureTransport": "false", "aws:ViaAWSService": "false"},
                    "StringNotEquals": {"aws:sourceVpce": ["vpce-1"]}
                }
            })
        );
    }

    #[test]
    fn statements_are_found_by_sid() {
        let policy = document(vec![Statement::allow("A").build(), Statement::deny("B").build()]);
        assert_eq!(statement_ids(&policy), ["A", "B"]);
        assert_eq!(find_statement(&policy, "B").and_then(|s| s["Effect"].as_str()), Some("Deny"));
        assert!(find_statement(&policy, "C").is_none());
        assert!(find_statement(&json!({}), "A").is_none());
    }
}
