"""Unit tests of the IAM evaluator against AWS's documented evaluation logic: explicit deny,
boundaries, cross-account, resource policies naming users, roles, sessions and accounts,
NotAction/NotResource/NotPrincipal, IfExists, set operators, policy variables, and operators or
keys the evaluator does not know (never widening access)."""

import pytest

from sagekeeper_emulator.authorization.evaluation import Check, Evaluator, Policy, Principal, decide, service_allows

A, B = "111111111111", "222222222222"
SESSION = Principal(A, f"arn:aws:sts::{A}:assumed-role/worker/s1", f"arn:aws:iam::{A}:role/worker")
USER = Principal(A, f"arn:aws:iam::{A}:user/alice", f"arn:aws:iam::{A}:user/alice")
KNOWN = {"sagemaker:modelapprovalstatus", "sts:externalid", "kms:viaservice", "s3:prefix"}
ENGINE = Evaluator(lambda key: key in KNOWN)
BUCKET = "arn:aws:s3:::data"


def policy(*statements, name="identity") -> Policy:
    return Policy(name, {"Version": "2012-10-17", "Statement": list(statements)})


def allow(action="s3:GetObject", resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action="s3:GetObject", resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def check(action="s3:GetObject", resource=f"{BUCKET}/k", keys=None, **extra) -> Check:
    return Check(action, resource, {k.lower(): v for k, v in (keys or {}).items()}, **extra)


def verdict(identity=(), boundary=None, c=None, principal=SESSION):
    return decide(ENGINE, principal, c or check(), list(identity), boundary)


# --- identity policies -------------------------------------------------------------


def test_nothing_allows_means_implicit_deny():
    decision = verdict()
    assert not decision.allowed
    assert decision.reason == "because no identity-based policy allows the s3:GetObject action"


def test_an_allow_allows_and_names_its_statement():
    decision = verdict([policy(allow(Sid="Read"))])
    assert decision.allowed and decision.statement == "identity: Read"


def test_explicit_deny_wins_over_any_allow():
    decision = verdict([policy(allow()), policy(deny(Sid="No"), name="other")])
    assert not decision.allowed
    assert decision.reason == "with an explicit deny in an identity-based policy"
    assert decision.statement == "other: No"


@pytest.mark.parametrize(
    "statement, allowed",
    [
        (allow(action="s3:*"), True),
        (allow(action="S3:getobject"), True),  # actions are case-insensitive
        (allow(action="s3:Get*"), True),
        (allow(action="s3:Put*"), False),
        (allow(action=["s3:PutObject", "s3:GetObject"]), True),
        ({"Effect": "Allow", "NotAction": "s3:PutObject", "Resource": "*"}, True),
        ({"Effect": "Allow", "NotAction": "s3:Get*", "Resource": "*"}, False),
        (allow(resource=f"{BUCKET}/*"), True),
        (allow(resource=BUCKET), False),
        (allow(resource="arn:aws:s3:::DATA/*"), False),  # resources are case-sensitive
        ({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::other/*"}, True),
        ({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": f"{BUCKET}/*"}, False),
        ({"Effect": "Allow", "Resource": "*"}, False),  # a statement without Action is malformed
    ],
)
def test_actions_and_resources(statement, allowed):
    assert verdict([policy(statement)]).allowed is allowed


def test_arn_wildcards_match_within_each_part_of_the_arn():
    sm = "arn:aws:sagemaker:us-east-1:111111111111:model-package/group/3"
    assert verdict([policy(allow("sagemaker:*", "arn:aws:sagemaker:*:*:model-package/*/*"))], c=check("sagemaker:X", sm)).allowed
    # `*` in the region part does not swallow the account part
    other = "arn:aws:sagemaker:us-east-1:222222222222:model-package/group/3"
    assert not verdict([policy(allow("sagemaker:*", "arn:aws:sagemaker:*:111111111111:*"))], c=check("sagemaker:X", other)).allowed


# --- permissions boundaries ----------------------------------------------------------


def test_a_boundary_limits_what_identity_policies_allow():
    boundary = policy(allow(action="sagemaker:*"), name="boundary")
    decision = verdict([policy(allow(action="*"))], boundary)
    assert not decision.allowed
    assert decision.reason == "because no permissions boundary allows the s3:GetObject action"


def test_a_boundary_allows_nothing_by_itself():
    boundary = policy(allow(action="*"), name="boundary")
    assert not verdict([], boundary).allowed


def test_the_intersection_of_identity_and_boundary_is_allowed():
    boundary = policy(allow(action="s3:*"), name="boundary")
    assert verdict([policy(allow())], boundary).allowed


def test_an_explicit_deny_in_the_boundary_denies():
    boundary = policy(allow(action="*"), deny(Sid="NoS3", action="s3:*"), name="boundary")
    decision = verdict([policy(allow())], boundary)
    assert decision.reason == "with an explicit deny in a permissions boundary"
    assert decision.statement == "boundary: NoS3"


# --- resource policies within one account ----------------------------------------------


def bucket_policy(*statements) -> Policy:
    return policy(*statements, name="bucket policy of data")


def with_resource(resource_policy, kind="optional", account=A, **extra) -> Check:
    return check(resource_policy=resource_policy, resource_policy_kind=kind, resource_account=account, **extra)


def test_a_resource_policy_naming_the_session_grants_without_identity_policy_or_boundary():
    c = with_resource(bucket_policy(allow(Principal={"AWS": SESSION.arn})))
    boundary = policy(allow(action="sagemaker:*"), name="boundary")
    assert verdict([], boundary, c).allowed


def test_a_resource_policy_naming_the_role_is_limited_by_the_boundary():
    c = with_resource(bucket_policy(allow(Principal={"AWS": SESSION.principal_arn})))
    assert verdict([], None, c).allowed
    boundary = policy(allow(action="sagemaker:*"), name="boundary")
    decision = verdict([], boundary, c)
    assert not decision.allowed
    assert decision.reason == "because no permissions boundary allows the s3:GetObject action"


def test_a_resource_policy_naming_a_user_grants_that_user():
    c = with_resource(bucket_policy(allow(Principal={"AWS": USER.arn})))
    assert verdict([], None, c, USER).allowed


def test_a_resource_policy_naming_the_account_delegates_to_identity_policies():
    c = with_resource(bucket_policy(allow(Principal={"AWS": f"arn:aws:iam::{A}:root"})))
    assert not verdict([], None, c).allowed
    assert verdict([policy(allow())], None, c).allowed


def test_a_resource_policy_deny_wins():
    c = with_resource(bucket_policy(deny(Principal="*", Sid="NoOne")))
    decision = verdict([policy(allow())], None, c)
    assert decision.reason == "with an explicit deny in a resource-based policy"


def test_a_mandatory_resource_policy_must_allow_even_within_the_account():
    key = policy(allow(action="kms:*", Principal={"AWS": f"arn:aws:iam::{A}:role/other"}), name="key policy")
    c = check("kms:Decrypt", f"arn:aws:kms:us-east-1:{A}:key/1", resource_policy=key, resource_policy_kind="required")
    decision = verdict([policy(allow(action="kms:*"))], None, c)
    assert not decision.allowed
    assert decision.reason == "because no resource-based policy allows the kms:Decrypt action"


def test_a_key_policy_root_statement_delegates_to_iam():
    key = policy(allow(action="kms:*", Principal={"AWS": f"arn:aws:iam::{A}:root"}), name="key policy")
    c = check("kms:Decrypt", f"arn:aws:kms:us-east-1:{A}:key/1", resource_policy=key, resource_policy_kind="required")
    assert not verdict([], None, c).allowed
    assert verdict([policy(allow(action="kms:Decrypt"))], None, c).allowed


# --- across accounts ----------------------------------------------------------------------


def test_across_accounts_both_sides_must_allow():
    theirs = bucket_policy(allow(Principal={"AWS": f"arn:aws:iam::{A}:root"}))
    c = with_resource(theirs, account=B)
    assert not verdict([], None, c).allowed  # their policy alone
    decision = verdict([policy(allow())], None, with_resource(None, account=B))
    assert decision.reason == "because no resource-based policy allows the s3:GetObject action"  # ours alone
    assert verdict([policy(allow())], None, c).allowed


def test_across_accounts_a_policy_naming_the_session_still_needs_the_identity_policy():
    c = with_resource(bucket_policy(allow(Principal={"AWS": SESSION.arn})), account=B)
    assert not verdict([], None, c).allowed


def test_across_accounts_the_boundary_still_limits():
    c = with_resource(bucket_policy(allow(Principal="*")), account=B)
    boundary = policy(allow(action="sagemaker:*"), name="boundary")
    assert not verdict([policy(allow())], boundary, c).allowed


def test_a_resource_policy_for_another_account_does_not_name_the_caller():
    c = with_resource(bucket_policy(allow(Principal={"AWS": B})), account=B)
    assert not verdict([policy(allow())], None, c).allowed


def test_service_principals_never_match_callers():
    c = with_resource(bucket_policy(allow(Principal={"Service": "sagemaker.amazonaws.com"})), account=B)
    assert not verdict([policy(allow())], None, c).allowed


# --- NotPrincipal ---------------------------------------------------------------------------


def test_not_principal_deny_exempts_a_session_only_with_its_account_named():
    only_role = bucket_policy(deny(NotPrincipal={"AWS": [SESSION.principal_arn]}))
    assert not verdict([policy(allow())], None, with_resource(only_role)).allowed
    named = bucket_policy(deny(NotPrincipal={"AWS": [SESSION.arn, A]}))
    assert verdict([policy(allow())], None, with_resource(named)).allowed


def test_not_principal_allow_applies_to_principals_not_listed():
    c = with_resource(bucket_policy(allow(NotPrincipal={"AWS": B})))
    assert verdict([], None, c).allowed
    c = with_resource(bucket_policy(allow(NotPrincipal={"AWS": SESSION.arn})))
    assert not verdict([], None, c).allowed


# --- conditions -----------------------------------------------------------------------------


KEYS = {
    "aws:SourceVpce": ["vpce-1"],
    "aws:PrincipalAccount": [A],
    "aws:TagKeys": ["team", "cost"],
    "aws:RequestTag/team": ["fraud"],
    "aws:SecureTransport": ["true"],
    "aws:EpochTime": ["1700000000"],
    "aws:SourceIp": ["10.1.2.3"],
    "kms:ViaService": ["s3.us-east-1.amazonaws.com"],
}


@pytest.mark.parametrize(
    "condition, applies",
    [
        ({"StringEquals": {"aws:SourceVpce": "vpce-1"}}, True),
        ({"StringEquals": {"aws:SourceVpce": ["vpce-2", "vpce-1"]}}, True),
        ({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}, False),
        ({"StringNotEquals": {"aws:SourceVpc": "vpc-1"}}, True),  # absent key satisfies a negated operator
        ({"StringEquals": {"aws:SourceVpc": "vpc-1"}}, False),  # and fails a positive one
        ({"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}}, True),
        ({"StringEqualsIfExists": {"aws:SourceVpce": "vpce-2"}}, False),
        ({"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}, True),
        ({"StringEqualsIgnoreCase": {"aws:SourceVpce": "VPCE-1"}}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, False),
        ({"Bool": {"aws:SecureTransport": True}}, True),
        ({"Null": {"aws:SourceVpc": "true"}}, True),
        ({"Null": {"aws:SourceVpce": "false"}}, True),
        ({"NumericGreaterThan": {"aws:EpochTime": "1600000000"}}, True),
        ({"NumericLessThan": {"aws:EpochTime": "1600000000"}}, False),
        ({"DateGreaterThan": {"aws:EpochTime": "2020-01-01T00:00:00Z"}}, True),
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, True),
        ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, False),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}, True),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["owner"]}}, False),
        ({"ForAnyValue:StringEquals": {"aws:PrincipalTag/none": ["x"]}}, False),  # absent: ForAnyValue fails
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "cost", "owner"]}}, True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}, False),
        ({"ForAllValues:StringEquals": {"aws:PrincipalTag/none": ["x"]}}, True),  # absent: ForAllValues holds
        ({"ForAnyValue:StringLike": {"aws:TagKeys": ["sagekeeper.io/*"]}}, False),
        ({"StringEquals": {"aws:RequestTag/team": "fraud"}, "Bool": {"aws:SecureTransport": "true"}}, True),
        ({"StringEquals": {"aws:RequestTag/team": "fraud", "aws:SourceVpce": "vpce-9"}}, False),  # keys are ANDed
        ({"StringEquals": {"aws:PrincipalAccount": "${aws:PrincipalAccount}"}}, True),  # policy variable
        ({"StringEquals": {"AWS:SOURCEVPCE": "vpce-1"}}, True),  # key names are case-insensitive
    ],
)
def test_condition_operators(condition, applies):
    c = check(keys=KEYS)
    assert verdict([policy(allow(Condition=condition))], c=c).allowed is applies


