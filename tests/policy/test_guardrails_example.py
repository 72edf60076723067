"""examples/guardrails parses as the docs describe it (issue 31)."""

from __future__ import annotations

from datetime import timedelta

from jitgrant.models import GrantPolicySpec
from jitgrant_testing.environment import EXAMPLES, load_manifests


def test_the_guardrails_example_fixes_the_duration_caps_requests_and_needs_reasons() -> None:
    [manifest] = load_manifests(EXAMPLES / "guardrails" / "policy.yaml")
    spec = GrantPolicySpec.model_validate(manifest["spec"])
    assert spec.min_duration_delta == spec.max_duration_delta == timedelta(minutes=10)
    assert (spec.limits.max_open_per_requester, spec.limits.max_requests_per_hour) == (2, 10)
    assert spec.approval.reason_floor == 12


def test_the_guardrails_example_denies_pod_deletion_and_secrets_whatever_its_cluster_role_holds() -> None:
    [manifest] = load_manifests(EXAMPLES / "guardrails" / "policy.yaml")
    spec = GrantPolicySpec.model_validate(manifest["spec"])
    assert [(rule.resources, rule.verbs) for rule in spec.deny] == [
        (("pods",), ("delete", "deletecollection")),
        (("secrets",), ("*",)),
    ]
