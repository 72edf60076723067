"""The CEL functions docs/embedded-cluster.md promises for x-kubernetes-validations rules."""

from __future__ import annotations

import pytest

from embedkube import cel

SELF = {"d": "15m", "items": [1, 2], "name": "checkout"}

WORKING = [
    "has(self.d) && !has(self.nope)",
    "size(self.d) == 3 && self.items.size() == 2",
    'self.d.matches("^[0-9]+m$") && self.d.startsWith("1") && self.d.endsWith("m") && self.d.contains("5")',
    "self.items.all(i, i > 0) && self.items.exists(i, i == 2) && self.items.exists_one(i, i == 2)",
    "self.items.map(i, i * 2) == [2, 4] && self.items.filter(i, i > 1) == [2]",
    'duration("15m") < duration("1h")',
    'timestamp("2024-01-01T00:00:00Z") < timestamp("2025-01-01T00:00:00Z")',
    'int("5") == 5 && string(5) == "5" && 2 in self.items',
    '"A,b".lowerAscii().split(",") == ["a", "b"] && "ab".upperAscii() == "AB"',
    '["a", "b"].join("-") == "a-b" && "  x ".trim() == "x" && "a-b".replace("-", "_") == "a_b"',
    '"abcabc".indexOf("b") == 1 && "abcabc".lastIndexOf("b") == 4 && [1, 2].indexOf(2) == 1',
    '"abc".substring(1) == "bc" && "abc".substring(0, 1) == "a" && "abc".charAt(1) == "b"',
    "[1, 2, 3].sum() == 6 && [3, 1].min() == 1 && [3, 1].max() == 3 && [1, 2].isSorted()",
    '"x1y2".find("[0-9]") == "1" && "x1y2".findAll("[0-9]") == ["1", "2"]',
]


@pytest.mark.parametrize("rule", WORKING)
def test_documented_functions(rule: str) -> None:
    assert cel.evaluate(rule, SELF) is not None
    assert bool(cel.evaluate(rule, SELF))


def test_transition_rule_sees_old_self() -> None:
    assert bool(cel.evaluate("self == oldSelf", {"a": 1}, {"a": 1}, with_old=True))
    assert not bool(cel.evaluate("self == oldSelf", {"a": 1}, {"a": 2}, with_old=True))
    assert cel.mentions_old_self("self.x == oldSelf.x") and not cel.mentions_old_self("self.oldSelfish")


SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.n > 10", "message": "n must exceed 10"},
                {"rule": "self.n >= oldSelf.n", "message": "n may only grow"},
            ],
        },
        "status": {"type": "object"},
    },
}


def test_an_unchanged_value_is_ratcheted_but_its_transition_rules_still_run() -> None:
    """Validation ratcheting (KEP-4008, on by default since Kubernetes 1.30): a rule that fails on a
    value the update leaves as it was does not refuse the update (a status write under a tightened
    rule), a changed value is checked, and rules on oldSelf run either way."""
    old = {"spec": {"n": 5}, "status": {}}
    assert cel.check({"spec": {"n": 5}, "status": {"phase": "x"}}, old, SCHEMA, []) == []
    [changed] = cel.check({"spec": {"n": 6}, "status": {}}, old, SCHEMA, [])
    assert "n must exceed 10" in changed.message
    [created] = cel.check({"spec": {"n": 5}}, None, SCHEMA, [])
    assert created.message.endswith("n must exceed 10")
    [shrunk] = cel.check({"spec": {"n": 11}}, {"spec": {"n": 12}}, SCHEMA, [])
    assert shrunk.message.endswith("n may only grow")
