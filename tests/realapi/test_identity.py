"""External agents' identity providers, on a real kube-apiserver: what the API server makes of a
hanging IdP, and `jitgrant identity refresh` reaching every replica through the Lease.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CoordinationV1Api, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.cli.main import main as jitgrant
from jitgrant.clusters.identity import LeaseRefreshMarks, issuer_mark_name
from jitgrant.identity.jwks import JWKSCache
from jitgrant.identity.oidc import OIDCVerifier, TokenRefused
from jitgrant.models import OIDCRequester
from jitgrant.models.vocabulary import IDENTITY_REFRESH_LEASE, OIDC_TOKEN_ANNOTATION
from jitgrant_testing.aws import ServiceLoop
from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import wait_until
from jitgrant_testing.oidc import AUDIENCE, OIDCIssuer, public_jwk
from jitgrant_testing.rawhttp import RawHTTPServer
from jitgrant_testing.rawissuer import RawIssuer
from jitgrant_testing.realenv import RealEnvironment

NS = "agents"
OPERATOR_NAMESPACE = "jitgrant-system"
SUBJECT = "hydra-client-1"


@pytest.fixture(scope="module", autouse=True)
def agent_may_file(real_env: RealEnvironment) -> Iterator[None]:
    """The agent's right to file, removed afterwards when this module granted it (other modules of
    the session grant it themselves and would meet a 409)."""
    try:
        real_env.allow_to_request(NS, user="agent")
    except ApiException as exc:
        if exc.status != 409:
            raise
        yield
        return
    yield
    RbacAuthorizationV1Api(real_env.admin).delete_namespaced_role_binding("jitgrant-requester-agent", NS)


@pytest.fixture(scope="module")
def loop() -> Iterator[ServiceLoop]:
    running = ServiceLoop()
    yield running
    running.stop()


def _policy(real_env: RealEnvironment, issuer_url: str) -> str:
    name = f"idp-{secrets.token_hex(3)}"
    real_env.apply(
        [
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": name},
                "spec": {
                    "requesters": {
                        "oidc": [{"issuer": issuer_url, "audience": AUDIENCE, "subjects": [SUBJECT]}]
                    },
                    "target": {"type": "InCluster"},
                    "namespaces": ["payments"],
                    "grants": [{"clusterRole": "jit-restart-checkout"}],
                    "maxDuration": "15m",
                    "approval": {"required": False},
                },
            }
        ]
    )
    return name


def _file(real_env: RealEnvironment, *, policy: str, token: str) -> tuple[float, ApiException | None]:
    name = f"idp-{secrets.token_hex(3)}"
    manifest: dict[str, Any] = {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": NS, "annotations": {OIDC_TOKEN_ANNOTATION: token}},
        "spec": {
            "policy": policy,
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": "5m",
            "justification": "INC-29 hanging IdP",
        },
    }
    started = time.monotonic()
    try:
        real_env.create_request(manifest, client=real_env.client_for_user("agent"))
    except ApiException as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


@pytest.mark.parametrize(
    "behaviour", [{"silent": True}, {"stall": True}], ids=["never-answers", "tls-then-stalls"]
)
def test_a_hanging_idp_gets_jitgrants_refusal_within_3_s_not_the_api_servers_500(
    real_env: RealEnvironment,
    loop: ServiceLoop,
    tmp_path: Path,
    behaviour: dict[str, bool],
) -> None:
    server = RawHTTPServer(tmp_path / "idp", **behaviour)
    loop.run(server.start())
    idp = RawIssuer(server)
    idp.publish()
    runtime = real_env.operator.runtime
    assert runtime is not None
    before = runtime.oidc
    runtime.oidc = OIDCVerifier(
        keys=JWKSCache(ssl_context=server.ssl_context(), fetch_budget=timedelta(seconds=3))
    )
    try:
        policy = _policy(real_env, idp.url)
        took, refused = _file(real_env, policy=policy, token=idp.mint(subject=SUBJECT))
    finally:
        runtime.oidc = before
        loop.run(server.stop())
    assert refused is not None, "a request was filed although its IdP never answered"
    message = json.loads(refused.body)["message"]
    print(f"\nhanging IdP ({next(iter(behaviour))}): HTTP {refused.status} after {took:.2f} s: {message}")
    assert refused.status == 503
    assert f"identity provider {idp.url} did not answer within 3 s; nothing was filed" in message
    assert took < 4.5


def test_a_fetch_as_long_as_the_webhook_timeout_was_the_api_servers_500(
    real_env: RealEnvironment, loop: ServiceLoop, tmp_path: Path
) -> None:
    """The old behaviour, for contrast: 10 s per GET meets the webhook's 10 s timeout first."""
    server = RawHTTPServer(tmp_path / "idp", stall=True)
    loop.run(server.start())
    idp = RawIssuer(server)
    idp.publish()
    runtime = real_env.operator.runtime
    assert runtime is not None
    before = runtime.oidc
    runtime.oidc = OIDCVerifier(
        keys=JWKSCache(ssl_context=server.ssl_context(), fetch_budget=timedelta(seconds=12))
    )
    try:
        policy = _policy(real_env, idp.url)
        took, refused = _file(real_env, policy=policy, token=idp.mint(subject=SUBJECT))
    finally:
        runtime.oidc = before
        loop.run(server.stop())
    assert refused is not None
    print(f"\nfetch budget 12 s: HTTP {refused.status} after {took:.2f} s: {refused.reason}")
    assert refused.status == 500
    assert "context deadline exceeded" in str(refused.body)


