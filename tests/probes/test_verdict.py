"""The fidelity verdict itself, without any server: each way the known-differences list can go
stale, and a wrong table, is reported by name."""

from __future__ import annotations

from .runner import Observation, P, compare, verdict
from .table import all_probes

PROBES = [
    P("_setup", "admin", "POST", "/x", want=201),
    P("a", "admin", "GET", "/a"),
    P("b", "admin", "GET", "/b"),
]


def seen(status_a: int, status_b: int) -> dict[str, Observation]:
    return {
        "_setup": Observation(201, (), ()),
        "a": Observation(status_a, (), ()),
        "b": Observation(status_b, (), ()),
    }


def test_all_agreeing_with_an_empty_list_is_clean() -> None:
    agree, disagree = compare(PROBES, seen(200, 200), seen(200, 200))
    assert (agree, disagree) == (["a", "b"], [])  # set-up probes are never compared
    assert verdict(PROBES, seen(200, 200), disagree, {}) == []


def test_a_probe_that_starts_to_disagree_fails_by_name() -> None:
    _, disagree = compare(PROBES, seen(200, 200), seen(200, 404))
    assert verdict(PROBES, seen(200, 200), disagree, {}) == [
        "disagrees and is not in known_differences.txt: b"
    ]
    assert verdict(PROBES, seen(200, 200), disagree, {"b": "why"}) == []


def test_a_listed_difference_that_agrees_again_fails_so_the_list_stays_true() -> None:
    _, disagree = compare(PROBES, seen(200, 200), seen(200, 200))
    assert verdict(PROBES, seen(200, 200), disagree, {"a": "why"}) == [
        "listed in known_differences.txt but agrees now (or is gone): a"
    ]


def test_a_probe_whose_expectation_upstream_does_not_meet_is_reported_as_a_table_error() -> None:
    problems = verdict(PROBES, seen(403, 200), [], {})
    assert problems == ["table wrong: a: wanted 200, real server said 403"]


def test_the_table_has_unique_ids_and_at_least_150_compared_probes() -> None:
    probes = all_probes()
    ids = [p.id for p in probes]
    assert len(ids) == len(set(ids))
    assert sum(not p.setup for p in probes) >= 150
