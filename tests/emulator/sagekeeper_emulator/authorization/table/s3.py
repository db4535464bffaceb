"""S3 (path-style REST): bucket and object operations, authorized against the bucket policy
(an optional resource policy of the bucket owner's account).

SSE-KMS: S3 asks KMS on the caller's behalf, so a PutObject that encrypts with a KMS key
(named in the request or the bucket's default encryption) also needs kms:GenerateDataKey, and
a GetObject of such an object kms:Decrypt, both with kms:ViaService = s3.<region>.amazonaws.com.
Creating a bucket with tags also needs s3:TagResource (CreateBucketConfiguration.Tags). Bucket
tags are not condition keys here: S3 evaluates aws:ResourceTag only on buckets with ABAC on.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from .. import resources
from ..evaluation import Policy, parse
from . import RESOURCE_TAG, TAG_KEYS, Ctx, grant, operation
from .kms import CALLER, VIA, key_check

ENCRYPTION = ("s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id")
LISTING = ("s3:prefix", "s3:delimiter", "s3:max-keys")


def _path(ctx: Ctx) -> tuple[str, str]:
    bucket, _, key = ctx.request.path.lstrip("/").partition("/")
    return bucket, key


def _on(ctx: Ctx, action: str, resource_type: str, *, keys=None, request_tags=None):
    bucket, key = _path(ctx)
    found = resources.bucket(bucket)
    policy = parse(found.policy) if found is not None and found.policy else None
    arn = f"arn:aws:s3:::{bucket}" + (f"/{key}" if resource_type == "object" else "")
    return ctx.check(
        action,
        resource_type,
        arn,
        keys=keys,
        request_tags=request_tags,
        account=found.account_id if found is not None else None,
        policy=Policy(f"bucket policy of {bucket}", policy) if policy else None,
        policy_kind="optional",
    )


def _bucket_operation(name: str, action: str, *keys: str):
    @operation("s3", name, grant(action, "bucket", *keys))
    def entry(ctx: Ctx):
        listing = {k: ctx.request.query.get(k.split(":")[1]) for k in keys if k in LISTING}
        return [_on(ctx, action, "bucket", keys=listing)]

    return entry


for _name, _action in {
    "DeleteBucket": "s3:DeleteBucket",
    "GetBucketLocation": "s3:GetBucketLocation",
    "GetBucketPolicy": "s3:GetBucketPolicy",
    "PutBucketPolicy": "s3:PutBucketPolicy",
    "DeleteBucketPolicy": "s3:DeleteBucketPolicy",
    "GetBucketTagging": "s3:GetBucketTagging",
    "PutBucketTagging": "s3:PutBucketTagging",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketOwnershipControls": "s3:GetBucketOwnershipControls",
    "PutBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    "GetBucketPolicyStatus": "s3:GetBucketPolicyStatus",
}.items():
    _bucket_operation(_name, _action)
for _name in ("ListObjects", "ListObjectsV2", "HeadBucket"):
    _bucket_operation(_name, "s3:ListBucket", *LISTING)
_bucket_operation("ListObjectVersions", "s3:ListBucketVersions", *LISTING)


def _create_tags(body: bytes) -> dict[str, str]:
    if not body:
        return {}
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return {}
    tags = {}
    for tag in root.iter():
        if tag.tag.endswith("Tag"):
            key = next((c.text for c in tag if c.tag.endswith("Key")), None)
            value = next((c.text for c in tag if c.tag.endswith("Value")), "")
            if key is not None:
                tags[key] = value or ""
    return tags


@operation("s3", "CreateBucket", grant("s3:CreateBucket", "bucket", *TAG_KEYS), grant("s3:TagResource", "bucket", *TAG_KEYS))
def create_bucket(ctx: Ctx):
    tags = _create_tags(ctx.request.body)
    checks = [_on(ctx, "s3:CreateBucket", "bucket", request_tags=tags)]
    if tags:
        checks.append(_on(ctx, "s3:TagResource", "bucket", request_tags=tags))
    return checks


@operation("s3", "ListBuckets", grant("s3:ListAllMyBuckets"))
def list_buckets(ctx: Ctx):
    return [ctx.check("s3:ListAllMyBuckets", None)]


def _version(ctx: Ctx) -> str | None:
    return (ctx.request.query.get("versionId") or [None])[0]


@operation("s3", "HeadObject", grant("s3:GetObject", "object"), grant("s3:GetObjectVersion", "object", "s3:versionid"))
def head_object(ctx: Ctx):
    version = _version(ctx)
    if version:
        return [_on(ctx, "s3:GetObjectVersion", "object", keys={"s3:versionid": [version]})]
    return [_on(ctx, "s3:GetObject", "object")]


def _via_s3(ctx: Ctx, found) -> str:
    return f"s3.{getattr(found, 'region_name', None) or ctx.region}.amazonaws.com"


@operation(
    "s3",
    "GetObject",
    grant("s3:GetObject", "object"),
    grant("s3:GetObjectVersion", "object", "s3:versionid"),
    grant("kms:Decrypt", "key", CALLER, VIA, *RESOURCE_TAG),
)
def get_object(ctx: Ctx):
    checks = head_object(ctx)
    bucket, key = _path(ctx)
    found = resources.bucket(bucket)
    stored = resources.object_key(found, key, _version(ctx))
    if stored is not None and stored.encryption == "aws:kms":
        decrypt = _bucket_key_check(ctx, found, "kms:Decrypt", stored.kms_key_id or "alias/aws/s3")
        checks += [decrypt] if decrypt else []
    return checks


def _bucket_key_check(ctx: Ctx, found, action: str, key_id: str):
    region = getattr(found, "region_name", None) or ctx.region
    if not key_id.startswith("arn:"):
        key_id = f"arn:aws:kms:{region}:{found.account_id}:{key_id if key_id.startswith('alias/') else 'key/' + key_id}"
    return key_check(ctx, action, key_id, via=_via_s3(ctx, found))


@operation(
    "s3",
    "PutObject",
    grant("s3:PutObject", "object", *ENCRYPTION),
    grant("kms:GenerateDataKey", "key", CALLER, VIA, *RESOURCE_TAG),
)
def put_object(ctx: Ctx):
    headers = ctx.request.headers
    keys = {k: [headers[k.split(":")[1]]] for k in ENCRYPTION if k.split(":")[1] in headers}
    checks = [_on(ctx, "s3:PutObject", "object", keys=keys)]
    bucket, _ = _path(ctx)
    found = resources.bucket(bucket)
    algorithm = headers.get("x-amz-server-side-encryption")
    key_id = headers.get("x-amz-server-side-encryption-aws-kms-key-id")
    if found is not None and algorithm is None:
        key_id = resources.bucket_default_key(found)
    elif algorithm == "aws:kms" and not key_id:
        key_id = resources.bucket_default_key(found) or "alias/aws/s3"
    elif algorithm != "aws:kms":
        key_id = None
    if found is not None and key_id:
        generate = _bucket_key_check(ctx, found, "kms:GenerateDataKey", key_id)
        checks += [generate] if generate else []
    return checks


@operation(
    "s3", "DeleteObject", grant("s3:DeleteObject", "object"), grant("s3:DeleteObjectVersion", "object", "s3:versionid")
)
def delete_object(ctx: Ctx):
    version = _version(ctx)
    if version:
        return [_on(ctx, "s3:DeleteObjectVersion", "object", keys={"s3:versionid": [version]})]
    return [_on(ctx, "s3:DeleteObject", "object")]


@operation(
    "s3", "DeleteObjects", grant("s3:DeleteObject", "object"), grant("s3:DeleteObjectVersion", "object", "s3:versionid")
)
def delete_objects(ctx: Ctx):
    """Each object of the batch is authorized on its own (AWS then reports a refused key in the
    response; here one refused key refuses the request)."""
    bucket, _ = _path(ctx)
    try:
        root = ElementTree.fromstring(ctx.request.body or b"<Delete/>")
    except ElementTree.ParseError:
        return []
    checks = []
    for item in root:
        if not item.tag.endswith("Object"):
            continue
        key = next((c.text for c in item if c.tag.endswith("Key")), "") or ""
        version = next((c.text for c in item if c.tag.endswith("VersionId")), None)
        check = _on(ctx, "s3:DeleteObjectVersion" if version else "s3:DeleteObject", "object")
        check.resource = f"arn:aws:s3:::{bucket}/{key}"
        if version:
            check.keys["s3:versionid"] = [version]
        checks.append(check)
    return checks
