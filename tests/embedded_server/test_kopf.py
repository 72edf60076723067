"""kopf end to end: a tiny operator in its own thread and loop, against the embedded cluster over HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kopf
import pytest

from embedkube import EmbeddedCluster

from .conftest import GROUP, VERSION, Raw, widget

W = f"/apis/{GROUP}/{VERSION}/namespaces/default/widgets"


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def operator(cluster: EmbeddedCluster) -> Iterator[list[str]]:
    registry = kopf.OperatorRegistry()
    deleted: list[str] = []

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = "example.com/cleanup"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="example.com")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="example.com")
        settings.watching.server_timeout = 30
        settings.networking.request_timeout = 10

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=cluster.url, token=cluster.admin_token)

    @kopf.on.create(GROUP, VERSION, "widgets", registry=registry, id="observe")
    def observe(spec: dict[str, Any], patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Seen"
        patch.status["observed"] = spec["size"]

    @kopf.on.update(GROUP, VERSION, "widgets", registry=registry, id="resize", field="spec.size")
    def resize(new: int, patch: kopf.Patch, **_: Any) -> None:
        patch.status["observed"] = new

    @kopf.on.delete(GROUP, VERSION, "widgets", registry=registry, id="cleanup")
    def cleanup(name: str, **_: Any) -> None:
        deleted.append(name)

    stop, ready = threading.Event(), threading.Event()

    def run() -> None:
        asyncio.run(
            kopf.operator(
                registry=registry, standalone=True, clusterwide=True, stop_flag=stop, ready_flag=ready
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(15)
    yield deleted
    stop.set()
    thread.join(15)


def test_kopf_operator_handles_create_update_and_delete(raw: Raw, operator: list[str]) -> None:
    raw.post(W, widget("w", 2))

    def status() -> dict[str, Any] | None:
        got: dict[str, Any] | None = raw.get(W + "/w").body.get("status")
        return got

    assert wait_for(lambda: (status() or {}).get("phase") == "Seen")
    obj = raw.get(W + "/w").body
    assert obj["status"] == {"phase": "Seen", "observed": 2}
    assert "example.com/cleanup" in obj["metadata"]["finalizers"]
    assert any(k.startswith("example.com/") for k in obj["metadata"]["annotations"])

    raw.patch(W + "/w", {"spec": {"size": 4}})
    assert wait_for(lambda: (status() or {}).get("observed") == 4)

    raw.delete(W + "/w")
    assert wait_for(lambda: raw.get(W + "/w").status == 404)
    assert operator == ["w"]
