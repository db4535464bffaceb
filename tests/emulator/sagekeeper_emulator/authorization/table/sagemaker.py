"""SageMaker: names in ARNs are lower-case, as SageMaker writes them. Model packages and their
groups are authorized against the group's resource policy as well (how target accounts use the
dev account's registry). Implied authorizations: iam:PassRole (to sagemaker.amazonaws.com) for
every role a request passes, sagemaker:AddTags when a resource is created with tags, and for
the key a domain or endpoint config is created with, kms:CreateGrant (a grant for an AWS
resource) and kms:DescribeKey via SageMaker. CreateModel from a model package is also
authorized on the package, in the account that owns it.
"""

from __future__ import annotations

from .. import resources
from ..evaluation import Policy
from . import RESOURCE_TAG, TAG_KEYS, Ctx, grant, operation
from .kms import CALLER, VIA, key_check

SERVICE = "sagemaker.amazonaws.com"
PASS = grant("iam:PassRole", "role", *RESOURCE_TAG, "iam:PassedToService", "iam:AssociatedResourceArn")
SUBNETS, GROUPS = "sagemaker:VpcSubnets", "sagemaker:VpcSecurityGroupIds"
# Set on the AddTags a create with tags implies (the create action's name), absent on AddTags
# itself: how a policy lets a principal tag what it creates without tagging what exists.
TAGGING_ACTION = "sagemaker:TaggingAction"


def arn(ctx: Ctx, kind: str, name: str, account: str | None = None, region: str | None = None) -> str:
    return ctx.arn("sagemaker", f"{kind}/{name.lower()}", account, region)


def on(
    ctx: Ctx, action: str, kind: str, resource: str, *, keys=None, request_tags=None, policy=None, account=None, exists=None
):
    """A check on a SageMaker resource (existing ones with their tags). A request carrying tags
    creates the resource, unless `exists` says it is an existing one (the group a version goes to)."""
    existing = request_tags is None if exists is None else exists
    tags = resources.sagemaker_tags(resource) if existing else {}
    return ctx.check(
        action,
        kind,
        resource,
        keys=keys,
        request_tags=request_tags,
        resource_tags=tags,
        account=account or resource.split(":")[4],
        policy=policy,
        policy_kind="optional" if policy else "none",
    )


def passes(ctx: Ctx, resource: str, *roles) -> list:
    """iam:PassRole of each role the request passes, for `resource`."""
    checks = []
    for role_arn in dict.fromkeys(r for r in roles if r):
        role = resources.role_from_arn(role_arn)
        checks.append(
            ctx.check(
                "iam:PassRole",
                "role",
                role.arn if role else role_arn,
                keys={"iam:PassedToService": [SERVICE], "iam:AssociatedResourceArn": [resource]},
                resource_tags=resources.role_tags(role),
                account=role_arn.split(":")[4] if role_arn.count(":") >= 5 else None,
            )
        )
    return checks


def tagged(ctx: Ctx, kind: str, resource: str, tags: dict[str, str]) -> list:
    """sagemaker:AddTags for a resource created with tags, with the create action as
    sagemaker:TaggingAction."""
    if not tags:
        return []
    return [on(ctx, "sagemaker:AddTags", kind, resource, request_tags=tags, keys={TAGGING_ACTION: [ctx.request.operation]})]


def key_for_service(ctx: Ctx, key_id: str | None) -> list:
    """What SageMaker does with a key it is given: a grant for the resource, and DescribeKey."""
    via = f"sagemaker.{ctx.region}.amazonaws.com"
    grant_keys = {"kms:GrantIsForAWSResource": ["true"]}
    found = [key_check(ctx, "kms:CreateGrant", key_id, keys=grant_keys, via=via), key_check(ctx, "kms:DescribeKey", key_id, via=via)]
    return [c for c in found if c]


KMS_FOR_SERVICE = (
    grant("kms:CreateGrant", "key", CALLER, VIA, *RESOURCE_TAG, "kms:GrantIsForAWSResource"),
    grant("kms:DescribeKey", "key", CALLER, VIA, *RESOURCE_TAG),
)


def _simple(name: str, kind: str, resource, *keys: str):
    """An operation on one existing resource; `resource(ctx)` gives its ARN."""
    action = f"sagemaker:{name}"

    @operation("sagemaker", name, grant(action, kind, *RESOURCE_TAG, *keys))
    def entry(ctx: Ctx):
        return [on(ctx, action, kind, resource(ctx))]

    return entry


