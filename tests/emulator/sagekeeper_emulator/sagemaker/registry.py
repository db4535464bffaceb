"""The model registry: group policies, deletes, and version numbers that are never reused.

moto lacks Put/Get/DeleteModelPackageGroupPolicy, DeleteModelPackageGroup and
DeleteModelPackage, silently replaces a model package group created twice, and
numbers a new version "versions in the group + 1", which would reuse (and
overwrite) a number once a version was deleted. Errors follow AWS: a duplicate
group is a ValidationException naming it; policy calls on an unknown group or a
group without a policy are ValidationExceptions ("Cannot find Model Package
Group" / "Cannot find resource policy"); deleting a group that still holds
versions is a ConflictException.
"""

from __future__ import annotations

import functools

from moto.sagemaker.exceptions import ConflictException, ValidationError
from moto.sagemaker.models import PAGINATION_MODEL, ModelPackage, SageMakerModelBackend
from moto.utilities.paginator import paginate

from ..policies import parse
from .core import Call, operation, table


@operation
def create_model_package_group(call: Call):
    name = call.param("ModelPackageGroupName")
    if name in call.backend.model_package_groups:
        raise ValidationError(f"Model Package Group already exists: {call.arn('model-package-group', name)}")
    return call.original()


@operation
def delete_model_package_group(call: Call) -> None:
    name = call.param("ModelPackageGroupName")
    group = call.backend.describe_model_package_group(name)
    if any(p.model_package_group_name == name for p in call.backend.model_packages.values()):
        raise ConflictException(
            f"Model Package Group {group.arn} contains model packages. "
            "Delete all model packages in the group before deleting the group."
        )
    del call.backend.model_package_groups[name]
    table("group-policy", *call.scope).pop(name, None)
    table("group-version", *call.scope).pop(name, None)


def _policy_group(call: Call):
    name = call.param("ModelPackageGroupName")
    group = call.backend.model_package_groups.get(name)
    if group is None:
        raise ValidationError(f"Cannot find Model Package Group: {call.arn('model-package-group', name)}")
    return group


def _policy(call: Call) -> tuple[object, str]:
    group = _policy_group(call)
    policy = table("group-policy", *call.scope).get(group.model_package_group_name)
    if policy is None:
        raise ValidationError(f"Cannot find resource policy for: {group.arn}")
    return group, policy


@operation
def put_model_package_group_policy(call: Call) -> dict:
    group, policy = _policy_group(call), call.param("ResourcePolicy")
    if parse(policy) is None:
        raise ValidationError("The resource policy is not valid JSON.")
    table("group-policy", *call.scope)[group.model_package_group_name] = policy
    return {"ModelPackageGroupArn": group.arn}


@operation
def get_model_package_group_policy(call: Call) -> dict:
    return {"ResourcePolicy": _policy(call)[1]}


@operation
def delete_model_package_group_policy(call: Call) -> None:
    group, _ = _policy(call)
    del table("group-policy", *call.scope)[group.model_package_group_name]


@operation
def delete_model_package(call: Call) -> None:
    package = call.backend.describe_model_package(call.param("ModelPackageName"))
    del call.backend.model_packages[package.arn]
    mapping = call.backend.model_package_name_mapping
    for name in [n for n, arn in mapping.items() if arn == package.arn]:
        del mapping[name]


@operation
def update_model_package(call: Call) -> dict:
    package = call.backend.describe_model_package(call.param("ModelPackageArn"))
    if call.param("ModelApprovalStatus") is not None:
        package.set_model_approval_status(call.param("ModelApprovalStatus"))
    if call.param("ApprovalDescription") is not None:
        package.approval_description = call.param("ApprovalDescription")
    properties = dict(package.customer_metadata_properties or {})
    properties.update(call.param("CustomerMetadataProperties") or {})
    for key in call.param("CustomerMetadataPropertiesToRemove") or []:
        properties.pop(key, None)
    package.customer_metadata_properties = properties or None
    if call.param("AdditionalInferenceSpecificationsToAdd"):
        package.add_additional_inference_specifications(call.param("AdditionalInferenceSpecificationsToAdd"))
    package.modifications_done()
    return {"ModelPackageArn": package.arn}


def _ordered_by_creation(list_model_packages):
    """moto's filtering; then creation order, with the version number breaking ties."""

    @functools.wraps(list_model_packages)
    def ordered(self: SageMakerModelBackend, next_token=None, max_results=None, **kwargs) -> list:
        packages = list_model_packages(self, **kwargs)  # the paginator pages what this returns
        if kwargs.get("sort_by") in (None, "CreationTime"):
            packages = sorted(
                packages,
                key=lambda p: (p.creation_time, p.model_package_version or 0),
                reverse=kwargs.get("sort_order") == "Descending",
            )
        return packages

    return ordered


def _never_reused_versions(original):
    @functools.wraps(original)
    def create_model_package(self: SageMakerModelBackend, **kwargs):
        group = kwargs.get("model_package_group_name")
        if not group or kwargs.get("model_package_name") or group not in self.model_package_groups:
            return original(self, **kwargs)  # unversioned, or moto's validation errors
        highest = table("group-version", self.account_id, self.region_name)
        live = [
            p.model_package_version
            for p in self.model_packages.values()
            if p.model_package_group_name == group
        ]
        highest[group] = max([highest.get(group, 0), *live]) + 1
        package = ModelPackage(
            **{
                **kwargs,
                "model_package_name": group,
                "model_package_version": highest[group],
                "model_package_type": "Versioned",
                "approval_description": None,
                "region_name": self.region_name,
                "account_id": self.account_id,
            }
        )
        self.model_package_name_mapping[group] = package.arn
        self.model_package_name_mapping[package.arn] = package.arn
        self.model_packages[package.arn] = package
        return package.arn

    return create_model_package


def install() -> None:
    """Patch moto's model package creation so version numbers are never reused, and its
    listing (under moto's paginator) so equal creation times sort by version."""
    SageMakerModelBackend.create_model_package = _never_reused_versions(
        SageMakerModelBackend.create_model_package
    )
    SageMakerModelBackend.list_model_packages = paginate(PAGINATION_MODEL)(
        _ordered_by_creation(SageMakerModelBackend.list_model_packages.__wrapped__)
    )
