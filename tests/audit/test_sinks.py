"""Each sink against a real endpoint on 127.0.0.1: moto in server mode, a local HTTP server."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from jitgrant.audit import AuditConfig, AuditTrail, EventType
from jitgrant.audit.chain import verify_chain
from jitgrant.audit.cli import add_audit_subcommands

from .conftest import KeyPair, Receiver, make_event


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jitgrant")
    add_audit_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


async def write_some(config: AuditConfig, *, count: int = 5) -> None:
    trail = AuditTrail.from_config(config, instance="op-1")
    await trail.start()
    await trail.record_before_grant(make_event(EventType.GRANTED))
    for _ in range(count - 1):
        await trail.record(make_event(EventType.REVOKED))
    await trail.close()
    assert trail.depth() == 0, trail.last_errors()


async def test_s3_sink_writes_locked_objects_that_verify(
    tmp_path: Path, moto_endpoint: str, keypair: KeyPair
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    s3.create_bucket(
        Bucket="audit-locked",
        ObjectLockEnabledForBucket=True,
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    config = AuditConfig.model_validate(
        {
            "sinks": [
                {
                    "type": "s3",
                    "bucket": "audit-locked",
                    "prefix": "trails",
                    "region": "eu-west-1",
                    "endpointUrl": moto_endpoint,
                    "retentionMode": "COMPLIANCE",
                    "retentionDays": 30,
                }
            ],
            "spoolDir": str(tmp_path / "spool"),
            "signingKeyPath": str(keypair.private_pem),
        }
    )
    await write_some(config)

    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="audit-locked")["Contents"]]
    records = [key for key in keys if "/records/" in key]
    assert records == [f"trails/op-1/records/{seq:020d}.json" for seq in range(1, 6)]
    assert any("/checkpoints/" in key for key in keys)
    # HEAD rather than GetObjectRetention: moto 5.2 answers the latter with a malformed response.
    head = s3.head_object(Bucket="audit-locked", Key=records[0])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC)

    # A locked version cannot be removed, only hidden behind a new version, which the reader sees.
    version = s3.head_object(Bucket="audit-locked", Key=records[1])["VersionId"]
    with pytest.raises(ClientError):
        s3.delete_object(Bucket="audit-locked", Key=records[1], VersionId=version)
    source = ["--s3", "s3://audit-locked/trails/op-1/", "--endpoint-url", moto_endpoint]
    assert run_cli(["audit", "verify", *source, "--public-key", str(keypair.public_pem)]) == 0

    forged = json.loads(s3.get_object(Bucket="audit-locked", Key=records[1])["Body"].read())
    forged["event"]["requester"]["username"] = "nobody"
    s3.put_object(
        Bucket="audit-locked",
        Key=records[1],
        Body=json.dumps(forged).encode(),
        ChecksumAlgorithm="SHA256",
    )
    assert run_cli(["audit", "verify", *source, "--public-key", str(keypair.public_pem)]) == 1


async def test_cloudwatch_sink_writes_one_stream_per_instance(
    tmp_path: Path, moto_endpoint: str, keypair: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    config = AuditConfig.model_validate(
        {
            "sinks": [
                {
                    "type": "cloudwatch",
                    "logGroup": "/jitgrant/audit",
                    "createLogGroup": True,
                    "region": "eu-west-1",
                    "endpointUrl": moto_endpoint,
                }
            ],
            "spoolDir": str(tmp_path / "spool"),
            "signingKeyPath": str(keypair.private_pem),
        }
    )
    await write_some(config, count=7)
    logs = boto3.client("logs", endpoint_url=moto_endpoint, region_name="eu-west-1")
    streams = logs.describe_log_streams(logGroupName="/jitgrant/audit")["logStreams"]
    assert [stream["logStreamName"] for stream in streams] == ["op-1"]

    source = [
        "--cloudwatch",
        "/jitgrant/audit:op-1",
        "--endpoint-url",
        moto_endpoint,
        "--region",
        "eu-west-1",
    ]
    assert run_cli(["audit", "verify", *source, "--public-key", str(keypair.public_pem)]) == 0
    # Two checkpoints: where the run started and where it shut down.
    assert "7 records (seq 1..7), 2 checkpoints (2 with a valid signature)" in capsys.readouterr().out


async def test_webhook_sink_posts_signed_json(tmp_path: Path, receiver: Receiver) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")
    hmac_file = tmp_path / "hmac"
    hmac_file.write_text("hmac-key")
    config = AuditConfig.model_validate(
        {
            "sinks": [
                {
                    "type": "webhook",
                    "url": receiver.url,
                    "bearerTokenFile": str(token_file),
                    "hmacSecretFile": str(hmac_file),
                }
            ],
            "spoolDir": str(tmp_path / "spool"),
        }
    )
    await write_some(config, count=3)
    assert receiver.bodies
    for body, headers in zip(receiver.bodies, receiver.headers, strict=True):
        assert headers["Authorization"] == "Bearer s3cr3t-token"
        expected = "sha256=" + hmac.new(b"hmac-key", body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Jitgrant-Signature"], expected)
    report = verify_chain(receiver.lines())
    assert report.ok and report.records == 3


async def test_secrets_never_reach_logs_or_reprs(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token")
    config = AuditConfig.model_validate(
        {
            "sinks": [{"type": "webhook", "url": receiver.url, "bearerTokenFile": str(token_file)}],
            "spoolDir": str(tmp_path / "spool"),
            "retryInitialSeconds": 0.01,
            "closeTimeoutSeconds": 0.1,
        }
    )
    receiver.down = True
    trail = AuditTrail.from_config(config, instance="op-1")
    await trail.start()
    with caplog.at_level("DEBUG", logger="jitgrant"):
        await trail.record(make_event())
        await trail.close()
    assert "503" in caplog.text
    assert "s3cr3t-token" not in caplog.text
    assert "s3cr3t-token" not in repr(config) + repr(trail._queues[0].sink)