def test_policy_variables_in_resources():
    c = check(resource=f"arn:aws:s3:::data/{A}/file", keys={"aws:PrincipalAccount": [A]})
    assert verdict([policy(allow(resource="arn:aws:s3:::data/${aws:PrincipalAccount}/*"))], c=c).allowed
    other = check(resource=f"arn:aws:s3:::data/{B}/file", keys={"aws:PrincipalAccount": [A]})
    assert not verdict([policy(allow(resource="arn:aws:s3:::data/${aws:PrincipalAccount}/*"))], c=other).allowed


# --- what the evaluator does not know never widens access ----------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEqualsFancy": {"aws:SourceVpce": "vpce-1"}},  # unknown operator
        {"StringEquals": {"sagemaker:SomethingNew": "x"}},  # unknown key
        {"Null": {"sagemaker:SomethingNew": "true"}},
        {"StringEquals": {"aws:SourceVpce": "${aws:Unheard}"}},  # unknown policy variable
    ],
)
def test_an_allow_the_evaluator_cannot_judge_does_not_apply(condition):
    decision = verdict([policy(allow(Condition=condition))], c=check(keys=KEYS))
    assert not decision.allowed
    assert decision.unknown, "the case is reported"


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEqualsFancy": {"aws:SourceVpce": "vpce-2"}},
        {"StringNotEquals": {"sagemaker:SomethingNew": "x"}},
    ],
)
def test_a_deny_the_evaluator_cannot_judge_applies(condition):
    decision = verdict([policy(allow(), deny(Condition=condition))], c=check(keys=KEYS))
    assert not decision.allowed
    assert decision.reason == "with an explicit deny in an identity-based policy"
    assert decision.unknown


