"""Unit tests of the policy evaluator: condition operators, principals, actions, resources."""

import pytest

from sagekeeper_emulator.identity import Caller
from sagekeeper_emulator.policies import conditions_match, evaluate

KEYS = {
    "aws:sourcevpce": ["vpce-0abc"],
    "aws:principalarn": ["arn:aws:iam::111111111111:role/deployer"],
    "aws:securetransport": ["true"],
}


@pytest.mark.parametrize(
    "conditions, expected",
    [
        ({"StringEquals": {"aws:SourceVpce": "vpce-0abc"}}, True),
        ({"StringEquals": {"aws:SourceVpce": "vpce-0xyz"}}, False),
        ({"StringEquals": {"aws:SourceVpce": ["vpce-0xyz", "vpce-0abc"]}}, True),  # OR within a key
        ({"StringEquals": {"aws:SourceIp": "10.0.0.1"}}, False),  # missing key, positive operator
        ({"StringNotEquals": {"aws:SourceIp": "10.0.0.1"}}, True),  # missing key, negated operator
        ({"StringNotEquals": {"aws:SourceVpce": "vpce-0abc"}}, False),
        ({"StringNotEquals": {"aws:SourceVpce": ["vpce-0xyz", "vpce-0abc"]}}, False),
        ({"StringNotEquals": {"aws:SourceVpce": "vpce-0xyz"}}, True),
        ({"StringEqualsIgnoreCase": {"aws:SourceVpce": "VPCE-0ABC"}}, True),
        ({"StringLike": {"aws:SourceVpce": "vpce-0*"}}, True),
        ({"StringLike": {"aws:SourceVpce": "vpce-?abc"}}, True),
        ({"StringLike": {"aws:SourceVpce": "vpce-1*"}}, False),
        ({"StringNotLike": {"aws:SourceVpce": "vpce-1*"}}, True),
        ({"StringNotLike": {"aws:SourceVpce": "vpce-0*"}}, False),
        ({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/deployer"}}, True),
        ({"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/deployer"}}, False),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/*"}}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::222222222222:role/*"}}, False),
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::222222222222:*"}}, True),
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::111111111111:*"}}, False),
        ({"Bool": {"aws:SecureTransport": "false"}}, False),
        ({"Bool": {"aws:SecureTransport": True}}, True),  # JSON booleans compare as strings
        ({"Bool": {"aws:ViaAWSService": "true"}}, False),  # missing key
        ({"Null": {"aws:SourceIp": "true"}}, True),
        ({"Null": {"aws:SourceVpce": "true"}}, False),
        ({"Null": {"aws:SourceVpce": "false"}}, True),
        ({"StringEqualsIfExists": {"aws:SourceIp": "10.0.0.1"}}, True),
        ({"StringEqualsIfExists": {"aws:SourceVpce": "vpce-0xyz"}}, False),
        ({"StringNotEqualsIfExists": {"aws:SourceVpce": "vpce-0xyz"}}, True),
        ({"StringEquals": {"AWS:SOURCEVPCE": "vpce-0abc"}}, True),  # key names are case-insensitive
        (
            {"StringEquals": {"aws:SourceVpce": "vpce-0abc", "aws:SecureTransport": "false"}},
            False,
        ),  # AND keys
        ({"StringEquals": {"aws:SourceVpce": "vpce-0abc"}, "Bool": {"aws:SecureTransport": "true"}}, True),
        ({"StringEquals": {"aws:SourceVpce": "vpce-0abc"}, "Bool": {"aws:SecureTransport": "false"}}, False),
        ({"NumericLessThan": {"aws:SourceVpce": "1"}}, False),  # unsupported operators never match
    ],
)
def test_condition_operators(conditions, expected):
    assert conditions_match(conditions, KEYS) is expected


ROLE_CALLER = Caller(
    "111111111111",
    "arn:aws:sts::111111111111:assumed-role/deployer/session",
    "arn:aws:iam::111111111111:role/team/deployer",
)


def deny(**statement) -> dict:
    return {"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*", **statement}]}


@pytest.mark.parametrize(
    "principal, applies",
    [
        ("*", True),
        ({"AWS": "*"}, True),
        ({"AWS": "111111111111"}, True),
        ({"AWS": "arn:aws:iam::111111111111:root"}, True),
        ({"AWS": "arn:aws:iam::111111111111:role/deployer"}, True),  # a pathed role, named by name
        ({"AWS": "arn:aws:iam::111111111111:role/team/deployer"}, True),
        ({"AWS": "arn:aws:sts::111111111111:assumed-role/deployer/session"}, True),
        ({"AWS": ["arn:aws:iam::111111111111:role/other", "222222222222"]}, False),
        ({"Service": "s3.amazonaws.com"}, False),
    ],
)
def test_statement_principals(principal, applies):
    verdict = evaluate(deny(Principal=principal), "s3:GetObject", "arn:aws:s3:::b/k", ROLE_CALLER, {})
    assert (verdict == "Deny") is applies


@pytest.mark.parametrize(
    "statement, action, resource, applies",
    [
        ({"Action": "s3:*"}, "s3:GetObject", "arn:aws:s3:::b/k", True),
        ({"Action": "s3:Get*"}, "s3:PutObject", "arn:aws:s3:::b/k", False),
        ({"Action": ["s3:PutObject", "S3:GETOBJECT"]}, "s3:GetObject", "arn:aws:s3:::b/k", True),
        ({"NotAction": "s3:GetObject"}, "s3:GetObject", "arn:aws:s3:::b/k", False),
        ({"NotAction": "s3:GetObject"}, "s3:PutObject", "arn:aws:s3:::b/k", True),
        ({"Resource": "arn:aws:s3:::b/*"}, "s3:GetObject", "arn:aws:s3:::b/k", True),
        ({"Resource": "arn:aws:s3:::b"}, "s3:GetObject", "arn:aws:s3:::b/k", False),
        ({"Resource": "arn:aws:s3:::B/*"}, "s3:GetObject", "arn:aws:s3:::b/k", False),  # case-sensitive
        ({"NotResource": "arn:aws:s3:::b/public/*"}, "s3:GetObject", "arn:aws:s3:::b/k", True),
    ],
)
def test_statement_actions_and_resources(statement, action, resource, applies):
    policy = deny(Principal="*", **statement)
    if "NotAction" in statement:
        del policy["Statement"][0]["Action"]
    if "NotResource" in statement:
        del policy["Statement"][0]["Resource"]
    assert (evaluate(policy, action, resource, ROLE_CALLER, {}) == "Deny") is applies


def test_explicit_deny_wins_over_allow_and_allow_is_reported():
    allow = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}
    assert evaluate({"Statement": [allow]}, "s3:GetObject", "x", ROLE_CALLER, {}) == "Allow"
    both = {"Statement": [allow, deny(Principal="*")["Statement"][0]]}
    assert evaluate(both, "s3:GetObject", "x", ROLE_CALLER, {}) == "Deny"
    assert evaluate({"Statement": [allow]}, "s3:PutObject", "x", ROLE_CALLER, {}) is None
