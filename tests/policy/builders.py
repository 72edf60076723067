"""Small builders for policies, requests and requester stamps, written in the wire format so the
tests read like the YAML a platform team and an agent would write."""

from __future__ import annotations

from typing import Any

from jitgrant.models import AccessRequestSpec, GrantPolicySpec, ProofKind, RequesterStamp
from jitgrant.policy import PolicyDecision, decide

POLICY = "oncall-restart"
AGENT = "system:serviceaccount:ops:oncall-agent"
ISSUER = "https://token.actions.example.com"

RESTART_RULE: dict[str, Any] = {
    "apiGroups": ["apps"],
    "resources": ["deployments"],
    "verbs": ["get", "patch"],
    "resourceNames": ["checkout"],
}


def rule(
    resources: list[str],
    verbs: list[str],
    *,
    groups: list[str] | None = None,
    names: list[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"apiGroups": groups if groups is not None else [""], "resources": resources}
    body["verbs"] = verbs
    if names:
        body["resourceNames"] = names
    return body


def policy(**overrides: Any) -> GrantPolicySpec:
    """The reference scenario's policy: ops/oncall-agent may patch deployments/checkout in payments."""
    body: dict[str, Any] = {
        "requesters": {"serviceAccounts": [{"namespace": "ops", "name": "oncall-agent"}]},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-deployments"}, {"rules": [RESTART_RULE]}],
        "maxDuration": "15m",
    }
    body.update(overrides)
    return GrantPolicySpec.model_validate(body)


def rules_policy(*rules: dict[str, Any], **overrides: Any) -> GrantPolicySpec:
    return policy(grants=[{"rules": list(rules)}], **overrides)


def request(**overrides: Any) -> AccessRequestSpec:
    """The reference scenario's request: patch deployments/checkout in payments for 15 minutes."""
    body: dict[str, Any] = {
        "policy": POLICY,
        "namespace": "payments",
        "rules": [
            {
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "verbs": ["patch"],
                "resourceNames": ["checkout"],
            }
        ],
        "duration": "15m",
    }
    body.update(overrides)
    if "clusterRole" in overrides:
        body.pop("rules")
    return AccessRequestSpec.model_validate(body)


def rules_request(*rules: dict[str, Any], **overrides: Any) -> AccessRequestSpec:
    return request(rules=list(rules), **overrides)


def kube(username: str = AGENT, *groups: str) -> RequesterStamp:
    return RequesterStamp(username=username, groups=groups)


def oidc(subject: str, *groups: str, issuer: str = ISSUER) -> RequesterStamp:
    return RequesterStamp(
        username=f"oidc:{issuer}#{subject}",
        groups=groups,
        proven_by=ProofKind.OIDC,
        issuer=issuer,
        subject=subject,
    )


def check(
    spec: GrantPolicySpec,
    req: AccessRequestSpec,
    *,
    requester: RequesterStamp | None = None,
    inline_rules_enabled: bool = True,
    operator_namespace: str = "jitgrant-system",
) -> PolicyDecision:
    return decide(
        policy_name=POLICY,
        policy=spec,
        request=req,
        requester=requester if requester is not None else kube(),
        operator_namespace=operator_namespace,
        inline_rules_enabled=inline_rules_enabled,
    )
