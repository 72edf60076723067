"""CRUD semantics of the embedded API server, checked against the documented API behaviour."""

from __future__ import annotations

import json
import re
import uuid

import kubernetes
import pytest
from kubernetes.client import ApiException

from .conftest import GROUP, VERSION, Raw, widget

CM = "/api/v1/namespaces/default/configmaps"


def test_metadata_is_assigned_by_the_server(raw: Raw) -> None:
    reply = raw.post(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "mine", "generation": 7},
        },
    )
    assert reply.status == 201
    meta = reply.body["metadata"]
    assert uuid.UUID(meta["uid"]) and meta["uid"] != "mine"
    assert meta["resourceVersion"].isdigit()
    # A resourceVersion on a create is refused, as kube-apiserver does (tests/probes: rv/create-with-rv).
    with_rv = raw.post(CM, {"metadata": {"name": "c", "resourceVersion": "99"}})
    assert with_rv.status == 500
    assert "resourceVersion should not be set on objects to be created" in with_rv.message
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    second = raw.post(CM, {"metadata": {"name": "b"}}).body["metadata"]
    assert int(second["resourceVersion"]) > int(meta["resourceVersion"])  # one global counter


def test_generate_name_is_expanded(raw: Raw) -> None:
    names = {raw.post(CM, {"metadata": {"generateName": "job-"}}).body["metadata"]["name"] for _ in range(3)}
    assert len(names) == 3
    assert all(re.fullmatch(r"job-[a-z0-9]{5}", n) for n in names)


def test_name_or_generate_name_is_required(raw: Raw) -> None:
    reply = raw.post(CM, {"metadata": {}})
    assert (reply.status, reply.reason) == (422, "Invalid")
    assert reply.body["details"]["causes"][0]["field"] == "metadata.name"


def test_invalid_name_is_refused(raw: Raw) -> None:
    reply = raw.post(CM, {"metadata": {"name": "Not_Valid"}})
    assert reply.status == 422
    assert 'ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid"' in reply.message


def test_already_exists(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a"}})
    reply = raw.post(CM, {"metadata": {"name": "a"}})
    assert (reply.status, reply.reason, reply.message) == (
        409,
        "AlreadyExists",
        'configmaps "a" already exists',
    )


def test_namespace_must_exist(raw: Raw) -> None:
    reply = raw.post("/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "a"}})
    assert (reply.status, reply.reason, reply.message) == (404, "NotFound", 'namespaces "nowhere" not found')


def test_not_found_status_object(raw: Raw) -> None:
    reply = raw.get("/apis/apps/v1/namespaces/default/deployments/missing")
    assert reply.status == 404
    assert reply.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "group": "apps", "kind": "deployments"},
        "code": 404,
    }


def test_unknown_path_is_404(raw: Raw) -> None:
    assert raw.get("/apis/nope.example.com/v1/things").status == 404


def test_list_with_label_selectors(core: kubernetes.client.CoreV1Api) -> None:
    for name, labels in [
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "db", "env": "prod"}),
        ("c", {"tier": "web"}),
        ("d", {}),
    ]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        return [
            i.metadata.name for i in core.list_namespaced_config_map("default", label_selector=selector).items
        ]

    assert names("tier=web") == ["a", "c"]
    assert names("tier==web,env=prod") == ["a"]
    assert names("tier!=web") == ["b", "d"]  # != matches objects without the label
    assert names("tier in (web, db)") == ["a", "b", "c"]
    assert names("tier notin (web)") == ["b", "d"]
    assert names("env") == ["a", "b"]
    assert names("!env") == ["c", "d"]


def test_field_selectors(core: kubernetes.client.CoreV1Api, raw: Raw) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    for ns in ("default", "other"):
        for name in ("x", "y"):
            core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
    items = core.list_config_map_for_all_namespaces(field_selector="metadata.name=x").items
    assert sorted(i.metadata.namespace for i in items) == ["default", "other"]
    items = core.list_config_map_for_all_namespaces(field_selector="metadata.namespace!=default").items
    assert sorted(i.metadata.name for i in items) == ["x", "y"]
    reply = raw.get("/api/v1/configmaps?fieldSelector=data.x%3Dy")
    assert (reply.status, reply.message) == (400, "field label not supported: data.x")


def test_list_carries_resource_version_and_pages(raw: Raw) -> None:
    for i in range(5):
        raw.post(CM, {"metadata": {"name": f"cm{i}"}})
    listed = raw.get(CM).body
    assert listed["kind"] == "ConfigMapList"
    assert int(listed["metadata"]["resourceVersion"]) >= max(
        int(i["metadata"]["resourceVersion"]) for i in listed["items"]
    )
    page = raw.get(CM + "?limit=2").body
    assert [i["metadata"]["name"] for i in page["items"]] == ["cm0", "cm1"]
    assert page["metadata"]["remainingItemCount"] == 3
    rest = raw.get(CM + "?limit=10&continue=" + page["metadata"]["continue"]).body
    assert [i["metadata"]["name"] for i in rest["items"]] == ["cm2", "cm3", "cm4"]


