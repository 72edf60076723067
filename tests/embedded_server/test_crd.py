"""CustomResourceDefinitions: discovery, status subresource, generation, schema, pruning, CEL rules."""

from __future__ import annotations

import copy

from .conftest import GROUP, TICKETS, VERSION, WIDGETS, Raw, widget

W = f"/apis/{GROUP}/{VERSION}/namespaces/default/widgets"
T = f"/apis/{GROUP}/{VERSION}/namespaces/default/tickets"


def test_discovery_lists_the_custom_resource_and_its_status_subresource(raw: Raw) -> None:
    groups = raw.get("/apis").body
    entry = next(g for g in groups["groups"] if g["name"] == GROUP)
    assert entry["preferredVersion"] == {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
    resources = {r["name"]: r for r in raw.get(f"/apis/{GROUP}/{VERSION}").body["resources"]}
    assert resources["widgets"]["kind"] == "Widget"
    assert resources["widgets"]["namespaced"] is True
    assert resources["widgets"]["shortNames"] == ["wd"]
    assert set(resources["widgets"]["verbs"]) >= {
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
    }
    assert resources["widgets/status"]["verbs"] == ["get", "patch", "update"]
    assert "tickets/status" not in resources


def test_core_discovery(raw: Raw) -> None:
    assert raw.get("/api").body["versions"] == ["v1"]
    resources = {r["name"]: r for r in raw.get("/api/v1").body["resources"]}
    assert resources["serviceaccounts/token"]["kind"] == "TokenRequest"
    assert resources["namespaces"]["namespaced"] is False
    assert raw.get("/version").body["major"] == "1"


def test_creating_a_crd_serves_it_and_deleting_removes_its_objects(raw: Raw) -> None:
    crd = copy.deepcopy(WIDGETS)
    crd["metadata"]["name"] = "gizmos.example.org"
    crd["spec"]["group"] = "example.org"
    crd["spec"]["names"] = {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"}
    assert raw.get("/apis/example.org/v1").status == 404
    created = raw.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).body
    established = {c["type"]: c["status"] for c in created["status"]["conditions"]}
    assert established == {"NamesAccepted": "True", "Established": "True"}
    path = "/apis/example.org/v1/namespaces/default/gizmos"
    body = {"apiVersion": "example.org/v1", "kind": "Gizmo", "metadata": {"name": "g"}, "spec": {"size": 1}}
    assert raw.post(path, body).status == 201
    assert (
        raw.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gizmos.example.org").status == 200
    )
    assert raw.get("/apis/example.org/v1").status == 404
    assert raw.get(path + "/g").status == 404


def test_crd_name_must_match_its_names(raw: Raw) -> None:
    crd = copy.deepcopy(TICKETS)
    crd["metadata"]["name"] = "wrong.example.com"
    reply = raw.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert reply.status == 422


def test_generation_starts_at_one_and_ignores_status_and_metadata(raw: Raw) -> None:
    created = raw.post(W, widget("w")).body
    assert created["metadata"]["generation"] == 1
    labelled = raw.patch(W + "/w", {"metadata": {"labels": {"a": "b"}}}).body
    assert labelled["metadata"]["generation"] == 1
    status = raw.patch(W + "/w/status", {"status": {"phase": "Ready"}}).body
    assert status["metadata"]["generation"] == 1
    changed = raw.patch(W + "/w", {"spec": {"size": 2}}).body
    assert changed["metadata"]["generation"] == 2


def test_status_is_dropped_on_create_and_ignored_on_main_resource_writes(raw: Raw) -> None:
    body = widget("w")
    body["status"] = {"phase": "Forged"}
    created = raw.post(W, body).body
    assert "status" not in created
    raw.patch(W + "/w", {"status": {"phase": "Forged"}})
    assert "status" not in raw.get(W + "/w").body
    current = raw.get(W + "/w").body
    current["status"] = {"phase": "Forged"}
    assert "status" not in raw.put(W + "/w", current).body


def test_status_writes_change_only_status(raw: Raw) -> None:
    raw.post(W, widget("w", owner="alice"))
    reply = raw.patch(
        W + "/w/status",
        {
            "status": {"phase": "Ready"},
            "spec": {"size": 9},
            "metadata": {"labels": {"sneaky": "yes"}, "finalizers": ["x/y"]},
        },
    )
    assert reply.status == 200
    got = raw.get(W + "/w").body
    assert got["status"] == {"phase": "Ready"}
    assert got["spec"]["size"] == 1
    assert "labels" not in got["metadata"] and "finalizers" not in got["metadata"]
    put = raw.get(W + "/w/status").body
    put["status"]["phase"] = "Done"
    assert raw.put(W + "/w/status", put).body["status"]["phase"] == "Done"


def test_custom_resource_without_status_subresource_treats_status_as_content(raw: Raw) -> None:
    created = raw.post(
        T,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Ticket",
            "metadata": {"name": "t"},
            "spec": {"a": 1},
            "status": {"x": 1},
        },
    ).body
    assert created["status"] == {"x": 1}
    assert raw.get(T + "/t/status").status == 404
    assert raw.patch(T + "/t", {"status": {"x": 2}}).body["metadata"]["generation"] == 2