def _accepts(verifier: OIDCVerifier, issuer: OIDCIssuer, loop: ServiceLoop, kid: str) -> bool:
    config = OIDCRequester(issuer=issuer.url, audience=AUDIENCE, subjects=(SUBJECT,))
    try:
        loop.run(verifier.verify(issuer.mint(SUBJECT, kid=kid), issuer=config))
    except TokenRefused as refused:
        assert "unknown signing key id" in str(refused), refused
        return False
    return True


def test_identity_refresh_makes_every_replica_drop_a_deleted_key_at_once(
    real_env: RealEnvironment, control_plane: ControlPlane, loop: ServiceLoop, tmp_path: Path
) -> None:
    issuer = OIDCIssuer(directory=tmp_path / "idp")
    loop.run(issuer.start())
    try:
        # Two replicas, each with its own cache, reading the Lease as the operator's ServiceAccount
        # (the chart's rights): the Lease path, not a stand-in.
        operator = real_env.client_for_service_account(OPERATOR_NAMESPACE, "jitgrant")
        replicas = [
            OIDCVerifier(
                keys=JWKSCache(
                    ssl_context=issuer.ssl_context(),
                    refresh=LeaseRefreshMarks(operator, namespace=OPERATOR_NAMESPACE),
                )
            )
            for _ in range(2)
        ]
        assert all(_accepts(replica, issuer, loop, "rsa-1") for replica in replicas)
        issuer.published[:] = [jwk for jwk in issuer.published if jwk["kid"] != "rsa-1"]
        issuer.published.append(public_jwk(issuer.keys["ec-1"], kid="ec-2"))
        # The IdP deleted the key; the replicas' caches (5 minutes) still hold it.
        assert all(_accepts(replica, issuer, loop, "rsa-1") for replica in replicas)

        started = time.monotonic()
        code = jitgrant(
            [
                "identity",
                "refresh",
                "--issuer",
                issuer.url,
                "--kubeconfig",
                str(control_plane.kubeconfig_path("admin")),
            ]
        )
        assert code == 0
        refused = [not _accepts(replica, issuer, loop, "rsa-1") for replica in replicas]
        took = time.monotonic() - started
        print(f"\nrefresh to refusal on both replicas: {took:.2f} s")
        assert refused == [True, True]
        assert took < 3.0
        lease = CoordinationV1Api(real_env.admin).read_namespaced_lease(
            IDENTITY_REFRESH_LEASE, OPERATOR_NAMESPACE
        )
        assert issuer.url in lease.metadata.annotations[issuer_mark_name(issuer.url)]
    finally:
        loop.run(issuer.stop())


def test_identity_refresh_needs_rights_on_the_lease(
    real_env: RealEnvironment, control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = control_plane.kubeconfig_path("mallory")
    code = jitgrant(["identity", "refresh", "--kubeconfig", str(kubeconfig)])
    assert code == 4
    assert "forbidden" in capsys.readouterr().err.lower()


# --- per-issuer CA bundles and the policy's Ready condition -----------------------------------------


def _ready(real_env: RealEnvironment, name: str, *, status: str) -> dict[str, Any]:
    def condition() -> dict[str, Any] | None:
        body = CustomObjectsApi(real_env.admin).get_cluster_custom_object(
            "jitgrant.dev", "v1alpha1", "grantpolicies", name
        )
        for entry in (body.get("status") or {}).get("conditions") or ():
            if entry.get("type") == "Ready" and entry.get("status") == status:
                return dict(entry)
        return None

    return wait_until(condition, timeout=30, what=f"GrantPolicy {name} Ready={status}")


def _oidc_policy(real_env: RealEnvironment, entry: dict[str, Any]) -> str:
    name = f"idp-{secrets.token_hex(3)}"
    real_env.apply(
        [
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": name},
                "spec": {
                    "requesters": {"oidc": [{"audience": AUDIENCE, "subjects": [SUBJECT], **entry}]},
                    "target": {"type": "InCluster"},
                    "namespaces": ["payments"],
                    "grants": [{"clusterRole": "jit-restart-checkout"}],
                    "maxDuration": "15m",
                    "approval": {"required": False},
                },
            }
        ]
    )
    return name


