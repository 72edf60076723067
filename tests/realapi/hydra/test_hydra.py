"""An agent outside the cluster proven by a real identity provider: Ory Hydra (built from its Go module,
on 127.0.0.1 over TLS, memory DSN, JWT access tokens) and the real kube-apiserver of tests/realapi.

The agent is a `client_credentials` machine client. It gets an access token for the audience
`jitgrant`, runs `jitgrant request --oidc-token-file … --wait --kubeconfig-out` and uses the delivered
kubeconfig with the kubectl built from Kubernetes' source until the grant expires. Then every attack the
issue (29) names is tried against tokens Hydra really issued, and the key lifecycle as Hydra runs it:
a rotated-in key (Hydra signs with it at once) and a deleted key (what an IdP does with a compromised
one), timed against the operator's configured key cache.

Refusals are read as the agent sees them: the API server's 403 with the webhook's message. Probing a
token more than once uses server-side dry runs, which verify the token but do not use it up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.identity import request_refresh
from jitgrant.identity.jwks import JWKSCache
from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.models.vocabulary import OIDC_TOKEN_ANNOTATION
from jitgrant_testing.environment import OPERATOR_NAMESPACE, wait_until

from .conftest import AUDIENCE, KEY_CACHE_SETTINGS, Tier

NS = "agents"
FIRST_USES = 40


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def say(pytestconfig: pytest.Config, line: str) -> None:
    """A measured figure, on the terminal whatever the capture mode (CI logs keep it)."""
    reporter = pytestconfig.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"hydra: {line}")


def manifest(tier: Tier, token: str, *, name: str | None = None, duration: str = "10s") -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "AccessRequest",
        "metadata": {
            "name": name or unique("hydra"),
            "namespace": NS,
            "annotations": {OIDC_TOKEN_ANNOTATION: token},
        },
        "spec": {
            "policy": tier.policy,
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": duration,
            "justification": "INC-29 checkout pods stuck",
        },
    }


def agent_client(tier: Tier) -> ApiClient:
    """The Kubernetes identity that files (its RBAC allows create); the token proves who asks."""
    return tier.env.client_for_user("agent")


def file_request(tier: Tier, token: str, *, dry_run: bool = False, name: str | None = None) -> str | None:
    """None when admission accepts the request; else the API server's message (the webhook's refusal)."""
    body = manifest(tier, token, name=name)
    try:
        CustomObjectsApi(agent_client(tier)).create_namespaced_custom_object(
            API_GROUP, API_VERSION, NS, "accessrequests", body, dry_run="All" if dry_run else None
        )
    except ApiException as refused:
        assert refused.status in (400, 403, 422), refused.body
        message: str = json.loads(refused.body)["message"]
        return message
    return None


def refused(tier: Tier, token: str) -> str:
    message = file_request(tier, token, dry_run=True)
    assert message is not None, "the token was accepted"
    return message


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def wait_for(check: Callable[[], bool], *, timeout: float, step: float = 0.25) -> float | None:
    """Seconds until `check()` held, or None if it did not within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start <= timeout:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    return None


# --- the agent path --------------------------------------------------------------------------------


def test_a_machine_client_gets_a_kubeconfig_that_kubectl_uses_until_the_grant_expires(
    tier: Tier, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(tier.hydra.token(tier.agent, audience=AUDIENCE) + "\n")
    token_file.chmod(0o600)
    kubeconfig_out = tmp_path / "grant.kubeconfig"
    name = unique("hydra-cli")
    started = time.monotonic()
    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "jitgrant"),
            "request",
            "--kubeconfig",
            str(tier.plane.kubeconfig_path("agent")),
            "-n",
            NS,
            "--name",
            name,
            "--policy",
            tier.policy,
            "--target-namespace",
            "payments",
            "--cluster-role",
            "jit-restart-checkout",
            "--for",
            "10s",
            "--reason",
            "INC-29 checkout pods stuck",
            "--oidc-token-file",
            str(token_file),
            "--wait",
            "--wait-timeout",
            "60s",
            "--kubeconfig-out",
            str(kubeconfig_out),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    took = time.monotonic() - started
    assert cli.returncode == 0, f"exit {cli.returncode}\nstdout: {cli.stdout}\nstderr: {cli.stderr}"
    say(pytestconfig, f"jitgrant request --wait: Active in {took:.1f}s (CLI start-up included)")
    assert kubeconfig_out.is_file(), f"no kubeconfig written; stderr: {cli.stderr}"
    assert kubeconfig_out.stat().st_mode & 0o077 == 0
    active = tier.env.get_request(NS, name)
    assert active["status"]["phase"] == "Active"
    requester = active["status"].get("requester") or active["spec"].get("requester") or {}
    assert tier.agent.client_id in json.dumps(requester) or tier.agent.client_id in json.dumps(active)

    kubectl = tier.plane.binary("kubectl")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig_out), "-n", "payments", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    # RBAC is served from informers: the new binding takes effect a moment after Active.
    wait_until(
        lambda: run("rollout", "restart", "deployment/checkout").returncode == 0,
        timeout=20,
        what="kubectl rollout restart with the delivered kubeconfig",
    )
    other = run("rollout", "restart", "deployment/ledger")
    assert other.returncode != 0 and "forbidden" in other.stderr.lower(), other.stderr

    tier.env.wait_for_phase(NS, name, "Expired", timeout=40)
    # The grant's ServiceAccount is gone: its token stops authenticating once the API server's token
    # cache (~10 s) lets go; until then RBAC already refuses.
    after = run("rollout", "restart", "deployment/checkout")
    assert after.returncode != 0, after.stdout
    answers: list[str] = []

    def unauthorized() -> bool:
        answers.append(run("get", "deployments").stderr.strip())
        return "unauthorized" in answers[-1].lower()

    assert wait_for(unauthorized, timeout=60, step=1) is not None, answers[-3:]


