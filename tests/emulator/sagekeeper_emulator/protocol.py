"""AWS wire protocols: what a raw request is, and how an error must look.

moto answers each service in its own protocol, but the extension needs to do
two things moto cannot: name the operation of *any* request before moto sees it
(for the call log and fault matching; S3 has no operation name on the wire), and
answer with an AWS-shaped error that the SDKs parse into a code, in the
protocol of the service that was called (JSON for SageMaker and KMS, query XML
for STS and IAM, EC2's own XML, S3's REST XML).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, unquote_plus
from xml.sax.saxutils import escape

from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_input_stream

QUERY_NAMESPACES = {
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
}
_SCOPE = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")

# S3 REST operations by (level, method): the first subresource key present in
# the query string names the operation, else the default (last entry, key None).
# fmt: off
_S3_OPERATIONS: dict[tuple[str, str], list[tuple[str | None, str]]] = {
    ("service", "GET"): [(None, "ListBuckets")],
    ("bucket", "HEAD"): [(None, "HeadBucket")],
    ("bucket", "GET"): [
        ("policyStatus", "GetBucketPolicyStatus"), ("policy", "GetBucketPolicy"),
        ("encryption", "GetBucketEncryption"), ("versioning", "GetBucketVersioning"),
        ("tagging", "GetBucketTagging"), ("publicAccessBlock", "GetPublicAccessBlock"),
        ("ownershipControls", "GetBucketOwnershipControls"), ("location", "GetBucketLocation"),
        ("acl", "GetBucketAcl"), ("lifecycle", "GetBucketLifecycleConfiguration"),
        ("cors", "GetBucketCors"), ("logging", "GetBucketLogging"),
        ("notification", "GetBucketNotificationConfiguration"),
        ("replication", "GetBucketReplication"), ("website", "GetBucketWebsite"),
        ("object-lock", "GetObjectLockConfiguration"), ("versions", "ListObjectVersions"),
        ("uploads", "ListMultipartUploads"), ("list-type", "ListObjectsV2"), (None, "ListObjects"),
    ],
    ("bucket", "PUT"): [
        ("policy", "PutBucketPolicy"), ("encryption", "PutBucketEncryption"),
        ("versioning", "PutBucketVersioning"), ("tagging", "PutBucketTagging"),
        ("publicAccessBlock", "PutPublicAccessBlock"),
        ("ownershipControls", "PutBucketOwnershipControls"), ("acl", "PutBucketAcl"),
        ("lifecycle", "PutBucketLifecycleConfiguration"), ("cors", "PutBucketCors"),
        ("logging", "PutBucketLogging"), ("notification", "PutBucketNotificationConfiguration"),
        ("replication", "PutBucketReplication"), ("website", "PutBucketWebsite"),
        ("object-lock", "PutObjectLockConfiguration"), (None, "CreateBucket"),
    ],
    ("bucket", "DELETE"): [
        ("policy", "DeleteBucketPolicy"), ("encryption", "DeleteBucketEncryption"),
        ("tagging", "DeleteBucketTagging"), ("publicAccessBlock", "DeletePublicAccessBlock"),
        ("ownershipControls", "DeleteBucketOwnershipControls"),
        ("lifecycle", "DeleteBucketLifecycle"), ("cors", "DeleteBucketCors"),
        ("replication", "DeleteBucketReplication"), ("website", "DeleteBucketWebsite"),
        (None, "DeleteBucket"),
    ],
    ("bucket", "POST"): [("delete", "DeleteObjects"), (None, "PostObject")],
    ("object", "HEAD"): [(None, "HeadObject")],
    ("object", "GET"): [
        ("tagging", "GetObjectTagging"), ("acl", "GetObjectAcl"), ("uploadId", "ListParts"),
        ("retention", "GetObjectRetention"), ("legal-hold", "GetObjectLegalHold"),
        ("attributes", "GetObjectAttributes"), (None, "GetObject"),
    ],
    ("object", "PUT"): [
        ("tagging", "PutObjectTagging"), ("acl", "PutObjectAcl"), ("uploadId", "UploadPart"),
        ("retention", "PutObjectRetention"), ("legal-hold", "PutObjectLegalHold"),
        (None, "PutObject"),
    ],
    ("object", "DELETE"): [
        ("tagging", "DeleteObjectTagging"), ("uploadId", "AbortMultipartUpload"),
        (None, "DeleteObject"),
    ],
    ("object", "POST"): [
        ("uploads", "CreateMultipartUpload"), ("uploadId", "CompleteMultipartUpload"),
        ("restore", "RestoreObject"), ("select", "SelectObjectContent"),
    ],
}
# fmt: on


@dataclass(frozen=True)
class AwsRequest:
    """What the extension needs to know about one SigV4-signed AWS request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    access_key: str | None
    service: str  # signing name from the credential scope, "unknown" if unsigned
    operation: str
    region: str | None = None  # from the credential scope

    @property
    def protocol(self) -> str:
        """json | query | ec2 | s3: how this service frames its errors."""
        if self.service in ("s3", "ec2"):
            return self.service
        return "json" if "x-amz-target" in self.headers else "query"

    def json_body_ok(self) -> bool:
        """Whether a JSON-protocol body parses (an empty body counts as {})."""
        try:
            return isinstance(json.loads(self.body or b"{}"), dict)
        except ValueError:
            return False

    def text(self) -> str:
        """Path plus URL-decoded body, for fault `match` substrings."""
        raw = self.body.decode("utf-8", "replace")
        return "\n".join((unquote(self.path), raw, unquote_plus(raw)))