def test_put_with_stale_resource_version_conflicts(core: kubernetes.client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "1"}})
    created.data = {"k": "2"}
    core.replace_namespaced_config_map("a", "default", created)
    created.data = {"k": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("a", "default", created)
    assert caught.value.status == 409
    status = json.loads(caught.value.body)
    assert status["reason"] == "Conflict"
    assert status["message"].startswith(
        'Operation cannot be fulfilled on configmaps "a": the object has been modified'
    )
    assert core.read_namespaced_config_map("a", "default").data == {"k": "2"}


def test_put_without_resource_version_is_unconditional_for_builtins_only(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a"}})
    assert raw.put(CM + "/a", {"metadata": {"name": "a"}, "data": {"x": "1"}}).status == 200
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/widgets"
    raw.post(path, widget("w"))
    reply = raw.put(path + "/w", widget("w", 2))
    assert reply.status == 422
    assert "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" in reply.message


def test_name_in_body_must_match_url(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a"}})
    reply = raw.put(CM + "/a", {"metadata": {"name": "b"}})
    assert (reply.status, reply.reason) == (400, "BadRequest")


def test_noop_update_keeps_resource_version(raw: Raw) -> None:
    created = raw.post(CM, {"metadata": {"name": "a"}, "data": {"k": "v"}}).body
    again = raw.patch(CM + "/a", {"data": {"k": "v"}}).body
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_merge_json_and_strategic_patches(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "data": {"k": "v"}})
    merged = raw.patch(CM + "/a", {"metadata": {"labels": {"x": None, "z": "3"}}}).body
    assert merged["metadata"]["labels"] == {"y": "2", "z": "3"}
    patched = raw.patch(
        CM + "/a",
        [{"op": "add", "path": "/data/n", "value": "1"}, {"op": "remove", "path": "/data/k"}],
        content_type="application/json-patch+json",
    ).body
    assert patched["data"] == {"n": "1"}
    failed = raw.patch(
        CM + "/a",
        [{"op": "test", "path": "/data/n", "value": "2"}],
        content_type="application/json-patch+json",
    )
    assert failed.status == 422
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]},
            },
        },
    }
    raw.post("/apis/apps/v1/namespaces/default/deployments", deploy)
    smp = raw.patch(
        "/apis/apps/v1/namespaces/default/deployments/d",
        {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}},
        content_type="application/strategic-merge-patch+json",
    ).body
    # strategic merge: containers merged by name, not replaced
    assert smp["spec"]["template"]["spec"]["containers"] == [
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:2"},
    ]
    assert smp["metadata"]["generation"] == 2


def test_custom_resources_refuse_strategic_merge_patch(raw: Raw) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/widgets"
    raw.post(path, widget("w"))
    reply = raw.patch(
        path + "/w", {"spec": {"size": 2}}, content_type="application/strategic-merge-patch+json"
    )
    assert (reply.status, reply.reason) == (415, "UnsupportedMediaType")


def test_patch_with_resource_version_is_checked(raw: Raw) -> None:
    created = raw.post(CM, {"metadata": {"name": "a"}}).body
    raw.patch(CM + "/a", {"data": {"k": "1"}})
    stale = raw.patch(
        CM + "/a",
        {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "data": {"k": "2"}},
    )
    assert (stale.status, stale.reason) == (409, "Conflict")


def test_dry_run_does_not_persist(raw: Raw) -> None:
    reply = raw.post(CM + "?dryRun=All", {"metadata": {"name": "a"}})
    assert reply.status == 201 and reply.body["metadata"]["uid"]
    assert raw.get(CM + "/a").status == 404


