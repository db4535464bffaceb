//! KMS key policies: the account root administers a key but never uses it, the environment's
//! roles use it, and the s3 key is used only through the environment's VPC endpoints or by AWS
//! services on a caller's behalf. Keys are created with [`admin_policy`] (the roles do not exist
//! yet and KMS refuses policies naming missing principals), then get their full policy.

use serde_json::Value;

use crate::document::{Statement, document};
use crate::iam::{KEY_GRANT_ACTIONS, KEY_USE_ACTIONS};
use crate::inputs::{Environment, Target, dns_suffix, root_arn};

/// What the root may do. Not `kms:Create*`: it includes CreateGrant, and a grant is use.
/// Not ReplicateKey either: a replica gets a policy of its own.
const ADMIN_ACTIONS: &[&str] = &[
    "kms:CreateAlias",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
];

/// What the controller does to the keys it made: read, rotate, tag, alias, repair the policy,
/// schedule and cancel deletion. No use: it encrypts and decrypts nothing.
const CONTROLLER_ACTIONS: &[&str] = &[
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
];

/// The create-time policy: root administration, the controller's management of the key, and the
/// grants for AWS resources it needs to pass the key to CreateDomain and CreateEndpointConfig.
pub fn admin_policy(partition: &str, account_id: &str, controller_arns: &[String]) -> Value {
    document(admin_statements(partition, account_id, controller_arns))
}

/// The ebs key: volumes of jobs, notebooks and dev endpoints, and the dev VPC's flow log group.
pub fn ebs_key_policy(env: &Environment) -> Value {
    let mut users = vec![env.roles.execution.clone(), env.roles.pipeline.clone(), env.roles.model_execution.clone()];
    users.extend(personas(env));
    dev_key_policy(env, &users, vec![flow_logs(env, &env.account_id)])
}

/// Lets CloudWatch Logs encrypt the flow log group of `account` with the key, and nothing else.
/// Present whether flow logs are on or off: a group kept from when they were on stays readable.
fn flow_logs(env: &Environment, account: &str) -> Value {
    crate::logs::key_statement(&crate::logs::FlowLogGroup {
        partition: &env.partition,
        region: &env.region,
        account_id: account,
        name: &env.flow_log_group,
    })
}

/// The studio key: the domain's home file system and app volumes.
pub fn studio_key_policy(env: &Environment) -> Value {
    let mut users = vec![env.roles.execution.clone()];
    users.extend(personas(env));
    dev_key_policy(env, &users, Vec::new())
}

/// The s3 key: SSE-KMS of the data and models buckets, also read by the target accounts' model
/// execution roles, and denied to everyone outside the environment's VPC endpoints.
pub fn s3_key_policy(env: &Environment) -> Value {
    let mut users = vec![env.roles.execution.clone(), env.roles.pipeline.clone(), env.roles.model_execution.clone()];
    users.extend(personas(env));
    let mut extra = Vec::new();
    let target_use =
        Statement::allow("KeyUseByTargetModelRoles").actions(&["kms:Decrypt", "kms:DescribeKey"]).resources(["*"]);
    extra.extend(target_use.per_principals(&env.target_model_roles(), "ByOrgPath").into_iter().map(Statement::build));
    if !env.controller_arns.is_empty() {
        // The controller uploads template scripts into the buckets: S3 asks KMS for a data key
        // as the caller. Only through S3, and never Decrypt: the controller reads no data.
        extra.push(
            Statement::allow("ControllerUploads")
                .aws_principals(env.controller_arns.clone())
                .actions(&["kms:GenerateDataKey"])
                .resources(["*"])
                .condition(
                    "StringEquals",
                    "kms:ViaService",
                    format!("s3.{}.{}", env.region, dns_suffix(&env.partition)),
                )
                .build(),
        );
    }
    extra.push(deny_outside_vpc_endpoints(env));
    dev_key_policy(env, &users, extra)
}