def test_schema_validation_reports_field_paths(raw: Raw) -> None:
    reply = raw.post(
        W,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": "big", "color": "green"},
        },
    )
    assert (reply.status, reply.reason) == (422, "Invalid")
    fields = {c["field"]: c for c in reply.body["details"]["causes"]}
    assert set(fields) == {"spec.size", "spec.color"}
    assert fields["spec.color"]["reason"] == "FieldValueNotSupported"
    assert 'spec.color: Unsupported value: "green": supported values: "red", "blue"' in reply.message
    assert reply.message.startswith('Widget.example.com "w" is invalid: [')
    missing = raw.post(
        W, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    )
    assert missing.body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.size"}
    ]
    too_big = raw.post(W, widget("w", 11))
    assert "spec.size in body should be less than or equal to 10" in too_big.message


def test_unknown_fields_are_pruned_silently_or_refused_when_strict(raw: Raw) -> None:
    body = widget("w", extra={"free": {"form": True}})
    body["spec"]["undeclared"] = "x"
    body["topLevel"] = 1
    reply = raw.post(W, body)
    assert reply.status == 201
    assert "undeclared" not in reply.body["spec"] and "topLevel" not in reply.body
    assert reply.body["spec"]["extra"] == {"free": {"form": True}}  # x-kubernetes-preserve-unknown-fields
    assert 'unknown field "spec.undeclared"' in reply.headers.get("Warning", "")
    # kopf's trap: undeclared status fields vanish too
    raw.patch(W + "/w/status", {"status": {"phase": "Ready", "kopf": {"progress": {}}}})
    assert raw.get(W + "/w").body["status"] == {"phase": "Ready"}
    strict = raw.post(W + "?fieldValidation=Strict", {**widget("w2"), "bogus": 1})
    assert (strict.status, strict.message) == (400, 'strict decoding error: unknown field "bogus"')


def test_defaults_are_applied(raw: Raw) -> None:
    assert raw.post(W, widget("w")).body["spec"]["color"] == "red"


def test_cel_rule_with_message_expression(raw: Raw) -> None:
    reply = raw.post(W, widget("w", 7))
    assert reply.status == 422
    assert reply.body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "object": size 7 needs blue',
            "field": "spec",
        }
    ]
    assert raw.post(W, widget("w", 7, color="blue")).status == 201


def test_cel_transition_rule_makes_a_field_immutable(raw: Raw) -> None:
    assert raw.post(W, widget("w", owner="alice")).status == 201
    assert raw.patch(W + "/w", {"spec": {"size": 2}}).status == 200  # other fields may change
    reply = raw.patch(W + "/w", {"spec": {"owner": "mallory"}})
    assert reply.status == 422
    assert (
        reply.message
        == 'Widget.example.com "w" is invalid: spec: Invalid value: "object": owner is immutable'
    )


def test_cel_self_equals_old_self_makes_the_spec_immutable(raw: Raw) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Ticket", "metadata": {"name": "t"}, "spec": {"a": 1}}
    assert raw.post(T, body).status == 201  # transition rules do not run on create
    assert raw.patch(T + "/t", {"metadata": {"labels": {"ok": "yes"}}}).status == 200
    reply = raw.patch(T + "/t", {"spec": {"a": 2}})
    assert (reply.status, reply.reason) == (422, "Invalid")
    assert "spec is immutable" in reply.message
    assert raw.get(T + "/t").body["spec"] == {"a": 1}


def test_printer_columns_in_table_output(raw: Raw) -> None:
    raw.post(W, widget("w"))
    raw.patch(W + "/w/status", {"status": {"phase": "Ready"}})
    table = raw.get(W, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).body
    assert table["kind"] == "Table"
    # The CRD's columns replace the default Age, as upstream (tests/probes: table/columns).
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Phase"]
    assert table["rows"][0]["cells"][:2] == ["w", "Ready"]
