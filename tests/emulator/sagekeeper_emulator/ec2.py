"""EC2 security groups: AWS's dependency rule, and the groups SageMaker makes;
interface VPC endpoints that take time.

moto deletes a security group even while another group's rule references it;
AWS refuses with DependencyViolation, which is why tearing down SageMaker's two
NFS groups (each referencing the other) needs the rules revoked first. moto's
CreateDomain makes no security groups at all; `create_nfs_security_groups`
makes the pair SageMaker makes in the domain's VPC.

moto's interface endpoints are `available` at once; here they are `pending` for
the account's `vpcEndpointPendingSeconds` first, as AWS's take a minute or two.
"""

from __future__ import annotations

import functools
import time

from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models import EC2Backend, ec2_backends

from . import config

NFS_PORT = "2049"


def _referencing_groups(backend: EC2Backend, group_id: str) -> list[str]:
    return [
        group.id
        for groups in list(backend.groups.values())
        for group in list(groups.values())
        if group.id != group_id
        and any(
            rule.source_group.get("GroupId") == group_id for rule in group.ingress_rules + group.egress_rules
        )
    ]


def _guarded_delete(original):
    @functools.wraps(original)
    def delete_security_group(self: EC2Backend, name=None, group_id=None):
        group = self.get_security_group_by_name_or_id(group_id or name)
        if group is not None and _referencing_groups(self, group.id):
            raise DependencyViolationError(f"resource {group.id} has a dependent object")
        return original(self, name=name, group_id=group_id)

    return delete_security_group


def create_nfs_security_groups(
    account: str, region: str, vpc_id: str, domain_id: str, domain_arn: str
) -> tuple[str, str]:
    """The inbound/outbound NFS pair of a Studio domain; returns their ids.

    Raises moto's InvalidVPCIdError if the VPC does not exist.
    """
    backend = ec2_backends[account][region]
    backend.get_vpc(vpc_id)
    tags = {"ManagedByAmazonSageMakerResource": domain_arn}
    inbound, outbound = (
        backend.create_security_group(
            f"security-group-for-{direction}-nfs-{domain_id}",
            f"[DO NOT DELETE] Security Group that allows {direction} NFS traffic for "
            f"SageMaker Notebooks Domain [{domain_id}]",
            vpc_id=vpc_id,
            tags=tags,
        )
        for direction in ("inbound", "outbound")
    )
    for group in (inbound, outbound):
        default_egress = [rule.id for rule in group.egress_rules]
        backend.revoke_security_group_egress(
            group.id, None, None, None, [], security_rule_ids=default_egress, vpc_id=vpc_id
        )
    backend.authorize_security_group_ingress(
        inbound.id, "tcp", NFS_PORT, NFS_PORT, [], source_groups=[{"GroupId": outbound.id}], vpc_id=vpc_id
    )
    backend.authorize_security_group_egress(
        outbound.id, "tcp", NFS_PORT, NFS_PORT, [], source_groups=[{"GroupId": inbound.id}], vpc_id=vpc_id
    )
    return inbound.id, outbound.id


def _pending_endpoints(original):
    @functools.wraps(original)
    def create(self: EC2Backend, *args, **kwargs):
        endpoint = original(self, *args, **kwargs)
        seconds = config.registry.get(self.account_id).vpcEndpointPendingSeconds
        if seconds > 0 and str(endpoint.vpc_endpoint_type).lower() == "interface":
            endpoint.state = "pending"
            endpoint.sagekeeper_available_at = time.monotonic() + seconds
        return endpoint

    return create


def _settled_endpoints(original):
    @functools.wraps(original)
    def describe(self: EC2Backend, *args, **kwargs):
        now = time.monotonic()
        for endpoint in list(self.vpc_end_points.values()):
            due = getattr(endpoint, "sagekeeper_available_at", None)
            if due is not None and due <= now and endpoint.state == "pending":
                endpoint.state = "available"
        return original(self, *args, **kwargs)

    return describe


def install() -> None:
    """Patch moto's DeleteSecurityGroup with the DependencyViolation check, and interface
    endpoints with their pending time."""
    EC2Backend.delete_security_group = _guarded_delete(EC2Backend.delete_security_group)
    EC2Backend.create_vpc_endpoint = _pending_endpoints(EC2Backend.create_vpc_endpoint)
    EC2Backend.describe_vpc_endpoints = _settled_endpoints(EC2Backend.describe_vpc_endpoints)