/// A target account's endpoint key: volumes and data capture of its endpoints. The target's
/// controller gets its grants for CreateEndpointConfig from the administrative statements.
pub fn target_key_policy(env: &Environment, target: &Target) -> Value {
    let mut statements = admin_statements(&env.partition, &target.account_id, &target.controller_arns);
    statements.extend(use_statements(std::slice::from_ref(&target.model_execution_role)));
    statements.push(flow_logs(env, &target.account_id));
    document(statements)
}

/// What a key someone else owns must allow that its `current` policy does not: the Allow
/// statements of `wanted` (the policy sagekeeper would give a key of its own) but the
/// administrative ones, which stay the owner's. A statement is there when `current` allows each
/// of its principals each of its actions on the key (`key_arn`), with no condition or the same
/// one: by name, or through the root of the principal's account (the key leaves use to IAM, and
/// the roles' own policies grant these keys). Service principals must be named. Reads only:
/// no grant is made to find out.
pub fn missing_statements(current: &Value, wanted: &Value, key_arn: &str) -> Vec<Value> {
    let allows: Vec<&Value> = statements(current)
        .filter(|s| s["Effect"] == "Allow" && s.get("NotAction").is_none())
        .filter(|s| strings(&s["Resource"]).iter().any(|r| *r == "*" || *r == key_arn))
        .collect();
    let needed = |w: &&Value| {
        w["Effect"] == "Allow" && !matches!(w["Sid"].as_str(), Some("KeyAdministration" | "ControllerManagesKey"))
    };
    statements(wanted).filter(needed).filter(|w| !allowed(&allows, w)).cloned().collect()
}

/// Whether `allows` let every principal of `wanted` do each of its actions, under its condition.
fn allowed(allows: &[&Value], wanted: &Value) -> bool {
    let condition = wanted.get("Condition");
    // `Principal: *` (the roles of an organizational unit, admitted by condition): only a
    // statement open to everyone under the same condition, or none, lets them in.
    let principals: Vec<(&str, &str)> = match wanted["Principal"] == "*" {
        true => vec![("AWS", "*")],
        false => ["AWS", "Service"]
            .into_iter()
            .flat_map(|kind| strings(&wanted["Principal"][kind]).into_iter().map(move |p| (kind, p)))
            .collect(),
    };
    principals.into_iter().all(|(kind, principal)| {
        strings(&wanted["Action"]).into_iter().all(|action| {
            allows.iter().any(|s| {
                (s.get("Condition").is_none() || same_condition(s.get("Condition"), condition))
                    && admits(s, kind, principal)
                    && strings(&s["Action"]).iter().any(|p| covers(p, action))
            })
        })
    })
}

/// Whether two condition blocks are the same as IAM reads them: lists in any order, a single
/// value with or without its list (the form an owner pastes may differ from sagekeeper's).
fn same_condition(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => crate::compare::normalize(a) == crate::compare::normalize(b),
        (a, b) => a == b,
    }
}

/// Whether a statement's principal takes in `principal` (of `kind`): by name, or for an IAM
/// principal through its account's root (`*`: only a statement open to everyone).
fn admits(statement: &Value, kind: &str, principal: &str) -> bool {
    if statement["Principal"] == "*" {
        return true;
    }
    let named = strings(&statement["Principal"][kind]);
    named.contains(&principal)
        || (kind == "AWS"
            && account_of(principal).is_some_and(|account| {
                named.iter().any(|n| *n == account || account_of(n) == Some(account) && n.ends_with(":root"))
            }))
}

