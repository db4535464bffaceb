"""SageMaker Studio: domains as AWS makes them, and user profiles, apps and spaces.

moto's CreateDomain derives the DomainId from the name (`d-<name>`), so a second
domain of the same name silently replaces the first; it is InService at once,
creates no network resources, and DescribeDomain/DeleteDomain of an unknown id
give ValidationException. moto has no UpdateDomain and no user profiles, apps
or spaces. Here: random ids, ResourceInUse for a duplicate name, a Pending
window (domainPendingSeconds), the two NFS security groups SageMaker creates in
the domain's VPC, ResourceNotFound for unknown ids, and DeleteDomain refused
while user profiles or spaces remain (as DeleteUserProfile and DeleteSpace are
while apps or owned spaces remain), so teardown order is exercised.
"""

from __future__ import annotations

import random
import string

from moto.core.utils import utcnow
from moto.ec2.exceptions import InvalidVPCIdError
from moto.sagemaker.exceptions import ResourceInUseException, ResourceNotFound, ValidationError

from ..ec2 import create_nfs_security_groups
from .core import Call, listing, merged, operation, table, timeline

_LIVE_APP = ("InService", "Pending")


def _random(alphabet: str, size: int) -> str:
    return "".join(random.choices(alphabet, k=size))


def _domain(call: Call):
    domain_id = call.param("DomainId")
    domain = call.backend.domains.get(domain_id)
    if domain is None:
        raise ResourceNotFound(f"Cannot find Domain with id: {domain_id}")
    return domain


# --- domains -----------------------------------------------------------------


@operation
def create_domain(call: Call) -> dict:
    name, vpc_id = call.param("DomainName"), call.param("VpcId")
    if any(d.domain_name == name for d in call.backend.domains.values()):
        raise ResourceInUseException(
            f"Resource Already Exists: Domain with name {name} already exists. Choose a different name."
        )
    domain_id = "d-" + _random(string.ascii_lowercase + string.digits, 12)
    arn = call.arn("domain", domain_id)
    try:
        inbound_sg, _ = create_nfs_security_groups(*call.scope, vpc_id, domain_id, arn)
    except InvalidVPCIdError:
        raise ValidationError(f"The VPC ID '{vpc_id}' does not exist")
    call.original()
    domain = call.backend.domains.pop(f"d-{name}")
    domain.id, domain.arn = domain_id, arn
    domain.url = f"https://{domain_id}.studio.{call.scope[1]}.sagemaker.aws"
    domain.home_efs_file_system_id = "fs-" + _random("0123456789abcdef", 17)
    domain.security_group_id_for_domain_boundary = inbound_sg
    call.backend.domains[domain_id] = domain
    domain.status = "Pending"
    timeline.schedule(call.scope, arn, call.config.domainPendingSeconds, lambda due: _in_service(domain, due))
    return {"DomainArn": arn, "Url": domain.url}


def _in_service(domain, due) -> None:
    domain.status, domain.last_modified_time = "InService", due


@operation
def describe_domain(call: Call):
    _domain(call)
    return call.original()


@operation
def update_domain(call: Call) -> dict:
    domain = _domain(call)
    domain.default_user_settings = merged(domain.default_user_settings, call.param("DefaultUserSettings"))
    domain.default_space_settings = merged(domain.default_space_settings, call.param("DefaultSpaceSettings"))
    update = dict(call.param("DomainSettingsForUpdate") or {})
    if "RStudioServerProDomainSettingsForUpdate" in update:
        update["RStudioServerProDomainSettings"] = update.pop("RStudioServerProDomainSettingsForUpdate")
    domain.domain_settings = merged(domain.domain_settings, update)
    for param, attribute in (
        ("SubnetIds", "subnet_ids"),
        ("AppNetworkAccessType", "app_network_access_type"),
        ("AppSecurityGroupManagement", "app_security_group_management"),
    ):
        if call.param(param) is not None:
            setattr(domain, attribute, call.param(param))
    domain.last_modified_time = utcnow()
    return {"DomainArn": domain.arn}