def _named(kind: str, parameter: str):
    return lambda ctx: arn(ctx, kind, ctx.param(parameter) or "")


def _listing(name: str):
    action = f"sagemaker:{name}"

    @operation("sagemaker", name, grant(action))
    def entry(ctx: Ctx):
        return [ctx.check(action, None)]

    return entry


for _name in (
    "ListDomains",
    "ListUserProfiles",
    "ListApps",
    "ListSpaces",
    "ListModels",
    "ListEndpointConfigs",
    "ListEndpoints",
    "ListModelPackageGroups",
    "ListPipelines",
):
    _listing(_name)

# --- Studio --------------------------------------------------------------------------

_domain = _named("domain", "DomainId")


def _profile(ctx: Ctx) -> str:
    return arn(ctx, "user-profile", f"{ctx.param('DomainId') or ''}/{ctx.param('UserProfileName') or ''}")


def _space(ctx: Ctx) -> str:
    return arn(ctx, "space", f"{ctx.param('DomainId') or ''}/{ctx.param('SpaceName') or ''}")


def _app(ctx: Ctx) -> str:
    owner = ctx.param("UserProfileName") or ctx.param("SpaceName") or ""
    name = f"{ctx.param('DomainId') or ''}/{owner}/{ctx.param('AppType') or ''}/{ctx.param('AppName') or ''}"
    return arn(ctx, "app", name)


for _name in ("DescribeDomain", "DeleteDomain"):
    _simple(_name, "domain", _domain)
for _name in ("DescribeUserProfile", "DeleteUserProfile", "CreatePresignedDomainUrl"):
    _simple(_name, "user-profile", _profile)
for _name in ("DescribeSpace", "DeleteSpace"):
    _simple(_name, "space", _space)
for _name in ("DescribeApp", "DeleteApp"):
    _simple(_name, "app", _app)


def _user_settings_roles(settings) -> list[str]:
    settings = settings or {}
    return [settings.get("ExecutionRole")] if isinstance(settings, dict) else []


@operation(
    "sagemaker",
    "CreateDomain",
    grant("sagemaker:CreateDomain", "domain", *TAG_KEYS, SUBNETS, GROUPS, "sagemaker:AppNetworkAccessType", "sagemaker:VolumeKmsKey"),
    grant("sagemaker:AddTags", "domain", *TAG_KEYS, TAGGING_ACTION),
    PASS,
    *KMS_FOR_SERVICE,
)
def create_domain(ctx: Ctx):
    resource = arn(ctx, "domain", "*")
    tags = ctx.json_tags()
    keys = {
        SUBNETS: ctx.param("SubnetIds"),
        GROUPS: ctx.param("DefaultUserSettings.SecurityGroups"),
        "sagemaker:AppNetworkAccessType": [ctx.param("AppNetworkAccessType") or "PublicInternetOnly"],
        "sagemaker:VolumeKmsKey": [ctx.param("KmsKeyId")] if ctx.param("KmsKeyId") else None,
    }
    roles = _user_settings_roles(ctx.param("DefaultUserSettings")) + _user_settings_roles(ctx.param("DefaultSpaceSettings"))
    return (
        [on(ctx, "sagemaker:CreateDomain", "domain", resource, keys=keys, request_tags=tags)]
        + tagged(ctx, "domain", resource, tags)
        + passes(ctx, resource, *roles)
        + key_for_service(ctx, ctx.param("KmsKeyId"))
    )


@operation(
    "sagemaker",
    "UpdateDomain",
    grant("sagemaker:UpdateDomain", "domain", *RESOURCE_TAG, SUBNETS, GROUPS, "sagemaker:AppNetworkAccessType"),
    PASS,
)
def update_domain(ctx: Ctx):
    resource = _domain(ctx)
    keys = {
        SUBNETS: ctx.param("SubnetIds"),
        GROUPS: ctx.param("DefaultUserSettings.SecurityGroups"),
        "sagemaker:AppNetworkAccessType": [ctx.param("AppNetworkAccessType")] if ctx.param("AppNetworkAccessType") else None,
    }
    roles = _user_settings_roles(ctx.param("DefaultUserSettings")) + _user_settings_roles(ctx.param("DefaultSpaceSettings"))
    return [on(ctx, "sagemaker:UpdateDomain", "domain", resource, keys=keys)] + passes(ctx, resource, *roles)