def test_a_known_key_absent_from_the_request_is_judged_not_unknown():
    decision = verdict([policy(allow(Condition={"StringEquals": {"sagemaker:ModelApprovalStatus": "Approved"}}))])
    assert not decision.allowed and decision.unknown == ()
    decision = verdict([policy(allow(), deny(Condition={"StringEquals": {"sagemaker:ModelApprovalStatus": "Approved"}}))])
    assert decision.allowed


def test_a_service_key_another_operation_sets_is_unknown_for_a_check_that_does_not_declare_it():
    """The table says which service keys AWS sets for each authorization: a key AWS sets for some
    other action (here s3:prefix, a listing key) is unknown on this one, so a Deny on it applies
    rather than silently not matching."""
    deny_on_prefix = deny(Condition={"StringEquals": {"s3:prefix": "secret/"}})
    declared = check(declared=lambda key: key == "s3:x-amz-server-side-encryption")
    decision = verdict([policy(allow(), deny_on_prefix)], c=declared)
    assert not decision.allowed and decision.unknown
    listing = check(declared=lambda key: key == "s3:prefix")
    assert verdict([policy(allow(), deny_on_prefix)], c=listing).allowed  # declared, absent: judged


# --- resource policies for AWS service principals ------------------------------------------

LOGS = "logs.us-east-1.amazonaws.com"
KEY = f"arn:aws:kms:us-east-1:{A}:key/k1"
GROUP = f"arn:aws:logs:us-east-1:{A}:log-group:g"
ON_GROUP = {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": GROUP}}


def key_policy(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize(
    "statement, allowed",
    [
        (allow("kms:GenerateDataKey*", Principal={"Service": LOGS}), True),
        (allow("kms:GenerateDataKey*", Principal={"Service": [f"{LOGS}", "s3.amazonaws.com"]}), True),
        (allow("kms:GenerateDataKey*", Principal={"Service": "logs.eu-west-1.amazonaws.com"}), False),
        (allow("kms:GenerateDataKey*", Principal="*"), True),
        (allow("kms:GenerateDataKey*", Principal={"AWS": f"arn:aws:iam::{A}:root"}), False),  # names IAM, not the service
        (allow("kms:GenerateDataKey*", NotPrincipal={"Service": LOGS}), False),
        (allow("kms:GenerateDataKey*", NotPrincipal={"AWS": A}), True),
        (allow("kms:Decrypt", Principal={"Service": LOGS}), False),
        (allow("kms:GenerateDataKey", Principal={"Service": LOGS}, Resource=f"arn:aws:kms:us-east-1:{B}:key/*"), False),
        (allow("kms:*", Principal={"Service": LOGS}, Condition=ON_GROUP), True),
        (allow("kms:*", Principal={"Service": LOGS}, Condition={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:us-east-1:{A}:*"}}), True),
        (allow("kms:*", Principal={"Service": LOGS}, Condition={"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": GROUP + "2"}}), False),
        (allow("kms:*", Principal={"Service": LOGS}, Condition={"StringEquals": {"aws:SourceAccount": A}}), False),  # absent key
        (allow("kms:*", Principal={"Service": LOGS}, Condition={"Bool": {"aws:PrincipalIsAWSService": "true"}}), True),
        (allow("kms:*", Principal={"Service": LOGS}, Condition={"StringEquals": {"aws:PrincipalServiceName": LOGS}}), True),
        (allow("kms:*", Principal={"Service": LOGS}, Condition={"StringEqualsFancy": {"aws:PrincipalServiceName": LOGS}}), False),
    ],
)
def test_a_resource_policy_allows_a_service_principal_what_a_statement_naming_it_allows(statement, allowed):
    context = {"kms:EncryptionContext:aws:logs:arn": [GROUP]}
    assert service_allows(key_policy(statement), LOGS, "kms:GenerateDataKey", KEY, context) is allowed


def test_a_deny_wins_for_a_service_principal_and_no_policy_allows_nothing():
    allows = allow("kms:*", Principal={"Service": LOGS})
    assert not service_allows(key_policy(allows, deny("kms:*", Principal="*", Condition=ON_GROUP)), LOGS, "kms:Encrypt", KEY, {"kms:EncryptionContext:aws:logs:arn": [GROUP]})
    assert service_allows(key_policy(allows, deny("kms:*", Principal="*", Condition=ON_GROUP)), LOGS, "kms:Encrypt", KEY, {})
    # A Deny the evaluator cannot judge applies.
    unjudged = deny("kms:*", Principal="*", Condition={"StringEqualsFancy": {"aws:SourceAccount": A}})
    assert not service_allows(key_policy(allows, unjudged), LOGS, "kms:Encrypt", KEY, {})
    assert not service_allows(None, LOGS, "kms:Encrypt", KEY, {})
    assert not service_allows(key_policy(), LOGS, "kms:Encrypt", KEY, {})


def test_a_trust_policy_admits_a_service_with_its_source_conditions():
    flow_log = f"arn:aws:ec2:us-east-1:{A}:vpc-flow-log/fl-1"
    trust = key_policy({
        "Effect": "Allow",
        "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": A}, "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:us-east-1:{A}:vpc-flow-log/*"}},
    })
    role = f"arn:aws:iam::{A}:role/delivery"
    admits = lambda account, arn: service_allows(  # noqa: E731
        trust, "vpc-flow-logs.amazonaws.com", "sts:AssumeRole", role, {"aws:SourceAccount": [account], "aws:SourceArn": [arn]}
    )
    assert admits(A, flow_log)
    assert not admits(B, flow_log)
    assert not admits(A, flow_log.replace(A, B))
    assert not service_allows(trust, "ec2.amazonaws.com", "sts:AssumeRole", role, {"aws:SourceAccount": [A], "aws:SourceArn": [flow_log]})