@operation
def delete_domain(call: Call):
    domain = _domain(call)
    if any(key[0] == domain.id for kind in ("user-profile", "space") for key in table(kind, *call.scope)):
        raise ResourceInUseException(
            f"Domain {domain.id} cannot be deleted while it has user profiles or spaces. Delete them first."
        )
    timeline.cancel(call.scope, domain.arn)
    apps = table("app", *call.scope)
    for key in [k for k in apps if k[0] == domain.id]:
        del apps[key]
    return call.original()


# --- user profiles -----------------------------------------------------------


def _profile(call: Call) -> dict:
    key = (call.param("DomainId"), call.param("UserProfileName"))
    profile = table("user-profile", *call.scope).get(key)
    if profile is None:
        raise ResourceNotFound(f"User profile {key[1]} does not exist in domain {key[0]}")
    return profile


@operation
def create_user_profile(call: Call) -> dict:
    domain, name = _domain(call), call.param("UserProfileName")
    profiles = table("user-profile", *call.scope)
    if (domain.id, name) in profiles:
        raise ResourceInUseException(
            f"Resource Already Exists: UserProfile with name {name} already exists. Choose a different name."
        )
    now = utcnow()
    profiles[(domain.id, name)] = {
        "DomainId": domain.id,
        "UserProfileArn": call.arn("user-profile", f"{domain.id}/{name}"),
        "UserProfileName": name,
        "HomeEfsFileSystemUid": str(200000 + len(profiles)),
        "Status": "InService",
        "CreationTime": now,
        "LastModifiedTime": now,
        "SingleSignOnUserIdentifier": call.param("SingleSignOnUserIdentifier"),
        "SingleSignOnUserValue": call.param("SingleSignOnUserValue"),
        "UserSettings": call.param("UserSettings") or {},
        "Tags": call.param("Tags") or [],
    }
    return {"UserProfileArn": profiles[(domain.id, name)]["UserProfileArn"]}


@operation
def describe_user_profile(call: Call) -> dict:
    return _profile(call)


@operation
def update_user_profile(call: Call) -> dict:
    profile = _profile(call)
    profile["UserSettings"] = merged(profile["UserSettings"], call.param("UserSettings"))
    profile["LastModifiedTime"] = utcnow()
    return {"UserProfileArn": profile["UserProfileArn"]}


@operation
def delete_user_profile(call: Call) -> None:
    profile = _profile(call)
    domain_id, name = profile["DomainId"], profile["UserProfileName"]
    apps = [a for a in table("app", *call.scope).values() if a.get("UserProfileName") == name]
    spaces = [
        s
        for s in table("space", *call.scope).values()
        if (s.get("OwnershipSettings") or {}).get("OwnerUserProfileName") == name
    ]
    if any(a["DomainId"] == domain_id and a["Status"] in _LIVE_APP for a in apps) or any(
        s["DomainId"] == domain_id for s in spaces
    ):
        raise ResourceInUseException(
            f"User profile {name} has apps or spaces that are not deleted. Delete them first."
        )
    del table("user-profile", *call.scope)[(domain_id, name)]


@operation
def list_user_profiles(call: Call) -> dict:
    domain_id, contains = call.param("DomainIdEquals"), call.param("UserProfileNameContains") or ""
    profiles = [
        p
        for p in table("user-profile", *call.scope).values()
        if domain_id in (None, p["DomainId"]) and contains in p["UserProfileName"]
    ]
    return listing(call, profiles, "UserProfiles")


# --- spaces ------------------------------------------------------------------


def _space(call: Call) -> dict:
    key = (call.param("DomainId"), call.param("SpaceName"))
    space = table("space", *call.scope).get(key)
    if space is None:
        raise ResourceNotFound(f"Space {key[1]} does not exist in domain {key[0]}")
    return space


