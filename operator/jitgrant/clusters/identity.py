"""What the identity adapter reads from the operator's own cluster: per-issuer CA bundles, and the
refresh marks `jitgrant identity refresh` writes.

Refresh marks live as annotations on one Lease in the operator's namespace (IDENTITY_REFRESH_LEASE;
the operator already reads Leases for leader election and the replay set, so no new right is needed).
Each replica reads the Lease before it uses cached keys (one short GET per OIDC-authenticated
request), so a refresh reaches every replica, including one whose watch would have lagged, and no
replica verifies another token with keys fetched before the refresh.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from kubernetes.client import ApiClient, CoordinationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.identity.jwks import JWKSError
from jitgrant.models.policy import CABundleRef
from jitgrant.models.vocabulary import IDENTITY_REFRESH_LEASE, IDENTITY_REFRESH_PREFIX, format_time

_TIMEOUT = (1.0, 1.0)
ALL_ISSUERS = "all"


def issuer_mark_name(issuer: str) -> str:
    """The annotation holding one issuer's refresh mark (a hash: a URL is no annotation name)."""
    return f"{IDENTITY_REFRESH_PREFIX}issuer-{hashlib.sha256(issuer.encode()).hexdigest()[:16]}"


ALL_MARK_NAME = f"{IDENTITY_REFRESH_PREFIX}{ALL_ISSUERS}"


def mark_for(annotations: Mapping[str, str], issuer: str) -> str:
    """An issuer's current mark: it changes when a refresh names the issuer or every issuer."""
    return f"{annotations.get(ALL_MARK_NAME, '')}|{annotations.get(issuer_mark_name(issuer), '')}"


class LeaseRefreshMarks:
    """`RefreshMarks` for the JWKS cache, read from the refresh Lease (none yet: an empty mark)."""

    def __init__(self, client: ApiClient, *, namespace: str) -> None:
        self._api = CoordinationV1Api(client)
        self._namespace = namespace

    async def mark(self, issuer: str) -> str:
        try:
            lease = await asyncio.to_thread(
                self._api.read_namespaced_lease,
                IDENTITY_REFRESH_LEASE,
                self._namespace,
                _request_timeout=_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:
                return mark_for({}, issuer)
            raise
        return mark_for(lease.metadata.annotations or {}, issuer)


def request_refresh(
    client: ApiClient,
    *,
    namespace: str,
    issuer: str | None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> str:
    """Write a new refresh mark (for `issuer`, or every issuer); the annotation written and its value."""
    api = CoordinationV1Api(client)
    name = ALL_MARK_NAME if issuer is None else issuer_mark_name(issuer)
    # The time for people reading the Lease; the random part so two refreshes never look alike.
    value = f"{format_time(clock())} {secrets.token_hex(4)}" + (f" {issuer}" if issuer else "")
    try:
        api.patch_namespaced_lease(
            IDENTITY_REFRESH_LEASE,
            namespace,
            {"metadata": {"annotations": {name: value}}},
            _request_timeout=(5.0, 10.0),
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": IDENTITY_REFRESH_LEASE,
                "namespace": namespace,
                "annotations": {name: value},
            },
            "spec": {},
        }
        api.create_namespaced_lease(namespace, body, _request_timeout=(5.0, 10.0))
    return f"{name}={value}"


class ClusterCABundles:
    """`CABundleSource`: the PEM bundle a policy issuer's caBundle names, in the operator's namespace."""

    def __init__(self, client: ApiClient, *, namespace: str) -> None:
        self._api = CoreV1Api(client)
        self._namespace = namespace

    async def pem(self, ref: CABundleRef) -> str:
        where = f"caBundle {ref.source} (namespace {self._namespace}), key {ref.key!r}"
        try:
            if ref.config_map is not None:
                config_map = await asyncio.to_thread(
                    self._api.read_namespaced_config_map,
                    ref.config_map,
                    self._namespace,
                    _request_timeout=_TIMEOUT,
                )
                text: str | None = (config_map.data or {}).get(ref.key)
            else:
                assert ref.secret is not None  # CABundleRef names exactly one
                secret = await asyncio.to_thread(
                    self._api.read_namespaced_secret, ref.secret, self._namespace, _request_timeout=_TIMEOUT
                )
                encoded = (secret.data or {}).get(ref.key)
                text = None if encoded is None else base64.b64decode(encoded).decode("utf-8")
        except ApiException as exc:
            if exc.status == 404:
                raise JWKSError(f"{where}: not found") from exc
            if exc.status == 403:
                raise JWKSError(
                    f"{where}: the operator may not read it (list it under the chart's "
                    "identity.caBundleConfigMaps or identity.caBundleSecrets)"
                ) from exc
            raise JWKSError(f"{where}: cannot be read (HTTP {exc.status})") from exc
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise JWKSError(f"{where}: not a PEM text") from exc
        if not text or "-----BEGIN CERTIFICATE-----" not in text:
            raise JWKSError(f"{where}: holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")
        return text
