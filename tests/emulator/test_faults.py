"""Injected faults: AWS-shaped errors in each protocol, scoped, counted, probabilistic."""

import time
import uuid
import xml.etree.ElementTree as ET

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import trust_policy


def add_fault(emulator, **spec) -> str:
    return emulator.post("/_emulator/faults", spec)["id"]


def error_of(call) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_json_protocol_fault_carries_code_message_and_status(account, emulator):
    add_fault(
        emulator,
        operation="ListModels",
        account=account.id,
        code="ThrottlingException",
        message="Rate exceeded",
    )
    assert error_of(account.client("sagemaker").list_models) == ("ThrottlingException", "Rate exceeded", 400)


def test_json_protocol_fault_has_the_error_type_header_and_body(emulator):
    token = f"t{uuid.uuid4().hex}"
    add_fault(emulator, operation="ListModels", match=token, code="ThrottlingException", message="m", count=1)
    response = _raw(emulator, "sagemaker", token)
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "ThrottlingException"
    assert response.json() == {"__type": "ThrottlingException", "message": "m"}


def _raw(emulator, service: str, token: str) -> requests.Response:
    auth = (
        f"AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE123456789/20260101/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )
    form = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth}
    if service == "s3":
        return requests.get(f"{emulator.url}/{token}?list-type=2", headers={"Authorization": auth})
    if service == "sagemaker":
        json_headers = {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"}
        return requests.post(
            emulator.url, json={"NameContains": token}, headers={**json_headers, "Authorization": auth}
        )
    body = {
        "sts": f"Action=GetCallerIdentity&Version=2011-06-15&X={token}",
        "iam": f"Action=ListRoles&Version=2010-05-08&PathPrefix=%2F{token}%2F",
        "ec2": f"Action=DescribeVpcs&Version=2016-11-15&VpcId.1={token}",
    }[service]
    return requests.post(emulator.url, data=body, headers=form)


@pytest.mark.parametrize(
    "service, namespace, path",
    [
        ("sts", "{https://sts.amazonaws.com/doc/2011-06-15/}", "ErrorResponse/Error"),
        ("iam", "{https://iam.amazonaws.com/doc/2010-05-08/}", "ErrorResponse/Error"),
        ("ec2", "", "Response/Errors/Error"),
        ("s3", "", "Error"),
    ],
)
def test_xml_protocol_faults_have_the_services_error_shape(emulator, service, namespace, path):
    token = f"t{uuid.uuid4().hex}"
    add_fault(
        emulator, operation="*", service=service, match=token, code="Throttling", message="slow down", count=1
    )
    response = _raw(emulator, service, token)

    assert response.status_code == 400
    root = ET.fromstring(response.text)
    outer, *inner = path.split("/")
    assert root.tag == namespace + outer
    error = root.find("/".join(namespace + part for part in inner)) if inner else root
    assert error.find(namespace + "Code").text == "Throttling"
    assert error.find(namespace + "Message").text == "slow down"
    if service in ("sts", "iam"):
        assert error.find(namespace + "Type").text == "Sender"
    request_id = "RequestID" if service == "ec2" else "RequestId"
    assert root.find(namespace + request_id).text


def test_count_limits_how_often_a_fault_fires(account, emulator):
    fault_id = add_fault(
        emulator, operation="ListModels", account=account.id, code="ThrottlingException", count=2
    )
    sagemaker = account.client("sagemaker")
    assert error_of(sagemaker.list_models)[0] == "ThrottlingException"
    assert error_of(sagemaker.list_models)[0] == "ThrottlingException"
    sagemaker.list_models()
    assert fault_id not in [f["id"] for f in emulator.get("/_emulator/faults")["faults"]]


def test_a_stall_holds_the_request_then_answers_the_error(account, emulator):
    add_fault(
        emulator, operation="ListModels", account=account.id, code="ServiceUnavailable", httpStatus=503,
        stallSeconds=1.5, count=1,
    )
    sagemaker = account.client("sagemaker")
    started = time.monotonic()
    assert error_of(sagemaker.list_models)[:2] == ("ServiceUnavailable", "ServiceUnavailable")
    assert time.monotonic() - started >= 1.5
    started = time.monotonic()
    sagemaker.list_models()
    assert time.monotonic() - started < 1.5


def test_probability_makes_a_fault_fire_for_a_share_of_calls(account, emulator):
    add_fault(emulator, operation="GetCallerIdentity", account=account.id, code="Throttling", probability=0.5)
    sts = account.client("sts")
    failures = 0
    for _ in range(100):
        try:
            sts.get_caller_identity()
        except ClientError as error:
            assert error.response["Error"]["Code"] == "Throttling"
            failures += 1
    assert 20 <= failures <= 80


def test_match_restricts_a_fault_to_requests_containing_the_text(account, emulator):
    iam = account.client("iam")
    for name in ("reachable", "forbidden"):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy(account.id))
    forbidden = f"arn:aws:iam::{account.id}:role/forbidden"
    add_fault(
        emulator,
        operation="AssumeRole",
        service="sts",
        match=forbidden,
        code="AccessDenied",
        message="nope",
        httpStatus=403,
    )

    account.assume(f"arn:aws:iam::{account.id}:role/reachable")
    assert error_of(lambda: account.assume(forbidden)) == ("AccessDenied", "nope", 403)


