"""The emulator process: moto's server app behind a WSGI middleware, on a free port.

moto's ThreadedMotoServer has no port 0, no readiness signal and no hook in
front of its dispatcher. This launcher patches moto (see the other modules),
wraps moto's DomainDispatcherApplication in a middleware that sees every
request first, and serves it with werkzeug's threaded server. The middleware:
- routes /_emulator/ to the control endpoint;
- identifies the caller (account, principal) and keeps it for policy checks;
- answers with an injected fault instead of moto when one matches;
- refuses a JSON-protocol body that is not JSON (moto would act on garbage);
- turns moto's failures into AWS-shaped errors: an unimplemented operation
  (moto: HTML 500, retried by SDKs) becomes 501 NotImplemented, a crash 500
  InternalFailure, and S3's bare 403 from a bucket policy an AccessDenied;
- waits the caller account's callLatencySeconds before answering (AWS's round trip);
- records every AWS call in the call log with its final status.
In front of it all, `rpcv2.RpcV2Cbor` turns a Smithy RPC v2 CBOR request (CloudWatch, as the
Rust SDK sends it) into the equivalent JSON-protocol request, and the answer back into CBOR.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import time
import traceback

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.serving import make_server

from . import authorization, autoscaling, calls, cloudwatch, config, control, ec2, faults, flow_logs, logs, organizations, policies, s3, sagemaker, sts
from .identity import RequestContext, bind, identify, unbind
from .protocol import AwsRequest, error_response, read_request
from .rpcv2 import RpcV2Cbor


def install() -> None:
    """Apply every patch to moto (once, before serving)."""
    policies.install()
    sts.install()
    ec2.install()
    logs.install()
    flow_logs.install()
    organizations.install()
    s3.install()
    sagemaker.install()
    cloudwatch.install()
    autoscaling.install()
    control.install()
    authorization.install()


class EmulatorMiddleware:
    """WSGI middleware in front of moto; see the module docstring."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/"):
            return control.handle(environ, start_response)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        try:
            request = read_request(environ)
            caller = identify(
                request.access_key, request.headers.get("x-moto-account-id"), authorization.admin_keys
            )
        except Exception:  # never let a malformed request take the server down
            traceback.print_exc()
            status, headers, body = error_response(
                "query", "unknown", "MalformedRequest", "Unreadable request", 400
            )
            start_response(_status_line(status), headers)
            return [body]
        token = bind(RequestContext(caller, request.headers))
        verdict = None
        try:
            status, headers, body, verdict = self._respond(request, caller, environ)
        finally:
            unbind(token)
        calls.log.record(
            caller.account, caller.arn, request.service, request.operation, status, verdict.as_log() if verdict else None
        )
        faults.registry.observe(request.operation, caller.account, status)
        start_response(_status_line(status), headers)
        return body

    def _respond(self, request: AwsRequest, caller, environ) -> tuple[int, list, object, object]:
        latency = config.registry.get(caller.account).callLatencySeconds
        if latency > 0:
            time.sleep(latency)
        fault = faults.registry.fire(request, caller.account)
        if fault:
            if fault.stallSeconds:
                time.sleep(fault.stallSeconds)
            return (*self._error(request, fault.code, fault.message, fault.httpStatus), None)
        if request.protocol == "json" and not request.json_body_ok():
            return (*self._error(request, "SerializationException", "The request body is not valid JSON", 400), None)
        try:
            verdict = authorization.authorize(request, caller)
        except Exception as error:  # a table bug must show, not pass as allowed
            traceback.print_exc()
            code = "InternalError" if request.protocol == "s3" else "InternalFailure"
            return (*self._error(request, code, f"authorization: {type(error).__name__}: {error}", 500), None)
        if verdict.refused:
            return (*self._error(request, verdict.code, authorization.response_message(request, verdict), verdict.status), verdict)
        return (*self._moto(request, environ), verdict)

    def _moto(self, request: AwsRequest, environ) -> tuple[int, list, object]:
        captured: dict = {}

        def capture(status, headers, exc_info=None):
            captured.update(status=int(status.split(" ", 1)[0]), headers=headers)

        try:
            body = self.app(environ, capture)
        except NotImplementedError as error:
            return self._error(request, "NotImplemented", str(error), 501)
        except Exception as error:
            traceback.print_exc()
            code = "InternalError" if request.protocol == "s3" else "InternalFailure"
            return self._error(request, code, f"{type(error).__name__}: {error}", 500)
        status, headers = captured["status"], captured["headers"]
        if request.service == "s3" and status == 403 and request.method != "HEAD":
            content = b"".join(body)
            getattr(body, "close", lambda: None)()
            if content:
                return status, headers, [content]
            return self._error(request, "AccessDenied", "Access Denied", 403)
        return status, headers, body

    @staticmethod
    def _error(request: AwsRequest, code: str, message: str, status: int):
        status, headers, body = error_response(
            request.protocol, request.service, code, message, status, head=request.method == "HEAD"
        )
        return status, headers, [body]


def _status_line(status: int) -> str:
    return f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN')}"


def _write_port_file(path: str, port: int) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write(f"{port}\n")
    os.replace(temporary, path)


def _loopback(host: str) -> str:
    # The emulator hands out credentials to anyone who asks: never listen beyond this machine.
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(host)
    return host


def _stop(_signum, _frame) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, start serving, print the one readiness line; SIGTERM stops."""
    parser = argparse.ArgumentParser(prog="sagekeeper_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", type=_loopback, help="a loopback IP address")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--port-file", help="write the bound port number here once listening")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--iam-evaluation",
        choices=authorization.MODES,
        default="off",
        help="evaluate IAM for every account unless /_emulator/iam says otherwise (default: off)",
    )
    args = parser.parse_args(argv)
    authorization.modes.server_default = args.iam_evaluation
    authorization.modes.reset()
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)

    install()
    app = RpcV2Cbor(EmulatorMiddleware(DomainDispatcherApplication(create_backend_app)))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, _stop)
    if args.port_file:
        _write_port_file(args.port_file, server.server_port)
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    # moto prints diagnostics to stdout; keep stdout to the one readiness line.
    sys.stdout = sys.stderr
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
