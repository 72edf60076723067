"""Run one probe table against an API server and record what it answered.

A probe is one HTTP request made as one of four identities (admin, agent, approver, mallory) or
with a token saved from an earlier answer. What is recorded (the observation) is the status code,
the values at the probe's `look` paths and whether each `frag` occurs in the body: two servers
agree on a probe when their observations are equal. Probes run in order and build on each other
(a Role made by one is used by the next), so both servers see the same sequence. Probes whose id
starts with "_" are set-up: run, never compared.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import urllib3

USERS: Mapping[str, tuple[str, ...]] = {
    "admin": ("system:masters",),
    "agent": ("jitgrant:agents",),
    "approver": ("jitgrant:approvers",),
    "mallory": (),
}


@dataclass(frozen=True)
class P:
    """One probe. `path`, `body` (as JSON text), `token` and header values may hold {name} from `save`."""

    id: str
    user: str
    method: str
    path: str
    body: Any = None
    want: int = 200  # what upstream answers: checked against the real server
    look: tuple[str, ...] = ()  # dotted paths into the JSON answer; special forms in `_look`
    frag: tuple[str, ...] = ()  # substrings of the body whose presence is recorded
    hdr: tuple[str, ...] = ()  # response headers whose values are recorded (e.g. Warning)
    headers: Mapping[str, str] = field(default_factory=dict)
    ctype: str = "application/json"
    token: str | None = None  # a saved variable holding a bearer token, instead of `user`'s
    save: Mapping[str, str] = field(default_factory=dict)  # variable -> dotted path in the answer
    pause: float = 0.0  # seconds to wait first (RBAC informers, the aggregation controller)

    @property
    def setup(self) -> bool:
        return self.id.startswith("_")


@dataclass(frozen=True)
class Observation:
    status: int
    looked: tuple[tuple[str, Any], ...]
    frags: tuple[tuple[str, bool], ...]
    headers: tuple[tuple[str, str | None], ...] = ()

    def show(self) -> str:
        parts = [str(self.status)]
        parts += [f"{k}={v!r}" for k, v in self.looked]
        parts += [f"{'+' if ok else '-'}{f!r}" for f, ok in self.frags]
        parts += [f"{k}: {v!r}" for k, v in self.headers]
        return " ".join(parts)


@dataclass
class Target:
    """An API server: where it is, how to trust it, and a bearer token per identity."""

    name: str
    server: str
    tokens: Mapping[str, str]
    ca_file: str | None = None
    settle: float = 0.0  # extra wait after set-up on a server whose RBAC comes from informers
    pool: urllib3.PoolManager = field(init=False)

    def __post_init__(self) -> None:
        if self.ca_file:
            context = ssl.create_default_context(cafile=self.ca_file)
            self.pool = urllib3.PoolManager(ssl_context=context, retries=False, timeout=15.0)
        else:
            self.pool = urllib3.PoolManager(retries=False, timeout=15.0)


def _fill(text: str, saved: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: saved.get(m.group(1), m.group(0)), text)


def _dig(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


def _look(doc: Any, path: str) -> Any:
    """A dotted path, or: `names` (sorted item names of a list), `events` (watch event types and
    names), `has:<path>` (whether the path holds a value), `len:<path>`, `columns` (a Table's
    column names and types), `cells:<n>` (row n's cells), `rules:<verb>:<group>:<resource>`
    (whether a role's rules allow it, wildcards included)."""
    if path == "names":
        return sorted(str(_dig(i, "metadata.name")) for i in (_dig(doc, "items") or []))
    if path == "events":
        return [(e.get("type"), _dig(e, "object.metadata.name") or _dig(e, "object.code")) for e in doc or []]
    if path == "columns":
        return [(c.get("name"), c.get("type")) for c in (_dig(doc, "columnDefinitions") or [])]
    kind, _, rest = path.partition(":")
    if kind == "has":
        return _dig(doc, rest) not in (None, "", [], {})
    if kind == "len":
        value = _dig(doc, rest)
        return len(value) if isinstance(value, list | dict | str) else None
    if kind == "cells":
        return _dig(doc, f"rows.{rest}.cells")
    if kind == "rules":
        verb, group, resource = rest.split(":")
        for rule in _dig(doc, "rules") or []:
            if (
                set(rule.get("verbs") or []) & {verb, "*"}
                and set(rule.get("apiGroups") or []) & {group, "*"}
                and set(rule.get("resources") or []) & {resource, "*"}
                and not rule.get("resourceNames")
            ):
                return True
        return False
    return _dig(doc, path)


def _parse(data: bytes, watch: bool) -> Any:
    text = data.decode("utf-8", "replace")
    if watch:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    try:
        return json.loads(text)
    except ValueError:
        return None


def run(target: Target, probes: list[P]) -> dict[str, Observation]:
    saved: dict[str, str] = {}
    seen: dict[str, Observation] = {}
    was_setup = False
    for probe in probes:
        if probe.pause:
            time.sleep(probe.pause)
        elif was_setup and not probe.setup and target.settle:
            time.sleep(target.settle)
        was_setup = probe.setup
        token = saved.get(probe.token, "") if probe.token else target.tokens.get(probe.user, probe.user)
        headers = {"Accept": "application/json", **{k: _fill(v, saved) for k, v in probe.headers.items()}}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body: bytes | None = None
        if probe.body is not None:
            headers["Content-Type"] = probe.ctype
            body = _fill(json.dumps(probe.body), saved).encode()
        path = _fill(probe.path, saved)
        response = target.pool.request(
            probe.method, target.server + path, body=body, headers=headers, preload_content=True
        )
        doc = _parse(response.data, "watch=" in path)
        for name, where in probe.save.items():
            value = _look(doc, where)
            saved[name] = "" if value is None else str(value)
        text = response.data.decode("utf-8", "replace")
        seen[probe.id] = Observation(
            status=response.status,
            looked=tuple((p, _look(doc, p)) for p in probe.look),
            frags=tuple((f, f in text) for f in probe.frag),
            headers=tuple((h, response.headers.get(h)) for h in probe.hdr),
        )
    return seen


def compare(
    probes: list[P], first: Mapping[str, Observation], second: Mapping[str, Observation]
) -> tuple[list[str], list[str]]:
    """(agreeing ids, disagreeing ids) over the non-set-up probes."""
    agree: list[str] = []
    disagree: list[str] = []
    for probe in probes:
        if probe.setup:
            continue
        (agree if first[probe.id] == second[probe.id] else disagree).append(probe.id)
    return agree, disagree


def off_expectation(probes: list[P], real: Mapping[str, Observation]) -> list[str]:
    """Probes whose expected status upstream does not give: the table, not the server, is wrong."""
    return [
        f"{p.id}: wanted {p.want}, real server said {real[p.id].show()}"
        for p in probes
        if real[p.id].status != p.want
    ]


def verdict(
    probes: list[P], real: Mapping[str, Observation], disagree: list[str], known: Mapping[str, str]
) -> list[str]:
    """Everything wrong with a run: the table (upstream did not answer as expected), a new
    disagreement (embedkube drifted), or a listed difference that no longer is one (stale list)."""
    problems = [f"table wrong: {line}" for line in off_expectation(probes, real)]
    problems += [f"disagrees and is not in known_differences.txt: {i}" for i in disagree if i not in known]
    problems += [
        f"listed in known_differences.txt but agrees now (or is gone): {i}"
        for i in sorted(set(known) - set(disagree))
    ]
    return problems
