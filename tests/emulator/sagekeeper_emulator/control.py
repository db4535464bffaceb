"""The control endpoint under /_emulator/: what tests use to set up and observe AWS.

AWS has no such thing; moto's /moto-api/ offers a reset and a state dump but no
per-account credentials, call log, fault injection or timing control. Every
route takes and returns JSON; see README.md for the request/response shapes.
moto's own reset (POST /moto-api/reset) clears this extension's state too.
"""

from __future__ import annotations

import json
import re
import traceback
import uuid

from moto.core.exceptions import ServiceException
from moto.iam.models import iam_backends
from moto.moto_api._internal.models import MotoAPIBackend, moto_api_backend
from moto.sagemaker.exceptions import ResourceNotFound
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import authorization, autoscaling, calls, cloudwatch, config, faults, organizations
from .sagemaker import core as sagemaker_core
from .sagemaker import endpoints, pipelines, rollouts

_ACCOUNT = re.compile(r"\d{12}")


def _body(request: Request) -> dict:
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


def _account(value) -> str:
    if not isinstance(value, str) or not _ACCOUNT.fullmatch(value):
        raise ValueError("account must be a 12-digit account id")
    return value


def health(_request):
    return {"ok": True}


def create_credentials(request):
    body = _body(request)
    account = _account(body.get("account"))
    iam = iam_backends[account]["aws"]
    name = body.get("userName") or f"emulator-{uuid.uuid4().hex[:8]}"
    user = iam.users.get(name) or iam.create_user(region_name="us-east-1", user_name=name)
    key = iam.create_access_key(name)
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise ValueError("admin must be true or false")
    if admin:
        authorization.admin_keys.add(key.access_key_id)
    return {"accessKeyId": key.access_key_id, "secretAccessKey": key.secret_access_key, "arn": user.arn, "admin": admin}


def list_calls(request):
    args = request.args
    return {"calls": calls.log.list(args.get("account"), args.get("service"))}


def clear_calls(request):
    return {"removed": calls.log.clear(request.args.get("account"))}


def list_faults(_request):
    return {"faults": faults.registry.list()}


def add_fault(request):
    return {"id": faults.registry.add(_body(request)).id}


def remove_fault(_request, fault_id):
    if not faults.registry.remove(fault_id):
        raise LookupError(f"no fault {fault_id}")
    return {"removed": 1}


def clear_faults(request):
    return {"removed": faults.registry.remove_account(request.args.get("account"))}


def get_config(request):
    account = _account(request.args.get("account"))
    return config.as_json(account, config.registry.get(account))


def set_config(request):
    body = _body(request)
    account = _account(body.pop("account", None))
    return config.as_json(account, config.registry.update(account, body))


def get_iam(_request):
    return authorization.modes.as_json()


def set_iam(request):
    body = _body(request)
    accounts = body.get("accounts")
    if accounts is not None:
        if not isinstance(accounts, list):
            raise ValueError("accounts must be a list of 12-digit account ids")
        accounts = [_account(a) for a in accounts]
    authorization.modes.set(body.get("mode"), accounts)
    return authorization.modes.as_json()


def finish_pipeline_execution(request):
    body = _body(request)
    pipelines.finish_execution(body.get("arn", ""), body.get("status"), body.get("failureReason"))
    return {"arn": body["arn"], "status": body["status"]}


def add_endpoint_failure(request):
    body = _body(request)
    name, reason = body.get("endpointName"), body.get("reason")
    if not isinstance(name, str) or not isinstance(reason, str):
        raise ValueError("endpointName and reason are required strings")
    failure_id = endpoints.register_failure(
        _account(body.get("account")),
        name,
        body.get("kind", "update"),
        reason,
        body.get("endpointConfigName"),
    )
    return {"id": failure_id}


def list_endpoint_deployments(request):
    """The guarded updates of an endpoint so far (sagemaker/rollouts.py), settled to now."""
    account, name = _account(request.args.get("account")), request.args.get("endpointName")
    if not name:
        raise ValueError("endpointName is required")
    with sagemaker_core.LOCK:
        sagemaker_core.timeline.settle((account, request.args.get("region", "us-east-1")))
    return {"deployments": rollouts.records(account, name)}


def clear_endpoint_failures(request):
    return {"removed": endpoints.clear_failures(_account(request.args.get("account")))}


def enroll_account(request):
    body = _body(request)
    for field in ("parentId", "name", "email", "status"):
        if body.get(field) is not None and not isinstance(body[field], str):
            raise ValueError(f"{field} must be a string")
    return organizations.enroll(
        _account(body.get("managementAccount")),
        _account(body.get("accountId")),
        parent_id=body.get("parentId"),
        name=body.get("name"),
        email=body.get("email"),
        status=body.get("status") or "ACTIVE",
    )


def describe_member(_request, account_id):
    return organizations.describe(_account(account_id))