def test_a_refusal_reaches_the_agent_through_the_cli_with_the_reason(tier: Tier, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(tier.hydra.token(tier.stranger, audience=AUDIENCE))
    token_file.chmod(0o600)
    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "jitgrant"),
            "request",
            "--kubeconfig",
            str(tier.plane.kubeconfig_path("agent")),
            "-n",
            NS,
            "--policy",
            tier.policy,
            "--target-namespace",
            "payments",
            "--cluster-role",
            "jit-restart-checkout",
            "--reason",
            "INC-29",
            "--oidc-token-file",
            str(token_file),
            "--wait",
            "--wait-timeout",
            "30s",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 4, f"exit {cli.returncode}\nstdout: {cli.stdout}\nstderr: {cli.stderr}"
    assert tier.stranger.client_id in cli.stderr, cli.stderr


# --- attacks with tokens Hydra really issued -------------------------------------------------------


def test_a_token_for_another_audience_is_refused(tier: Tier) -> None:
    token = tier.hydra.token(tier.agent, audience="other-api")
    assert parts(token)[1]["aud"] == ["other-api"]
    assert f"does not include '{AUDIENCE}'" in refused(tier, token)


def test_an_expired_token_is_refused(tier: Tier) -> None:
    token = tier.expired_token
    claims = parts(token)[1]
    assert claims["exp"] - claims["iat"] <= 1  # Hydra honoured the client's 1 s lifespan (rounded)
    # Past the verifier's 30 s clock-skew leeway (mostly spent already, in the tests before).
    time.sleep(max(0.0, claims["exp"] + 31 - time.time()))
    assert "token expired at" in refused(tier, token)


def test_a_valid_token_of_a_client_no_policy_names_is_refused(tier: Tier) -> None:
    token = tier.hydra.token(tier.stranger, audience=AUDIENCE)
    message = refused(tier, token)
    assert tier.stranger.client_id in message, message


def test_an_impostor_issuer_with_its_own_keys_is_refused(tier: Tier) -> None:
    """Someone who runs an IdP of their own signs Hydra's claims: under their own kid, and under the
    kid Hydra publishes."""
    header, claims = parts(tier.hydra.token(tier.agent, audience=AUDIENCE))
    impostor_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = {**claims, "jti": secrets.token_hex(16)}
    own_kid = jwt.encode(forged, impostor_key, algorithm="RS256", headers={"kid": "impostor-1"})
    assert "unknown signing key id (kid) 'impostor-1'" in refused(tier, own_kid)
    hydras_kid = jwt.encode(forged, impostor_key, algorithm="RS256", headers={"kid": header["kid"]})
    assert "signature verification failed" in refused(tier, hydras_kid)


def test_a_replayed_token_is_refused(tier: Tier) -> None:
    token = tier.hydra.token(tier.agent, audience=AUDIENCE)
    first = unique("hydra-replay")
    assert file_request(tier, token, name=first) is None
    message = file_request(tier, token)
    assert message is not None and "already used" in message, message
    tier.env.wait_for_phase(NS, first, "Active", timeout=30)