def read_request(environ: dict) -> AwsRequest:
    """Parse the WSGI environ; the body is read once and put back for moto."""
    body = get_input_stream(environ).read()
    # A chunked body stays marked as server-terminated: werkzeug then reads it to its end.
    environ["wsgi.input"] = io.BytesIO(body)
    if body or environ.get("CONTENT_LENGTH"):
        environ["CONTENT_LENGTH"] = str(len(body))
    headers = {
        key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    scope = _SCOPE.search(headers.get("authorization", "")) or _SCOPE.search(
        "Credential=" + query.get("X-Amz-Credential", [""])[0]
    )
    access_key, region, service = scope.groups() if scope else (None, None, "unknown")
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/")
    return AwsRequest(
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        access_key=access_key,
        service=service,
        operation=_operation(service, method, path, query, headers, body),
        region=region,
    )


def _operation(service, method, path, query, headers, body) -> str:
    if "x-amz-target" in headers:
        return headers["x-amz-target"].rsplit(".", 1)[-1]
    if service == "s3":
        return _s3_operation(method, path, query, headers)
    action = query.get("Action") or parse_qs(body.decode("utf-8", "replace")).get("Action")
    return action[0] if action else "Unknown"


def _s3_operation(method: str, path: str, query: dict, headers: dict) -> str:
    """The S3 API operation name of a path-style REST request."""
    bucket, _, key = path.lstrip("/").partition("/")
    level = "object" if key else "bucket" if bucket else "service"
    if level == "object" and method == "PUT" and "x-amz-copy-source" in headers:
        return "UploadPartCopy" if "uploadId" in query else "CopyObject"
    for subresource, operation in _S3_OPERATIONS.get((level, method), []):
        if subresource is None or subresource in query:
            return operation
    return f"{method.title()}{level.title()}"


def error_response(
    protocol: str, service: str, code: str, message: str, status: int, head: bool = False
) -> tuple[int, list[tuple[str, str]], bytes]:
    """An AWS error in the service's protocol: (status, headers, body)."""
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id), ("x-amz-request-id", request_id)]
    msg, err = escape(message), escape(code)
    if protocol == "json":
        headers += [("x-amzn-ErrorType", code), ("Content-Type", "application/x-amz-json-1.1")]
        body = json.dumps({"__type": code, "message": message})
    elif protocol == "s3":
        headers.append(("Content-Type", "application/xml"))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{err}</Code><Message>{msg}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
    elif protocol == "ec2":
        headers.append(("Content-Type", "text/xml"))
        body = (
            f"<Response><Errors><Error><Code>{err}</Code><Message>{msg}</Message></Error>"
            f"</Errors><RequestID>{request_id}</RequestID></Response>"
        )
    else:
        headers.append(("Content-Type", "text/xml"))
        namespace = QUERY_NAMESPACES.get(service, f"https://{service}.amazonaws.com/doc/")
        fault = "Sender" if status < 500 else "Receiver"
        body = (
            f'<ErrorResponse xmlns="{namespace}"><Error><Type>{fault}</Type>'
            f"<Code>{err}</Code><Message>{msg}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    payload = b"" if head else body.encode()
    headers.append(("Content-Length", str(len(payload))))
    return status, headers, payload


class AwsError(HTTPException):
    """An AWS error raised inside a moto handler, rendered in the service's protocol.

    moto's response classes turn any werkzeug HTTPException into the response, so
    raising this from a patched handler is enough.
    """

    def __init__(self, protocol: str, service: str, code: str, message: str, status: int = 400):
        self.code = status
        _, self._headers, body = error_response(protocol, service, code, message, status)
        super().__init__(description=body.decode())

    def get_headers(self, *args, **kwargs) -> list[tuple[str, str]]:
        return [h for h in self._headers if h[0] != "Content-Length"]

    def get_body(self, *args, **kwargs) -> str:
        return self.description
