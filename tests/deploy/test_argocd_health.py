"""The Argo CD health checks shipped in deploy/argocd, run in Lua 5.1 (the dialect of Argo CD's
gopher-lua) against objects shaped as sagekeeper writes them."""

import pathlib

import pytest
import yaml
from lupa import lua51

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "health-checks.yaml"
KINDS = ["AwsAccount", "DataScienceEnvironment", "MLOpsProject", "ModelDeployment"]


def scripts():
    data = yaml.safe_load(CONFIG.read_text())["data"]
    return {kind: data[f"resource.customizations.health.sagekeeper.io_{kind}"] for kind in KINDS}


def health(obj, kind="DataScienceEnvironment"):
    lua = lua51.LuaRuntime()
    lua.globals().obj = to_lua(lua, obj)
    result = lua.execute(scripts()[kind])
    return result["status"], result["message"]


def to_lua(lua, value):
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def obj(*conditions, generation=2, observed=2):
    status = {"observedGeneration": observed, "conditions": [
        {"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions
    ]}
    return {"metadata": {"name": "x", "generation": generation}, "status": status}


def test_every_kind_has_a_health_check():
    assert set(scripts()) == set(KINDS)


def test_no_status_yet_is_progressing():
    status, _ = health({"metadata": {"name": "x", "generation": 1}})
    assert status == "Progressing"


def test_ready_is_healthy():
    status, message = health(obj(("Ready", "True", "Converged", "all good"), ("Stalled", "False", "Converged", "")))
    assert (status, message) == ("Healthy", "all good")


@pytest.mark.parametrize("kind", KINDS)
def test_stalled_is_degraded_with_reason_and_message(kind):
    status, message = health(obj(
        ("Ready", "False", "AccessDenied", "AccessDenied: sts:AssumeRole x"),
        ("Stalled", "True", "AccessDenied", "AccessDenied: sts:AssumeRole x"),
    ), kind)
    assert status == "Degraded"
    assert message == "AccessDenied: sts:AssumeRole x"


def test_reconciling_is_progressing_with_the_reason():
    status, message = health(obj(
        ("Ready", "False", "NetworkPending", "waiting for vpce-1"),
        ("Stalled", "False", "NetworkPending", ""),
        ("Reconciling", "True", "NetworkPending", "waiting for vpce-1"),
    ))
    assert (status, message) == ("Progressing", "waiting for vpce-1")


def test_waiting_for_approval_is_healthy():
    status, _ = health(obj(
        ("Ready", "True", "Converged", "staging serves v2"),
        ("PromotionPending", "True", "WaitingForApproval", "set approvedVersion: \"2\""),
    ), "ModelDeployment")
    assert status == "Healthy"


def test_paused_is_suspended():
    status, _ = health(obj(
        ("Ready", "True", "Converged", ""),
        ("Reconciling", "False", "Paused", "sagekeeper.io/paused is \"true\""),
    ))
    assert status == "Suspended"


def test_empty_message_falls_back_to_the_reason():
    status, message = health(obj(("Ready", "False", "DependencyNotReady", ""), ("Stalled", "False", "x", "")))
    assert (status, message) == ("Progressing", "DependencyNotReady")


def test_paused_with_a_newer_spec_is_still_suspended():
    status, _ = health(obj(("Reconciling", "False", "Paused", "paused"), generation=3, observed=2))
    assert status == "Suspended"


def test_status_of_an_older_generation_is_progressing():
    status, message = health(obj(("Ready", "True", "Converged", "old"), generation=3, observed=2))
    assert status == "Progressing"
    assert "generation 3" in message