def test_finalizers_keep_an_object_until_removed(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a", "finalizers": ["example.com/keep"]}})
    deleted = raw.delete(CM + "/a")
    assert deleted.status == 200
    meta = raw.get(CM + "/a").body["metadata"]
    assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 0
    refused = raw.patch(CM + "/a", {"metadata": {"finalizers": ["example.com/keep", "example.com/more"]}})
    assert refused.status == 422
    assert "no new finalizers can be added if the object is being deleted" in refused.message
    assert raw.delete(CM + "/a").status == 200  # deleting again is harmless
    raw.patch(CM + "/a", {"metadata": {"finalizers": None}})
    assert raw.get(CM + "/a").status == 404


def test_delete_preconditions(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a"}})
    reply = raw.delete(CM + "/a", {"preconditions": {"uid": "not-it"}})
    assert (reply.status, reply.reason) == (409, "Conflict")
    assert raw.delete(CM + "/a", {"propagationPolicy": "Background"}).body["status"] == "Success"


def test_namespace_deletion_removes_its_content(raw: Raw) -> None:
    raw.post("/api/v1/namespaces", {"metadata": {"name": "gone"}})
    raw.post("/api/v1/namespaces/gone/configmaps", {"metadata": {"name": "a"}})
    raw.post("/api/v1/namespaces/gone/configmaps", {"metadata": {"name": "b", "finalizers": ["x/y"]}})
    assert raw.delete("/api/v1/namespaces/gone").status == 200
    ns = raw.get("/api/v1/namespaces/gone").body
    assert ns["status"]["phase"] == "Terminating"
    assert raw.get("/api/v1/namespaces/gone/configmaps/a").status == 404
    refused = raw.post("/api/v1/namespaces/gone/configmaps", {"metadata": {"name": "c"}})
    assert (refused.status, refused.reason) == (403, "Forbidden")
    raw.patch("/api/v1/namespaces/gone/configmaps/b", {"metadata": {"finalizers": None}})
    assert raw.get("/api/v1/namespaces/gone").status == 404


def test_owner_references_are_garbage_collected(raw: Raw) -> None:
    owner = raw.post(CM, {"metadata": {"name": "owner"}}).body
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    raw.post(CM, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    raw.post(CM, {"metadata": {"name": "orphan", "ownerReferences": [ref]}})
    raw.delete(CM + "/owner")
    assert raw.get(CM + "/child").status == 404
    assert raw.get(CM + "/orphan").status == 404
    owner = raw.post(CM, {"metadata": {"name": "owner2"}}).body
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner["metadata"]["uid"]}
    raw.post(CM, {"metadata": {"name": "kept", "ownerReferences": [ref]}})
    raw.delete(CM + "/owner2", {"propagationPolicy": "Orphan"})
    assert "ownerReferences" not in raw.get(CM + "/kept").body["metadata"]


def test_delete_collection(raw: Raw) -> None:
    for name, tier in [("a", "web"), ("b", "web"), ("c", "db")]:
        raw.post(CM, {"metadata": {"name": name, "labels": {"tier": tier}}})
    assert raw.delete(CM + "?labelSelector=tier%3Dweb").status == 200
    assert [i["metadata"]["name"] for i in raw.get(CM).body["items"]] == ["c"]


def test_events_leases_and_secrets_are_plain_crud(raw: Raw) -> None:
    lease = raw.post(
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        {"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}},
    )
    assert lease.status == 201
    event = raw.post(
        "/apis/events.k8s.io/v1/namespaces/default/events",
        {"metadata": {"name": "e"}, "reason": "Test", "note": "hello"},
    )
    assert event.status == 201
    core_event = raw.post(
        "/api/v1/namespaces/default/events",
        {"metadata": {"name": "e"}, "reason": "Test", "involvedObject": {"kind": "Pod", "name": "p"}},
    )
    assert core_event.status == 201
    selected = raw.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dp").body
    assert len(selected["items"]) == 1


def test_owner_in_another_namespace_counts_as_absent(raw: Raw) -> None:
    """Cross-namespace owner references are invalid by design: the collector deletes such dependents."""
    raw.post("/api/v1/namespaces", {"metadata": {"name": "other"}})
    owner = raw.post("/api/v1/namespaces/other/configmaps", {"metadata": {"name": "owner"}}).body
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    assert raw.post(CM, {"metadata": {"name": "dependent", "ownerReferences": [ref]}}).status == 201
    assert raw.get(CM + "/dependent").status == 404
    cluster_owner = raw.post("/api/v1/namespaces", {"metadata": {"name": "owner-ns"}}).body
    ns_ref = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "name": "owner-ns",
        "uid": cluster_owner["metadata"]["uid"],
    }
    assert raw.post(CM, {"metadata": {"name": "kept", "ownerReferences": [ns_ref]}}).status == 201
    assert raw.get(CM + "/kept").status == 200  # a cluster-scoped owner is fine


def test_secret_string_data_becomes_data(core: kubernetes.client.CoreV1Api, raw: Raw) -> None:
    created = core.create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}, "data": {"other": "eHl6"}}
    )
    assert created.data == {"other": "eHl6", "token": "YWJj"} and created.string_data is None
    bad = raw.post(
        "/api/v1/namespaces/default/secrets", {"metadata": {"name": "t"}, "data": {"k": "not base64!"}}
    )
    assert bad.status == 400


def test_immutable_config_maps(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a"}, "data": {"k": "v"}, "immutable": True})
    reply = raw.patch(CM + "/a", {"data": {"k": "w"}})
    assert reply.status == 422 and "field is immutable when `immutable` is set" in reply.message
    assert raw.patch(CM + "/a", {"immutable": False}).status == 422
    assert raw.patch(CM + "/a", {"metadata": {"labels": {"x": "y"}}}).status == 200


def test_malformed_requests_are_status_400(raw: Raw) -> None:
    assert raw.get(CM + "?limit=many").reason == "BadRequest"
    assert raw.post(CM, b"{not json").status == 400
    assert raw.get(CM + "?labelSelector=a%20in%20b").status == 400
    assert raw("POST", "/api/v1/namespaces/default/configmaps/a").reason == "MethodNotAllowed"