/// The statements of a key's `current` policy that deny, unconditionally, something `wanted`
/// needs (by Sid, or position): no statement added can undo them. (A deny under a condition,
/// such as the s3 key's outside the environment's endpoints, is left to the owner's intent.)
pub fn denying_statements(current: &Value, wanted: &Value, key_arn: &str) -> Vec<String> {
    let needed: Vec<&Value> = statements(wanted).filter(|w| w["Effect"] == "Allow").collect();
    statements(current)
        .enumerate()
        .filter(|(_, s)| s["Effect"] == "Deny" && s.get("Condition").is_none() && s.get("NotAction").is_none())
        .filter(|(_, s)| s.get("NotPrincipal").is_none() && s.get("NotResource").is_none())
        .filter(|(_, s)| strings(&s["Resource"]).iter().any(|r| *r == "*" || *r == key_arn))
        .filter(|(_, s)| {
            needed.iter().any(|w| {
                ["AWS", "Service"].into_iter().any(|kind| {
                    strings(&w["Principal"][kind]).into_iter().any(|principal| {
                        let everyone = s["Principal"] == "*" || strings(&s["Principal"][kind]).contains(&"*");
                        (everyone || admits(s, kind, principal))
                            && strings(&w["Action"]).iter().any(|a| strings(&s["Action"]).iter().any(|p| covers(p, a)))
                    })
                })
            })
        })
        .map(|(i, s)| s["Sid"].as_str().map_or_else(|| format!("statement {}", i + 1), str::to_owned))
        .collect()
}

/// The statements of a policy document (one, or a list).
fn statements(policy: &Value) -> impl Iterator<Item = &Value> {
    match &policy["Statement"] {
        Value::Array(list) => list.iter().collect::<Vec<_>>().into_iter(),
        one @ Value::Object(_) => vec![one].into_iter(),
        _ => Vec::new().into_iter(),
    }
}

