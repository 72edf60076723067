"""Garbage collection finds dependents through an index of ownerReferences, not a scan: the index
must follow every write, so an owner reference added, removed or changed by an update counts."""

from __future__ import annotations

from .conftest import Raw

CM = "/api/v1/namespaces/default/configmaps"
RB = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"
ROLE_REF = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}


def _owner(raw: Raw, name: str) -> dict[str, str]:
    body = raw.post(CM, {"metadata": {"name": name}}).body
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": body["metadata"]["uid"]}


def test_dependents_of_another_kind_go_with_their_owner(raw: Raw) -> None:
    ref = _owner(raw, "idx-owner")
    raw.post(RB, {"metadata": {"name": "idx-dep", "ownerReferences": [ref]}, "roleRef": ROLE_REF})
    raw.post(RB, {"metadata": {"name": "idx-bystander"}, "roleRef": ROLE_REF})
    raw.delete(CM + "/idx-owner")
    assert raw.get(RB + "/idx-dep").status == 404
    assert raw.get(RB + "/idx-bystander").status == 200


def test_an_owner_reference_added_by_an_update_counts(raw: Raw) -> None:
    ref = _owner(raw, "idx-late-owner")
    raw.post(CM, {"metadata": {"name": "idx-late"}})
    assert raw.patch(CM + "/idx-late", {"metadata": {"ownerReferences": [ref]}}).status == 200
    raw.delete(CM + "/idx-late-owner")
    assert raw.get(CM + "/idx-late").status == 404


def test_an_owner_reference_removed_by_an_update_no_longer_counts(raw: Raw) -> None:
    ref = _owner(raw, "idx-former-owner")
    raw.post(CM, {"metadata": {"name": "idx-freed", "ownerReferences": [ref]}})
    assert raw.patch(CM + "/idx-freed", {"metadata": {"ownerReferences": None}}).status == 200
    raw.delete(CM + "/idx-former-owner")
    assert raw.get(CM + "/idx-freed").status == 200


def test_a_dependent_with_a_remaining_owner_is_kept(raw: Raw) -> None:
    first, second = _owner(raw, "idx-first"), _owner(raw, "idx-second")
    raw.post(CM, {"metadata": {"name": "idx-shared", "ownerReferences": [first, second]}})
    raw.delete(CM + "/idx-first")
    kept = raw.get(CM + "/idx-shared")
    assert kept.status == 200
    assert [r["name"] for r in kept.body["metadata"]["ownerReferences"]] == ["idx-second"]
    raw.delete(CM + "/idx-second")
    assert raw.get(CM + "/idx-shared").status == 404
