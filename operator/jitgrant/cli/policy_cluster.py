"""`who-can` and `exposure` without `-f`: the GrantPolicies, ClusterRoles and AccessRequests read
from the cluster, then the same offline computation as from files (jitgrant.offline)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from jitgrant.cli.requests import with_cluster
from jitgrant.client.people import PeopleClient
from jitgrant.offline.loader import Manifests, from_objects


def read_cluster(client: PeopleClient, *, requests: bool) -> Manifests:
    """What the offline computation reads (AccessRequests only for `requests`), as the caller's
    credentials may list it."""
    objects: list[dict[str, Any]] = [{**item, "kind": "GrantPolicy"} for item in client.list_policies()]
    if requests:
        listed = client.list_requests(None).get("items") or ()
        objects += [{**item, "kind": "AccessRequest"} for item in listed]
    objects += [{**item, "kind": "ClusterRole"} for item in client.list_cluster_roles()]
    return from_objects(objects, source="cluster")


def from_cluster(
    render: Callable[[argparse.Namespace, Manifests], int], *, requests: bool
) -> Callable[[argparse.Namespace], int]:
    """Run `render` on what the cluster holds (errors become the CLI's usual messages and codes)."""

    @with_cluster
    def run(args: argparse.Namespace, client: PeopleClient) -> int:
        return render(args, read_cluster(client, requests=requests))

    result: Callable[[argparse.Namespace], int] = run
    return result
