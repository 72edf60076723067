"""values.schema.json refuses what would make the install unsafe or broken, and says why."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from pydantic import BaseModel

from jitgrant.audit.config import (
    AuditConfig,
    CloudWatchSinkConfig,
    FileSinkConfig,
    S3SinkConfig,
    StdoutSinkConfig,
    WebhookSinkConfig,
)

from .conftest import COMBINATIONS, NAMESPACE, RELEASE

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    (
        "latest tag",
        {"image": {"tag": "latest"}},
        "at '/image/tag': value must be 'a pinned version or digest: latest is refused'",
    ),
    ("bad digest", {"image": {"digest": "sha256:abc"}}, "at '/image/digest'"),
    (
        "cluster-admin grantable",
        {"grantableClusterRoles": ["jit-read-logs", "cluster-admin"]},
        "at '/grantableClusterRoles/1': value must be 'a narrow ClusterRole made for grants",
    ),
    ("system role grantable", {"grantableClusterRoles": ["system:node"]}, "at '/grantableClusterRoles/0'"),
    ("empty role name", {"grantableClusterRoles": [""]}, "at '/grantableClusterRoles/0'"),
    ("duplicate role", {"grantableClusterRoles": ["a", "a"]}, "at '/grantableClusterRoles'"),
    (
        "inline rules not boolean",
        {"inlineRules": {"enabled": "yes"}},
        "at '/inlineRules/enabled': got string, want boolean",
    ),
    (
        "role ARN",
        {"eks": {"roleArn": "jitgrant-operator"}},
        "at '/eks/roleArn': 'jitgrant-operator' does not match pattern",
    ),
    (
        "writable root",
        {"securityContext": {"readOnlyRootFilesystem": False}},
        "at '/securityContext/readOnlyRootFilesystem': value must be true",
    ),
    (
        "privilege escalation",
        {"securityContext": {"allowPrivilegeEscalation": True}},
        "at '/securityContext/allowPrivilegeEscalation': value must be false",
    ),
    (
        "root",
        {"podSecurityContext": {"runAsNonRoot": False}},
        "at '/podSecurityContext/runAsNonRoot': value must be true",
    ),
    ("uid 0", {"podSecurityContext": {"runAsUser": 0}}, "at '/podSecurityContext/runAsUser'"),
    (
        "added capability",
        {"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}},
        "at '/securityContext/capabilities/add'",
    ),
    (
        "capabilities kept",
        {"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
        "at '/securityContext/capabilities/drop'",
    ),
    ("no limits", {"resources": {"limits": None}}, "at '/resources': missing property 'limits'"),
    (
        "no memory request",
        {"resources": {"requests": {"memory": None}}},
        "at '/resources/requests': missing property 'memory'",
    ),
    (
        "cert-manager mode",
        {"webhook": {"certManager": {"enabled": "maybe"}}},
        "at '/webhook/certManager/enabled': value must be one of true, false, 'auto'",
    ),
    ("webhook port", {"webhook": {"port": 70000}}, "at '/webhook/port'"),
    ("unknown top-level key", {"replicaCnt": 2}, "additional properties 'replicaCnt' not allowed"),
    (
        "unknown nested key",
        {"serviceMonitor": {"enabeld": True}},
        "additional properties 'enabeld' not allowed",
    ),
    (
        "inline audit secret",
        {
            "audit": {
                "config": {
                    "sinks": [{"type": "webhook", "url": "https://siem.example.com", "bearerToken": "s3cr3t"}]
                }
            }
        },
        "additional properties 'bearerToken' not allowed",
    ),
    (
        "plain http audit webhook",
        {"audit": {"config": {"sinks": [{"type": "webhook", "url": "http://siem"}]}}},
        "at '/audit/config/sinks/0/url'",
    ),
    (
        "s3 sink without bucket",
        {"audit": {"config": {"sinks": [{"type": "s3"}]}}},
        "missing property 'bucket'",
    ),
    (
        "unknown sink",
        {"audit": {"config": {"sinks": [{"type": "syslog"}]}}},
        "at '/audit/config/sinks/0/type'",
    ),
    ("no sinks", {"audit": {"config": {"sinks": []}}}, "at '/audit/config/sinks'"),
    (
        "spoolDir is the chart's",
        {"audit": {"config": {"spoolDir": "/tmp/spool"}}},
        "additional properties 'spoolDir' not allowed",
    ),
    (
        "secret mounted elsewhere",
        {"audit": {"secretMounts": [{"name": "x", "secretName": "x", "mountPath": "/etc/passwd"}]}},
        "at '/audit/secretMounts/0/mountPath'",
    ),
    ("replicas are not a value", {"replicas": 2}, "additional properties 'replicas' not allowed"),
]


@pytest.mark.parametrize(("case", "values", "message"), REFUSED, ids=[case for case, _, _ in REFUSED])
def test_invalid_values_are_refused_with_a_clear_message(
    chart: helm.Chart, case: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(refused.value)
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_the_combinations_are_valid(chart: helm.Chart, combination: str) -> None:
    chart.validate_schema(COMBINATIONS[combination])


def test_defaults_are_valid(chart: helm.Chart) -> None:
    chart.validate_schema(None)
    assert chart.schema is not None
    assert chart.schema["additionalProperties"] is False


def aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_audit_schema_mirrors_the_audit_settings_model(chart: helm.Chart) -> None:
    """A field added to or removed from AuditConfig must be reflected in values.schema.json."""
    assert chart.schema is not None
    config = chart.schema["properties"]["audit"]["properties"]["config"]
    assert set(config["properties"]) == aliases(AuditConfig) - {"spoolDir"}
    branches = {
        branch["if"]["properties"]["type"]["const"]: branch["then"]
        for branch in config["properties"]["sinks"]["items"]["allOf"]
    }
    models: dict[str, type[BaseModel]] = {
        "file": FileSinkConfig,
        "stdout": StdoutSinkConfig,
        "s3": S3SinkConfig,
        "cloudwatch": CloudWatchSinkConfig,
        "webhook": WebhookSinkConfig,
    }
    assert set(branches) == set(models)
    for kind, model in models.items():
        assert set(branches[kind]["properties"]) == aliases(model), kind
        required = {field.alias or name for name, field in model.model_fields.items() if field.is_required()}
        assert required | {"type"} == set(branches[kind]["required"]), kind
