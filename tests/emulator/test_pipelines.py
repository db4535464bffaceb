"""SageMaker pipeline executions: Executing windows, control-API outcomes, stop, listing."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import wait_for

DEFINITION = json.dumps({"Version": "2020-12-01", "Steps": []})


@pytest.fixture
def pipeline(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_pipeline(
        PipelineName="train",
        PipelineDefinition=DEFINITION,
        RoleArn=f"arn:aws:iam::{account.id}:role/pipeline",
    )
    return sagemaker


def start(sagemaker) -> str:
    return sagemaker.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]


def describe(sagemaker, arn: str) -> dict:
    return sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)


def test_execution_succeeds_at_once_by_default(pipeline):
    execution = describe(pipeline, start(pipeline))
    assert execution["PipelineExecutionStatus"] == "Succeeded"
    assert "FailureReason" not in execution


def test_execution_is_executing_for_the_configured_seconds_then_succeeds(pipeline, account):
    account.configure(pipelineExecutionSeconds=1)
    arn = start(pipeline)
    assert describe(pipeline, arn)["PipelineExecutionStatus"] == "Executing"
    assert wait_for(lambda: describe(pipeline, arn)["PipelineExecutionStatus"], "Succeeded") == "Succeeded"


def test_held_execution_is_failed_with_a_reason_through_the_control_api(pipeline, account, emulator):
    account.configure(pipelineExecutionSeconds=None)
    arn = start(pipeline)
    assert describe(pipeline, arn)["PipelineExecutionStatus"] == "Executing"

    emulator.post(
        "/_emulator/pipeline-executions", {"arn": arn, "status": "Failed", "failureReason": "MSE too high"}
    )
    execution = describe(pipeline, arn)
    assert (execution["PipelineExecutionStatus"], execution["FailureReason"]) == ("Failed", "MSE too high")
    summary = pipeline.list_pipeline_executions(PipelineName="train")["PipelineExecutionSummaries"][0]
    assert (summary["PipelineExecutionStatus"], summary["PipelineExecutionFailureReason"]) == (
        "Failed",
        "MSE too high",
    )


def test_held_execution_is_succeeded_through_the_control_api(pipeline, account, emulator):
    account.configure(pipelineExecutionSeconds=-1)
    arn = start(pipeline)
    emulator.post("/_emulator/pipeline-executions", {"arn": arn, "status": "Succeeded"})
    assert describe(pipeline, arn)["PipelineExecutionStatus"] == "Succeeded"


def test_control_api_refuses_finished_and_unknown_executions(pipeline, emulator):
    arn = start(pipeline)  # Succeeded at once
    assert (
        "Executing"
        in emulator.post("/_emulator/pipeline-executions", {"arn": arn, "status": "Failed"}, expect=400)[
            "error"
        ]
    )
    emulator.post("/_emulator/pipeline-executions", {"arn": arn[:-3] + "zzz", "status": "Failed"}, expect=404)


def test_stop_goes_stopping_then_stopped(pipeline, account):
    account.configure(pipelineExecutionSeconds=1)
    arn = start(pipeline)
    assert (
        pipeline.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="t" * 32)[
            "PipelineExecutionArn"
        ]
        == arn
    )
    assert describe(pipeline, arn)["PipelineExecutionStatus"] == "Stopping"
    assert wait_for(lambda: describe(pipeline, arn)["PipelineExecutionStatus"], "Stopped") == "Stopped"


def test_stop_of_a_finished_execution_is_a_conflict(pipeline):
    arn = start(pipeline)
    with pytest.raises(ClientError) as raised:
        pipeline.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="t" * 32)
    assert raised.value.response["Error"]["Code"] == "ConflictException"


def test_execution_steps_are_listed_and_unknown_executions_are_not_found(pipeline):
    arn = start(pipeline)
    assert pipeline.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"] == []
    for call in (pipeline.describe_pipeline_execution, pipeline.list_pipeline_execution_steps):
        with pytest.raises(ClientError) as raised:
            call(PipelineExecutionArn=arn[:-3] + "zzz")
        assert raised.value.response["Error"]["Code"] == "ResourceNotFound"


def test_executions_are_listed_newest_first(pipeline):
    arns = [start(pipeline) for _ in range(3)]
    listed = pipeline.list_pipeline_executions(PipelineName="train")["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionArn"] for e in listed] == arns[::-1]
    assert all("PipelineExecutionFailureReason" not in e for e in listed)
    page = pipeline.list_pipeline_executions(PipelineName="train", MaxResults=2)
    assert len(page["PipelineExecutionSummaries"]) == 2 and page["NextToken"]