def test_alg_none_is_refused(tier: Tier) -> None:
    header, claims = parts(tier.hydra.token(tier.agent, audience=AUDIENCE))
    unsigned = ".".join(
        [
            b64(json.dumps({"alg": "none", "typ": "JWT", "kid": header["kid"]}).encode()),
            b64(json.dumps(claims).encode()),
            "",
        ]
    )
    assert "algorithm 'none' is not allowed" in refused(tier, unsigned)


def test_hs256_keyed_with_hydras_public_key_is_refused(tier: Tier) -> None:
    """The classic confusion: HMAC with the published RSA key as the secret."""
    header, claims = parts(tier.hydra.token(tier.agent, audience=AUDIENCE))
    [published] = [key for key in tier.hydra.published_keys() if key["kid"] == header["kid"]]
    public_key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(published))
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = ".".join(
        [
            b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}).encode()),
            b64(json.dumps({**claims, "jti": secrets.token_hex(16)}).encode()),
        ]
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert "algorithm 'HS256' is not allowed" in refused(tier, f"{signing_input}.{b64(signature)}")


def test_a_token_whose_kid_names_another_of_hydras_keys_is_refused(tier: Tier) -> None:
    """Two keys published (after a rotation): a genuine token relabelled with the other key's kid."""
    old_header, _ = parts(tier.hydra.token(tier.agent, audience=AUDIENCE))
    new_kid = tier.hydra.rotate_signing_key()
    token = tier.hydra.token(tier.agent, audience=AUDIENCE)
    header, _ = parts(token)
    assert header["kid"] == new_kid != old_header["kid"]
    assert {new_kid, old_header["kid"]} <= {key["kid"] for key in tier.hydra.published_keys()}
    _, payload, signature = token.split(".")
    swapped = ".".join([b64(json.dumps({**header, "kid": old_header["kid"]}).encode()), payload, signature])
    # Whether the operator has fetched the new key yet or not, the old key must not verify it.
    assert "signature verification failed" in refused(tier, swapped)


# --- the key lifecycle as an IdP runs it -------------------------------------------------------------


def configured_key_cache(tier: Tier) -> tuple[float, float]:
    """(TTL, minimum refetch interval) in seconds, as the running operator is configured."""
    settings = tier.runtime_settings
    configured = (settings.jwks_cache_ttl, settings.jwks_refetch_interval)
    assert configured == (KEY_CACHE_SETTINGS["jwks_cache_ttl"], KEY_CACHE_SETTINGS["jwks_refetch_interval"])
    return configured[0].total_seconds(), configured[1].total_seconds()


def accepted_once_fetchable(tier: Tier, token: str) -> None:
    """A precondition: `token` (Hydra's current key) is accepted. An earlier test may have rotated
    that key in just after an unknown kid made the operator refetch, so the operator may fetch it
    only once the refetch interval has passed: wait that long, never longer."""
    _, refetch = configured_key_cache(tier)
    messages: list[str | None] = []

    def accepted() -> bool:
        messages.append(file_request(tier, token, dry_run=True))
        return messages[-1] is None

    took = wait_for(accepted, timeout=refetch + 3)
    assert took is not None, f"Hydra's current key was refused for over {refetch + 3:.0f}s: {messages[-3:]}"


def test_a_rotated_in_key_is_accepted_within_the_refetch_interval(
    tier: Tier, pytestconfig: pytest.Config
) -> None:
    """Hydra signs with a new key the moment it exists: agents must not be refused for long."""
    ttl, refetch = configured_key_cache(tier)
    accepted_once_fetchable(tier, tier.hydra.token(tier.agent, audience=AUDIENCE))
    new_kid = tier.hydra.rotate_signing_key()
    token = tier.hydra.token(tier.agent, audience=AUDIENCE)
    assert parts(token)[0]["kid"] == new_kid
    messages: list[str | None] = []

    def accepted() -> bool:
        messages.append(file_request(tier, token, dry_run=True))
        return messages[-1] is None

    took = wait_for(accepted, timeout=refetch + 3)
    assert took is not None, (
        f"a token signed by the new key {new_kid} was refused for over {refetch + 3:.0f}s: {messages[-3:]}"
    )
    say(
        pytestconfig,
        f"a rotated-in key was accepted after {took:.1f}s (refetch interval {refetch:.0f}s, TTL {ttl:.0f}s)",
    )
    assert file_request(tier, token) is None


