"""Shared AWS helpers for the cluster tests (moto in server mode on 127.0.0.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

REGION = "eu-west-1"
ACCOUNT = "111122223333"
TARGET_ROLE = f"arn:aws:iam::{ACCOUNT}:role/jitgrant-target"
OPERATOR_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
OPERATOR_SECRET = "operator-secret-wJalrXUtnFEMI"


class FakeClock:
    """A clock the test moves by hand; starts at the real time so it agrees with moto's expiries."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def create_eks_cluster(moto_url: str, name: str, *, region: str = REGION, account: str = ACCOUNT) -> None:
    """Create an EKS cluster in `account` (moto keeps one backend per account, as AWS does)."""
    sts = boto3.client(
        "sts",
        region_name=region,
        endpoint_url=moto_url,
        aws_access_key_id=OPERATOR_KEY_ID,
        aws_secret_access_key=OPERATOR_SECRET,
    )
    admin = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/platform-admin", RoleSessionName="setup")
    credentials = admin["Credentials"]
    eks = boto3.client(
        "eks",
        region_name=region,
        endpoint_url=moto_url,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    eks.create_cluster(
        name=name,
        roleArn=f"arn:aws:iam::{account}:role/eks-cluster",
        resourcesVpcConfig={"subnetIds": []},
    )
