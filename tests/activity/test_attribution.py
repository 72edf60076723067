"""Which calls are a grant's, and how that was decided: exact by the authorization reason, else by
identity and window."""

from __future__ import annotations

import json
from datetime import timedelta

from jitgrant.activity.attribution import Basis, GrantIdentity, Outcome, activity
from jitgrant.activity.events import parse_lines

from .conftest import AGENT, T0, audit_event

GRANT = GrantIdentity(
    binding_name="jit-restart-checkout",
    binding_namespace="payments",
    usernames=frozenset({AGENT}),
    start=T0,
    end=T0 + timedelta(minutes=15),
)


def attribute(*events: dict[str, object], grant: GrantIdentity = GRANT) -> list[tuple[str, Outcome, Basis]]:
    calls = parse_lines(json.dumps(event) for event in events)
    return [(item.call.verb, item.outcome, item.basis) for item in activity(calls, grant)]


def test_a_call_the_binding_allowed_is_attributed_exactly() -> None:
    assert attribute(audit_event()) == [("patch", Outcome.THIS_GRANT, Basis.AUTHORIZATION_REASON)]


def test_a_refused_call_by_the_identity_in_the_window_is_listed_as_refused() -> None:
    assert attribute(audit_event(verb="delete", code=403)) == [
        ("delete", Outcome.REFUSED, Basis.IDENTITY_WINDOW)
    ]


def test_a_call_allowed_by_another_binding_is_shown_as_such() -> None:
    other = (
        'RBAC: allowed by RoleBinding "agent-base/payments" of ClusterRole "view" '
        'to ServiceAccount "oncall/agents"'
    )
    assert attribute(audit_event(verb="list", reason=other)) == [
        ("list", Outcome.OTHER, Basis.IDENTITY_WINDOW)
    ]


def test_calls_outside_the_window_or_by_others_are_not_the_grants() -> None:
    before = audit_event(verb="delete", code=403, at=T0 - timedelta(minutes=1))
    after = audit_event(verb="delete", code=403, at=T0 + timedelta(minutes=20))
    someone_else = audit_event(verb="delete", code=403, user="system:serviceaccount:agents:other")
    admin = audit_event(user="kubernetes-admin", reason="")
    assert attribute(before, after, someone_else, admin) == []


def test_the_binding_reason_is_exact_within_the_clock_skew_after_the_end() -> None:
    # The API server's clock and the operator's differ a little: a call stamped just after the end.
    assert attribute(audit_event(at=T0 + timedelta(minutes=15, seconds=3))) == [
        ("patch", Outcome.THIS_GRANT, Basis.AUTHORIZATION_REASON)
    ]


def test_a_binding_recreated_under_an_ended_grants_name_does_not_make_others_calls_the_grants() -> None:
    """Issue 20 §7: the reason names the binding by name alone, and the name is deterministic."""
    recreated = (
        'RBAC: allowed by RoleBinding "jit-restart-checkout/payments" of ClusterRole "edit" to User "mallory"'
    )
    later = T0 + timedelta(hours=2)
    mallory = audit_event(user="mallory", reason=recreated, at=later)
    # Even the grant's own identity, once the grant has ended, is not using this grant any more.
    agent_later = audit_event(
        reason=recreated.replace('User "mallory"', f'ServiceAccount "{AGENT}"'), at=later
    )
    # And inside the window, someone else bound by a same-named binding is not the grant either.
    mallory_inside = audit_event(user="mallory", reason=recreated)
    assert attribute(mallory, agent_later, mallory_inside) == []
    assert attribute(audit_event()) == [("patch", Outcome.THIS_GRANT, Basis.AUTHORIZATION_REASON)]


def test_a_per_grant_service_account_has_no_other_permission_to_use() -> None:
    dedicated = GrantIdentity(**{**GRANT.__dict__, "dedicated": True})
    assert attribute(audit_event(reason=""), grant=dedicated) == [
        ("patch", Outcome.THIS_GRANT, Basis.IDENTITY_WINDOW)
    ]
    assert attribute(audit_event(reason="")) == [("patch", Outcome.UNKNOWN, Basis.IDENTITY_WINDOW)]


def test_an_eks_role_session_named_after_the_request_identifies_the_grant() -> None:
    eks = GrantIdentity(**{**GRANT.__dict__, "usernames": frozenset(), "session_name": "restart-checkout"})
    event = audit_event(
        verb="delete",
        code=403,
        user="arn:aws:sts::1:assumed-role/agent/restart-checkout",
        extra={
            "sessionName": ["restart-checkout"],
            "arn": ["arn:aws:sts::1:assumed-role/agent/restart-checkout"],
        },
    )
    assert attribute(event, grant=eks) == [("delete", Outcome.REFUSED, Basis.IDENTITY_WINDOW)]


def test_calls_come_out_in_time_order_and_each_once() -> None:
    late, early = audit_event(verb="get", at=T0 + timedelta(minutes=5)), audit_event(verb="patch")
    assert [verb for verb, _, _ in attribute(late, early, late)] == ["patch", "get"]
