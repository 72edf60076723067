"""The requester stamp comes from userInfo, and its seal breaks on any change to the spec or name."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitgrant.identity.stamp import (
    requester_from_userinfo,
    seal_requester,
    stamp_to_wire,
    verify_requester_seal,
)
from jitgrant.models import AccessRequestSpec, ProofKind

KEY = b"k" * 32


def _spec() -> dict[str, Any]:
    return {
        "policy": "oncall-restart",
        "namespace": "payments",
        "clusterRole": "jit-restart-deployments",
        "duration": "10m",
        "justification": "INC-42",
        "requester": {
            "username": "system:serviceaccount:agents:oncall",
            "uid": "u-1",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "provenBy": "kubernetes",
        },
    }


def test_stamp_takes_everything_from_userinfo() -> None:
    stamp = requester_from_userinfo(
        {
            "username": "alice",
            "uid": "42",
            "groups": ["oncall", "system:authenticated"],
            "extra": {"scopes.example.com": ["a", "b"]},
        }
    )
    assert stamp.username == "alice"
    assert stamp.uid == "42"
    assert stamp.groups == ("oncall", "system:authenticated")
    assert stamp.extra == {"scopes.example.com": ("a", "b")}
    assert stamp.proven_by is ProofKind.KUBERNETES
    assert stamp.issuer is None


@pytest.mark.parametrize("userinfo", [{}, {"username": ""}, {"username": None, "groups": ["x"]}])
def test_stamp_refuses_a_request_without_a_username(userinfo: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no username"):
        requester_from_userinfo(userinfo)


def test_wire_form_of_a_stamp_fits_the_spec_model_and_has_no_nulls() -> None:
    wire = stamp_to_wire(requester_from_userinfo({"username": "alice", "groups": ["g"]}))
    assert "issuer" not in wire and "subject" not in wire
    spec = AccessRequestSpec.model_validate({**_spec(), "requester": wire})
    assert spec.requester is not None and spec.requester.username == "alice"


def test_seal_verifies_for_the_same_spec_and_ignores_key_order_and_nulls() -> None:
    spec = _spec()
    seal = seal_requester(key=KEY, namespace="agents", name="r1", spec=spec)
    assert seal.startswith("v1:")
    reordered = dict(reversed(list(copy.deepcopy(spec).items())))
    reordered["requester"]["issuer"] = None  # the API server prunes nulls; the seal must survive that
    assert verify_requester_seal(key=KEY, namespace="agents", name="r1", spec=reordered, seal=seal)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["requester"].__setitem__("username", "alice"),
        lambda s: s["requester"].__setitem__("groups", ["system:masters"]),
        lambda s: s["requester"].__setitem__("provenBy", "oidc"),
        lambda s: s.__setitem__("clusterRole", "cluster-admin"),
        lambda s: s.__setitem__("namespace", "kube-system"),
        lambda s: s.__setitem__("duration", "15m"),
        lambda s: s.pop("requester"),
    ],
)
def test_seal_breaks_when_the_spec_or_stamp_changes(change: Any) -> None:
    spec = _spec()
    seal = seal_requester(key=KEY, namespace="agents", name="r1", spec=spec)
    changed = copy.deepcopy(spec)
    change(changed)
    assert not verify_requester_seal(key=KEY, namespace="agents", name="r1", spec=changed, seal=seal)


def test_seal_is_bound_to_name_namespace_and_key() -> None:
    spec = _spec()
    seal = seal_requester(key=KEY, namespace="agents", name="r1", spec=spec)
    assert not verify_requester_seal(key=KEY, namespace="agents", name="r2", spec=spec, seal=seal)
    assert not verify_requester_seal(key=KEY, namespace="other", name="r1", spec=spec, seal=seal)
    assert not verify_requester_seal(key=b"x" * 32, namespace="agents", name="r1", spec=spec, seal=seal)


@pytest.mark.parametrize("seal", [None, "", "v1:", "v1:" + "0" * 64, "v2:abc", "garbage\u00e9"])
def test_missing_or_forged_seals_do_not_verify(seal: str | None) -> None:
    assert not verify_requester_seal(key=KEY, namespace="agents", name="r1", spec=_spec(), seal=seal)


@given(
    username=st.text(min_size=1, max_size=30),
    groups=st.lists(st.text(max_size=10), max_size=4),
    other=st.text(min_size=1, max_size=30),
)
def test_any_change_of_username_breaks_the_seal(username: str, groups: list[str], other: str) -> None:
    spec = {**_spec(), "requester": {"username": username, "groups": groups}}
    seal = seal_requester(key=KEY, namespace="ns", name="n", spec=spec)
    assert verify_requester_seal(key=KEY, namespace="ns", name="n", spec=spec, seal=seal)
    forged = {**spec, "requester": {"username": other, "groups": groups}}
    assert verify_requester_seal(key=KEY, namespace="ns", name="n", spec=forged, seal=seal) == (
        other == username
    )
