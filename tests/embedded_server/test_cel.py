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
