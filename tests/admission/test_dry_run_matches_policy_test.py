"""`jitgrant policy test` answers what the webhook's dry run answers, for random requests.

The webhook side is the real one: kopf's admission server over HTTPS, the mutating webhook stamping
the requester from userInfo, the validating webhook answering the dryRun create with warnings or a
refusal. Its wire answer is parsed back (reason, message, duration, approvals) and compared with
`jitgrant.offline.cases.evaluate` on the same identity, request and example policies.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from identity.issuer import LocalIssuer
from jitgrant.lifecycle.dry_run import Outcome
from jitgrant.models import GrantPolicySpec, format_duration
from jitgrant.models.dryrun import decode_refusal, decode_warnings
from jitgrant.models.vocabulary import OIDC_TOKEN_ANNOTATION, Reason
from jitgrant.offline.cases import Case, Settings, evaluate
from jitgrant.offline.loader import LoadedPolicy, Manifests, load
from jitgrant.operator import admission
from jitgrant.policy import check_policy

from .apiserver import WebhookEndpoint
from .conftest import AGENT, NS, WebhookRuntime, request_body

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANIFESTS = load(EXAMPLES)
MANIFESTS.cluster_roles.clear()  # the webhook's dry run reads no ClusterRole: compare the decision only
POLICIES = {name: loaded.check.spec for name, loaded in MANIFESTS.policies.items() if loaded.check.spec}


def _loaded(spec: GrantPolicySpec) -> LoadedPolicy:
    """The random policy as `policy test` loads one from a file: through check_policy."""
    check = check_policy(spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert check.valid, check.message
    return LoadedPolicy(name="random", path=Path("random.yaml"), check=check)


IDENTITIES: list[dict[str, Any]] = [
    {"serviceAccount": {"namespace": "agents", "name": "oncall-agent"}},
    {"serviceAccount": {"namespace": "agents", "name": "other"}},
    {"user": "ci-runner-7", "groups": ["ci-agents"]},
    {"user": "alice", "groups": ["sre-oncall"]},
]
RULES = [
    [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}],
    [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}],
    [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
]


@st.composite
def random_policies(draw: st.DrawFn) -> GrantPolicySpec:
    """A policy of random shape, filed as `random` next to the examples'."""
    requesters = draw(
        st.sampled_from(
            [
                {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]},
                {"groups": ["ci-agents", "sre-oncall"]},
                {"users": ["alice"], "groups": ["system:serviceaccounts:agents"]},
            ]
        )
    )
    grants = draw(
        st.lists(
            st.sampled_from(
                [
                    {"clusterRole": "jit-restart-checkout"},
                    {"clusterRole": "cluster-admin", "acceptDangerous": ["*"]},
                    {"rules": RULES[1]},
                    {"rules": RULES[2]},
                ]
            ),
            min_size=1,
            max_size=3,
            unique_by=json.dumps,
        )
    )
    maximum = draw(st.sampled_from(["10m", "15m", "1h"]))
    spec: dict[str, Any] = {
        "requesters": requesters,
        "namespaces": draw(st.sampled_from([["payments"], ["*"], ["payments", "kube-system"]])),
        "grants": grants,
        "maxDuration": maximum,
        "justification": draw(
            st.sampled_from([{}, {"required": True}, {"pattern": "^(INC|CHG)-[0-9]+"}, {"pattern": "stuck$"}])
        ),
    }
    if draw(st.booleans()):
        spec["approval"] = {
            "required": True,
            "approvers": draw(st.sampled_from([{"groups": ["sre-oncall"]}, {"users": ["bob", "carol"]}])),
            "minApprovals": draw(st.sampled_from([1, 2])),
        }
    return GrantPolicySpec.model_validate(spec)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "policy": draw(st.sampled_from([*sorted(POLICIES), "random", "no-such-policy"])),
        "namespace": draw(st.sampled_from(["payments", "orders", "kube-system", "jitgrant-system", "*"])),
        "justification": draw(st.sampled_from(["", "INC-4711 stuck", "CHG-1", "because", "  INC-2"])),
    }
    if draw(st.booleans()):
        spec["clusterRole"] = draw(st.sampled_from(["jit-restart-checkout", "cluster-admin"]))
    else:
        spec["rules"] = draw(st.sampled_from(RULES))
    duration = draw(st.sampled_from([None, "5m", "10m", "15m", "20m", "30m", "1h"]))
    if duration is not None:
        spec["duration"] = duration
    return spec


def _webhook_answer(review: dict[str, Any]) -> tuple[Outcome, str, str, str | None, int]:
    """(outcome, reason, message, duration, approvals) from the AdmissionReview response's wire form,
    read with the codec the client reads it with (models/dryrun.py)."""
    response = review["response"]
    if not response["allowed"]:
        denied = decode_refusal(response["status"]["message"])
        assert denied is not None, response
        return Outcome.DENIED, denied.reason, denied.message, None, 0
    answer = decode_warnings(response["warnings"])
    assert answer is not None, response
    message, duration = answer.message.rsplit("; would be granted for ", 1)
    assert duration == (answer.duration or "")
    return Outcome(answer.outcome), answer.reason, message, duration, answer.approvals_needed