/// A string or a list of strings.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The account of an IAM ARN.
fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Whether an action pattern (`kms:*`, `kms:Generate*`, `*`) covers an action, as IAM compares
/// them: without regard to case.
fn covers(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

fn admin_statements(partition: &str, account_id: &str, controller_arns: &[String]) -> Vec<Value> {
    let mut statements = vec![
        Statement::allow("KeyAdministration")
            .aws_principals([root_arn(partition, account_id)])
            .actions(ADMIN_ACTIONS)
            .resources(["*"])
            .build(),
    ];
    if !controller_arns.is_empty() {
        // The controller manages the key by this policy, not by its IAM policy: the deployer
        // policy grants no change to keys, so a key this policy does not name (someone else's)
        // is out of its reach even if it tags it as sagekeeper's.
        statements.push(
            Statement::allow("ControllerManagesKey")
                .aws_principals(controller_arns.to_vec())
                .actions(CONTROLLER_ACTIONS)
                .resources(["*"])
                .build(),
        );
        // Its own statement: DescribeKey requests carry no GrantIsForAWSResource key.
        statements.push(
            Statement::allow("ControllerGrantsForAwsResources")
                .aws_principals(controller_arns.to_vec())
                .actions(&["kms:CreateGrant"])
                .resources(["*"])
                .condition("Bool", "kms:GrantIsForAWSResource", "true")
                .build(),
        );
    }
    statements
}

fn dev_key_policy(env: &Environment, users: &[String], extra: Vec<Value>) -> Value {
    let mut statements = admin_statements(&env.partition, &env.account_id, &env.controller_arns);
    statements.extend(use_statements(users));
    statements.extend(extra);
    document(statements)
}

/// Grants only for AWS resources: SageMaker, EBS and EFS hold grants for the volumes they
/// encrypt; a grant a role made for itself would be use beyond this policy.
fn use_statements(users: &[String]) -> [Value; 2] {
    [
        Statement::allow("KeyUse").aws_principals(users.to_vec()).actions(KEY_USE_ACTIONS).resources(["*"]).build(),
        Statement::allow("KeyGrantsForAwsResources")
            .aws_principals(users.to_vec())
            .actions(KEY_GRANT_ACTIONS)
            .resources(["*"])
            .condition("Bool", "kms:GrantIsForAWSResource", "true")
            .build(),
    ]
}

fn personas(env: &Environment) -> Vec<String> {
    [&env.roles.data_scientist, &env.roles.team_admin].into_iter().flatten().cloned().collect()
}

/// Conditions are ANDed: deny only when the request is not through one of the endpoints, not
/// made by an AWS service for the caller (S3's own SSE-KMS calls), and not the controller's.
/// With no endpoint or controller known yet, the matching exemption is left out: fail closed.
fn deny_outside_vpc_endpoints(env: &Environment) -> Value {
    let mut deny =
        Statement::deny("DenyUseOutsideVpcEndpoints").any_principal().actions(KEY_USE_ACTIONS).resources(["*"]);
    if !env.kms_endpoint_ids.is_empty() {
        deny = deny.condition_any("StringNotEquals", "aws:sourceVpce", &env.kms_endpoint_ids);
    }
    deny = deny.condition("Bool", "aws:ViaAWSService", "false");
    if !env.controller_arns.is_empty() {
        deny = deny.condition_any("ArnNotEquals", "aws:PrincipalArn", &env.controller_arns);
    }
    deny.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::checks::{actions, statement, well_formed};
    use crate::inputs::fixtures::*;
    use serde_json::json;

    const ROOT: &str = "arn:aws:iam::111111111111:root";

    fn all_documents() -> Vec<Value> {
        let env = env();
        vec![
            admin_policy("aws", DEV, &[CONTROLLER.to_string()]),
            ebs_key_policy(&env),
            studio_key_policy(&env),
            s3_key_policy(&env),
            target_key_policy(&env, &env.targets[0]),
        ]
    }

    #[test]
    fn a_borrowed_key_lacks_what_its_policy_does_not_allow_by_name_or_through_iam() {
        let env = env();
        let wanted = ebs_key_policy(&env);
        let key = "arn:aws:kms:us-east-1:111111111111:key/k";
        let sids = |missing: Vec<Value>| -> Vec<String> {
            missing.iter().map(|s| s["Sid"].as_str().unwrap_or_default().to_owned()).collect()
        };
        // Its own policy has everything.
        assert!(missing_statements(&wanted, &wanted, key).is_empty());
        // Administration only: every use statement is missing.
        let admin = admin_policy("aws", DEV, &[]);
        assert_eq!(
            sids(missing_statements(&admin, &wanted, key)),
            [
                "ControllerGrantsForAwsResources",
                "KeyUse",
                "KeyGrantsForAwsResources",
                "CloudWatchLogsOfTheFlowLogGroup"
            ]
        );
        // A key that leaves use to IAM admits the roles and the controller, not CloudWatch Logs.
        let delegating = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
        ]});
        assert_eq!(sids(missing_statements(&delegating, &wanted, key)), ["CloudWatchLogsOfTheFlowLogGroup"]);
        // Another account's root, or the right principals with a condition of their own, do not.
        let elsewhere = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:*", "Resource": "*"}});
        assert!(sids(missing_statements(&elsewhere, &wanted, key)).contains(&"KeyUse".to_owned()));
        let conditioned = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}}});
        assert!(sids(missing_statements(&conditioned, &wanted, key)).contains(&"KeyUse".to_owned()));
        // An unconditional deny of what the roles need cannot be undone by adding statements.
        let mut denying = delegating.clone();
        denying["Statement"].as_array_mut().unwrap().push(
            json!({"Sid": "NoDecrypt", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}),
        );
        denying["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt",
            "Resource": "*", "Condition": {"Bool": {"aws:ViaAWSService": "false"}}}));
        assert_eq!(denying_statements(&denying, &wanted, key), ["NoDecrypt"]);
        assert!(denying_statements(&delegating, &wanted, key).is_empty());
    }

    #[test]
    fn the_s3_key_admits_a_unit_of_target_accounts_by_path_and_a_borrowed_one_must_too() {
        let env = env_with_prod_unit();
        let policy = s3_key_policy(&env);
        well_formed(&policy);
        assert_eq!(statement(&policy, "KeyUseByTargetModelRoles")["Principal"], json!({"AWS": [STAGING_ROLE]}));
        let by_path = statement(&policy, "KeyUseByTargetModelRolesByOrgPath");
        assert_eq!(
            by_path,
            &json!({"Sid": "KeyUseByTargetModelRolesByOrgPath", "Effect": "Allow", "Principal": "*",
            "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": ["*"],
            "Condition": {
                "StringEquals": {"aws:PrincipalOrgID": ["o-a1b2c3d4e5"],
                    "aws:PrincipalTag/sagekeeper.io/owner-uid": env.uid},
                "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [PROD_PATH]},
                "ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/sk-fraud-3f2a-model-execution"]}
            }})
        );
        // Someone else's s3 key: a root delegating to IAM does not admit another account's
        // roles; only the same statement (or one open to everyone unconditionally) does.
        let key = "arn:aws:kms:us-east-1:111111111111:key/k";
        let mut delegating = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": STAGING_ROLE}, "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}
        ]});
        let missing = missing_statements(&delegating, &policy, key);
        assert_eq!(missing, std::slice::from_ref(by_path));
        let mut other_path = by_path.clone();
        other_path["Condition"]["ForAnyValue:StringLike"]["aws:PrincipalOrgPaths"] = json!(["o-a1b2c3d4e5/r-ab12/*"]);
        delegating["Statement"].as_array_mut().unwrap().push(other_path);
        assert_eq!(
            missing_statements(&delegating, &policy, key),
            std::slice::from_ref(by_path),
            "another condition: the exact statement is asked for"
        );
        // The same statement as an owner may paste it: single values without their lists, the
        // conditions in another order.
        let mut pasted = by_path.clone();
        let condition = &mut pasted["Condition"];
        condition["StringEquals"]["aws:PrincipalOrgID"] = json!("o-a1b2c3d4e5");
        condition["ArnLike"]["aws:PrincipalArn"] = json!("arn:aws:iam::*:role/sk-fraud-3f2a-model-execution");
        pasted["Action"] = json!(["kms:DescribeKey", "kms:Decrypt"]);
        delegating["Statement"].as_array_mut().unwrap().push(pasted);
        assert!(missing_statements(&delegating, &policy, key).is_empty());
    }

    #[test]
    fn every_key_policy_is_well_formed_and_round_trips() {
        for policy in all_documents() {
            well_formed(&policy);
        }
    }

    /// Whether an action pattern (`kms:Get*`, `kms:*`) covers an action.
    fn covers(pattern: &str, action: &str) -> bool {
        match pattern.strip_suffix('*') {
            Some(prefix) => action.starts_with(prefix),
            None => pattern == action,
        }
    }

    #[test]
    fn no_key_policy_lets_the_root_use_a_key() {
        let use_and_grants = [
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:GenerateDataKeyPair",
            "kms:CreateGrant",
            "kms:ReplicateKey",
        ];
        let mut roots = 0;
        for policy in all_documents() {
            for s in policy["Statement"].as_array().into_iter().flatten() {
                if !s["Principal"].to_string().contains(":root") {
                    continue;
                }
                roots += 1;
                for pattern in actions(s) {
                    for action in use_and_grants {
                        assert!(!covers(pattern, action), "root may {action} through {pattern}");
                    }
                }
            }
        }
        assert_eq!(roots, all_documents().len());
        assert!(covers("kms:Get*", "kms:GetKeyPolicy") && !covers("kms:Create*", "kms:Decrypt"));
    }

    #[test]
    fn admin_policy_is_root_administration_and_the_controllers_management_without_use() {
        for action in CONTROLLER_ACTIONS {
            let crypto = KEY_USE_ACTIONS.iter().filter(|u| **u != "kms:DescribeKey");
            let using = crypto.chain(["kms:CreateGrant"].iter()).any(|u| covers(action, u) || covers(u, action));
            assert!(!using, "the controller never uses a key: {action}");
        }
        let policy = admin_policy("aws", DEV, &[CONTROLLER.to_string()]);
        assert_eq!(
            policy,
            json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "KeyAdministration", "Effect": "Allow", "Principal": {"AWS": [ROOT]},
                    "Action": ADMIN_ACTIONS, "Resource": ["*"]},
                {"Sid": "ControllerManagesKey", "Effect": "Allow", "Principal": {"AWS": [CONTROLLER]},
                    "Action": CONTROLLER_ACTIONS, "Resource": ["*"]},
                {"Sid": "ControllerGrantsForAwsResources", "Effect": "Allow", "Principal": {"AWS": [CONTROLLER]},
                    "Action": ["kms:CreateGrant"], "Resource": ["*"],
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
            ]})
        );
    }

    #[test]
    fn admin_policy_without_controller_principals_has_only_root_administration() {
        let policy = admin_policy("aws-cn", DEV, &[]);
        assert_eq!(crate::statement_ids(&policy), ["KeyAdministration"]);
        assert_eq!(
            statement(&policy, "KeyAdministration")["Principal"],
            json!({"AWS": ["arn:aws-cn:iam::111111111111:root"]})
        );
    }

    #[test]
    fn the_ebs_and_endpoint_keys_admit_cloudwatch_logs_only_for_their_accounts_flow_log_group() {
        let env = env();
        let group = |account: &str| format!("arn:aws:logs:us-east-1:{account}:log-group:{}", env.flow_log_group);
        for (policy, account) in [(ebs_key_policy(&env), DEV), (target_key_policy(&env, &env.targets[0]), STAGING)] {
            let logs = statement(&policy, "CloudWatchLogsOfTheFlowLogGroup");
            assert_eq!(logs["Principal"], json!({"Service": ["logs.us-east-1.amazonaws.com"]}));
            assert_eq!(
                logs["Condition"],
                json!({"StringEquals": {"kms:EncryptionContext:aws:logs:arn": group(account)}})
            );
        }
        for policy in [studio_key_policy(&env), s3_key_policy(&env)] {
            assert!(!policy.to_string().contains("logs."), "only the ebs and endpoint keys encrypt flow logs");
        }
    }

    #[test]
    fn ebs_key_is_used_by_every_role_that_makes_volumes() {
        let policy = ebs_key_policy(&env());
        let users = json!({"AWS": [EXECUTION, PIPELINE, MODEL_EXECUTION, DATA_SCIENTIST, TEAM_ADMIN]});
        assert_eq!(
            statement(&policy, "KeyUse"),
            &json!({"Sid": "KeyUse", "Effect": "Allow", "Principal": users, "Action": KEY_USE_ACTIONS,
                "Resource": ["*"]})
        );
        assert_eq!(
            statement(&policy, "KeyGrantsForAwsResources"),
            &json!({"Sid": "KeyGrantsForAwsResources", "Effect": "Allow", "Principal": users,
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": ["*"],
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}})
        );
        assert_eq!(
            crate::statement_ids(&policy),
            [
                "KeyAdministration",
                "ControllerManagesKey",
                "ControllerGrantsForAwsResources",
                "KeyUse",
                "KeyGrantsForAwsResources",
                "CloudWatchLogsOfTheFlowLogGroup"
            ]
        );
    }

    #[test]
    fn studio_key_is_used_by_the_execution_role_and_personas_in_use() {
        let mut env = env();
        env.roles.team_admin = None;
        let policy = studio_key_policy(&env);
        assert_eq!(statement(&policy, "KeyUse")["Principal"], json!({"AWS": [EXECUTION, DATA_SCIENTIST]}));
        assert_eq!(
            statement(&policy, "KeyGrantsForAwsResources")["Principal"],
            json!({"AWS": [EXECUTION, DATA_SCIENTIST]})
        );
    }

    #[test]
    fn s3_key_is_used_by_environment_roles_and_read_by_target_model_roles() {
        let policy = s3_key_policy(&env());
        assert_eq!(
            statement(&policy, "KeyUse")["Principal"],
            json!({"AWS": [EXECUTION, PIPELINE, MODEL_EXECUTION, DATA_SCIENTIST, TEAM_ADMIN]})
        );
        assert_eq!(
            statement(&policy, "KeyUseByTargetModelRoles"),
            &json!({"Sid": "KeyUseByTargetModelRoles", "Effect": "Allow", "Principal": {"AWS": [STAGING_ROLE, PROD_ROLE]},
                "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": ["*"]})
        );
        assert_eq!(
            statement(&policy, "ControllerUploads"),
            &json!({"Sid": "ControllerUploads", "Effect": "Allow", "Principal": {"AWS": [CONTROLLER]},
                "Action": ["kms:GenerateDataKey"], "Resource": ["*"],
                "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}})
        );
    }

    #[test]
    fn s3_key_denies_use_outside_the_endpoints_except_via_aws_services_and_the_controller() {
        let policy = s3_key_policy(&env());
        assert_eq!(
            statement(&policy, "DenyUseOutsideVpcEndpoints"),
            &json!({"Sid": "DenyUseOutsideVpcEndpoints", "Effect": "Deny", "Principal": "*",
            "Action": KEY_USE_ACTIONS, "Resource": ["*"],
            "Condition": {
                "StringNotEquals": {"aws:sourceVpce": ["vpce-kmsdev", "vpce-kmsstg", "vpce-kmsprd"]},
                "Bool": {"aws:ViaAWSService": "false"},
                "ArnNotEquals": {"aws:PrincipalArn": [CONTROLLER]}
            }})
        );
    }

    #[test]
    fn s3_key_deny_fails_closed_before_endpoints_and_controllers_are_known() {
        let mut env = env();
        env.kms_endpoint_ids.clear();
        env.controller_arns.clear();
        env.targets.clear();
        let policy = s3_key_policy(&env);
        assert_eq!(
            statement(&policy, "DenyUseOutsideVpcEndpoints")["Condition"],
            json!({"Bool": {"aws:ViaAWSService": "false"}})
        );
        assert!(crate::find_statement(&policy, "ControllerUploads").is_none());
        assert!(crate::find_statement(&policy, "KeyUseByTargetModelRoles").is_none());
        well_formed(&policy);
    }

    #[test]
    fn target_key_is_administered_by_the_target_root_and_used_by_its_model_role() {
        let env = env();
        let policy = target_key_policy(&env, &env.targets[0]);
        assert_eq!(
            statement(&policy, "KeyAdministration")["Principal"],
            json!({"AWS": ["arn:aws:iam::222222222222:root"]})
        );
        assert_eq!(
            statement(&policy, "ControllerGrantsForAwsResources")["Principal"],
            json!({"AWS": [STAGING_CONTROLLER]})
        );
        assert_eq!(
            statement(&policy, "ControllerGrantsForAwsResources")["Condition"],
            json!({"Bool": {"kms:GrantIsForAWSResource": "true"}})
        );
        assert_eq!(statement(&policy, "ControllerManagesKey")["Principal"], json!({"AWS": [STAGING_CONTROLLER]}));
        assert_eq!(
            statement(&policy, "KeyUse"),
            &json!({"Sid": "KeyUse", "Effect": "Allow", "Principal": {"AWS": [STAGING_ROLE]},
                "Action": KEY_USE_ACTIONS, "Resource": ["*"]})
        );
        assert_eq!(statement(&policy, "KeyGrantsForAwsResources")["Principal"], json!({"AWS": [STAGING_ROLE]}));
        assert!(!policy.to_string().contains(DEV));
    }
}
