"""From an AccessRequest to the identity and window its calls are looked up by."""

from __future__ import annotations

from typing import Any

import pytest

from jitgrant.activity.grant import NoGrant, identity_of
from jitgrant.models.request import AccessRequest

from .conftest import AGENT, T0


def request(**status: Any) -> AccessRequest:
    return AccessRequest.model_validate(
        {
            "metadata": {"name": "restart-checkout", "namespace": "agents", "uid": "u-1"},
            "spec": {
                "policy": "oncall-restart",
                "namespace": "payments",
                "clusterRole": "jit-restart",
                "justification": "checkout is stuck: restart it",
                "requester": {"username": AGENT, "provenBy": "kubernetes"},
            },
            "status": status,
        }
    )


GRANT = {"cluster": "self", "namespace": "payments", "roleBinding": "jit-restart-checkout-abc"}


def test_an_in_cluster_agent_is_identified_by_its_own_service_account() -> None:
    grant = identity_of(request(phase="Active", activatedAt=T0.isoformat(), grant=GRANT))
    assert grant.usernames == frozenset({AGENT}) and not grant.dedicated
    assert (grant.binding_namespace, grant.binding_name, grant.start, grant.end) == (
        "payments",
        "jit-restart-checkout-abc",
        T0,
        None,
    )


def test_a_kubeconfig_agent_is_identified_by_its_per_grant_service_account() -> None:
    status = {"phase": "Expired", "activatedAt": T0.isoformat(), "endedAt": T0.replace(minute=15).isoformat()}
    grant = identity_of(request(**status, grant={**GRANT, "serviceAccount": "jit-restart-checkout-abc"}))
    assert grant.usernames == frozenset({"system:serviceaccount:payments:jit-restart-checkout-abc"})
    assert grant.dedicated and grant.end == T0.replace(minute=15)


def test_the_per_grant_service_account_is_looked_up_in_the_namespace_its_record_names() -> None:
    """Per-grant ServiceAccounts live in the grants namespace, not next to the RoleBinding."""
    objects = [
        {"cluster": "self", "kind": "ServiceAccount", "namespace": "jitgrant-grants", "name": "jit-sa"},
        {
            "cluster": "self",
            "kind": "RoleBinding",
            "namespace": "payments",
            "name": "jit-restart-checkout-abc",
        },
    ]
    status = {"phase": "Active", "activatedAt": T0.isoformat()}
    grant = identity_of(request(**status, grant={**GRANT, "serviceAccount": "jit-sa", "objects": objects}))
    assert grant.usernames == frozenset({"system:serviceaccount:jitgrant-grants:jit-sa"})
    assert (grant.binding_namespace, grant.binding_name) == ("payments", "jit-restart-checkout-abc")


def test_a_request_that_never_had_a_grant_says_so() -> None:
    with pytest.raises(NoGrant, match=r"agents/restart-checkout has no grant \(phase Denied\)"):
        identity_of(request(phase="Denied"))
