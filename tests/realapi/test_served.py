"""The operator starts watching a CRD only once the API server serves it from its watch cache.

Right after a CRD is created the API server answers a list without a limit (what kopf's first list
is) with 429 "storage is (re)initializing" until the resource's watch cache has loaded, and kopf logs
every retry at ERROR: every fresh `helm install` logged one (issue 23, make e2e). `runner.wait_until_served`
waits for that cache; right after it returns, kopf's list must be answered.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from kubernetes import client, config

from jitgrant.operator.runner import wait_until_served
from jitgrant_testing.controlplane import ControlPlane


def _crd(group: str, plural: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": "Probe", "listKind": "ProbeList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


def test_a_new_crd_is_listed_without_429_once_wait_until_served_returns(control_plane: ControlPlane) -> None:
    group, plural = f"p{secrets.token_hex(4)}.jitgrant.test", "probes"
    with config.new_client_from_config(config_file=str(control_plane.kubeconfig_path("admin"))) as api:
        extensions = client.ApiextensionsV1Api(api)
        extensions.create_custom_resource_definition(_crd(group, plural))
        try:
            start = time.monotonic()
            # Called the moment the CRD exists, as a pod started by the same `helm install` would be.
            waited = asyncio.run(
                wait_until_served(api, group=group, version="v1", plurals=(plural,), give_up_after=30)
            )
            assert waited < 30, f"gave up after {waited:.1f}s: the CRD was never served"
            # kopf's first list: no limit, no selector. A 429 here is what kopf logged at ERROR.
            listed = client.CustomObjectsApi(api).list_cluster_custom_object(group, "v1", plural)
            assert listed["items"] == []
            assert time.monotonic() - start < 30
        finally:
            extensions.delete_custom_resource_definition(f"{plural}.{group}")
