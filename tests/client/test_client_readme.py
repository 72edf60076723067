"""The README's `with client.grant(...)` example, run exactly as written, as the agent it is meant for."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from jitgrant_testing.agents import NS, Agents

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [block for block in blocks if "client.grant(" in block]
    assert len(found) == 1, "the README should show exactly one client.grant example"
    return found[0]


def test_the_readme_grant_example_works_as_written(agents: Agents, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(agents.kubeconfig()))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_example(), str(README), "exec"), {})
    line = out.getvalue().strip()
    name = line.split()[0]
    assert re.fullmatch(rf"{re.escape(name)} is active until \d\d:\d\d UTC", line), line
    ended = agents.env.get_request(NS, name)["status"]
    assert (ended["phase"], ended["reason"]) == ("Revoked", "Released")  # given back when the block ended
    assert agents.env.jit_bindings("payments") == []