@pytest.fixture(scope="module")
def private_idp(
    real_env: RealEnvironment, loop: ServiceLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OIDCIssuer, str]]:
    """An IdP whose certificate only its own CA vouches for, that CA in a Secret of the operator's
    namespace (name returned)."""
    issuer = OIDCIssuer(directory=tmp_path_factory.mktemp("private-idp"))
    loop.run(issuer.start())
    secret = f"idp-ca-{secrets.token_hex(3)}"
    core = CoreV1Api(real_env.admin)
    core.create_namespaced_secret(
        OPERATOR_NAMESPACE,
        {"metadata": {"name": secret}, "stringData": {"ca.crt": issuer.tls.ca_pem.decode()}},
    )
    try:
        with real_env.ca_bundle_secrets(secret):  # the chart's identity.caBundleSecrets
            yield issuer, secret
    finally:
        core.delete_namespaced_secret(secret, OPERATOR_NAMESPACE)
        loop.run(issuer.stop())


def test_an_issuer_spelled_otherwise_than_its_discovery_document_makes_the_policy_not_ready(
    real_env: RealEnvironment, private_idp: tuple[OIDCIssuer, str]
) -> None:
    issuer, secret = private_idp
    slash = _oidc_policy(real_env, {"issuer": issuer.url + "/", "caBundle": {"secret": secret}})
    condition = _ready(real_env, slash, status="False")
    print(f"\ntrailing slash: Ready=False ({condition['reason']}) {condition['message']}")
    assert condition["reason"] == "IssuerMismatch"
    assert condition["message"] == (
        f"requesters.oidc[0].issuer is '{issuer.url}/' but its discovery document names '{issuer.url}'; "
        "tokens carry the IdP's spelling and are compared exactly, so every one would be refused: "
        f"write '{issuer.url}'"
    )
    exact = _oidc_policy(real_env, {"issuer": issuer.url, "caBundle": {"secret": secret}})
    assert _ready(real_env, exact, status="True")["reason"] == "PolicyReady"


def test_a_private_ca_is_trusted_only_through_the_issuers_ca_bundle(
    real_env: RealEnvironment, private_idp: tuple[OIDCIssuer, str]
) -> None:
    issuer, _ = private_idp
    untrusted = _oidc_policy(real_env, {"issuer": issuer.url})
    condition = _ready(real_env, untrusted, status="Unknown")
    assert condition["reason"] == "IssuerUnavailable"
    assert "the TLS certificate is not trusted" in condition["message"]
    assert "name it in the issuer's caBundle" in condition["message"]
    # A ConfigMap needs the chart's identity.caBundleConfigMaps (none here): refused by RBAC, and said so.
    configmap = _oidc_policy(real_env, {"issuer": issuer.url, "caBundle": {"configMap": "idp-ca"}})
    condition = _ready(real_env, configmap, status="Unknown")
    assert "the operator may not read it" in condition["message"], condition


def test_a_token_from_an_idp_behind_a_private_ca_files_through_the_ca_bundle(
    real_env: RealEnvironment, private_idp: tuple[OIDCIssuer, str]
) -> None:
    """The operator's own JWKS cache (the runner's, with the Secret reader): the production path."""
    issuer, secret = private_idp
    policy = _oidc_policy(real_env, {"issuer": issuer.url, "caBundle": {"secret": secret}})
    runtime = real_env.operator.runtime
    assert runtime is not None and runtime.identity_keys is not None
    before = runtime.oidc
    runtime.oidc = OIDCVerifier(keys=runtime.identity_keys)
    try:
        _, refused = _file(real_env, policy=policy, token=issuer.mint(SUBJECT))
    finally:
        runtime.oidc = before
    assert refused is None, refused and refused.body