def fitting(policy: GrantPolicySpec) -> st.SearchStrategy[tuple[dict[str, Any], dict[str, Any]]]:
    """An identity and a request that the random policy is likely to allow (most random requests are
    refused for one reason or another; these reach AutoApproved and AwaitingApproval too)."""
    people = policy.requesters
    named: list[dict[str, Any]] = [
        {"serviceAccount": {"namespace": sa.namespace, "name": sa.name}} for sa in people.service_accounts
    ]
    named += [{"user": user} for user in people.users]
    named += [{"user": "member", "groups": [group]} for group in people.groups]
    grants = [
        {"clusterRole": g.cluster_role} if g.cluster_role else {"rules": [r.to_k8s() for r in g.rules or ()]}
        for g in policy.grants
    ]
    namespaces = [ns if ns != "*" else "orders" for ns in policy.namespaces]
    return st.tuples(
        st.sampled_from(named),
        st.builds(
            lambda namespace, grant, duration: {
                "policy": "random",
                "namespace": namespace,
                "justification": "INC-4711 stuck",
                **grant,
                **({"duration": duration} if duration else {}),
            },
            st.sampled_from(namespaces),
            st.sampled_from(grants),
            st.sampled_from([None, "5m", "10m"]),
        ),
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), inline=st.booleans(), random=random_policies())
async def test_policy_test_answers_what_the_webhook_dry_run_answers(
    endpoint: WebhookEndpoint,
    runtime: WebhookRuntime,
    data: st.DataObject,
    inline: bool,
    random: GrantPolicySpec,
) -> None:
    runtime.policies = {**POLICIES, "random": random}
    manifests = replace(MANIFESTS, policies={**MANIFESTS.policies, "random": _loaded(random)})
    runtime.settings = runtime.settings.model_copy(update={"inline_rules_enabled": inline})
    if data.draw(st.booleans(), label="fitting"):
        identity, spec = data.draw(fitting(random), label="identity, request")
    else:
        identity = data.draw(st.sampled_from(IDENTITIES), label="identity")
        spec = data.draw(requests(), label="request")
    case = Case.model_validate(
        {"name": "random", "identity": identity, "request": spec, "expect": {"outcome": "allowed"}}
    )
    offline = evaluate(
        case, manifests, Settings(inline_rules_enabled=inline, operator_namespace="jitgrant-system")
    )

    body = {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "probe", "namespace": NS},
        "spec": dict(spec),
    }
    userinfo = case.identity.userinfo()
    mutated = await endpoint.review(
        admission.MUTATE_ID, operation="CREATE", obj=body, userinfo=userinfo, dry_run=True
    )
    assert mutated.allowed, mutated.message
    stamped = jsonpatch.apply_patch(body, mutated.patch)
    verdict = await endpoint.review(
        admission.VALIDATE_ID, operation="CREATE", obj=stamped, userinfo=userinfo, dry_run=True
    )
    outcome, reason, message, duration, approvals = _webhook_answer(verdict.raw)
    event(f"{outcome}: {reason}")  # --hypothesis-show-statistics: every outcome is reached

    assert (offline.outcome, offline.reason, offline.message) == (outcome, reason, message)
    assert (format_duration(offline.duration) if offline.duration else None) == duration
    assert offline.approvals == approvals


@pytest.mark.parametrize(
    ("subject", "groups", "policy"),
    [
        ("agent-7", [], "prod"),  # a named subject
        ("agent-9", ["release"], "prod"),  # a named group
        ("agent-9", ["other"], "prod"),  # neither: the mutating webhook refuses the token
        ("agent-7", [], "no-such-policy"),  # the webhook refuses a token naming no policy
    ],
)
async def test_an_oidc_case_answers_what_the_webhook_answers_for_its_verified_token(
    endpoint: WebhookEndpoint,
    runtime: WebhookRuntime,
    issuer: LocalIssuer,
    subject: str,
    groups: list[str],
    policy: str,
) -> None:
    spec = request_body(policy=policy)["spec"]
    case = Case.model_validate(
        {
            "name": "oidc",
            "identity": {"oidc": {"issuer": issuer.url, "subject": subject, "groups": groups}},
            "request": spec,
            "expect": {"outcome": "allowed"},
        }
    )
    manifests = Manifests(
        policies={
            name: LoadedPolicy(
                name=name,
                path=Path(f"{name}.yaml"),
                check=check_policy(spec_.model_dump(mode="json", by_alias=True, exclude_none=True)),
            )
            for name, spec_ in runtime.policies.items()
        }
    )
    offline = evaluate(case, manifests, Settings(operator_namespace="jitgrant-system"))

    body = request_body(policy=policy)
    body["metadata"]["annotations"] = {OIDC_TOKEN_ANNOTATION: issuer.mint(sub=subject, groups=groups)}
    mutated = await endpoint.review(
        admission.MUTATE_ID, operation="CREATE", obj=body, userinfo=AGENT, dry_run=True
    )
    if not mutated.allowed:
        assert (subject == "agent-9" and groups == ["other"]) or policy == "no-such-policy"
        assert (offline.outcome, offline.reason) == (Outcome.DENIED, Reason.REQUESTER_NOT_VERIFIED)
        assert offline.message == mutated.message
        return
    stamped = jsonpatch.apply_patch(body, mutated.patch)
    verdict = await endpoint.review(
        admission.VALIDATE_ID, operation="CREATE", obj=stamped, userinfo=AGENT, dry_run=True
    )
    outcome, reason, message, duration, approvals = _webhook_answer(verdict.raw)
    assert (offline.outcome, offline.reason, offline.message) == (outcome, reason, message)
    assert (format_duration(offline.duration) if offline.duration else None) == duration
    assert offline.approvals == approvals