@operation(
    "sagemaker",
    "CreateUserProfile",
    grant("sagemaker:CreateUserProfile", "user-profile", *TAG_KEYS, GROUPS),
    grant("sagemaker:AddTags", "user-profile", *TAG_KEYS, TAGGING_ACTION),
    PASS,
)
def create_user_profile(ctx: Ctx):
    resource, tags = _profile(ctx), ctx.json_tags()
    keys = {GROUPS: ctx.param("UserSettings.SecurityGroups")}
    return (
        [on(ctx, "sagemaker:CreateUserProfile", "user-profile", resource, keys=keys, request_tags=tags)]
        + tagged(ctx, "user-profile", resource, tags)
        + passes(ctx, resource, *_user_settings_roles(ctx.param("UserSettings")))
    )


@operation("sagemaker", "UpdateUserProfile", grant("sagemaker:UpdateUserProfile", "user-profile", *RESOURCE_TAG, GROUPS), PASS)
def update_user_profile(ctx: Ctx):
    resource = _profile(ctx)
    keys = {GROUPS: ctx.param("UserSettings.SecurityGroups")}
    return [on(ctx, "sagemaker:UpdateUserProfile", "user-profile", resource, keys=keys)] + passes(
        ctx, resource, *_user_settings_roles(ctx.param("UserSettings"))
    )


@operation("sagemaker", "CreateSpace", grant("sagemaker:CreateSpace", "space", *TAG_KEYS), grant("sagemaker:AddTags", "space", *TAG_KEYS, TAGGING_ACTION))
def create_space(ctx: Ctx):
    resource, tags = _space(ctx), ctx.json_tags()
    return [on(ctx, "sagemaker:CreateSpace", "space", resource, request_tags=tags)] + tagged(ctx, "space", resource, tags)


@operation("sagemaker", "CreateApp", grant("sagemaker:CreateApp", "app", *TAG_KEYS), grant("sagemaker:AddTags", "app", *TAG_KEYS, TAGGING_ACTION))
def create_app(ctx: Ctx):
    resource, tags = _app(ctx), ctx.json_tags()
    return [on(ctx, "sagemaker:CreateApp", "app", resource, request_tags=tags)] + tagged(ctx, "app", resource, tags)


# --- tags on any resource ------------------------------------------------------------

_TAGGABLE = (
    "domain",
    "user-profile",
    "space",
    "app",
    "model",
    "endpoint-config",
    "endpoint",
    "model-package-group",
    "model-package",
    "pipeline",
    "pipeline-execution",
)


def _kind_of(resource: str) -> str:
    kind = resource.split(":", 5)[-1].split("/", 1)[0]
    return "pipeline-execution" if kind == "pipeline" and "/execution/" in resource else kind


def _tag_operation(name: str, *keys: str):
    action = f"sagemaker:{name}"
    # The reference lists pipeline executions for ListTags only.
    kinds = _TAGGABLE if name == "ListTags" else [k for k in _TAGGABLE if k != "pipeline-execution"]

    @operation("sagemaker", name, *[grant(action, kind, *RESOURCE_TAG, *keys) for kind in kinds])
    def entry(ctx: Ctx):
        resource = ctx.param("ResourceArn") or ""
        check = on(ctx, action, _kind_of(resource), resource)
        if name == "AddTags":
            check.keys.update(ctx.check(action, None, request_tags=ctx.json_tags()).keys)
        elif name == "DeleteTags":
            check.keys["aws:tagkeys"] = list(ctx.param("TagKeys") or [])
        return [check]

    return entry


_tag_operation("AddTags", *TAG_KEYS, TAGGING_ACTION)
_tag_operation("ListTags")
_tag_operation("DeleteTags", "aws:TagKeys")

# --- the model registry ----------------------------------------------------------------


def _group_policy(account: str, region: str, group: str) -> Policy | None:
    document = resources.group_policy(account, region, group)
    return Policy(f"resource policy of model package group {group}", document) if document else None


def _group_check(ctx: Ctx, action: str, group: str, **extra):
    resource = arn(ctx, "model-package-group", group)
    return on(ctx, action, "model-package-group", resource, policy=_group_policy(ctx.account, ctx.region, group), **extra)


def _group_operation(name: str):
    action = f"sagemaker:{name}"

    @operation("sagemaker", name, grant(action, "model-package-group", *RESOURCE_TAG))
    def entry(ctx: Ctx):
        return [_group_check(ctx, action, ctx.param("ModelPackageGroupName") or "")]

    return entry


