"""Fixtures for testing the embedded API server itself, through real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
import pytest

from embedkube import EmbeddedCluster

GROUP, VERSION = "example.com", "v1"

WIDGETS: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                    "owner": {"type": "string"},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "!has(oldSelf.owner) || self.owner == oldSelf.owner",
                                        "message": "owner is immutable",
                                    },
                                    {
                                        "rule": "self.size <= 5 || self.color == 'blue'",
                                        "messageExpression": "'size ' + string(self.size) + ' needs blue'",
                                    },
                                ],
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}, "observed": {"type": "integer"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}

TICKETS: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "tickets.example.com"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "tickets", "singular": "ticket", "kind": "Ticket"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                                "x-kubernetes-validations": [
                                    {"rule": "self == oldSelf", "message": "spec is immutable"}
                                ],
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


@dataclass
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def reason(self) -> str:
        return str((self.body or {}).get("reason", ""))

    @property
    def message(self) -> str:
        return str((self.body or {}).get("message", ""))


class Raw:
    """A plain HTTP client, for what the official client hides (status codes, headers, Status bodies)."""

    def __init__(self, cluster: EmbeddedCluster, token: str | None) -> None:
        self.cluster = cluster
        self.token = token

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        token: str | None = "",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.cluster.url + path, data=data, method=method)
        request.add_header("Content-Type", content_type)
        bearer = self.token if token == "" else token
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw, status, got = response.read(), response.status, response.headers
        except urllib.error.HTTPError as exc:
            raw, status, got = exc.read(), exc.code, exc.headers
        text = raw.decode()
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            try:  # a watch stream: one JSON event per line
                parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
            except ValueError:
                parsed = text
        return Reply(status, parsed, got)

    def get(self, path: str, **kw: Any) -> Reply:
        return self("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Reply:
        return self("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Reply:
        return self("PUT", path, body, **kw)

    def patch(
        self, path: str, body: Any, content_type: str = "application/merge-patch+json", **kw: Any
    ) -> Reply:
        return self("PATCH", path, body, content_type=content_type, **kw)

    def delete(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self("DELETE", path, body, **kw)

    def watch_until(self, path: str, last: str) -> list[dict[str, Any]]:
        """Events of a watch up to the one for the object named ``last`` (a sentinel): fast and exact."""
        request = urllib.request.Request(self.cluster.url + path)
        request.add_header("Authorization", f"Bearer {self.token}")
        events: list[dict[str, Any]] = []
        with urllib.request.urlopen(request, timeout=10) as response:
            for line in response:
                events.append(json.loads(line))
                if events[-1]["object"].get("metadata", {}).get("name") == last:
                    return events
        raise AssertionError(f"the watch ended before {last!r} appeared: {events}")

    def watch(self, path: str, **kw: Any) -> list[dict[str, Any]]:
        """All events of a watch that ends by its timeoutSeconds."""
        reply = self.get(path, **kw)
        assert reply.status == 200, reply.body
        if reply.body is None:
            return []
        return reply.body if isinstance(reply.body, list) else [reply.body]


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(crd_manifests=[WIDGETS, TICKETS]) as c:
        yield c


@pytest.fixture
def raw(cluster: EmbeddedCluster) -> Raw:
    return Raw(cluster, cluster.admin_token)


@pytest.fixture
def core(cluster: EmbeddedCluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(cluster.api_client())


@pytest.fixture
def custom(cluster: EmbeddedCluster) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(cluster.api_client())


def widget(name: str, size: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, **spec},
    }
