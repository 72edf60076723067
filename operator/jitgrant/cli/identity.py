"""`jitgrant identity refresh [--issuer URL]`: every operator replica fetches IdP keys again now.

For a compromised or deleted identity-provider key (docs/identity-and-approvals.md, "Compromised IdP
key"): the command writes a new refresh mark on the Lease `jitgrant-identity-refresh` in the
operator's namespace; each replica reads that Lease before it uses cached keys, so no replica
verifies another token with keys fetched before the refresh.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

from jitgrant.cli.kubeconfig import add_cluster_flags


def add_identity_subcommand(sub: Any) -> None:
    identity = sub.add_parser("identity", help="identity providers of external agents")
    commands = identity.add_subparsers(dest="identity_command", metavar="COMMAND", required=True)
    refresh = commands.add_parser(
        "refresh",
        help="make every operator replica fetch the identity providers' keys again now",
        description="Make every operator replica fetch the signing keys of an identity provider (or of "
        "every one) again before it verifies its next token: after a key was removed or compromised "
        "at the IdP. Needs get/create/patch on Leases in the operator's namespace.",
    )
    refresh.add_argument(
        "--issuer", default=None, metavar="URL", help="only this issuer, exactly as policies name it"
    )
    refresh.add_argument(
        "--operator-namespace",
        default="jitgrant-system",
        metavar="NAMESPACE",
        help="where the operator runs (default %(default)s)",
    )
    add_cluster_flags(refresh, namespace=False)
    refresh.set_defaults(func=_refresh)


def _refresh(args: argparse.Namespace) -> int:
    # Imported here: the Kubernetes client costs `jitgrant --help` its speed (test_light_imports).
    from jitgrant.cli.requests import with_cluster

    return with_cluster(cmd_refresh)(args)


def cmd_refresh(args: argparse.Namespace, client: Any) -> int:
    from jitgrant.client import ApiRefused
    from jitgrant.models.vocabulary import IDENTITY_REFRESH_LEASE, IDENTITY_REFRESH_PREFIX, format_time

    # The mark names the operator reads (clusters/identity.py: `all`, or `issuer-<sha256[:16]>`).
    digest = hashlib.sha256(args.issuer.encode()).hexdigest()[:16] if args.issuer else ""
    mark = f"{IDENTITY_REFRESH_PREFIX}{f'issuer-{digest}' if args.issuer else 'all'}"
    # The time for people reading the Lease; the random part so two refreshes never look alike.
    value = f"{format_time(datetime.now(UTC))} {secrets.token_hex(4)}" + (
        f" {args.issuer}" if args.issuer else ""
    )
    path = (
        f"/apis/coordination.k8s.io/v1/namespaces/{args.operator_namespace}/leases/{IDENTITY_REFRESH_LEASE}"
    )
    patch = {"metadata": {"annotations": {mark: value}}}
    try:
        client.call("PATCH", path, body=patch, content_type="application/merge-patch+json")
    except ApiRefused as exc:
        if exc.status != 404:
            raise
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {}}
        lease["metadata"] = {
            "name": IDENTITY_REFRESH_LEASE,
            "namespace": args.operator_namespace,
            **patch["metadata"],
        }
        client.call("POST", path.rsplit("/", 1)[0], body=lease)
    written = f"{mark}={value}"
    which = f"issuer {args.issuer}" if args.issuer else "every issuer"
    print(
        f"refresh requested for {which}: every replica fetches the keys again before the next token it "
        f"verifies (Lease {args.operator_namespace}/{IDENTITY_REFRESH_LEASE}: {written})"
    )
    sys.stdout.flush()
    return 0
