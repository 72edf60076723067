"""`who-can` and `exposure` without `-f`: the GrantPolicies, ClusterRoles and AccessRequests read
from the cluster, then the same offline computation as from files (jitgrant.offline)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient, CustomObjectsApi, RbacAuthorizationV1Api

from jitgrant.cli.requests import with_cluster
from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.offline.loader import Manifests, from_objects


def read_cluster(client: ApiClient, *, requests: bool) -> Manifests:
    """What the offline computation reads (AccessRequests only for `requests`), as the caller's
    credentials may list it."""
    custom = CustomObjectsApi(client)
    objects: list[dict[str, Any]] = []
    kinds = [("grantpolicies", "GrantPolicy")] + ([("accessrequests", "AccessRequest")] if requests else [])
    for plural, kind in kinds:
        listed = custom.list_cluster_custom_object(API_GROUP, API_VERSION, plural)
        objects += [{**item, "kind": kind} for item in listed.get("items") or ()]
    roles = client.sanitize_for_serialization(RbacAuthorizationV1Api(client).list_cluster_role())
    objects += [{**item, "kind": "ClusterRole"} for item in roles.get("items") or ()]
    return from_objects(objects, source="cluster")


def from_cluster(
    render: Callable[[argparse.Namespace, Manifests], int], *, requests: bool
) -> Callable[[argparse.Namespace], int]:
    """Run `render` on what the cluster holds (errors become the CLI's usual messages and codes)."""

    @with_cluster
    def run(args: argparse.Namespace, client: ApiClient) -> int:
        return render(args, read_cluster(client, requests=requests))

    result: Callable[[argparse.Namespace], int] = run
    return result