for _name in (
    "DescribeModelPackageGroup",
    "DeleteModelPackageGroup",
    "GetModelPackageGroupPolicy",
    "PutModelPackageGroupPolicy",
    "DeleteModelPackageGroupPolicy",
):
    _group_operation(_name)


@operation(
    "sagemaker",
    "CreateModelPackageGroup",
    grant("sagemaker:CreateModelPackageGroup", "model-package-group", *TAG_KEYS),
    grant("sagemaker:AddTags", "model-package-group", *TAG_KEYS, TAGGING_ACTION),
)
def create_model_package_group(ctx: Ctx):
    resource, tags = arn(ctx, "model-package-group", ctx.param("ModelPackageGroupName") or ""), ctx.json_tags()
    return [on(ctx, "sagemaker:CreateModelPackageGroup", "model-package-group", resource, request_tags=tags)] + tagged(
        ctx, "model-package-group", resource, tags
    )


def package_check(ctx: Ctx, action: str, name: str, keys=None):
    """A check on a model package named by name or ARN, with its group's policy."""
    if name.startswith("arn:"):
        parts = name.split(":", 5)
        region, account, path = parts[3], parts[4], parts[5].split("/", 1)[-1]
    else:
        region, account, path = ctx.region, ctx.account, name
    group = path.split("/")[0]
    resource = ctx.arn("sagemaker", f"model-package/{path.lower()}", account, region)
    return on(ctx, action, "model-package", resource, keys=keys, policy=_group_policy(account, region, group), account=account)


def _package_operation(name: str):
    action = f"sagemaker:{name}"

    @operation("sagemaker", name, grant(action, "model-package", *RESOURCE_TAG))
    def entry(ctx: Ctx):
        return [package_check(ctx, action, ctx.param("ModelPackageName") or "")]

    return entry


_package_operation("DescribeModelPackage")
_package_operation("DeleteModelPackage")


@operation("sagemaker", "UpdateModelPackage", grant("sagemaker:UpdateModelPackage", "model-package", *RESOURCE_TAG, "sagemaker:ModelApprovalStatus"))
def update_model_package(ctx: Ctx):
    status = ctx.param("ModelApprovalStatus")
    keys = {"sagemaker:ModelApprovalStatus": [status] if status else None}
    return [package_check(ctx, "sagemaker:UpdateModelPackage", ctx.param("ModelPackageArn") or "", keys)]


@operation(
    "sagemaker",
    "CreateModelPackage",
    grant("sagemaker:CreateModelPackage", "model-package", *RESOURCE_TAG, *TAG_KEYS, "sagemaker:ModelApprovalStatus"),
    grant("sagemaker:CreateModelPackage", "model-package-group", *RESOURCE_TAG, *TAG_KEYS, "sagemaker:ModelApprovalStatus"),
    grant("sagemaker:AddTags", "model-package", *TAG_KEYS, TAGGING_ACTION),
)
def create_model_package(ctx: Ctx):
    group, tags = ctx.param("ModelPackageGroupName") or "", ctx.json_tags()
    status = ctx.param("ModelApprovalStatus")
    keys = {"sagemaker:ModelApprovalStatus": [status] if status else None}
    if not group:  # an unversioned package
        resource = arn(ctx, "model-package", ctx.param("ModelPackageName") or "")
        return [on(ctx, "sagemaker:CreateModelPackage", "model-package", resource, keys=keys, request_tags=tags)]
    version = resources.next_version(ctx.account, ctx.region, group)
    resource = arn(ctx, "model-package", f"{group}/{version}")
    policy = _group_policy(ctx.account, ctx.region, group)
    package = on(ctx, "sagemaker:CreateModelPackage", "model-package", resource, keys=keys, request_tags=tags, policy=policy)
    in_group = _group_check(ctx, "sagemaker:CreateModelPackage", group, keys=keys, request_tags=tags, exists=True)
    return [package, in_group] + tagged(ctx, "model-package", resource, tags)


@operation("sagemaker", "ListModelPackages", grant("sagemaker:ListModelPackages", "model-package", *RESOURCE_TAG))
def list_model_packages(ctx: Ctx):
    group = ctx.param("ModelPackageGroupName")
    resource = arn(ctx, "model-package", f"{group}/*" if group else "*")
    return [ctx.check("sagemaker:ListModelPackages", "model-package", resource, policy=None)]


# --- hosting ----------------------------------------------------------------------------

