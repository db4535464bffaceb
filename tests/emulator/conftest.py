"""Fixtures: one emulator process per session, a fresh AWS account per test.

Tests never reset the shared emulator: each works in accounts of its own, so
they can run in any order. Tests of reset and process behaviour start a
private emulator.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

HERE = Path(__file__).parent
RETRIES_OFF = Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"})
_account_ids = itertools.count(random.randrange(10**11, 9 * 10**11, 10**6))
_SESSION = boto3.Session(region_name="us-east-1")  # one session: service models load once


@dataclass
class Process:
    """A running emulator process."""

    popen: subprocess.Popen
    url: str
    first_line: str
    started_in: float


def start_emulator(workdir: Path, *extra: str) -> Process:
    """Launch the emulator as a subprocess on port 0 (with `extra` arguments) and wait for its
    readiness line."""
    started = time.monotonic()
    arguments = ["--host", "127.0.0.1", "--port", "0", "--port-file", str(workdir / "port"), *extra]
    popen = subprocess.Popen(
        [sys.executable, "-m", "sagekeeper_emulator", *arguments],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=(workdir / "stderr.log").open("w"),
        text=True,
    )
    line = popen.stdout.readline()
    if not line.startswith("listening on "):
        popen.kill()
        raise RuntimeError(f"emulator did not start: {line!r}; see {workdir / 'stderr.log'}")
    return Process(popen, line.split()[-1], line, time.monotonic() - started)


def stop_emulator(process: Process) -> int:
    process.popen.terminate()
    return process.popen.wait(timeout=10)


class Account:
    """An AWS account in the emulator, seen through one set of credentials."""

    def __init__(self, emulator: "Emulator", account_id: str, credentials: dict[str, str], arn: str):
        self.emulator, self.id, self.credentials, self.arn = emulator, account_id, credentials, arn

    @classmethod
    def create(cls, emulator: "Emulator", account_id: str) -> "Account":
        """A fresh IAM user with an access key in the account (the control API)."""
        created = emulator.post("/_emulator/credentials", {"account": account_id})
        credentials = {
            "aws_access_key_id": created["accessKeyId"],
            "aws_secret_access_key": created["secretAccessKey"],
        }
        return cls(emulator, account_id, credentials, created["arn"])

    def client(self, service: str, headers: dict[str, str] | None = None):
        """A boto3 client with retries off; `headers` are added to every request."""
        client = _SESSION.client(
            service, endpoint_url=self.emulator.url, config=RETRIES_OFF, **self.credentials
        )

        def add_headers(request, **_):
            for name, value in (headers or {}).items():
                request.headers[name] = value

        client.meta.events.register("before-sign", add_headers)
        return client

    def assume(self, role_arn: str, session_name: str = "tests", **kwargs) -> "Account":
        """The session of AssumeRole into role_arn (raises ClientError if refused)."""
        response = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name, **kwargs)
        issued = response["Credentials"]
        credentials = {
            "aws_access_key_id": issued["AccessKeyId"],
            "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"],
        }
        return Account(self.emulator, role_arn.split(":")[4], credentials, response["AssumedRoleUser"]["Arn"])

    def configure(self, **settings) -> dict:
        return self.emulator.post("/_emulator/config", {"account": self.id, **settings})

    def calls(self, service: str | None = None) -> list[dict]:
        query = f"?account={self.id}" + (f"&service={service}" if service else "")
        return self.emulator.get("/_emulator/calls" + query)["calls"]

    def operations(self, service: str | None = None) -> list[str]:
        return [call["operation"] for call in self.calls(service)]

    def clear_calls(self) -> None:
        self.emulator.delete(f"/_emulator/calls?account={self.id}")


class Emulator:
    """Client of one emulator's control API."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def request(self, method: str, path: str, body: dict | None = None, expect: int = 200) -> dict:
        response = self.http.request(method, self.url + path, data=None if body is None else json.dumps(body))
        assert response.status_code == expect, response.text
        return response.json()

    def get(self, path: str, **kwargs) -> dict:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: dict, **kwargs) -> dict:
        return self.request("POST", path, body, **kwargs)

    def delete(self, path: str, **kwargs) -> dict:
        return self.request("DELETE", path, **kwargs)

    def new_account(self, account_id: str | None = None) -> Account:
        """Credentials of a new IAM user, in a fresh account unless account_id is given."""
        return Account.create(self, account_id or str(next(_account_ids)))


@pytest.fixture(scope="session")
def emulator(tmp_path_factory) -> Emulator:
    process = start_emulator(tmp_path_factory.mktemp("emulator"))
    yield Emulator(process.url)
    stop_emulator(process)


@pytest.fixture
def account(emulator: Emulator) -> Account:
    return emulator.new_account()


@pytest.fixture
def other_account(emulator: Emulator) -> Account:
    return emulator.new_account()


def trust_policy(*principals: str, **condition) -> str:
    """A role trust policy allowing the given AWS principals to assume the role."""
    statement = {"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def wait_for(read, expected, timeout: float = 5.0, interval: float = 0.1):
    """Poll read() until it returns expected; returns the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(interval)
        value = read()
    return value
