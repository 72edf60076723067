"""Issue 20 §4 on the embedded cluster: an OIDC token without `jti` is used once, however its
segments are spelled. The webhook verifies it against a local issuer over TLS and records it in the
operator's own replay set (Leases in the API server)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from embedkube import User
from jitgrant.models.vocabulary import OIDC_TOKEN_ANNOTATION
from jitgrant.reactor.runtime import Runtime
from jitgrant_testing.aws import ServiceLoop
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests
from jitgrant_testing.oidc import OIDCIssuer

NS = "agents"
SUBJECT = "repo:acme/checkout:ref:refs/heads/main"


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[OIDCIssuer]:
    loop = ServiceLoop()
    oidc = OIDCIssuer(directory=tmp_path / "oidc")
    try:
        loop.run(oidc.start())
        yield oidc
    finally:
        loop.run(oidc.stop())
        loop.stop()


@pytest.fixture
def env(issuer: OIDCIssuer) -> Iterator[Environment]:
    def trust_issuer(runtime: Runtime) -> None:
        runtime.oidc = issuer.verifier(replay=runtime.oidc.replay)

    with Environment(runtime_hook=trust_issuer, sweep_interval=timedelta(hours=1)) as environment:
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        environment.apply(
            [
                {
                    "apiVersion": "jitgrant.dev/v1alpha1",
                    "kind": "GrantPolicy",
                    "metadata": {"name": "external"},
                    "spec": {
                        "requesters": {"oidc": [issuer.requester(SUBJECT)]},
                        "target": {"type": "InCluster"},
                        "namespaces": ["payments"],
                        "grants": [{"clusterRole": "jit-restart-checkout"}],
                        "approval": {"required": False},
                    },
                }
            ]
        )
        environment.allow_to_request(NS, user="filer")
        yield environment


def refusal_of(call: Callable[[], Any]) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 403, refused.value.body  # kopf answers a refusal with 403
    return str(json.loads(refused.value.body)["message"])


def test_a_token_without_jti_is_refused_the_second_time_however_its_signature_is_spelled(
    env: Environment, issuer: OIDCIssuer
) -> None:
    filer: ApiClient = env.cluster.api_client(token=env.cluster.add_user(User(name="filer", uid="uid-filer")))
    token = issuer.mint(SUBJECT, jti=None)
    header, payload, signature = token.split(".")

    def file(name: str, value: str) -> Callable[[], Any]:
        manifest = {
            "apiVersion": "jitgrant.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {"name": name, "namespace": NS, "annotations": {OIDC_TOKEN_ANNOTATION: value}},
            "spec": {
                "policy": "external",
                "namespace": "payments",
                "clusterRole": "jit-restart-checkout",
                "duration": "5s",
                "justification": "INC-4711 checkout pods stuck",
            },
        }
        return lambda: env.create_request(manifest, client=filer)

    try:
        file("first", token)()
        for name, respelled, reason in (
            ("padded", f"{token}==", "it has '=' padding, which JWS leaves out (RFC 7515 section 2)"),
            ("plus", f"{header}.{payload}.{signature.replace('-', '+').replace('_', '/')}", "characters"),
        ):
            if respelled == token:
                continue  # the signature happened to have neither '-' nor '_'
            message = refusal_of(file(name, respelled))
            assert "OIDC token refused: token's signature is not canonical base64url" in message
            assert reason in message
        again = refusal_of(file("again", token))
        assert "OIDC token refused: token was already used (replayed 'jti')" in again
    finally:
        filer.close()
