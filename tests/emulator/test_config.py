"""Per-account behaviour settings through the control API."""

import pytest

DEFAULTS = {
    "domainPendingSeconds": 0,
    "endpointCreatingSeconds": 0,
    "endpointUpdatingSeconds": 0,
    "endpointDeletingSeconds": 0,
    "pipelineExecutionSeconds": 0,
    "iamPropagationSeconds": 0,
    "vpcEndpointPendingSeconds": 0,
    "callLatencySeconds": 0,
}


def test_defaults_are_zero(account, emulator):
    assert emulator.get(f"/_emulator/config?account={account.id}") == {"account": account.id, **DEFAULTS}


def test_update_changes_only_the_given_settings_of_that_account(account, other_account, emulator):
    account.configure(endpointUpdatingSeconds=2)
    assert account.configure(domainPendingSeconds=1.5) == {
        "account": account.id,
        **DEFAULTS,
        "endpointUpdatingSeconds": 2,
        "domainPendingSeconds": 1.5,
    }
    assert emulator.get(f"/_emulator/config?account={other_account.id}") == {
        "account": other_account.id,
        **DEFAULTS,
    }


@pytest.mark.parametrize("hold", [None, -1])
def test_null_or_negative_pipeline_seconds_means_hold(account, hold):
    assert account.configure(pipelineExecutionSeconds=hold)["pipelineExecutionSeconds"] is None


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"bogus": 1}, "bogus"),
        ({"domainPendingSeconds": -1}, "domainPendingSeconds"),
        ({"endpointCreatingSeconds": "5"}, "endpointCreatingSeconds"),
    ],
)
def test_invalid_settings_are_refused(account, emulator, settings, problem):
    response = emulator.post("/_emulator/config", {"account": account.id, **settings}, expect=400)
    assert problem in response["error"]
