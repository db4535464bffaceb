"""SageMaker AddTags / ListTags / DeleteTags for every resource the emulator knows.

moto resolves a tagged ARN by splitting it on exactly one `/`, so a model
package ARN (`model-package/<group>/<version>`) crashes it (HTTP 500), an
unknown ARN crashes it too, and user profiles, apps and spaces live in this
extension, not in moto. AddTags also appends a second value for an existing
key, where AWS replaces the value.
"""

from __future__ import annotations

from moto.sagemaker.exceptions import ValidationError

from .core import Call, operation, table

_RECORD_KINDS = {"user-profile": "UserProfileArn", "space": "SpaceArn", "app": "AppArn"}


def _resource(call: Call, arn: str):
    """The moto object or extension record that carries the tags of `arn`."""
    kind = arn.split(":", 5)[-1].split("/", 1)[0]
    if kind in _RECORD_KINDS:
        records = table(kind, *call.scope).values()
        resource = next((r for r in records if r[_RECORD_KINDS[kind]] == arn), None)
    elif kind == "model-package":
        resource = call.backend.model_packages.get(arn)
    else:
        try:
            resource = call.backend._get_resource_from_arn(arn)
        except (ValueError, AttributeError, ValidationError):
            resource = None
    if resource is None:
        raise ValidationError(f"Could not find resource {arn}.")
    return resource


def _tags(resource) -> list[dict]:
    return (resource["Tags"] if isinstance(resource, dict) else resource.tags) or []


def _set_tags(resource, tags: list[dict]) -> None:
    if isinstance(resource, dict):
        resource["Tags"] = tags
    else:
        resource.tags = tags


@operation
def add_tags(call: Call) -> dict:
    resource = _resource(call, call.param("ResourceArn"))
    values = {tag["Key"]: tag.get("Value", "") for tag in _tags(resource)}
    values.update({tag["Key"]: tag.get("Value", "") for tag in call.param("Tags") or []})
    _set_tags(resource, [{"Key": key, "Value": value} for key, value in values.items()])
    return {"Tags": _tags(resource)}


@operation
def list_tags(call: Call) -> dict:
    return {"Tags": _tags(_resource(call, call.param("ResourceArn")))}


@operation
def delete_tags(call: Call) -> None:
    resource = _resource(call, call.param("ResourceArn"))
    doomed = set(call.param("TagKeys") or [])
    _set_tags(resource, [tag for tag in _tags(resource) if tag["Key"] not in doomed])
