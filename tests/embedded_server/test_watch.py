"""Watch semantics: resourceVersion, 410 Gone, selectors turning into ADDED/DELETED, bookmarks."""

from __future__ import annotations

import threading
import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from embedkube import EmbeddedCluster

from .conftest import Raw

CM = "/api/v1/namespaces/default/configmaps"


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


def test_watch_without_resource_version_starts_with_current_state(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a"}})
    raw.post(CM, {"metadata": {"name": "b"}})
    assert kinds(raw.watch(CM + "?watch=true&timeoutSeconds=1")) == [("ADDED", "a"), ("ADDED", "b")]
    assert kinds(raw.watch(CM + "?watch=1&resourceVersion=0&timeoutSeconds=1")) == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


def test_watch_from_resource_version_sends_only_later_events(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a"}})
    rv = raw.get(CM).body["metadata"]["resourceVersion"]
    raw.patch(CM + "/a", {"data": {"k": "v"}})
    raw.post(CM, {"metadata": {"name": "b"}})
    raw.delete(CM + "/a")
    events = raw.watch_until(f"{CM}?watch=true&resourceVersion={rv}", "b")
    events += raw.watch_until(
        f"{CM}?watch=true&resourceVersion={events[-1]['object']['metadata']['resourceVersion']}", "a"
    )
    assert kinds(events) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_too_old_resource_version_is_410_gone(cluster: EmbeddedCluster, raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a"}})
    rv = raw.get(CM).body["metadata"]["resourceVersion"]
    raw.post(CM, {"metadata": {"name": "b"}})
    cluster.compact()
    events = raw.watch(f"{CM}?watch=true&resourceVersion={int(rv) - 1}&timeoutSeconds=1")
    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"
    assert "too old resource version" in events[0]["object"]["message"]


def test_official_client_raises_410_for_expired_watch(
    cluster: EmbeddedCluster, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    cluster.compact()
    with pytest.raises(ApiException) as caught:
        for _ in kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=str(int(rv) - 1), timeout_seconds=1
        ):
            pass
    assert caught.value.status == 410


def test_label_selector_transitions_become_added_and_deleted(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a", "labels": {"team": "x"}}})
    rv = raw.get(CM).body["metadata"]["resourceVersion"]
    raw.patch(CM + "/a", {"metadata": {"labels": {"team": "y"}}})  # leaves the selection
    raw.patch(CM + "/a", {"data": {"k": "1"}})  # outside: not sent
    raw.patch(CM + "/a", {"metadata": {"labels": {"team": "x"}}})  # enters again
    raw.patch(CM + "/a", {"data": {"k": "2"}})  # inside: MODIFIED
    raw.post(CM, {"metadata": {"name": "other", "labels": {"team": "y"}}})
    raw.post(CM, {"metadata": {"name": "end", "labels": {"team": "x"}}})
    events = raw.watch_until(f"{CM}?watch=true&resourceVersion={rv}&labelSelector=team%3Dx", "end")
    assert kinds(events) == [("DELETED", "a"), ("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "end")]
    assert events[0]["object"]["metadata"]["labels"] == {"team": "y"}  # the new state, as documented


def test_field_selector_on_watch(raw: Raw) -> None:
    rv = raw.get(CM).body["metadata"]["resourceVersion"]
    raw.post(CM, {"metadata": {"name": "a"}})
    raw.post(CM, {"metadata": {"name": "b"}})
    raw.post(CM, {"metadata": {"name": "c"}})
    raw.patch(CM + "/b", {"data": {"k": "v"}})
    events = raw.watch_until(f"{CM}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Db", "b")
    events += raw.watch_until(
        f"{CM}?watch=true&resourceVersion={events[0]['object']['metadata']['resourceVersion']}"
        "&fieldSelector=metadata.name%3Db",
        "b",
    )
    assert kinds(events) == [("ADDED", "b"), ("MODIFIED", "b")]


def test_live_events_reach_an_open_watch(cluster: EmbeddedCluster, core: kubernetes.client.CoreV1Api) -> None:
    seen: list[tuple[str, str]] = []

    def watch() -> None:
        for event in kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map, "default", timeout_seconds=2
        ):
            seen.append((event["type"], event["object"].metadata.name))

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)
    writer = kubernetes.client.CoreV1Api(cluster.api_client())
    writer.create_namespaced_config_map("default", {"metadata": {"name": "live"}})
    writer.delete_namespaced_config_map("live", "default")
    thread.join(timeout=10)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]


def test_watch_timeout_seconds_ends_the_stream(raw: Raw) -> None:
    started = time.monotonic()
    assert raw.watch(CM + "?watch=true&timeoutSeconds=1") == []
    assert 0.9 < time.monotonic() - started < 5


def test_send_initial_events_ends_with_a_bookmark(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "a"}})
    events = raw.watch(
        CM + "?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        "&allowWatchBookmarks=true&timeoutSeconds=1"
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_all_namespaces_and_one_namespace(raw: Raw) -> None:
    raw.post("/api/v1/namespaces", {"metadata": {"name": "other"}})
    rv = raw.get(CM).body["metadata"]["resourceVersion"]
    raw.post(CM, {"metadata": {"name": "a"}})
    raw.post("/api/v1/namespaces/other/configmaps", {"metadata": {"name": "b"}})
    raw.post(CM, {"metadata": {"name": "c"}})
    assert kinds(raw.watch_until(f"/api/v1/configmaps?watch=true&resourceVersion={rv}", "c")) == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("ADDED", "c"),
    ]
    assert kinds(raw.watch_until(f"{CM}?watch=true&resourceVersion={rv}", "c")) == [
        ("ADDED", "a"),
        ("ADDED", "c"),
    ]
