"""EC2 security groups: AWS's dependency rule, and the groups SageMaker makes.

moto deletes a security group even while another group's rule references it;
AWS refuses with DependencyViolation, which is why tearing down SageMaker's two
NFS groups (each referencing the other) needs the rules revoked first. moto's
CreateDomain makes no security groups at all; `create_nfs_security_groups`
makes the pair SageMaker makes in the domain's VPC.
"""

from __future__ import annotations

import functools

from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models import EC2Backend, ec2_backends

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


def install() -> None:
    """Patch moto's DeleteSecurityGroup with the DependencyViolation check."""
    EC2Backend.delete_security_group = _guarded_delete(EC2Backend.delete_security_group)