def remove_member(_request, account_id):
    organizations.remove(_account(account_id))
    return {"removed": 1}


def _region(body: dict) -> str:
    region = body.get("region", "us-east-1")
    if not isinstance(region, str) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise ValueError("region must be an AWS region name")
    return region


def _string(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} is required (a string)")
    return value


def set_alarm(request):
    """Set an alarm's state as SetAlarmState does (cloudwatch.py): a StateUpdate history item."""
    body = _body(request)
    account, region = _account(body.get("account")), _region(body)
    name, state = _string(body, "alarmName"), _string(body, "state")
    reason = body.get("reason", "Set with the emulator's control API")
    if not isinstance(reason, str):
        raise ValueError("reason must be a string")
    previous = cloudwatch.set_alarm_state(account, region, name, state, reason)
    return {"alarmName": name, "state": state, "previousState": previous}


def scale_variant(request):
    """Play Application Auto Scaling for a variant with a scalable target (autoscaling.py)."""
    body = _body(request)
    account, region = _account(body.get("account")), _region(body)
    return autoscaling.scale(
        account, region, _string(body, "endpointName"), _string(body, "variantName"), body.get("desiredInstanceCount")
    )


def reset(_request):
    moto_api_backend.reset()
    return {"ok": True}


_ROUTES = Map(
    [
        Rule("/_emulator/health", methods=["GET"], endpoint=health),
        Rule("/_emulator/credentials", methods=["POST"], endpoint=create_credentials),
        Rule("/_emulator/calls", methods=["GET"], endpoint=list_calls),
        Rule("/_emulator/calls", methods=["DELETE"], endpoint=clear_calls),
        Rule("/_emulator/faults", methods=["GET"], endpoint=list_faults),
        Rule("/_emulator/faults", methods=["POST"], endpoint=add_fault),
        Rule("/_emulator/faults", methods=["DELETE"], endpoint=clear_faults),
        Rule("/_emulator/faults/<fault_id>", methods=["DELETE"], endpoint=remove_fault),
        Rule("/_emulator/config", methods=["GET"], endpoint=get_config),
        Rule("/_emulator/config", methods=["POST"], endpoint=set_config),
        Rule("/_emulator/iam", methods=["GET"], endpoint=get_iam),
        Rule("/_emulator/iam", methods=["POST"], endpoint=set_iam),
        Rule("/_emulator/pipeline-executions", methods=["POST"], endpoint=finish_pipeline_execution),
        Rule("/_emulator/endpoint-failures", methods=["POST"], endpoint=add_endpoint_failure),
        Rule("/_emulator/endpoint-failures", methods=["DELETE"], endpoint=clear_endpoint_failures),
        Rule("/_emulator/endpoint-deployments", methods=["GET"], endpoint=list_endpoint_deployments),
        Rule("/_emulator/organizations/accounts", methods=["POST"], endpoint=enroll_account),
        Rule("/_emulator/organizations/accounts/<account_id>", methods=["GET"], endpoint=describe_member),
        Rule("/_emulator/organizations/accounts/<account_id>", methods=["DELETE"], endpoint=remove_member),
        Rule("/_emulator/alarms", methods=["POST"], endpoint=set_alarm),
        Rule("/_emulator/scaling", methods=["POST"], endpoint=scale_variant),
        Rule("/_emulator/reset", methods=["POST"], endpoint=reset),
    ]
)


def _outcome(request: Request) -> tuple[int, dict]:
    try:
        handler, args = _ROUTES.bind_to_environ(request.environ).match()
        return 200, handler(request, **args)
    except HTTPException as error:  # unknown route or method
        return error.code or 404, {"error": error.description}
    except (LookupError, ResourceNotFound) as error:
        return 404, {"error": str(error)}
    except (ValueError, ServiceException) as error:
        return 400, {"error": str(error)}
    except Exception as error:  # a bug here must not take the server down
        traceback.print_exc()
        return 500, {"error": f"{type(error).__name__}: {error}"}


def handle(environ, start_response):
    """WSGI entry point for /_emulator/ requests."""
    request = Request(environ)
    status, payload = _outcome(request)
    return Response(json.dumps(payload, default=str), status, mimetype="application/json")(
        environ, start_response
    )


def reset_extension_state() -> None:
    """Forget calls, faults, settings, SageMaker extension state, organization membership, alarm
    history and scaling activities."""
    calls.log.clear()
    faults.registry.clear()
    config.registry.clear()
    sagemaker_core.reset()
    authorization.reset()
    organizations.reset()
    cloudwatch.reset()
    autoscaling.reset()


def install() -> None:
    """Make moto's reset (POST /moto-api/reset, and ours) also reset the extension."""
    original = MotoAPIBackend.reset

    def reset_all(self) -> None:
        original(self)
        reset_extension_state()

    MotoAPIBackend.reset = reset_all
