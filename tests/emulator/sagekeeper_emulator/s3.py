"""S3 where moto differs from AWS on the wire.

- CreateBucket with tags: AWS applies `CreateBucketConfiguration.Tags` in the same call. moto
  ignores them, so a bucket made in one call would carry no tags until a second call, and a
  controller that adopts only buckets carrying its own owner tag could not tell its own
  interrupted create from someone else's bucket.
- GetBucketVersioning: AWS answers with a `VersioningConfiguration` root element; moto's
  generic serializer names it `GetBucketVersioningResponse`, which strict XML clients (the
  AWS SDK for Rust) refuse.
"""

from __future__ import annotations

import functools

import xmltodict
from moto.s3.responses import S3Response


def _create_time_tags(body: bytes | str | None) -> dict[str, str]:
    if not body:
        return {}
    try:
        config = xmltodict.parse(body).get("CreateBucketConfiguration") or {}
    except Exception:  # a malformed body is moto's to refuse, not ours
        return {}
    tags = (config.get("Tags") or {}).get("Tag") or []
    if isinstance(tags, dict):
        tags = [tags]
    return {t["Key"]: t.get("Value") or "" for t in tags if isinstance(t, dict) and "Key" in t}


def install() -> None:
    original = S3Response._bucket_response_put

    @functools.wraps(original)
    def bucket_response_put(self, request, bucket_name, querystring):
        result = original(self, request, bucket_name, querystring)
        if not querystring:
            tags = _create_time_tags(self.body)
            if tags:
                self.backend.put_bucket_tagging(bucket_name, tags)
        return result

    S3Response._bucket_response_put = bucket_response_put
    S3Response.get_bucket_versioning = _get_bucket_versioning


def _get_bucket_versioning(self):
    status = self.backend.get_bucket_versioning(self.bucket_name)
    self.data["Action"] = "GetBucketVersioning"
    inner = f"<Status>{status}</Status>" if status else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</VersioningConfiguration>'
    )
    return 200, {}, body
