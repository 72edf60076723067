"""Upgrades keep the webhook certificate and the receipt key: the templates `lookup` the live
Secrets and reuse them, so the CA bundle the API server trusts and the receipts already issued
stay valid.

Helm's lookup needs an API server. This one is a stand-in that serves just what lookup asks for
(the core/v1 discovery document and GET of one Secret) from a dict, over real HTTP; every request
it receives is recorded, and anything else is a 404, so the test also shows what Helm asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import helm_python as helm
import pytest

from .conftest import COMBINATIONS, NAMESPACE, RELEASE, manifests_of, only, render

CORE_V1 = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "v1",
    "resources": [
        {
            "name": "secrets",
            "singularName": "secret",
            "namespaced": True,
            "kind": "Secret",
            "verbs": ["get", "list"],
        }
    ],
}


class SecretsApi:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[str] = []

    def respond(self, path: str) -> tuple[int, dict[str, Any]]:
        self.requests.append(path)
        route = path.split("?", 1)[0]
        if route == "/api/v1":
            return 200, CORE_V1
        parts = route.strip("/").split("/")
        if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
            secret = self.secrets.get((parts[3], parts[5]))
            if secret is not None:
                return 200, secret
        return 404, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "NotFound",
            "code": 404,
        }


@pytest.fixture
def api() -> Iterator[tuple[SecretsApi, helm.Config]]:
    state = SecretsApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = state.respond(self.path)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "test", "user": {"token": "test"}}],
        "contexts": [
            {"name": "test", "context": {"cluster": "test", "user": "test", "namespace": NAMESPACE}}
        ],
        "current-context": "test",
    }
    config = helm.Config(kubeconfig_content=json.dumps(kubeconfig), namespace=NAMESPACE)
    try:
        yield state, config
    finally:
        config.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def upgrade(config: helm.Config, chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    files = config.render(chart, values, name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
    return manifests_of(files)


def test_upgrade_reuses_the_live_webhook_certificate_and_receipt_key(
    chart: helm.Chart, api: tuple[SecretsApi, helm.Config]
) -> None:
    state, config = api
    values = COMBINATIONS["generated-cert"]
    installed = render(chart, values)
    for name in ("jitgrant-webhook-tls", "jitgrant-receipt-key"):
        state.secrets[(NAMESPACE, name)] = only(installed, "Secret", name)

    upgraded = upgrade(config, chart, values)

    assert (
        only(upgraded, "Secret", "jitgrant-webhook-tls")["data"]
        == state.secrets[(NAMESPACE, "jitgrant-webhook-tls")]["data"]
    )
    ca = state.secrets[(NAMESPACE, "jitgrant-webhook-tls")]["data"]["ca.crt"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for entry in only(upgraded, kind)["webhooks"]:
            assert entry["clientConfig"]["caBundle"] == ca
    assert (
        only(upgraded, "Secret", "jitgrant-receipt-key")["data"]
        == state.secrets[(NAMESPACE, "jitgrant-receipt-key")]["data"]
    )
    paths = [path.split("?", 1)[0] for path in state.requests]
    assert f"/api/v1/namespaces/{NAMESPACE}/secrets/jitgrant-webhook-tls" in paths
    assert f"/api/v1/namespaces/{NAMESPACE}/secrets/jitgrant-receipt-key" in paths


def test_missing_or_incomplete_secrets_are_generated_anew(
    chart: helm.Chart, api: tuple[SecretsApi, helm.Config]
) -> None:
    state, config = api
    values = COMBINATIONS["generated-cert"]
    installed = render(chart, values)
    incomplete = only(installed, "Secret", "jitgrant-webhook-tls")
    state.secrets[(NAMESPACE, "jitgrant-webhook-tls")] = {
        **incomplete,
        "data": {"tls.crt": incomplete["data"]["tls.crt"], "tls.key": incomplete["data"]["tls.key"]},
    }

    upgraded = upgrade(config, chart, values)

    secret = only(upgraded, "Secret", "jitgrant-webhook-tls")
    assert secret["data"]["tls.crt"] != incomplete["data"]["tls.crt"]  # no ca.crt: a fresh, consistent set
    assert (
        only(upgraded, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]
        == secret["data"]["ca.crt"]
    )
    assert (
        only(upgraded, "Secret", "jitgrant-receipt-key")["data"]["key"]
        != only(installed, "Secret", "jitgrant-receipt-key")["data"]["key"]
    )
