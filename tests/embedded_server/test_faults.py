"""The fault injector (embedkube/faults.py): one user's requests refused as asked, others untouched,
and that user's watches cut."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.request

import pytest

from embedkube import EmbeddedCluster, User
from embedkube.authn import MASTERS

from .conftest import Raw

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def _configmap(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}


@pytest.fixture
def victim(cluster: EmbeddedCluster) -> Raw:
    return Raw(cluster, cluster.add_user(User("victim", "uid-victim", (MASTERS,))))


def test_off_by_default(cluster: EmbeddedCluster, victim: Raw) -> None:
    assert not cluster.faults.active
    assert victim.post(CONFIGMAPS, _configmap("one")).status == 201


def test_the_next_n_writes_of_the_user_are_refused_and_nothing_is_stored(
    cluster: EmbeddedCluster, victim: Raw, raw: Raw
) -> None:
    cluster.faults.fail(user="victim", status=429, count=2, retry_after=3)

    assert raw.post(CONFIGMAPS, _configmap("admin-1")).status == 201  # another user: untouched
    for attempt in range(2):
        reply = victim.post(CONFIGMAPS, _configmap("mine"))
        assert (reply.status, reply.reason) == (429, "TooManyRequests"), attempt
        assert reply.headers["Retry-After"] == "3"
        assert reply.body["details"]["retryAfterSeconds"] == 3
        assert raw.get(f"{CONFIGMAPS}/mine").status == 404  # refused before it reached storage
    assert victim.get(f"{CONFIGMAPS}/admin-1").status == 200  # reads are not writes
    assert victim.post(CONFIGMAPS, _configmap("mine")).status == 201  # the count is used up
    assert cluster.faults.injected["429"] == 2


@pytest.mark.parametrize(
    ("status", "reason"), [(409, "Conflict"), (500, "InternalError"), (503, "ServiceUnavailable")]
)
def test_statuses_as_kube_apiserver_words_them(
    cluster: EmbeddedCluster, victim: Raw, status: int, reason: str
) -> None:
    cluster.faults.fail(user="victim", status=status)
    reply = victim.patch(f"{CONFIGMAPS}/x", {"data": {"a": "c"}})
    assert (reply.status, reply.reason, reply.body["kind"]) == (status, reason, "Status")


def test_a_fraction_narrowed_by_verb_and_resource(cluster: EmbeddedCluster, victim: Raw) -> None:
    cluster.faults.fail(
        user="victim", status=(500, 503), fraction=0.3, verbs=["get"], resources=["configmaps"]
    )

    codes = [victim.get(f"{CONFIGMAPS}/none").status for _ in range(200)]
    failed = sum(1 for code in codes if code in (500, 503))
    assert 30 <= failed <= 90, failed  # 60 expected; outside this is a 1-in-10^5 chance
    assert set(codes) <= {404, 500, 503}
    assert all(victim.get("/api/v1/namespaces/default/secrets/none").status == 404 for _ in range(20))
    assert victim.post(CONFIGMAPS, _configmap("written")).status == 201

    cluster.faults.clear()
    assert all(victim.get(f"{CONFIGMAPS}/none").status == 404 for _ in range(20))


def test_refuses_what_it_cannot_inject(cluster: EmbeddedCluster) -> None:
    with pytest.raises(ValueError, match="can inject"):
        cluster.faults.fail(user="victim", status=404)
    with pytest.raises(ValueError, match="fraction"):
        cluster.faults.fail(user="victim", status=500, fraction=1.5)


def _watch_seconds(cluster: EmbeddedCluster, token: str, timeout_seconds: int) -> float:
    """How long a watch stayed open: until its timeout, or until its connection was cut."""
    request = urllib.request.Request(f"{cluster.url}{CONFIGMAPS}?watch=true&timeoutSeconds={timeout_seconds}")
    request.add_header("Authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    except (http.client.IncompleteRead, ConnectionError):
        pass  # cut mid-stream
    return time.monotonic() - started


def test_the_users_watches_are_dropped_every_interval(cluster: EmbeddedCluster, victim: Raw) -> None:
    assert victim.token is not None
    cluster.faults.drop_watches(user="victim", every=0.5)

    assert _watch_seconds(cluster, victim.token, timeout_seconds=20) < 5
    assert _watch_seconds(cluster, cluster.admin_token, timeout_seconds=2) >= 1.9  # others: untouched
    assert cluster.faults.injected["watch-cut"] == 1

    cluster.faults.drop_watches(user="victim", every=None)
    assert _watch_seconds(cluster, victim.token, timeout_seconds=2) >= 1.9


def _watch_in_thread(cluster: EmbeddedCluster, token: str) -> tuple[threading.Thread, list[float]]:
    """A 20 s watch in a thread, returned once the server holds it open."""
    took: list[float] = []
    thread = threading.Thread(target=lambda: took.append(_watch_seconds(cluster, token, timeout_seconds=20)))
    thread.start()
    deadline = time.monotonic() + 5
    while not cluster.faults.open_watches and time.monotonic() < deadline:
        time.sleep(0.02)
    return thread, took


def test_cut_watches_ends_the_open_ones_now(cluster: EmbeddedCluster, victim: Raw) -> None:
    assert victim.token is not None
    thread, took = _watch_in_thread(cluster, victim.token)  # opened with no fault set
    assert cluster.faults.cut_watches(user="someone-else") == 0
    assert cluster.faults.cut_watches(user="victim") == 1
    thread.join(10)
    assert took and took[0] < 6
    assert cluster.faults.injected["watch-cut"] == 1


def test_dropping_watches_reaches_those_already_open(cluster: EmbeddedCluster, victim: Raw) -> None:
    assert victim.token is not None
    thread, took = _watch_in_thread(cluster, victim.token)
    started = time.monotonic()
    cluster.faults.drop_watches(user="victim", every=0.5)
    thread.join(10)
    assert took and 0.4 <= time.monotonic() - started < 6
    assert cluster.faults.injected["watch-cut"] == 1