@operation
def create_space(call: Call) -> dict:
    domain, name = _domain(call), call.param("SpaceName")
    spaces = table("space", *call.scope)
    if (domain.id, name) in spaces:
        raise ResourceInUseException(
            f"Resource Already Exists: Space with name {name} already exists. Choose a different name."
        )
    ownership, sharing = call.param("OwnershipSettings"), call.param("SpaceSharingSettings")
    now = utcnow()
    spaces[(domain.id, name)] = {
        "DomainId": domain.id,
        "SpaceArn": call.arn("space", f"{domain.id}/{name}"),
        "SpaceName": name,
        "HomeEfsFileSystemUid": str(300000 + len(spaces)),
        "Status": "InService",
        "CreationTime": now,
        "LastModifiedTime": now,
        "SpaceSettings": call.param("SpaceSettings") or {},
        "OwnershipSettings": ownership,
        "OwnershipSettingsSummary": ownership,
        "SpaceSharingSettings": sharing,
        "SpaceSharingSettingsSummary": sharing,
        "SpaceDisplayName": call.param("SpaceDisplayName"),
        "Url": f"{domain.url}/spaces/{name}",
        "Tags": call.param("Tags") or [],
    }
    return {"SpaceArn": spaces[(domain.id, name)]["SpaceArn"]}


@operation
def describe_space(call: Call) -> dict:
    return _space(call)


@operation
def delete_space(call: Call) -> None:
    space = _space(call)
    key = (space["DomainId"], space["SpaceName"])
    if any(
        a["DomainId"] == key[0] and a.get("SpaceName") == key[1] and a["Status"] in _LIVE_APP
        for a in table("app", *call.scope).values()
    ):
        raise ResourceInUseException(f"Space {key[1]} has apps that are not deleted. Delete them first.")
    del table("space", *call.scope)[key]


@operation
def list_spaces(call: Call) -> dict:
    domain_id, contains = call.param("DomainIdEquals"), call.param("SpaceNameContains") or ""
    spaces = [
        s
        for s in table("space", *call.scope).values()
        if domain_id in (None, s["DomainId"]) and contains in s["SpaceName"]
    ]
    return listing(call, spaces, "Spaces")


# --- apps --------------------------------------------------------------------


def _app_key(call: Call) -> tuple:
    profile, space = call.param("UserProfileName"), call.param("SpaceName")
    if bool(profile) == bool(space):
        raise ValidationError("Exactly one of UserProfileName and SpaceName must be specified.")
    owner = ("UserProfileName", profile) if profile else ("SpaceName", space)
    return (call.param("DomainId"), *owner, call.param("AppType"), call.param("AppName"))


def _app(call: Call) -> dict:
    key = _app_key(call)
    app = table("app", *call.scope).get(key)
    if app is None:
        raise ResourceNotFound(
            f"App {key[4]} of type {key[3]} does not exist for {key[2]} in domain {key[0]}"
        )
    return app


@operation
def create_app(call: Call) -> dict:
    domain_id, owner_field, owner, app_type, name = key = _app_key(call)
    owners = table("user-profile" if owner_field == "UserProfileName" else "space", *call.scope)
    if (domain_id, owner) not in owners:
        raise ResourceNotFound(f"{owner_field[:-4]} {owner} does not exist in domain {domain_id}")
    apps = table("app", *call.scope)
    if key in apps and apps[key]["Status"] != "Deleted":
        raise ResourceInUseException(f"App {name} of type {app_type} already exists for {owner}.")
    apps[key] = {
        "AppArn": call.arn("app", f"{domain_id}/{owner}/{app_type.lower()}/{name}"),
        "AppType": app_type,
        "AppName": name,
        "DomainId": domain_id,
        owner_field: owner,
        "Status": "InService",
        "CreationTime": utcnow(),
        "ResourceSpec": call.param("ResourceSpec"),
        "Tags": call.param("Tags") or [],
    }
    return {"AppArn": apps[key]["AppArn"]}


@operation
def describe_app(call: Call) -> dict:
    return _app(call)


@operation
def delete_app(call: Call) -> None:
    app = _app(call)
    if app["Status"] == "Deleted":
        raise ResourceNotFound(f"App {app['AppName']} is already deleted")
    # AWS keeps deleted apps listed (Status Deleted) for a while; they block nothing.
    app["Status"] = "Deleted"


@operation
def list_apps(call: Call) -> dict:
    wanted = {
        "DomainId": call.param("DomainIdEquals"),
        "UserProfileName": call.param("UserProfileNameEquals"),
        "SpaceName": call.param("SpaceNameEquals"),
    }
    apps = [
        a
        for a in table("app", *call.scope).values()
        if all(value in (None, a.get(field)) for field, value in wanted.items())
    ]
    return listing(call, apps, "Apps")
