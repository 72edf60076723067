"""Who may set jitgrant.dev/revoke: the requester, an eligible approver, the operator, or someone the
API server lets delete the request (the SubjectAccessReview's answer is passed in)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jitgrant.approvals.review import Caller
from jitgrant.approvals.revocation import Standing, review_revoke, revoke_touched, revoker_standing
from jitgrant.identity.stamp import seal_requester
from jitgrant.models import GrantPolicySpec

KEY = b"k" * 32
AGENT_A = "system:serviceaccount:agents:agent-a"
AGENT_B = "system:serviceaccount:agents:agent-b"
OPERATOR = "system:serviceaccount:jitgrant-system:jitgrant"
SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:agents")
POLICY = GrantPolicySpec.model_validate(
    {
        "requesters": {
            "serviceAccounts": [
                {"namespace": "agents", "name": "agent-a"},
                {"namespace": "agents", "name": "agent-b"},
            ]
        },
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart"}],
        "maxDuration": "15m",
        "approval": {"required": False, "approvers": {"users": ["alice"], "groups": ["sre"]}},
    }
)


def sealed_request(requester: str = AGENT_A, *, seal: bool = True) -> dict[str, Any]:
    spec = {
        "policy": "staging",
        "namespace": "payments",
        "clusterRole": "jit-restart",
        "duration": "10m",
        "requester": {"username": requester, "groups": list(SA_GROUPS)},
    }
    annotations = {
        "jitgrant.dev/requester-seal": seal_requester(key=KEY, namespace="agents", name="a", spec=spec)
    }
    return {
        "metadata": {
            "name": "a",
            "namespace": "agents",
            "uid": "uid-a",
            "annotations": annotations if seal else {},
        },
        "spec": spec,
        "status": {"phase": "Active"},
    }


def revoked(old: dict[str, Any], reason: str | None = "stop") -> dict[str, Any]:
    new = copy.deepcopy(old)
    annotations = new["metadata"]["annotations"]
    if reason is None:
        annotations.pop("jitgrant.dev/revoke", None)
    else:
        annotations["jitgrant.dev/revoke"] = reason
    return new


def review(
    caller: Caller,
    *,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    policy: GrantPolicySpec | None = POLICY,
    may_delete: bool | None = None,
) -> str | None:
    old = old if old is not None else sealed_request()
    return review_revoke(
        old=old,
        new=new if new is not None else revoked(old),
        caller=caller,
        key=KEY,
        policy=policy,
        operator_usernames={OPERATOR},
        may_delete=may_delete,
    )


def caller(username: str, *groups: str) -> Caller:
    return Caller(username=username, uid=f"uid-{username}", groups=groups)


def test_another_agent_is_refused_and_told_who_may_revoke() -> None:
    refusal = review(caller(AGENT_B, *SA_GROUPS), may_delete=False)
    assert refusal == (
        f"only the requester ({AGENT_A}), an approver of GrantPolicy staging, or someone allowed to delete "
        f"AccessRequest agents/a may set, change or remove jitgrant.dev/revoke; {AGENT_B} is none of these"
    )


def test_the_requester_the_operator_and_eligible_approvers_may_revoke() -> None:
    assert review(caller(AGENT_A, *SA_GROUPS)) is None
    assert review(caller(OPERATOR, "system:serviceaccounts")) is None
    assert review(caller("alice")) is None  # named in approvers.users
    assert review(caller("bob", "sre")) is None  # through approvers.groups


def test_someone_who_may_delete_the_request_may_revoke_it() -> None:
    assert review(caller("platform-admin", "platform"), may_delete=True) is None
    assert review(caller("platform-admin", "platform"), may_delete=False) is not None
    # Not asked (no API server to ask): nothing on the request gives standing, so refused.
    assert review(caller("platform-admin", "platform"), may_delete=None) is not None


@pytest.mark.parametrize("new_value", ["changed", None], ids=["changed", "removed"])
def test_changing_or_removing_someone_elses_revocation_needs_the_same_standing(new_value: str | None) -> None:
    old = revoked(sealed_request(), "approver stopped it")
    assert review(caller(AGENT_B, *SA_GROUPS), old=old, new=revoked(old, new_value)) is not None
    assert review(caller("alice"), old=old, new=revoked(old, new_value)) is None


def test_a_service_account_in_an_approver_group_is_no_approver() -> None:
    # eligibility's rule, reused: a ServiceAccount approves only when named in approvers.users.
    policy = POLICY.model_copy(
        update={
            "approval": POLICY.approval.model_copy(
                update={
                    "approvers": POLICY.approval.approvers.model_copy(
                        update={"groups": ("system:serviceaccounts",)}
                    )
                }
            )
        }
    )
    assert review(caller(AGENT_B, *SA_GROUPS), policy=policy) is not None


def test_without_the_policy_or_the_seal_only_delete_rights_count() -> None:
    assert review(caller("alice"), policy=None) is not None
    unsealed = sealed_request(seal=False)
    assert review(caller(AGENT_A, *SA_GROUPS), old=unsealed) is not None
    assert review(caller(AGENT_A, *SA_GROUPS), old=unsealed, may_delete=True) is None
    assert "only the requester, an approver" in (review(caller("x"), old=unsealed) or "")


def test_untouched_annotation_needs_no_standing() -> None:
    old = revoked(sealed_request(), "done")
    assert not revoke_touched(old, copy.deepcopy(old))
    assert review(caller(AGENT_B, *SA_GROUPS), old=old, new=copy.deepcopy(old)) is None


def test_standing_is_decided_without_the_api_server() -> None:
    def standing(who: Caller) -> Standing | None:
        return revoker_standing(
            old=sealed_request(), caller=who, key=KEY, policy=POLICY, operator_usernames={OPERATOR}
        )

    assert standing(caller(AGENT_A)) is Standing.REQUESTER
    assert standing(caller("bob", "sre")) is Standing.APPROVER
    assert standing(caller(OPERATOR)) is Standing.OPERATOR
    assert standing(caller(AGENT_B, *SA_GROUPS)) is None
    assert standing(caller("")) is None
