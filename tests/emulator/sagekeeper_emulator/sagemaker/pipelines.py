"""SageMaker pipelines, and executions that run, can be stopped, and can fail.

moto's executions are Succeeded at once and forever, StopPipelineExecution and
ListPipelineExecutionSteps do not exist, DescribePipelineExecution always says
FailureReason "", and ListPipelineExecutions is oldest-first (AWS: newest first)
with a failure reason of "None". Here an execution stays Executing for the
account's pipelineExecutionSeconds (or until a test finishes it through the
control API as Succeeded or Failed with a reason), Stop goes Stopping ->
Stopped, and unknown executions are ResourceNotFound.

moto also ignores ClientRequestToken, answers an unknown pipeline with a
ValidationException (AWS: ResourceNotFound), deletes a pipeline whose
executions still run (AWS refuses: they must be stopped first) and keeps
LastModifiedTime across an update. Here CreatePipeline and
StartPipelineExecution retried with the token of an earlier success return what
that call created, and do nothing else.
"""

from __future__ import annotations

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ConflictException, ResourceNotFound, ValidationError
from moto.sagemaker.utils import get_pipeline_execution_from_arn

from .core import LOCK, Call, backend_of, listing, operation, table, timeline

_RUNNING = ("Executing", "Stopping")


def _pipeline(call: Call):
    name = call.param("PipelineName")
    pipeline = call.backend.pipelines.get(name)
    if pipeline is None:
        raise ResourceNotFound(f"Pipeline '{call.arn('pipeline', name)}' does not exist.")
    return pipeline


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
def create_pipeline(call: Call):
    name, token = call.param("PipelineName"), call.param("ClientRequestToken")
    tokens = table("pipeline-token", *call.scope)  # name -> token of the create that made it
    existing = call.backend.pipelines.get(name)
    if existing is not None:
        if token and tokens.get(name) == token:
            return {"PipelineArn": existing.arn}
        raise ValidationError(
            "Pipeline names must be unique within an AWS account and region. "
            f"Pipeline with name ({name}) already exists."
        )
    result = call.original()
    tokens[name] = token
    return result


@operation
def describe_pipeline(call: Call):
    _pipeline(call)
    return call.original()


@operation
def update_pipeline(call: Call):
    pipeline = _pipeline(call)
    result = call.original()
    pipeline.last_modified_time = utcnow()
    return result


@operation
def delete_pipeline(call: Call):
    pipeline = _pipeline(call)
    if any(e.pipeline_execution_status in _RUNNING for e in pipeline.pipeline_executions.values()):
        raise ConflictException(
            f"Pipeline {pipeline.arn} has running executions. Stop them before deleting the pipeline."
        )
    table("pipeline-token", *call.scope).pop(pipeline.pipeline_name, None)
    return call.original()  # its executions go with it


@operation
def start_pipeline_execution(call: Call):
    pipeline, token = _pipeline(call), call.param("ClientRequestToken")
    for execution in pipeline.pipeline_executions.values():
        if token and execution.client_request_token == token:
            return {"PipelineExecutionArn": execution.arn}
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
    pipeline = _pipeline(call)
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