def test_wildcard_fault_is_scoped_to_its_service_and_account(account, other_account, emulator):
    add_fault(
        emulator,
        operation="*",
        service="ec2",
        account=account.id,
        code="UnauthorizedOperation",
        httpStatus=403,
    )
    assert error_of(account.client("ec2").describe_vpcs)[::2] == ("UnauthorizedOperation", 403)
    account.client("sagemaker").list_models()
    other_account.client("ec2").describe_vpcs()


def test_s3_slowdown_fault_with_503(account, emulator):
    s3, bucket = account.client("s3"), f"slow-{account.id}"
    s3.create_bucket(Bucket=bucket)
    add_fault(
        emulator,
        operation="PutObject",
        account=account.id,
        code="SlowDown",
        message="Please reduce your request rate.",
        httpStatus=503,
    )
    code, _, status = error_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x"))
    assert (code, status) == ("SlowDown", 503)


def test_faulted_calls_are_logged_with_their_status(account, emulator):
    add_fault(emulator, operation="ListKeys", account=account.id, code="ThrottlingException", count=1)
    kms = account.client("kms")
    with pytest.raises(ClientError):
        kms.list_keys()
    kms.list_keys()
    assert [(c["operation"], c["status"]) for c in account.calls()] == [("ListKeys", 400), ("ListKeys", 200)]


def test_faults_are_removed_by_id_and_by_account(account, emulator):
    first = add_fault(emulator, operation="ListModels", account=account.id, code="ThrottlingException")
    add_fault(emulator, operation="ListKeys", account=account.id, code="ThrottlingException")
    assert emulator.delete(f"/_emulator/faults/{first}") == {"removed": 1}
    account.client("sagemaker").list_models()
    emulator.delete(f"/_emulator/faults/{first}", expect=404)

    assert emulator.delete(f"/_emulator/faults?account={account.id}") == {"removed": 1}
    account.client("kms").list_keys()


@pytest.mark.parametrize(
    "spec, problem",
    [
        ({"code": "X"}, "operation"),
        ({"operation": "X"}, "code"),
        ({"operation": "X", "code": "X", "probability": 2}, "probability"),
        ({"operation": "X", "code": "X", "count": 0}, "count"),
        ({"operation": "X", "code": "X", "stallSeconds": -1}, "stallSeconds"),
    ],
)
def test_invalid_fault_specs_are_refused(emulator, spec, problem):
    assert problem in emulator.post("/_emulator/faults", spec, expect=400)["error"]


def test_faults_are_listed(account, emulator):
    fault_id = add_fault(emulator, operation="ListModels", account=account.id, code="X", match="m")
    listed = {f["id"]: f for f in emulator.get("/_emulator/faults")["faults"]}
    assert {k: listed[fault_id][k] for k in ("operation", "account", "code", "match", "httpStatus")} == {
        "operation": "ListModels",
        "account": account.id,
        "code": "X",
        "match": "m",
        "httpStatus": 400,
    }
    emulator.delete(f"/_emulator/faults?account={account.id}")


def test_an_armed_fault_fires_only_after_the_arming_call_succeeds(emulator, account):
    ec2 = account.client("ec2")
    fault = emulator.post(
        "/_emulator/faults",
        {"operation": "*", "accounts": [account.id], "armAfter": "Create*", "code": "InternalFailure", "httpStatus": 500},
    )["id"]
    ec2.describe_vpcs()  # dormant: passes
    ec2.create_vpc(CidrBlock="10.9.0.0/16")  # the arming call itself succeeds
    with pytest.raises(ClientError) as refused:
        ec2.describe_vpcs()
    assert refused.value.response["Error"]["Code"] == "InternalFailure"
    listed = next(f for f in emulator.get("/_emulator/faults")["faults"] if f["id"] == fault)
    assert listed["armed"] and listed["armedBy"] == "CreateVpc" and listed["hits"] == 1
    emulator.delete(f"/_emulator/faults/{fault}")
    assert ec2.describe_vpcs()["Vpcs"]


def test_an_armed_fault_ignores_other_accounts(emulator, account, other_account):
    emulator.post(
        "/_emulator/faults",
        {"operation": "*", "accounts": [account.id], "armAfter": "Create*", "code": "InternalFailure", "httpStatus": 500},
    )
    other_account.client("ec2").create_vpc(CidrBlock="10.8.0.0/16")
    account.client("ec2").describe_vpcs()  # still dormant: the create was elsewhere
    other_account.client("ec2").describe_vpcs()
