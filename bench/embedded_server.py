"""The embedded API server's own cost, with no operator: webhook calls, token checks, deletes.

Three measurements, each the server's throughput on one kind of request:
- creates through a mutating and a validating webhook (HTTPS, caBundle), as a ServiceAccount;
- GETs authenticated with a ServiceAccount token;
- deleting N RoleBindings one at a time while the others are still stored (garbage collection).

Prints a table (and JSON with --json); asserts nothing. Run: `python bench/embedded_server.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import kubernetes.client

from embedkube import EmbeddedCluster
from jitgrant_testing.webhooks import WebhookServer, allow


def _hook_config(kind: str, ca_bundle: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": f"bench-{kind.lower()}"},
        "webhooks": [
            {
                "name": f"{kind.lower()}.bench.example.com",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "clientConfig": {"url": url, "caBundle": ca_bundle},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ],
            }
        ],
    }


def _sa_client(cluster: EmbeddedCluster) -> kubernetes.client.ApiClient:
    cluster.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bench", "namespace": "default"}}
    )
    cluster.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "bench-admin"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": "default"}],
        }
    )
    admin = kubernetes.client.CoreV1Api(cluster.api_client())
    token = admin.create_namespaced_service_account_token(
        "bench", "default", {"spec": {"audiences": [], "expirationSeconds": 3600}}
    ).status.token
    admin.api_client.close()
    return cluster.api_client(token=token)


def measure(*, creates: int, gets: int, bindings: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with EmbeddedCluster() as cluster, WebhookServer() as hook:
        url = hook.route("/review", allow())
        cluster.create(_hook_config("MutatingWebhookConfiguration", hook.ca_bundle, url))
        cluster.create(_hook_config("ValidatingWebhookConfiguration", hook.ca_bundle, url))
        client = _sa_client(cluster)
        core = kubernetes.client.CoreV1Api(client)
        rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        try:
            started = time.perf_counter()
            for index in range(creates):
                core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{index}"}})
            results["creates_through_2_webhooks_per_s"] = creates / (time.perf_counter() - started)

            started = time.perf_counter()
            for index in range(gets):
                core.read_namespaced_config_map(f"cm-{index % creates}", "default")
            results["sa_token_gets_per_s"] = gets / (time.perf_counter() - started)

            ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
            for index in range(bindings):
                rbac.create_namespaced_role_binding(
                    "default", {"metadata": {"name": f"rb-{index}"}, "roleRef": ref}
                )
            started = time.perf_counter()
            for index in range(bindings):
                rbac.delete_namespaced_role_binding(f"rb-{index}", "default")
            results[f"delete_{bindings}_bindings_s"] = time.perf_counter() - started
        finally:
            client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N (a few seconds)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = parser.parse_args()
    n = 100 if args.quick else 500
    figures = measure(creates=n, gets=2 * n, bindings=4 * n)
    print("embedded server, no operator")
    for key, value in figures.items():
        print(f"  {key:<36} {value:10.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"embedded_server": figures}, fh, indent=2)


if __name__ == "__main__":
    main()
