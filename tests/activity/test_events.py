"""audit.k8s.io/v1 Events and the RBAC authorizer's reasons, parsed as the API server writes them."""

from __future__ import annotations

import json

from jitgrant.activity.events import parse_lines, parse_reason

from .conftest import AGENT, BINDING_REASON, T0, audit_event, jsonl


def test_a_role_binding_reason_names_the_binding_its_namespace_role_and_subject() -> None:
    allowed_by = parse_reason(BINDING_REASON)
    assert allowed_by is not None
    assert (allowed_by.kind, allowed_by.name, allowed_by.namespace) == (
        "RoleBinding",
        "jit-restart-checkout",
        "payments",
    )
    assert (allowed_by.role_kind, allowed_by.role) == ("ClusterRole", "jit-restart")
    assert (allowed_by.subject_kind, allowed_by.subject) == ("ServiceAccount", "oncall/agents")


def test_a_cluster_role_binding_reason_has_no_namespace() -> None:
    allowed_by = parse_reason(
        'RBAC: allowed by ClusterRoleBinding "view-all" of ClusterRole "view" to User "alice"'
    )
    assert allowed_by is not None and allowed_by.namespace is None and allowed_by.name == "view-all"


def test_other_authorizers_reasons_name_no_binding() -> None:
    assert parse_reason("") is None
    assert parse_reason('RBAC: allowed by RoleBinding "x/y"') is None  # cut short: not trusted
    assert parse_reason("allowed by webhook") is None


def test_only_the_final_stage_of_a_call_is_kept() -> None:
    started = audit_event(stage="RequestReceived", audit_id="a-1")
    done = audit_event(audit_id="a-1")
    [call] = list(parse_lines(jsonl(started, done).splitlines()))
    assert (call.audit_id, call.verb, call.code, call.username) == ("a-1", "patch", 200, AGENT)
    assert call.target == "apps/deployments" and call.object == "payments/checkout"
    assert call.time == T0.replace(minute=1) and call.allowed_by is not None and not call.refused


def test_a_refused_call_carries_the_forbid_decision_and_no_binding() -> None:
    [call] = list(parse_lines(jsonl(audit_event(verb="delete", code=403)).splitlines()))
    assert call.refused and call.allowed_by is None and call.decision == "forbid"


def test_an_event_list_from_a_webhook_backend_is_unpacked() -> None:
    # As kube-apiserver posts them: the items carry neither kind nor apiVersion, the list does.
    bare = [{k: v for k, v in audit_event().items() if k not in ("kind", "apiVersion")} for _ in range(2)]
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": bare}
    assert len(list(parse_lines([json.dumps(body)]))) == 2


def test_cut_and_foreign_lines_are_skipped_and_the_rest_still_read() -> None:
    lines = [
        b'{"kind":"Event","apiVe',
        b"[]",
        json.dumps({"kind": "Pod"}).encode(),
        *jsonl(audit_event()).splitlines(),
    ]
    assert len(list(parse_lines(lines))) == 1


def test_an_impersonated_call_is_the_impersonated_users() -> None:
    event = audit_event(user="alice")
    event["impersonatedUser"] = {"username": AGENT}
    [call] = list(parse_lines([json.dumps(event)]))
    assert call.username == AGENT
