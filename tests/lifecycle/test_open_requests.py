"""One open request per requester and scope (the invariant one-open-request-per-scope): the index every
replica keeps and the rule
the reconciler applies to duplicates that raced past admission."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from jitgrant.lifecycle.open_requests import OpenRequests, RefusalTally, limit_refusal, scope_of
from jitgrant.models.policy import RequestLimits


def body(
    name: str,
    *,
    created: str = "2026-01-01T00:00:00Z",
    phase: str | None = None,
    requester: str = "system:serviceaccount:agents:bot",
    role: str = "jit-restart",
    namespace: str = "payments",
    key: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "policy": "oncall",
        "namespace": namespace,
        "clusterRole": role,
        "requester": {"username": requester},
    }
    if key:
        spec["requestKey"] = key
    out: dict[str, Any] = {
        "metadata": {"namespace": "agents", "name": name, "creationTimestamp": created},
        "spec": spec,
    }
    if phase:
        out["status"] = {"phase": phase}
    return out


def test_a_duplicate_names_the_open_request_other_scopes_and_requesters_do_not() -> None:
    index = OpenRequests()
    index.observe(body("first", phase="Pending"))
    found = index.existing_for(body("second"))
    assert found is not None and (found.name, found.shown_phase) == ("first", "Pending")
    assert index.existing_for(body("other-role", role="jit-scale")) is None
    assert index.existing_for(body("other-ns", namespace="orders")) is None
    assert index.existing_for(body("other-agent", requester="alice")) is None


def test_an_ended_or_deleted_request_frees_its_scope() -> None:
    index = OpenRequests()
    index.observe(body("first", phase="Active"))
    index.observe(body("first", phase="Expired"))
    assert index.existing_for(body("second")) is None and len(index) == 0
    index.observe(body("third", phase="Pending"))
    index.forget("agents", "third")
    assert index.existing_for(body("fourth")) is None


def test_inline_rules_are_one_scope_however_their_keys_are_ordered() -> None:
    a = {"policy": "p", "namespace": "n", "rules": [{"verbs": ["get"], "resources": ["pods"]}]}
    b = {"policy": "p", "namespace": "n", "rules": [{"resources": ["pods"], "verbs": ["get"]}]}
    assert scope_of(a) == scope_of(b)


def test_racing_duplicates_leave_exactly_one_whatever_order_the_leader_decides_them_in() -> None:
    """Three duplicates created within one second reached the store (admission had not heard of any).
    However the leader's watch and decisions interleave, exactly one is decided on."""
    names = ["b", "a", "c"]  # same creationTimestamp: the name breaks the tie
    for seen_order in itertools.permutations(names):
        for decide_order in itertools.permutations(names):
            index, survivors = OpenRequests(), []
            for name in seen_order:
                index.observe(body(name))
            for name in decide_order:
                if index.supersedes(body(name)) is None:
                    survivors.append(name)
                    index.observe(body(name, phase="Pending"))  # the leader's own write
                else:
                    index.observe(body(name, phase="Denied"))
            assert len(survivors) == 1, (seen_order, decide_order, survivors)


def test_a_duplicate_seen_only_after_the_first_was_decided_is_the_one_refused() -> None:
    index = OpenRequests()
    index.observe(body("z-late-name", created="2026-01-01T00:00:05Z"))
    assert index.supersedes(body("z-late-name", created="2026-01-01T00:00:05Z")) is None
    index.observe(body("z-late-name", created="2026-01-01T00:00:05Z", phase="Pending"))
    # An earlier-ordered duplicate the leader hears of only now loses to the decided one.
    early = body("a-early", created="2026-01-01T00:00:01Z")
    index.observe(early)
    found = index.supersedes(early)
    assert found is not None and found.name == "z-late-name"


# --- §2: caps and rates per requester ----------------------------------------------------------------

