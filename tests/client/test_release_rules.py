"""Who may set jitgrant.dev/release (approvals/release.py, the webhook's decision), without a cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jitgrant.approvals.release import review_release
from jitgrant.approvals.review import Caller
from jitgrant.identity.stamp import seal_requester, stamp_to_wire
from jitgrant.models import ProofKind, RequesterStamp
from jitgrant.models.vocabulary import CREATED_BY_EXTRA, RELEASE_ANNOTATION, REQUESTER_SEAL_ANNOTATION

KEY = b"k" * 32
AGENT = "system:serviceaccount:agents:oncall-agent"


def request(stamp: RequesterStamp, *, phase: str | None = "Active", key: bytes = KEY) -> dict[str, Any]:
    spec = {"policy": "p", "namespace": "payments", "clusterRole": "r", "requester": stamp_to_wire(stamp)}
    seal = seal_requester(key=key, namespace="agents", name="x", spec=spec)
    return {
        "metadata": {"namespace": "agents", "name": "x", "annotations": {REQUESTER_SEAL_ANNOTATION: seal}},
        "spec": spec,
        "status": {"phase": phase} if phase else {},
    }


def released(old: dict[str, Any], value: str | None = "done") -> dict[str, Any]:
    new = copy.deepcopy(old)
    if value is None:
        new["metadata"]["annotations"].pop(RELEASE_ANNOTATION, None)
    else:
        new["metadata"]["annotations"][RELEASE_ANNOTATION] = value
    return new


def caller(name: str) -> Caller:
    return Caller(username=name, uid="", groups=())


def test_the_requester_may_release_its_own_request() -> None:
    old = request(RequesterStamp(username=AGENT))
    assert review_release(old=old, new=released(old), caller=caller(AGENT), key=KEY) is None


def test_anyone_else_is_refused_with_who_may() -> None:
    old = request(RequesterStamp(username=AGENT))
    refusal = review_release(
        old=old, new=released(old), caller=caller("system:serviceaccount:agents:other"), key=KEY
    )
    assert refusal is not None and f"only the requester ({AGENT}) may release" in refusal


def test_an_oidc_request_is_released_by_the_identity_that_filed_it() -> None:
    stamp = RequesterStamp(
        username="oidc:https://idp#bot",
        proven_by=ProofKind.OIDC,
        issuer="https://idp",
        subject="bot",
        extra={CREATED_BY_EXTRA: ("system:serviceaccount:ci:runner",)},
    )
    old = request(stamp)
    assert (
        review_release(old=old, new=released(old), caller=caller("system:serviceaccount:ci:runner"), key=KEY)
        is None
    )
    assert review_release(old=old, new=released(old), caller=caller("someone"), key=KEY) is not None


@pytest.mark.parametrize("value", [None, "changed my mind"])
def test_a_release_cannot_be_removed_or_changed(value: str | None) -> None:
    old = released(request(RequesterStamp(username=AGENT)))
    refusal = review_release(old=old, new=released(old, value), caller=caller(AGENT), key=KEY)
    assert refusal is not None and "set once" in refusal


@pytest.mark.parametrize("phase", ["Expired", "Revoked", "Denied", "TimedOut", "Failed"])
def test_an_ended_request_has_nothing_to_release(phase: str) -> None:
    old = request(RequesterStamp(username=AGENT), phase=phase)
    refusal = review_release(old=old, new=released(old), caller=caller(AGENT), key=KEY)
    assert refusal is not None and f"already {phase}" in refusal


def test_an_unsealed_request_is_refused_even_for_the_named_requester() -> None:
    old = request(RequesterStamp(username=AGENT), key=b"another key, not the operator's")
    refusal = review_release(old=old, new=released(old), caller=caller(AGENT), key=KEY)
    assert refusal is not None and "not stamped by the jitgrant webhook" in refusal


def test_other_edits_are_not_this_rules_business() -> None:
    old = request(RequesterStamp(username=AGENT))
    assert review_release(old=old, new=copy.deepcopy(old), caller=caller("anyone"), key=KEY) is None
