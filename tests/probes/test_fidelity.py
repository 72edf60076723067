"""Differential fidelity: the same probes against the embedded API server and a real kube-apiserver.

Prints "N probes, M agree". Fails when a probe outside known_differences.txt disagrees (embedkube
drifted from upstream), when a listed probe agrees (the list must stay true), or when the real server
does not answer a probe's expected status (the table itself is wrong).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from embedkube import EmbeddedCluster, User
from jitgrant_testing.controlplane import ControlPlane

from .conftest import BUILD, SKIP_REASON, unbuildable
from .replies import ReplyServer
from .runner import USERS, Target, compare, run, verdict
from .table import all_probes

HERE = Path(__file__).resolve().parent
KNOWN = HERE / "known_differences.txt"


def known_differences() -> dict[str, str]:
    """probe id -> why embedkube differs (lines `id  reason`; # comments)."""
    known: dict[str, str] = {}
    for line in KNOWN.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            probe_id, _, reason = line.partition(" ")
            known[probe_id] = reason.strip()
    return known


@pytest.fixture(scope="module")
def real() -> Iterator[Target]:
    if unbuildable():
        pytest.skip(SKIP_REASON)
    if "error" in BUILD:
        pytest.fail(f"could not build the control plane: {BUILD['error']}")
    bin_dir = BUILD.get("bin_dir")
    with ControlPlane(Path(str(bin_dir)) if bin_dir else None) as plane:
        tokens = {user: plane.token(user) for user in USERS}
        yield Target("real", plane.server, tokens, ca_file=str(plane.ca_path), settle=1.0)


@pytest.fixture(scope="module")
def replies() -> Iterator[ReplyServer]:
    """The webhook both servers call for the reply/* probes."""
    with ReplyServer() as server:
        yield server


@pytest.fixture(scope="module")
def embedded() -> Iterator[Target]:
    cluster = EmbeddedCluster(name="probes")
    cluster.start()
    try:
        tokens = {"admin": cluster.admin_token}
        for user, groups in USERS.items():
            if user != "admin":
                tokens[user] = cluster.add_user(User(name=user, uid=f"uid-{user}", groups=groups))
        yield Target("embedded", cluster.url, tokens)
    finally:
        cluster.stop()


def test_the_embedded_server_answers_the_probes_as_kube_apiserver_does(
    real: Target, embedded: Target, replies: ReplyServer
) -> None:
    probes = all_probes(replies.base, replies.ca_bundle)
    ids = [p.id for p in probes]
    assert len(ids) == len(set(ids)), "probe ids must be unique"
    started = time.monotonic()
    on_real = run(real, probes)
    on_embedded = run(embedded, probes)
    agree, disagree = compare(probes, on_real, on_embedded)
    total = len(agree) + len(disagree)
    print(f"\n{total} probes, {len(agree)} agree ({time.monotonic() - started:.1f}s)")
    lines = [
        f"  {i}\n    real:     {on_real[i].show()}\n    embedded: {on_embedded[i].show()}" for i in disagree
    ]
    if lines:
        print("disagreements:\n" + "\n".join(lines))
    problems = verdict(probes, on_real, disagree, known_differences())
    assert not problems, "\n".join(problems) + ("\n" + "\n".join(lines) if lines else "")
