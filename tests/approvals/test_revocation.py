"""Who may set jitgrant.dev/revoke: the requester, an eligible approver, the operator, or someone the
API server lets delete the request (the SubjectAccessReview's answer is passed in)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jitgrant.approvals.review import Caller
from jitgrant.approvals.revocation import (
    Standing,
    deletion_stamp,
    fate_touched,
    review_revoke,
    revoke_touched,
    revoker_standing,
)
from jitgrant.identity.stamp import Revoker, deletion_message, seal_requester, stamp_revoker
from jitgrant.models import GrantPolicySpec
from jitgrant.models.vocabulary import DELETED_BY_ANNOTATION, GARBAGE_COLLECTOR_USERNAME

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


# --- the other fields that decide a request's fate (identity-and-approvals.md) ------------------------

GHOST = {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "u-ghost"}


def with_metadata(old: dict[str, Any], **fields: Any) -> dict[str, Any]:
    new = copy.deepcopy(old)
    for name, value in fields.items():
        if value is None:
            new["metadata"].pop(name, None)
        else:
            new["metadata"][name] = value
    return new


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("metadata.ownerReferences", {"ownerReferences": [GHOST]}),
        ("metadata.finalizers", {"finalizers": ["jitgrant.dev/revoke-grant", "example.com/hold"]}),
        ("metadata.deletionTimestamp", {"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        ("metadata.deletionGracePeriodSeconds", {"deletionGracePeriodSeconds": 0}),
    ],
)
def test_every_fate_field_follows_the_standing_rule(field: str, change: dict[str, Any]) -> None:
    old = sealed_request()
    old["metadata"]["finalizers"] = ["jitgrant.dev/revoke-grant"]
    new = with_metadata(old, **change)
    assert fate_touched(old, new) == (field,)
    refusal = review(caller(AGENT_B, *SA_GROUPS), old=old, new=new, may_delete=False)
    assert refusal is not None
    assert refusal.startswith(
        f"only the requester ({AGENT_A}), an approver of GrantPolicy staging, or someone allowed to delete "
        f"AccessRequest agents/a may change {field} ("
    )
    assert refusal.endswith(f"; {AGENT_B} is none of these")
    for allowed in (caller(AGENT_A, *SA_GROUPS), caller("alice"), caller(OPERATOR)):
        assert review(allowed, old=old, new=new, may_delete=False) is None, allowed
    assert review(caller("platform-admin"), old=old, new=new, may_delete=True) is None
    # An approver of another policy is no approver here.
    other = GrantPolicySpec.model_validate(
        {
            **POLICY.model_dump(by_alias=True, exclude_none=True),
            "approval": {"approvers": {"users": ["dave"]}},
        }
    )
    assert review(caller("alice"), old=old, new=new, policy=other, may_delete=False) is not None


def test_reordering_finalizers_or_equal_owner_references_is_no_change() -> None:
    old = with_metadata(sealed_request(), finalizers=["a/x", "b/y"], ownerReferences=[GHOST])
    new = with_metadata(old, finalizers=["b/y", "a/x"], ownerReferences=[dict(reversed(list(GHOST.items())))])
    assert fate_touched(old, new) == ()


def test_removing_the_operators_finalizer_is_refused_even_for_the_requester() -> None:
    old = with_metadata(sealed_request(), finalizers=["jitgrant.dev/revoke-grant"])
    new = with_metadata(old, finalizers=None)
    refusal = review(caller(AGENT_A, *SA_GROUPS), old=old, new=new)
    assert refusal is not None and refusal.startswith(
        "only the jitgrant operator removes the finalizer jitgrant.dev/revoke-grant"
    )
    assert review(caller(OPERATOR), old=old, new=new) is None


# --- who deletes -----------------------------------------------------------------------------------------


def deleting() -> dict[str, Any]:
    return with_metadata(sealed_request(), finalizers=["jitgrant.dev/revoke-grant"], ownerReferences=[GHOST])


def test_the_deleter_is_stamped_once_and_the_garbage_collector_with_the_owner_it_followed() -> None:
    old = deleting()
    gc = caller(GARBAGE_COLLECTOR_USERNAME, "system:serviceaccounts")
    stamp = deletion_stamp(old=old, caller=gc, key=KEY)
    assert stamp is not None
    assert deletion_message(
        key=KEY, uid="uid-a", stamp=stamp, garbage_collector=GARBAGE_COLLECTOR_USERNAME
    ) == (
        f"the AccessRequest was deleted by the garbage collector ({GARBAGE_COLLECTOR_USERNAME}) "
        "following its owner ConfigMap agents/ghost (uid u-ghost)"
    )
    # The API server runs delete admission again after the stamp's write: nothing more to write then.
    old["metadata"]["annotations"][DELETED_BY_ANNOTATION] = stamp
    assert deletion_stamp(old=old, caller=gc, key=KEY) is None
    # Someone else deleting after all is stamped over it.
    admin = deletion_stamp(old=old, caller=caller("admin", "system:masters"), key=KEY)
    assert deletion_message(
        key=KEY, uid="uid-a", stamp=admin, garbage_collector=GARBAGE_COLLECTOR_USERNAME
    ) == ("the AccessRequest was deleted by admin")


def test_nothing_is_stamped_when_there_is_no_grant_left_to_revoke() -> None:
    finished = deleting()
    finished["status"]["phase"] = "Expired"
    assert deletion_stamp(old=finished, caller=caller("admin"), key=KEY) is None
    assert (
        deletion_stamp(old=with_metadata(deleting(), finalizers=None), caller=caller("admin"), key=KEY)
        is None
    )
    already = with_metadata(deleting(), deletionTimestamp="2026-01-01T00:00:00Z")
    assert deletion_stamp(old=already, caller=caller("admin"), key=KEY) is None


def test_a_stamp_for_another_request_or_a_revoked_by_stamp_names_nobody() -> None:
    stamp = deletion_stamp(old=deleting(), caller=caller("admin"), key=KEY)
    unknown = "the AccessRequest was deleted (no valid jitgrant.dev/deleted-by stamp: deleter unknown)"
    assert deletion_message(key=KEY, uid="uid-b", stamp=stamp, garbage_collector="gc") == unknown
    revoker = stamp_revoker(key=KEY, uid="uid-a", revoker=Revoker(username="admin", groups=(), reason=""))
    assert deletion_message(key=KEY, uid="uid-a", stamp=revoker, garbage_collector="gc") == unknown
    assert deletion_message(key=KEY, uid="uid-a", stamp=None, garbage_collector="gc") == unknown