for _name in ("DescribeModel", "DeleteModel"):
    _simple(_name, "model", _named("model", "ModelName"))
for _name in ("DescribeEndpointConfig", "DeleteEndpointConfig"):
    _simple(_name, "endpoint-config", _named("endpoint-config", "EndpointConfigName"))
for _name in ("DescribeEndpoint", "DeleteEndpoint"):
    _simple(_name, "endpoint", _named("endpoint", "EndpointName"))


@operation(
    "sagemaker",
    "CreateModel",
    grant("sagemaker:CreateModel", "model", *TAG_KEYS, SUBNETS, GROUPS, "sagemaker:NetworkIsolation"),
    grant("sagemaker:CreateModel", "model-package", *RESOURCE_TAG),
    grant("sagemaker:AddTags", "model", *TAG_KEYS, TAGGING_ACTION),
    PASS,
)
def create_model(ctx: Ctx):
    resource, tags = arn(ctx, "model", ctx.param("ModelName") or ""), ctx.json_tags()
    keys = {
        SUBNETS: ctx.param("VpcConfig.Subnets"),
        GROUPS: ctx.param("VpcConfig.SecurityGroupIds"),
        "sagemaker:NetworkIsolation": ["true" if ctx.param("EnableNetworkIsolation") else "false"],
    }
    containers = [ctx.param("PrimaryContainer") or {}] + list(ctx.param("Containers") or [])
    packages = [c.get("ModelPackageName") for c in containers if isinstance(c, dict) and c.get("ModelPackageName")]
    return (
        [on(ctx, "sagemaker:CreateModel", "model", resource, keys=keys, request_tags=tags)]
        + [package_check(ctx, "sagemaker:CreateModel", p) for p in packages]
        + tagged(ctx, "model", resource, tags)
        + passes(ctx, resource, ctx.param("ExecutionRoleArn"))
    )


# Jobs: what the preventive denies of the environment's roles judge. The keys are set as AWS
# sets them: the VPC's subnets and groups, the volume key only when given as an ARN (the key
# is ARN-typed), and inter-container encryption as the flag sent (absent when not sent).
JOB_KEYS = (SUBNETS, GROUPS, "sagemaker:VolumeKmsKeyArn", "sagemaker:InterContainerTrafficEncryption")


def _job_keys(ctx: Ctx, volume_key_param: str, encryption_param: str | None) -> dict:
    volume_key = ctx.param(volume_key_param)
    encryption = ctx.param(encryption_param) if encryption_param else None
    return {
        SUBNETS: ctx.param("VpcConfig.Subnets") or ctx.param("NetworkConfig.VpcConfig.Subnets"),
        GROUPS: ctx.param("VpcConfig.SecurityGroupIds") or ctx.param("NetworkConfig.VpcConfig.SecurityGroupIds"),
        "sagemaker:VolumeKmsKeyArn": [volume_key] if volume_key and volume_key.startswith("arn:") else None,
        "sagemaker:InterContainerTrafficEncryption": None if encryption is None else [str(bool(encryption)).lower()],
    }


def _job_operation(name: str, kind: str, name_param: str, volume_key_param: str, encryption_param: str | None):
    action = f"sagemaker:{name}"

    @operation(
        "sagemaker", name, grant(action, kind, *TAG_KEYS, *JOB_KEYS), grant("sagemaker:AddTags", kind, *TAG_KEYS, TAGGING_ACTION), PASS
    )
    def entry(ctx: Ctx):
        resource, tags = arn(ctx, kind, ctx.param(name_param) or ""), ctx.json_tags()
        keys = _job_keys(ctx, volume_key_param, encryption_param)
        return (
            [on(ctx, action, kind, resource, keys=keys, request_tags=tags)]
            + tagged(ctx, kind, resource, tags)
            + passes(ctx, resource, ctx.param("RoleArn"))
        )

    return entry


_job_operation(
    "CreateTrainingJob", "training-job", "TrainingJobName", "ResourceConfig.VolumeKmsKeyId",
    "EnableInterContainerTrafficEncryption",
)
_job_operation(
    "CreateProcessingJob", "processing-job", "ProcessingJobName", "ProcessingResources.ClusterConfig.VolumeKmsKeyId",
    "NetworkConfig.EnableInterContainerTrafficEncryption",
)


