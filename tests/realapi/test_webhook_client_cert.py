"""Issue 20 §7: only the API server calls the webhook, where the platform allows it.

A real kube-apiserver is started with `--admission-control-config-file`, whose kubeconfig gives it a
client certificate for webhooks, and the operator's webhook server requires a certificate from that
CA (the chart's `webhook.clientCA`). The API server's calls go through (a request is stamped and
granted); a caller without that certificate, or with one from another CA, is refused at TLS, before
any AdmissionReview is read.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import EXAMPLES, load_manifests
from jitgrant_testing.realenv import RealEnvironment
from jitgrant_testing.tls import ClientCertificate, generate_webhook_tls, issue_client_certificate

NS = "agents"


def _admission_config(directory: Path, client: ClientCertificate) -> Path:
    """What a self-managed control plane's admin writes: the webhook plugins' kubeconfig names a
    client certificate for every webhook (`*`)."""
    kubeconfig = directory / "webhook-client.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "users": [
                    {
                        "name": "*",
                        "user": {
                            "client-certificate": str(client.certfile),
                            "client-key": str(client.pkeyfile),
                        },
                    }
                ],
            }
        )
    )
    plugin = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "WebhookAdmissionConfiguration",
        "kubeConfigFile": str(kubeconfig),
    }
    config = directory / "admission.json"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "AdmissionConfiguration",
                "plugins": [
                    {"name": "ValidatingAdmissionWebhook", "configuration": plugin},
                    {"name": "MutatingAdmissionWebhook", "configuration": plugin},
                ],
            }
        )
    )
    return config


@dataclass
class Pinned:
    env: RealEnvironment
    apiserver: ClientCertificate  # what the API server presents
    stranger: ClientCertificate  # a client certificate from another CA


@pytest.fixture(scope="module")
def pinned(control_plane: ControlPlane) -> Iterator[Pinned]:
    """A control plane whose API server presents a client certificate to webhooks, and jitgrant
    requiring it (the session's control plane is left alone: this one has its own flags)."""
    with tempfile.TemporaryDirectory(prefix="jitgrant-webhook-client-") as tmp:
        directory = Path(tmp)
        client_ca = generate_webhook_tls(directory / "client-ca")  # its CA signs the API server's cert
        apiserver = issue_client_certificate(client_ca, directory / "apiserver")
        stranger = issue_client_certificate(
            generate_webhook_tls(directory / "other-ca"), directory / "stranger"
        )
        config = _admission_config(directory, apiserver)
        args = [f"--admission-control-config-file={config}"]
        with ControlPlane(control_plane.bin_dir, extra_apiserver_args=args) as plane:
            env = RealEnvironment(
                plane=plane, sweep_interval=timedelta(seconds=1), webhook_client_ca=client_ca.cafile
            )
            with env:
                env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
                env.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
                env.create_deployment("payments", "checkout")
                env.allow_to_request(NS, service_account="oncall-agent")
                yield Pinned(env=env, apiserver=apiserver, stranger=stranger)


def _endpoint(env: RealEnvironment) -> tuple[str, int, ssl.SSLContext]:
    """The webhook's address and a context that trusts its serving certificate."""
    hook = env.webhook_configurations()[0]["webhooks"][0]["clientConfig"]
    url = urlparse(hook["url"])
    context = ssl.create_default_context(cadata=base64.b64decode(hook["caBundle"]).decode("ascii"))
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port, context


def _post_review(host: str, port: int, context: ssl.SSLContext) -> str:
    """An AdmissionReview POSTed straight to the webhook, as any pod that reaches the port could:
    the HTTP status line answered, or why there was none."""
    body = json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}
    ).encode()
    try:
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(
                b"POST /validate-request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    except (ssl.SSLError, ConnectionError) as error:
        # TLS 1.3: the server checks the client's certificate after the client's side of the
        # handshake is done, so the refusal arrives as an alert on the first read.
        return f"refused at TLS: {error}"
    return answer.split(b"\r\n", 1)[0].decode() if answer else "refused at TLS: closed without an answer"


def test_the_api_servers_calls_pass_and_callers_without_its_certificate_are_refused_at_tls(
    pinned: Pinned,
) -> None:
    env = pinned.env
    agent = env.client_for_service_account(NS, "oncall-agent")
    request = {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "pinned", "namespace": NS},
        "spec": {
            "policy": "oncall-restart",
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": "5m",
            "justification": "INC-20 client certificates",
        },
    }
    env.create_request(request, client=agent)
    active = env.wait_for_phase(NS, "pinned", "Active", timeout=60)
    # Stamped by the mutating webhook: the API server reached it with its client certificate.
    assert active["spec"]["requester"]["username"] == "system:serviceaccount:agents:oncall-agent"

    host, port, bare = _endpoint(env)
    assert _post_review(host, port, bare).startswith("refused at TLS")  # no client certificate
    foreign = _endpoint(env)[2]
    foreign.load_cert_chain(str(pinned.stranger.certfile), str(pinned.stranger.pkeyfile))
    assert _post_review(host, port, foreign).startswith("refused at TLS")  # one from another CA
    # With the API server's own certificate the same POST gets an HTTP answer: the refusals above
    # were the handshake, not the request.
    trusted = _endpoint(env)[2]
    trusted.load_cert_chain(str(pinned.apiserver.certfile), str(pinned.apiserver.pkeyfile))
    assert _post_review(host, port, trusted).startswith("HTTP/1.1 ")
