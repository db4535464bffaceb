"""SageMaker pipeline executions that run, can be stopped, and can fail.

moto's executions are Succeeded at once and forever, StopPipelineExecution and
ListPipelineExecutionSteps do not exist, DescribePipelineExecution always says
FailureReason "", and ListPipelineExecutions is oldest-first (AWS: newest first)
with a failure reason of "None". Here an execution stays Executing for the
account's pipelineExecutionSeconds (or until a test finishes it through the
control API as Succeeded or Failed with a reason), Stop goes Stopping ->
Stopped, and unknown executions are ResourceNotFound.
"""

from __future__ import annotations

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ConflictException, ResourceNotFound, ValidationError
from moto.sagemaker.utils import get_pipeline_execution_from_arn, get_pipeline_from_name

from .core import LOCK, Call, backend_of, listing, operation, timeline


def _execution(backend, arn: str):
    try:
        return get_pipeline_execution_from_arn(backend.pipelines, arn)
    except (ValidationError, IndexError):
        raise ResourceNotFound(f"Pipeline execution {arn} does not exist.")


def _finish(execution, status: str, reason: str | None, when) -> None:
    execution.pipeline_execution_status = status
    execution.pipeline_execution_failure_reason = reason
    execution.last_modified_time = when


@operation
def start_pipeline_execution(call: Call):
    result = call.original()
    arn = result.result["PipelineExecutionArn"]
    execution = _execution(call.backend, arn)
    execution.pipeline_execution_status = "Executing"
    seconds = call.config.pipelineExecutionSeconds
    if seconds is not None:
        timeline.schedule(call.scope, arn, seconds, lambda due: _finish(execution, "Succeeded", None, due))
    return result


@operation
def describe_pipeline_execution(call: Call):
    execution = _execution(call.backend, call.param("PipelineExecutionArn"))
    result = call.original()
    result.result.pop("FailureReason", None)
    if execution.pipeline_execution_failure_reason:
        result.result["FailureReason"] = execution.pipeline_execution_failure_reason
    return result


@operation
def list_pipeline_executions(call: Call) -> dict:
    pipeline = get_pipeline_from_name(call.backend.pipelines, call.param("PipelineName"))
    summaries = [
        {
            "PipelineExecutionArn": e.arn,
            "CreationTime": e.creation_time,
            "StartTime": e.start_time,
            "PipelineExecutionStatus": e.pipeline_execution_status,
            "PipelineExecutionDescription": e.pipeline_execution_description,
            "PipelineExecutionDisplayName": e.pipeline_execution_display_name,
            "PipelineExecutionFailureReason": e.pipeline_execution_failure_reason,
        }
        for e in pipeline.pipeline_executions.values()
    ]
    return listing(call, summaries, "PipelineExecutionSummaries")


@operation
def stop_pipeline_execution(call: Call) -> dict:
    arn = call.param("PipelineExecutionArn")
    execution = _execution(call.backend, arn)
    status = execution.pipeline_execution_status
    if status == "Executing":
        execution.pipeline_execution_status = "Stopping"
        seconds = max(call.config.pipelineExecutionSeconds or 0, 0)
        timeline.schedule(call.scope, arn, seconds, lambda due: _finish(execution, "Stopped", None, due))
    elif status not in ("Stopping", "Stopped"):
        raise ConflictException(f"Pipeline execution {arn} is {status} and cannot be stopped.")
    return {"PipelineExecutionArn": arn}


@operation
def list_pipeline_execution_steps(call: Call) -> dict:
    _execution(call.backend, call.param("PipelineExecutionArn"))
    return {"PipelineExecutionSteps": []}


def finish_execution(arn: str, status: str, reason: str | None) -> None:
    """End an Executing execution now (control API); raises ResourceNotFound/ValueError."""
    if status not in ("Succeeded", "Failed"):
        raise ValueError("status must be 'Succeeded' or 'Failed'")
    with LOCK:
        backend = backend_of(arn)
        scope = (backend.account_id, backend.region_name)
        timeline.settle(scope)
        execution = _execution(backend, arn)
        if execution.pipeline_execution_status != "Executing":
            raise ValueError(f"execution is {execution.pipeline_execution_status}, not Executing")
        timeline.cancel(scope, arn)
        _finish(execution, status, reason if status == "Failed" else None, utcnow())