def test_a_key_deleted_at_the_idp_is_refused_within_the_ttl(tier: Tier, pytestconfig: pytest.Config) -> None:
    """What an operator does with a compromised key: delete it at the IdP. Tokens it signed must stop
    being accepted within the configured TTL, while tokens of the remaining key still work."""
    ttl, _ = configured_key_cache(tier)
    doomed_token = tier.hydra.token(tier.agent, audience=AUDIENCE)
    doomed_kid = parts(doomed_token)[0]["kid"]
    accepted_once_fetchable(tier, doomed_token)  # fetched, cached and accepted
    successor = tier.hydra.rotate_signing_key()
    tier.hydra.delete_signing_key(doomed_kid)
    assert doomed_kid not in {key["kid"] for key in tier.hydra.published_keys()}
    deleted_at = time.monotonic()
    messages: list[str | None] = []

    def refused_now() -> bool:
        messages.append(file_request(tier, doomed_token, dry_run=True))
        return messages[-1] is not None

    took = wait_for(refused_now, timeout=ttl + 3)
    assert took is not None, (
        f"a token signed by key {doomed_kid}, deleted at the IdP, was still accepted "
        f"{time.monotonic() - deleted_at:.0f}s later (TTL {ttl:.0f}s)"
    )
    assert f"unknown signing key id (kid) '{doomed_kid}'" in str(messages[-1]), messages[-1]
    say(pytestconfig, f"a key deleted at the IdP was refused after {took:.1f}s (TTL {ttl:.0f}s)")
    fresh = tier.hydra.token(tier.agent, audience=AUDIENCE)
    assert parts(fresh)[0]["kid"] == successor
    assert file_request(tier, fresh, dry_run=True) is None


def test_identity_refresh_refuses_a_deleted_key_at_once(tier: Tier, pytestconfig: pytest.Config) -> None:
    """The compromised-key runbook: delete the key at the IdP, then `jitgrant identity refresh`. The
    next token signed by that key is refused, without waiting for the TTL."""
    doomed_token = tier.hydra.token(tier.agent, audience=AUDIENCE)
    doomed_kid = parts(doomed_token)[0]["kid"]
    accepted_once_fetchable(tier, doomed_token)  # fetched, cached and accepted
    tier.hydra.rotate_signing_key()
    tier.hydra.delete_signing_key(doomed_kid)
    started = time.monotonic()
    request_refresh(tier.env.admin, namespace=OPERATOR_NAMESPACE, issuer=tier.hydra.issuer)
    message = file_request(tier, doomed_token, dry_run=True)
    took = time.monotonic() - started
    assert message is not None, "a token of the deleted key was accepted after the refresh"
    assert f"unknown signing key id (kid) '{doomed_kid}'" in message, message
    say(pytestconfig, f"after jitgrant identity refresh, a deleted key was refused in {took:.2f}s")


# --- first uses after fresh key caches ---------------------------------------------------------------


def test_every_key_fetch_from_hydra_succeeds(tier: Tier, pytestconfig: pytest.Config) -> None:
    """40 fresh caches, 40 fetches of Hydra's discovery document and JWKS (1.8 KB, often in two TLS
    records): each must yield the key. A fetcher that reads one chunk fails about 4 in 10."""
    token = tier.hydra.token(tier.agent, audience=AUDIENCE)
    kid = parts(token)[0]["kid"]
    context = tier.hydra.ssl_context()

    async def fetch_once() -> str | None:
        try:
            await JWKSCache(ssl_context=context).key(tier.hydra.issuer, kid)
        except Exception as error:  # every failure is a refusal the agent would see
            return str(error)
        return None

    async def fetch_all() -> list[str | None]:
        return [await fetch_once() for _ in range(FIRST_USES)]

    failures = [message for message in asyncio.run(fetch_all()) if message is not None]
    say(pytestconfig, f"key fetches from Hydra: {FIRST_USES - len(failures)} of {FIRST_USES} succeeded")
    assert not failures, f"{len(failures)} of {FIRST_USES} fetches failed, e.g. {failures[:3]}"


def test_every_first_use_after_a_key_refresh_is_accepted(tier: Tier, pytestconfig: pytest.Config) -> None:
    """End to end, 40 times: `jitgrant identity refresh` (what it writes), so the operator fetches
    Hydra's keys again for the next token, and a valid token through the API server and the webhook.
    Every one must be accepted."""
    refusals: list[str] = []
    for _ in range(FIRST_USES):
        request_refresh(tier.env.admin, namespace=OPERATOR_NAMESPACE, issuer=tier.hydra.issuer)
        message = file_request(tier, tier.hydra.token(tier.agent, audience=AUDIENCE), dry_run=True)
        if message is not None:
            refusals.append(message)
    say(
        pytestconfig, f"first uses after a key refresh: {FIRST_USES - len(refusals)} of {FIRST_USES} accepted"
    )
    assert not refusals, f"{len(refusals)} of {FIRST_USES} valid tokens refused, e.g. {refusals[:3]}"
