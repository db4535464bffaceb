"""Seeds the emulator for `make demo`: in each of the example's three accounts
(examples/10-accounts.yaml), the permissions boundary every role sagekeeper creates carries
(deploy/aws/sagekeeper-boundary.json) and the role sagekeeper assumes, with exactly the managed
policies of deploy/aws/deployer/, trusting the controller's account and, for staging and
production, asking for the external id; and lets the controller's own identity assume those roles.
On real AWS a platform team does this once per account.

It also makes the example's organization: 444444444444 manages it (its deployer role may read
it, deploy/aws/organization-reader.json), and its unit `production` holds 333333333333 and
555555555555, the accounts AwsAccountSet fraud-prod-ou feeds the production stage with. It
prints the unit's id (the emulator makes its own; the demo puts it into the example).

`seed-demo.py approve GROUP` registers a model version in the dev account's group GROUP, as the
pipeline's register step does, and approves it, as a reviewer does; it prints the version."""

import json
import os
import sys
import urllib.request
from pathlib import Path

import boto3

CONTROLLER_ACCOUNT = "123456789012"
DEPLOY_AWS = Path(__file__).resolve().parents[2] / "deploy" / "aws"
ACCOUNTS = {
    "111111111111": None,
    "222222222222": "fraud-7f3a",
    "333333333333": "fraud-7f3a",
    "444444444444": None,
    "555555555555": "fraud-7f3a",
}
MANAGEMENT = "444444444444"
PRODUCTION = ("333333333333", "555555555555")


def credentials(endpoint, account):
    """The account's platform-admin keys, made once (IAM allows a user two access keys)."""
    if account not in KEYS:
        KEYS[account] = new_credentials(endpoint, account)
    return KEYS[account]


KEYS = {}


def new_credentials(endpoint, account):
    request = urllib.request.Request(
        f"{endpoint}/_emulator/credentials",
        data=json.dumps({"account": account, "userName": "platform-admin", "admin": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def trust_policy(external_id):
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{CONTROLLER_ACCOUNT}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def client(endpoint, account, service):
    creds = credentials(endpoint, account)
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds["accessKeyId"],
        aws_secret_access_key=creds["secretAccessKey"],
    )


def approve(endpoint, group):
    sagemaker = client(endpoint, "111111111111", "sagemaker")
    package = sagemaker.create_model_package(
        ModelPackageGroupName=group, ModelApprovalStatus="PendingManualApproval"
    )["ModelPackageArn"]
    sagemaker.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
    print(package.rsplit("/", 1)[1])


def main():
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if sys.argv[1:2] == ["approve"]:
        approve(endpoint, sys.argv[2])
        return
    for account, external_id in ACCOUNTS.items():
        creds = credentials(endpoint, account)
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=creds["accessKeyId"],
            aws_secret_access_key=creds["secretAccessKey"],
        )
        boundary = iam.create_policy(
            PolicyName="sagekeeper-boundary", PolicyDocument=(DEPLOY_AWS / "sagekeeper-boundary.json").read_text()
        )
        role = iam.create_role(RoleName="sagekeeper-deployer", AssumeRolePolicyDocument=trust_policy(external_id))
        for part in sorted((DEPLOY_AWS / "deployer").glob("*.json")):
            document = part.read_text().replace("ACCOUNT_ID", account)
            policy = iam.create_policy(PolicyName=f"sagekeeper-deployer-{part.stem}", PolicyDocument=document)
            iam.attach_role_policy(RoleName="sagekeeper-deployer", PolicyArn=policy["Policy"]["Arn"])
        print(f"  role {role['Role']['Arn']}, boundary {boundary['Policy']['Arn']}", file=sys.stderr)
    # The controller's own identity (the user whose keys .stack/env exports) may assume the
    # deployer roles and nothing else, as deploy/aws/README.md asks of its role.
    assume = {"Version": "2012-10-17", "Statement": [{
        "Sid": "AssumeDeployerRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
        "Resource": "arn:aws:iam::*:role/sagekeeper-deployer",
    }]}
    client(endpoint, CONTROLLER_ACCOUNT, "iam").put_user_policy(
        UserName="sagekeeper", PolicyName="sagekeeper-controller", PolicyDocument=json.dumps(assume)
    )
    print(organization(endpoint))


def organization(endpoint):
    """The organization and its production unit; returns the unit's id."""
    reader = (DEPLOY_AWS / "organization-reader.json").read_text().replace("ACCOUNT_ID", MANAGEMENT)
    client(endpoint, MANAGEMENT, "iam").put_role_policy(
        RoleName="sagekeeper-deployer", PolicyName="organization-reader", PolicyDocument=reader
    )
    org = client(endpoint, MANAGEMENT, "organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    unit = org.create_organizational_unit(ParentId=root, Name="production")["OrganizationalUnit"]["Id"]
    for account in PRODUCTION:
        body = {"managementAccount": MANAGEMENT, "accountId": account, "parentId": unit, "name": f"fraud-prod-{account[:3]}"}
        request = urllib.request.Request(
            f"{endpoint}/_emulator/organizations/accounts",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request).close()
    print(f"  organization unit {unit}: {', '.join(PRODUCTION)}", file=sys.stderr)
    return unit


if __name__ == "__main__":
    main()
