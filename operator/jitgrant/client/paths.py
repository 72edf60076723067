"""The API paths of jitgrant's resources, for the client and for people's tools beside it (the CLI,
the console) that make their own calls on a `jitgrant.client.Connection`."""

from __future__ import annotations

from urllib.parse import quote

from jitgrant.models import API_GROUP, API_VERSION

REQUESTS = "accessrequests"
POLICIES = "grantpolicies"
# Every namespace's requests (a list or watch the caller's RBAC must allow cluster-wide).
ALL_REQUESTS = f"/apis/{API_GROUP}/{API_VERSION}/{REQUESTS}"


def request_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{quote(namespace)}/{REQUESTS}"
    return f"{base}/{quote(name)}" if name else base


def policy_path(name: str | None = None) -> str:
    base = f"/apis/{API_GROUP}/{API_VERSION}/{POLICIES}"
    return f"{base}/{quote(name)}" if name else base
