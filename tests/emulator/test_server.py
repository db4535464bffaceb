"""The emulator process, the middleware's error handling, and resets (on a private emulator)."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import Account, Emulator, start_emulator, stop_emulator


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    """An emulator of this module's own, so resets touch no other test."""
    process = start_emulator(tmp_path_factory.mktemp("private"))
    yield process, Emulator(process.url)
    stop_emulator(process)


def test_launcher_prints_one_line_writes_port_file_and_stops_on_sigterm(tmp_path):
    process = start_emulator(tmp_path)
    port = int(process.url.rsplit(":", 1)[1])
    assert process.first_line == f"listening on http://127.0.0.1:{port}\n"
    assert (tmp_path / "port").read_text().strip() == str(port)
    assert process.started_in < 10  # about 1 s on an idle machine; generous for a busy one
    assert requests.get(f"{process.url}/_emulator/health").json() == {"ok": True}

    process.popen.send_signal(signal.SIGTERM)
    assert process.popen.wait(timeout=10) == 0
    assert process.popen.stdout.read() == ""


def test_launcher_refuses_to_listen_beyond_loopback():
    result = subprocess.run(
        [sys.executable, "-m", "sagekeeper_emulator", "--host", "0.0.0.0"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "--host" in result.stderr


def test_health(emulator):
    assert emulator.get("/_emulator/health") == {"ok": True}


def test_unknown_control_route_is_404(emulator):
    assert "error" in emulator.get("/_emulator/nothing", expect=404)


def test_unimplemented_operation_is_an_aws_shaped_501(account):
    with pytest.raises(ClientError) as error:
        account.client("sagemaker").describe_project(ProjectName="p")
    assert error.value.response["Error"]["Code"] == "NotImplemented"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def _sagemaker_request(emulator: Emulator, target: str, body) -> requests.Response:
    return requests.post(
        emulator.url,
        data=body,
        headers={
            "X-Amz-Target": f"SageMaker.{target}",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE123456789/20260101/us-east-1/"
            "sagemaker/aws4_request, SignedHeaders=host, Signature=0",
        },
    )


def test_malformed_json_body_is_a_serialization_exception_and_the_server_survives(emulator):
    response = _sagemaker_request(emulator, "CreateModel", b"{not json")
    assert response.status_code == 400
    assert response.json()["__type"] == "SerializationException"
    assert response.headers["x-amzn-ErrorType"] == "SerializationException"
    assert emulator.get("/_emulator/health") == {"ok": True}


def test_chunked_request_bodies_reach_moto(emulator):
    chunks = iter([b'{"ModelPackageGroupName": ', b'"chunked-group"}'])
    response = _sagemaker_request(emulator, "CreateModelPackageGroup", chunks)
    assert response.status_code == 200, response.text
    assert response.json()["ModelPackageGroupArn"].endswith(":model-package-group/chunked-group")


def test_a_crash_inside_moto_is_an_aws_shaped_500(emulator):
    # moto iterates the missing ProductionVariants (AWS: a validation error): a TypeError inside moto.
    response = _sagemaker_request(emulator, "CreateEndpointConfig", b'{"EndpointConfigName": "x"}')
    assert response.status_code == 500
    assert response.json()["__type"] == "InternalFailure"
    assert emulator.get("/_emulator/health") == {"ok": True}


def _extension_state(emulator: Emulator, account: Account) -> tuple:
    return (
        len(account.calls()),
        len(emulator.get("/_emulator/faults")["faults"]),
        emulator.get(f"/_emulator/config?account={account.id}")["domainPendingSeconds"],
    )


@pytest.mark.parametrize("reset_path", ["/_emulator/reset", "/moto-api/reset"])
def test_reset_clears_moto_and_extension_state(private, reset_path):
    _, emulator = private
    account = emulator.new_account()
    account.client("sagemaker").create_model_package_group(ModelPackageGroupName="g")
    account.configure(domainPendingSeconds=5)
    emulator.post("/_emulator/faults", {"operation": "ListModels", "code": "Throttling"})
    assert _extension_state(emulator, account) == (1, 1, 5)

    response = requests.post(emulator.url + reset_path, headers={"Content-Type": "application/json"})
    assert response.status_code == 200

    assert _extension_state(emulator, account) == (0, 0, 0)
    fresh = emulator.new_account()  # moto's reset also removed the old account's IAM user
    assert fresh.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_credentials_report_account_and_user_arn(account):
    identity = account.client("sts").get_caller_identity()
    assert identity["Account"] == account.id
    assert identity["Arn"] == account.arn
    assert account.arn.startswith(f"arn:aws:iam::{account.id}:user/")


def test_credentials_keep_accounts_apart(account, other_account):
    account.client("sagemaker").create_model_package_group(ModelPackageGroupName="mine")
    groups = other_account.client("sagemaker").list_model_package_groups()
    assert groups["ModelPackageGroupSummaryList"] == []


def test_credentials_require_a_12_digit_account(emulator):
    assert "account" in emulator.post("/_emulator/credentials", {"account": "12"}, expect=400)["error"]


def test_control_rejects_non_json_body(emulator):
    response = requests.post(emulator.url + "/_emulator/faults", data="nope")
    assert response.status_code == 400
    assert "JSON" in json.loads(response.text)["error"]