@operation(
    "sagemaker",
    "CreateEndpointConfig",
    grant("sagemaker:CreateEndpointConfig", "endpoint-config", *TAG_KEYS, "sagemaker:InstanceTypes", "sagemaker:ModelArn", "sagemaker:VolumeKmsKey"),
    grant("sagemaker:AddTags", "endpoint-config", *TAG_KEYS, TAGGING_ACTION),
    *KMS_FOR_SERVICE,
)
def create_endpoint_config(ctx: Ctx):
    resource, tags = arn(ctx, "endpoint-config", ctx.param("EndpointConfigName") or ""), ctx.json_tags()
    variants = [v for v in ctx.param("ProductionVariants") or [] if isinstance(v, dict)]
    keys = {
        "sagemaker:InstanceTypes": [v["InstanceType"] for v in variants if v.get("InstanceType")],
        "sagemaker:ModelArn": [arn(ctx, "model", v["ModelName"]) for v in variants if v.get("ModelName")],
        "sagemaker:VolumeKmsKey": [ctx.param("KmsKeyId")] if ctx.param("KmsKeyId") else None,
    }
    return (
        [on(ctx, "sagemaker:CreateEndpointConfig", "endpoint-config", resource, keys=keys, request_tags=tags)]
        + tagged(ctx, "endpoint-config", resource, tags)
        + key_for_service(ctx, ctx.param("KmsKeyId"))
    )


@operation(
    "sagemaker",
    "CreateEndpoint",
    grant("sagemaker:CreateEndpoint", "endpoint", *TAG_KEYS),
    grant("sagemaker:CreateEndpoint", "endpoint-config", *RESOURCE_TAG),
    grant("sagemaker:AddTags", "endpoint", *TAG_KEYS, TAGGING_ACTION),
)
def create_endpoint(ctx: Ctx):
    resource, tags = arn(ctx, "endpoint", ctx.param("EndpointName") or ""), ctx.json_tags()
    config = arn(ctx, "endpoint-config", ctx.param("EndpointConfigName") or "")
    return [
        on(ctx, "sagemaker:CreateEndpoint", "endpoint", resource, request_tags=tags),
        on(ctx, "sagemaker:CreateEndpoint", "endpoint-config", config),
    ] + tagged(ctx, "endpoint", resource, tags)


@operation(
    "sagemaker",
    "UpdateEndpoint",
    grant("sagemaker:UpdateEndpoint", "endpoint", *RESOURCE_TAG),
    grant("sagemaker:UpdateEndpoint", "endpoint-config", *RESOURCE_TAG),
)
def update_endpoint(ctx: Ctx):
    return [
        on(ctx, "sagemaker:UpdateEndpoint", "endpoint", arn(ctx, "endpoint", ctx.param("EndpointName") or "")),
        on(ctx, "sagemaker:UpdateEndpoint", "endpoint-config", arn(ctx, "endpoint-config", ctx.param("EndpointConfigName") or "")),
    ]


# --- pipelines ---------------------------------------------------------------------------

_pipeline = _named("pipeline", "PipelineName")
for _name in ("DescribePipeline", "DeletePipeline", "StartPipelineExecution", "ListPipelineExecutions"):
    _simple(_name, "pipeline", _pipeline)


def _execution(ctx: Ctx) -> str:
    given = ctx.param("PipelineExecutionArn") or ""
    head, _, execution = given.partition("/execution/")
    return f"{head.lower()}/execution/{execution}" if execution else given


for _name in ("DescribePipelineExecution", "StopPipelineExecution", "ListPipelineExecutionSteps"):
    _simple(_name, "pipeline-execution", _execution)


@operation(
    "sagemaker",
    "CreatePipeline",
    grant("sagemaker:CreatePipeline", "pipeline", *TAG_KEYS),
    grant("sagemaker:AddTags", "pipeline", *TAG_KEYS, TAGGING_ACTION),
    PASS,
)
def create_pipeline(ctx: Ctx):
    resource, tags = _pipeline(ctx), ctx.json_tags()
    return (
        [on(ctx, "sagemaker:CreatePipeline", "pipeline", resource, request_tags=tags)]
        + tagged(ctx, "pipeline", resource, tags)
        + passes(ctx, resource, ctx.param("RoleArn"))
    )


@operation("sagemaker", "UpdatePipeline", grant("sagemaker:UpdatePipeline", "pipeline", *RESOURCE_TAG), PASS)
def update_pipeline(ctx: Ctx):
    resource = _pipeline(ctx)
    return [on(ctx, "sagemaker:UpdatePipeline", "pipeline", resource)] + passes(ctx, resource, ctx.param("RoleArn"))