LIMITS_OPEN = RequestLimits(max_open_per_requester=2)
LIMITS_RATE = RequestLimits(max_requests_per_hour=3)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_the_open_cap_counts_every_scope_of_the_policy_and_says_when_a_slot_frees() -> None:
    index = OpenRequests()
    index.observe(body("a", phase="Pending", namespace="payments"))
    active = body("b", phase="Active", namespace="orders")
    active["status"]["expiresAt"] = "2026-01-01T12:10:00Z"
    index.observe(active)
    said = limit_refusal(index, body("c", namespace="ledger"), limits=LIMITS_OPEN, now=NOW)
    assert said is not None
    assert "allows 2 open request(s) per requester (spec.limits.maxOpenPerRequester)" in said
    assert (
        "you have 2 (a Pending, b Active); the next slot frees at 2026-01-01T12:10:00Z, when b ends" in said
    )
    assert limit_refusal(index, body("c", requester="alice"), limits=LIMITS_OPEN, now=NOW) is None
    index.observe(body("a", phase="Denied", namespace="payments"))
    assert limit_refusal(index, body("c", namespace="ledger"), limits=LIMITS_OPEN, now=NOW) is None


def test_the_hourly_rate_counts_ended_and_deleted_requests_and_names_the_next_slot() -> None:
    index = OpenRequests()
    for minute, name in ((5, "a"), (20, "b"), (40, "c")):
        created = f"2026-01-01T11:{minute:02d}:00Z"
        index.observe(body(name, created=created, namespace=name))
        index.observe(body(name, created=created, namespace=name, phase="Expired"))
        index.forget("agents", name)
    said = limit_refusal(index, body("d", namespace="d"), limits=LIMITS_RATE, now=NOW)
    assert said is not None
    assert "allows 3 request(s) per hour per requester" in said
    assert "you filed 3 in the last hour; the next slot frees at 2026-01-01T12:05:00Z" in said
    later = NOW + timedelta(minutes=6)
    assert limit_refusal(index, body("d", namespace="d"), limits=LIMITS_RATE, now=later) is None


def test_racing_requests_past_the_open_cap_leave_exactly_the_cap_at_the_reconciler() -> None:
    names = ["a", "b", "c", "d"]  # four scopes, racing past admission; the cap is two
    for decide_order in itertools.permutations(names):
        index, survivors = OpenRequests(), []
        for name in names:
            index.observe(body(name, namespace=name))
        for name in decide_order:
            if limit_refusal(
                index, body(name, namespace=name), limits=LIMITS_OPEN, now=NOW, at_reconcile=True
            ):
                index.observe(body(name, namespace=name, phase="Denied"))
            else:
                survivors.append(name)
                index.observe(body(name, namespace=name, phase="Pending"))
        assert len(survivors) == 2, (decide_order, survivors)


def test_refusals_are_audited_once_per_requester_per_minute_with_their_count() -> None:
    tally = RefusalTally()
    due = [tally.note("bot", NOW + timedelta(seconds=s)) for s in range(0, 125, 5)]
    # The first at once, then one a minute standing for the ones counted meanwhile.
    assert [n for n in due if n is not None] == [1, 12, 12]
    assert tally.note("alice", NOW) == 1


def test_a_claimed_decision_is_not_undone_by_an_older_event_of_the_same_request() -> None:
    index = OpenRequests()
    index.observe(body("first"))
    index.claim(body("first"))  # decided; its status write has not landed yet
    index.observe(body("first"))  # a watch event from before the write
    index.observe(body("a-second", created="2025-12-31T23:59:59Z"))  # earlier in order, seen late
    found = index.supersedes(body("a-second", created="2025-12-31T23:59:59Z"))
    assert found is not None and found.name == "first"


def test_a_request_evaluated_again_before_its_write_lands_keeps_its_claim() -> None:
    """The leader decided on `late` (claimed), then heard of an earlier-ordered duplicate, then
    evaluated `late` again (a new event) before its write landed: `late` still wins."""
    index = OpenRequests()
    late = body("z-late", created="2026-01-01T00:00:05Z")
    index.observe(late)
    assert index.supersedes(late) is None
    index.claim(late)
    early = body("a-early", created="2026-01-01T00:00:01Z")
    index.observe(early)
    assert index.supersedes(late) is None
    found = index.supersedes(early)
    assert found is not None and found.name == "z-late"
