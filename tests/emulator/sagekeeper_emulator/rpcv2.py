"""Smithy RPC v2 CBOR, the wire protocol the current SDKs speak to CloudWatch, in front of moto.

CloudWatch's service model lists three protocols (`smithy-rpc-v2-cbor`, `json`, `query`); each
SDK picks the first it supports. The Rust SDK (aws-sdk-cloudwatch, whose serializers write with
`aws_smithy_cbor::Encoder`) speaks only Smithy RPC v2 CBOR: `POST
/service/GraniteServiceVersion20100801/operation/<Operation>` with `smithy-protocol: rpc-v2-cbor`,
`Content-Type: application/cbor` and the input structure as a CBOR map (of indefinite length);
the response carries the same header and the output as CBOR, timestamps as tag 1 over a double
(smithy-rs decodes a timestamp only so, and a double only from a CBOR float). Errors are a CBOR
map with `__type` and `message`; CloudWatch is awsQueryCompatible, so the query error code also
travels in `x-amzn-query-error: <Code>;Sender`, which the SDKs take as the error code. boto3
(botocore 1.44) prefers awsJson1_0 for the same service. moto answers JSON and query only.

`RpcV2Cbor` wraps the whole emulator: an RPC v2 CBOR request becomes the equivalent awsJson1_0
request (`X-Amz-Target: <Service>.<Operation>`, the body as JSON: tag-1 timestamps as epoch
seconds, byte strings base64), so the call log, faults, IAM evaluation and moto all see a JSON
request; the JSON answer goes back as CBOR, shaped by the operation's output in the service
model (a double is a float even when JSON wrote `1`, a timestamp is tagged, an operation without
output answers an empty body). A body that is not CBOR is a SerializationException. A gzip body
(`Content-Encoding: gzip`, the SDKs' request compression of PutMetricData) is inflated first.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import math
import re
import struct
from datetime import datetime, timezone
from functools import lru_cache

import botocore.session
from botocore.model import OperationNotFoundError
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_input_stream

# Smithy service shape name -> (botocore service name, Smithy namespace for error __type).
SERVICES = {"GraniteServiceVersion20100801": ("cloudwatch", "com.amazonaws.cloudwatch")}
PROTOCOL = "rpc-v2-cbor"
CONTENT_TYPE = "application/cbor"
_PATH = re.compile(r"/service/([A-Za-z0-9_.]+)/operation/([A-Za-z0-9_]+)")


class CborError(ValueError):
    """A body that is not well-formed CBOR (or uses what Smithy RPC v2 does not)."""


class Timestamp(float):
    """A CBOR tag-1 value: epoch seconds."""


# --- decoding -------------------------------------------------------------------

_BREAK = object()
_SIMPLE = {20: False, 21: True, 22: None, 23: None}
_FLOATS = {25: ">e", 26: ">f", 27: ">d"}


def decode(data: bytes):
    """The value of one CBOR data item that is all of `data`."""
    value, end = _item(data, 0)
    if value is _BREAK or end != len(data):
        raise CborError("trailing or unexpected data after the CBOR item")
    return value


def _take(data: bytes, pos: int, count: int) -> bytes:
    if pos + count > len(data):
        raise CborError("truncated CBOR item")
    return data[pos : pos + count]


def _argument(data: bytes, pos: int, info: int) -> tuple[int | None, int]:
    """The argument of a head (None for an indefinite length) and the position after it."""
    if info < 24:
        return info, pos
    if info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        return int.from_bytes(_take(data, pos, size), "big"), pos + size
    if info == 31:
        return None, pos
    raise CborError(f"reserved additional information {info}")


def _item(data: bytes, pos: int):
    initial = _take(data, pos, 1)[0]
    major, info, pos = initial >> 5, initial & 0x1F, pos + 1
    if major == 7:
        return _simple(data, pos, info)
    argument, pos = _argument(data, pos, info)
    if major == 0:
        return argument, pos
    if major == 1:
        return -1 - argument, pos
    if major in (2, 3):
        return _string(data, pos, major, argument)
    if major == 4:
        return _array(data, pos, argument)
    if major == 5:
        return _map(data, pos, argument)
    value, pos = _item(data, pos)  # major 6: a tag
    if argument == 1:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CborError("tag 1 (epoch time) must tag a number")
        return Timestamp(value), pos
    return value, pos


def _simple(data: bytes, pos: int, info: int):
    if info in _SIMPLE:
        return _SIMPLE[info], pos
    if info in _FLOATS:
        size = 1 << (info - 24)
        return struct.unpack(_FLOATS[info], _take(data, pos, size))[0], pos + size
    if info == 31:
        return _BREAK, pos
    raise CborError(f"unsupported simple value {info}")


def _string(data: bytes, pos: int, major: int, length: int | None):
    if length is None:  # indefinite: definite chunks of the same major type, then a break
        chunks = []
        while _take(data, pos, 1)[0] != 0xFF:
            head = data[pos]
            if head >> 5 != major:
                raise CborError("a chunk of an indefinite string has another type")
            chunk_length, pos = _argument(data, pos + 1, head & 0x1F)
            if chunk_length is None:
                raise CborError("nested indefinite string")
            chunks.append(_take(data, pos, chunk_length))
            pos += chunk_length
        raw, pos = b"".join(chunks), pos + 1
    else:
        raw, pos = _take(data, pos, length), pos + length
    if major == 2:
        return raw, pos
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as error:
        raise CborError(f"text string is not UTF-8: {error}") from None


def _array(data: bytes, pos: int, length: int | None):
    items = []
    while length is None or len(items) < length:
        value, pos = _item(data, pos)
        if value is _BREAK:
            if length is not None:
                raise CborError("break inside a definite array")
            return items, pos
        items.append(value)
    return items, pos


def _map(data: bytes, pos: int, length: int | None):
    found: dict = {}
    count = 0
    while length is None or count < length:
        key, pos = _item(data, pos)
        if key is _BREAK:
            if length is not None:
                raise CborError("break inside a definite map")
            return found, pos
        if not isinstance(key, str):
            raise CborError("map keys must be text strings")
        value, pos = _item(data, pos)
        if value is _BREAK:
            raise CborError("map key without a value")
        found[key] = value
        count += 1
    return found, pos


# --- encoding -------------------------------------------------------------------


def encode(value) -> bytes:
    """CBOR of a value: definite lengths, every float a double, Timestamp as tag 1."""
    out = bytearray()
    _encode(out, value)
    return bytes(out)


def _head(out: bytearray, major: int, argument: int) -> None:
    if argument < 24:
        out.append(major << 5 | argument)
    elif argument < 1 << 8:
        out += bytes((major << 5 | 24, argument))
    elif argument < 1 << 16:
        out.append(major << 5 | 25)
        out += argument.to_bytes(2, "big")
    elif argument < 1 << 32:
        out.append(major << 5 | 26)
        out += argument.to_bytes(4, "big")
    elif argument < 1 << 64:
        out.append(major << 5 | 27)
        out += argument.to_bytes(8, "big")
    else:
        raise CborError(f"integer {argument} does not fit CBOR")


def _encode(out: bytearray, value) -> None:
    if value is None:
        out.append(0xF6)
    elif value is True or value is False:
        out.append(0xF5 if value else 0xF4)
    elif isinstance(value, Timestamp):
        out.append(0xC1)
        out.append(0xFB)
        out += struct.pack(">d", float(value))
    elif isinstance(value, int):
        _head(out, 0, value) if value >= 0 else _head(out, 1, -1 - value)
    elif isinstance(value, float):
        out.append(0xFB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(out, 3, len(raw))
        out += raw
    elif isinstance(value, (bytes, bytearray)):
        _head(out, 2, len(value))
        out += value
    elif isinstance(value, (list, tuple)):
        _head(out, 4, len(value))
        for item in value:
            _encode(out, item)
    elif isinstance(value, dict):
        _head(out, 5, len(value))
        for key, item in value.items():
            _encode(out, str(key))
            _encode(out, item)
    else:
        raise CborError(f"cannot encode {type(value).__name__}")


# --- CBOR <-> the JSON protocol's document ----------------------------------------------


def to_json(value):
    """The awsJson document of a decoded CBOR input: epoch seconds for timestamps, base64 for
    blobs, the JSON protocol's strings for non-finite floats."""
    if isinstance(value, Timestamp):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def shaped(value, shape):
    """A JSON output value as CBOR wants it for its botocore `shape` (None drops it)."""
    if value is None or shape is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        members = shape.members
        return {k: shaped(v, members[k]) for k, v in value.items() if k in members and v is not None}
    if kind == "list":
        return [shaped(v, shape.member) for v in value]
    if kind == "map":
        return {str(k): shaped(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        return Timestamp(_epoch(value))
    if kind in ("double", "float"):
        return float(value)
    if kind in ("integer", "long", "short", "byte"):
        return int(value)
    if kind == "boolean":
        return bool(value)
    if kind == "blob":
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    return value


@lru_cache(maxsize=8)
def _model(name: str):
    return botocore.session.get_session().get_service_model(name)


def _output_shape(service: str, operation: str):
    """(has an output, its shape) of an operation; an unknown operation has none."""
    try:
        found = _model(SERVICES[service][0]).operation_model(operation)
    except OperationNotFoundError:
        return False, None
    return found.output_shape is not None, found.output_shape


# --- the WSGI adapter --------------------------------------------------------------


class RpcV2Cbor:
    """WSGI middleware: Smithy RPC v2 CBOR requests in, through the JSON protocol, CBOR out."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or match.group(1) not in SERVICES or environ.get("HTTP_SMITHY_PROTOCOL") != PROTOCOL:
            return self.app(environ, start_response)
        service, operation = match.groups()
        body = get_input_stream(environ).read()
        try:
            if environ.pop("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
                body = gzip.decompress(body)
            document = to_json(decode(body)) if body else {}
            if not isinstance(document, dict):
                raise CborError("the input must be a CBOR map")
        except (CborError, OSError, EOFError) as error:  # gzip's errors are OSError and EOFError
            return self._error(start_response, service, 400, "SerializationException", str(error), [])
        self._as_json(environ, service, operation, json.dumps(document).encode())
        captured: dict = {}

        def capture(status, headers, exc_info=None):
            captured.update(status=int(status.split(" ", 1)[0]), headers=headers)

        answer = self.app(environ, capture)
        try:
            raw = b"".join(answer)
        finally:
            getattr(answer, "close", lambda: None)()
        return self._answer(start_response, service, operation, captured["status"], captured["headers"], raw)

    @staticmethod
    def _as_json(environ, service: str, operation: str, body: bytes) -> None:
        environ.update(
            PATH_INFO="/",
            RAW_URI="/",
            REQUEST_URI="/",
            CONTENT_TYPE="application/x-amz-json-1.0",
            CONTENT_LENGTH=str(len(body)),
            HTTP_X_AMZ_TARGET=f"{service}.{operation}",
            HTTP_ACCEPT="application/json",
        )
        environ["wsgi.input"] = io.BytesIO(body)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False

    def _answer(self, start_response, service, operation, status, headers, raw):
        kept = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length", "x-amzn-errortype")]
        try:
            document = json.loads(raw) if raw.strip() else {}
        except ValueError:
            document = None
        if status >= 300:
            document = document if isinstance(document, dict) else {}
            code = str(document.get("__type") or HTTP_STATUS_CODES.get(status, "InternalFailure")).rsplit("#", 1)[-1]
            message = document.get("message") or document.get("Message") or ""
            return self._error(start_response, service, status, code, message, kept)
        if not isinstance(document, dict):
            return self._error(start_response, service, 500, "InternalFailure", "moto answered no JSON document", kept)
        has_output, shape = _output_shape(service, operation)
        payload = encode(shaped(document, shape) or {}) if has_output else b""
        return self._respond(start_response, status, kept, payload)

    def _error(self, start_response, service, status, code, message, headers):
        namespace = SERVICES[service][1]
        fault = "Sender" if status < 500 else "Receiver"
        if not any(k.lower() == "x-amzn-query-error" for k, _ in headers):
            headers = [*headers, ("x-amzn-query-error", f"{code};{fault}")]
        payload = encode({"__type": f"{namespace}#{code}", "message": message})
        return self._respond(start_response, status, headers, payload)

    @staticmethod
    def _respond(start_response, status, headers, payload: bytes):
        headers = [
            *headers,
            ("smithy-protocol", PROTOCOL),
            ("Content-Type", CONTENT_TYPE),
            ("Content-Length", str(len(payload))),
        ]
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN')}", headers)
        return [payload]
