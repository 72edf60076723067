"""`jitgrant policy test` answers what the webhook's dry run answers, for random requests.

The webhook side is the real one: kopf's admission server over HTTPS, the mutating webhook stamping
the requester from userInfo, the validating webhook answering the dryRun create with warnings or a
refusal. Its wire answer is parsed back (reason, message, duration, approvals) and compared with
`jitgrant.offline.cases.evaluate` on the same identity, request and example policies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitgrant.handlers import admission
from jitgrant.lifecycle.dry_run import Outcome
from jitgrant.models import format_duration
from jitgrant.models.vocabulary import DRY_RUN_WARNING, Reason
from jitgrant.offline.cases import Case, Settings, evaluate
from jitgrant.offline.loader import load

from .apiserver import WebhookEndpoint
from .conftest import NS, WebhookRuntime

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANIFESTS = load(EXAMPLES)
MANIFESTS.cluster_roles.clear()  # the webhook's dry run reads no ClusterRole: compare the decision only
POLICIES = {name: loaded.check.spec for name, loaded in MANIFESTS.policies.items() if loaded.check.spec}

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
def requests(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "policy": draw(st.sampled_from([*sorted(POLICIES), "no-such-policy"])),
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
    """(outcome, reason, message, duration, approvals) from the AdmissionReview response's wire form."""
    response = review["response"]
    prefix = f"{DRY_RUN_WARNING}: "
    if not response["allowed"]:
        reason, message = response["status"]["message"].removeprefix(prefix).split(": ", 1)
        return Outcome.DENIED, reason, message, None, 0
    first, detail = response["warnings"]
    reason, rest = first.removeprefix(prefix).split(": ", 1)
    message, duration = rest.rsplit("; would be granted for ", 1)
    fields = dict(part.split("=", 1) for part in detail.split(": ", 1)[1].split("; ", 2))
    outcome = Outcome.PENDING_APPROVAL if reason == Reason.AWAITING_APPROVAL else Outcome.ALLOWED
    return outcome, reason, message, duration, int(fields["approvals"])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(identity=st.sampled_from(IDENTITIES), spec=requests(), inline=st.booleans())
async def test_policy_test_answers_what_the_webhook_dry_run_answers(
    endpoint: WebhookEndpoint,
    runtime: WebhookRuntime,
    identity: dict[str, Any],
    spec: dict[str, Any],
    inline: bool,
) -> None:
    runtime.policies = dict(POLICIES)
    runtime.settings = runtime.settings.model_copy(update={"inline_rules_enabled": inline})
    case = Case.model_validate(
        {"name": "random", "identity": identity, "request": spec, "expect": {"outcome": "allowed"}}
    )
    offline = evaluate(
        case, MANIFESTS, Settings(inline_rules_enabled=inline, operator_namespace="jitgrant-system")
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

    assert (offline.outcome, offline.reason, offline.message) == (outcome, reason, message)
    assert (format_duration(offline.duration) if offline.duration else None) == duration
    assert offline.approvals == approvals
